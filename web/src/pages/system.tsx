// System: version and update (upload a package: a job), the HTTPS certificate (replace with
// PEM), the licence, backups (make, download, restore, delete), the logs archive and the
// debug bundle (plain links: the browser downloads them with the session cookie), reboot.
import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { act, bytes, useApi, when } from '../hooks';
import { formValues, Pending } from '../ui';

export function System() {
  return (
    <>
      <div class="cards">
        <Version />
        <Certificate />
        <License />
      </div>
      <Backups />
      <section aria-labelledby="dl-h">
        <h2 id="dl-h">Logs and support</h2>
        <p class="buttons">
          <a href="/api/v1/system/logs/archive" download>Download the logs (logs.tar.gz)</a>
          <a href="/api/v1/system/debug-bundle" download>Download the debug bundle (encrypted)</a>
        </p>
      </section>
      <Reboot />
    </>
  );
}

function Version() {
  const v = useApi(() => api.GET('/api/v1/system/version', {}));
  const u = useApi(() => api.GET('/api/v1/system/update', {}), ['/api/v1/system'], true);
  async function upload(e: Event): Promise<void> {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const file = new FormData(form).get('package') as File | null;
    if (!file?.size) return;
    const ok = await act(
      api.POST('/api/v1/system/update', { body: file as never, bodySerializer: (b: unknown) => b as File, headers: { 'content-type': 'application/octet-stream' } }),
      'Update started: see the jobs panel.',
    );
    if (ok) form.reset();
  }
  return (
    <section class="card" aria-labelledby="ver-h">
      <h2 id="ver-h">Version and updates</h2>
      {v.data ? (
        <dl class="facts">
          <dt>hostplane</dt><dd>{v.data.hostplane_version}</dd>
          <dt>System version</dt><dd>{v.data.version ?? '–'}</dd>
          <dt>Installed</dt><dd>{when(v.data.installed_at)}</dd>
          <dt>Last update</dt><dd>{u.data ? `${u.data.status ?? '–'} ${u.data.version ?? ''}` : 'none'}</dd>
        </dl>
      ) : (
        <Pending failed={v.failed} what="the version" />
      )}
      <form onSubmit={upload}>
        <label>Update package<input name="package" type="file" required /></label>
        <button type="submit">Apply update</button>
      </form>
    </section>
  );
}

function Certificate() {
  const c = useApi(() => api.GET('/api/v1/system/certificate', {}), ['/api/v1/system'], true);
  async function replace(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    if (await act(api.PUT('/api/v1/system/certificate', { body: { certificate: f.certificate!, private_key: f.key!, ca: f.ca ?? null } }), 'Certificate replaced.')) {
      form.reset();
      c.reload();
    }
  }
  const d = c.data;
  return (
    <section class="card" aria-labelledby="cert-h">
      <h2 id="cert-h">HTTPS certificate</h2>
      {d ? (
        <dl class="facts">
          <dt>Subject</dt><dd>{d.subject}</dd>
          <dt>Issuer</dt><dd>{d.issuer}{d.self_signed ? ' (self-signed)' : ''}</dd>
          <dt>Valid until</dt><dd>{when(d.not_after)}</dd>
          <dt>Names</dt><dd>{[...(d.dns_names ?? []), ...(d.ip_addresses ?? [])].join(', ') || '–'}</dd>
        </dl>
      ) : (
        <p class="muted">{c.failed ? 'No certificate (the daemon listens without TLS).' : 'Loading…'}</p>
      )}
      <details>
        <summary>Replace the certificate</summary>
        <form onSubmit={replace}>
          <label>Certificate (PEM)<textarea name="certificate" rows={3} required /></label>
          <label>Private key (PEM)<textarea name="key" rows={3} required /></label>
          <label>CA chain (PEM, optional)<textarea name="ca" rows={2} /></label>
          <button type="submit">Replace certificate</button>
        </form>
      </details>
    </section>
  );
}

function License() {
  const l = useApi(() => api.GET('/api/v1/system/license', {}), ['/api/v1/system'], true);
  async function install(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    if (await act(api.PUT('/api/v1/system/license', { body: { license: f.license! } }), 'Licence installed.')) {
      form.reset();
      l.reload();
    }
  }
  const d = l.data;
  return (
    <section class="card" aria-labelledby="lic-h">
      <h2 id="lic-h">Licence</h2>
      {d ? (
        <dl class="facts">
          <dt>Licensee</dt><dd>{d.name}</dd>
          <dt>Application</dt><dd>{d.app}</dd>
          <dt>Users</dt><dd>{d.users}</dd>
          <dt>Expires</dt><dd>{d.expires}{d.expired ? ' (expired)' : ''}</dd>
        </dl>
      ) : (
        <p class="muted">{l.failed ? 'No licence installed.' : 'Loading…'}</p>
      )}
      <details>
        <summary>Install a licence</summary>
        <form onSubmit={install}>
          <label>Licence file contents<textarea name="license" rows={3} required /></label>
          <button type="submit">Install licence</button>
        </form>
      </details>
    </section>
  );
}

function Backups() {
  const list = useApi(() => api.GET('/api/v1/system/backups', {}), ['/api/v1/system']);
  return (
    <section aria-labelledby="bk-h">
      <h2 id="bk-h">Backups</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} backups</caption>
          <thead><tr><th scope="col">Made</th><th scope="col">By</th><th scope="col">Status</th><th scope="col">Size</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((b) => {
              const p = { params: { path: { id: b.id! } } };
              return (
                <tr key={b.id}>
                  <th scope="row">{when(b.created_at)}</th><td>{b.created_by}</td><td><span class={`badge ${b.status}`}>{b.status}</span></td><td>{bytes(b.size_bytes)}</td>
                  <td class="buttons">
                    {b.status === 'success' && <a href={`/api/v1/system/backups/${b.id}/download`} download>Download</a>}
                    <button type="button" aria-label={`Restore backup of ${when(b.created_at)}`} onClick={() => act(api.POST('/api/v1/system/backups/{id}/restore', p), 'Restore started: see the jobs panel.')}>Restore</button>
                    <button type="button" class="danger" aria-label={`Delete backup of ${when(b.created_at)}`} onClick={() => act(api.DELETE('/api/v1/system/backups/{id}', p), 'Backup deleted.').then(list.reload)}>Delete</button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the backups" />
      )}
      <button type="button" onClick={() => act(api.POST('/api/v1/system/backups', {}), 'Backup started: see the jobs panel.').then(list.reload)}>Make a backup</button>
    </section>
  );
}

function Reboot() {
  const [asking, setAsking] = useState(false);
  return (
    <section aria-labelledby="reboot-h">
      <h2 id="reboot-h">Reboot</h2>
      {asking ? (
        <p class="buttons">
          <span>The host backs up, then reboots: every VM and container stops.</span>
          <button type="button" class="danger" onClick={() => act(api.POST('/api/v1/system/reboot', {}), 'Reboot started: see the jobs panel.').then(() => setAsking(false))}>Reboot now</button>
          <button type="button" onClick={() => setAsking(false)}>Cancel</button>
        </p>
      ) : (
        <button type="button" class="danger" onClick={() => setAsking(true)}>Reboot the host…</button>
      )}
    </section>
  );
}
