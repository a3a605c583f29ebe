// Virtual machines: the list with lifecycle buttons (a VM's page is #/vms/<id>), the create
// form (memory, vCPUs, disks on a storage, NICs, CD-ROM, cloud-init, template, or a direct
// kernel boot) and the templates.
import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api/client';
import { act, bytes, useApi, when } from '../hooks';
import { formValues, Pending } from '../ui';
import type { PageProps } from '../app';
import { VmDetail } from '../vm/detail';

export function Vms({ args }: PageProps) {
  if (args[0]) return <VmDetail id={args[0]} />;
  return (
    <>
      <VmList />
      <CreateVm />
      <Templates />
    </>
  );
}

type VmF = Schemas['VmFields'];

/** Start/stop/pause/resume/reset/shutdown of one VM: what its status allows. */
export function Lifecycle({ vm, done }: { vm: VmF; done?: () => void }) {
  const path = { params: { path: { id: vm.id! } } };
  const s = vm.status;
  const b = (label: string, on: boolean, f: () => Promise<{ error?: unknown; response: Response }>) => (
    <button type="button" disabled={!on} aria-label={`${label} ${vm.name}`} onClick={() => act(f(), `${vm.name}: ${label.toLowerCase()}`).then(done)}>
      {label}
    </button>
  );
  return (
    <span class="buttons">
      {b('Start', s === 'stopped', () => api.POST('/api/v1/vms/{id}/start', path))}
      {b('Shut down', s === 'running', () => api.POST('/api/v1/vms/{id}/shutdown', path))}
      {b('Stop', s !== 'stopped', () => api.POST('/api/v1/vms/{id}/stop', path))}
      {b('Pause', s === 'running', () => api.POST('/api/v1/vms/{id}/pause', path))}
      {b('Resume', s === 'paused', () => api.POST('/api/v1/vms/{id}/resume', path))}
      {b('Reset', s === 'running', () => api.POST('/api/v1/vms/{id}/reset', path))}
    </span>
  );
}

