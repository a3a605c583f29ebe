// Containers, continued: the create form (POST /containers/{engine}: image, name, command, env,
// ports, volumes, bind mounts, network, limits, restart policy; optionally started at once) and
// an engine's volumes and networks (list, create, delete).
import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api/client';
import { act, useApi, when } from '../hooks';
import { formValues, Pending } from '../ui';
import { toast } from '../store';

const lines = (s?: string) => (s ?? '').split('\n').map((l) => l.trim()).filter(Boolean);

/** `KEY=value` lines. */
function env(s?: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of lines(s)) {
    const i = l.indexOf('=');
    if (i < 1) throw new Error(`environment: "${l}" is not KEY=value`);
    out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

/** `[host_ip:]host_port:container_port[/udp]` or `container_port[/udp]` lines. */
function ports(s?: string): Schemas['PortMapping'][] {
  return lines(s).map((l) => {
    const [spec, proto] = l.split('/');
    const parts = (spec ?? '').split(':');
    const num = (x?: string) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`ports: "${l}" is not [host:]port[:port][/udp]`);
      return n;
    };
    const container_port = num(parts[parts.length - 1]);
    const host_port = parts.length > 1 ? num(parts[parts.length - 2]) : null;
    const host_ip = parts.length > 2 ? parts.slice(0, -2).join(':') : null;
    return { container_port, host_port, host_ip, protocol: proto === 'udp' ? 'udp' : 'tcp' };
  });
}

/** `source:/target[:ro]` lines. */
function mounts(s?: string): { source: string; target: string; read_only: boolean }[] {
  return lines(s).map((l) => {
    const p = l.split(':');
    const ro = p[p.length - 1] === 'ro';
    if (ro) p.pop();
    if (p.length !== 2 || !p[0] || !p[1]) throw new Error(`"${l}" is not source:/target[:ro]`);
    return { source: p[0], target: p[1], read_only: ro };
  });
}

