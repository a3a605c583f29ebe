// Datasets: every pool's datasets (GET /pools/{pool}/datasets), create and delete; a
// dataset's snapshots at #/datasets/<pool>/<dataset> (take, roll back, delete, retention).
import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { act, bytes, useApi, when } from '../hooks';
import { formValues, Pending } from '../ui';
import type { PageProps } from '../app';

export function Datasets({ args }: PageProps) {
  if (args[0] && args[1]) return <DatasetSnapshots pool={args[0]} dataset={args[1]} />;
  const pools = useApi(() => api.GET('/api/v1/pools', {}), ['/api/v1/pools']);
  if (!pools.data) return <p class="muted">{pools.failed ? 'Could not load the pools.' : 'Loading…'}</p>;
  if (!pools.data.length) return <p class="muted">No pools: create one on the Pools page.</p>;
  return (
    <>
      {pools.data.map((p) => (
        <PoolDatasets key={p.name} pool={p.name!} />
      ))}
      <CreateDataset pools={pools.data.map((p) => p.name!)} />
    </>
  );
}

function PoolDatasets({ pool }: { pool: string }) {
  const path = { params: { path: { pool } } };
  const list = useApi(() => api.GET('/api/v1/pools/{pool}/datasets', path), [`/api/v1/pools/${pool}`]);
  return (
    <section aria-labelledby={`ds-${pool}`}>
      <h2 id={`ds-${pool}`}>{pool}</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} datasets in {pool}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Used</th>
              <th scope="col">Snapshots</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((d) => (
              <tr key={d.name}>
                <th scope="row">{d.name}</th>
                <td>{d.kind}</td>
                <td>{bytes(d.usage?.referenced)}</td>
                <td>
                  <a href={`#/datasets/${encodeURIComponent(pool)}/${encodeURIComponent(d.name!)}`} aria-label={`${d.snapshots ?? 0} snapshots of ${d.name}`}>{d.snapshots ?? 0} snapshots</a>
                </td>
                <td>
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Delete dataset ${d.name}`}
                    onClick={() =>
                      act(api.DELETE('/api/v1/pools/{pool}/datasets/{dataset}', { params: { path: { pool, dataset: d.name! } } }), `Dataset ${d.name} deleted.`).then(list.reload)
                    }
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">Loading…</p>
      )}
    </section>
  );
}

function CreateDataset({ pools }: { pools: string[] }) {
  const [busy, setBusy] = useState(false);
  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const f = new FormData(form);
    setBusy(true);
    const ok = await act(
      api.POST('/api/v1/pools/{pool}/datasets', { params: { path: { pool: String(f.get('pool')) } }, body: { name: String(f.get('name')) } }),
      'Dataset created.',
    );
    setBusy(false);
    if (ok) form.reset();
  }
  return (
    <section class="card form" aria-labelledby="create-ds-h">
      <h2 id="create-ds-h">Create a dataset</h2>
      <form onSubmit={submit}>
        <label>
          Pool
          <select name="pool" required>
            {pools.map((p) => (
              <option key={p} value={p}>{p}</option>
            ))}
          </select>
        </label>
        <label>Name<input name="name" required maxLength={64} /></label>
        <button type="submit" disabled={busy}>Create dataset</button>
      </form>
    </section>
  );
}

function DatasetSnapshots({ pool, dataset }: { pool: string; dataset: string }) {
  const path = { params: { path: { pool, dataset } } };
  const ds = useApi(() => api.GET('/api/v1/pools/{pool}/datasets/{dataset}', path), [`/api/v1/pools/${pool}`]);
  const list = useApi(() => api.GET('/api/v1/pools/{pool}/datasets/{dataset}/snapshots', path), [`/api/v1/pools/${pool}`]);
  async function take(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    if (await act(api.POST('/api/v1/pools/{pool}/datasets/{dataset}/snapshots', { ...path, body: { name: f.name ?? null } }), 'Snapshot taken.')) {
      form.reset();
      list.reload();
      ds.reload();
    }
  }
  async function retention(e: Event): Promise<void> {
    const f = formValues(e);
    const keep = f.keep ? Number(f.keep) : null;
    if (await act(api.PATCH('/api/v1/pools/{pool}/datasets/{dataset}', { ...path, body: { snapshot_retention: keep } }), 'Retention saved.')) ds.reload();
  }
  const snapPath = (snapshot: string) => ({ params: { path: { pool, dataset, snapshot } } });
  return (
    <>
      <p><a href="#/datasets">All datasets</a></p>
      <h2>Snapshots of {pool}/{dataset}</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} snapshots of {dataset}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Taken</th>
              <th scope="col">Size</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((s) => (
              <tr key={s.name}>
                <th scope="row">{s.name}</th>
                <td>{when(s.created_at)}</td>
                <td>{bytes(s.usage?.referenced)}</td>
                <td class="buttons">
                  <button type="button" aria-label={`Roll back to ${s.name}`} onClick={() => act(api.POST('/api/v1/pools/{pool}/datasets/{dataset}/snapshots/{snapshot}/rollback', { ...snapPath(s.name!), body: {} }), `Rolled back to ${s.name}.`).then(list.reload)}>Roll back</button>
                  <button type="button" class="danger" aria-label={`Delete snapshot ${s.name}`} onClick={() => act(api.DELETE('/api/v1/pools/{pool}/datasets/{dataset}/snapshots/{snapshot}', snapPath(s.name!)), 'Snapshot deleted.').then(list.reload)}>Delete</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the snapshots" />
      )}
      <div class="cards">
        <form class="card form" onSubmit={take} aria-labelledby="take-h">
          <h3 id="take-h">Take a snapshot</h3>
          <label>Snapshot name (empty: the time)<input name="name" maxLength={64} /></label>
          <button type="submit">Take snapshot</button>
        </form>
        <form class="card form" onSubmit={retention} aria-labelledby="ret-h">
          <h3 id="ret-h">Retention</h3>
          <label>
            Keep the newest (empty: all)
            <input name="keep" type="number" min={1} defaultValue={String(ds.data?.snapshot_retention ?? '')} key={ds.data?.snapshot_retention ?? 'none'} />
          </label>
          <button type="submit">Save retention</button>
        </form>
      </div>
    </>
  );
}
