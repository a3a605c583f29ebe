// Dashboard: host health (CPU, load, memory, uptime), version, pools with health, running
// jobs, and the host charts (their own chunk, loaded after the page renders).
import { useEffect, useState } from 'preact/hooks';
import type { ComponentType } from 'preact';
import { api } from '../api/client';
import { bytes, useApi } from '../hooks';
import { jobs, useStore } from '../store';

export function Dashboard() {
  const health = useApi(() => api.GET('/api/v1/system/health', {}));
  const version = useApi(() => api.GET('/api/v1/system/version', {}));
  const pools = useApi(() => api.GET('/api/v1/pools', {}), ['/api/v1/pools']);
  const running = [...useStore(jobs).values()].filter((j) => j.status === 'running' || j.status === 'queued');
  const h = health.data;
  const m = h?.memory;
  return (
    <>
    <Charts memTotal={m?.total_bytes} />
    <div class="cards">
      <section class="card" aria-labelledby="host-h">
        <h2 id="host-h">Host</h2>
        {h ? (
          <dl>
            <dt>Version</dt>
            <dd>{version.data?.hostplane_version ?? '–'}</dd>
            <dt>CPUs</dt>
            <dd>{h.cpu_count}</dd>
            <dt>Load (1/5/15 min)</dt>
            <dd>{h.load ? `${h.load.one.toFixed(2)} / ${h.load.five.toFixed(2)} / ${h.load.fifteen.toFixed(2)}` : '–'}</dd>
            <dt>Memory</dt>
            <dd>
              {m ? (
                <>
                  {bytes(m.used_bytes)} of {bytes(m.total_bytes)}
                  <meter min={0} max={100} value={m.used_percent} aria-label="Memory used" />
                </>
              ) : '–'}
            </dd>
            <dt>Up for</dt>
            <dd>{h.uptime_secs != null ? duration(h.uptime_secs) : '–'}</dd>
          </dl>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </section>
      <section class="card" aria-labelledby="pools-h">
        <h2 id="pools-h">Pools</h2>
        {pools.data?.length ? (
          <ul class="plain">
            {pools.data.map((p) => (
              <li key={p.name}>
                <a href="#/pools">{p.name}</a> <span class={`badge ${p.health}`}>{p.health}</span>{' '}
                {p.usage && <small>{bytes(p.usage.used)} of {bytes(p.usage.size_bytes)} used</small>}
              </li>
            ))}
          </ul>
        ) : (
          <p class="muted">{pools.data ? 'No pools.' : 'Loading…'}</p>
        )}
      </section>
      <section class="card" aria-labelledby="running-h">
        <h2 id="running-h">Running jobs</h2>
        {running.length ? (
          <ul class="plain">
            {running.map((j) => (
              <li key={j.id}>
                {j.kind} {j.target} – {j.progress}%
              </li>
            ))}
          </ul>
        ) : (
          <p class="muted">Nothing running.</p>
        )}
      </section>
    </div>
    </>
  );
}

function Charts({ memTotal }: { memTotal?: number }) {
  const [C, setC] = useState<ComponentType<{ memTotal?: number }> | null>(null);
  useEffect(() => {
    void import('../charts').then((m) => setC(() => m.default));
  }, []);
  return (
    <section aria-labelledby="charts-h">
      <h2 id="charts-h">Host activity</h2>
      {C ? <C memTotal={memTotal} /> : <p class="muted">Loading the charts…</p>}
    </section>
  );
}

function duration(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min`;
}
