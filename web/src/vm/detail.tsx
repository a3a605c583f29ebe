// One VM (#/vms/<id>): lifecycle, settings, tabs for disks, NICs, CD-ROMs, snapshots and the
// consoles, clone, export and screenshot links. Consoles load their chunk (noVNC or xterm)
// only when opened.
import { useEffect, useState } from 'preact/hooks';
import { api, type Schemas } from '../api/client';
import { act, bytes, useApi, when } from '../hooks';
import { formValues, Pending, Tabs } from '../ui';
import { Lifecycle } from '../pages/vms';
import type { ComponentType } from 'preact';
import { Term } from '../term/lazy';
import { ticketPath } from './ticket';

type Vm = Schemas['Vm'];

export function VmDetail({ id }: { id: string }) {
  const path = { params: { path: { id } } };
  const vm = useApi(() => api.GET('/api/v1/vms/{id}', path), [`/api/v1/vms/${id}`]);
  const v = vm.data as Vm | undefined;
  if (!v) return <Pending failed={vm.failed} what="this VM" />;
  return (
    <>
      <p><a href="#/vms">All virtual machines</a></p>
      <section aria-labelledby="vm-h">
        <h2 id="vm-h">{v.name} <span class={`badge ${v.status}`}>{v.status}</span></h2>
        <Lifecycle vm={v} done={vm.reload} />
        <dl class="facts">
          <dt>vCPUs</dt><dd>{v.vcpus}</dd>
          <dt>Memory</dt><dd>{v.memory_mib} MiB</dd>
          <dt>Machine</dt><dd>{v.machine}, {v.firmware}</dd>
          <dt>Accelerator</dt><dd>{v.accelerator}{v.accelerator_in_use ? ` (in use: ${v.accelerator_in_use})` : ''}</dd>
          <dt>Created</dt><dd>{when(v.created_at)}</dd>
          {v.pending_changes && (<><dt>Pending</dt><dd>changes apply at the next boot</dd></>)}
        </dl>
        <p class="buttons">
          <a href={`/api/v1/vms/${id}/screenshot`} target="_blank" rel="noopener">Screenshot (PNG)</a>
          {v.status === 'stopped' && <a href={`/api/v1/vms/${id}.tar.zst`} download>Export (.tar.zst)</a>}
          <a href={`#/provisioning/start/${id}`}>Provision this VM</a>
        </p>
      </section>
      <Tabs
        id="vm"
        tabs={[
          { label: 'Console', body: () => <Consoles id={id} running={v.status !== 'stopped'} /> },
          { label: 'Disks', body: () => <Disks vm={v} reload={vm.reload} /> },
          { label: 'Network cards', body: () => <Nics vm={v} reload={vm.reload} /> },
          { label: 'CD-ROM', body: () => <Cdroms vm={v} reload={vm.reload} /> },
          { label: 'Snapshots', body: () => <Snapshots id={id} /> },
          { label: 'Clone and delete', body: () => <CloneDelete vm={v} /> },
        ]}
      />
    </>
  );
}

