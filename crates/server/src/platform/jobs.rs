//! The job engine: slow work runs as a persisted job that callers poll, wait on, follow, cancel.
//!
//! Flow: a handler calls [`Jobs::spawn`] with a [`JobSpec`] and an async closure, and answers
//! `202 Accepted` + `Location: /api/v1/jobs/<id>` at once. The engine takes the spec's lock key
//! (a second job with the same key gets 409 `lock_held`), writes the job row, and runs the
//! closure on the runtime. The closure reports through its [`JobCtx`]: `progress`, `log`,
//! `cancelled`. Every state change goes to the store first, then to the event bus as
//! `job.updated`. At start, [`Jobs::new`] marks jobs a crash left `queued`/`running` as
//! `interrupted`, so none is silently lost.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostplane_host::command::CommandError;
use hostplane_types::jobs::{Job, JobResult, JobStatus};
use rusqlite::{OptionalExtension, params};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::platform::events::Events;
use crate::platform::store::Store;
use crate::platform::time;

/// What a job is, before it runs.
pub struct JobSpec {
    pub kind: &'static str,
    pub target: Option<String>,
    /// Jobs sharing a lock key never overlap.
    pub lock_key: Option<String>,
    pub actor: String,
}

/// How a job failed: a stable code and a message, as the API shows them.
#[derive(Debug, Clone)]
pub struct JobFailure {
    pub code: &'static str,
    pub message: String,
    /// What the job found before failing (e.g. the self-test's steps), kept as its `result`.
    pub result: Option<serde_json::Value>,
}

impl JobFailure {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        JobFailure {
            code,
            message: message.into(),
            result: None,
        }
    }

    /// The one mapping of a host command's failure inside a job (docs/errors.md, "Host
    /// commands"): a missing tool, a timeout and a refused argument have their own codes
    /// whatever the step; the tool failing is the step's `code` (`wipe_failed`, …).
    pub fn command(code: &'static str, e: CommandError) -> Self {
        let code = match &e {
            CommandError::NotFound { .. } => "tool_missing",
            CommandError::Timeout { .. } => "command_timeout",
            CommandError::InvalidArgument { .. } => "invalid_argument",
            CommandError::Failed { .. }
            | CommandError::Io { .. }
            | CommandError::Parse { .. }
            | CommandError::OutputTooLarge { .. } => code,
        };
        let message = match e {
            CommandError::NotFound { program } => {
                format!("`{program}` is not installed on this host")
            }
            other => other.to_string(),
        };
        JobFailure::new(code, message)
    }

    /// Keeps what the job found as its result; a result that cannot be encoded is said in
    /// the message instead.
    pub fn with_result<R: JobResult>(mut self, result: &R) -> Self {
        match encode_result(result) {
            Ok(v) => self.result = Some(v),
            Err(f) => self.message = format!("{}; {}", self.message, f.message),
        }
        self
    }
}

/// The one way a job's result becomes JSON. Encoding cannot silently give `null`: an error, or
/// a value that encodes as `null`, fails the job (`internal`).
pub fn encode_result<R: JobResult>(result: &R) -> Result<serde_json::Value, JobFailure> {
    match serde_json::to_value(result) {
        Ok(serde_json::Value::Null) => Err(JobFailure::new(
            "internal",
            "the job's result encoded as null",
        )),
        Ok(v) => Ok(v),
        Err(e) => Err(JobFailure::new(
            "internal",
            format!("the job's result could not be encoded: {e}"),
        )),
    }
}

struct Running {
    cancel: CancellationToken,
    /// Bumped on every change (log line, progress, status) so waiters and followers wake.
    changed: watch::Sender<u64>,
}

struct Inner {
    store: Arc<Store>,
    events: Arc<Events>,
    running: Mutex<HashMap<String, Running>>,
    locks: Mutex<HashMap<String, String>>,
}

#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

/// The handle a running job uses to report.
pub struct JobCtx {
    id: String,
    href: String,
    actor: String,
    inner: Arc<Inner>,
    cancel: CancellationToken,
    log_seq: Mutex<i64>,
    last_progress: Mutex<u8>,
}

