// The terminal as the pages use it: the xterm.js chunk is imported when the first terminal
// opens (it is ~84 KB gzip; the entry stays small).
import { useEffect, useState } from 'preact/hooks';
import type { ComponentType } from 'preact';
import type { TermProps } from './xterm';

let loaded: ComponentType<TermProps> | null = null;

export function Term(props: TermProps) {
  const [C, setC] = useState<ComponentType<TermProps> | null>(() => loaded);
  useEffect(() => {
    if (!C) void import('./xterm').then((m) => setC(() => (loaded = m.default)));
  }, []);
  return C ? <C {...props} /> : <p class="muted">Loading the terminal…</p>;
}
