// Log in with a username and password (the daemon sets the HttpOnly session cookie) or with an
// API token (kept for this tab only and checked with whoami).
import { useState } from 'preact/hooks';
import { api, problemText, setApiToken } from './api/client';

export function Login({ done }: { done: () => Promise<void> }) {
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    setBusy(true);
    setError('');
    try {
      if (mode === 'password') {
        const { error, response } = await api.POST('/api/v1/auth/login', {
          body: { username: String(f.get('username')), password: String(f.get('password')) },
        });
        if (!response.ok) return setError(problemText(error, response));
      } else {
        setApiToken(String(f.get('token')).trim());
        const { error, response } = await api.GET('/api/v1/auth/whoami', {});
        if (!response.ok) {
          setApiToken(null);
          return setError(problemText(error, response));
        }
      }
      await done();
    } finally {
      setBusy(false);
    }
  }
  return (
    <main class="login">
      <h1>hostplane</h1>
      <form onSubmit={submit} aria-describedby={error ? 'login-error' : undefined}>
        <fieldset class="tabs">
          <legend>Log in with</legend>
          <label><input type="radio" name="mode" checked={mode === 'password'} onChange={() => setMode('password')} /> Username and password</label>
          <label><input type="radio" name="mode" checked={mode === 'token'} onChange={() => setMode('token')} /> API token</label>
        </fieldset>
        {mode === 'password' ? (
          <>
            <label>Username<input name="username" autocomplete="username" required /></label>
            <label>Password<input name="password" type="password" autocomplete="current-password" required /></label>
          </>
        ) : (
          <label>Token<input name="token" type="password" autocomplete="off" required /></label>
        )}
        {error && <p id="login-error" class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>Log in</button>
      </form>
    </main>
  );
}
