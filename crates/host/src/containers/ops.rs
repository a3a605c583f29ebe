//! Container and image operations on one [`Engine`]. Inputs are validated by the caller;
//! every call that is not a stream is bounded (see [`Engine::bounded`]).

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, KillContainerOptions,
    ListContainersOptions, ListImagesOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, RestartContainerOptions, StartContainerOptions, StopContainerOptions,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use hostplane_types::containers::{
    Container, ContainerCreate, ContainerImage, ExecRequest, ExecResult,
};

use super::cache::Seen;
use super::convert::{container_of, create_body, image_of};
use super::{Engine, EngineError, EngineResult};

/// Most bytes an exec keeps per stream.
pub const EXEC_OUTPUT_MAX: usize = 1 << 20;
/// Inspections of a listing in flight at once.
const LIST_CONCURRENCY: usize = 8;

/// A lifecycle action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    /// Stop: SIGTERM, then SIGKILL after this many seconds.
    Stop(u32),
    Restart(u32),
    Kill,
    Pause,
    Unpause,
}

/// What `logs` returns.
#[derive(Debug, Clone, Default)]
pub struct LogsQuery {
    pub follow: bool,
    /// Lines from the end; None = all.
    pub tail: Option<u64>,
    /// Unix seconds.
    pub since: Option<i64>,
    pub timestamps: bool,
}

