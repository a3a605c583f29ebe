// Host terminal (a lazy chunk): a shell on the host (admin). New: POST /system/terminals with
// the terminal's size → `ws_url` with a single-use ticket, opened in the shared xterm chunk.
// The shell outlives a dropped connection for a while: Reconnect (or Attach in the list) asks
// POST /system/terminals/{id}/ticket and the daemon replays the recent output first.
import { useRef, useState } from 'preact/hooks';
import { api } from '../api/client';
import { act, useApi, when } from '../hooks';
import { Pending } from '../ui';
import { Term } from '../term/lazy';
import { ticketPath } from '../vm/ticket';

export default function HostTerminal() {
  const list = useApi(() => api.GET('/api/v1/system/terminals', {}), ['/api/v1/system/terminals']);
  // Which session the terminal below shows (null: a new one is made when it connects).
  const [open, setOpen] = useState<{ id: string | null; n: number } | null>(null);
  const id = useRef<string | null>(null);
  function show(sid: string | null): void {
    id.current = sid;
    setOpen({ id: sid, n: (open?.n ?? 0) + 1 });
  }
  async function connect(cols: number, rows: number): Promise<string> {
    if (id.current) return ticketPath(api.POST('/api/v1/system/terminals/{id}/ticket', { params: { path: { id: id.current } } }), (t) => t.ws_url);
    const url = await ticketPath(api.POST('/api/v1/system/terminals', { body: { cols, rows } }), (t) => {
      id.current = t.id;
      return t.ws_url;
    });
    list.reload();
    return url;
  }
  return (
    <>
      <p class="buttons"><button type="button" onClick={() => show(null)}>New terminal</button></p>
      {open && <Term key={open.n} label="Host shell" connect={connect} resize />}
      <section aria-labelledby="sessions-h">
        <h2 id="sessions-h">Sessions</h2>
        {list.data ? (
          <table>
            <caption>{list.data.length} terminal sessions</caption>
            <thead><tr><th scope="col">Started</th><th scope="col">User</th><th scope="col">Shell</th><th scope="col">Size</th><th scope="col">Attached</th><th scope="col">Last activity</th><th scope="col">Actions</th></tr></thead>
            <tbody>
              {list.data.map((s) => (
                <tr key={s.id}>
                  <th scope="row">{when(s.created_at)}</th><td>{s.user}</td><td>{s.shell}</td><td>{s.cols}×{s.rows}</td><td>{s.attached ? 'yes' : 'no'}</td><td>{when(s.last_activity_at)}</td>
                  <td class="buttons">
                    <button type="button" aria-label={`Attach session ${s.id}`} onClick={() => show(s.id!)}>Attach</button>
                    <button type="button" class="danger" aria-label={`End session ${s.id}`} onClick={() => act(api.DELETE('/api/v1/system/terminals/{id}', { params: { path: { id: s.id! } } }), 'Session ended.').then(list.reload)}>End</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Pending failed={list.failed} what="the sessions" />
        )}
      </section>
    </>
  );
}
