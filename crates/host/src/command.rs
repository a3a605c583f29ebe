//! The one command runner: every external program hostplane runs goes through [`Cmd`].
//!
//! Why one runner: a host manager runs `wipefs`, `btrfs`, `nft` and friends with arguments that
//! come (indirectly) from API requests. Funnelling every run through one place gives the same
//! guarantees everywhere:
//!
//! * **argv only, never a shell.** The program is a bare name looked up with [`which`] (the
//!   daemon's `PATH` plus the sbin directories) or an absolute path; arguments are passed as-is.
//!   Names that reach a command line are checked with [`validate_name`], free-form paths with
//!   [`validate_path_arg`] (no option injection).
//! * **A timeout** (30 s by default). The child runs in its own process group; on timeout (or when
//!   the future is dropped) the whole group gets `SIGKILL` and the child is reaped.
//! * **Typed errors** ([`CommandError`]) that keep the program's stderr, so an API error can say
//!   what the tool said.
//! * **Bounded memory**: stdout is capped (64 MiB by default, an error beyond), stderr is kept up
//!   to 1 MiB and drained beyond. stdin is `/dev/null` unless data is given.
//! * **Stable output**: children run with `LC_ALL=C.UTF-8` (overridable with [`Cmd::env`]) so
//!   parsers and error messages do not depend on the daemon's locale.
//!
//! * **Supervised children** ([`Cmd::spawn`] → [`Supervised`]) for a program the caller
//!   follows while it runs (`qemu-img convert` progress) or that lives on (QEMU): the same argv
//!   rules and process group, stderr kept for the error or appended to a log file, killed
//!   (the whole group) on drop or explicitly.
//! * **Restarted children** ([`Cmd::supervise`] → [`Restarting`]) for a daemon hostplane keeps
//!   running (dnsmasq, udhcpc): started again after it exits with a [`RestartPolicy`]'s
//!   backoff, stopped (and its group killed) through the handle.
//!
//! Each run is logged at debug level (program, args, elapsed, status). stdin data is never
//! logged.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Default time a command may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on captured stdout; more is an [`CommandError::OutputTooLarge`].
pub const DEFAULT_MAX_STDOUT: usize = 64 << 20;
/// stderr kept in memory; the rest is read and discarded.
const MAX_STDERR: usize = 1 << 20;
/// stderr (or stdout) kept in [`CommandError::Failed`].
pub const ERROR_TEXT_LIMIT: usize = 4096;
/// After the child exits, how long its output pipes may stay open (held by a background
/// process it started) before we stop reading and return what we have.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// Directories searched after `PATH`: the daemon may be started with a minimal `PATH`, and most
/// of the tools it needs live in sbin.
const FALLBACK_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];
/// Environment every child gets unless overridden.
const DEFAULT_ENV: &[(&str, &str)] = &[("LC_ALL", "C.UTF-8")];

/// Why a command could not be run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program is not installed (not on `PATH`, not in the sbin directories).
    #[error("program `{program}` not found")]
    NotFound { program: String },
    /// The program ran longer than its timeout; its process group was killed.
    #[error("`{program}` timed out after {after:?}")]
    Timeout { program: String, after: Duration },
    /// The program exited with a status not in its `ok_codes` (`status` is `None` when it was
    /// killed by a signal). `stderr` is trimmed and capped at 4 KiB; when the program wrote
    /// nothing to stderr it holds the start of stdout instead, since some tools report errors
    /// there.
    #[error("`{program}` failed ({}){}", describe_status(.status), colon_text(.stderr))]
    Failed {
        program: String,
        status: Option<i32>,
        stderr: String,
    },
    /// Spawning or talking to the program failed at the OS level (permission denied, …).
    #[error("running `{program}` failed: {source}")]
    Io {
        program: String,
        #[source]
        source: io::Error,
    },
    /// The program succeeded but its output could not be parsed.
    #[error("could not parse the output of `{program}`: {message}")]
    Parse { program: String, message: String },
    /// The program wrote more than the stdout cap; it was killed.
    #[error("`{program}` wrote more than {limit} bytes to stdout")]
    OutputTooLarge { program: String, limit: usize },
    /// A name, path or argument was refused before anything ran.
    #[error("{message}")]
    InvalidArgument { message: String },
}

impl CommandError {
    /// The program concerned, when there is one.
    pub fn program(&self) -> Option<&str> {
        match self {
            CommandError::NotFound { program }
            | CommandError::Timeout { program, .. }
            | CommandError::Failed { program, .. }
            | CommandError::Io { program, .. }
            | CommandError::Parse { program, .. }
            | CommandError::OutputTooLarge { program, .. } => Some(program),
            CommandError::InvalidArgument { .. } => None,
        }
    }

