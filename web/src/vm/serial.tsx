// Serial console (lazy chunk): xterm.js over the VM's serial WebSocket. Binary frames both ways
// are console bytes; text frames are JSON control (`{"type":"closed"}` when the VM stops).
// The daemon replays the last 64 KiB of output to each new client.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { consoleUrl, fullscreen } from './ticket';

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

export default function SerialConsole({ id }: { id: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState('connecting');
  const [gen, setGen] = useState(0);
  useEffect(() => {
    const term = new Terminal({ convertEol: false, fontSize: 13, scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box.current!);
    fit.fit();
    const onResize = () => fit.fit();
    addEventListener('resize', onResize);
    let ws: WebSocket | null = null;
    let cancelled = false;
    const enc = new TextEncoder();
    consoleUrl(id, 'serial').then(
      (url) => {
        if (cancelled) return;
        ws = new WebSocket(url);
        ws.binaryType = 'arraybuffer';
        ws.onopen = () => setState('connected');
        ws.onclose = () => setState('disconnected');
        ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => {
          if (typeof m.data === 'string') {
            if (m.data.includes('"closed"')) setState('the VM stopped');
          } else term.write(new Uint8Array(m.data));
        };
        term.onData((d) => ws?.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
        term.focus();
      },
      (e: unknown) => setState(`failed: ${String(e)}`),
    );
    return () => {
      cancelled = true;
      removeEventListener('resize', onResize);
      ws?.close();
      term.dispose();
    };
  }, [id, gen]);
  return (
    <section class="console" aria-label="Serial console">
      <p class="buttons">
        <span role="status">Serial: {state}</span>
        <button type="button" onClick={() => fullscreen(box.current)}>Full screen</button>
        <button type="button" onClick={() => { setState('connecting'); setGen(gen + 1); }}>Reconnect</button>
      </p>
      <div class="serial" ref={box} />
    </section>
  );
}
