// Datasets: every pool's datasets (GET /pools/{pool}/datasets), create and delete.
import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { act, bytes, useApi } from '../hooks';

export function Datasets() {
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
                <td>{d.snapshots ?? 0}</td>
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
