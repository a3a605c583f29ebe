// Shares: SMB and NFS lists, and creating either on a pool's dataset.
import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { act, useApi } from '../hooks';

export function Shares() {
  const smb = useApi(() => api.GET('/api/v1/shares/smb', {}), ['/api/v1/shares']);
  const nfs = useApi(() => api.GET('/api/v1/shares/nfs', {}), ['/api/v1/shares']);
  return (
    <>
      <section aria-labelledby="smb-h">
        <h2 id="smb-h">SMB</h2>
        {smb.data ? (
          <table>
            <caption>{smb.data.length} SMB shares</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Pool / dataset</th>
                <th scope="col">Path</th>
                <th scope="col">State</th>
                <th scope="col">Access</th>
              </tr>
            </thead>
            <tbody>
              {smb.data.map((s) => (
                <tr key={s.name}>
                  <th scope="row">{s.name}</th>
                  <td>{s.pool}/{s.dataset}</td>
                  <td>{s.path}</td>
                  <td>{s.state}{s.problem ? `: ${s.problem}` : ''}</td>
                  <td>{s.read_only ? 'read-only' : 'read-write'}{s.guest_ok ? ', guests' : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </section>
      <section aria-labelledby="nfs-h">
        <h2 id="nfs-h">NFS</h2>
        {nfs.data ? (
          <table>
            <caption>{nfs.data.length} NFS exports</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Pool / dataset</th>
                <th scope="col">Pseudo path</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {nfs.data.map((s) => (
                <tr key={s.name}>
                  <th scope="row">{s.name}</th>
                  <td>{s.pool}/{s.dataset}</td>
                  <td>{s.pseudo}</td>
                  <td>{s.state}{s.problem ? `: ${s.problem}` : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </section>
      <CreateShare />
    </>
  );
}

function CreateShare() {
  const pools = useApi(() => api.GET('/api/v1/pools', {}), ['/api/v1/pools']);
  const [protocol, setProtocol] = useState<'smb' | 'nfs'>('smb');
  const [busy, setBusy] = useState(false);
  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const f = new FormData(form);
    const common = {
      name: String(f.get('name')),
      pool: String(f.get('pool')),
      dataset: String(f.get('dataset')),
      read_only: f.get('read_only') === 'on',
    };
    setBusy(true);
    const ok = await act(
      protocol === 'smb'
        ? api.POST('/api/v1/shares/smb', { body: common })
        : api.POST('/api/v1/shares/nfs', { body: { ...common, clients: [{ host: String(f.get('clients')) }] } }),
      `${protocol.toUpperCase()} share created.`,
    );
    setBusy(false);
    if (ok) form.reset();
  }
  return (
    <section class="card form" aria-labelledby="create-share-h">
      <h2 id="create-share-h">Create a share</h2>
      <form onSubmit={submit}>
        <fieldset class="tabs">
          <legend>Protocol</legend>
          <label><input type="radio" name="protocol" checked={protocol === 'smb'} onChange={() => setProtocol('smb')} /> SMB</label>
          <label><input type="radio" name="protocol" checked={protocol === 'nfs'} onChange={() => setProtocol('nfs')} /> NFS</label>
        </fieldset>
        <label>Name<input name="name" required maxLength={64} /></label>
        <label>
          Pool
          <select name="pool" required>
            {(pools.data ?? []).map((p) => (
              <option key={p.name} value={p.name}>{p.name}</option>
            ))}
          </select>
        </label>
        <label>Dataset<input name="dataset" required maxLength={64} /></label>
        {protocol === 'nfs' && (
          <label>Clients (host, network or <code>*</code>)<input name="clients" required defaultValue="*" /></label>
        )}
        <label class="check"><input type="checkbox" name="read_only" /> Read-only</label>
        <button type="submit" disabled={busy || !pools.data?.length}>Create share</button>
      </form>
    </section>
  );
}
