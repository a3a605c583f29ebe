// Network, continued: routes, DHCP servers (with static hosts and leases) and the host settings.
//
// Host settings are a confirm-or-rollback change (docs/network.md): PUT /network/host answers
// 202 with a change that applies in the background and then waits for a confirmation until its
// deadline, or is rolled back. The daemon accepts the confirmation only over a connection
// opened after the change applied (that a new connection reaches the host is the proof). A
// browser chooses its connections itself, so the page does what raises the odds: it stops its
// own requests while waiting (an HTTP/1 keep-alive connection the daemon sees idle for
// `header_read_timeout_secs`, 10 s, is closed), closes its event stream, and sends the
// confirmation as several parallel requests (with HTTP/1 the browser opens a new connection for
// those its idle ones cannot carry); while every answer is 409 `confirm_needs_new_connection`
// it tries again every 12 s until the deadline. Over HTTP/2 all of a tab's requests share one
// connection, which the daemon closes after `idle_timeout_secs` (120 s): the form therefore
// asks for a 180 s confirmation window. When nothing gets through in time the change rolls back
// — the safe outcome.
import { useEffect, useState } from 'preact/hooks';
import { api, problemText, type Schemas } from '../api/client';
import { act, useApi, when } from '../hooks';
import { formValues, Pending } from '../ui';
import { toast } from '../store';
import { closeEvents, openEvents } from '../events';

const words = (s?: string) => (s ?? '').split(/[ ,]+/).filter(Boolean);

