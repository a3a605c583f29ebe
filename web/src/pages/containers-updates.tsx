// Containers, continued (same chunk): pull an image (a job whose progress shows here and in the
// jobs panel), prune an engine's unused images, and the update checks — POST
// /container-updates/check (a job) and, from GET /container-updates, which containers and
// stacks have a newer image in their registry.
import { useEffect, useState } from 'preact/hooks';
import { api, problemText } from '../api/client';
import { bytes, useApi, when } from '../hooks';
import { formValues, Pending } from '../ui';
import { jobs, toast, useStore } from '../store';

/** A job's status and progress bar, live from the job events. */
export function JobProgress({ id, label }: { id: string; label: string }) {
  const j = useStore(jobs).get(id);
  return (
    <p class="job-inline" data-job={id} data-status={j?.status ?? 'queued'}>
      {label}: <span class={`badge ${j?.status ?? 'queued'}`}>{j?.status ?? 'queued'}</span>{' '}
      <progress max={100} value={j?.progress ?? 0} aria-label={`${label}: ${j?.progress ?? 0}%`} />
      {j?.error_message && <span class="error"> {j.error_message}</span>}
    </p>
  );
}

/** Calls `f` once when job `id` finishes. */
function useJobDone(id: string | null, f: (status: string) => void): void {
  useEffect(() => {
    if (!id) return;
    let fired = false;
    return jobs.subscribe((m) => {
      const s = m.get(id)?.status;
      if (!fired && s && s !== 'queued' && s !== 'running') {
        fired = true;
        f(s);
      }
    });
  }, [id]);
}

export function PullPrune({ engine, reload }: { engine: string; reload: () => void }) {
  const [job, setJob] = useState<{ id: string; image: string } | null>(null);
  const [pruned, setPruned] = useState<string | null>(null);
  useJobDone(job?.id ?? null, reload);
  async function pull(e: Event): Promise<void> {
    const f = formValues(e);
    const { data, error, response } = await api.POST('/api/v1/container-engines/{engine}/images/pull', { params: { path: { engine } }, body: { image: f.image! } });
    if (!data) return toast(problemText(error, response));
    setJob({ id: data.id, image: f.image! });
  }
  async function prune(): Promise<void> {
    const { data, error, response } = await api.POST('/api/v1/container-engines/{engine}/images/prune', { params: { path: { engine } } });
    if (!data) return toast(problemText(error, response));
    setPruned(`Pruned ${data.deleted.length} images, ${bytes(data.space_reclaimed_bytes)} reclaimed.`);
    reload();
  }
  return (
    <>
      <form class="inline" onSubmit={pull}>
        <label>Image to pull<input name="image" required maxLength={255} placeholder="registry.example/app:1.2" /></label>
        <button type="submit">Pull image</button>
        <button type="button" class="danger" onClick={prune}>Prune unused images</button>
      </form>
      {job && <JobProgress key={job.id} id={job.id} label={`Pull of ${job.image}`} />}
      {pruned && <p role="status">{pruned}</p>}
    </>
  );
}

const upd = (u: unknown) => (u === true ? 'update available' : u === false ? 'up to date' : 'unknown');

export function Updates() {
  const list = useApi(() => api.GET('/api/v1/container-updates', {}), ['/api/v1/container-updates']);
  const [job, setJob] = useState<string | null>(null);
  useJobDone(job, list.reload);
  async function check(): Promise<void> {
    const { data, error, response } = await api.POST('/api/v1/container-updates/check', {});
    if (!data) return toast(problemText(error, response));
    setJob(data.id);
  }
  return (
    <section aria-labelledby="upd-h">
      <h2 id="upd-h">Image updates</h2>
      <p class="buttons">
        <button type="button" onClick={check}>Check for updates</button>
      </p>
      {job && <JobProgress key={job} id={job} label="Update check" />}
      {list.data ? (
        <table>
          <caption>{list.data.filter((u) => u.update_available === true).length} of {list.data.length} containers and stacks have an update</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Engine</th><th scope="col">Image</th><th scope="col">Status</th><th scope="col">Checked</th></tr></thead>
          <tbody>
            {list.data.map((u) => (
              <tr key={u.href}>
                <th scope="row">{u.name}</th><td>{u.kind}</td><td>{u.engine}</td><td>{u.image}</td>
                <td>
                  <span class={`badge ${u.update_available === true ? 'degraded' : u.update_available === false ? 'online' : 'offline'}`}>{upd(u.update_available)}</span>
                  {u.updated_services?.length ? ` (${u.updated_services.join(', ')})` : ''}{u.reason ? ` ${u.reason}` : ''}
                </td>
                <td>{when(u.checked_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Pending failed={list.failed} what="the update statuses" />
      )}
      <p class="muted">A stack with an update is brought current with Pull, then Up, on the Stacks page.</p>
    </section>
  );
}
