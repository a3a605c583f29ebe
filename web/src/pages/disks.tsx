// Disks: the inventory (GET /disks), updated from disk events.
import { api } from '../api/client';
import { bytes, useApi } from '../hooks';

export function Disks() {
  const disks = useApi(() => api.GET('/api/v1/disks', {}), ['/api/v1/disks']);
  if (!disks.data) return <p class="muted">{disks.failed ? 'Could not load the disks.' : 'Loading…'}</p>;
  return (
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
          </tr>
        ))}
      </tbody>
    </table>
  );
}