function Disks({ vm, reload }: { vm: Vm; reload: () => void }) {
  const id = vm.id;
  async function add(e: Event): Promise<void> {
    const f = formValues(e);
    const body = f.image ? { image: f.image } : { size_bytes: Math.round(Number(f.size ?? 1) * 1024 ** 3), storage: f.storage ?? null };
    if (await act(api.POST('/api/v1/vms/{id}/disks', { params: { path: { id } }, body }), 'Disk added.')) reload();
  }
  return (
    <>
      <table>
        <caption>{vm.disks.length} disks</caption>
        <thead>
          <tr><th scope="col">#</th><th scope="col">Path</th><th scope="col">Format</th><th scope="col">Bus</th><th scope="col">Size</th><th scope="col">Storage</th><th scope="col">Actions</th></tr>
        </thead>
        <tbody>
          {vm.disks.map((d) => (
            <tr key={d.index}>
              <th scope="row">{d.index}</th>
              <td>{d.path}</td>
              <td>{d.format}</td>
              <td>{d.bus}</td>
              <td>{bytes(d.size_bytes)}</td>
              <td>{d.storage ?? '–'}</td>
              <td class="buttons">
                <a href={`/api/v1/vms/${id}/disks/${d.index}.${d.format}`} download>Download</a>
                <button type="button" aria-label={`Grow disk ${d.index} by 1 GiB`} onClick={() => act(api.POST('/api/v1/vms/{id}/disks/{n}/resize', { params: { path: { id, n: String(d.index) } }, body: { size_bytes: d.size_bytes + 1024 ** 3 } }), 'Disk grown.').then(reload)}>+1 GiB</button>
                <button type="button" class="danger" aria-label={`Remove disk ${d.index}`} onClick={() => act(api.DELETE('/api/v1/vms/{id}/disks/{n}', { params: { path: { id, n: String(d.index) } } }), 'Disk removed.').then(reload)}>Remove</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="inline" onSubmit={add}>
        <label>New disk size (GiB)<input name="size" type="number" min={0.01} step="any" defaultValue="1" /></label>
        <label>Storage<input name="storage" placeholder="default" /></label>
        <label>Or an existing image<input name="image" /></label>
        <button type="submit">Add disk</button>
      </form>
    </>
  );
}

function Nics({ vm, reload }: { vm: Vm; reload: () => void }) {
  const id = vm.id;
  async function add(e: Event): Promise<void> {
    const f = formValues(e);
    const mode = (f.mode ?? 'user') as Schemas['NicMode'];
    if (await act(api.POST('/api/v1/vms/{id}/nics', { params: { path: { id } }, body: { mode, bridge: mode === 'bridge' ? f.bridge : null } }), 'NIC added.')) reload();
  }
  return (
    <>
      <table>
        <caption>{vm.nics.length} network cards</caption>
        <thead><tr><th scope="col">#</th><th scope="col">MAC</th><th scope="col">Mode</th><th scope="col">Model</th><th scope="col">Bridge</th><th scope="col">Port forwards</th><th scope="col">Actions</th></tr></thead>
        <tbody>
          {vm.nics.map((n) => (
            <tr key={n.index}>
              <th scope="row">{n.index}</th><td>{n.mac}</td><td>{n.mode}</td><td>{n.model}</td><td>{n.bridge ?? '–'}</td>
              <td>{n.port_forwards?.length ? n.port_forwards.map((f) => `${f.protocol} 127.0.0.1:${f.host_port} → ${f.guest_port}`).join(', ') : '–'}</td>
              <td><button type="button" class="danger" aria-label={`Remove NIC ${n.index}`} onClick={() => act(api.DELETE('/api/v1/vms/{id}/nics/{n}', { params: { path: { id, n: n.index } } }), 'NIC removed.').then(reload)}>Remove</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="inline" onSubmit={add}>
        <label>Mode<select name="mode"><option value="user">user (NAT)</option><option value="bridge">bridge</option></select></label>
        <label>Bridge (bridge mode)<input name="bridge" /></label>
        <button type="submit">Add NIC</button>
      </form>
    </>
  );
}

function Cdroms({ vm, reload }: { vm: Vm; reload: () => void }) {
  const id = vm.id;
  async function add(e: Event): Promise<void> {
    const f = formValues(e);
    if (await act(api.POST('/api/v1/vms/{id}/cdroms', { params: { path: { id } }, body: { iso: f.iso ?? null } }), 'CD-ROM added.')) reload();
  }
  return (
    <>
      <table>
        <caption>{vm.cdroms.length} CD-ROM drives</caption>
        <thead><tr><th scope="col">#</th><th scope="col">ISO</th><th scope="col">Cloud-init seed</th><th scope="col">Actions</th></tr></thead>
        <tbody>
          {vm.cdroms.map((c) => (
            <tr key={c.index}>
              <th scope="row">{c.index}</th><td>{c.iso ?? '(empty)'}</td><td>{c.cloud_init ? 'yes' : 'no'}</td>
              <td><button type="button" class="danger" aria-label={`Remove CD-ROM ${c.index}`} onClick={() => act(api.DELETE('/api/v1/vms/{id}/cdroms/{n}', { params: { path: { id, n: c.index } } }), 'CD-ROM removed.').then(reload)}>Remove</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="inline" onSubmit={add}>
        <label>ISO path (empty: an empty drive)<input name="iso" /></label>
        <button type="submit">Add CD-ROM</button>
      </form>
    </>
  );
}

function Snapshots({ id }: { id: string }) {
  const path = { params: { path: { id } } };
  const list = useApi(() => api.GET('/api/v1/vms/{id}/snapshots', path), [`/api/v1/vms/${id}`]);
  async function take(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    if (await act(api.POST('/api/v1/vms/{id}/snapshots', { ...path, body: { name: f.name! } }), 'Snapshot started: see the jobs panel.')) form.reset();
  }
  return (
    <>
      {list.data ? (
        <table>
          <caption>{list.data.length} VM snapshots</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Taken</th><th scope="col">Memory state</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((s) => {
              const p = { params: { path: { id, name: s.name! } } };
              return (
                <tr key={s.name}>
                  <th scope="row">{s.name}</th><td>{when(s.created_at)}</td><td>{s.vm_state_bytes ? bytes(s.vm_state_bytes) : '–'}</td>
                  <td class="buttons">
                    <button type="button" aria-label={`Revert to ${s.name}`} onClick={() => act(api.POST('/api/v1/vms/{id}/snapshots/{name}/revert', p), 'Reverting: see the jobs panel.').then(list.reload)}>Revert</button>
                    <button type="button" class="danger" aria-label={`Delete VM snapshot ${s.name}`} onClick={() => act(api.DELETE('/api/v1/vms/{id}/snapshots/{name}', p), 'Snapshot deleted.').then(list.reload)}>Delete</button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the snapshots" />
      )}
      <form class="inline" onSubmit={take}>
        <label>Snapshot name<input name="name" required maxLength={63} /></label>
        <button type="submit">Take snapshot</button>
      </form>
    </>
  );
}

function CloneDelete({ vm }: { vm: Vm }) {
  const id = vm.id;
  async function clone(e: Event): Promise<void> {
    const f = formValues(e);
    await act(
      api.POST('/api/v1/vms/{id}/clone', { params: { path: { id } }, body: { name: f.name!, strategy: (f.strategy ?? 'full') as Schemas['CloneStrategy'], storage: f.storage ?? null } }),
      'Clone started: see the jobs panel.',
    );
  }
  async function del(): Promise<void> {
    if (await act(api.DELETE('/api/v1/vms/{id}', { params: { path: { id } } }), `${vm.name} deleted.`)) location.hash = '#/vms';
  }
  return (
    <>
      <form class="inline" onSubmit={clone}>
        <label>Clone name<input name="name" required maxLength={63} /></label>
        <label>Kind<select name="strategy"><option value="full">full copy</option><option value="thin">thin (overlays)</option></select></label>
        <label>Storage<input name="storage" placeholder="default" /></label>
        <button type="submit" disabled={vm.status !== 'stopped'}>Clone</button>
      </form>
      <p>
        <button type="button" class="danger" disabled={vm.status !== 'stopped'} onClick={del}>Delete {vm.name} and its disks</button>
      </p>
    </>
  );
}

type ConsoleKind = 'vnc' | 'serial';

/** The console panel: pick VNC or serial; the chosen client's chunk is imported on demand. */
function Consoles({ id, running }: { id: string; running: boolean }) {
  const [kind, setKind] = useState<ConsoleKind | null>(null);
  const [Vnc, setVnc] = useState<ComponentType<{ id: string }> | null>(null);
  useEffect(() => {
    if (kind === 'vnc' && !Vnc) void import('./vnc').then((m) => setVnc(() => m.default));
  }, [kind]);
  if (!running) return <p class="muted">The VM is stopped: start it to open a console.</p>;
  const serial = () => ticketPath(api.POST('/api/v1/vms/{id}/console', { params: { path: { id } } }), (t) => t.serial_url);
  return (
    <>
      <p class="buttons">
        <button type="button" aria-pressed={kind === 'vnc'} onClick={() => setKind('vnc')}>VNC console</button>
        <button type="button" aria-pressed={kind === 'serial'} onClick={() => setKind('serial')}>Serial console</button>
      </p>
      {kind === 'serial' && <Term key="serial" label="Serial" connect={serial} />}
      {kind === 'vnc' && (Vnc ? <Vnc id={id} /> : <p class="muted">Loading the console…</p>)}
    </>
  );
}