impl Engine {
    /// Every container on the engine (running or not), inspected: one listing, then the
    /// inspections the cache ([`super::cache`]) does not hold validly.
    pub async fn list_containers(&self) -> EngineResult<Vec<Container>> {
        let docker = self.client().await?;
        let opts = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let summaries = self.bounded(docker.list_containers(Some(opts))).await?;
        let listed: Vec<(String, Seen)> = summaries
            .into_iter()
            .filter_map(|s| {
                let seen = Seen {
                    name: s
                        .names
                        .as_ref()
                        .and_then(|n| n.first())
                        .cloned()
                        .unwrap_or_default(),
                    state: s.state.map(|st| format!("{st:?}")).unwrap_or_default(),
                    image_id: s.image_id.unwrap_or_default(),
                };
                Some((s.id?, seen))
            })
            .collect();
        let (generation, hits) = self.cache.lookup(&listed);
        let missing: Vec<(String, Seen)> = listed
            .iter()
            .zip(&hits)
            .filter(|(_, h)| h.is_none())
            .map(|(l, _)| l.clone())
            .collect();
        self.inspections
            .fetch_add(missing.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let results: Vec<((String, Seen), EngineResult<Container>)> =
            futures_util::stream::iter(missing)
                .map(|l| async move {
                    let r = self.inspect(&l.0).await;
                    (l, r)
                })
                .buffered(LIST_CONCURRENCY)
                .collect()
                .await;
        let mut out: Vec<Container> = hits.into_iter().flatten().collect();
        let mut fresh = Vec::new();
        for (l, r) in results {
            match r {
                Ok(c) => {
                    fresh.push((l.0, l.1, c.clone()));
                    out.push(c);
                }
                // Removed between the listing and its inspection.
                Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let ids: Vec<String> = listed.into_iter().map(|l| l.0).collect();
        self.cache.store(generation, &ids, fresh);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The running containers: `(id, name)` from one listing (no inspection).
    pub async fn running(&self) -> EngineResult<Vec<(String, String)>> {
        let docker = self.client().await?;
        let opts = ListContainersOptions {
            all: false,
            ..Default::default()
        };
        let summaries = self.bounded(docker.list_containers(Some(opts))).await?;
        Ok(summaries
            .into_iter()
            .filter_map(|s| {
                let id = s.id?;
                let name = s
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_else(|| id.clone());
                Some((id, name))
            })
            .collect())
    }

    /// A running container's init pid (its `State.Pid`; None when it does not run).
    pub async fn init_pid(&self, id: &str) -> EngineResult<Option<u32>> {
        let docker = self.client().await?;
        let c = self
            .bounded(docker.inspect_container(id, None::<InspectContainerOptions>))
            .await?;
        Ok(c.state
            .and_then(|s| s.pid)
            .filter(|p| *p > 0)
            .map(|p| p as u32))
    }

    /// One container by name or id.
    pub async fn inspect(&self, name: &str) -> EngineResult<Container> {
        let docker = self.client().await?;
        let c = self
            .bounded(docker.inspect_container(name, None::<InspectContainerOptions>))
            .await?;
        Ok(container_of(self.name(), c))
    }

    /// Creates (does not start) a container; answers it as inspected.
    pub async fn create(&self, req: &ContainerCreate) -> EngineResult<Container> {
        let docker = self.client().await?;
        let opts = CreateContainerOptions {
            name: Some(req.name.clone()),
            ..Default::default()
        };
        let created = self
            .bounded(docker.create_container(Some(opts), create_body(req)))
            .await;
        self.cache.forget_all();
        self.inspect(&created?.id).await
    }

    /// Runs a lifecycle action (a stop waits up to its grace time, plus the request timeout).
    pub async fn act(&self, name: &str, action: Action) -> EngineResult<()> {
        let r = self.act_now(name, action).await;
        self.cache.forget_all();
        r
    }

    async fn act_now(&self, name: &str, action: Action) -> EngineResult<()> {
        let docker = self.client().await?;
        match action {
            Action::Start => {
                self.bounded(docker.start_container(name, None::<StartContainerOptions>))
                    .await
            }
            Action::Stop(t) => {
                let opts = StopContainerOptions {
                    t: Some(t as i32),
                    signal: None,
                };
                self.bounded_for(
                    self.timeout() + Duration::from_secs(t.into()),
                    docker.stop_container(name, Some(opts)),
                )
                .await
            }
            Action::Restart(t) => {
                let opts = RestartContainerOptions {
                    t: Some(t as i32),
                    signal: None,
                };
                self.bounded_for(
                    self.timeout() + Duration::from_secs(t.into()),
                    docker.restart_container(name, Some(opts)),
                )
                .await
            }
            Action::Kill => {
                let opts = KillContainerOptions {
                    signal: "SIGKILL".into(),
                };
                self.bounded(docker.kill_container(name, Some(opts))).await
            }
            Action::Pause => self.bounded(docker.pause_container(name)).await,
            Action::Unpause => self.bounded(docker.unpause_container(name)).await,
        }
    }

    pub async fn remove(&self, name: &str, force: bool, volumes: bool) -> EngineResult<()> {
        let docker = self.client().await?;
        let opts = RemoveContainerOptions {
            force,
            v: volumes,
            link: false,
        };
        let r = self
            .bounded(docker.remove_container(name, Some(opts)))
            .await;
        self.cache.forget_all();
        r
    }

    /// The container's log as a byte stream (stdout and stderr interleaved as written).
    /// Check that the container exists first: an error surfaces only with the first chunk.
    pub async fn logs(
        &self,
        name: &str,
        q: &LogsQuery,
    ) -> EngineResult<impl Stream<Item = Result<Bytes, EngineError>> + Send + 'static> {
        let docker = self.client().await?;
        let opts = LogsOptions {
            follow: q.follow,
            stdout: true,
            stderr: true,
            since: q.since.unwrap_or(0).clamp(0, i32::MAX as i64) as i32,
            until: 0,
            timestamps: q.timestamps,
            tail: q
                .tail
                .map(|t| t.to_string())
                .unwrap_or_else(|| "all".into()),
        };
        let engine = self.name().to_string();
        Ok(docker
            .logs(name, Some(opts))
            .map_ok(|o| o.into_bytes())
            .map_err(move |e| EngineError::from_bollard(&engine, e)))
    }

    /// Runs a command to completion (no TTY) and collects its output and exit code.
    pub async fn exec(&self, name: &str, req: &ExecRequest) -> EngineResult<ExecResult> {
        let docker = self.client().await?;
        let config = CreateExecOptions::<String> {
            cmd: Some(req.cmd.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: (!req.env.is_empty())
                .then(|| req.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: req.user.clone(),
            working_dir: req.workdir.clone(),
            ..Default::default()
        };
        let id = self.bounded(docker.create_exec(name, config)).await?.id;
        let started = self
            .bounded(docker.start_exec(
                &id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            ))
            .await?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(EngineError::Failed("exec did not attach".into()));
        };
        let limit = Duration::from_secs(req.timeout_secs.unwrap_or(60));
        let mut res = ExecResult {
            stdout: String::new(),
            stderr: String::new(),
            exit_code: None,
            truncated: false,
            timed_out: false,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read = async {
            while let Some(chunk) = output.next().await {
                let (buf, bytes) = match chunk.map_err(|e| self.map_err(e))? {
                    bollard::container::LogOutput::StdErr { message } => (&mut err, message),
                    other => (&mut out, other.into_bytes()),
                };
                let room = EXEC_OUTPUT_MAX.saturating_sub(buf.len());
                if bytes.len() > room {
                    res.truncated = true;
                }
                buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Ok::<_, EngineError>(())
        };
        match tokio::time::timeout(limit, read).await {
            Ok(r) => r?,
            Err(_) => res.timed_out = true,
        }
        if !res.timed_out {
            let info = self.bounded(docker.inspect_exec(&id)).await?;
            res.exit_code = info.exit_code;
        }
        res.stdout = String::from_utf8_lossy(&out).into_owned();
        res.stderr = String::from_utf8_lossy(&err).into_owned();
        Ok(res)
    }

    pub async fn list_images(&self) -> EngineResult<Vec<ContainerImage>> {
        let docker = self.client().await?;
        let images = self
            .bounded(docker.list_images(None::<ListImagesOptions>))
            .await?;
        let mut out: Vec<ContainerImage> = images
            .into_iter()
            .map(|i| image_of(self.name(), i))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Imports a root filesystem tarball as image `repo:tag` (the engine's `fromSrc=-`), with
    /// the body streamed through. Answers the image id.
    pub async fn import_rootfs(
        &self,
        repo: &str,
        tag: &str,
        body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> EngineResult<String> {
        let docker = self.client().await?;
        let opts = CreateImageOptions {
            from_src: Some("-".into()),
            // podman 4.3 ignores `tag` on an import (and tags `latest`); both engines take
            // the tag inside `repo`.
            repo: Some(format!("{repo}:{tag}")),
            tag: None,
            ..Default::default()
        };
        let progress = docker.create_image(Some(opts), Some(bollard::body_try_stream(body)), None);
        // An import of a large tarball takes as long as the upload: no fixed deadline here, the
        // body's own limits (size, client timeouts) bound it.
        let infos: Vec<_> = progress.try_collect().await.map_err(|e| self.map_err(e))?;
        // dockerd answers the new id in `status`, podman in `id` as well.
        let id = infos
            .iter()
            .rev()
            .find_map(|i| {
                i.status
                    .as_deref()
                    .filter(|s| s.starts_with("sha256:"))
                    .or(i.id.as_deref().filter(|s| s.starts_with("sha256:")))
            })
            .map(str::to_string);
        match id {
            Some(id) => Ok(id),
            None => Ok(self
                .bounded(docker.inspect_image(&format!("{repo}:{tag}")))
                .await?
                .id
                .unwrap_or_default()),
        }
    }

    pub async fn remove_image(&self, image: &str, force: bool) -> EngineResult<()> {
        let docker = self.client().await?;
        let opts = RemoveImageOptions {
            force,
            noprune: false,
            platforms: None,
        };
        self.bounded(docker.remove_image(image, Some(opts), None))
            .await
            .map(|_| ())
    }
}
