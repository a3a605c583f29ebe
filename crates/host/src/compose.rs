//! Compose stacks through Debian's `docker-compose` (1.29, the Python v1), one run per action.
//!
//! Flow: the server's stacks area has validated the stack's name and stored its files in the
//! stack's directory; [`run`] starts `docker-compose -p NAME -f DIR/docker-compose.yml
//! --project-directory DIR [--env-file DIR/.env] ACTION ...` through the command runner (argv,
//! no shell) with `DOCKER_HOST` set to the engine's socket, and hands back what it printed.
//! The stack's containers are found by their `com.docker.compose.project` label on the engine
//! ([`project_containers`], through bollard like every other engine read).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use futures_util::StreamExt;
use hostplane_types::containers::Container;

use crate::command::{Cmd, CommandError, Output, validate_name};
use crate::containers::{Engine, EngineError, EngineResult};

/// The program.
pub const PROGRAM: &str = "docker-compose";
/// The label compose puts on every container of a project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label compose puts on each container with its service's name.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The compose file's name in a stack's directory.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
/// The environment file's name in a stack's directory.
pub const ENV_FILE: &str = ".env";

/// What a stack action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `up -d --no-color --remove-orphans` (creates and starts; never builds).
    Up,
    /// `down --remove-orphans` (stops and removes containers and the project's networks; named
    /// volumes stay).
    Down,
    Restart,
    Pull,
    /// `config`: checks the file as compose reads it and prints it resolved (interpolation,
    /// `.env`, relative paths made absolute).
    Check,
}

impl Action {
    pub fn word(self) -> &'static str {
        match self {
            Action::Up => "up",
            Action::Down => "down",
            Action::Restart => "restart",
            Action::Pull => "pull",
            Action::Check => "check",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Action::Up => &["up", "-d", "--no-color", "--remove-orphans", "--no-build"],
            Action::Down => &["down", "--remove-orphans"],
            Action::Restart => &["restart"],
            Action::Pull => &["pull"],
            Action::Check => &["config"],
        }
    }
}

/// One stack on disk: its project name, directory and engine socket.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub dir: PathBuf,
    /// The engine's unix socket path.
    pub socket: PathBuf,
}

impl Project {
    fn cmd(&self, timeout: Duration) -> Result<Cmd, CommandError> {
        validate_name("stack", &self.name)?;
        let mut c = Cmd::new(PROGRAM)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            // No user's configuration or credential helpers: the daemon's own, empty one.
            .env("DOCKER_CONFIG", self.dir.join(".docker"))
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
            .cwd(&self.dir)
            .timeout(timeout)
            .arg("--no-ansi")
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(self.dir.join(COMPOSE_FILE))
            .arg("--project-directory")
            .arg(&self.dir);
        let env = self.dir.join(ENV_FILE);
        if env.exists() {
            c = c.arg("--env-file").arg(env);
        }
        Ok(c)
    }

    /// Runs `action`; compose writes its progress to stderr, which is returned with stdout.
    pub async fn run(&self, action: Action, timeout: Duration) -> Result<Output, CommandError> {
        self.cmd(timeout)?.args(action.args()).run().await
    }

    /// The last `tail` lines of every service's log, without colours.
    pub async fn logs(&self, tail: u64, timeout: Duration) -> Result<String, CommandError> {
        let out = self
            .cmd(timeout)?
            .args(["logs", "--no-color", "--tail"])
            .arg(tail.to_string())
            .max_stdout(16 << 20)
            .run()
            .await?;
        Ok(out.stdout_lossy().into_owned())
    }
}

/// Whether `docker-compose` is installed.
pub fn available() -> bool {
    crate::command::which(PROGRAM).is_some()
}

/// The stack directory's files, as paths.
pub fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(COMPOSE_FILE), dir.join(ENV_FILE))
}

/// The containers of compose project `project` on `engine` (running or not), inspected.
pub async fn project_containers(engine: &Engine, project: &str) -> EngineResult<Vec<Container>> {
    let docker = engine.client().await?;
    let mut filters = std::collections::HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![format!("{PROJECT_LABEL}={project}")],
    );
    let opts = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    let summaries = engine.bounded(docker.list_containers(Some(opts))).await?;
    let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
    let results: Vec<EngineResult<Container>> = futures_util::stream::iter(ids)
        .map(|id| async move { engine.inspect(&id).await })
        .buffered(8)
        .collect()
        .await;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(c) if c.stack.as_deref() == Some(project) => out.push(c),
            Ok(_) | Err(EngineError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A container's run state for a start order: whether it runs, and its health check's status
/// (`starting`, `healthy`, `unhealthy`) when it has one.
pub async fn run_state(engine: &Engine, name: &str) -> EngineResult<(bool, Option<String>)> {
    let docker = engine.client().await?;
    let c = engine
        .bounded(docker.inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        ))
        .await?;
    let st = c.state.unwrap_or_default();
    let running = st.running.unwrap_or(false);
    let health = st
        .health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    Ok((running, health))
}
