// App state shared by the shell and the pages: a tiny observable per concern, read by
// components through `useStore` (no state library: the entry stays small).
import { useEffect, useState } from 'preact/hooks';
import type { Schemas } from './api/client';

export class Store<T> {
  private subs = new Set<(v: T) => void>();
  constructor(private value: T) {}
  get(): T {
    return this.value;
  }
  set(v: T): void {
    this.value = v;
    this.subs.forEach((f) => f(v));
  }
  update(f: (v: T) => T): void {
    this.set(f(this.value));
  }
  subscribe(f: (v: T) => void): () => void {
    this.subs.add(f);
    return () => this.subs.delete(f);
  }
}

export function useStore<T>(s: Store<T>): T {
  const [v, setV] = useState(s.get());
  useEffect(() => {
    setV(s.get());
    return s.subscribe(setV);
  }, [s]);
  return v;
}

export type Whoami = Schemas['WhoamiFields'];
/** The logged-in caller; null: show the login page; undefined: not known yet. */
export const session = new Store<Whoami | null | undefined>(undefined);

export type Job = Schemas['JobFields'];
/** Jobs by id, newest first when listed; filled by GET /jobs and kept current by job events. */
export const jobs = new Store<Map<string, Job>>(new Map());

export function putJob(j: Job): void {
  if (!j.id) return;
  jobs.update((m) => new Map(m).set(j.id!, { ...m.get(j.id!), ...j }));
}

export interface Toast {
  id: number;
  text: string;
  kind: 'error' | 'info';
}
export const toasts = new Store<Toast[]>([]);
let toastSeq = 0;
export function toast(text: string, kind: Toast['kind'] = 'error'): void {
  const id = ++toastSeq;
  toasts.update((t) => [...t, { id, text, kind }]);
  setTimeout(() => dismiss(id), kind === 'error' ? 10000 : 4000);
}
export function dismiss(id: number): void {
  toasts.update((t) => t.filter((x) => x.id !== id));
}

/** Bumped by a resource event: pages showing that collection refetch. */
export const changed = new Store<{ href: string; n: number }>({ href: '', n: 0 });

/** `metrics.sample` event data (docs/metrics.md, Live samples; event payloads are not in the
 *  OpenAPI document): unix seconds and every series sampled. */
export interface Sample {
  time: number;
  values: { name: string; labels: Record<string, string>; value: number }[];
}
/** The newest `metrics.sample` event (live host numbers for the dashboard's charts). */
export const samples = new Store<Sample | null>(null);
