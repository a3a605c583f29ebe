// VNC console (lazy chunk): noVNC's RFB over the VM's vnc WebSocket, with a fresh ticket per
// connection; scaled into a box of fixed height (noVNC renders 0×0 in a box with none).
import { useEffect, useRef, useState } from 'preact/hooks';
import RFB from '@novnc/novnc';
import { consoleUrl, fullscreen } from './ticket';

export default function VncConsole({ id }: { id: string }) {
  const box = useRef<HTMLDivElement>(null);
  const rfb = useRef<RFB | null>(null);
  const [state, setState] = useState('connecting');
  const [gen, setGen] = useState(0);
  useEffect(() => {
    let cancelled = false;
    consoleUrl(id, 'vnc').then(
      (url) => {
        if (cancelled || !box.current) return;
        const r = new RFB(box.current, url, { wsProtocols: ['binary'], shared: true });
        r.scaleViewport = true;
        r.addEventListener('connect', () => setState('connected'));
        r.addEventListener('disconnect', () => setState('disconnected'));
        rfb.current = r;
      },
      (e: unknown) => setState(`failed: ${String(e)}`),
    );
    return () => {
      cancelled = true;
      rfb.current?.disconnect();
      rfb.current = null;
    };
  }, [id, gen]);
  return (
    <section class="console" aria-label="VNC console">
      <p class="buttons">
        <span role="status">VNC: {state}</span>
        <button type="button" onClick={() => fullscreen(box.current)}>Full screen</button>
        <button type="button" onClick={() => rfb.current?.sendCtrlAltDel()}>Send Ctrl+Alt+Del</button>
        <button type="button" onClick={() => { setState('connecting'); setGen(gen + 1); }}>Reconnect</button>
      </p>
      <div class="vnc" ref={box} />
    </section>
  );
}