    /// An argument refused before anything ran.
    pub fn invalid(message: impl Into<String>) -> Self {
        CommandError::InvalidArgument {
            message: message.into(),
        }
    }
}

fn describe_status(status: &Option<i32>) -> String {
    match status {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    }
}

fn colon_text(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status (one of the command's `ok_codes`).
    pub status: i32,
    /// Everything the program wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr (lossy UTF-8, at most 1 MiB).
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Output {
    /// stdout as text, invalid UTF-8 replaced.
    pub fn stdout_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }
}

/// One external program invocation. Build it, then [`run`](Cmd::run) it (as often as you like).
///
/// ```no_run
/// # async fn f() -> Result<(), hostplane_host::command::CommandError> {
/// use hostplane_host::command::Cmd;
/// let out = Cmd::new("lsblk").args(["-J", "-b", "-o", "NAME,SIZE"]).run_json::<serde_json::Value>().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
    timeout: Duration,
    stdin: Option<Vec<u8>>,
    stdin_file: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    ok_codes: Vec<i32>,
    cwd: Option<PathBuf>,
    max_stdout: usize,
}

impl Cmd {
    /// `program` is a bare name (looked up with [`which`]) or an absolute path. Anything else
    /// (relative paths, a leading `-`, NUL) makes [`run`](Cmd::run) fail with
    /// [`CommandError::InvalidArgument`].
    pub fn new(program: &str) -> Self {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            stdin: None,
            stdin_file: None,
            env: Vec::new(),
            ok_codes: vec![0],
            cwd: None,
            max_stdout: DEFAULT_MAX_STDOUT,
        }
    }

    /// Append one argument, passed verbatim (no shell, no splitting).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Append arguments, passed verbatim.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Kill the command (and its process group) after this long. Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Feed these bytes to the program's stdin (otherwise stdin is `/dev/null`).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Connect this file to the program's stdin (the kernel feeds it: a large file is never
    /// held in memory). Takes precedence over [`Cmd::stdin`].
    pub fn stdin_file(mut self, path: impl AsRef<Path>) -> Self {
        self.stdin_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Set an environment variable for the child (on top of the daemon's environment and
    /// `LC_ALL=C.UTF-8`, which this can override).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Exit statuses that count as success. Default `[0]`.
    pub fn ok_codes(mut self, codes: &[i32]) -> Self {
        self.ok_codes = codes.to_vec();
        self
    }

    /// Working directory of the child.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Cap on captured stdout in bytes. Default 64 MiB.
    pub fn max_stdout(mut self, bytes: usize) -> Self {
        self.max_stdout = bytes;
        self
    }

    /// The program as given to [`Cmd::new`].
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments so far.
    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// Run the program, capture stdout and stderr, and check the exit status against
    /// `ok_codes`.
    pub async fn run(&self) -> Result<Output, CommandError> {
        let program = self.program.as_str();
        self.check()?;
        let path = which(program).ok_or_else(|| {
            tracing::debug!(program, "command not found");
            CommandError::NotFound {
                program: program.to_string(),
            }
        })?;

        let mut command = self.command(&path);
        let stdin_data = match &self.stdin_file {
            Some(f) => {
                let file = std::fs::File::open(f).map_err(|source| CommandError::Io {
                    program: program.to_string(),
                    source,
                })?;
                command.stdin(Stdio::from(file));
                None
            }
            None => {
                command.stdin(if self.stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                });
                self.stdin.as_deref()
            }
        };
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);

        let start = Instant::now();
        let mut child = command.spawn().map_err(|e| spawn_error(program, e))?;
        // The child is the leader of its own process group (process_group(0)), so its pid is
        // the group id. Declared after `child` so it drops first: on cancellation the group
        // is killed while the child is still unreaped (its pid cannot have been reused).
        let mut group = GroupKiller(child.id().and_then(|p| i32::try_from(p).ok()));

        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut reaped = false;
        let driven = drive(
            &mut child,
            stdin_data,
            self.max_stdout,
            start + self.timeout,
            &mut stdout,
            &mut stderr,
            &mut reaped,
        )
        .await;
        let elapsed = start.elapsed();

        if !reaped {
            // Timeout, output overflow or an I/O error while the child still runs.
            group.kill();
            match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(_) => {}
                Err(_) => tracing::warn!(program, "killed child did not exit within 5 s"),
            }
        }
        group.disarm();

        let status = match driven {
            Ok(status) => status,
            Err(Abort::Timeout) => {
                tracing::warn!(program, args = ?self.args, ?elapsed, "command timed out, process group killed");
                return Err(CommandError::Timeout {
                    program: program.to_string(),
                    after: self.timeout,
                });
            }
            Err(Abort::Overflow) => {
                tracing::warn!(program, args = ?self.args, limit = self.max_stdout, "command output too large, process group killed");
                return Err(CommandError::OutputTooLarge {
                    program: program.to_string(),
                    limit: self.max_stdout,
                });
            }
            Err(Abort::Io(e)) => {
                tracing::debug!(program, args = ?self.args, error = %e, "command I/O failed");
                return Err(CommandError::Io {
                    program: program.to_string(),
                    source: e,
                });
            }
        };

        let code = status.code();
        tracing::debug!(
            program,
            args = ?self.args,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            status = code,
            signal = status.signal(),
            stdout_bytes = stdout.len(),
            "command finished"
        );
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        match code {
            Some(code) if self.ok_codes.contains(&code) => Ok(Output {
                status: code,
                stdout,
                stderr,
                elapsed,
            }),
            _ => {
                let text = if stderr.trim().is_empty() {
                    String::from_utf8_lossy(&stdout).into_owned()
                } else {
                    stderr
                };
                Err(CommandError::Failed {
                    program: program.to_string(),
                    status: code,
                    stderr: cap_text(text.trim(), ERROR_TEXT_LIMIT),
                })
            }
        }
    }

    /// [`run`](Cmd::run), then parse stdout as JSON.
    pub async fn run_json<T: DeserializeOwned>(&self) -> Result<T, CommandError> {
        let out = self.run().await?;
        serde_json::from_slice(&out.stdout).map_err(|e| CommandError::Parse {
            program: self.program.clone(),
            message: format!(
                "invalid JSON: {e}; stdout starts with {:?}",
                cap_text(&String::from_utf8_lossy(&out.stdout), 200)
            ),
        })
    }

    /// [`run`](Cmd::run), then return stdout as UTF-8 text.
    pub async fn run_text(&self) -> Result<String, CommandError> {
        let out = self.run().await?;
        String::from_utf8(out.stdout).map_err(|e| CommandError::Parse {
            program: self.program.clone(),
            message: format!("stdout is not UTF-8: {e}"),
        })
    }

    /// Start the program as a supervised child and return at once: for a program that runs
    /// while the caller reads its output as it comes (progress lines), or one that lives on
    /// (QEMU). The same rules as [`run`](Cmd::run): argv only, the program looked up with
    /// [`which`], `LC_ALL=C.UTF-8`, stdin `/dev/null` (giving [`Cmd::stdin`] data is refused),
    /// its own process group. `output` says where stdout and stderr go, `on_drop` what dropping
    /// the handle does; the timeout counts from now and applies to
    /// [`finish`](Supervised::finish).
    pub fn spawn(&self, output: ChildOutput, on_drop: OnDrop) -> Result<Supervised, CommandError> {
        let program = self.program.as_str();
        self.check()?;
        if self.stdin.is_some() || self.stdin_file.is_some() {
            return Err(CommandError::invalid(format!(
                "`{program}`: a supervised child gets no stdin data"
            )));
        }
        let path = which(program).ok_or_else(|| CommandError::NotFound {
            program: program.to_string(),
        })?;
        let io_err = |source| CommandError::Io {
            program: program.to_string(),
            source,
        };
        let mut command = self.command(&path);
        command
            .stdin(Stdio::null())
            .kill_on_drop(on_drop == OnDrop::Kill);
        match &output {
            ChildOutput::Piped => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            ChildOutput::AppendTo(log) => {
                let out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .map_err(io_err)?;
                let err = out.try_clone().map_err(io_err)?;
                command.stdout(Stdio::from(out)).stderr(Stdio::from(err));
            }
        }
        let start = Instant::now();
        let mut child = command.spawn().map_err(|e| spawn_error(program, e))?;
        let pid = child.id().unwrap_or(0);
        tracing::debug!(program, args = ?self.args, pid, "spawned a supervised child");
        let stdout = child.stdout.take();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr_task = child.stderr.take().map(|pipe| {
            let buf = stderr.clone();
            tokio::spawn(keep_stderr(pipe, buf))
        });
        Ok(Supervised {
            program: self.program.clone(),
            child,
            pid,
            stdout,
            stderr,
            stderr_task,
            ok_codes: self.ok_codes.clone(),
            start,
            timeout: self.timeout,
            on_drop,
            reaped: false,
        })
    }

    /// The command with program, arguments, environment, working directory and its own
    /// process group; stdio is up to the caller.
    fn command(&self, path: &Path) -> Command {
        let mut command = self.session_command(path);
        command.process_group(0);
        command
    }

    /// The command with program, arguments, environment and working directory, without its
    /// own process group (a PTY child makes its own session instead: [`Cmd::spawn_pty`]).
    fn session_command(&self, path: &Path) -> Command {
        let mut command = Command::new(path);
        command
            .args(&self.args)
            .envs(DEFAULT_ENV.iter().copied())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        command
    }

    fn check(&self) -> Result<(), CommandError> {
        let p = &self.program;
        if p.is_empty() {
            return Err(CommandError::invalid("empty program name"));
        }
        if p.contains('\0') || p.starts_with('-') || (p.contains('/') && !p.starts_with('/')) {
            return Err(CommandError::invalid(format!(
                "invalid program {:?}: use a bare name or an absolute path",
                cap_text(p, 80)
            )));
        }
        if self.args.iter().any(|a| a.as_bytes().contains(&0)) {
            return Err(CommandError::invalid(format!(
                "argument of `{p}` contains a NUL byte"
            )));
        }
        for (k, v) in &self.env {
            let k = k.as_bytes();
            if k.is_empty() || k.contains(&b'=') || k.contains(&0) || v.as_bytes().contains(&0) {
                return Err(CommandError::invalid(format!(
                    "invalid environment variable for `{p}`"
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Cmd {
    /// `program arg1 arg2` for logs and messages (not shell-quoted; not for execution).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            write!(f, " {}", a.to_string_lossy())?;
        }
        Ok(())
    }
}

fn spawn_error(program: &str, e: io::Error) -> CommandError {
    tracing::debug!(program, error = %e, "spawn failed");
    if e.kind() == io::ErrorKind::NotFound {
        CommandError::NotFound {
            program: program.to_string(),
        }
    } else {
        CommandError::Io {
            program: program.to_string(),
            source: e,
        }
    }
}

/// Where the output of a [`Supervised`] child goes.
#[derive(Debug, Clone)]
pub enum ChildOutput {
    /// stdout is a pipe for the caller ([`Supervised::take_stdout`]; read it, or the child
    /// blocks once the pipe is full); stderr is kept (up to 1 MiB, drained beyond) for
    /// [`Supervised::finish`]'s error.
    Piped,
    /// stdout and stderr are appended to this file (created when missing). For a child that
    /// may outlive the daemon: a pipe would break when the daemon exits.
    AppendTo(PathBuf),
}

/// What dropping a [`Supervised`] handle before the child was reaped does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDrop {
    /// SIGKILL the child's process group (its result is no longer wanted).
    Kill,
    /// Leave it running (QEMU: it outlives the request that started it, and the daemon);
    /// stop it explicitly with [`Supervised::kill`] or by its own protocol.
    Leave,
}

/// A child started by [`Cmd::spawn`]: the leader of its own process group.
pub struct Supervised {
    program: String,
    child: Child,
    pid: u32,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stderr_task: Option<tokio::task::JoinHandle<()>>,
    ok_codes: Vec<i32>,
    start: Instant,
    timeout: Duration,
    on_drop: OnDrop,
    reaped: bool,
}

impl fmt::Debug for Supervised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervised")
            .field("program", &self.program)
            .field("pid", &self.pid)
            .field("on_drop", &self.on_drop)
            .field("reaped", &self.reaped)
            .finish()
    }
}

impl Supervised {
    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The program as given to [`Cmd::new`].
    pub fn program(&self) -> &str {
        &self.program
    }

    /// stdout of a [`ChildOutput::Piped`] child (once).
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.stdout.take()
    }

    fn io_error(&self, source: io::Error) -> CommandError {
        CommandError::Io {
            program: self.program.clone(),
            source,
        }
    }

    /// The exit status when the child has exited (it is reaped then), else `None`.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, CommandError> {
        let r = self.child.try_wait().map_err(|e| self.io_error(e))?;
        if r.is_some() {
            self.reaped = true;
        }
        Ok(r)
    }

    /// Waits for the exit (no timeout) and reaps the child.
    pub async fn wait(&mut self) -> Result<ExitStatus, CommandError> {
        let r = self.child.wait().await;
        let status = r.map_err(|e| self.io_error(e))?;
        self.reaped = true;
        Ok(status)
    }

    /// SIGKILL to the child's process group (while the child is not reaped, so the group
    /// id is still ours), then waits for the exit.
    pub async fn kill(&mut self) -> Result<ExitStatus, CommandError> {
        if !self.reaped {
            GroupKiller(i32::try_from(self.pid).ok()).kill();
        }
        self.wait().await
    }

    /// Waits for the exit until the command's timeout (counted from the spawn) and checks
    /// the status against its `ok_codes`, like [`Cmd::run`]: a failure carries the kept
    /// stderr; on timeout the process group is killed ([`CommandError::Timeout`]). The
    /// [`Output`] has no stdout (the caller read it).
    pub async fn finish(mut self) -> Result<Output, CommandError> {
        let deadline = self.start + self.timeout;
        let status = match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(r) => {
                let status = r.map_err(|e| self.io_error(e))?;
                self.reaped = true;
                status
            }
            Err(_) => {
                tracing::warn!(
                    program = self.program,
                    "supervised child timed out, process group killed"
                );
                let _ = tokio::time::timeout(Duration::from_secs(5), self.kill()).await;
                return Err(CommandError::Timeout {
                    program: self.program.clone(),
                    after: self.timeout,
                });
            }
        };
        let elapsed = self.start.elapsed();
        if let Some(task) = self.stderr_task.take() {
            // A background process the child started may hold stderr open.
            let _ = tokio::time::timeout(EXIT_GRACE, task).await;
        }
        let stderr = {
            let buf = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
            String::from_utf8_lossy(&buf).into_owned()
        };
        let code = status.code();
        tracing::debug!(
            program = self.program,
            pid = self.pid,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            status = code,
            signal = status.signal(),
            "supervised child finished"
        );
        match code {
            Some(code) if self.ok_codes.contains(&code) => Ok(Output {
                status: code,
                stdout: Vec::new(),
                stderr,
                elapsed,
            }),
            _ => Err(CommandError::Failed {
                program: self.program.clone(),
                status: code,
                stderr: cap_text(stderr.trim(), ERROR_TEXT_LIMIT),
            }),
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.on_drop == OnDrop::Kill && !self.reaped {
            // Not yet reaped: the group id cannot have been reused.
            GroupKiller(i32::try_from(self.pid).ok()).kill();
        }
    }
}

