//! A provisioning run: plan, checks before it starts, and the job that drives the console.
//!
//! Flow: [`prepare`] reads the profile, its recipe, the credential (from the secret store)
//! and the artifacts, merges the variables and refuses (422 `unresolved_variable`,
//! `unknown_artifact`, `unknown_secret`) before anything starts. [`execute`] (the job) walks
//! the plan — `boot` (start the VM if stopped), `setup` (the recipe's steps), `wait_ready` (a
//! command whose marker comes back), `artifacts` (the guest fetches each through a single-use
//! run URL and checks its sha256), then one step per provisioner — from a given step on, so a
//! retry resumes where the last attempt failed (re-reading the profile, which may have been
//! fixed). Every step records status, exit code, duration and its log; every text that is
//! logged, stored or returned goes through the run's [`Redactor`] first.
//!
//! Transports: the recipe (`setup`) always types at the serial console. The profile's
//! `transport` is how `wait_ready`, `artifacts` and the provisioners reach the guest: `serial`
//! (commands typed with an exit marker, files as base64 over the console) or `guest_agent`
//! (QEMU's guest agent on the VM's virtio-serial channel, `hostplane_host::qemu::qga`:
//! `guest-exec` with the exit code and output read back, files with `guest-file-write`) or
//! `ssh` (the OpenSSH client to the loopback port a user-mode NIC forwards to the guest's port
//! 22, with a per-run key installed and the guest's host key read and pinned over the console
//! first: [`super::transport_ssh`]; commands with their exit code, stdout and stderr, files
//! and artifacts on stdin). The console is opened (and its viewers made read-only) only when
//! a step needs it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hostplane_host::qemu::qga::{Qga, QgaError};
use hostplane_host::ssh::{SshError, Stdin};
use hostplane_types::provisioning::{
    Artifact, ProfileSpec, ProvisioningRun, Provisioner, RecipeSpec, RecipeStep, RunStatus,
    RunStep, StepStatus, Transport,
};

use super::artifacts::{self, GuestUrls};
use super::console::{Console, ConsoleError, Pattern};
use super::model::{self, RunRecord};
use super::render::{self, Redactor, Vars};
use super::transport_ssh;
use crate::error::{ApiError, ApiResult};
use crate::platform::jobs::{JobCtx, JobFailure};
use crate::platform::time;
use crate::state::AppState;

/// Step names in plan order before the provisioners.
pub const FIXED_STEPS: [&str; 4] = ["boot", "setup", "wait_ready", "artifacts"];
/// The last part of a step's log kept.
const STEP_LOG_MAX: usize = 16 * 1024;
/// How long `wait_ready` waits for the guest agent to answer (a TCG guest boots slowly).
const AGENT_READY: Duration = Duration::from_secs(300);

/// Everything a run needs, resolved.
pub struct Prepared {
    pub profile: ProfileSpec,
    pub recipe: RecipeSpec,
    pub vars: Vars,
    pub artifacts: BTreeMap<String, Artifact>,
}

/// The plan's step names for a profile.
pub fn plan(profile: &ProfileSpec) -> Vec<String> {
    let mut v: Vec<String> = FIXED_STEPS.iter().map(|s| s.to_string()).collect();
    for (i, p) in profile.provisioners.iter().enumerate() {
        let name = match p {
            Provisioner::Shell { name, .. } => name.clone().unwrap_or_else(|| "shell".into()),
            Provisioner::File { name, .. } => name.clone().unwrap_or_else(|| "file".into()),
        };
        v.push(format!("provisioner:{}:{name}", i + 1));
    }
    v
}

/// Checks the `skip` names.
pub fn check_skip(skip: &[String]) -> ApiResult<()> {
    for s in skip {
        if !FIXED_STEPS.contains(&s.as_str()) && s != "provisioners" {
            return Err(ApiError::invalid_field(
                "invalid_skip",
                "skip",
                format!("{s:?}: one of boot, setup, wait_ready, artifacts, provisioners"),
            ));
        }
    }
    Ok(())
}