export function CreateContainer({ engines }: { engines: string[] }) {
  const [busy, setBusy] = useState(false);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const start = (form.elements.namedItem('start') as HTMLInputElement).checked;
    const f = formValues(e);
    let body: Schemas['ContainerCreate'];
    try {
      body = {
        name: f.name!,
        image: f.image!,
        cmd: f.cmd ? f.cmd.split(/\s+/) : null,
        env: env(f.env),
        ports: ports(f.ports),
        volumes: mounts(f.volumes).map((m) => ({ name: m.source, target: m.target, read_only: m.read_only })),
        mounts: mounts(f.mounts),
        network: f.network ?? null,
        restart: { name: (f.restart ?? 'no') as Schemas['RestartPolicyName'] },
        limits: {
          cpus: f.cpus ? Number(f.cpus) : null,
          memory_bytes: f.memory ? Math.round(Number(f.memory) * 1024 * 1024) : null,
          pids: f.pids ? Number(f.pids) : null,
        },
      };
    } catch (err) {
      toast(err instanceof Error ? err.message : String(err));
      return;
    }
    const engine = f.engine ?? engines[0]!;
    setBusy(true);
    const path = { params: { path: { engine, name: body.name } } };
    const ok = await act(api.POST('/api/v1/containers/{engine}', { params: { path: { engine } }, body }), start ? undefined : `Container ${body.name} created.`);
    if (ok && start) await act(api.POST('/api/v1/containers/{engine}/{name}/start', path), `Container ${body.name} created and started.`);
    setBusy(false);
    if (ok) form.reset();
  }
  return (
    <section aria-labelledby="create-ct-h">
      <h2 id="create-ct-h">Create a container</h2>
      <form onSubmit={create} aria-busy={busy}>
        <div class="row">
          <label>Engine<select name="engine">{engines.map((e) => <option key={e}>{e}</option>)}</select></label>
          <label>Container name<input name="name" required maxLength={64} /></label>
          <label>Image<input name="image" required placeholder="localhost/app:latest" /></label>
          <label>Command (empty: the image's)<input name="cmd" placeholder="sleep 600" /></label>
        </div>
        <div class="row">
          <label>Environment (KEY=value lines)<textarea name="env" rows={3} /></label>
          <label>Ports ([host:]port:container_port[/udp] lines)<textarea name="ports" rows={3} placeholder="8080:80" /></label>
        </div>
        <div class="row">
          <label>Volumes (name:/path[:ro] lines)<textarea name="volumes" rows={2} placeholder="data:/data" /></label>
          <label>Bind mounts, admin only (/host:/path[:ro] lines)<textarea name="mounts" rows={2} /></label>
        </div>
        <div class="row">
          <label>Network (empty: the engine's default)<input name="network" placeholder="none, host, bridge or a name" /></label>
          <label>Restart policy<select name="restart">{['no', 'always', 'unless-stopped', 'on-failure'].map((r) => <option key={r}>{r}</option>)}</select></label>
          <label>CPUs<input name="cpus" type="number" step="0.01" min="0.01" /></label>
          <label>Memory limit (MiB)<input name="memory" type="number" min="6" /></label>
          <label>Process limit<input name="pids" type="number" min="1" /></label>
        </div>
        <label class="check"><input type="checkbox" name="start" /> Start it once created</label>
        <button type="submit" disabled={busy}>Create container</button>
      </form>
    </section>
  );
}

export function Volumes({ engine }: { engine: string }) {
  const p = { params: { path: { engine } } };
  const list = useApi(() => api.GET('/api/v1/container-engines/{engine}/volumes', p), [`/api/v1/container-engines/${engine}`]);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    if (await act(api.POST('/api/v1/container-engines/{engine}/volumes', { ...p, body: { name: f.name! } }), 'Volume created.')) {
      form.reset();
      list.reload();
    }
  }
  return (
    <>
      {list.data ? (
        <table>
          <caption>{list.data.length} volumes in {engine}</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Driver</th><th scope="col">Mount point</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((v) => (
              <tr key={v.name}>
                <th scope="row">{v.name}</th><td>{v.driver}</td><td><code>{v.mountpoint}</code></td><td>{when(v.created_at)}</td>
                <td><button type="button" class="danger" aria-label={`Delete volume ${v.name}`} onClick={() => act(api.DELETE('/api/v1/container-engines/{engine}/volumes/{name}', { params: { path: { engine, name: v.name! } } }), 'Volume deleted.').then(list.reload)}>Delete</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the volumes" />
      )}
      <form class="inline" onSubmit={create}>
        <label>Volume name<input name="name" required /></label>
        <button type="submit">Create volume</button>
      </form>
    </>
  );
}

export function Networks({ engine }: { engine: string }) {
  const p = { params: { path: { engine } } };
  const list = useApi(() => api.GET('/api/v1/container-engines/{engine}/networks', p), [`/api/v1/container-engines/${engine}`]);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const internal = (form.elements.namedItem('internal') as HTMLInputElement).checked;
    const f = formValues(e);
    if (await act(api.POST('/api/v1/container-engines/{engine}/networks', { ...p, body: { name: f.name!, subnet: f.subnet ?? null, internal } }), 'Network created.')) {
      form.reset();
      list.reload();
    }
  }
  return (
    <>
      {list.data ? (
        <table>
          <caption>{list.data.length} networks in {engine}</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Driver</th><th scope="col">Subnets</th><th scope="col">Internal</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((n) => (
              <tr key={n.id}>
                <th scope="row">{n.name}</th><td>{n.driver}</td><td>{n.subnets?.join(', ') || '–'}</td><td>{n.internal ? 'yes' : 'no'}</td>
                <td>{!n.predefined && <button type="button" class="danger" aria-label={`Delete network ${n.name}`} onClick={() => act(api.DELETE('/api/v1/container-engines/{engine}/networks/{name}', { params: { path: { engine, name: n.name! } } }), 'Network deleted.').then(list.reload)}>Delete</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the networks" />
      )}
      <form class="inline" onSubmit={create}>
        <label>Network name<input name="name" required /></label>
        <label>Subnet (CIDR, optional)<input name="subnet" placeholder="10.89.5.0/24" /></label>
        <label class="check"><input type="checkbox" name="internal" /> Internal</label>
        <button type="submit">Create network</button>
      </form>
    </>
  );
}
