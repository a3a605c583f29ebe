// Console WebSocket URLs: a single-use ticket (valid 60 s) is the credential, since a browser's
// WebSocket cannot send headers. `wsUrl` makes a path absolute on this host (`wss:` under HTTPS).
import { api, problemText } from '../api/client';

export function wsUrl(path: string): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

export async function consoleUrl(id: string, kind: 'vnc' | 'serial'): Promise<string> {
  const { data, error, response } = await api.POST('/api/v1/vms/{id}/console', { params: { path: { id } } });
  if (!data) throw new Error(problemText(error, response));
  return wsUrl(kind === 'vnc' ? data.vnc_url : data.serial_url);
}

/** The path of a console ticket's WebSocket (the terminal chunk makes it a URL). */
export async function ticketPath<T>(req: Promise<{ data?: T; error?: unknown; response: Response }>, pick: (t: T) => string): Promise<string> {
  const { data, error, response } = await req;
  if (!data) throw new Error(problemText(error, response));
  return pick(data);
}

export function fullscreen(el: HTMLElement | null): void {
  void el?.requestFullscreen?.().catch(() => {});
}
