// Small shared pieces of the pages: accessible tabs (WAI-ARIA tabs pattern: arrow keys move
// between tabs) and the "loading / could not load" line.
import { useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';

export function Tabs({ id, tabs, initial = 0 }: { id: string; tabs: { label: string; body: () => ComponentChildren }[]; initial?: number }) {
  const [sel, setSel] = useState(initial);
  const list = useRef<HTMLDivElement>(null);
  function key(e: KeyboardEvent): void {
    const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!d) return;
    const n = (sel + d + tabs.length) % tabs.length;
    setSel(n);
    (list.current?.children[n] as HTMLElement | undefined)?.focus();
  }
  const cur = tabs[sel]!;
  return (
    <div class="tabset">
      <div role="tablist" ref={list} onKeyDown={key}>
        {tabs.map((t, i) => (
          <button
            type="button"
            role="tab"
            key={t.label}
            id={`${id}-tab-${i}`}
            aria-selected={i === sel}
            aria-controls={`${id}-panel`}
            tabIndex={i === sel ? 0 : -1}
            onClick={() => setSel(i)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`${id}-panel`} aria-labelledby={`${id}-tab-${sel}`} tabIndex={0}>
        {cur.body()}
      </div>
    </div>
  );
}

export function Pending({ failed, what }: { failed: boolean; what: string }) {
  return <p class="muted">{failed ? `Could not load ${what}.` : 'Loading…'}</p>;
}

/** Form values as strings (FormData), empty ones left out. */
export function formValues(e: Event): Record<string, string> {
  e.preventDefault();
  const out: Record<string, string> = {};
  new FormData(e.target as HTMLFormElement).forEach((v, k) => {
    if (typeof v === 'string' && v.trim() !== '') out[k] = v.trim();
  });
  return out;
}