/// How [`Cmd::supervise`] starts a program again after it exits: wait `first_delay`, doubling
/// after every further exit up to `max_delay`; a run that lasted longer than `reset_after`
/// counts as healthy and the wait starts from `first_delay` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    /// 1 s, 2 s, … up to 30 s; reset after a minute of running (the daemons hostplane runs:
    /// dnsmasq, udhcpc).
    fn default() -> Self {
        RestartPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// The wait after a run that lasted `ran`, given the wait before it; and the next one.
    fn next(&self, current: Duration, ran: Duration) -> (Duration, Duration) {
        let now = if ran > self.reset_after {
            self.first_delay
        } else {
            current
        };
        (now, (now * 2).min(self.max_delay))
    }
}

impl Cmd {
    /// Runs the program as a long-lived child that is started again whenever it exits, after
    /// the `policy`'s backoff, until the returned [`Restarting`] is stopped or dropped. Each
    /// start is a [`Cmd::spawn`] (`OnDrop::Kill`) with stdout and stderr appended to `log`;
    /// `on_start` is called with the pid of every child started (before it is waited for). A
    /// failed spawn is logged and retried like an exit. Needs a tokio runtime.
    pub fn supervise<F>(&self, log: PathBuf, policy: RestartPolicy, mut on_start: F) -> Restarting
    where
        F: FnMut(u32) + Send + 'static,
    {
        let cmd = self.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let pid = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let pid2 = pid.clone();
        let task = tokio::spawn(async move {
            let mut backoff = policy.first_delay;
            loop {
                let begun = Instant::now();
                match cmd.spawn(ChildOutput::AppendTo(log.clone()), OnDrop::Kill) {
                    Ok(mut child) => {
                        pid2.store(child.pid(), std::sync::atomic::Ordering::Relaxed);
                        on_start(child.pid());
                        tokio::select! {
                            r = child.wait() => {
                                pid2.store(0, std::sync::atomic::Ordering::Relaxed);
                                tracing::warn!(command = %cmd, status = ?r.ok(), "supervised program exited; starting it again");
                            }
                            // A send or the handle dropped: stop.
                            _ = stopped.changed() => {
                                let _ = child.kill().await;
                                pid2.store(0, std::sync::atomic::Ordering::Relaxed);
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(command = %cmd, error = %e, "supervised program did not start")
                    }
                }
                let (wait, next) = policy.next(backoff, begun.elapsed());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped.changed() => return,
                }
                backoff = next;
            }
        });
        Restarting { stop, task, pid }
    }
}

/// A program kept running by [`Cmd::supervise`]. Dropping it stops the program too (without
/// waiting); [`stop`](Restarting::stop) waits until it is gone.
#[derive(Debug)]
pub struct Restarting {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    pid: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl Restarting {
    /// The running child's pid, 0 between restarts (and after it stopped).
    pub fn pid(&self) -> u32 {
        self.pid.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Kills the child's process group, ends the restarts and waits until both are done.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let task = self.task;
        let _ = task.await;
    }
}

/// Reads a supervised child's stderr into `buf`, keeping at most 1 MiB.
async fn keep_stderr(
    mut pipe: tokio::process::ChildStderr,
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    let mut chunk = vec![0u8; 16 * 1024];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
        let room = MAX_STDERR.saturating_sub(b.len());
        b.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// Sends SIGKILL to a process group unless disarmed.
struct GroupKiller(Option<i32>);

impl GroupKiller {
    fn kill(&self) {
        if let Some(pgid) = self.0.filter(|&p| p > 1) {
            // SAFETY: kill(2) has no memory-safety preconditions. A negative pid addresses the
            // process group we created for the child, which is not yet reaped.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

enum Abort {
    Timeout,
    Overflow,
    Io(io::Error),
}

impl From<io::Error> for Abort {
    fn from(e: io::Error) -> Self {
        Abort::Io(e)
    }
}

/// Feed stdin, read stdout/stderr and wait for the exit, until `deadline`. Sets `reaped` once
/// the child has been waited for.
async fn drive(
    child: &mut Child,
    stdin: Option<&[u8]>,
    max_stdout: usize,
    deadline: Instant,
    stdout_buf: &mut Vec<u8>,
    stderr_buf: &mut Vec<u8>,
    reaped: &mut bool,
) -> Result<ExitStatus, Abort> {
    let stdin_pipe = child.stdin.take();
    let stdout_pipe = child.stdout.take();
    let stderr_pipe = child.stderr.take();

    let feed = async move {
        if let (Some(mut pipe), Some(data)) = (stdin_pipe, stdin) {
            // The child may exit without reading all of it (EPIPE): its exit status tells.
            let _ = pipe.write_all(data).await;
            // Dropping the pipe closes it: the child sees EOF.
        }
        Ok::<(), Abort>(())
    };
    let out = read_capped(stdout_pipe, stdout_buf, max_stdout, false);
    let err = read_capped(stderr_pipe, stderr_buf, MAX_STDERR, true);
    let io = async { tokio::try_join!(feed, out, err).map(|_| ()) };
    tokio::pin!(io);
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);

    tokio::select! {
        r = &mut io => {
            // Both pipes closed (or stdout overflowed): now wait for the exit.
            r?;
            tokio::select! {
                s = child.wait() => {
                    *reaped = true;
                    Ok(s?)
                }
                _ = &mut sleep => Err(Abort::Timeout),
            }
        }
        s = child.wait() => {
            *reaped = true;
            let status = s?;
            // Collect what is left in the pipes. A background process the child started may
            // hold them open: stop after a grace period and keep what was read.
            let grace = deadline.min(Instant::now() + EXIT_GRACE);
            tokio::select! {
                r = &mut io => r.map(|_| status),
                _ = tokio::time::sleep_until(grace) => {
                    tracing::debug!("output pipes still open after exit; a background process holds them");
                    Ok(status)
                }
            }
        }
        _ = &mut sleep => Err(Abort::Timeout),
    }
}

/// Read `pipe` to EOF into `buf`, keeping at most `cap` bytes. Beyond the cap, either keep
/// draining (and discard) or stop with [`Abort::Overflow`].
async fn read_capped<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    buf: &mut Vec<u8>,
    cap: usize,
    drain: bool,
) -> Result<(), Abort> {
    let Some(mut pipe) = pipe else {
        return Ok(());
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        let room = cap.saturating_sub(buf.len());
        if n <= room {
            buf.extend_from_slice(&chunk[..n]);
        } else {
            buf.extend_from_slice(&chunk[..room]);
            if !drain {
                return Err(Abort::Overflow);
            }
        }
    }
}

/// At most `limit` bytes of `s`, cut on a character boundary, with `…` when cut.
fn cap_text(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Check a name that will reach a command line (pool, share, container, VM, interface, …)
/// against the allow-list `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`, also refusing `..`.
/// `kind` names the thing in the error message (`"share"`).
pub fn validate_name(kind: &str, s: &str) -> Result<(), CommandError> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        && !s.contains("..");
    if ok {
        Ok(())
    } else {
        Err(CommandError::invalid(format!(
            "invalid {kind} name {:?}: use 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter \
             or digit, without \"..\"",
            cap_text(s, 80)
        )))
    }
}

/// Check a free-form argument (a path, a device, a value) that is passed as a positional
/// argument: refuses empty strings, a leading `-` (it would be read as an option) and NUL.
/// Prefer also passing `--` before positional arguments where the tool supports it.
pub fn validate_path_arg(kind: &str, arg: impl AsRef<OsStr>) -> Result<(), CommandError> {
    let b = arg.as_ref().as_bytes();
    let why = if b.is_empty() {
        "must not be empty"
    } else if b[0] == b'-' {
        "must not start with '-'"
    } else if b.contains(&0) {
        "must not contain a NUL byte"
    } else {
        return Ok(());
    };
    Err(CommandError::invalid(format!(
        "invalid {kind} {:?}: {why}",
        cap_text(&arg.as_ref().to_string_lossy(), 80)
    )))
}

/// Locate an executable: an absolute path is checked as is; a bare name is searched in the
/// absolute directories of `PATH` (relative entries such as `.` are ignored), then in
/// `/usr/local/sbin`, `/usr/local/bin`, `/usr/sbin`, `/usr/bin`, `/sbin` and `/bin`.
/// Anything else (relative paths, empty, NUL) gives `None`.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.is_empty() || program.contains('\0') {
        return None;
    }
    if program.contains('/') {
        let p = Path::new(program);
        return (p.is_absolute() && is_executable(p)).then(|| p.to_path_buf());
    }
    search_dirs()
        .into_iter()
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.is_absolute());
    for d in FALLBACK_DIRS {
        let d = Path::new(d);
        if !dirs.iter().any(|x| x == d) {
            dirs.push(d.to_path_buf());
        }
    }
    dirs
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

// ---- pseudo-terminals ----

/// A child on its own pseudo-terminal ([`Cmd::spawn_pty`]): the host terminal's shell, an
/// LXC attach console.
///
/// The child is a session leader with the PTY as its controlling terminal; its environment is
/// exactly what [`Cmd::env`] gave (nothing inherited from the daemon, not even `LC_ALL`). The
/// PTY master is shared through [`PtyIo`] handles (read, write, resize). Dropping the
/// [`PtyChild`] before it was reaped kills the child's process group (its session).
pub struct PtyChild {
    program: String,
    child: Child,
    pid: u32,
    io: PtyIo,
    reaped: bool,
}

/// The master side of a [`PtyChild`]'s terminal; cheap to clone.
#[derive(Clone)]
pub struct PtyIo {
    master: std::sync::Arc<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl fmt::Debug for PtyChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PtyChild")
            .field("program", &self.program)
            .field("pid", &self.pid)
            .finish()
    }
}

fn set_winsize(fd: std::os::fd::RawFd, cols: u16, rows: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which lives for the call.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a PTY pair: (master, non-blocking; slave).
fn open_pty() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain libc calls on a descriptor we own; each result is checked.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if m < 0 {
            return Err(io::Error::last_os_error());
        }
        let master = OwnedFd::from_raw_fd(m);
        if libc::grantpt(m) != 0 || libc::unlockpt(m) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        let slave = OwnedFd::from_raw_fd(s);
        let flags = libc::fcntl(m, libc::F_GETFL);
        if flags < 0 || libc::fcntl(m, libc::F_SETFL, flags | libc::O_NONBLOCK) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((master, slave))
    }
}

