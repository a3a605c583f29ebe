// Disks: the inventory (GET /disks), updated from disk events; per disk its SMART report on
// demand, standby (spin down) and wake.
import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api/client';
import { act, bytes, useApi } from '../hooks';
import { Pending } from '../ui';

export function Disks() {
  const disks = useApi(() => api.GET('/api/v1/disks', {}), ['/api/v1/disks']);
  const [smart, setSmart] = useState<string | null>(null);
  if (!disks.data) return <Pending failed={disks.failed} what="the disks" />;
  return (
    <>
      <table>
        <caption>{disks.data.length} disks</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Path</th>
            <th scope="col">Size</th>
            <th scope="col">Model</th>
            <th scope="col">Pool</th>
            <th scope="col">State</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {disks.data.map((d) => (
            <tr key={d.id}>
              <th scope="row">{d.name}</th>
              <td>{d.path}</td>
              <td>{bytes(d.size_bytes)}</td>
              <td>{d.model ?? d.kind}</td>
              <td>{d.pool ?? '–'}</td>
              <td>{d.holds_root ? 'system' : d.in_use ? 'in use' : d.allowed ? 'free' : 'not allowed'}</td>
              <td class="buttons">
                <button type="button" aria-label={`SMART of ${d.name}`} aria-expanded={smart === d.id} onClick={() => setSmart(smart === d.id ? null : d.id!)}>SMART</button>
                <button type="button" aria-label={`Standby ${d.name}`} onClick={() => act(api.POST('/api/v1/disks/{id}/standby', { params: { path: { id: d.id! } } }), `${d.name} spun down.`)}>Standby</button>
                <button type="button" aria-label={`Wake ${d.name}`} onClick={() => act(api.POST('/api/v1/disks/{id}/wake', { params: { path: { id: d.id! } } }), `${d.name} woken.`)}>Wake</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {smart && <Smart key={smart} id={smart} />}
    </>
  );
}

function Smart({ id }: { id: string }) {
  const r = useApi(() => api.GET('/api/v1/disks/{id}/smart', { params: { path: { id } } }));
  const s = r.data as Schemas['SmartReportFields'] | undefined;
  return (
    <section class="card" aria-labelledby="smart-h">
      <h2 id="smart-h">SMART of {id}</h2>
      {!s ? (
        <Pending failed={r.failed} what="the SMART report" />
      ) : (
        <>
          <dl class="facts">
            <dt>Health</dt><dd><span class={`badge ${s.health ?? ''}`}>{s.health ?? 'unknown'}</span></dd>
            <dt>Model</dt><dd>{s.model ?? '–'} {s.serial ? `(${s.serial})` : ''}</dd>
            <dt>Firmware</dt><dd>{s.firmware ?? '–'}</dd>
            <dt>Temperature</dt><dd>{s.temperature_celsius != null ? `${s.temperature_celsius} °C` : '–'}</dd>
            <dt>Power-on hours</dt><dd>{s.power_on_hours ?? '–'}</dd>
            <dt>Reallocated / pending sectors</dt><dd>{s.reallocated_sectors ?? '–'} / {s.pending_sectors ?? '–'}</dd>
          </dl>
          {s.warnings?.map((w) => <p class="error" key={w}>{w}</p>)}
          {!!s.attributes?.length && (
            <table>
              <caption>SMART attributes</caption>
              <thead><tr><th scope="col">ID</th><th scope="col">Name</th><th scope="col">Value</th><th scope="col">Worst</th><th scope="col">Threshold</th><th scope="col">Raw</th></tr></thead>
              <tbody>
                {s.attributes.map((a) => (
                  <tr key={a.id}><th scope="row">{a.id}</th><td>{a.name}</td><td>{a.value}</td><td>{a.worst}</td><td>{a.threshold}</td><td>{a.raw_string}</td></tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
