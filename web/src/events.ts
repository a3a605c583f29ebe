// One event stream per tab (GET /api/v1/events, SSE): job events keep the jobs panel current,
// resource events make the page showing that collection refetch. EventSource cannot send
// headers: with the session cookie nothing is needed; with an API token it goes as ?token=.
// The browser reconnects by itself (sending Last-Event-ID); a stream it closed for good (401,
// or the daemon gone) is reopened here from the last id seen, after checking the session.
import { api, apiToken } from './api/client';
import { changed, putJob, samples, type Job, type Sample } from './store';

let source: EventSource | null = null;
let lastId: string | null = null;
let retry: ReturnType<typeof setTimeout> | undefined;

interface Event {
  seq?: number;
  type: string;
  href?: string;
  data?: unknown;
}

function onEvent(e: MessageEvent<string>): void {
  // (A live-only event has no id: EventSource keeps the previous one.)
  if (e.lastEventId) lastId = e.lastEventId;
  let ev: Event;
  try {
    ev = JSON.parse(e.data) as Event;
  } catch {
    return;
  }
  if (ev.type === 'metrics.sample') samples.set(ev.data as Sample);
  else if (ev.type.startsWith('job.')) putJob(ev.data as Job);
  else if (ev.type.startsWith('resource.') && ev.href) changed.update((c) => ({ href: ev.href!, n: c.n + 1 }));
}

export function openEvents(): void {
  closeEvents();
  // metrics.sample: live-only (no id, never replayed), for the dashboard's charts.
  const q = new URLSearchParams({ type: 'job.*,resource.*,metrics.sample' });
  if (lastId) q.set('last_event_id', lastId);
  const token = apiToken();
  if (token) q.set('token', token);
  const es = new EventSource(`/api/v1/events?${q}`);
  for (const t of ['job.created', 'job.updated', 'resource.created', 'resource.updated', 'resource.deleted', 'metrics.sample']) {
    es.addEventListener(t, onEvent as EventListener);
  }
  // After a gap the stored state is the truth: every page refetches.
  es.addEventListener('stream.gap', () => changed.update((c) => ({ href: '/api/v1/', n: c.n + 1 })));
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED) return;
    // Closed for good: a 401 here sends the app to the login page (client middleware).
    retry = setTimeout(async () => {
      const { response } = await api.GET('/api/v1/auth/whoami', {});
      if (response.ok && source === es) openEvents();
    }, 3000);
  };
  source = es;
}

export function closeEvents(): void {
  clearTimeout(retry);
  source?.close();
  source = null;
}

/** The stream is opened for the page's session; a new login starts from the present. */
export function resetEvents(): void {
  closeEvents();
  lastId = null;
}