/// Resolves profile, recipe, credential, artifacts and variables; 422 when any is missing.
pub fn prepare(
    state: &AppState,
    profile_id: &str,
    run_vars: &BTreeMap<String, String>,
) -> ApiResult<Prepared> {
    let profile = model::find_profile(&state.store, profile_id)
        .map_err(|_| {
            ApiError::invalid_field(
                "unknown_profile",
                "profile",
                format!("no profile {profile_id:?}"),
            )
        })?
        .spec;
    let recipe = model::find_recipe(&state.store, &profile.recipe)
        .map_err(|_| {
            ApiError::invalid_field(
                "unknown_recipe",
                "recipe",
                format!("profile {profile_id:?} names no recipe {:?}", profile.recipe),
            )
        })?
        .spec;
    let mut cred = BTreeMap::new();
    let mut cred_secret = false;
    if let Some(c) = &profile.credential {
        let v = state
            .secrets
            .value(&state.store, &c.secret)
            .map_err(|_| {
                ApiError::invalid_field(
                    "unknown_secret",
                    "credential.secret",
                    format!("no secret {:?}", c.secret),
                )
            })?;
        if let Some(u) = &c.username {
            cred.insert("username".to_string(), u.clone());
        }
        cred.insert("password".to_string(), v);
        cred_secret = true;
    }
    let mut vars = render::resolve(&recipe, &[&profile.variables, &cred, run_vars]);
    if cred_secret {
        vars.secret.insert("password".into());
    }
    let mut texts = Vec::new();
    let mut wanted: Vec<String> = profile.artifacts.iter().map(|a| a.artifact.clone()).collect();
    for p in &profile.provisioners {
        match p {
            Provisioner::Shell { inline, script, .. } => {
                texts.extend(inline.iter().cloned());
                texts.extend(script.iter().cloned());
            }
            Provisioner::File { artifact, .. } => wanted.push(artifact.clone()),
        }
    }
    let missing = render::unresolved(&recipe.steps, &texts, &vars);
    if !missing.is_empty() {
        return Err(ApiError::invalid_field(
            "unresolved_variable",
            "variables",
            format!("no value for {}", missing.join(", ")),
        ));
    }
    for t in recipe
        .steps
        .iter()
        .filter_map(|s| match s {
            RecipeStep::WriteFile {
                artifact: Some(a), ..
            } => Some(a.clone()),
            _ => None,
        })
        .chain(texts.iter().chain(recipe_texts(&recipe).iter()).flat_map(|t| {
            render::names_in(t)
                .into_iter()
                .filter_map(|n| n.strip_prefix("artifact_url.").map(str::to_string))
        }))
        .collect::<Vec<_>>()
    {
        wanted.push(t);
    }
    let mut arts = BTreeMap::new();
    for name in wanted {
        let a = artifacts::find(&state.store, &name).map_err(|_| {
            ApiError::invalid_field(
                "unknown_artifact",
                "artifacts",
                format!("no artifact {name:?}"),
            )
        })?;
        arts.insert(name, a);
    }
    Ok(Prepared {
        profile,
        recipe,
        vars,
        artifacts: arts,
    })
}

fn recipe_texts(r: &RecipeSpec) -> Vec<String> {
    r.steps
        .iter()
        .filter_map(|s| match s {
            RecipeStep::Command { command, .. } => Some(command.clone()),
            RecipeStep::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// The steps of a fresh attempt starting at `from`: earlier steps keep what they were.
pub fn steps_for_attempt(
    names: &[String],
    previous: &[RunStep],
    from: usize,
    skip: &[String],
) -> Vec<RunStep> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let skipped = skip.iter().any(|s| {
                s == n || (s == "provisioners" && n.starts_with("provisioner:"))
            });
            if i < from
                && let Some(p) = previous.iter().find(|p| &p.name == n)
            {
                return p.clone();
            }
            RunStep {
                name: n.clone(),
                status: if skipped {
                    StepStatus::Skipped
                } else {
                    StepStatus::Pending
                },
                exit_code: None,
                duration_ms: None,
                log: String::new(),
                error: None,
            }
        })
        .collect()
}

/// Where a retry starts: the failed step (or the first that did not succeed).
pub fn resume_index(steps: &[RunStep]) -> usize {
    steps
        .iter()
        .position(|s| s.status == StepStatus::Failed)
        .or_else(|| {
            steps
                .iter()
                .position(|s| !matches!(s.status, StepStatus::Success | StepStatus::Skipped))
        })
        .unwrap_or(steps.len())
}

/// A step's outcome.
struct StepFail {
    exit_code: Option<i32>,
    message: String,
}

impl From<ConsoleError> for StepFail {
    fn from(e: ConsoleError) -> Self {
        StepFail {
            exit_code: None,
            message: e.to_string(),
        }
    }
}

impl From<QgaError> for StepFail {
    fn from(e: QgaError) -> Self {
        StepFail {
            exit_code: None,
            message: e.to_string(),
        }
    }
}

/// Which way a command or a file goes: the console (the recipe's steps) or the profile's
/// transport (everything after `setup`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Console,
    Transport,
}