impl Cmd {
    /// Starts the program on a new pseudo-terminal of `cols`×`rows`: a session leader whose
    /// stdin, stdout and stderr are the terminal. argv only, as every run; the environment
    /// is cleared and holds only what [`Cmd::env`] set; the working directory is
    /// [`Cmd::cwd`] or `/`. No timeout: the caller ends it ([`PtyChild::kill`]).
    pub fn spawn_pty(&self, cols: u16, rows: u16) -> Result<PtyChild, CommandError> {
        use std::os::fd::AsRawFd;
        let program = self.program.as_str();
        self.check()?;
        if self.stdin.is_some() || self.stdin_file.is_some() {
            return Err(CommandError::invalid(format!(
                "`{program}`: a terminal child gets no stdin data"
            )));
        }
        let path = which(program).ok_or_else(|| CommandError::NotFound {
            program: program.to_string(),
        })?;
        let io_err = |source| CommandError::Io {
            program: program.to_string(),
            source,
        };
        let (master, slave) = open_pty().map_err(io_err)?;
        set_winsize(master.as_raw_fd(), cols, rows).map_err(io_err)?;
        let stdio = |fd: &std::os::fd::OwnedFd| fd.try_clone().map(Stdio::from);
        let mut command = Command::new(&path);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.cwd.as_deref().unwrap_or(Path::new("/")))
            .stdin(stdio(&slave).map_err(io_err)?)
            .stdout(stdio(&slave).map_err(io_err)?)
            .stderr(stdio(&slave).map_err(io_err)?)
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                // stdin is the slave: make it the controlling terminal of the new session.
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| spawn_error(program, e))?;
        drop(slave);
        let pid = child.id().unwrap_or(0);
        tracing::debug!(program, args = ?self.args, pid, "spawned a child on a PTY");
        // SAFETY: `master` owns its descriptor, which nothing else closes or replaces while
        // the AsyncFd holds it.
        let master =
            unsafe { tokio::io::unix::AsyncFd::register(master) }.map_err(|e| io_err(e.into()))?;
        Ok(PtyChild {
            program: self.program.clone(),
            child,
            pid,
            io: PtyIo {
                master: std::sync::Arc::new(master),
            },
            reaped: false,
        })
    }
}

