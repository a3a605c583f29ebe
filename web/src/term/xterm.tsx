// A terminal (lazy chunk: xterm.js, loaded only when one is opened), used by every console that
// speaks the consoles' framing: a VM's serial console, a container's exec, an LXC attach and the
// host terminal. Binary frames both ways are terminal bytes; text frames are JSON control:
// out `{"type":"resize","cols":C,"rows":R}` (when `resize`), in `{"type":"exit","code":N}`,
// `{"type":"closed"}` (a VM stopped), `{"type":"ended"|"replaced"|"lagged",...}`.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { fullscreen, wsUrl } from '../vm/ticket';

/**
 * xterm writes its theme and cell sizes into `<style>` elements (in `open` and later), which
 * the UI's CSP (`style-src 'self'`) blocks. From the moment this chunk loads, a `style` element
 * is made as an inert one whose text goes to a constructable stylesheet instead (CSSOM, which
 * the policy allows), adopted by the document and dropped when xterm removes it. The rest of
 * the UI never creates `style` elements.
 */
function cspSafeStyles(): void {
  const create = document.createElement;
  document.createElement = function (this: Document, tag: string, opts?: ElementCreationOptions) {
    if (tag.toLowerCase() !== 'style') return create.call(this, tag, opts);
    const el = create.call(this, 'span', opts);
    el.hidden = true;
    const sheet = new CSSStyleSheet();
    let text = '';
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    Object.defineProperty(el, 'textContent', {
      get: () => text,
      set: (v: string) => {
        text = v;
        sheet.replaceSync(v);
      },
    });
    const remove = el.remove.bind(el);
    el.remove = () => {
      document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
      remove();
    };
    return el;
  } as typeof document.createElement;
}
cspSafeStyles();

export interface TermProps {
  /** What it is, for the status line and the screen reader: `Serial`, `Shell in docker/web`. */
  label: string;
  /** The WebSocket path (ticket included) for a terminal of this size; called on each (re)connect. */
  connect: (cols: number, rows: number, again: boolean) => Promise<string>;
  /** Send resize frames (exec, LXC attach, host terminal; not a VM's serial line). */
  resize?: boolean;
}

export default function XTerm({ label, connect, resize = false }: TermProps) {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState('connecting');
  const [gen, setGen] = useState(0);
  useEffect(() => {
    const term = new Terminal({ convertEol: false, fontSize: 13, scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box.current!);
    fit.fit();
    let ws: WebSocket | null = null;
    let cancelled = false;
    const enc = new TextEncoder();
    const sendSize = () => {
      if (resize && ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    };
    const onResize = () => {
      fit.fit();
      sendSize();
    };
    addEventListener('resize', onResize);
    connect(term.cols, term.rows, gen > 0).then(
      (path) => {
        if (cancelled) return;
        ws = new WebSocket(wsUrl(path));
        ws.binaryType = 'arraybuffer';
        ws.onopen = () => {
          setState('connected');
          sendSize();
        };
        ws.onclose = () => setState((s) => (s === 'connected' || s === 'connecting' ? 'disconnected' : s));
        ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => {
          if (typeof m.data !== 'string') return term.write(new Uint8Array(m.data));
          let c: { type?: string; code?: number | null; reason?: string };
          try {
            c = JSON.parse(m.data) as typeof c;
          } catch {
            return;
          }
          if (c.type === 'closed') setState('the VM stopped');
          else if (c.type === 'exit') setState(`exited${c.code != null ? ` (code ${c.code})` : ''}`);
          else if (c.type === 'ended') setState(`ended${c.reason ? `: ${c.reason}` : ''}`);
          else if (c.type === 'replaced') setState('taken over by another window');
        };
        term.onData((d) => ws?.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
        term.focus();
      },
      (e: unknown) => setState(`failed: ${e instanceof Error ? e.message : String(e)}`),
    );
    return () => {
      cancelled = true;
      removeEventListener('resize', onResize);
      ws?.close();
      term.dispose();
    };
  }, [gen]);
  return (
    <section class="console" aria-label={`${label} terminal`}>
      <p class="buttons">
        <span role="status">{label}: {state}</span>
        <button type="button" onClick={() => fullscreen(box.current)}>Full screen</button>
        <button type="button" onClick={() => { setState('connecting'); setGen(gen + 1); }}>Reconnect</button>
      </p>
      <div class="serial" ref={box} />
    </section>
  );
}
