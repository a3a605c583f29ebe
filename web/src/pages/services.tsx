// Services: systemd units with start/stop/restart (jobs, followed in the jobs panel) and
// enable/disable.
import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { act, useApi } from '../hooks';
import { Pending } from '../ui';

export function Services() {
  const list = useApi(() => api.GET('/api/v1/services', {}), ['/api/v1/services']);
  const [q, setQ] = useState('');
  if (!list.data) return <Pending failed={list.failed} what="the services" />;
  const shown = list.data.filter((s) => !q || s.name?.includes(q) || s.description?.toLowerCase().includes(q.toLowerCase()));
  return (
    <>
      <label>Filter<input type="search" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} /></label>
      <table>
        <caption>{shown.length} of {list.data.length} units</caption>
        <thead><tr><th scope="col">Unit</th><th scope="col">Description</th><th scope="col">State</th><th scope="col">At boot</th><th scope="col">Actions</th></tr></thead>
        <tbody>
          {shown.slice(0, 200).map((s) => {
            const p = { params: { path: { name: s.name! } } };
            const b = (label: string, f: () => Promise<{ error?: unknown; response: Response }>) => (
              <button type="button" aria-label={`${label} ${s.name}`} onClick={() => act(f(), `${s.name}: ${label.toLowerCase()}`).then(list.reload)}>{label}</button>
            );
            return (
              <tr key={s.name}>
                <th scope="row">{s.name}</th><td>{s.description}</td>
                <td><span class={`badge ${s.active_state}`}>{s.active_state}</span> {s.sub_state}</td><td>{s.unit_file_state}</td>
                <td class="buttons">
                  {b('Start', () => api.POST('/api/v1/services/{name}/start', p))}
                  {b('Stop', () => api.POST('/api/v1/services/{name}/stop', p))}
                  {b('Restart', () => api.POST('/api/v1/services/{name}/restart', p))}
                  {s.unit_file_state === 'enabled' ? b('Disable', () => api.POST('/api/v1/services/{name}/disable', p)) : b('Enable', () => api.POST('/api/v1/services/{name}/enable', p))}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}