function VmList() {
  const vms = useApi(() => api.GET('/api/v1/vms', {}), ['/api/v1/vms']);
  if (!vms.data) return <Pending failed={vms.failed} what="the VMs" />;
  return (
    <table>
      <caption>{vms.data.length} virtual machines</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Status</th>
          <th scope="col">vCPUs</th>
          <th scope="col">Memory</th>
          <th scope="col">Disks</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        {vms.data.map((v) => (
          <tr key={v.id}>
            <th scope="row">
              <a href={`#/vms/${v.id}`}>{v.name}</a>
            </th>
            <td><span class={`badge ${v.status}`}>{v.status}</span></td>
            <td>{v.vcpus}</td>
            <td>{v.memory_mib} MiB</td>
            <td>{v.disks?.length ?? 0}</td>
            <td><Lifecycle vm={v} done={vms.reload} /></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type DiskRow = { size: string; storage: string; image: string };

type NicRow = { mode: Schemas['NicMode']; bridge: string; forwards: string };

/** `[tcp/|udp/]HOST:GUEST`, comma-separated; the form refuses anything else before it is sent. */
const FORWARDS_PATTERN = '\\s*((tcp|udp)/)?[0-9]{1,5}:[0-9]{1,5}(\\s*,\\s*((tcp|udp)/)?[0-9]{1,5}:[0-9]{1,5})*\\s*';

function parseForwards(text: string): Schemas['NicPortForward'][] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const [proto, ports] = s.includes('/') ? s.split('/', 2) : ['tcp', s];
      const [host, guest] = ports!.split(':', 2);
      return { protocol: proto as Schemas['ForwardProtocol'], host_port: Number(host), guest_port: Number(guest) };
    });
}

function CreateVm() {
  const templates = useApi(() => api.GET('/api/v1/vms/templates', {}), ['/api/v1/vms/templates']);
  const [disks, setDisks] = useState<DiskRow[]>([{ size: '8', storage: '', image: '' }]);
  const [nics, setNics] = useState<NicRow[]>([{ mode: 'user', bridge: '', forwards: '' }]);
  const [busy, setBusy] = useState(false);
  async function submit(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const body: Schemas['VmCreate'] = {
      name: f.name!,
      memory_mib: Number(f.memory ?? 512),
      vcpus: Number(f.vcpus ?? 1),
      accelerator: (f.accelerator as Schemas['Accelerator']) ?? 'auto',
      storage: f.storage ?? null,
      template: f.template ?? null,
      disks: disks
        .filter((d) => d.image || Number(d.size) > 0)
        .map((d) => (d.image ? { image: d.image, storage: d.storage || null } : { size_bytes: Math.round(Number(d.size) * 1024 ** 3), storage: d.storage || null })),
      nics: nics.map((n) => ({
        mode: n.mode,
        bridge: n.mode === 'bridge' ? n.bridge : null,
        port_forwards: n.mode === 'user' ? parseForwards(n.forwards) : [],
      })),
      cdroms: f.iso ? [{ iso: f.iso }] : [],
      cloud_init: f.user_data ? { user_data: f.user_data } : null,
      kernel: f.kernel ?? null,
      initrd: f.initrd ?? null,
      cmdline: f.cmdline ?? null,
    };
    setBusy(true);
    const ok = await act(api.POST('/api/v1/vms', { body }), `VM ${body.name} created.`);
    setBusy(false);
    if (ok) form.reset();
  }
  const setDisk = (i: number, k: keyof DiskRow, v: string) => setDisks(disks.map((d, j) => (i === j ? { ...d, [k]: v } : d)));
  return (
    <section class="card form" aria-labelledby="create-vm-h">
      <h2 id="create-vm-h">Create a virtual machine</h2>
      <form onSubmit={submit}>
        <div class="row">
          <label>VM name<input name="name" required maxLength={63} pattern="[A-Za-z0-9][A-Za-z0-9_.\-]*" /></label>
          <label>Memory (MiB)<input name="memory" type="number" min={16} step={16} defaultValue="512" /></label>
          <label>vCPUs<input name="vcpus" type="number" min={1} max={64} defaultValue="1" /></label>
          <label>
            Accelerator
            <select name="accelerator">
              <option value="auto">auto</option>
              <option value="kvm">kvm</option>
              <option value="tcg">tcg (emulation)</option>
            </select>
          </label>
        </div>
        <div class="row">
          <label>Storage (images or pool/dataset)<input name="storage" placeholder="images" /></label>
          <label>
            Template
            <select name="template">
              <option value="">none</option>
              {templates.data?.map((t) => <option key={t.name} value={t.name}>{t.name}</option>)}
            </select>
          </label>
        </div>
        <fieldset>
          <legend>Disks</legend>
          {disks.map((d, i) => (
            <div class="row" key={i}>
              <label>Disk {i + 1} size (GiB)<input type="number" min={0} step="any" value={d.size} onInput={(e) => setDisk(i, 'size', (e.target as HTMLInputElement).value)} /></label>
              <label>Disk {i + 1} storage<input value={d.storage} placeholder="default" onInput={(e) => setDisk(i, 'storage', (e.target as HTMLInputElement).value)} /></label>
              <label>Disk {i + 1} existing image<input value={d.image} placeholder="(new disk)" onInput={(e) => setDisk(i, 'image', (e.target as HTMLInputElement).value)} /></label>
              <button type="button" class="link" onClick={() => setDisks(disks.filter((_, j) => j !== i))}>Remove disk {i + 1}</button>
            </div>
          ))}
          <button type="button" class="link" onClick={() => setDisks([...disks, { size: '8', storage: '', image: '' }])}>Add a disk</button>
        </fieldset>
        <fieldset>
          <legend>Network cards</legend>
          {nics.map((n, i) => (
            <div class="row" key={i}>
              <label>
                NIC {i + 1} mode
                <select value={n.mode} onChange={(e) => setNics(nics.map((x, j) => (i === j ? { ...x, mode: (e.target as HTMLSelectElement).value as Schemas['NicMode'] } : x)))}>
                  <option value="user">user (NAT)</option>
                  <option value="bridge">bridge</option>
                </select>
              </label>
              {n.mode === 'bridge' && (
                <label>NIC {i + 1} bridge<input required value={n.bridge} onInput={(e) => setNics(nics.map((x, j) => (i === j ? { ...x, bridge: (e.target as HTMLInputElement).value } : x)))} /></label>
              )}
              {n.mode === 'user' && (
                <label>
                  NIC {i + 1} port forwards (host port:guest port on 127.0.0.1, e.g. 2222:22, udp/5353:53)
                  <input
                    value={n.forwards}
                    placeholder="none"
                    pattern={FORWARDS_PATTERN}
                    onInput={(e) => setNics(nics.map((x, j) => (i === j ? { ...x, forwards: (e.target as HTMLInputElement).value } : x)))}
                  />
                </label>
              )}
              <button type="button" class="link" onClick={() => setNics(nics.filter((_, j) => j !== i))}>Remove NIC {i + 1}</button>
            </div>
          ))}
          <button type="button" class="link" onClick={() => setNics([...nics, { mode: 'user', bridge: '', forwards: '' }])}>Add a NIC</button>
        </fieldset>
        <label>CD-ROM ISO path<input name="iso" placeholder="/srv/iso/debian.iso" /></label>
        <details>
          <summary>Cloud-init and direct kernel boot</summary>
          <label>Cloud-init user-data<textarea name="user_data" rows={4} placeholder="#cloud-config" /></label>
          <label>Kernel<input name="kernel" /></label>
          <label>Initrd<input name="initrd" /></label>
          <label>Kernel command line<input name="cmdline" /></label>
        </details>
        <button type="submit" disabled={busy}>Create VM</button>
      </form>
    </section>
  );
}

function Templates() {
  const list = useApi(() => api.GET('/api/v1/vms/templates', {}), ['/api/v1/vms/templates']);
  async function upload(e: Event): Promise<void> {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const f = new FormData(form);
    const file = f.get('box') as File | null;
    const name = String(f.get('name') ?? '');
    if (!file || !file.size) return;
    const ok = await act(
      api.POST('/api/v1/vms/templates', {
        params: { query: { name } as never },
        body: file as never,
        bodySerializer: (b: unknown) => b as File,
        headers: { 'content-type': 'application/octet-stream' },
      }),
      'Template import started: see the jobs panel.',
    );
    if (ok) form.reset();
  }
  return (
    <section aria-labelledby="templates-h">
      <h2 id="templates-h">Templates</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} templates</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Format</th>
              <th scope="col">Size</th>
              <th scope="col">Source</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((t) => (
              <tr key={t.name}>
                <th scope="row">{t.name}</th>
                <td>{t.format}</td>
                <td>{bytes(t.size_bytes)}</td>
                <td>{t.source}</td>
                <td>{when(t.created_at)}</td>
                <td>
                  <button type="button" class="danger" aria-label={`Delete template ${t.name}`} onClick={() => act(api.DELETE('/api/v1/vms/templates/{name}', { params: { path: { name: t.name! } } }), 'Template deleted.').then(list.reload)}>Delete</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the templates" />
      )}
      <form class="card form" onSubmit={upload}>
        <label>Template name<input name="name" required maxLength={63} /></label>
        <label>Vagrant box (libvirt)<input name="box" type="file" required /></label>
        <button type="submit">Import template</button>
      </form>
    </section>
  );
}
