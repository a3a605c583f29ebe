// Workloads and autostart (a lazy chunk): every container, LXC container and VM in one list
// (GET /workloads), and the autostart order (GET|PUT /autostart): add a workload, move it up or
// down, set what to wait for before the next, remove, save.
import { useEffect, useState } from 'preact/hooks';
import { api, type Schemas } from '../api/client';
import { act, useApi } from '../hooks';
import { Pending } from '../ui';

type Item = Schemas['AutostartItem'];

export default function Workloads() {
  const list = useApi(() => api.GET('/api/v1/workloads', {}), ['/api/v1/containers', '/api/v1/lxc', '/api/v1/vms']);
  const auto = useApi(() => api.GET('/api/v1/autostart', {}), ['/api/v1/autostart']);
  const [items, setItems] = useState<Item[] | null>(null);
  useEffect(() => {
    if (auto.data) setItems(auto.data.items ?? []);
  }, [auto.data]);
  const inOrder = (kind?: string, id?: string) => items?.some((i) => i.kind === kind && i.name === id);
  const move = (i: number, d: number) =>
    setItems((xs) => {
      const a = [...(xs ?? [])];
      const j = i + d;
      if (j < 0 || j >= a.length) return a;
      [a[i], a[j]] = [a[j]!, a[i]!];
      return a;
    });
  const setWait = (i: number, v: string) =>
    setItems((xs) => (xs ?? []).map((x, k) => (k !== i ? x : { ...x, wait: v === '' ? undefined : v === 'running' || v === 'healthy' ? v : { seconds: Number(v) } })));
  const waitValue = (w: Item['wait']) => (w == null ? '' : typeof w === 'string' ? w : String(w.seconds));
  return (
    <>
      <section aria-labelledby="wl-h">
        <h2 id="wl-h">Workloads</h2>
        {list.data ? (
          <table>
            <caption>{list.data.length} workloads</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Engine</th><th scope="col">State</th><th scope="col">Autostart</th></tr></thead>
            <tbody>
              {list.data.map((w) => (
                <tr key={`${w.kind}/${w.id}`}>
                  <th scope="row">{w.name}</th><td>{w.kind}</td><td>{w.engine ?? '–'}</td><td><span class={`badge ${w.state}`}>{w.state}</span></td>
                  <td>
                    {inOrder(w.kind, w.id) ? 'in the order' : (
                      <button type="button" disabled={!items} aria-label={`Add ${w.name} to the autostart order`} onClick={() => setItems((xs) => [...(xs ?? []), { kind: w.kind!, name: w.id! }])}>Add</button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Pending failed={list.failed} what="the workloads" />
        )}
      </section>
      <section aria-labelledby="as-h">
        <h2 id="as-h">Autostart order</h2>
        {items ? (
          <>
            <table>
              <caption>{items.length} workloads start in this order when the daemon starts</caption>
              <thead><tr><th scope="col">#</th><th scope="col">Workload</th><th scope="col">Kind</th><th scope="col">Wait before the next</th><th scope="col">Actions</th></tr></thead>
              <tbody>
                {items.map((it, i) => (
                  <tr key={`${it.kind}/${it.name}`}>
                    <td>{i + 1}</td><th scope="row">{it.name}</th><td>{it.kind}</td>
                    <td>
                      <select aria-label={`Wait after ${it.name}`} value={waitValue(it.wait)} onChange={(e) => setWait(i, (e.target as HTMLSelectElement).value)}>
                        <option value="">nothing</option><option value="running">running</option><option value="healthy">healthy</option>
                        <option value="10">10 s</option><option value="30">30 s</option><option value="60">60 s</option>
                      </select>
                    </td>
                    <td class="buttons">
                      <button type="button" aria-label={`Move ${it.name} up`} disabled={i === 0} onClick={() => move(i, -1)}>Up</button>
                      <button type="button" aria-label={`Move ${it.name} down`} disabled={i === items.length - 1} onClick={() => move(i, 1)}>Down</button>
                      <button type="button" class="danger" aria-label={`Remove ${it.name} from the order`} onClick={() => setItems(items.filter((_, k) => k !== i))}>Remove</button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p class="buttons">
              <button type="button" onClick={() => act(api.PUT('/api/v1/autostart', { body: { items } }), 'Autostart order saved.').then(auto.reload)}>Save order</button>
              <button type="button" onClick={() => setItems(auto.data?.items ?? [])}>Undo changes</button>
            </p>
          </>
        ) : (
          <Pending failed={auto.failed} what="the autostart order" />
        )}
      </section>
    </>
  );
}
