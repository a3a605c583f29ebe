// Provisioning (a lazy chunk): recipes (list, view with a dry run, create and edit with a step
// editor), profiles (list, create, edit), secrets (names only), artifacts (upload with a
// progress bar, delete), runs (start on a VM, a run's steps live from the job events, Retry on a
// failed one) and template registries (add, browse organisations → boxes → versions, pull).
//
// Routes: #/provisioning (tabs), #/provisioning/runs/<id> (a run), #/provisioning/start/<vm> (the
// start form for a VM, linked from the VM's page).
import { useEffect, useState } from 'preact/hooks';
import { api, apiToken, problemText, type Schemas } from '../api/client';
import { act, bytes, useApi, when } from '../hooks';
import { formValues, Pending, Tabs } from '../ui';
import { jobs, toast } from '../store';
import type { PageProps } from '../app';
import { Registries } from './provisioning-registries';

type Step = Schemas['RecipeStep'];
type Recipe = Schemas['Recipe'];
type Profile = Schemas['Profile'];

/** `KEY=value` lines → a map (blank lines ignored). */
export function kv(text?: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of (text ?? '').split('\n')) {
    const i = l.indexOf('=');
    if (l.trim() && i > 0) out[l.slice(0, i).trim()] = l.slice(i + 1).trim();
  }
  return out;
}
const kvText = (m?: Record<string, string> | null) => Object.entries(m ?? {}).map(([k, v]) => `${k}=${v}`).join('\n');
const lines = (t?: string) => (t ?? '').split('\n').map((s) => s.trim()).filter(Boolean);

export default function Provisioning({ args }: PageProps) {
  if (args[0] === 'runs' && args[1]) return <RunView id={args[1]} />;
  const start = args[0] === 'start' ? args[1] : undefined;
  return (
    <Tabs
      id="prov"
      initial={start ? 3 : 0}
      tabs={[
        { label: 'Recipes', body: () => <Recipes /> },
        { label: 'Profiles', body: () => <Profiles /> },
        { label: 'Artifacts and secrets', body: () => (<><Artifacts /><Secrets /></>) },
        { label: 'Runs', body: () => (<><StartRun vm={start} /><Runs /></>) },
        { label: 'Template registries', body: () => <Registries /> },
      ]}
    />
  );
}

// ---- recipes

