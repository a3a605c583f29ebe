//! `jobs list|show|log|wait|cancel` and `selftest`, which starts a job and may wait for it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use hostplane_types::jobs::{Job, JobStatus};
use hostplane_types::system::{SelftestRequest, SelftestResult};
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Ctx, api};
use crate::client::{JsonAnswer, seg, with_query};
use crate::output::{self, fields, print_json, print_table, table};

/// Exit code when `--timeout` passes before the job ends.
pub const EXIT_TIMEOUT: i32 = 2;
/// Seconds each `GET /jobs/{id}/wait` may block.
const POLL_SECS: u64 = 2;

#[derive(Debug, clap::Subcommand)]
pub enum JobsCmd {
    /// List jobs, newest first.
    List {
        /// Filter, e.g. `status:running` or `kind:system.*`.
        #[arg(long, value_name = "FILTER")]
        filter: Option<String>,
        /// At most this many jobs.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Show one job.
    Show { id: String },
    /// Print the job's log.
    Log {
        id: String,
        /// Keep printing new lines until the job ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Wait for the job to end: exit 0 on success, 1 when it failed, 2 on timeout.
    Wait {
        id: String,
        /// Give up after this many seconds [default: wait for ever].
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Ask a running job to stop.
    Cancel { id: String },
}

#[derive(Debug, clap::Args)]
pub struct SelftestArgs {
    /// Wait for the self-test to end and print its steps.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, value_name = "SECS", requires = "wait")]
    pub timeout: Option<u64>,
    /// Pause between steps, in milliseconds (to watch the progress).
    #[arg(long, value_name = "MS")]
    pub step_delay: Option<u64>,
}

fn job_path(id: &str) -> String {
    api(&format!("/jobs/{}", seg(id)))
}

pub async fn run(ctx: &Ctx, cmd: JobsCmd) -> anyhow::Result<i32> {
    match cmd {
        JobsCmd::List { filter, limit } => {
            let path = with_query(
                &api("/jobs"),
                &[("filter", filter), ("limit", limit.map(|l| l.to_string()))],
            );
            let answer = ctx.client.get(&path).await?;
            if ctx.json {
                print_json(&answer)?;
                return Ok(0);
            }
            let jobs: Vec<Job> = answer.parse()?;
            let mut t = table(&["ID", "KIND", "STATUS", "PROGRESS", "BY", "CREATED"]);
            for j in &jobs {
                t.add_row(vec![
                    j.id.clone(),
                    j.kind.clone(),
                    j.status.as_str().into(),
                    format!("{}%", j.progress),
                    j.created_by.clone(),
                    output::time(Some(&j.created_at)),
                ]);
            }
            print_table(t)?;
            let total = answer.header("x-total-count").and_then(|v| v.parse().ok());
            if let Some(total) = total.filter(|t: &usize| *t > jobs.len()) {
                eprintln!("({} of {total} shown)", jobs.len());
            }
            Ok(0)
        }
        JobsCmd::Show { id } => {
            let answer = ctx.client.get(&job_path(&id)).await?;
            show(ctx, &answer)?;
            Ok(0)
        }
        JobsCmd::Log { id, follow } => {
            let path = with_query(
                &format!("{}/log", job_path(&id)),
                &[("follow", follow.then(|| "true".to_string()))],
            );
            let mut resp = ctx
                .client
                .send(Method::GET, &path, None)
                .await?
                .error_for_status()
                .await?;
            while let Some(chunk) = resp.chunk().await? {
                let mut out = std::io::stdout().lock();
                out.write_all(&chunk)?;
                out.flush()?;
            }
            Ok(0)
        }
        JobsCmd::Wait { id, timeout } => {
            let (answer, timed_out) =
                wait(ctx, &job_path(&id), timeout.map(Duration::from_secs)).await?;
            show(ctx, &answer)?;
            exit_code(&answer, timed_out)
        }
        JobsCmd::Cancel { id } => {
            let answer = ctx
                .client
                .call(Method::DELETE, &job_path(&id), None::<&()>)
                .await?;
            if ctx.json {
                print_json(&answer)?;
            } else {
                let j: Job = answer.parse()?;
                output::println(&format!(
                    "Cancellation requested for job {} ({}, {})",
                    j.id,
                    j.kind,
                    j.status.as_str()
                ))?;
            }
            Ok(0)
        }
    }
}

pub async fn selftest(ctx: &Ctx, args: SelftestArgs) -> anyhow::Result<i32> {
    let req = SelftestRequest {
        step_delay_ms: args.step_delay,
    };
    let started = ctx
        .client
        .call(Method::POST, &api("/system/selftest"), Some(&req))
        .await?;
    let job: Job = started.parse()?;
    if !args.wait {
        if ctx.json {
            print_json(&started)?;
        } else {
            output::println(&format!(
                "Started self-test job {0}; follow it with: hostplane jobs wait {0}",
                job.id
            ))?;
        }
        return Ok(0);
    }
    let (answer, timed_out) = wait(
        ctx,
        &job_path(&job.id),
        args.timeout.map(Duration::from_secs),
    )
    .await?;
    if ctx.json {
        print_json(&answer)?;
        return exit_code(&answer, timed_out);
    }
    let job: Job = answer.parse()?;
    let result = job
        .result
        .clone()
        .and_then(|r| serde_json::from_value::<SelftestResult>(r).ok());
    if let Some(r) = &result {
        let mut t = table(&["STEP", "OK", "DETAIL"]);
        for s in &r.steps {
            t.add_row(vec![
                s.name.clone(),
                if s.ok { "ok" } else { "FAILED" }.into(),
                s.detail.clone(),
            ]);
        }
        print_table(t)?;
    }
    let line = match job.status {
        JobStatus::Success => format!("Self-test passed (job {})", job.id),
        _ if timed_out => format!(
            "Self-test still {} at {}% (job {}); timed out waiting",
            job.status.as_str(),
            job.progress,
            job.id
        ),
        s => format!(
            "Self-test {} (job {}): {}",
            s.as_str(),
            job.id,
            job.error_message.as_deref().unwrap_or("no details")
        ),
    };
    output::println(&line)?;
    exit_code(&answer, timed_out)
}

pub(crate) fn exit_code(answer: &JsonAnswer, timed_out: bool) -> anyhow::Result<i32> {
    let job: Job = answer.parse()?;
    Ok(match job.status {
        JobStatus::Success => 0,
        _ if timed_out => EXIT_TIMEOUT,
        _ => 1,
    })
}

/// Polls `GET <job>/wait` (`job` is its path, `/api/v1/jobs/<id>`) until the job ends or
/// `timeout` passes (then `true`), with a progress bar on a terminal.
pub(crate) async fn wait(
    ctx: &Ctx,
    job: &str,
    timeout: Option<Duration>,
) -> anyhow::Result<(JsonAnswer, bool)> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let bar = (!ctx.json && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(100);
        let style = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos:>3}%")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        b.set_style(style);
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let mut secs = 0;
    let outcome = loop {
        let path = with_query(
            &format!("{job}/wait"),
            &[("timeout", Some(secs.to_string()))],
        );
        let answer = ctx.client.get(&path).await?;
        let job: Job = answer.parse()?;
        if let Some(b) = &bar {
            b.set_position(u64::from(job.progress.min(100)));
            b.set_message(format!("{} {}", job.kind, job.status.as_str()));
        }
        if job.status.is_terminal() {
            break (answer, false);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            break (answer, true);
        }
        // Round up so the last poll reaches the deadline.
        secs = left.map_or(POLL_SECS, |l| {
            POLL_SECS.min(l.as_secs() + u64::from(l.subsec_nanos() > 0))
        });
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(outcome)
}

fn show(ctx: &Ctx, answer: &JsonAnswer) -> anyhow::Result<()> {
    if ctx.json {
        return print_json(answer);
    }
    let j: Job = answer.parse()?;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows = vec![
        ("ID", j.id.clone()),
        ("KIND", j.kind.clone()),
        ("STATUS", j.status.as_str().into()),
        ("PROGRESS", format!("{}%", j.progress)),
        ("TARGET", opt(&j.target)),
        ("CREATED-BY", j.created_by.clone()),
        ("CREATED", output::time(Some(&j.created_at))),
        ("STARTED", output::time(j.started_at.as_deref())),
        ("FINISHED", output::time(j.finished_at.as_deref())),
    ];
    if j.error_code.is_some() || j.error_message.is_some() {
        rows.push((
            "ERROR",
            format!(
                "{} ({})",
                j.error_message.as_deref().unwrap_or("-"),
                j.error_code.as_deref().unwrap_or("-")
            ),
        ));
    }
    print_table(fields(rows))?;
    if let Some(r) = &j.result {
        output::println(&format!("RESULT\n{}", serde_json::to_string_pretty(r)?))?;
    }
    Ok(())
}
