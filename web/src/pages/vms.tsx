// Virtual machines: the list with start and stop (each a job or a quick answer).
import { api } from '../api/client';
import { act, useApi } from '../hooks';

export function Vms() {
  const vms = useApi(() => api.GET('/api/v1/vms', {}), ['/api/v1/vms']);
  if (!vms.data) return <p class="muted">{vms.failed ? 'Could not load the VMs.' : 'Loading…'}</p>;
  return (
    <table>
      <caption>{vms.data.length} virtual machines</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Status</th>
          <th scope="col">vCPUs</th>
          <th scope="col">Memory</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        {vms.data.map((v) => {
          const path = { params: { path: { id: v.id! } } };
          const stopped = v.status === 'stopped';
          return (
            <tr key={v.id}>
              <th scope="row">{v.name}</th>
              <td><span class={`badge ${v.status}`}>{v.status}</span></td>
              <td>{v.vcpus}</td>
              <td>{v.memory_mib} MiB</td>
              <td>
                <button type="button" disabled={!stopped} aria-label={`Start ${v.name}`} onClick={() => act(api.POST('/api/v1/vms/{id}/start', path), `${v.name}: starting`).then(vms.reload)}>Start</button>{' '}
                <button type="button" disabled={stopped} aria-label={`Stop ${v.name}`} onClick={() => act(api.POST('/api/v1/vms/{id}/stop', path), `${v.name}: stopping`).then(vms.reload)}>Stop</button>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
