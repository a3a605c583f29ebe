// Network (a lazy chunk): links (interfaces) with state and counters, bridges, addresses,
// routes, NAT (masquerade) rules and port forwards, DHCP servers (static hosts, leases), and the
// host settings with their confirm-or-rollback change; create and delete what hostplane manages.
import { api, type Schemas } from '../api/client';
import { act, bytes, useApi } from '../hooks';
import { formValues, Pending, Tabs } from '../ui';
import { Dhcp, HostSettings, Routes } from './network-more';

export default function Network() {
  return (
    <Tabs
      id="net"
      tabs={[
        { label: 'Interfaces', body: () => (<><Interfaces /><Bridges /><Addresses /></>) },
        { label: 'Routes', body: () => <Routes /> },
        { label: 'NAT and forwards', body: () => (<><Nat /><Forwards /></>) },
        { label: 'DHCP', body: () => <Dhcp /> },
        { label: 'Host settings', body: () => <HostSettings /> },
      ]}
    />
  );
}

function Interfaces() {
  const list = useApi(() => api.GET('/api/v1/network/interfaces', {}), ['/api/v1/network']);
  return (
    <section aria-labelledby="if-h">
      <h2 id="if-h">Interfaces</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} interfaces</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">State</th><th scope="col">MTU</th><th scope="col">MAC</th><th scope="col">Addresses</th><th scope="col">Received / sent</th><th scope="col">Managed by</th></tr></thead>
          <tbody>
            {list.data.map((i) => (
              <tr key={i.name}>
                <th scope="row">{i.name}</th><td>{i.kind}</td><td><span class={`badge ${i.up ? 'online' : 'offline'}`}>{i.state}</span></td><td>{i.mtu}</td><td>{i.mac ?? '–'}</td>
                <td>{i.addresses?.map((a) => a.address).join(', ') || '–'}</td>
                <td>{bytes(i.stats?.rx_bytes)} / {bytes(i.stats?.tx_bytes)}</td><td>{i.managed_by}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the interfaces" />
      )}
    </section>
  );
}

function Bridges() {
  const list = useApi(() => api.GET('/api/v1/network/bridges', {}), ['/api/v1/network']);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const ports = (f.ports ?? '').split(/[ ,]+/).filter(Boolean);
    if (await act(api.POST('/api/v1/network/bridges', { body: { name: f.name!, ports } }), 'Bridge created.')) {
      form.reset();
      list.reload();
    }
  }
  return (
    <section aria-labelledby="br-h">
      <h2 id="br-h">Bridges</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} bridges</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Ports</th><th scope="col">STP</th><th scope="col">Managed by</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((b) => (
              <tr key={b.name}>
                <th scope="row">{b.name}</th><td>{b.state}</td><td>{b.ports?.join(', ') || '–'}</td><td>{b.stp ? 'on' : 'off'}</td><td>{b.managed_by}</td>
                <td>{b.managed_by === 'hostplane' && <button type="button" class="danger" aria-label={`Delete bridge ${b.name}`} onClick={() => act(api.DELETE('/api/v1/network/bridges/{name}', { params: { path: { name: b.name! } } }), 'Bridge deleted.').then(list.reload)}>Delete</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the bridges" />
      )}
      <form class="inline" onSubmit={create}>
        <label>Bridge name<input name="name" required maxLength={15} /></label>
        <label>Ports (space separated)<input name="ports" /></label>
        <button type="submit">Create bridge</button>
      </form>
    </section>
  );
}