impl PtyChild {
    /// The child's pid (also its session and process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A handle on the terminal's master side.
    pub fn io(&self) -> PtyIo {
        self.io.clone()
    }

    /// Waits for the exit and reaps the child.
    pub async fn wait(&mut self) -> Result<ExitStatus, CommandError> {
        let status = self.child.wait().await.map_err(|e| CommandError::Io {
            program: self.program.clone(),
            source: e,
        })?;
        self.reaped = true;
        Ok(status)
    }

    /// SIGKILL to the child's process group (what it started on the terminal too), then
    /// waits for the exit.
    pub async fn kill(&mut self) -> Result<ExitStatus, CommandError> {
        if !self.reaped {
            GroupKiller(i32::try_from(self.pid).ok()).kill();
        }
        self.wait().await
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        if !self.reaped {
            GroupKiller(i32::try_from(self.pid).ok()).kill();
        }
    }
}

impl PtyIo {
    /// Reads what the terminal printed; `Ok(0)` once the child side is closed (Linux reports
    /// EIO on the master then).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| {
                // SAFETY: reads at most buf.len() bytes into buf.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Types `data` into the terminal.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| {
                // SAFETY: writes at most data.len() bytes from data.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Sets the terminal size (the child gets SIGWINCH).
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        set_winsize(self.master.get_ref().as_raw_fd(), cols, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let p = RestartPolicy::default();
        let s = Duration::from_secs;
        let short = s(1);
        assert_eq!(p.next(s(1), short), (s(1), s(2)));
        assert_eq!(p.next(s(16), short), (s(16), s(30)));
        assert_eq!(p.next(s(30), short), (s(30), s(30)));
        // Up longer than a minute: from the first delay again.
        assert_eq!(p.next(s(30), s(61)), (s(1), s(2)));
        assert_eq!(p.next(s(30), s(60)), (s(30), s(30)));
    }