function Recipes() {
  const list = useApi(() => api.GET('/api/v1/provisioning/recipes', {}), ['/api/v1/provisioning/recipes']);
  const [open, setOpen] = useState<string | null>(null);
  const [edit, setEdit] = useState<Recipe | 'new' | null>(null);
  const cur = list.data?.find((r) => r.id === open) as Recipe | undefined;
  return (
    <>
      <section aria-labelledby="rcp-h">
        <h2 id="rcp-h">Recipes</h2>
        {list.data ? (
          <table>
            <caption>{list.data.length} recipes</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">OS family</th><th scope="col">Steps</th><th scope="col">Variables</th><th scope="col">Shipped</th><th scope="col">Actions</th></tr></thead>
            <tbody>
              {list.data.map((r) => (
                <tr key={r.id}>
                  <th scope="row">{r.name}</th><td>{r.os_family || '–'}</td><td>{r.steps?.length}</td><td>{r.variables?.map((v) => v.name).join(', ') || '–'}</td><td>{r.builtin ? 'yes' : 'no'}</td>
                  <td class="buttons">
                    <button type="button" aria-label={`View recipe ${r.name}`} onClick={() => { setOpen(r.id!); setEdit(null); }}>View</button>
                    {!r.builtin && <button type="button" aria-label={`Edit recipe ${r.name}`} onClick={() => { setEdit(r as Recipe); setOpen(null); }}>Edit</button>}
                    {!r.builtin && <button type="button" class="danger" aria-label={`Delete recipe ${r.name}`} onClick={() => act(api.DELETE('/api/v1/provisioning/recipes/{id}', { params: { path: { id: r.id! } } }), 'Recipe deleted.').then(list.reload)}>Delete</button>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Pending failed={list.failed} what="the recipes" />
        )}
        <p><button type="button" onClick={() => { setEdit('new'); setOpen(null); }}>New recipe</button></p>
      </section>
      {cur && <RecipeView key={cur.id} r={cur} close={() => setOpen(null)} />}
      {edit && <RecipeEditor key={edit === 'new' ? 'new' : edit.id} r={edit === 'new' ? null : edit} done={() => { setEdit(null); list.reload(); }} />}
    </>
  );
}

/** One line per step, as the dry run shows them. */
function stepText(s: Step): string {
  switch (s.type) {
    case 'wait': return `wait for ${s.regex ? 'regex' : 'text'} ${JSON.stringify(s.pattern)}${s.timeout_secs != null ? ` (${s.timeout_secs} s)` : ''}`;
    case 'send': return `send ${JSON.stringify(s.text)}${s.newline === false ? ' (no Enter)' : ''}`;
    case 'command': return `run ${JSON.stringify(s.command)}${s.expect_exit?.length ? ` expecting exit ${s.expect_exit.join(' or ')}` : ''}`;
    case 'write_file': return `write ${s.path}${s.artifact ? ` from artifact ${s.artifact}` : ` (${(s.content ?? '').length} characters)`}${s.mode ? ` mode ${s.mode}` : ''}`;
    case 'delay': return `wait ${s.millis} ms`;
  }
}

function RecipeView({ r, close }: { r: Recipe; close: () => void }) {
  const [out, setOut] = useState<Schemas['RenderResult'] | null>(null);
  async function render(e: Event): Promise<void> {
    e.preventDefault();
    const { data, error, response } = await api.POST('/api/v1/provisioning/recipes/{id}/render', { params: { path: { id: r.id } }, body: { variables: kv((e.target as HTMLFormElement).vars.value) } });
    if (!data) return toast(problemText(error, response));
    setOut(data);
  }
  return (
    <section class="card" aria-labelledby="rcpv-h">
      <h2 id="rcpv-h">Recipe {r.name}</h2>
      <p>{r.description ?? ''} <button type="button" onClick={close}>Close recipe</button></p>
      <dl class="facts">
        <dt>Login prompt</dt><dd><code>{r.login_prompt ?? '–'}</code></dd>
        <dt>Shell prompt</dt><dd><code>{r.shell_prompt ?? '–'}</code></dd>
        <dt>Variables</dt><dd>{r.variables?.map((v) => `${v.name}${v.secret ? ' (secret)' : ''}${v.default != null ? ` = ${v.secret ? '…' : v.default}` : ''}`).join(', ') || '–'}</dd>
      </dl>
      <ol class="steps">{r.steps.map((s, i) => <li key={i}>{stepText(s)}</li>)}</ol>
      <h3>Dry run</h3>
      <form onSubmit={render}>
        <label>Variables (KEY=value lines)<textarea name="vars" class="code" rows={3} spellcheck={false} /></label>
        <button type="submit">Render</button>
      </form>
      {out && (
        <div aria-live="polite" data-render>
          <p>{out.unresolved.length ? <span class="error">Unresolved: {out.unresolved.join(', ')}</span> : 'Every variable has a value.'}</p>
          <ol class="steps" aria-label="Rendered steps">{out.steps.map((s, i) => <li key={i}>{stepText(s)}</li>)}</ol>
        </div>
      )}
    </section>
  );
}

const STEP_TYPES = ['wait', 'send', 'command', 'write_file', 'delay'] as const;
const blank = (t: Step['type']): Step =>
  t === 'wait' ? { type: t, pattern: '' } : t === 'send' ? { type: t, text: '' } : t === 'command' ? { type: t, command: '' } : t === 'write_file' ? { type: t, path: '' } : { type: t, millis: 1000 };

function RecipeEditor({ r, done }: { r: Recipe | null; done: () => void }) {
  const [steps, setSteps] = useState<Step[]>(r?.steps ?? [blank('wait')]);
  const set = (i: number, patch: Record<string, unknown>) => setSteps((xs) => xs.map((x, k) => (k === i ? ({ ...x, ...patch } as Step) : x)));
  const move = (i: number, d: number) =>
    setSteps((xs) => {
      const a = [...xs];
      if (i + d < 0 || i + d >= a.length) return a;
      [a[i], a[i + d]] = [a[i + d]!, a[i]!];
      return a;
    });
  async function save(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const secret = new Set((f.secrets ?? '').split(/[ ,]+/).filter(Boolean));
    const body: Schemas['RecipeSpec'] = {
      name: f.name!,
      description: f.description ?? null,
      os_family: f.os ?? '',
      login_prompt: f.login ?? null,
      shell_prompt: f.shell ?? null,
      variables: Object.entries(kv(form.vars.value)).map(([name, d]) => ({ name, default: d === '' ? null : d, secret: secret.has(name) })),
      steps,
    };
    const ok = r
      ? await act(api.PUT('/api/v1/provisioning/recipes/{id}', { params: { path: { id: r.id } }, body }), `Recipe ${body.name} saved.`)
      : await act(api.POST('/api/v1/provisioning/recipes', { body }), `Recipe ${body.name} created.`);
    if (ok) done();
  }
  const n = (v: string) => (v === '' ? null : Number(v));
  const val = (e: Event) => (e.target as HTMLInputElement).value;
  return (
    <section class="card" aria-labelledby="rcpe-h">
      <h2 id="rcpe-h">{r ? `Edit recipe ${r.name}` : 'New recipe'}</h2>
      <form onSubmit={save}>
        <div class="row">
          <label>Recipe name<input name="name" required maxLength={64} pattern="[a-z0-9][a-z0-9._\-]*" defaultValue={r?.name ?? ''} /></label>
          <label>OS family<input name="os" defaultValue={r?.os_family ?? ''} placeholder="linux" /></label>
          <label>Description<input name="description" defaultValue={r?.description ?? ''} /></label>
          <label>Login prompt (regex)<input name="login" defaultValue={r?.login_prompt ?? ''} /></label>
          <label>Shell prompt (regex)<input name="shell" defaultValue={r?.shell_prompt ?? ''} /></label>
        </div>
        <label>Variables (name=default lines; name= for none)
          <textarea name="vars" class="code" rows={3} spellcheck={false} defaultValue={(r?.variables ?? []).map((v) => `${v.name}=${v.default ?? ''}`).join('\n')} />
        </label>
        <label>Secret variables (names)<input name="secrets" defaultValue={(r?.variables ?? []).filter((v) => v.secret).map((v) => v.name).join(' ')} /></label>
        <fieldset>
          <legend>Steps</legend>
          <ol class="steps edit">
            {steps.map((s, i) => {
              const p = `Step ${i + 1}`;
              return (
                <li key={i} data-step={i + 1}>
                  <div class="row">
                    <label>{p} type
                      <select value={s.type} onChange={(e) => setSteps((xs) => xs.map((x, k) => (k === i ? blank(val(e) as Step['type']) : x)))}>
                        {STEP_TYPES.map((t) => <option key={t} value={t}>{t}</option>)}
                      </select>
                    </label>
                    {s.type === 'wait' && (<>
                      <label>{p} pattern<input required value={s.pattern} onInput={(e) => set(i, { pattern: val(e) })} /></label>
                      <label class="check"><input type="checkbox" checked={!!s.regex} onChange={(e) => set(i, { regex: (e.target as HTMLInputElement).checked })} /> {p} is a regex</label>
                      <label>{p} timeout (s)<input type="number" min={0} value={s.timeout_secs ?? ''} onInput={(e) => set(i, { timeout_secs: n(val(e)) })} /></label>
                    </>)}
                    {s.type === 'send' && (<>
                      <label>{p} text<input value={s.text} onInput={(e) => set(i, { text: val(e) })} /></label>
                      <label class="check"><input type="checkbox" checked={s.newline !== false} onChange={(e) => set(i, { newline: (e.target as HTMLInputElement).checked })} /> {p}: press Enter</label>
                    </>)}
                    {s.type === 'command' && (<>
                      <label>{p} command<input required value={s.command} onInput={(e) => set(i, { command: val(e) })} /></label>
                      <label>{p} exit codes<input value={(s.expect_exit ?? []).join(' ')} placeholder="0" onInput={(e) => set(i, { expect_exit: val(e).split(/[ ,]+/).filter(Boolean).map(Number) })} /></label>
                      <label>{p} timeout (s)<input type="number" min={0} value={s.timeout_secs ?? ''} onInput={(e) => set(i, { timeout_secs: n(val(e)) })} /></label>
                    </>)}
                    {s.type === 'write_file' && (<>
                      <label>{p} path<input required value={s.path} onInput={(e) => set(i, { path: val(e) })} /></label>
                      <label>{p} artifact<input value={s.artifact ?? ''} onInput={(e) => set(i, { artifact: val(e) || null })} /></label>
                      <label>{p} content<textarea class="code" rows={2} value={s.content ?? ''} onInput={(e) => set(i, { content: val(e) || null })} /></label>
                      <label>{p} mode<input value={s.mode ?? ''} placeholder="0644" onInput={(e) => set(i, { mode: val(e) || null })} /></label>
                    </>)}
                    {s.type === 'delay' && <label>{p} milliseconds<input type="number" min={0} required value={s.millis} onInput={(e) => set(i, { millis: Number(val(e)) })} /></label>}
                  </div>
                  <p class="buttons">
                    <button type="button" aria-label={`Move step ${i + 1} up`} disabled={i === 0} onClick={() => move(i, -1)}>Up</button>
                    <button type="button" aria-label={`Move step ${i + 1} down`} disabled={i === steps.length - 1} onClick={() => move(i, 1)}>Down</button>
                    <button type="button" class="danger" aria-label={`Remove step ${i + 1}`} onClick={() => setSteps((xs) => xs.filter((_, k) => k !== i))}>Remove</button>
                  </p>
                </li>
              );
            })}
          </ol>
          <button type="button" onClick={() => setSteps((xs) => [...xs, blank('command')])}>Add step</button>
        </fieldset>
        <p class="buttons">
          <button type="submit">{r ? 'Save recipe' : 'Create recipe'}</button>
          <button type="button" onClick={done}>Cancel</button>
        </p>
      </form>
    </section>
  );
}

// ---- profiles

function Profiles() {
  const list = useApi(() => api.GET('/api/v1/provisioning/profiles', {}), ['/api/v1/provisioning/profiles']);
  const recipes = useApi(() => api.GET('/api/v1/provisioning/recipes', {}));
  const [edit, setEdit] = useState<Profile | 'new' | null>(null);
  return (
    <>
      <section aria-labelledby="prf-h">
        <h2 id="prf-h">Profiles</h2>
        {list.data ? (
          <table>
            <caption>{list.data.length} profiles</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Recipe</th><th scope="col">Credential</th><th scope="col">Artifacts</th><th scope="col">Provisioners</th><th scope="col">Actions</th></tr></thead>
            <tbody>
              {list.data.map((p) => (
                <tr key={p.id}>
                  <th scope="row">{p.name}</th><td>{p.recipe}</td><td>{p.credential ? `${p.credential.username ?? '–'} / secret ${p.credential.secret}` : '–'}</td>
                  <td>{p.artifacts?.map((a) => `${a.artifact} → ${a.dest}`).join(', ') || '–'}</td><td>{p.provisioners?.length ?? 0}</td>
                  <td class="buttons">
                    <button type="button" aria-label={`Edit profile ${p.name}`} onClick={() => setEdit(p as Profile)}>Edit</button>
                    <button type="button" class="danger" aria-label={`Delete profile ${p.name}`} onClick={() => act(api.DELETE('/api/v1/provisioning/profiles/{id}', { params: { path: { id: p.id! } } }), 'Profile deleted.').then(list.reload)}>Delete</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Pending failed={list.failed} what="the profiles" />
        )}
        <p><button type="button" onClick={() => setEdit('new')}>New profile</button></p>
      </section>
      {edit && (
        <ProfileEditor key={edit === 'new' ? 'new' : edit.id} p={edit === 'new' ? null : edit} recipes={recipes.data?.map((r) => r.id!) ?? []} done={() => { setEdit(null); list.reload(); }} />
      )}
    </>
  );
}

type Prov = Schemas['Provisioner'];

/** Provisioners as text: `shell NAME` / `file ARTIFACT DEST [MODE]` headers, a shell's commands under it. */
function provText(ps: Prov[]): string {
  return ps
    .map((p) => (p.type === 'file' ? `file ${p.artifact} ${p.dest}${p.mode ? ` ${p.mode}` : ''}` : `shell ${p.name ?? ''}\n${(p.inline ?? []).map((c) => `  ${c}`).join('\n')}`))
    .join('\n');
}
function parseProv(t: string): Prov[] {
  const out: Prov[] = [];
  for (const raw of t.split('\n')) {
    if (!raw.trim()) continue;
    const cur = out[out.length - 1];
    if (/^\s/.test(raw) && cur?.type === 'shell') (cur.inline ??= []).push(raw.trim());
    else {
      const [kind, a, b, c] = raw.trim().split(/\s+/);
      if (kind === 'file') out.push({ type: 'file', artifact: a ?? '', dest: b ?? '', mode: c ?? null });
      else out.push({ type: 'shell', name: a ?? null, inline: [] });
    }
  }
  return out;
}

function ProfileEditor({ p, recipes, done }: { p: Profile | null; recipes: string[]; done: () => void }) {
  const secrets = useApi(() => api.GET('/api/v1/provisioning/secrets', {}));
  async function save(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const body: Schemas['ProfileSpec'] = {
      name: f.name!,
      recipe: f.recipe!,
      variables: kv(form.vars.value),
      credential: f.secret ? { secret: f.secret, username: f.username ?? null } : null,
      artifacts: lines(form.artifacts.value).map((l) => {
        const [artifact, dest, mode] = l.split(/\s+/);
        return { artifact: artifact!, dest: dest ?? '', mode: mode ?? null };
      }),
      provisioners: parseProv(form.provisioners.value),
      transport: 'serial',
    };
    const ok = p
      ? await act(api.PUT('/api/v1/provisioning/profiles/{id}', { params: { path: { id: p.id } }, body }), `Profile ${body.name} saved.`)
      : await act(api.POST('/api/v1/provisioning/profiles', { body }), `Profile ${body.name} created.`);
    if (ok) done();
  }
  return (
    <section class="card" aria-labelledby="prfe-h">
      <h2 id="prfe-h">{p ? `Edit profile ${p.name}` : 'New profile'}</h2>
      <form onSubmit={save}>
        <div class="row">
          <label>Profile name<input name="name" required maxLength={64} pattern="[a-z0-9][a-z0-9._\-]*" defaultValue={p?.name ?? ''} /></label>
          <label>Recipe<select name="recipe" required>{recipes.map((r) => <option key={r} selected={r === p?.recipe}>{r}</option>)}</select></label>
          <label>Username<input name="username" defaultValue={p?.credential?.username ?? ''} /></label>
          <label>Password secret
            <select name="secret">
              <option value="">(none)</option>
              {secrets.data?.map((s) => <option key={s.id} selected={s.name === p?.credential?.secret}>{s.name}</option>)}
            </select>
          </label>
        </div>
        <label>Variables (KEY=value lines)<textarea name="vars" class="code" rows={3} spellcheck={false} defaultValue={kvText(p?.variables)} /></label>
        <label>Artifacts to place (lines: artifact /path/in/guest [mode])
          <textarea name="artifacts" class="code" rows={2} spellcheck={false} defaultValue={(p?.artifacts ?? []).map((a) => `${a.artifact} ${a.dest}${a.mode ? ` ${a.mode}` : ''}`).join('\n')} />
        </label>
        <label>Provisioners (a line <code>shell NAME</code> with indented commands under it, or <code>file ARTIFACT DEST [MODE]</code>)
          <textarea name="provisioners" class="code" rows={5} spellcheck={false} defaultValue={provText(p?.provisioners ?? [])} />
        </label>
        <p class="buttons">
          <button type="submit">{p ? 'Save profile' : 'Create profile'}</button>
          <button type="button" onClick={done}>Cancel</button>
        </p>
      </form>
    </section>
  );
}

// ---- artifacts and secrets

/** An upload with progress: XHR (fetch has no upload progress), with the tab's credential. */
function upload(url: string, file: File, progress: (pct: number) => void): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', url);
    x.setRequestHeader('content-type', 'application/octet-stream');
    const t = apiToken();
    if (t) x.setRequestHeader('authorization', `Bearer ${t}`);
    x.upload.onprogress = (e) => e.lengthComputable && progress(Math.round((100 * e.loaded) / e.total));
    x.onload = () => resolve({ status: x.status, body: x.responseText });
    x.onerror = () => reject(new Error('the upload failed'));
    x.send(file);
  });
}

function Artifacts() {
  const list = useApi(() => api.GET('/api/v1/provisioning/artifacts', {}), ['/api/v1/provisioning/artifacts']);
  const [pct, setPct] = useState<number | null>(null);
  async function send(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const file = (form.file as HTMLInputElement).files?.[0];
    if (!file) return;
    const q = new URLSearchParams({ name: f.name ?? file.name });
    if (f.sha256) q.set('sha256', f.sha256);
    setPct(0);
    try {
      const r = await upload(`/api/v1/provisioning/artifacts?${q}`, file, setPct);
      if (r.status === 201) {
        toast('Artifact uploaded.', 'info');
        form.reset();
        list.reload();
      } else {
        let p: unknown;
        try { p = JSON.parse(r.body); } catch { p = undefined; }
        toast(problemText(p, new Response(null, { status: r.status })));
      }
    } catch (err) {
      toast(String(err));
    } finally {
      setPct(null);
    }
  }
  return (
    <section aria-labelledby="art-h">
      <h2 id="art-h">Artifacts</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} artifacts</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">sha256</th><th scope="col">Source</th><th scope="col">Added</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((a) => (
              <tr key={a.id}>
                <th scope="row">{a.name}</th><td>{bytes(a.size_bytes)}</td><td><code>{a.sha256?.slice(0, 16)}…</code></td><td>{a.source}</td><td>{when(a.created_at)}</td>
                <td><button type="button" class="danger" aria-label={`Delete artifact ${a.name}`} onClick={() => act(api.DELETE('/api/v1/provisioning/artifacts/{id}', { params: { path: { id: a.id! } } }), 'Artifact deleted.').then(list.reload)}>Delete</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the artifacts" />
      )}
      <form class="inline" onSubmit={send}>
        <label>File<input name="file" type="file" required /></label>
        <label>Artifact name (empty: the file's)<input name="name" /></label>
        <label>Expected sha256 (optional)<input name="sha256" pattern="[0-9a-fA-F]{64}" /></label>
        <button type="submit" disabled={pct !== null}>Upload artifact</button>
        {pct !== null && <progress max={100} value={pct} aria-label={`Upload: ${pct}%`} />}
      </form>
    </section>
  );
}

function Secrets() {
  const list = useApi(() => api.GET('/api/v1/provisioning/secrets', {}), ['/api/v1/provisioning/secrets']);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    if (await act(api.POST('/api/v1/provisioning/secrets', { body: { name: f.name!, value: form.value.value as string } }), 'Secret stored.')) {
      form.reset();
      list.reload();
    }
  }
  return (
    <section aria-labelledby="sec-h">
      <h2 id="sec-h">Secrets</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} secrets (values are never shown)</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Stored</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((s) => (
              <tr key={s.id}>
                <th scope="row">{s.name}</th><td>{when(s.created_at)}</td>
                <td><button type="button" class="danger" aria-label={`Delete secret ${s.name}`} onClick={() => act(api.DELETE('/api/v1/provisioning/secrets/{id}', { params: { path: { id: s.id! } } }), 'Secret deleted.').then(list.reload)}>Delete</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the secrets" />
      )}
      <form class="inline" onSubmit={create}>
        <label>Secret name<input name="name" required maxLength={64} /></label>
        <label>Value<input name="value" type="password" required autoComplete="new-password" /></label>
        <button type="submit">Store secret</button>
      </form>
    </section>
  );
}

