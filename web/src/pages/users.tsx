// Users (admin) and API tokens (the caller's own, or everyone's for an admin).
import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { act, useApi, when } from '../hooks';
import { session, useStore } from '../store';

export function Users() {
  const me = useStore(session);
  const admin = me?.role === 'admin';
  return (
    <>
      {admin && <UserList />}
      <TokenList />
      <CreateToken />
    </>
  );
}

function UserList() {
  const users = useApi(() => api.GET('/api/v1/users', {}), ['/api/v1/users']);
  return (
    <section aria-labelledby="users-h">
      <h2 id="users-h">Users</h2>
      {users.data ? (
        <table>
          <caption>{users.data.length} users</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {users.data.map((u) => (
              <tr key={u.name}>
                <th scope="row">{u.name}</th>
                <td>{u.role}</td>
                <td>{when(u.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">Loading…</p>
      )}
    </section>
  );
}

function TokenList() {
  const tokens = useApi(() => api.GET('/api/v1/tokens', {}), ['/api/v1/tokens']);
  return (
    <section aria-labelledby="tokens-h">
      <h2 id="tokens-h">Tokens</h2>
      {tokens.data ? (
        <table>
          <caption>{tokens.data.length} tokens</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Owner</th>
              <th scope="col">Kind</th>
              <th scope="col">Role</th>
              <th scope="col">Expires</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {tokens.data.map((t) => (
              <tr key={t.id}>
                <th scope="row">{t.name}</th>
                <td>{t.owner}</td>
                <td>{t.kind}</td>
                <td>{t.role}</td>
                <td>{when(t.expires_at)}</td>
                <td>
                  <button type="button" aria-label={`Revoke token ${t.name}`} onClick={() => act(api.DELETE('/api/v1/tokens/{id}', { params: { path: { id: t.id! } } }), 'Token revoked.').then(tokens.reload)}>Revoke</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">Loading…</p>
      )}
    </section>
  );
}

/** A new token for the caller; its value is shown once (only its hash is stored). */
function CreateToken() {
  const [value, setValue] = useState<string | null>(null);
  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const name = String(new FormData(form).get('name'));
    const r = api.POST('/api/v1/tokens', { body: { name } });
    if (await act(r, 'Token created.')) {
      setValue((await r).data?.value ?? null);
      form.reset();
    }
  }
  return (
    <section class="card form" aria-labelledby="create-token-h">
      <h2 id="create-token-h">Create a token</h2>
      <form onSubmit={submit}>
        <label>Token name<input name="name" required maxLength={64} /></label>
        <button type="submit">Create token</button>
      </form>
      {value && (
        <p role="status">
          Copy it now, it is shown only once: <code class="secret">{value}</code>
        </p>
      )}
    </section>
  );
}
