//! What the area commands share, written once: listing a collection as a table, showing one
//! object as KEY VALUE rows, starting a job and following it (`--wait`), asking before a
//! destructive change (`--yes`), and streaming a download to a file.
//!
//! Flow of a job command: the POST/DELETE answers 202 with the job and `Location:
//! /api/v1/jobs/<id>` → without `--wait` the job id is printed (or the job with `--json`) →
//! with `--wait` `jobs::wait` polls `<job>/wait` with a progress bar on a terminal → the final
//! job decides the exit code (0 success, 1 failed/cancelled/interrupted, 2 `--timeout`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use hostplane_types::jobs::{Job, JobStatus};
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;

use super::{Ctx, api, jobs};
use crate::client::{JsonAnswer, ReqBody, json_answer, with_query};
use crate::output::{self, fields, print_json, print_table, table};
use crate::prompt;

/// Collection options every list command takes (the API's collection query).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListArgs {
    /// Filter, e.g. `name:foo`, `status:running`, `!kind:loop`.
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// Sort by these fields, e.g. `name` or `-size`.
    #[arg(long, value_name = "FIELDS")]
    pub sort: Option<String>,
    /// At most this many.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

impl ListArgs {
    /// `path` with the collection query appended (`path` may already hold a query).
    pub fn path(&self, path: &str) -> String {
        let params = [
            ("filter", self.filter.clone()),
            ("sort", self.sort.clone()),
            ("limit", self.limit.map(|l| l.to_string())),
        ];
        match path.split_once('?') {
            None => with_query(path, &params),
            Some((p, q)) => {
                let rest = with_query("", &params);
                match rest.strip_prefix('?') {
                    Some(more) => format!("{p}?{q}&{more}"),
                    None => path.to_string(),
                }
            }
        }
    }
}

/// `--wait` and `--timeout` of every command that starts a job.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WaitArgs {
    /// Follow the job until it ends (a progress bar on a terminal); exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit 2; the job goes on).
    #[arg(long, value_name = "SECS", requires = "wait")]
    pub timeout: Option<u64>,
}

/// `--yes` of every destructive command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct YesArg {
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Asks before a destructive change: the person types `answer` (a name, or `yes`). Without a
/// terminal to ask on, refuses unless `--yes` was given, so a script never destroys by default.
pub fn confirm(yes: &YesArg, what: &str, answer: &str) -> anyhow::Result<()> {
    if yes.yes {
        return Ok(());
    }
    if !prompt::stdin_is_tty() {
        bail!("refusing to {what} without --yes (stdin is not a terminal to ask on)");
    }
    let typed = prompt::ask(&format!("This will {what}. Type {answer:?} to go on: "))?;
    match typed {
        Some(t) if t == answer => Ok(()),
        _ => bail!("not confirmed; nothing was changed"),
    }
}

/// GETs a collection: the API's JSON with `--json`, else a table of `row(item)`.
pub async fn list<T: DeserializeOwned>(
    ctx: &Ctx,
    path: &str,
    header: &[&str],
    row: impl Fn(T) -> Vec<String>,
) -> anyhow::Result<i32> {
    let answer = ctx.client.get(path).await?;
    if ctx.json {
        print_json(&answer)?;
        return Ok(0);
    }
    let items: Vec<T> = answer.parse()?;
    let n = items.len();
    let mut t = table(header);
    for item in items {
        t.add_row(row(item));
    }
    print_table(t)?;
    let total = answer.header("x-total-count").and_then(|v| v.parse().ok());
    if let Some(total) = total.filter(|t: &usize| *t > n) {
        eprintln!("({n} of {total} shown)");
    }
    Ok(0)
}

/// Prints an object answer: the API's JSON with `--json`, else `human(value)`.
pub fn print_answer<T: DeserializeOwned>(
    ctx: &Ctx,
    answer: &JsonAnswer,
    human: impl FnOnce(T) -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    if ctx.json {
        print_json(answer)?;
    } else {
        human(answer.parse()?)?;
    }
    Ok(0)
}

