// A console WebSocket URL: a single-use ticket (POST /vms/{id}/console, valid 60 s) is the
// credential, since a browser's WebSocket cannot send headers.
import { api, problemText } from '../api/client';

export async function consoleUrl(id: string, kind: 'vnc' | 'serial'): Promise<string> {
  const { data, error, response } = await api.POST('/api/v1/vms/{id}/console', { params: { path: { id } } });
  if (!data) throw new Error(problemText(error, response));
  const path = kind === 'vnc' ? data.vnc_url : data.serial_url;
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

export function fullscreen(el: HTMLElement | null): void {
  void el?.requestFullscreen?.().catch(() => {});
}
