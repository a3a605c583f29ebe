// Loading API data in a page: fetch on mount, refetch when an event names the collection
// (`watch` is an href prefix such as `/api/v1/pools`), toast failures with the problem's detail.
import { useEffect, useState, useCallback } from 'preact/hooks';
import { problemText } from './api/client';
import { changed, toast } from './store';

interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** `quiet`: a 404 is an expected state (no licence, no update yet): no toast. */
export function useApi<T>(load: () => Promise<Result<T>>, watch?: string[], quiet = false): { data?: T; failed: boolean; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [failed, setFailed] = useState(false);
  const reload = useCallback(() => {
    load().then(
      (r) => {
        if (r.response.ok) {
          setData(r.data);
          setFailed(false);
        } else {
          setFailed(true);
          if (r.response.status !== 401 && !(quiet && r.response.status === 404)) toast(problemText(r.error, r.response));
        }
      },
      (e: unknown) => {
        setFailed(true);
        toast(String(e));
      },
    );
  }, []);
  useEffect(() => {
    reload();
    if (!watch) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const off = changed.subscribe((c) => {
      if (!watch.some((w) => c.href.startsWith(w) || w.startsWith(c.href))) return;
      // Several events in a burst make one refetch.
      clearTimeout(timer);
      timer = setTimeout(reload, 150);
    });
    return () => {
      off();
      clearTimeout(timer);
    };
  }, [reload]);
  return { data, failed, reload };
}

/** Run a mutating request; toast its problem on failure. Returns whether it succeeded. */
export async function act(req: Promise<{ error?: unknown; response: Response }>, done?: string): Promise<boolean> {
  try {
    const r = await req;
    if (!r.response.ok) {
      if (r.response.status !== 401) toast(problemText(r.error, r.response));
      return false;
    }
    if (done) toast(done, 'info');
    return true;
  } catch (e) {
    toast(String(e));
    return false;
  }
}

export function bytes(n?: number | null): string {
  if (n == null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function when(t?: string | null): string {
  return t ? new Date(t).toLocaleString() : '–';
}