/// GETs one object and prints it as KEY VALUE rows (`--json`: as the API sent it).
pub async fn show<T: DeserializeOwned>(
    ctx: &Ctx,
    path: &str,
    rows: impl FnOnce(T) -> Vec<(&'static str, String)>,
) -> anyhow::Result<i32> {
    let answer = ctx.client.get(path).await?;
    print_answer(ctx, &answer, |v: T| Ok(print_table(fields(rows(v)))?))
}

/// A call without a body to show (204): a line for people, nothing with `--json`.
pub async fn done(ctx: &Ctx, method: Method, path: &str, line: &str) -> anyhow::Result<i32> {
    ctx.client.call(method, path, None::<&()>).await?;
    if !ctx.json {
        output::println(line)?;
    }
    Ok(0)
}

/// The end of a job command: the finished job (None without `--wait`) and the exit code.
pub struct JobEnd {
    pub code: i32,
    pub job: Option<Job>,
}

/// Handles the 202 answer of a job command (`what` names it for people, e.g. "scrub of tank").
/// Without `--wait`: prints the job id (the job with `--json`). With `--wait`: follows the job,
/// prints its outcome (the final job with `--json`; on failure its error and the end of its
/// log on stderr) and returns the exit code.
pub async fn job(
    ctx: &Ctx,
    started: JsonAnswer,
    wait: &WaitArgs,
    what: &str,
) -> anyhow::Result<JobEnd> {
    let job: Job = started.parse()?;
    let path = started
        .header("location")
        .filter(|l| l.starts_with('/'))
        .map(str::to_string)
        .unwrap_or_else(|| api(&format!("/jobs/{}", job.id)));
    if !wait.wait {
        if ctx.json {
            print_json(&started)?;
        } else {
            output::println(&format!(
                "Started {what}: job {0} (follow it with: hostplane jobs wait {0})",
                job.id
            ))?;
        }
        return Ok(JobEnd { code: 0, job: None });
    }
    let (answer, timed_out) = jobs::wait(ctx, &path, wait.timeout.map(Duration::from_secs)).await?;
    let code = jobs::exit_code(&answer, timed_out)?;
    let job: Job = answer.parse()?;
    if ctx.json {
        print_json(&answer)?;
    } else if job.status == JobStatus::Success {
        output::println(&format!("Done: {what} (job {})", job.id))?;
    } else if timed_out {
        eprintln!(
            "{what}: still {} at {}% (job {}); stopped waiting, the job goes on",
            job.status.as_str(),
            job.progress,
            job.id
        );
    } else {
        eprintln!(
            "error: {what} {}: {} ({}; job {})",
            job.status.as_str(),
            job.error_message.as_deref().unwrap_or("no details"),
            job.error_code.as_deref().unwrap_or("-"),
            job.id
        );
        log_tail(ctx, &path, 10).await;
    }
    Ok(JobEnd {
        code,
        job: Some(job),
    })
}

/// The last `n` lines of a job's log, on stderr (best effort: the log only explains).
async fn log_tail(ctx: &Ctx, job: &str, n: usize) {
    let Ok(resp) = ctx
        .client
        .send(Method::GET, &format!("{job}/log"), None)
        .await
    else {
        return;
    };
    let Ok((_, _, body)) = resp.ok_bytes().await else {
        return;
    };
    let text = String::from_utf8_lossy(&body);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return;
    }
    eprintln!("last lines of the job's log:");
    for l in &lines[lines.len().saturating_sub(n)..] {
        eprintln!("  {l}");
    }
}

/// Streams a GET to `out` (`-` = stdout) with a byte progress bar on a terminal. A file is
/// written as `<out>.part` and renamed at the end, so an interrupted download never looks whole.
/// Returns the bytes written.
pub async fn download(ctx: &Ctx, path: &str, out: &Path) -> anyhow::Result<u64> {
    let mut resp = ctx
        .client
        .send(Method::GET, path, None)
        .await?
        .error_for_status()
        .await?;
    let total = resp
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let to_stdout = out == Path::new("-");
    let bar = (!to_stdout && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let b = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        let style = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        b.set_style(style);
        b.set_message(out.display().to_string());
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let part = {
        let mut p = out.as_os_str().to_owned();
        p.push(".part");
        PathBuf::from(p)
    };
    let mut file: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?,
        ))
    };
    let mut written = 0u64;
    let result: anyhow::Result<()> = async {
        while let Some(chunk) = resp.chunk().await? {
            file.write_all(&chunk)
                .with_context(|| format!("writing {}", out.display()))?;
            written += chunk.len() as u64;
            if let Some(b) = &bar {
                b.set_position(written);
            }
        }
        file.flush()?;
        Ok(())
    }
    .await;
    drop(file);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Err(e) = result {
        if !to_stdout {
            let _ = std::fs::remove_file(&part);
        }
        return Err(e);
    }
    if let Some(t) = total.filter(|t| *t != written) {
        if !to_stdout {
            let _ = std::fs::remove_file(&part);
        }
        bail!("the download ended after {written} of {t} bytes");
    }
    if !to_stdout {
        std::fs::rename(&part, out).with_context(|| format!("renaming to {}", out.display()))?;
    }
    Ok(written)
}

/// Streams the file at `file` as the body of a request (a byte progress bar on a terminal) and
/// returns the JSON answer; a non-2xx answer is an error.
pub async fn upload(
    ctx: &Ctx,
    method: Method,
    path: &str,
    file: &Path,
    content_type: &'static str,
) -> anyhow::Result<JsonAnswer> {
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let b = ProgressBar::new(len);
        let style = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        b.set_style(style);
        b.set_message(format!("sending {}", file.display()));
        b
    });
    let progress = bar.clone();
    let body = ReqBody::file(file, move |n| {
        if let Some(b) = &progress {
            b.set_position(n);
        }
    })?;
    let sent = ctx.client.send_body(method, path, body, content_type).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let (_, headers, bytes) = sent?.ok_bytes().await?;
    json_answer(headers, bytes)
}

/// Reads a file to upload.
pub fn read_file(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_args_append_to_a_query() {
        let a = ListArgs {
            filter: Some("name:x".into()),
            sort: None,
            limit: Some(3),
        };
        assert_eq!(
            a.path("/api/v1/disks"),
            "/api/v1/disks?filter=name%3Ax&limit=3"
        );
        assert_eq!(
            a.path("/api/v1/disks?performance=true"),
            "/api/v1/disks?performance=true&filter=name%3Ax&limit=3"
        );
        let none = ListArgs::default();
        assert_eq!(none.path("/api/v1/disks?x=1"), "/api/v1/disks?x=1");
    }

    #[test]
    fn refuses_without_a_terminal_or_yes() {
        // Under the test runner stdin is not a terminal.
        if prompt::stdin_is_tty() {
            return;
        }
        let e = confirm(&YesArg { yes: false }, "wipe loop3", "loop3").unwrap_err();
        assert!(e.to_string().contains("without --yes"), "{e}");
        confirm(&YesArg { yes: true }, "wipe loop3", "loop3").unwrap();
    }
}
