// Stacks (a lazy chunk): compose projects stored by the daemon. List with status and services;
// up, down, restart and pull run as jobs (followed in the jobs panel); create or edit the
// compose file and `.env` (a 422 — the YAML's line and column, or the finding's line — is shown
// under the editor); the stack's logs; delete.
import { useState } from 'preact/hooks';
import { api, problemText } from '../api/client';
import { act, useApi, when } from '../hooks';
import { formValues, Pending } from '../ui';
import { toast } from '../store';

type Action = 'up' | 'down' | 'restart' | 'pull';

export default function Stacks() {
  const list = useApi(() => api.GET('/api/v1/stacks', {}), ['/api/v1/stacks', '/api/v1/containers']);
  const engines = useApi(() => api.GET('/api/v1/container-engines', {}));
  const [edit, setEdit] = useState<string | null>(null);
  // Bumped after a save: the editor starts afresh (an empty create form).
  const [gen, setGen] = useState(0);
  const [logs, setLogs] = useState<{ name: string; text: string } | null>(null);
  const run = (name: string, a: Action) =>
    act(api.POST(`/api/v1/stacks/{name}/${a}`, { params: { path: { name } } }), `${name}: ${a} started (see the jobs panel).`);
  async function showLogs(name: string): Promise<void> {
    const { data, error, response } = await api.GET('/api/v1/stacks/{name}/logs', { params: { path: { name }, query: { tail: 200 } }, parseAs: 'text' });
    if (!response.ok) return toast(problemText(error, response));
    setLogs({ name, text: data ?? '' });
  }
  return (
    <>
      <section aria-labelledby="stacks-h">
        <h2 id="stacks-h">Stacks</h2>
        {list.data ? (
          <table>
            <caption>{list.data.length} stacks</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Engine</th><th scope="col">Status</th><th scope="col">Services</th><th scope="col">Containers</th><th scope="col">Updated</th><th scope="col">Actions</th></tr></thead>
            <tbody>
              {list.data.map((s) => (
                <tr key={s.name}>
                  <th scope="row">{s.name}</th><td>{s.engine}</td>
                  <td><span class={`badge ${s.status}`}>{s.status}</span>{s.engine_error ? ` ${s.engine_error}` : ''}</td>
                  <td>{s.services?.join(', ')}</td><td>{s.containers?.map((c) => `${c.name} (${c.state})`).join(', ') || '–'}</td><td>{when(s.updated_at)}</td>
                  <td class="buttons">
                    {(['up', 'down', 'restart', 'pull'] as Action[]).map((a) => (
                      <button key={a} type="button" aria-label={`${a} ${s.name}`} onClick={() => run(s.name!, a)}>{a[0]!.toUpperCase() + a.slice(1)}</button>
                    ))}
                    <button type="button" aria-label={`Edit ${s.name}`} onClick={() => setEdit(s.name!)}>Edit</button>
                    <button type="button" aria-label={`Logs of ${s.name}`} onClick={() => showLogs(s.name!)}>Logs</button>
                    <button type="button" class="danger" aria-label={`Delete ${s.name}`} onClick={() => act(api.DELETE('/api/v1/stacks/{name}', { params: { path: { name: s.name! } } }), 'Stack deleted.').then(list.reload)}>Delete</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Pending failed={list.failed} what="the stacks" />
        )}
      </section>
      {logs && (
        <section class="card" aria-labelledby="slog-h">
          <h2 id="slog-h">Logs of {logs.name}</h2>
          <p class="buttons">
            <button type="button" onClick={() => showLogs(logs.name)}>Refresh</button>
            <button type="button" onClick={() => setLogs(null)}>Close logs</button>
          </p>
          <pre class="log tall" tabIndex={0} aria-label={`Logs of ${logs.name}`}>{logs.text || '(empty)'}</pre>
        </section>
      )}
      <Editor
        key={`${edit ?? ''}/${gen}`}
        name={edit}
        engines={engines.data?.map((e) => e.name!) ?? []}
        done={() => {
          setEdit(null);
          setGen((g) => g + 1);
          list.reload();
        }}
      />
    </>
  );
}

const SAMPLE = 'services:\n  web:\n    image: localhost/app:latest\n';

/** Create (name null) or edit a stack's files; a 422 stays visible next to the editor. */
function Editor({ name, engines, done }: { name: string | null; engines: string[]; done: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const files = useApi(
    () => (name ? api.GET('/api/v1/stacks/{name}/files', { params: { path: { name } } }) : Promise.resolve({ data: { compose: SAMPLE, env: '' }, response: new Response('{}') })),
  );
  async function save(e: Event): Promise<void> {
    const f = formValues(e);
    const compose = (e.target as HTMLFormElement).compose.value as string;
    const env = f.env ? ((e.target as HTMLFormElement).env.value as string) : null;
    const r = name
      ? await api.PUT('/api/v1/stacks/{name}/files', { params: { path: { name } }, body: { compose, env } })
      : await api.POST('/api/v1/stacks', { body: { name: f.name!, engine: f.engine ?? engines[0] ?? '', compose, env } });
    if (r.response.ok) {
      setError(null);
      toast(name ? `Stack ${name} saved.` : `Stack ${f.name} created.`, 'info');
      done();
    } else {
      const msg = problemText(r.error, r.response);
      if (r.response.status === 422) setError(msg);
      else toast(msg);
    }
  }
  if (!files.data) return <Pending failed={files.failed} what="the stack's files" />;
  return (
    <section aria-labelledby="stack-ed-h">
      <h2 id="stack-ed-h">{name ? `Edit stack ${name}` : 'Create a stack'}</h2>
      <form onSubmit={save}>
        {!name && (
          <div class="row">
            <label>Stack name<input name="name" required maxLength={64} /></label>
            <label>Engine<select name="engine">{engines.map((e) => <option key={e}>{e}</option>)}</select></label>
          </div>
        )}
        <label>Compose file (YAML)
          <textarea name="compose" class="code" rows={14} required spellcheck={false} aria-invalid={error ? true : undefined} aria-describedby={error ? 'compose-err' : undefined} defaultValue={files.data.compose ?? ''} />
        </label>
        {error && <p id="compose-err" class="error" role="alert">{error}</p>}
        <label>.env (KEY=value lines, optional)
          <textarea name="env" class="code" rows={3} spellcheck={false} defaultValue={files.data.env ?? ''} />
        </label>
        <p class="buttons">
          <button type="submit">{name ? 'Save stack' : 'Create stack'}</button>
          {name && <button type="button" onClick={done}>Cancel editing</button>}
        </p>
      </form>
    </section>
  );
}
