// Pools: the list, and creating one on free disks (POST /pools answers 202 with a job, which the
// jobs panel follows; the list refetches on the pool's resource event).
import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api/client';
import { act, bytes, useApi } from '../hooks';

const KINDS: Schemas['PoolKind'][] = ['btrfs', 'ext4', 'xfs', 'mergerfs'];

export function Pools() {
  const pools = useApi(() => api.GET('/api/v1/pools', {}), ['/api/v1/pools']);
  return (
    <>
      {pools.data ? (
        <table>
          <caption>{pools.data.length} pools</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Health</th>
              <th scope="col">Devices</th>
              <th scope="col">Used</th>
              <th scope="col">Mount point</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {pools.data.map((p) => (
              <tr key={p.name}>
                <th scope="row">{p.name}</th>
                <td>{p.kind}</td>
                <td>
                  <span class={`badge ${p.health}`}>{p.health}</span>
                </td>
                <td>{p.members?.length ?? 0}</td>
                <td>{p.usage ? `${bytes(p.usage.used)} of ${bytes(p.usage.size_bytes)}` : '–'}</td>
                <td>{p.mountpoint}</td>
                <td>
                  <PoolActions name={p.name!} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">{pools.failed ? 'Could not load the pools.' : 'Loading…'}</p>
      )}
      <CreatePool />
    </>
  );
}

/** Scrub (a job), and destroy after typing the pool's name (the API's `confirm`). */
function PoolActions({ name }: { name: string }) {
  const [confirming, setConfirming] = useState(false);
  const path = { params: { path: { name } } };
  async function destroy(e: Event): Promise<void> {
    e.preventDefault();
    const confirm = String(new FormData(e.target as HTMLFormElement).get('confirm'));
    const ok = await act(
      api.DELETE('/api/v1/pools/{name}', { params: { path: { name }, query: { confirm } } }),
      `Destroying ${name}: see the jobs panel.`,
    );
    if (ok) setConfirming(false);
  }
  if (confirming) {
    return (
      <form class="inline" onSubmit={destroy}>
        <label>
          Type {name} to erase its disks
          <input name="confirm" required autoFocus autocomplete="off" />
        </label>
        <button type="submit" class="danger">Destroy</button>{' '}
        <button type="button" onClick={() => setConfirming(false)}>Keep</button>
      </form>
    );
  }
  return (
    <>
      <button type="button" aria-label={`Scrub ${name}`} onClick={() => act(api.POST('/api/v1/pools/{name}/scrub', path), `Scrub of ${name} started.`)}>
        Scrub
      </button>{' '}
      <button type="button" class="danger" aria-label={`Destroy ${name}`} onClick={() => setConfirming(true)}>
        Destroy…
      </button>
    </>
  );
}

function CreatePool() {
  const disks = useApi(() => api.GET('/api/v1/disks', {}), ['/api/v1/disks', '/api/v1/pools']);
  const [kind, setKind] = useState<Schemas['PoolKind']>('btrfs');
  const [busy, setBusy] = useState(false);
  const free = (disks.data ?? []).filter((d) => d.allowed && !d.in_use && !d.pool && !d.holds_root);
  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const f = new FormData(form);
    setBusy(true);
    const ok = await act(
      api.POST('/api/v1/pools', { body: { name: String(f.get('name')), kind, devices: f.getAll('devices').map(String) } }),
      'Pool creation started: see the jobs panel.',
    );
    setBusy(false);
    if (ok) form.reset();
  }
  return (
    <section class="card form" aria-labelledby="create-pool-h">
      <h2 id="create-pool-h">Create a pool</h2>
      <form onSubmit={submit}>
        <label>
          Name
          <input name="name" required maxLength={64} pattern="[A-Za-z0-9](\.?[A-Za-z0-9_\-])*\.?" />
        </label>
        <label>
          Kind
          <select name="kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value as Schemas['PoolKind'])}>
            {KINDS.map((k) => (
              <option key={k} value={k}>{k}</option>
            ))}
          </select>
        </label>
        <fieldset>
          <legend>Disks (everything on them is erased{kind === 'ext4' || kind === 'xfs' ? '; exactly one' : ''})</legend>
          {free.length === 0 && <p class="muted">No free disk.</p>}
          {free.map((d) => (
            <label key={d.id} class="check">
              <input type={kind === 'ext4' || kind === 'xfs' ? 'radio' : 'checkbox'} name="devices" value={d.id} />
              {d.name} ({bytes(d.size_bytes)}, {d.model ?? d.kind})
            </label>
          ))}
        </fieldset>
        <button type="submit" disabled={busy || free.length === 0}>Create pool</button>
      </form>
    </section>
  );
}
