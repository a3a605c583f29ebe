//! Terminal exec: a command with a PTY inside a running container, attached both ways.
//!
//! Flow: [`Engine::create_tty_exec`] creates the exec (not started) when the API hands out a
//! ticket; the WebSocket, once open, calls [`Engine::attach_tty_exec`] (which checks the exec
//! belongs to the container and never ran, then starts it attached over the engine's hijacked
//! connection), pumps bytes both ways, forwards window sizes with [`Engine::resize_exec`], and
//! reads the exit code with [`Engine::exec_exit_code`] once the output ends.

use std::pin::Pin;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures_util::Stream;
use hostplane_types::containers::ExecRequest;
use tokio::io::AsyncWrite;

use super::{Engine, EngineError, EngineResult};

/// The PTY of a started exec: its output and its input.
pub struct TtyExec {
    pub output: Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl Engine {
    /// Creates (does not start) an exec with a PTY and stdin in container `name`; answers its id.
    pub async fn create_tty_exec(&self, name: &str, req: &ExecRequest) -> EngineResult<String> {
        let docker = self.client().await?;
        let config = CreateExecOptions::<String> {
            cmd: Some(req.cmd.clone()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(true),
            env: Some(
                // A terminal without TERM is hardly usable; the caller's value wins.
                std::iter::once(("TERM".to_string(), "xterm".to_string()))
                    .filter(|(k, _)| !req.env.contains_key(k))
                    .chain(req.env.iter().map(|(k, v)| (k.clone(), v.clone())))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            user: req.user.clone(),
            working_dir: req.workdir.clone(),
            ..Default::default()
        };
        Ok(self.bounded(docker.create_exec(name, config)).await?.id)
    }

    /// Starts exec `id` of container `name` attached with its PTY. 404 when the exec does not
    /// exist or belongs to another container; 409 when it already ran.
    pub async fn attach_tty_exec(&self, name: &str, id: &str) -> EngineResult<TtyExec> {
        let docker = self.client().await?;
        let info = self.bounded(docker.inspect_exec(id)).await?;
        let container = self.inspect(name).await?;
        if info.container_id.as_deref() != Some(container.id.as_str()) {
            return Err(EngineError::NotFound(format!(
                "no exec {id:?} in container {name:?}"
            )));
        }
        // A started exec has a process id (kept after it ends); podman reports exit code 0
        // for one never started, so the exit code does not tell.
        if info.running == Some(true) || info.pid.is_some_and(|p| p > 0) {
            return Err(EngineError::Conflict(format!("exec {id:?} already ran")));
        }
        let started = self
            .bounded(docker.start_exec(
                id,
                Some(StartExecOptions {
                    detach: false,
                    tty: true,
                    output_capacity: None,
                }),
            ))
            .await?;
        match started {
            StartExecResults::Attached { output, input } => Ok(TtyExec { output, input }),
            StartExecResults::Detached => Err(EngineError::Failed("exec did not attach".into())),
        }
    }

    /// Sets the PTY size of a running exec.
    pub async fn resize_exec(&self, id: &str, cols: u16, rows: u16) -> EngineResult<()> {
        let docker = self.client().await?;
        self.bounded(docker.resize_exec(
            id,
            ResizeExecOptions {
                height: rows,
                width: cols,
            },
        ))
        .await
    }

    /// The exit code of an exec that ended (None while it runs).
    pub async fn exec_exit_code(&self, id: &str) -> EngineResult<Option<i64>> {
        let docker = self.client().await?;
        let info = self.bounded(docker.inspect_exec(id)).await?;
        Ok(if info.running == Some(true) {
            None
        } else {
            info.exit_code
        })
    }
}