function Addresses() {
  const list = useApi(() => api.GET('/api/v1/network/addresses', {}), ['/api/v1/network']);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    if (await act(api.POST('/api/v1/network/addresses', { body: { interface: f.interface!, address: f.address! } }), 'Address added.')) {
      form.reset();
      list.reload();
    }
  }
  return (
    <section aria-labelledby="addr-h">
      <h2 id="addr-h">Addresses</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} addresses</caption>
          <thead><tr><th scope="col">Address</th><th scope="col">Interface</th><th scope="col">Family</th><th scope="col">Managed by</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((a) => (
              <tr key={a.id}>
                <th scope="row">{a.address}</th><td>{a.interface}</td><td>{a.family}</td><td>{a.managed_by}</td>
                <td>{a.managed_by === 'hostplane' && <button type="button" class="danger" aria-label={`Remove address ${a.address}`} onClick={() => act(api.DELETE('/api/v1/network/addresses/{id}', { params: { path: { id: a.id! } } }), 'Address removed.').then(list.reload)}>Remove</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the addresses" />
      )}
      <form class="inline" onSubmit={create}>
        <label>Interface<input name="interface" required /></label>
        <label>Address (CIDR)<input name="address" required placeholder="192.168.10.1/24" /></label>
        <button type="submit">Add address</button>
      </form>
    </section>
  );
}

function Nat() {
  const list = useApi(() => api.GET('/api/v1/network/nat-rules', {}), ['/api/v1/network']);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    if (await act(api.POST('/api/v1/network/nat-rules', { body: { type: 'masquerade', source: f.source!, out_interface: f.out! } }), 'NAT rule added.')) {
      form.reset();
      list.reload();
    }
  }
  return (
    <section aria-labelledby="nat-h">
      <h2 id="nat-h">NAT rules</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} NAT rules</caption>
          <thead><tr><th scope="col">Source</th><th scope="col">Out interface</th><th scope="col">Type</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((r) => (
              <tr key={r.id}>
                <th scope="row">{r.source}</th><td>{r.out_interface}</td><td>{r.type}</td>
                <td><button type="button" class="danger" aria-label={`Remove NAT rule ${r.source}`} onClick={() => act(api.DELETE('/api/v1/network/nat-rules/{id}', { params: { path: { id: r.id! } } }), 'NAT rule removed.').then(list.reload)}>Remove</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the NAT rules" />
      )}
      <form class="inline" onSubmit={create}>
        <label>Source network<input name="source" required placeholder="10.0.0.0/24" /></label>
        <label>Out interface<input name="out" required /></label>
        <button type="submit">Add NAT rule</button>
      </form>
    </section>
  );
}

function Forwards() {
  const list = useApi(() => api.GET('/api/v1/network/port-forwards', {}), ['/api/v1/network']);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const port: Schemas['ForwardPort'] = {
      listen_port: Number(f.listen_port),
      protocol: (f.protocol ?? 'tcp') as Schemas['ForwardPort']['protocol'],
      target_address: f.target!,
      target_port: f.target_port ? Number(f.target_port) : null,
    };
    if (await act(api.POST('/api/v1/network/port-forwards', { body: { listen_address: f.listen!, ports: [port], description: f.description ?? null } }), 'Port forward added.')) {
      form.reset();
      list.reload();
    }
  }
  return (
    <section aria-labelledby="fwd-h">
      <h2 id="fwd-h">Port forwards</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} port forwards</caption>
          <thead><tr><th scope="col">Listen address</th><th scope="col">Ports</th><th scope="col">Description</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((p) => (
              <tr key={p.id}>
                <th scope="row">{p.listen_address}</th>
                <td>{p.ports?.map((x) => `${x.protocol} ${x.listen_port} → ${x.target_address}:${x.target_port ?? x.listen_port}`).join(', ')}</td>
                <td>{p.description ?? '–'}</td>
                <td><button type="button" class="danger" aria-label={`Remove port forward ${p.listen_address}`} onClick={() => act(api.DELETE('/api/v1/network/port-forwards/{id}', { params: { path: { id: p.id! } } }), 'Port forward removed.').then(list.reload)}>Remove</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the port forwards" />
      )}
      <form class="inline" onSubmit={create}>
        <label>Listen address<input name="listen" required placeholder="192.168.1.10" /></label>
        <label>Protocol<select name="protocol"><option value="tcp">tcp</option><option value="udp">udp</option></select></label>
        <label>Listen port<input name="listen_port" type="number" min={1} max={65535} required /></label>
        <label>Target address<input name="target" required /></label>
        <label>Target port<input name="target_port" type="number" min={1} max={65535} /></label>
        <label>Description<input name="description" /></label>
        <button type="submit">Add port forward</button>
      </form>
    </section>
  );
}