/// The log of one step, redacted as it is written.
struct StepLog<'a> {
    text: String,
    redactor: &'a Redactor,
}

impl StepLog<'_> {
    fn line(&mut self, s: &str) {
        self.text.push_str(&self.redactor.apply(s));
        if !s.ends_with('\n') {
            self.text.push('\n');
        }
    }
}

/// What a step works with.
struct Driver<'a> {
    state: &'a AppState,
    vm: &'a str,
    href: &'a str,
    transport: Transport,
    /// Opened on first use, with the guard that makes other viewers read-only.
    console: Option<(Console, crate::platform::serial::DriveGuard)>,
    agent: Option<Qga>,
    /// The `ssh` transport's connection, set up on first use.
    ssh: Option<transport_ssh::Session>,
    vars: &'a Vars,
    redactor: &'a Redactor,
    artifacts: &'a BTreeMap<String, Artifact>,
    urls: &'a GuestUrls,
    run_id: &'a str,
    guest_base_url: &'a str,
}

fn bad_exit(code: i32, expect: &[i32]) -> StepFail {
    StepFail {
        exit_code: Some(code),
        message: format!("exit code {code}, expected one of {expect:?}"),
    }
}

impl Driver<'_> {
    /// A text with variables substituted; artifact URLs are issued here (single-use each).
    fn render(&self, text: &str) -> Result<String, StepFail> {
        let mut missing = Default::default();
        let lookup = |n: &str| -> Option<String> {
            if n == "run_id" {
                return Some(self.run_id.to_string());
            }
            if let Some(a) = n.strip_prefix("artifact_url.") {
                return self.artifact_url(a);
            }
            self.vars.values.get(n).cloned()
        };
        let out = render::substitute(text, &lookup, &mut missing);
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(StepFail {
                exit_code: None,
                message: format!(
                    "no value for {}",
                    missing.into_iter().collect::<Vec<_>>().join(", ")
                ),
            })
        }
    }

    fn artifact_url(&self, name: &str) -> Option<String> {
        let a = self.artifacts.get(name)?.clone();
        let token = self.urls.issue(self.run_id, a);
        Some(format!(
            "{}{}/fetch/{token}",
            self.guest_base_url.trim_end_matches('/'),
            model::BASE
        ))
    }

    /// The serial console, opened (and driven) on first use.
    async fn console(&mut self) -> Result<&mut Console, StepFail> {
        if self.console.is_none() {
            let (vm_id, port) = open_console(self.state, self.vm).await?;
            let guard = self
                .state
                .serial
                .drive(&vm_id, &format!("provisioning run {}", self.href))
                .map_err(|e| StepFail {
                    exit_code: None,
                    message: e.to_string(),
                })?;
            self.console = Some((Console::attach(port), guard));
        }
        Ok(&mut self.console.as_mut().expect("set above").0)
    }

    /// The guest agent, connected on first use: retried until `within` passes (the agent
    /// starts with the guest).
    async fn agent(&mut self, within: Duration) -> Result<&mut Qga, StepFail> {
        if self.agent.is_none() {
            let t0 = Instant::now();
            let (_, path) = self
                .state
                .serial
                .agent_socket(self.state, self.vm)
                .await
                .map_err(|e| StepFail {
                    exit_code: None,
                    message: e.to_string(),
                })?;
            let q = loop {
                match Qga::connect(&path, Duration::from_secs(5)).await {
                    Ok(q) => break q,
                    Err(e) if t0.elapsed() >= within => {
                        return Err(StepFail {
                            exit_code: None,
                            message: format!(
                                "the guest agent did not answer within {} s: {e}",
                                within.as_secs()
                            ),
                        });
                    }
                    Err(QgaError::Connect { .. }) => {
                        tokio::time::sleep(Duration::from_millis(500)).await
                    }
                    Err(_) => {}
                }
            };
            self.agent = Some(q);
        }
        Ok(self.agent.as_mut().expect("set above"))
    }

    /// The ssh connection, set up over the console on first use.
    async fn ssh(&mut self, log: &mut StepLog<'_>) -> Result<&transport_ssh::Session, StepFail> {
        if self.ssh.is_none() {
            let (state, vm, run_id) = (self.state, self.vm, self.run_id);
            let user = self
                .vars
                .values
                .get("username")
                .cloned()
                .unwrap_or_else(|| "root".into());
            let console = self.console().await?;
            let s = transport_ssh::connect(state, vm, run_id, &user, console, &mut |l| {
                log.line(l)
            })
            .await
            .map_err(|message| StepFail {
                exit_code: None,
                message,
            })?;
            self.ssh = Some(s);
        }
        Ok(self.ssh.as_ref().expect("set above"))
    }

    /// Runs `cmd` over ssh (with `sh -c` in the guest): exit code and output (stdout, then
    /// stderr); past `timeout` it is killed in the guest too.
    async fn ssh_command(
        &mut self,
        log: &mut StepLog<'_>,
        cmd: &str,
        stdin: Stdin<'_>,
        timeout: Duration,
    ) -> Result<(i32, String), StepFail> {
        let s = self.ssh(log).await?;
        let e = s
            .ssh
            .run(cmd, stdin, timeout, &s.pidfile)
            .await
            .map_err(ssh_fail)?;
        let mut out = String::from_utf8_lossy(&e.stdout).into_owned();
        out.push_str(&e.stderr);
        Ok((e.exit_code, out))
    }

    /// Runs `cmd` with `sh -c` through the guest agent: exit code (128 + signal when killed)
    /// and output (stdout, then stderr).
    async fn agent_command(&mut self, cmd: &str, timeout: Duration) -> Result<(i32, String), StepFail> {
        let q = self.agent(Duration::from_secs(60)).await?;
        let o = q.exec("/bin/sh", &["-c", cmd], None, timeout).await?;
        let code = o
            .exit_code
            .unwrap_or_else(|| 128 + o.signal.unwrap_or(0));
        let mut out = String::from_utf8_lossy(&o.stdout).into_owned();
        out.push_str(&String::from_utf8_lossy(&o.stderr));
        if o.truncated {
            out.push_str("\n(output truncated by the guest agent)\n");
        }
        Ok((code, out))
    }

    /// Runs `cmd` in the guest: its exit code and output.
    async fn run(
        &mut self,
        log: &mut StepLog<'_>,
        via: Via,
        cmd: &str,
        timeout: Duration,
    ) -> Result<(i32, String), StepFail> {
        if via == Via::Transport && self.transport == Transport::GuestAgent {
            return self.agent_command(cmd, timeout).await;
        }
        if via == Via::Transport && self.transport == Transport::Ssh {
            return self.ssh_command(log, cmd, Stdin::None, timeout).await;
        }
        Ok(self.console().await?.command(cmd, timeout).await?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn command(
        &mut self,
        log: &mut StepLog<'_>,
        via: Via,
        cmd: &str,
        expect: &[i32],
        timeout: Duration,
        quiet: bool,
    ) -> Result<i32, StepFail> {
        if !quiet {
            log.line(&format!("$ {cmd}"));
        }
        let (code, out) = self.run(log, via, cmd, timeout).await?;
        if !quiet && !out.is_empty() {
            log.line(&out);
        }
        log.line(&format!("(exit {code})"));
        if expect.contains(&code) {
            Ok(code)
        } else {
            Err(bad_exit(code, expect))
        }
    }

    /// Writes `content` to `path` in the guest: base64 in chunks over the console (the chunks
    /// are not logged: they may carry a secret in another encoding).
    async fn write_content(
        &mut self,
        log: &mut StepLog<'_>,
        via: Via,
        path: &str,
        content: &[u8],
        mode: Option<&str>,
    ) -> Result<(), StepFail> {
        model::check_guest_path("path", path).map_err(|e| StepFail {
            exit_code: None,
            message: e.to_string(),
        })?;
        if via == Via::Transport && self.transport == Transport::GuestAgent {
            self.agent(Duration::from_secs(60))
                .await?
                .write_file(path, content)
                .await?;
            if let Some(m) = mode {
                let t = Duration::from_secs(60);
                self.command(log, via, &format!("chmod {m} '{path}'"), &[0], t, true)
                    .await?;
            }
            log.line(&format!(
                "wrote {} bytes to {path} through the guest agent",
                content.len()
            ));
            return Ok(());
        }
        if via == Via::Transport && self.transport == Transport::Ssh {
            // The content on stdin: nothing of it is on a command line or in a log.
            let q = hostplane_host::ssh::quote(path);
            let mut cmd = format!("cat > {q}");
            if let Some(m) = mode {
                cmd.push_str(&format!(" && chmod {m} {q}"));
            }
            let t = Duration::from_secs(60);
            let (code, out) = self.ssh_command(log, &cmd, Stdin::Bytes(content), t).await?;
            if code != 0 {
                log.line(&out);
                return Err(StepFail {
                    exit_code: Some(code),
                    message: format!("writing {path} over ssh failed (exit {code})"),
                });
            }
            log.line(&format!("wrote {} bytes to {path} over ssh", content.len()));
            return Ok(());
        }
        let via = Via::Console;
        let b64 = base64::engine::general_purpose::STANDARD.encode(content);
        let tmp = format!("/tmp/.hp-write-{}", self.run_id.get(..8).unwrap_or("x"));
        let t = Duration::from_secs(60);
        self.command(log, via, &format!(": > {tmp}"), &[0], t, true)
            .await?;
        for chunk in b64.as_bytes().chunks(512) {
            let chunk = std::str::from_utf8(chunk).unwrap_or_default();
            self.command(
                log,
                via,
                &format!("printf '%s' '{chunk}' >> {tmp}"),
                &[0],
                t,
                true,
            )
            .await?;
        }
        let mut cmd = format!("base64 -d {tmp} > '{path}' && rm -f {tmp}");
        if let Some(m) = mode {
            cmd.push_str(&format!(" && chmod {m} '{path}'"));
        }
        self.command(log, via, &cmd, &[0], t, true).await?;
        log.line(&format!("wrote {} bytes to {path}", content.len()));
        Ok(())
    }

    /// The guest fetches an artifact through a single-use URL and checks its sha256.
    async fn place(
        &mut self,
        log: &mut StepLog<'_>,
        via: Via,
        name: &str,
        dest: &str,
        mode: Option<&str>,
    ) -> Result<(), StepFail> {
        let a = self.artifacts.get(name).cloned().ok_or_else(|| StepFail {
            exit_code: None,
            message: format!("no artifact {name:?}"),
        })?;
        if via == Via::Transport && self.transport == Transport::Ssh {
            return self.place_over_ssh(log, name, &a, dest, mode).await;
        }
        let url = self.artifact_url(name).unwrap_or_default();
        // The URL's token is single-use; it is logged as the path only.
        log.line(&format!(
            "fetching artifact {name} ({} bytes, sha256 {}) to {dest}",
            a.size_bytes, a.sha256
        ));
        let mut cmd = format!(
            "wget -q -O '{dest}' '{url}' && echo '{}  {dest}' | sha256sum -c",
            a.sha256
        );
        if let Some(m) = mode {
            cmd.push_str(&format!(" && chmod {m} '{dest}'"));
        }
        let (code, out) = self.run(log, via, &cmd, Duration::from_secs(600)).await?;
        placed(log, "fetching", name, code, &out)
    }

    /// An artifact streamed from its file on the host to ssh's stdin, its sha256 checked in
    /// the guest (no run URL: the guest need not reach the daemon).
    async fn place_over_ssh(
        &mut self,
        log: &mut StepLog<'_>,
        name: &str,
        a: &Artifact,
        dest: &str,
        mode: Option<&str>,
    ) -> Result<(), StepFail> {
        model::check_guest_path("dest", dest).map_err(|e| StepFail {
            exit_code: None,
            message: e.to_string(),
        })?;
        let file = artifacts::dir_of(self.state)
            .map(|d| artifacts::path_of(&d, a))
            .map_err(|e| StepFail {
                exit_code: None,
                message: e.to_string(),
            })?;
        log.line(&format!(
            "copying artifact {name} ({} bytes, sha256 {}) to {dest} over ssh",
            a.size_bytes, a.sha256
        ));
        let q = hostplane_host::ssh::quote(dest);
        let mut cmd = format!(
            "cat > {q} && echo {} | sha256sum -c",
            hostplane_host::ssh::quote(&format!("{}  {dest}", a.sha256))
        );
        if let Some(m) = mode {
            cmd.push_str(&format!(" && chmod {m} {q}"));
        }
        let (code, out) = self
            .ssh_command(log, &cmd, Stdin::File(&file), Duration::from_secs(600))
            .await?;
        placed(log, "copying", name, code, &out)
    }

    async fn recipe_step(&mut self, log: &mut StepLog<'_>, s: &RecipeStep) -> Result<(), StepFail> {
        match s {
            RecipeStep::Wait {
                pattern,
                regex,
                timeout_secs,
            } => {
                let p = self.render(pattern)?;
                let pat = if *regex {
                    Pattern::Regex(regex::Regex::new(&format!("(?m){p}")).map_err(|e| {
                        StepFail {
                            exit_code: None,
                            message: format!("not a regex: {e}"),
                        }
                    })?)
                } else {
                    Pattern::Literal(p)
                };
                log.line(&format!("wait for {}", pat.describe()));
                let console = self.console().await?;
                let seen = console
                    .wait(&pat, Duration::from_secs(timeout_secs.unwrap_or(60)))
                    .await
                    .inspect_err(|_| {
                        let tail = tail(console.pending(), 2048);
                        log.line(&format!("console so far:\n{tail}"));
                    })?;
                log.line(&tail(&seen, 4096));
            }
            RecipeStep::Send { text, newline } => {
                let t = self.render(text)?;
                let shown = if self.redactor.contains_secret(&t) {
                    render::REDACTED.to_string()
                } else {
                    format!("{t:?}")
                };
                log.line(&format!("send {shown}"));
                let mut t = t;
                if *newline {
                    t.push('\n');
                }
                self.console().await?.send(&t).await;
            }
            RecipeStep::Command {
                command,
                expect_exit,
                timeout_secs,
            } => {
                let c = self.render(command)?;
                self.command(
                    log,
                    Via::Console,
                    &c,
                    expect_exit,
                    Duration::from_secs(timeout_secs.unwrap_or(120)),
                    false,
                )
                .await?;
            }
            RecipeStep::WriteFile {
                path,
                content,
                artifact,
                mode,
            } => {
                let path = self.render(path)?;
                match (content, artifact) {
                    (Some(c), _) => {
                        let c = self.render(c)?;
                        self.write_content(log, Via::Console, &path, c.as_bytes(), mode.as_deref())
                            .await?;
                    }
                    (None, Some(a)) => {
                        self.place(log, Via::Console, a, &path, mode.as_deref())
                            .await?
                    }
                    (None, None) => {}
                }
            }
            RecipeStep::Delay { millis } => {
                log.line(&format!("delay {millis} ms"));
                tokio::time::sleep(Duration::from_millis(*millis)).await;
            }
        }
        Ok(())
    }

    async fn provisioner(
        &mut self,
        log: &mut StepLog<'_>,
        index: usize,
        p: &Provisioner,
    ) -> Result<Option<i32>, StepFail> {
        match p {
            Provisioner::Shell {
                inline,
                script,
                valid_exit_codes,
                timeout_secs,
                retries,
                ..
            } => {
                let timeout = Duration::from_secs(timeout_secs.unwrap_or(300));
                let mut attempt = 0;
                loop {
                    let res = self
                        .shell(log, index, inline, script.as_deref(), valid_exit_codes, timeout)
                        .await;
                    match res {
                        Err(e) if attempt < *retries && e.exit_code.is_some() => {
                            attempt += 1;
                            log.line(&format!(
                                "{}; retry {attempt} of {retries}",
                                e.message
                            ));
                        }
                        other => return other.map(Some),
                    }
                }
            }
            Provisioner::File {
                artifact,
                dest,
                mode,
                ..
            } => {
                self.place(log, Via::Transport, artifact, dest, mode.as_deref())
                    .await?;
                Ok(Some(0))
            }
        }
    }

    async fn shell(
        &mut self,
        log: &mut StepLog<'_>,
        index: usize,
        inline: &[String],
        script: Option<&str>,
        valid: &[i32],
        timeout: Duration,
    ) -> Result<i32, StepFail> {
        if let Some(s) = script {
            let s = self.render(s)?;
            let path = format!("/tmp/.hp-provision-{index}.sh");
            self.write_content(log, Via::Transport, &path, s.as_bytes(), Some("0700"))
                .await?;
            return self
                .command(log, Via::Transport, &format!("sh {path}"), valid, timeout, false)
                .await;
        }
        let mut last = 0;
        for c in inline {
            let c = self.render(c)?;
            last = self
                .command(log, Via::Transport, &c, valid, timeout, false)
                .await?;
        }
        Ok(last)
    }
}

fn ssh_fail(e: SshError) -> StepFail {
    StepFail {
        exit_code: None,
        message: e.to_string(),
    }
}

fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &s[cut..])
}