    #[test]
    fn names() {
        for ok in [
            "a",
            "tank",
            "Pool-1",
            "data_2",
            "vm.web",
            "0",
            &"x".repeat(64),
        ] {
            assert!(validate_name("pool", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "-rf",
            ".hidden",
            "_x",
            "a..b",
            "..",
            "a/b",
            "/etc",
            "a b",
            "a\0b",
            "a\nb",
            "naïve",
            "a;b",
            "$(x)",
            &"x".repeat(65),
        ] {
            let e = validate_name("pool", bad).unwrap_err();
            assert!(matches!(e, CommandError::InvalidArgument { .. }), "{bad:?}");
            assert!(e.to_string().starts_with("invalid pool name"), "{e}");
        }
    }

    #[test]
    fn path_args() {
        assert!(validate_path_arg("path", "/srv/share").is_ok());
        assert!(validate_path_arg("path", "relative/ok").is_ok());
        assert!(validate_path_arg("device", "/dev/loop0").is_ok());
        for bad in ["", "-", "--help", "-o/etc/passwd", "/a\0b"] {
            assert!(validate_path_arg("path", bad).is_err(), "{bad:?}");
        }
        let e = validate_path_arg("device", "--force").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid device "--force": must not start with '-'"#
        );
    }

    #[test]
    fn cap_text_cuts_on_char_boundary() {
        assert_eq!(cap_text("abc", 3), "abc");
        assert_eq!(cap_text("abcd", 3), "abc…");
        assert_eq!(cap_text("ééé", 3), "é…");
    }

    #[test]
    fn which_rules() {
        assert!(which("").is_none());
        assert!(which("bin/sh").is_none());
        assert!(which("./sh").is_none());
        assert!(which("/nonexistent/sh").is_none());
        assert_eq!(which("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        // /etc/passwd is a file but not executable; a directory is not a program.
        assert!(which("/etc/passwd").is_none());
        assert!(which("/usr/bin").is_none());
        let sh = which("sh").expect("sh on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"));
    }

    #[test]
    fn search_dirs_add_sbin_and_skip_relative_entries() {
        let dirs = search_dirs();
        for d in FALLBACK_DIRS {
            assert_eq!(
                dirs.iter().filter(|x| x.as_path() == Path::new(d)).count(),
                1,
                "{d}"
            );
        }
        assert!(dirs.iter().all(|d| d.is_absolute()));
    }

    #[test]
    fn failed_display() {
        let e = CommandError::Failed {
            program: "btrfs".into(),
            status: Some(1),
            stderr: "ERROR: not a btrfs filesystem".into(),
        };
        assert_eq!(
            e.to_string(),
            "`btrfs` failed (exit status 1): ERROR: not a btrfs filesystem"
        );
        let e = CommandError::Failed {
            program: "x".into(),
            status: None,
            stderr: String::new(),
        };
        assert_eq!(e.to_string(), "`x` failed (killed by a signal)");
    }
}