export function Routes() {
  const list = useApi(() => api.GET('/api/v1/network/routes', {}), ['/api/v1/network']);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const body = { destination: f.destination!, gateway: f.gateway ?? null, interface: f.interface ?? null, metric: f.metric ? Number(f.metric) : 0 };
    if (await act(api.POST('/api/v1/network/routes', { body }), 'Route added.')) {
      form.reset();
      list.reload();
    }
  }
  return (
    <section aria-labelledby="rt-h">
      <h2 id="rt-h">Routes</h2>
      {list.data ? (
        <table>
          <caption>{list.data.length} routes</caption>
          <thead><tr><th scope="col">Destination</th><th scope="col">Gateway</th><th scope="col">Interface</th><th scope="col">Metric</th><th scope="col">Protocol</th><th scope="col">Managed by</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((r) => (
              <tr key={r.id}>
                <th scope="row">{r.destination}</th><td>{r.gateway ?? '–'}</td><td>{r.interface ?? '–'}</td><td>{r.metric}</td><td>{r.protocol}</td><td>{r.managed_by}</td>
                <td>{r.managed_by === 'hostplane' && <button type="button" class="danger" aria-label={`Remove route ${r.destination}`} onClick={() => act(api.DELETE('/api/v1/network/routes/{id}', { params: { path: { id: r.id! } } }), 'Route removed.').then(list.reload)}>Remove</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the routes" />
      )}
      <form class="inline" onSubmit={create}>
        <label>Destination (CIDR)<input name="destination" required placeholder="10.20.0.0/16" /></label>
        <label>Gateway<input name="gateway" /></label>
        <label>Interface<input name="interface" /></label>
        <label>Metric<input name="metric" type="number" min={0} /></label>
        <button type="submit">Add route</button>
      </form>
    </section>
  );
}

export function Dhcp() {
  const list = useApi(() => api.GET('/api/v1/network/dhcp-servers', {}), ['/api/v1/network']);
  async function create(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    const body: Schemas['DhcpServerCreate'] = {
      interface: f.interface!,
      range_start: f.start!,
      range_end: f.end!,
      router: f.router ?? null,
      dns: words(f.dns),
      lease_time_s: f.lease ? Number(f.lease) : null,
    };
    if (await act(api.POST('/api/v1/network/dhcp-servers', { body }), 'DHCP server created.')) {
      form.reset();
      list.reload();
    }
  }
  return (
    <>
      <section aria-labelledby="dhcp-h">
        <h2 id="dhcp-h">DHCP servers</h2>
        {list.data ? (
          list.data.length ? list.data.map((s) => <Server key={s.interface} s={s} reload={list.reload} />) : <p class="muted">No DHCP server.</p>
        ) : (
          <Pending failed={list.failed} what="the DHCP servers" />
        )}
      </section>
      <section aria-labelledby="dhcp-new-h">
        <h2 id="dhcp-new-h">Add a DHCP server</h2>
        <form class="inline" onSubmit={create}>
          <label>Bridge<input name="interface" required /></label>
          <label>Range start<input name="start" required placeholder="10.77.0.100" /></label>
          <label>Range end<input name="end" required placeholder="10.77.0.200" /></label>
          <label>Router<input name="router" /></label>
          <label>DNS servers<input name="dns" /></label>
          <label>Lease time (s)<input name="lease" type="number" min={60} /></label>
          <button type="submit">Add DHCP server</button>
        </form>
      </section>
    </>
  );
}

function Server({ s, reload }: { s: Schemas['DhcpServerFields']; reload: () => void }) {
  const iface = s.interface!;
  const p = { params: { path: { interface: iface } } };
  const leases = useApi(() => api.GET('/api/v1/network/dhcp-servers/{interface}/leases', p), [`/api/v1/network/dhcp-servers/${iface}`]);
  async function addHost(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const f = formValues(e);
    if (await act(api.POST('/api/v1/network/dhcp-servers/{interface}/hosts', { ...p, body: { mac: f.mac!, ip: f.ip!, hostname: f.hostname ?? null } }), 'Host added.')) {
      form.reset();
      reload();
    }
  }
  return (
    <div class="card">
      <h3>{iface} <span class={`badge ${s.state === 'running' ? 'online' : 'offline'}`}>{s.state}</span></h3>
      <p>Range {s.range_start} – {s.range_end}, router {s.router ?? '–'}, DNS {s.dns?.join(', ') || '–'}, leases of {s.lease_time_s} s.{' '}
        <button type="button" class="danger" aria-label={`Delete DHCP server on ${iface}`} onClick={() => act(api.DELETE('/api/v1/network/dhcp-servers/{interface}', p), 'DHCP server deleted.').then(reload)}>Delete</button>
      </p>
      <table>
        <caption>{s.hosts?.length ?? 0} static hosts on {iface}</caption>
        <thead><tr><th scope="col">MAC</th><th scope="col">Address</th><th scope="col">Host name</th><th scope="col">Actions</th></tr></thead>
        <tbody>
          {s.hosts?.map((h) => (
            <tr key={h.mac}>
              <th scope="row">{h.mac}</th><td>{h.ip}</td><td>{h.hostname ?? '–'}</td>
              <td><button type="button" class="danger" aria-label={`Remove host ${h.mac}`} onClick={() => act(api.DELETE('/api/v1/network/dhcp-servers/{interface}/hosts/{mac}', { params: { path: { interface: iface, mac: h.mac } } }), 'Host removed.').then(reload)}>Remove</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="inline" onSubmit={addHost}>
        <label>MAC<input name="mac" required placeholder="52:54:00:12:34:56" /></label>
        <label>Address<input name="ip" required /></label>
        <label>Host name<input name="hostname" /></label>
        <button type="submit">Add static host</button>
      </form>
      {leases.data ? (
        <table>
          <caption>{leases.data.length} leases on {iface}</caption>
          <thead><tr><th scope="col">Address</th><th scope="col">MAC</th><th scope="col">Host name</th><th scope="col">Expires</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {leases.data.map((l) => (
              <tr key={l.mac}>
                <th scope="row">{l.ip}</th><td>{l.mac}{l.static ? ' (static)' : ''}</td><td>{l.hostname ?? '–'}</td><td>{l.expires_unix ? when(new Date(l.expires_unix * 1000).toISOString()) : 'never'}</td>
                <td><button type="button" class="danger" aria-label={`Release lease ${l.ip}`} onClick={() => act(api.DELETE('/api/v1/network/dhcp-servers/{interface}/leases/{key}', { params: { path: { interface: iface, key: l.mac! } } }), 'Lease released.').then(leases.reload)}>Release</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={leases.failed} what="the leases" />
      )}
    </div>
  );
}

type Change = Schemas['NetworkChange'];

export function HostSettings() {
  const host = useApi(() => api.GET('/api/v1/network/host', {}), ['/api/v1/network/host']);
  const [change, setChange] = useState<Change | null>(null);
  const h = host.data;
  const cur = h?.settings;
  // A change still open (made in another tab, or before a reload) is shown with its countdown.
  useEffect(() => {
    const pid = h?.pending_change?.split('/').pop();
    if (pid && !change) void api.GET('/api/v1/network/changes/{id}', { params: { path: { id: pid } } }).then(({ data }) => data && setChange(data as Change));
  }, [h]);
  async function apply(e: Event): Promise<void> {
    const form = e.target as HTMLFormElement;
    const force = (form.elements.namedItem('force') as HTMLInputElement).checked;
    const f = formValues(e);
    const body: Schemas['HostSettingsUpdate'] = {
      interface: f.interface!,
      mode: (f.mode ?? 'dhcp') as Schemas['HostMode'],
      address: f.mode === 'static' ? (f.address ?? null) : null,
      gateway: f.mode === 'static' ? (f.gateway ?? null) : null,
      dns: words(f.dns),
      ntp: words(f.ntp),
      hostname: f.hostname ?? null,
      confirm_timeout_s: Number(f.timeout ?? 180),
      force,
    };
    const { data, error, response } = await api.PUT('/api/v1/network/host', { body });
    if (!data) return toast(problemText(error, response));
    setChange(data);
  }
  return (
    <section aria-labelledby="host-net-h">
      <h2 id="host-net-h">Host settings</h2>
      {h ? (
        <dl class="facts">
          <dt>Management interface</dt><dd>{cur?.interface ?? '– (never set here)'}</dd>
          <dt>Mode</dt><dd>{cur?.mode ?? '–'}</dd>
          <dt>Addresses now</dt><dd>{h.addresses?.join(', ') || '–'}</dd>
          <dt>Default gateway now</dt><dd>{h.gateway ?? '–'}</dd>
          <dt>DNS</dt><dd>{cur?.dns?.join(', ') || '–'}</dd>
          <dt>Host name</dt><dd>{cur?.hostname ?? '–'}</dd>
          <dt>Pending change</dt><dd>{h.pending_change ?? 'none'}</dd>
        </dl>
      ) : (
        <Pending failed={host.failed} what="the host settings" />
      )}
      {change ? (
        <Pending_ change={change} done={() => { setChange(null); host.reload(); }} />
      ) : (
        h && (
          <form onSubmit={apply}>
            <p class="muted">
              A change applies at once and is rolled back unless it is confirmed before its deadline over a connection opened
              after it applied; this page then shows a countdown and a Confirm button.
            </p>
            <div class="row">
              <label>Interface<input name="interface" required defaultValue={cur?.interface ?? ''} /></label>
              <label>Mode<select name="mode"><option value="dhcp">DHCP</option><option value="static" selected={cur?.mode === 'static'}>static</option></select></label>
              <label>Address (CIDR, static)<input name="address" defaultValue={cur?.address ?? ''} /></label>
              <label>Gateway (static)<input name="gateway" defaultValue={cur?.gateway ?? ''} /></label>
              <label>DNS servers<input name="dns" defaultValue={cur?.dns?.join(' ') ?? ''} /></label>
              <label>NTP servers<input name="ntp" defaultValue={cur?.ntp?.join(' ') ?? ''} /></label>
              <label>Host name<input name="hostname" defaultValue={cur?.hostname ?? ''} /></label>
              <label>Confirmation window (s)<input name="timeout" type="number" min={10} max={600} defaultValue="180" /></label>
            </div>
            <label class="check"><input type="checkbox" name="force" /> Allow cutting off the connection this page uses</label>
            <button type="submit">Apply host settings</button>
          </form>
        )
      )}
    </section>
  );
}

/** The open change: its state, the countdown to its deadline and Confirm. */
function Pending_({ change, done }: { change: Change; done: () => void }) {
  const [c, setC] = useState(change);
  const [now, setNow] = useState(Date.now());
  const [note, setNote] = useState('');
  const [confirming, setConfirming] = useState(false);
  const id = c.id;
  // While applying: ask again each second. Once it awaits confirmation the page sends nothing
  // (an idle keep-alive connection is what the daemon closes) and counts down locally.
  useEffect(() => {
    if (c.state !== 'applying') return;
    const t = setTimeout(async () => {
      const { data } = await api.GET('/api/v1/network/changes/{id}', { params: { path: { id } } });
      if (data) setC(data as Change);
    }, 1000);
    return () => clearTimeout(t);
  }, [c]);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  const left = c.deadline ? Math.max(0, Math.round((Date.parse(c.deadline) - now) / 1000)) : null;
  async function confirm(): Promise<void> {
    setConfirming(true);
    closeEvents();
    try {
      while (Date.now() < Date.parse(c.deadline ?? '')) {
        const tries = await Promise.all([0, 1, 2, 3].map(() => api.POST('/api/v1/network/changes/{id}/confirm', { params: { path: { id } } })));
        const ok = tries.find((r) => r.response.ok);
        if (ok?.data) {
          setC(ok.data);
          toast('Host settings confirmed.', 'info');
          return;
        }
        const other = tries.find((r) => (r.error as { code?: string } | undefined)?.code !== 'confirm_needs_new_connection');
        if (other) {
          toast(problemText(other.error, other.response));
          const { data } = await api.GET('/api/v1/network/changes/{id}', { params: { path: { id } } });
          if (data) setC(data as Change);
          return;
        }
        setNote('The browser sent the confirmation over a connection older than the change; trying again in 12 s, once the daemon has closed that idle connection.');
        await new Promise((r) => setTimeout(r, 12000));
      }
      setNote('No new connection got through before the deadline: the change is being rolled back.');
    } finally {
      setConfirming(false);
      openEvents();
    }
  }
  const open = c.state === 'applying' || c.state === 'awaiting_confirmation';
  return (
    <div class="card" role="region" aria-labelledby="chg-h">
      <h3 id="chg-h">Change {id}: <span class={`badge ${c.state}`}>{c.state.replace('_', ' ')}</span></h3>
      {c.reason && <p class="error">{c.reason}</p>}
      {c.state === 'awaiting_confirmation' && left != null && (
        <p role="timer" aria-live="off">Rolled back in <strong>{left} s</strong> unless confirmed.</p>
      )}
      <p class="buttons">
        {c.state === 'awaiting_confirmation' && <button type="button" disabled={confirming} onClick={confirm}>Confirm</button>}
        {!open && <button type="button" onClick={done}>Close</button>}
      </p>
      {note && <p role="status">{note}</p>}
      <p class="muted">
        The daemon keeps a change only when the confirmation comes over a connection opened after it applied — proof that the host is still reachable.
        A browser picks its connections itself: this page pauses its requests, sends the confirmation several times in parallel and retries while
        only old connections answer. If it cannot get through (for example over HTTP/2, which uses one connection per tab), reload the page at the
        new address or confirm with <code>hostplane</code> or curl; otherwise the change is rolled back at the deadline.
      </p>
    </div>
  );
}