fn save(state: &AppState, rec: &mut RunRecord) {
    rec.run.updated_at = time::now_string();
    if let Err(e) = model::put(&state.store, "run", &rec.run.id, rec, false) {
        tracing::warn!(run = rec.run.id, "saving the provisioning run: {e}");
    }
}

/// Starts the VM when it is stopped and opens its serial console.
async fn boot(
    state: &AppState,
    vm: &str,
    actor: &str,
    log: &mut StepLog<'_>,
) -> Result<(), StepFail> {
    let fail = |e: ApiError| StepFail {
        exit_code: None,
        message: e.to_string(),
    };
    let p = state.workloads.provider("vm").ok_or_else(|| StepFail {
        exit_code: None,
        message: "no VM provider".into(),
    })?;
    let st = p.status(state, vm).await.map_err(fail)?;
    if st.running {
        log.line("the VM is running");
        return Ok(());
    }
    log.line("starting the VM");
    p.start(state, vm, actor).await.map_err(fail)?;
    Ok(())
}

/// The job: runs the plan from step `from` on.
pub async fn execute(
    state: AppState,
    ctx: Arc<JobCtx>,
    run_id: String,
    actor: String,
    urls: Arc<GuestUrls>,
) -> Result<ProvisioningRun, JobFailure> {
    let internal = |e: ApiError| JobFailure::new("internal", e.to_string());
    let mut rec = model::find_run(&state.store, &run_id).map_err(internal)?;
    let run_vars: BTreeMap<String, String> = {
        let sealed = hex::decode(&rec.vars_sealed).unwrap_or_default();
        let plain = state.secrets.open(&sealed).map_err(internal)?;
        serde_json::from_slice(&plain).unwrap_or_default()
    };
    let prep = match prepare(&state, &rec.run.profile, &run_vars) {
        Ok(p) => p,
        Err(e) => {
            rec.run.status = RunStatus::Failed;
            rec.run.failed_step = None;
            save(&state, &mut rec);
            return Err(JobFailure::new("provisioning_invalid", e.to_string()));
        }
    };
    let redactor = prep.vars.redactor();
    let names = plan(&prep.profile);
    let from = resume_index(&rec.run.steps).min(names.len());
    rec.run.steps = steps_for_attempt(&names, &rec.run.steps, from, &rec.skip);
    rec.run.status = RunStatus::Running;
    rec.run.failed_step = None;
    rec.run.job = ctx.href().to_string();
    save(&state, &mut rec);
    ctx.log(format!(
        "provisioning {} with profile {} (attempt {}), from step {}",
        rec.run.vm,
        rec.run.profile,
        rec.run.attempts,
        names.get(from).map(String::as_str).unwrap_or("(none)")
    ));

    let res = drive(&state, &ctx, &mut rec, &prep, &redactor, &urls, from, &actor).await;
    urls.revoke_run(&run_id);
    match res {
        Ok(()) => {
            rec.run.status = RunStatus::Success;
            save(&state, &mut rec);
            ctx.log("provisioning finished");
            Ok(rec.run)
        }
        Err((step, msg)) => {
            rec.run.status = RunStatus::Failed;
            rec.run.failed_step = Some(step.clone());
            save(&state, &mut rec);
            let msg = redactor.apply(&format!("step {step} failed: {msg}"));
            ctx.log(&msg);
            Err(JobFailure::new("provisioning_step_failed", msg).with_result(&rec.run))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    state: &AppState,
    ctx: &Arc<JobCtx>,
    rec: &mut RunRecord,
    prep: &Prepared,
    redactor: &Redactor,
    urls: &GuestUrls,
    from: usize,
    actor: &str,
) -> Result<(), (String, String)> {
    let total = rec.run.steps.len().max(1);
    let mut driver: Option<Driver> = None;
    let href = rec.run.href.clone();
    let run_id = rec.run.id.clone();
    let base = rec.guest_base_url.clone();
    let vm = rec.run.vm.clone();
    let mut result = Ok(());
    for i in from..rec.run.steps.len() {
        let name = rec.run.steps[i].name.clone();
        if rec.run.steps[i].status == StepStatus::Skipped {
            ctx.log(format!("step {name}: skipped"));
            continue;
        }
        if ctx.is_cancelled() {
            result = Err((name, "cancelled".into()));
            break;
        }
        rec.run.steps[i].status = StepStatus::Running;
        save(state, rec);
        let t0 = Instant::now();
        let mut log = StepLog {
            text: String::new(),
            redactor,
        };
        let res: Result<Option<i32>, StepFail> = async {
            if name == "boot" {
                boot(state, &vm, actor, &mut log).await?;
                return Ok(None);
            }
            if driver.is_none() {
                driver = Some(Driver {
                    state,
                    vm: &vm,
                    href: &href,
                    transport: prep.profile.transport,
                    console: None,
                    agent: None,
                    ssh: None,
                    vars: &prep.vars,
                    redactor,
                    artifacts: &prep.artifacts,
                    urls,
                    run_id: &run_id,
                    guest_base_url: &base,
                });
            }
            let d = driver.as_mut().expect("set above");
            match name.as_str() {
                "setup" => {
                    for s in &prep.recipe.steps {
                        d.recipe_step(&mut log, s).await?;
                    }
                    Ok(None)
                }
                "wait_ready" => {
                    if d.transport == Transport::GuestAgent {
                        let t0 = Instant::now();
                        d.agent(AGENT_READY).await?;
                        log.line(&format!(
                            "the guest agent answered after {:.1} s",
                            t0.elapsed().as_secs_f64()
                        ));
                    }
                    if d.transport == Transport::Ssh {
                        d.ssh(&mut log).await?;
                    }
                    let code = d
                        .command(
                            &mut log,
                            Via::Transport,
                            "true",
                            &[0],
                            Duration::from_secs(120),
                            false,
                        )
                        .await?;
                    Ok(Some(code))
                }
                "artifacts" => {
                    for a in &prep.profile.artifacts {
                        d.place(
                            &mut log,
                            Via::Transport,
                            &a.artifact,
                            &a.dest,
                            a.mode.as_deref(),
                        )
                        .await?;
                    }
                    Ok(None)
                }
                _ => {
                    let idx: usize = name
                        .split(':')
                        .nth(1)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let p = prep
                        .profile
                        .provisioners
                        .get(idx.wrapping_sub(1))
                        .ok_or_else(|| StepFail {
                            exit_code: None,
                            message: "no such provisioner".into(),
                        })?;
                    d.provisioner(&mut log, idx, p).await
                }
            }
        }
        .await;
        let step = &mut rec.run.steps[i];
        step.duration_ms = Some(t0.elapsed().as_millis() as u64);
        step.log = tail(&log.text, STEP_LOG_MAX);
        match res {
            Ok(code) => {
                step.status = StepStatus::Success;
                step.exit_code = code;
                ctx.log(format!(
                    "step {name}: success{} in {:.1} s",
                    code.map(|c| format!(" (exit {c})")).unwrap_or_default(),
                    t0.elapsed().as_secs_f64()
                ));
            }
            Err(f) => {
                step.status = StepStatus::Failed;
                step.exit_code = f.exit_code;
                let msg = redactor.apply(&f.message);
                step.error = Some(msg.clone());
                save(state, rec);
                result = Err((name, msg));
                break;
            }
        }
        ctx.progress(((i + 1) * 100 / total).min(99) as u8);
        save(state, rec);
    }
    // The run's ssh key leaves the guest, its directory the host.
    if let Some(s) = driver.and_then(|d| d.ssh) {
        s.finish().await;
    }
    result
}

async fn open_console(
    state: &AppState,
    vm: &str,
) -> Result<(String, Arc<dyn crate::platform::serial::SerialPort>), StepFail> {
    let t0 = Instant::now();
    loop {
        match state.serial.open(state, vm).await {
            Ok(v) => return Ok(v),
            Err(e) if t0.elapsed() > Duration::from_secs(60) => {
                return Err(StepFail {
                    exit_code: None,
                    message: format!("the VM's serial console: {e}"),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}


/// The end of placing an artifact in the guest (`how`: fetching or copying): its output and
/// exit code logged, and a failure when the copy or its sha256 check failed.
fn placed(
    log: &mut StepLog<'_>,
    how: &str,
    name: &str,
    code: i32,
    out: &str,
) -> Result<(), StepFail> {
    if !out.is_empty() {
        log.line(out);
    }
    log.line(&format!("(exit {code})"));
    if code != 0 {
        return Err(StepFail {
            exit_code: Some(code),
            message: format!(
                "{how} artifact {name} into the guest or checking its sha256 failed (exit {code})"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, status: StepStatus) -> RunStep {
        RunStep {
            name: name.into(),
            status,
            exit_code: None,
            duration_ms: Some(1),
            log: "old".into(),
            error: None,
        }
    }

    #[test]
    fn retry_resumes_at_the_failed_step_and_keeps_earlier_ones() {
        let prev = vec![
            step("boot", StepStatus::Success),
            step("setup", StepStatus::Success),
            step("wait_ready", StepStatus::Success),
            step("artifacts", StepStatus::Skipped),
            step("provisioner:1:a", StepStatus::Success),
            step("provisioner:2:b", StepStatus::Failed),
        ];
        let from = resume_index(&prev);
        assert_eq!(from, 5);
        let names: Vec<String> = prev.iter().map(|s| s.name.clone()).collect();
        let mut names2 = names.clone();
        names2.push("provisioner:3:c".into());
        let s = steps_for_attempt(&names2, &prev, from, &["artifacts".into()]);
        assert_eq!(s[4].log, "old");
        assert_eq!(s[5].status, StepStatus::Pending);
        assert_eq!(s[6].status, StepStatus::Pending);
        assert_eq!(resume_index(&[step("boot", StepStatus::Success)]), 1);
        let fresh = steps_for_attempt(&names, &[], 0, &["provisioners".into()]);
        assert_eq!(fresh[5].status, StepStatus::Skipped);
        assert_eq!(fresh[0].status, StepStatus::Pending);
    }
}
