// LXC (a lazy chunk): system containers. List with state, addresses and memory; start, stop,
// restart, freeze, unfreeze, delete; create (busybox template or a local rootfs archive; a job);
// a container's attach console (POST /lxc/{name}/console → ticket → WebSocket, the shared xterm
// chunk), its snapshots (take, restore, delete: jobs), clone (a job), backup of a stopped
// container into a pool dataset (a `.tar.zst`, a job) and restore of such a backup as a new
// container (a job).
import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api/client';
import { act, bytes, useApi } from '../hooks';
import { formValues, Pending, Tabs } from '../ui';
import { Term } from '../term/lazy';
import { ticketPath } from '../vm/ticket';

type Lxc = Schemas['LxcContainerFields'];

export default function LxcPage() {
  const list = useApi(() => api.GET('/api/v1/lxc', {}), ['/api/v1/lxc']);
  const [sel, setSel] = useState<string | null>(null);
  const cur = list.data?.find((c) => c.name === sel);
  return (
    <>
      <section aria-labelledby="lxc-h">
        <h2 id="lxc-h">Containers</h2>
        {list.data ? (
          <table>
            <caption>{list.data.length} LXC containers</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Addresses</th><th scope="col">Memory</th><th scope="col">Storage</th><th scope="col">Autostart</th><th scope="col">Actions</th></tr></thead>
            <tbody>
              {list.data.map((c) => (
                <tr key={c.name}>
                  <th scope="row">{c.name}</th><td><span class={`badge ${c.state}`}>{c.state}</span></td><td>{c.ips?.join(', ') || '–'}</td>
                  <td>{bytes(c.memory_bytes)}</td><td>{c.storage ?? '–'}</td><td>{c.autostart ? 'yes' : 'no'}</td>
                  <td class="buttons"><Lifecycle c={c} done={list.reload} /><button type="button" aria-label={`Open ${c.name}`} onClick={() => setSel(c.name!)}>Open</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Pending failed={list.failed} what="the LXC containers" />
        )}
      </section>
      {cur && (
        <section aria-labelledby="lxc-one-h">
          <h2 id="lxc-one-h">{cur.name} <span class={`badge ${cur.state}`}>{cur.state}</span></h2>
          <p><button type="button" onClick={() => setSel(null)}>Close {cur.name}</button></p>
          <Tabs
            id="lxc"
            tabs={[
              { label: 'Console', body: () => <Console c={cur} /> },
              { label: 'Snapshots', body: () => <Snapshots name={cur.name!} /> },
              { label: 'Clone', body: () => <Clone name={cur.name!} /> },
              { label: 'Backup', body: () => <Backup c={cur} /> },
            ]}
          />
        </section>
      )}
      <Create />
      <Restore />
    </>
  );
}

function Lifecycle({ c, done }: { c: Lxc; done: () => void }) {
  const name = c.name!;
  const p = { params: { path: { name } } };
  const running = c.state === 'running';
  const b = (label: string, on: boolean, f: () => Promise<{ error?: unknown; response: Response }>, cls = '') => (
    <button type="button" class={cls} disabled={!on} aria-label={`${label} ${name}`} onClick={() => act(f(), `${name}: ${label.toLowerCase()}`).then(done)}>{label}</button>
  );
  return (
    <>
      {b('Start', c.state === 'stopped', () => api.POST('/api/v1/lxc/{name}/start', p))}
      {b('Stop', running || c.state === 'frozen', () => api.POST('/api/v1/lxc/{name}/stop', p))}
      {b('Restart', running, () => api.POST('/api/v1/lxc/{name}/restart', p))}
      {b('Freeze', running, () => api.POST('/api/v1/lxc/{name}/freeze', p))}
      {b('Unfreeze', c.state === 'frozen', () => api.POST('/api/v1/lxc/{name}/unfreeze', p))}
      {b('Delete', c.state === 'stopped', () => api.DELETE('/api/v1/lxc/{name}', p), 'danger')}
    </>
  );
}

function Console({ c }: { c: Lxc }) {
  const [open, setOpen] = useState(0);
  if (c.state !== 'running') return <p class="muted">Start the container to attach a console.</p>;
  const name = c.name!;
  const connect = async (cols: number, rows: number) =>
    `${await ticketPath(api.POST('/api/v1/lxc/{name}/console', { params: { path: { name } } }), (t) => t.url)}&cols=${cols}&rows=${rows}`;
  return (
    <>
      <p><button type="button" onClick={() => setOpen(open + 1)}>{open ? 'New console' : 'Attach console'}</button></p>
      {open > 0 && <Term key={open} label={`Console of ${name}`} connect={connect} resize />}
    </>
  );
}

function Snapshots({ name }: { name: string }) {
  const p = { params: { path: { name } } };
  const list = useApi(() => api.GET('/api/v1/lxc/{name}/snapshots', p), [`/api/v1/lxc/${name}`]);
  return (
    <>
      <p><button type="button" onClick={() => act(api.POST('/api/v1/lxc/{name}/snapshots', p), 'Snapshot started (see the jobs panel).')}>Take snapshot</button></p>
      {list.data ? (
        <table>
          <caption>{list.data.length} snapshots of {name}</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Taken</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((s) => {
              const sp = { params: { path: { name, snapshot: s.name! } } };
              return (
                <tr key={s.name}>
                  <th scope="row">{s.name}</th><td>{s.created}</td>
                  <td class="buttons">
                    <button type="button" aria-label={`Restore ${s.name}`} onClick={() => act(api.POST('/api/v1/lxc/{name}/snapshots/{snapshot}/restore', sp), 'Restore started.')}>Restore</button>
                    <button type="button" class="danger" aria-label={`Delete ${s.name}`} onClick={() => act(api.DELETE('/api/v1/lxc/{name}/snapshots/{snapshot}', sp), 'Snapshot deleted.').then(list.reload)}>Delete</button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the snapshots" />
      )}
    </>
  );
}

function Clone({ name }: { name: string }) {
  async function clone(e: Event): Promise<void> {
    const f = formValues(e);
    await act(api.POST('/api/v1/lxc/{name}/clone', { params: { path: { name } }, body: { name: f.clone! } }), 'Clone started (see the jobs panel).');
  }
  return (
    <form class="inline" onSubmit={clone}>
      <label>Name of the clone<input name="clone" required /></label>
      <button type="submit">Clone {name}</button>
    </form>
  );
}

function Create() {
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const el = (n: string) => (form.elements.namedItem(n) as HTMLInputElement).checked;
    const start = el('start');
    const autostart = el('autostart');
    const f = formValues(e);
    const body: Schemas['LxcCreate'] = {
      name: f.name!,
      template: (f.template ?? 'busybox') as Schemas['LxcTemplate'],
      rootfs_archive: f.archive ?? null,
      storage: f.storage ?? null,
      bridge: f.bridge ?? null,
      start,
      autostart,
      limits: { memory_bytes: f.memory ? Math.round(Number(f.memory) * 1024 * 1024) : null, cpus: f.cpus ? Number(f.cpus) : null },
    };
    if (await act(api.POST('/api/v1/lxc', { body }), `Creating ${body.name} (see the jobs panel).`)) form.reset();
  }
  return (
    <section aria-labelledby="lxc-new-h">
      <h2 id="lxc-new-h">Create an LXC container</h2>
      <form onSubmit={create}>
        <div class="row">
          <label>Container name<input name="name" required maxLength={64} /></label>
          <label>Template<select name="template"><option value="busybox">busybox</option><option value="local">local (a rootfs archive)</option></select></label>
          <label>Rootfs archive (pool/dataset/file.tar.xz)<input name="archive" /></label>
          <label>Storage (pool/dataset; empty: the lxcpath)<input name="storage" /></label>
          <label>Bridge (empty: no network)<input name="bridge" /></label>
          <label>Memory limit (MiB)<input name="memory" type="number" min="4" /></label>
          <label>CPUs<input name="cpus" type="number" step="0.01" min="0.01" /></label>
        </div>
        <label class="check"><input type="checkbox" name="start" /> Start it once made</label>
        <label class="check"><input type="checkbox" name="autostart" /> Start with the daemon</label>
        <button type="submit">Create LXC container</button>
      </form>
    </section>
  );
}

/** A `.tar.zst` of the stopped container into a dataset; the job's result names the file. */
function Backup({ c }: { c: Lxc }) {
  const name = c.name!;
  async function backup(e: Event): Promise<void> {
    const f = formValues(e);
    await act(
      api.POST('/api/v1/lxc/{name}/backup', { params: { path: { name } }, body: { storage: f.storage!, file: f.file ?? null } }),
      'Backup started (see the jobs panel; its result names the file).',
    );
  }
  if (c.state !== 'stopped') return <p class="muted">Stop the container to back it up.</p>;
  return (
    <form class="inline" onSubmit={backup}>
      <label>Backup storage (pool/dataset)<input name="storage" required pattern="[^/]+/[^/]+" /></label>
      <label>File name (empty: name and time; ends .tar.zst)<input name="file" pattern=".*\.tar\.zst" /></label>
      <button type="submit">Back up {name}</button>
    </form>
  );
}

function Restore() {
  async function restore(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const body: Schemas['LxcRestoreRequest'] = { storage: f.storage!, file: f.file!, rootfs_storage: f.rootfs ?? null };
    if (await act(api.POST('/api/v1/lxc/{name}/restore', { params: { path: { name: f.name! } }, body }), `Restoring ${f.name} (see the jobs panel).`)) form.reset();
  }
  return (
    <section aria-labelledby="lxc-restore-h">
      <h2 id="lxc-restore-h">Restore a backup as a new container</h2>
      <form class="inline" onSubmit={restore}>
        <label>Name of the restored container<input name="name" required maxLength={64} /></label>
        <label>Backup storage (pool/dataset)<input name="storage" required /></label>
        <label>Backup file (.tar.zst)<input name="file" required /></label>
        <label>Root filesystem storage (empty: the lxcpath)<input name="rootfs" /></label>
        <button type="submit">Restore backup</button>
      </form>
    </section>
  );
}
