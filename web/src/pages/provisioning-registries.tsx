// Template registries (part of the Provisioning chunk): Vagrant box registries (BoxVault,
// Vagrant Cloud) — list, add (the token is write-only), remove; browse a registry's
// organisations → boxes → versions with their providers; pull a version into a new VM template
// (a job, followed in the jobs panel).
import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api/client';
import { act, useApi, when } from '../hooks';
import { formValues, Pending } from '../ui';

export function Registries() {
  const list = useApi(() => api.GET('/api/v1/template-registries', {}), ['/api/v1/template-registries']);
  const [browse, setBrowse] = useState<string | null>(null);
  async function add(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const body: Schemas['TemplateRegistryCreate'] = { name: f.name!, kind: (f.kind ?? 'boxvault') as Schemas['RegistryKind'], url: f.url!, token: f.token ?? null };
    if (await act(api.POST('/api/v1/template-registries', { body }), `Registry ${body.name} added.`)) {
      form.reset();
      list.reload();
    }
  }
  return (
    <>
      <section aria-labelledby="reg-h">
        <h2 id="reg-h">Template registries</h2>
        {list.data ? (
          <table>
            <caption>{list.data.length} template registries</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">URL</th><th scope="col">Token</th><th scope="col">Updated</th><th scope="col">Actions</th></tr></thead>
            <tbody>
              {list.data.map((r) => (
                <tr key={r.name}>
                  <th scope="row">{r.name}</th><td>{r.kind}</td><td>{r.url}</td><td>{r.has_token ? 'stored' : 'none'}</td><td>{when(r.updated_at)}</td>
                  <td class="buttons">
                    <button type="button" aria-label={`Browse ${r.name}`} onClick={() => setBrowse(r.name!)}>Browse</button>
                    <button type="button" class="danger" aria-label={`Remove registry ${r.name}`} onClick={() => act(api.DELETE('/api/v1/template-registries/{name}', { params: { path: { name: r.name! } } }), 'Registry removed.').then(list.reload)}>Remove</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Pending failed={list.failed} what="the template registries" />
        )}
        <form class="inline" onSubmit={add}>
          <label>Registry name<input name="name" required maxLength={64} /></label>
          <label>Kind<select name="kind"><option value="boxvault">BoxVault</option><option value="vagrant_cloud">Vagrant Cloud</option></select></label>
          <label>Base URL<input name="url" type="url" required placeholder="https://boxvault.example.com" /></label>
          <label>API token (optional)<input name="token" type="password" autoComplete="off" /></label>
          <button type="submit">Add registry</button>
        </form>
      </section>
      {browse && <Browse key={browse} name={browse} close={() => setBrowse(null)} />}
    </>
  );
}

function Browse({ name, close }: { name: string; close: () => void }) {
  const [org, setOrg] = useState<string | null>(null);
  const [box, setBox] = useState<string | null>(null);
  const orgs = useApi(() => api.GET('/api/v1/template-registries/{name}/organizations', { params: { path: { name } } }));
  return (
    <section class="card" aria-labelledby="regb-h">
      <h2 id="regb-h">Browse {name}</h2>
      <p><button type="button" onClick={close}>Close {name}</button></p>
      {orgs.data ? (
        <ul class="pick" aria-label={`Organisations in ${name}`}>
          {orgs.data.map((o) => (
            <li key={o.name}>
              <button type="button" class="link" aria-pressed={org === o.name} onClick={() => { setOrg(o.name!); setBox(null); }}>{o.name}</button> {o.description ?? ''}
            </li>
          ))}
        </ul>
      ) : (
        <Pending failed={orgs.failed} what="the organisations" />
      )}
      {org && <Boxes key={org} name={name} org={org} box={box} pick={setBox} />}
      {org && box && <Versions key={`${org}/${box}`} name={name} org={org} box={box} />}
    </section>
  );
}

function Boxes({ name, org, box, pick }: { name: string; org: string; box: string | null; pick: (b: string) => void }) {
  const boxes = useApi(() => api.GET('/api/v1/template-registries/{name}/organizations/{org}/boxes', { params: { path: { name, org } } }));
  if (!boxes.data) return <Pending failed={boxes.failed} what="the boxes" />;
  return (
    <>
      <h3>Boxes of {org}</h3>
      <ul class="pick" aria-label={`Boxes of ${org}`}>
        {boxes.data.map((b) => (
          <li key={b.name}>
            <button type="button" class="link" aria-pressed={box === b.name} onClick={() => pick(b.name!)}>{b.name}</button> {b.description ?? ''}
          </li>
        ))}
      </ul>
    </>
  );
}

function Versions({ name, org, box }: { name: string; org: string; box: string }) {
  const versions = useApi(() => api.GET('/api/v1/template-registries/{name}/organizations/{org}/boxes/{box}/versions', { params: { path: { name, org, box } } }));
  async function pull(e: Event, version: string): Promise<void> {
    const f = formValues(e);
    const body: Schemas['TemplatePull'] = { template: f.template!, organization: org, box, version, provider: f.provider ?? null, architecture: f.arch ?? null };
    await act(api.POST('/api/v1/template-registries/{name}/pull', { params: { path: { name } }, body }), `Pulling ${box} ${version} (see the jobs panel).`);
  }
  if (!versions.data) return <Pending failed={versions.failed} what="the versions" />;
  return (
    <table>
      <caption>Versions of {org}/{box}</caption>
      <thead><tr><th scope="col">Version</th><th scope="col">Providers</th><th scope="col">Pull into a template</th></tr></thead>
      <tbody>
        {versions.data.map((v) => (
          <tr key={v.version}>
            <th scope="row">{v.version}</th>
            <td>{v.providers?.map((p) => `${p.name}${p.architecture ? ` (${p.architecture})` : ''}`).join(', ') || '–'}</td>
            <td>
              <form class="inline" onSubmit={(e) => pull(e, v.version!)}>
                <label>Template name for {v.version}<input name="template" required maxLength={64} defaultValue={`${box}-${v.version}`.replace(/[^A-Za-z0-9_.-]/g, '-')} /></label>
                <label>Provider<input name="provider" placeholder="libvirt" /></label>
                <label>Architecture<input name="arch" placeholder="amd64" /></label>
                <button type="submit" aria-label={`Pull ${box} ${v.version}`}>Pull</button>
              </form>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
