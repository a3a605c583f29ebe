// Containers (a lazy chunk): the engines (docker, podman) with reachability, every engine's
// containers with lifecycle buttons, their log (followed live: the log endpoint streams with
// follow=true) and an exec terminal (POST .../exec with tty → a ticket → the WebSocket, in the
// shared xterm chunk); a create form; each engine's images (pull, prune, import), volumes and
// networks; the image update checks.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api/client';
import { act, bytes, useApi, when } from '../hooks';
import { formValues, Pending, Tabs } from '../ui';
import { Term } from '../term/lazy';
import { ticketPath } from '../vm/ticket';
import { CreateContainer, Networks, Volumes } from './containers-create';
import { PullPrune, Updates } from './containers-updates';

type Ref = { engine: string; name: string };

export default function Containers() {
  const engines = useApi(() => api.GET('/api/v1/container-engines', {}), ['/api/v1/container-engines']);
  const [log, setLog] = useState<Ref | null>(null);
  const [shell, setShell] = useState<Ref | null>(null);
  const reachable = engines.data?.filter((e) => e.reachable).map((e) => e.name!) ?? [];
  return (
    <>
      <section aria-labelledby="engines-h">
        <h2 id="engines-h">Engines</h2>
        {engines.data ? (
          <table>
            <caption>{engines.data.length} container engines</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Driver</th><th scope="col">Reachable</th><th scope="col">Version</th><th scope="col">Socket</th></tr></thead>
            <tbody>
              {engines.data.map((e) => (
                <tr key={e.name}>
                  <th scope="row">{e.name}</th><td>{e.driver ?? '–'}</td>
                  <td><span class={`badge ${e.reachable ? 'online' : 'faulted'}`}>{e.reachable ? 'yes' : 'no'}</span>{e.error ? ` ${e.error}` : ''}</td>
                  <td>{e.server_version ?? '–'}</td><td>{e.socket}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Pending failed={engines.failed} what="the engines" />
        )}
      </section>
      <ContainerList onLog={setLog} onShell={setShell} />
      {log && <Logs key={`${log.engine}/${log.name}`} {...log} close={() => setLog(null)} />}
      {shell && <Exec key={`${shell.engine}/${shell.name}`} {...shell} close={() => setShell(null)} />}
      {reachable.length > 0 && <CreateContainer engines={reachable} />}
      <Updates />
      {reachable.map((e) => (
        <section key={e} aria-labelledby={`eng-${e}`}>
          <h2 id={`eng-${e}`}>Engine {e}</h2>
          <Tabs
            id={`eng-${e}`}
            tabs={[
              { label: 'Images', body: () => <Images engine={e} /> },
              { label: 'Volumes', body: () => <Volumes engine={e} /> },
              { label: 'Networks', body: () => <Networks engine={e} /> },
            ]}
          />
        </section>
      ))}
    </>
  );
}

function ContainerList({ onLog, onShell }: { onLog: (c: Ref) => void; onShell: (c: Ref) => void }) {
  const list = useApi(() => api.GET('/api/v1/containers', {}), ['/api/v1/containers']);
  return (
    <section aria-labelledby="containers-h">
      <h2 id="containers-h">Containers</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} containers</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Engine</th><th scope="col">Image</th><th scope="col">State</th><th scope="col">Started</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((c) => {
              const p = { params: { path: { engine: c.engine!, name: c.name! } } };
              const running = c.state === 'running';
              const b = (label: string, on: boolean, f: () => Promise<{ error?: unknown; response: Response }>, cls = '') => (
                <button type="button" class={cls} disabled={!on} aria-label={`${label} ${c.name}`} onClick={() => act(f(), `${c.name}: ${label.toLowerCase()}`).then(list.reload)}>{label}</button>
              );
              return (
                <tr key={`${c.engine}/${c.name}`}>
                  <th scope="row">{c.name}</th><td>{c.engine}</td><td>{c.image}</td>
                  <td><span class={`badge ${c.state}`}>{c.state}</span></td><td>{when(c.started_at)}</td>
                  <td class="buttons">
                    {b('Start', !running && c.state !== 'paused', () => api.POST('/api/v1/containers/{engine}/{name}/start', p))}
                    {b('Stop', running, () => api.POST('/api/v1/containers/{engine}/{name}/stop', p))}
                    {b('Restart', running, () => api.POST('/api/v1/containers/{engine}/{name}/restart', p))}
                    {b('Pause', running, () => api.POST('/api/v1/containers/{engine}/{name}/pause', p))}
                    {b('Unpause', c.state === 'paused', () => api.POST('/api/v1/containers/{engine}/{name}/unpause', p))}
                    <button type="button" aria-label={`Logs of ${c.name}`} onClick={() => onLog({ engine: c.engine!, name: c.name! })}>Logs</button>
                    <button type="button" disabled={!running} aria-label={`Terminal in ${c.name}`} onClick={() => onShell({ engine: c.engine!, name: c.name! })}>Terminal</button>
                    {b('Delete', !running, () => api.DELETE('/api/v1/containers/{engine}/{name}', p), 'danger')}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the containers" />
      )}
    </section>
  );
}

/** The log, then followed: the answer streams (follow=true) and is read chunk by chunk. */
function Logs({ engine, name, close }: { engine: string; name: string; close: () => void }) {
  const [text, setText] = useState('');
  const [follow, setFollow] = useState(true);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const ctl = new AbortController();
    setText('');
    void api
      .GET('/api/v1/containers/{engine}/{name}/logs', { params: { path: { engine, name }, query: { follow, tail: 500 } }, parseAs: 'stream', signal: ctl.signal })
      .then(async ({ response }) => {
        const reader = response.body?.getReader();
        const dec = new TextDecoder();
        while (reader) {
          const { done, value } = await reader.read();
          if (done) break;
          setText((t) => (t + dec.decode(value, { stream: true })).slice(-200000));
        }
      })
      .catch(() => {});
    return () => ctl.abort();
  }, [engine, name, follow]);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text]);
  return (
    <section class="card" aria-labelledby="logs-h">
      <h2 id="logs-h">Log of {engine}/{name}</h2>
      <p class="buttons">
        <label class="check"><input type="checkbox" checked={follow} onChange={(e) => setFollow((e.target as HTMLInputElement).checked)} /> Follow</label>
        <button type="button" onClick={close}>Close log</button>
      </p>
      <pre class="log tall" ref={pre} tabIndex={0} aria-label={`Log of ${name}`}>{text || '(empty)'}</pre>
    </section>
  );
}

