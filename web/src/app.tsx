// The shell: login gate, navigation (hash routes: the daemon serves one page), the page, the
// always-visible jobs panel and the toasts.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentType } from 'preact';
import { api, handleUnauthorized, setApiToken, apiToken } from './api/client';
import { openEvents, resetEvents } from './events';
import { session, useStore, toasts, dismiss } from './store';
import { Login } from './login';
import { JobsPanel } from './jobs';
import { Dashboard } from './pages/dashboard';
import { Disks } from './pages/disks';
import { Pools } from './pages/pools';
import { Datasets } from './pages/datasets';
import { Shares } from './pages/shares';
import { Vms } from './pages/vms';
import { Users } from './pages/users';
import { Audit } from './pages/audit';
import { Services } from './pages/services';
import { System } from './pages/system';

/** A page gets the route's further segments (`#/vms/<id>` → `['<id>']`), decoded. */
export type PageProps = { args: string[] };

/** A page in its own chunk, imported when first shown (the entry stays within its budget). */
function lazy(load: () => Promise<{ default: ComponentType<PageProps> }>): (p: PageProps) => preact.JSX.Element {
  let loaded: ComponentType<PageProps> | null = null;
  return function Lazy(p: PageProps) {
    const [C, setC] = useState<ComponentType<PageProps> | null>(() => loaded);
    useEffect(() => {
      if (!C) void load().then((m) => setC(() => (loaded = m.default)));
    }, []);
    return C ? <C {...p} /> : <p class="muted">Loading…</p>;
  };
}

const PAGES: { path: string; title: string; page: (p: PageProps) => preact.JSX.Element }[] = [
  { path: 'dashboard', title: 'Dashboard', page: Dashboard },
  { path: 'disks', title: 'Disks', page: Disks },
  { path: 'pools', title: 'Pools', page: Pools },
  { path: 'datasets', title: 'Datasets', page: Datasets },
  { path: 'shares', title: 'Shares', page: Shares },
  { path: 'vms', title: 'Virtual machines', page: Vms },
  { path: 'containers', title: 'Containers', page: lazy(() => import('./pages/containers')) },
  { path: 'stacks', title: 'Stacks', page: lazy(() => import('./pages/stacks')) },
  { path: 'lxc', title: 'LXC containers', page: lazy(() => import('./pages/lxc')) },
  { path: 'workloads', title: 'Workloads and autostart', page: lazy(() => import('./pages/workloads')) },
  { path: 'network', title: 'Network', page: lazy(() => import('./pages/network')) },
  { path: 'provisioning', title: 'Provisioning', page: lazy(() => import('./pages/provisioning')) },
  { path: 'services', title: 'Services', page: Services },
  { path: 'terminal', title: 'Host terminal', page: lazy(() => import('./pages/terminal')) },
  { path: 'system', title: 'System', page: System },
  { path: 'users', title: 'Users and tokens', page: Users },
  { path: 'audit', title: 'Audit log', page: Audit },
];

function route(): string {
  return location.hash.replace(/^#\/?/, '') || 'dashboard';
}

function splitRoute(r: string): [string, string[]] {
  const [head, ...rest] = r.split('/');
  return [head ?? '', rest.filter(Boolean).map(decodeURIComponent)];
}

async function checkSession(): Promise<void> {
  const { data, response } = await api.GET('/api/v1/auth/whoami', {});
  session.set(response.ok && data ? data : null);
}

export function loggedOut(): void {
  resetEvents();
  setApiToken(null);
  session.set(null);
}

handleUnauthorized(() => {
  if (session.get()) loggedOut();
});

export function App() {
  const me = useStore(session);
  const [path, setPath] = useState(route());
  useEffect(() => {
    const f = () => setPath(route());
    addEventListener('hashchange', f);
    void checkSession();
    return () => removeEventListener('hashchange', f);
  }, []);
  useEffect(() => {
    if (me) openEvents();
  }, [me]);
  const [page, args] = splitRoute(path);
  const current = PAGES.find((p) => p.path === page) ?? PAGES[0]!;
  useEffect(() => {
    document.title = me ? `${current.title} – hostplane` : 'Log in – hostplane';
  }, [me, current]);
  // After navigating, the keyboard and screen readers continue in the new page.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) first.current = false;
    else document.getElementById('content')?.focus();
  }, [path]);
  if (me === undefined) return <main class="loading" aria-busy="true">Loading…</main>;
  return (
    <>
      {me === null ? (
        <Login done={checkSession} />
      ) : (
        <div class="shell">
          <a class="skip" href="#content">Skip to content</a>
          <header class="top">
            <span class="brand">hostplane</span>
            <span class="who">
              {me.user} ({me.role})
              <button type="button" onClick={logout}>Log out</button>
            </span>
          </header>
          <nav aria-label="Main">
            <ul>
              {PAGES.map((p) => (
                <li key={p.path}>
                  <a href={`#/${p.path}`} aria-current={p.path === current.path ? 'page' : undefined}>{p.title}</a>
                </li>
              ))}
              <li>
                <a href="/api-docs/">API documentation</a>
              </li>
            </ul>
          </nav>
          <main id="content" tabIndex={-1}>
            <h1>{current.title}</h1>
            <current.page key={path} args={args} />
          </main>
          <JobsPanel />
        </div>
      )}
      <Toasts />
    </>
  );
}

async function logout(): Promise<void> {
  // An API token is not a session: forgetting it is the logout (it stays valid until revoked).
  if (!apiToken()) await api.POST('/api/v1/auth/logout', {});
  loggedOut();
}

function Toasts() {
  const list = useStore(toasts);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {list.map((t) => (
        <div key={t.id} class={`toast ${t.kind}`}>
          <span>{t.text}</span>
          <button type="button" aria-label="Dismiss" onClick={() => dismiss(t.id)}>×</button>
        </div>
      ))}
    </div>
  );
}
