// The jobs panel, always visible (Proxmox's task panel): the newest jobs from GET /jobs once,
// then kept current by job events; progress bars, cancel, and the log on demand.
import { useEffect, useState } from 'preact/hooks';
import { api } from './api/client';
import { act, when } from './hooks';
import { jobs, putJob, useStore, type Job } from './store';

const ACTIVE = new Set(['queued', 'running']);

export function JobsPanel() {
  const all = useStore(jobs);
  useEffect(() => {
    void api.GET('/api/v1/jobs', { params: { query: { limit: 20 } } }).then(({ data }) => data?.forEach(putJob));
  }, []);
  // UUIDv7 ids sort by creation time.
  const list = [...all.values()].sort((a, b) => (b.id ?? '').localeCompare(a.id ?? '')).slice(0, 12);
  const running = list.filter((j) => ACTIVE.has(j.status ?? '')).length;
  return (
    <aside class="jobs" aria-labelledby="jobs-title">
      <h2 id="jobs-title">Jobs{running ? ` (${running} running)` : ''}</h2>
      {list.length === 0 ? (
        <p class="muted">No jobs yet.</p>
      ) : (
        <ul>
          {list.map((j) => (
            <JobRow key={j.id} job={j} />
          ))}
        </ul>
      )}
    </aside>
  );
}

function JobRow({ job }: { job: Job }) {
  const [log, setLog] = useState<string | null>(null);
  const active = ACTIVE.has(job.status ?? '');
  const label = `${job.kind} ${(job.target ?? '').replace(/^\/api\/v1\//, '')}`.trim();
  async function showLog(): Promise<void> {
    if (log !== null) return setLog(null);
    const { data } = await api.GET('/api/v1/jobs/{id}/log', { params: { path: { id: job.id! } }, parseAs: 'text' });
    setLog(data ?? '');
  }
  return (
    <li class={`job ${job.status}`} data-job={job.id} data-status={job.status}>
      <div class="job-head">
        <span class="job-kind">{label}</span>
        <span class={`badge ${job.status}`}>{job.status}</span>
      </div>
      <progress max={100} value={job.progress ?? 0} aria-label={`${label}: ${job.progress ?? 0}%`} />
      {job.error_message && <p class="error">{job.error_message}</p>}
      <div class="job-actions">
        <small>{when(job.created_at)}</small>
        <button type="button" class="link" aria-expanded={log !== null} onClick={showLog}>Log</button>
        {active && (
          <button type="button" class="link" onClick={() => act(api.DELETE('/api/v1/jobs/{id}', { params: { path: { id: job.id! } } }))}>
            Cancel
          </button>
        )}
      </div>
      {log !== null && <pre class="log">{log || '(empty)'}</pre>}
    </li>
  );
}