function Images({ engine }: { engine: string }) {
  const path = { params: { path: { engine } } };
  const list = useApi(() => api.GET('/api/v1/container-engines/{engine}/images', path), [`/api/v1/container-engines/${engine}`]);
  async function upload(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const file = new FormData(form).get('tar') as File | null;
    const f = formValues(e);
    if (!file?.size) return;
    const ok = await act(
      api.POST('/api/v1/container-engines/{engine}/images/import', {
        params: { path: { engine }, query: { repo: f.repo!, tag: f.tag } },
        body: file as never,
        bodySerializer: (b: unknown) => b as File,
        headers: { 'content-type': 'application/x-tar' },
      }),
      'Image imported.',
    );
    if (ok) {
      form.reset();
      list.reload();
    }
  }
  return (
    <>
      {list.data ? (
        <table>
          <caption>{list.data.length} images in {engine}</caption>
          <thead><tr><th scope="col">Tags</th><th scope="col">ID</th><th scope="col">Size</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((i) => (
              <tr key={i.id}>
                <th scope="row">{i.tags?.join(', ') || '(untagged)'}</th><td><code>{i.id?.slice(0, 19)}</code></td><td>{bytes(i.size)}</td><td>{when(i.created_at)}</td>
                <td><button type="button" class="danger" aria-label={`Delete image ${i.tags?.[0] ?? i.id}`} onClick={() => act(api.DELETE('/api/v1/container-engines/{engine}/images/{image}', { params: { path: { engine, image: i.id! } } }), 'Image deleted.').then(list.reload)}>Delete</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the images" />
      )}
      <PullPrune engine={engine} reload={list.reload} />
      <form class="inline" onSubmit={upload}>
        <label>Repository<input name="repo" required /></label>
        <label>Tag<input name="tag" placeholder="latest" /></label>
        <label>Root filesystem tarball<input name="tar" type="file" required /></label>
        <button type="submit">Import image</button>
      </form>
    </>
  );
}

/** A shell in a running container: each (re)connect is a new exec with a terminal. */
function Exec({ engine, name, close }: Ref & { close: () => void }) {
  const [cmd, setCmd] = useState('sh');
  const [open, setOpen] = useState(0);
  const connect = () =>
    ticketPath(
      api.POST('/api/v1/containers/{engine}/{name}/exec', { params: { path: { engine, name } }, body: { cmd: cmd.split(/\s+/).filter(Boolean), tty: true } }),
      (t) => ('ws_url' in t ? t.ws_url : ''),
    );
  return (
    <section class="card" aria-labelledby="exec-h">
      <h2 id="exec-h">Terminal in {engine}/{name}</h2>
      <form class="inline" onSubmit={(e) => { e.preventDefault(); setOpen(open + 1); }}>
        <label>Command<input name="cmd" value={cmd} onInput={(e) => setCmd((e.target as HTMLInputElement).value)} required /></label>
        <button type="submit">{open ? 'Run again' : 'Open terminal'}</button>
        <button type="button" onClick={close}>Close terminal</button>
      </form>
      {open > 0 && <Term key={open} label={`Shell in ${name}`} connect={connect} resize />}
    </section>
  );
}