const JOB_COLUMNS: &str = "id, kind, status, progress, target, lock_key, created_by, created_at, started_at, finished_at, error_code, error_message, result";
/// The same columns with `result` left out (read as NULL): a listing whose `fields` do not
/// show it skips decoding every job's result JSON, most of such a listing's cost.
const JOB_COLUMNS_NO_RESULT: &str = "id, kind, status, progress, target, lock_key, created_by, created_at, started_at, finished_at, error_code, error_message, NULL";

/// Which columns a listing reads.
fn job_columns(with_result: bool) -> &'static str {
    if with_result {
        JOB_COLUMNS
    } else {
        JOB_COLUMNS_NO_RESULT
    }
}

fn job_from_row(r: &rusqlite::Row) -> rusqlite::Result<Job> {
    let id: String = r.get(0)?;
    let status: String = r.get(2)?;
    let result: Option<String> = r.get(12)?;
    Ok(Job {
        href: format!("/api/v1/jobs/{id}"),
        id,
        kind: r.get(1)?,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Interrupted),
        progress: r.get::<_, i64>(3)?.clamp(0, 100) as u8,
        target: r.get(4)?,
        lock_key: r.get(5)?,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        error_code: r.get(10)?,
        error_message: r.get(11)?,
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

impl Inner {
    fn get(&self, id: &str) -> rusqlite::Result<Option<Job>> {
        self.store.read(|c| {
            c.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([id], job_from_row)
                .optional()
        })
    }

    fn bump(&self, id: &str) {
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            r.changed.send_modify(|v| *v += 1);
        }
    }

    fn announce(&self, id: &str, actor: &str, created: bool) {
        match self.get(id) {
            Ok(Some(job)) => {
                let data = serde_json::to_value(&job).unwrap_or_default();
                let ty = if created {
                    "job.created"
                } else {
                    "job.updated"
                };
                self.events.publish(ty, &job.href, actor, data);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, job = id, "cannot read job"),
        }
        self.bump(id);
    }
}

impl JobCtx {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends a line to the job log.
    pub fn log(&self, line: impl AsRef<str>) {
        let mut seq = self.log_seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        let res = self.inner.store.write(|tx| {
            tx.execute(
                "INSERT INTO job_log(job_id, seq, time, line) VALUES (?1, ?2, ?3, ?4)",
                params![self.id, *seq, time::now_string(), line.as_ref()],
            )
        });
        if let Err(e) = res {
            tracing::error!(error = %e, job = self.id, "cannot write job log");
        }
        drop(seq);
        self.inner.bump(&self.id);
    }

    /// Sets progress (0–100); unchanged values cost nothing.
    pub fn progress(&self, pct: u8) {
        let pct = pct.min(100);
        {
            let mut last = self.last_progress.lock().unwrap_or_else(|p| p.into_inner());
            if *last == pct {
                return;
            }
            *last = pct;
        }
        let res = self.inner.store.write(|tx| {
            tx.execute(
                "UPDATE jobs SET progress = ?2 WHERE id = ?1",
                params![self.id, pct],
            )
        });
        if let Err(e) = res {
            tracing::error!(error = %e, job = self.id, "cannot write job progress");
        }
        self.inner.announce(&self.id, &self.actor, false);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the job is cancelled; use in `select!` around slow steps.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    pub fn href(&self) -> &str {
        &self.href
    }
}

impl Jobs {
    /// Opens the engine and marks jobs left over from a previous run as interrupted.
    pub fn new(store: Arc<Store>, events: Arc<Events>) -> rusqlite::Result<Jobs> {
        let now = time::now_string();
        let interrupted: Vec<String> = store.write(|tx| {
            let ids = {
                let mut stmt =
                    tx.prepare("SELECT id FROM jobs WHERE status IN ('queued', 'running')")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?
            };
            tx.execute(
                "UPDATE jobs SET status = 'interrupted', finished_at = ?1,
                    error_code = 'interrupted',
                    error_message = 'the daemon stopped while the job was running'
                 WHERE status IN ('queued', 'running')",
                [&now],
            )?;
            Ok(ids)
        })?;
        let jobs = Jobs {
            inner: Arc::new(Inner {
                store,
                events,
                running: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
            }),
        };
        for id in interrupted {
            tracing::warn!(job = id, "job was interrupted by a daemon stop");
            jobs.inner.announce(&id, "system", false);
        }
        Ok(jobs)
    }

    /// Starts a job. Returns it as first stored (status `running`), or 409 when its lock is held.
    ///
    /// The work's result type is the one `hostplane_types::jobs` lists for `spec.kind` (the
    /// schema the OpenAPI document gives for it).
    pub fn spawn<F, Fut, R>(&self, spec: JobSpec, work: F) -> Result<Job, ApiError>
    where
        F: FnOnce(Arc<JobCtx>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, JobFailure>> + Send + 'static,
        R: JobResult,
    {
        debug_assert_eq!(
            hostplane_types::jobs::result_schema_of(spec.kind).as_deref(),
            Some(R::name().as_ref()),
            "job kind {} has another result type in hostplane_types::jobs",
            spec.kind
        );
        let id = uuid::Uuid::now_v7().to_string();
        if let Some(key) = &spec.lock_key {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(holder) = locks.get(key) {
                return Err(ApiError::conflict(
                    "lock_held",
                    format!(
                        "job /api/v1/jobs/{holder} holds lock {key:?}; wait for it or cancel it"
                    ),
                ));
            }
            locks.insert(key.clone(), id.clone());
        }
        let now = time::now_string();
        let res = self.inner.store.write(|tx| {
            tx.execute(
                "INSERT INTO jobs(id, kind, status, progress, target, lock_key, created_by, created_at, started_at)
                 VALUES (?1, ?2, 'running', 0, ?3, ?4, ?5, ?6, ?6)",
                params![id, spec.kind, spec.target, spec.lock_key, spec.actor, now],
            )
        });
        if let Err(e) = res {
            self.release(&spec.lock_key);
            return Err(e.into());
        }
        let cancel = CancellationToken::new();
        let (changed, _) = watch::channel(0);
        self.inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.clone(),
                Running {
                    cancel: cancel.clone(),
                    changed,
                },
            );
        self.inner.announce(&id, &spec.actor, true);
        let job = self
            .inner
            .get(&id)?
            .ok_or_else(|| ApiError::internal("job vanished"))?;
        let ctx = Arc::new(JobCtx {
            href: job.href.clone(),
            id: id.clone(),
            actor: spec.actor.clone(),
            inner: self.inner.clone(),
            cancel: cancel.clone(),
            log_seq: Mutex::new(0),
            last_progress: Mutex::new(0),
        });
        metrics::counter!("hostplane_jobs_started_total", "kind" => spec.kind).increment(1);
        let this = self.clone();
        tokio::spawn(async move {
            ctx.log(format!("job {} started by {}", spec.kind, spec.actor));
            let fut = work(ctx.clone());
            // A panicking job must still end as failed and free its lock.
            let mut handle = tokio::spawn(fut);
            let outcome = tokio::select! {
                r = &mut handle => match r {
                    Ok(r) => r.and_then(|r| encode_result(&r)),
                    Err(e) => Err(JobFailure::new("internal", format!("job crashed: {e}"))),
                },
                _ = cancel.cancelled() => {
                    // Dropping the work future stops it at its next await point.
                    handle.abort();
                    Err(JobFailure::new("cancelled", "cancelled on request"))
                }
            };
            this.finish(&ctx, spec.kind, &spec.lock_key, outcome);
        });
        Ok(job)
    }

    fn release(&self, lock_key: &Option<String>) {
        if let Some(key) = lock_key {
            self.inner
                .locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
        }
    }

    fn finish(
        &self,
        ctx: &JobCtx,
        kind: &'static str,
        lock_key: &Option<String>,
        outcome: Result<serde_json::Value, JobFailure>,
    ) {
        let now = time::now_string();
        let (status, code, message, result) = match &outcome {
            Ok(v) => (JobStatus::Success, None, None, Some(v.to_string())),
            Err(f) if f.code == "cancelled" => (
                JobStatus::Cancelled,
                Some(f.code),
                Some(f.message.clone()),
                None,
            ),
            Err(f) => (
                JobStatus::Failed,
                Some(f.code),
                Some(f.message.clone()),
                f.result.as_ref().map(|v| v.to_string()),
            ),
        };
        match &outcome {
            Ok(_) => ctx.log("job finished: success"),
            Err(f) => ctx.log(format!(
                "job finished: {} ({}): {}",
                status.as_str(),
                f.code,
                f.message
            )),
        }
        let res = self.inner.store.write(|tx| {
            tx.execute(
                "UPDATE jobs SET status = ?2, progress = CASE WHEN ?2 = 'success' THEN 100 ELSE progress END,
                    finished_at = ?3, error_code = ?4, error_message = ?5, result = ?6
                 WHERE id = ?1",
                params![ctx.id, status.as_str(), now, code, message, result],
            )
        });
        if let Err(e) = res {
            tracing::error!(error = %e, job = ctx.id, "cannot record job end");
        }
        metrics::counter!("hostplane_jobs_finished_total", "kind" => kind, "status" => status.as_str())
            .increment(1);
        self.release(lock_key);
        self.inner.announce(&ctx.id, &ctx.actor, false);
        self.inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ctx.id);
    }

    pub fn get(&self, id: &str) -> Result<Job, ApiError> {
        self.inner
            .get(id)?
            .ok_or_else(|| ApiError::not_found(format!("no job {id:?}")))
    }

    /// The newest job of `kind`, if any ("the last certificate renewal", "the last backup").
    pub fn latest_of_kind(&self, kind: &str) -> Result<Option<Job>, ApiError> {
        let id: Option<String> = self.inner.store.read(|c| {
            c.query_row(
                "SELECT id FROM jobs WHERE kind = ?1 ORDER BY id DESC LIMIT 1",
                [kind],
                |r| r.get(0),
            )
            .optional()
        })?;
        match id {
            Some(id) => self.get(&id).map(Some),
            None => Ok(None),
        }
    }

    /// All jobs, newest first.
    pub fn list(&self) -> rusqlite::Result<Vec<Job>> {
        self.page(0, None, true).map(|(jobs, _)| jobs)
    }

    /// One page of jobs, newest first, and how many there are in all (`with_result: false`
    /// leaves each job's `result` out).
    pub fn page(
        &self,
        offset: usize,
        limit: Option<usize>,
        with_result: bool,
    ) -> rusqlite::Result<(Vec<Job>, usize)> {
        self.inner.store.read_snapshot(|c| {
            let total = Store::row_count(c, "jobs")?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM jobs ORDER BY id DESC LIMIT ?1 OFFSET ?2",
                job_columns(with_result)
            ))?;
            let limit = limit.map(|l| l as i64).unwrap_or(-1);
            let jobs = stmt
                .query_map([limit, offset as i64], job_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((jobs, total))
        })
    }

    /// Up to `n` jobs older than job `before` (newest first): the next chunk of a listing that
    /// streams the whole table without holding it (keyset paging, no `OFFSET` walk).
    pub fn older_than(
        &self,
        before: &str,
        n: usize,
        with_result: bool,
    ) -> rusqlite::Result<Vec<Job>> {
        self.inner.store.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM jobs WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
                job_columns(with_result)
            ))?;
            stmt.query_map(params![before, n as i64], job_from_row)?
                .collect()
        })
    }

    /// Log lines after `after` (a line sequence number), with their numbers.
    pub fn log_lines(&self, id: &str, after: i64) -> rusqlite::Result<Vec<(i64, String, String)>> {
        self.inner.store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT seq, time, line FROM job_log WHERE job_id = ?1 AND seq > ?2 ORDER BY seq",
            )?;
            stmt.query_map(params![id, after], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
    }

    /// A receiver that changes whenever the job does; None when it is not running.
    pub fn watch(&self, id: &str) -> Option<watch::Receiver<u64>> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|r| r.changed.subscribe())
    }

    /// Waits until the job ends or `timeout` passes; returns the job as it then is.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Job, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let rx = self.watch(id);
            let job = self.get(id)?;
            if job.status.is_terminal() {
                return Ok(job);
            }
            let Some(mut rx) = rx else {
                // Finished between the two reads.
                return self.get(id);
            };
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Err(_) => return self.get(id),
                Ok(Err(_)) => return self.get(id),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Asks a running job to stop. 409 when it has already ended.
    pub fn cancel(&self, id: &str) -> Result<Job, ApiError> {
        let job = self.get(id)?;
        if job.status.is_terminal() {
            return Err(ApiError::conflict(
                "job_finished",
                format!("job {id} already ended ({})", job.status.as_str()),
            ));
        }
        if let Some(r) = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            r.cancel.cancel();
        }
        Ok(job)
    }

    /// Number of jobs currently running (for metrics).
    pub fn running_count(&self) -> usize {
        self.inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}
