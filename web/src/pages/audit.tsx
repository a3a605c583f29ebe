// The audit log (admin): the newest mutating requests.
import { api } from '../api/client';
import { useApi, when } from '../hooks';

export function Audit() {
  const audit = useApi(() => api.GET('/api/v1/audit', { params: { query: { limit: 100 } } }));
  if (!audit.data) return <p class="muted">{audit.failed ? 'Could not load the audit log (admins only).' : 'Loading…'}</p>;
  return (
    <table>
      <caption>The newest {audit.data.length} entries</caption>
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Actor</th>
          <th scope="col">Request</th>
          <th scope="col">Status</th>
          <th scope="col">From</th>
        </tr>
      </thead>
      <tbody>
        {audit.data.map((a) => (
          <tr key={a.id}>
            <td>{when(a.time)}</td>
            <td>{a.actor}</td>
            <td>{a.method} {a.target ?? a.path}</td>
            <td>{a.status}{a.count && a.count > 1 ? ` (×${a.count})` : ''}</td>
            <td>{a.remote}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