// ---- runs

const SKIPPABLE = ['boot', 'setup', 'wait_ready', 'artifacts', 'provisioners'];

/** Start a run: POST /vms/{id}/provisioning answers its job, whose target is the run. */
function StartRun({ vm }: { vm?: string }) {
  const vms = useApi(() => api.GET('/api/v1/vms', {}));
  const profiles = useApi(() => api.GET('/api/v1/provisioning/profiles', {}));
  async function start(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const skip = SKIPPABLE.filter((s) => (form.elements.namedItem(`skip-${s}`) as HTMLInputElement).checked);
    const { data, error, response } = await api.POST('/api/v1/vms/{id}/provisioning', {
      params: { path: { id: f.vm! } },
      body: { profile: f.profile!, variables: kv(form.vars.value), skip },
    });
    if (!data) return toast(problemText(error, response));
    if (data.target) location.hash = `#/provisioning/runs/${data.target.split('/').pop()}`;
  }
  return (
    <section aria-labelledby="run-new-h">
      <h2 id="run-new-h">Start a run</h2>
      <form onSubmit={start}>
        <div class="row">
          <label>Virtual machine
            <select name="vm" required>
              {vms.data?.map((v) => <option key={v.id} value={v.id} selected={v.id === vm || v.name === vm}>{v.name}</option>)}
            </select>
          </label>
          <label>Profile
            <select name="profile" required>
              {profiles.data?.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
            </select>
          </label>
        </div>
        <label>Variables for this run (KEY=value lines)<textarea name="vars" class="code" rows={2} spellcheck={false} /></label>
        <fieldset class="tabs">
          <legend>Skip</legend>
          {SKIPPABLE.map((s) => <label key={s}><input type="checkbox" name={`skip-${s}`} /> {s}</label>)}
        </fieldset>
        <button type="submit">Start run</button>
      </form>
    </section>
  );
}

function Runs() {
  const list = useApi(() => api.GET('/api/v1/provisioning/runs', {}), ['/api/v1/provisioning/runs', '/api/v1/jobs']);
  const vms = useApi(() => api.GET('/api/v1/vms', {}));
  const vmName = (id?: string) => vms.data?.find((v) => v.id === id)?.name ?? id;
  return (
    <section aria-labelledby="runs-h">
      <h2 id="runs-h">Runs</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} runs</caption>
          <thead><tr><th scope="col">Run</th><th scope="col">VM</th><th scope="col">Profile</th><th scope="col">Status</th><th scope="col">Failed step</th><th scope="col">Attempts</th><th scope="col">Updated</th></tr></thead>
          <tbody>
            {[...list.data].reverse().map((r) => (
              <tr key={r.id}>
                <th scope="row"><a href={`#/provisioning/runs/${r.id}`}>{r.id}</a></th><td>{vmName(r.vm)}</td><td>{r.profile}</td>
                <td><span class={`badge ${r.status}`}>{r.status}</span></td><td>{r.failed_step ?? '–'}</td><td>{r.attempts}</td><td>{when(r.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the runs" />
      )}
    </section>
  );
}

const ms = (n?: number | null) => (n == null ? '–' : n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(1)} s`);

/** A run: refetched whenever its job changes (job events) — the steps fill in live. */
function RunView({ id }: { id: string }) {
  const run = useApi(() => api.GET('/api/v1/provisioning/runs/{id}', { params: { path: { id } } }), [`/api/v1/provisioning/runs/${id}`]);
  const r = run.data;
  useEffect(() => {
    if (!r) return;
    let last = '';
    return jobs.subscribe((m) => {
      // Every attempt's job targets the run: any change of one (status, progress) refetches.
      const sig = [...m.values()].filter((x) => x.target === r.href).map((x) => `${x.id}/${x.status}/${x.progress}`).join();
      if (sig !== last) {
        last = sig;
        run.reload();
      }
    });
  }, [r?.href]);
  if (!r) return <Pending failed={run.failed} what="this run" />;
  async function retry(): Promise<void> {
    if (await act(api.POST('/api/v1/provisioning/runs/{id}/retry', { params: { path: { id } } }), 'Retry started.')) run.reload();
  }
  return (
    <>
      <p><a href="#/provisioning">Provisioning</a></p>
      <section aria-labelledby="runv-h" data-run={r.id} data-status={r.status}>
        <h2 id="runv-h">Run {r.id} <span class={`badge ${r.status}`}>{r.status}</span></h2>
        <dl class="facts">
          <dt>VM</dt><dd><a href={`#/vms/${r.vm}`}>{r.vm}</a></dd>
          <dt>Profile</dt><dd>{r.profile}</dd>
          <dt>Attempts</dt><dd>{r.attempts}</dd>
          <dt>Started</dt><dd>{when(r.created_at)}</dd>
          <dt>Failed step</dt><dd>{r.failed_step ?? '–'}</dd>
        </dl>
        {r.status === 'failed' && <p><button type="button" onClick={retry}>Retry from {r.failed_step ?? 'the failed step'}</button></p>}
        <table>
          <caption>Steps of the run</caption>
          <thead><tr><th scope="col">Step</th><th scope="col">Status</th><th scope="col">Exit code</th><th scope="col">Duration</th><th scope="col">Error</th></tr></thead>
          <tbody>
            {(r.steps ?? []).map((s) => (
              <tr key={s.name} data-step={s.name}>
                <th scope="row">{s.name}</th><td><span class={`badge ${s.status}`}>{s.status}</span></td><td>{s.exit_code ?? '–'}</td><td>{ms(s.duration_ms)}</td><td>{s.error ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {(r.steps ?? []).filter((s) => s.log).map((s) => (
          <details key={s.name} open={s.status === 'failed' || s.status === 'running'}>
            <summary>Log of {s.name}</summary>
            <pre class="log tall" tabIndex={0} aria-label={`Log of ${s.name}`}>{s.log}</pre>
          </details>
        ))}
      </section>
    </>
  );
}
