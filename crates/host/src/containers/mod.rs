//! Docker Engine API engines (dockerd, podman's Docker-compatible service) through `bollard`.
//!
//! Flow: the server's containers area holds one [`Engine`] per configured socket. Each call
//! gets the engine's client ([`Engine::client`]: connected and version-negotiated once, on first
//! success, so an engine that starts after the daemon is picked up), runs one bollard request
//! under a deadline ([`Engine::bounded`]: bollard's own timeout covers only the response head),
//! and turns bollard's error into an [`EngineError`] the server maps to a status. Engine
//! models become `hostplane_types::containers` values in [`convert`]. No shell, no CLI: names
//! and references were validated by the caller and travel as URL path segments or JSON.

pub mod cache;
pub mod cgroup;
pub mod convert;
pub mod events;
pub mod exec;
pub mod files;
pub mod images;
pub mod networks;
pub mod ops;
pub mod registry;
pub mod stats;
pub mod update;
pub mod volumes;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use hostplane_types::containers::{ContainerEngine, EngineDriver};
use tokio::sync::Mutex;

/// Why an engine call failed, in the terms the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Not reachable, or no answer within the deadline (503).
    #[error("container engine {engine:?} is unavailable: {detail}")]
    Unavailable { engine: String, detail: String },
    /// The engine says the container, image or exec does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The engine refused because of the object's state (409: running, in use, exists).
    #[error("{0}")]
    Conflict(String),
    /// The engine refused the request's values (422).
    #[error("{0}")]
    Rejected(String),
    /// The engine failed (its 5xx, or an answer bollard could not read).
    #[error("{0}")]
    Failed(String),
}

impl EngineError {
    /// Maps a bollard error of engine `engine`.
    pub fn from_bollard(engine: &str, e: bollard::errors::Error) -> EngineError {
        use bollard::errors::Error as B;
        match e {
            B::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => EngineError::NotFound(message),
                409 => EngineError::Conflict(message),
                400..=499 => EngineError::Rejected(message),
                // podman answers 500 where dockerd answers 409 (pause a stopped container,
                // remove a running one): its message names the state.
                500 if message.contains("state improper") => EngineError::Conflict(message),
                _ => EngineError::Failed(format!("engine {engine:?}: {message}")),
            },
            B::DockerStreamError { error } => EngineError::Failed(error),
            B::JsonDataError { message, .. } => {
                EngineError::Failed(format!("engine {engine:?}: unreadable answer: {message}"))
            }
            B::JsonSerdeError { err } => {
                EngineError::Failed(format!("engine {engine:?}: unreadable answer: {err}"))
            }
            B::RequestTimeoutError => EngineError::Unavailable {
                engine: engine.to_string(),
                detail: "no answer in time".into(),
            },
            other => EngineError::Unavailable {
                engine: engine.to_string(),
                detail: other.to_string(),
            },
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// The socket paths tried when no engine is configured, with the engine name each gets.
pub const DEFAULT_SOCKETS: &[(&str, &str)] = &[
    ("docker", "/run/docker.sock"),
    ("podman", "/run/podman/podman.sock"),
];

/// One engine: a name and a unix socket.
pub struct Engine {
    name: String,
    socket: PathBuf,
    /// Deadline of one request that is not a stream.
    timeout: Duration,
    /// The negotiated client, once the engine answered.
    client: Mutex<Option<(Docker, String)>>,
    /// Container inspections kept between listings ([`cache`]).
    cache: std::sync::Arc<cache::InspectCache>,
    /// Inspections a listing made (the cache's misses), for tests and benchmarks.
    inspections: std::sync::atomic::AtomicU64,
}

impl Engine {
    pub fn new(name: &str, socket: &Path, timeout: Duration) -> Engine {
        Engine {
            name: name.to_string(),
            socket: socket.to_path_buf(),
            timeout,
            client: Mutex::new(None),
            cache: Default::default(),
            inspections: Default::default(),
        }
    }

    /// The inspections kept between listings: the event follower marks it live and
    /// invalidates it; every mutating call here drops it.
    pub fn cache(&self) -> &cache::InspectCache {
        &self.cache
    }

    /// Inspections listings made so far (each a cache miss).
    pub fn inspections(&self) -> u64 {
        self.inspections.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn unavailable(&self, detail: impl Into<String>) -> EngineError {
        EngineError::Unavailable {
            engine: self.name.clone(),
            detail: detail.into(),
        }
    }

    pub fn map_err(&self, e: bollard::errors::Error) -> EngineError {
        EngineError::from_bollard(&self.name, e)
    }

    /// Runs `fut` under `timeout` (an engine that accepts and never answers is unavailable).
    pub async fn bounded_for<T>(
        &self,
        timeout: Duration,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> EngineResult<T> {
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r.map_err(|e| self.map_err(e)),
            Err(_) => {
                Err(self.unavailable(format!("no answer within {} s", timeout.as_secs_f64())))
            }
        }
    }

    /// [`Engine::bounded_for`] with the engine's request timeout.
    pub async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> EngineResult<T> {
        self.bounded_for(self.timeout, fut).await
    }

    /// The client, version-negotiated; connects on first use (and again after a failure).
    pub async fn client(&self) -> EngineResult<Docker> {
        if let Some((d, _)) = self.client.lock().await.as_ref() {
            return Ok(d.clone());
        }
        // Not under the lock: callers of a silent engine wait out their own deadline in
        // parallel, not one after another.
        let (docker, _) = self.connect().await?;
        let version = docker.client_version().to_string();
        *self.client.lock().await = Some((docker.clone(), version));
        Ok(docker)
    }

    async fn connect(&self) -> EngineResult<(Docker, bollard::models::SystemVersion)> {
        if !self.socket.exists() {
            return Err(self.unavailable(format!("no socket at {}", self.socket.display())));
        }
        let path = self
            .socket
            .to_str()
            .ok_or_else(|| self.unavailable("socket path is not UTF-8"))?;
        // bollard's timeout bounds the response head of every request; a stream (logs follow)
        // then runs for as long as the client reads, so it gets a generous value.
        let docker = Docker::connect_with_unix(path, 3600, bollard::API_DEFAULT_VERSION)
            .map_err(|e| self.map_err(e))?;
        let docker = self.bounded(docker.negotiate_version()).await?;
        let version = self.bounded(docker.version()).await?;
        Ok((docker, version))
    }

    /// What the engine answers now: reachability, driver, versions.
    pub async fn probe(&self, href: String) -> ContainerEngine {
        let socket = format!("unix://{}", self.socket.display());
        let res = async {
            let docker = self.client().await?;
            let v = self.bounded(docker.version()).await?;
            Ok::<_, EngineError>((docker.client_version().to_string(), v))
        }
        .await;
        match res {
            Ok((negotiated, v)) => ContainerEngine {
                href,
                name: self.name.clone(),
                socket,
                reachable: true,
                driver: Some(driver_of(&v)),
                server_version: v.version.clone(),
                api_version: v.api_version.clone(),
                negotiated_api_version: Some(negotiated),
                error: None,
            },
            Err(e) => ContainerEngine {
                href,
                name: self.name.clone(),
                socket,
                reachable: false,
                driver: None,
                server_version: None,
                api_version: None,
                negotiated_api_version: None,
                error: Some(e.to_string()),
            },
        }
    }
}

/// podman names a component "Podman Engine"; dockerd's is "Engine".
pub fn driver_of(v: &bollard::models::SystemVersion) -> EngineDriver {
    let podman = v
        .components
        .iter()
        .flatten()
        .any(|c| c.name.to_ascii_lowercase().contains("podman"));
    if podman {
        EngineDriver::Podman
    } else {
        EngineDriver::Docker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_unavailable_at_once() {
        let e = Engine::new(
            "x",
            Path::new("/nonexistent/docker.sock"),
            Duration::from_secs(5),
        );
        let t = std::time::Instant::now();
        let err = e.client().await.unwrap_err();
        assert!(matches!(err, EngineError::Unavailable { .. }), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(1));
        let p = e.probe("/x".into()).await;
        assert!(!p.reachable && p.error.is_some());
    }

    #[tokio::test]
    async fn a_silent_socket_times_out() {
        // A listener that accepts and never answers: the deadline, not a hang.
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("silent.sock");
        let l = tokio::net::UnixListener::bind(&sock).unwrap();
        let keep = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                conns.push(c);
            }
        });
        let e = Engine::new("silent", &sock, Duration::from_millis(300));
        let err = e.client().await.unwrap_err();
        assert!(matches!(err, EngineError::Unavailable { .. }), "{err:?}");
        keep.abort();
    }

    #[test]
    fn server_errors_map_by_status() {
        let m = |code| {
            EngineError::from_bollard(
                "e",
                bollard::errors::Error::DockerResponseServerError {
                    status_code: code,
                    message: "m".into(),
                },
            )
        };
        assert!(matches!(m(404), EngineError::NotFound(_)));
        assert!(matches!(m(409), EngineError::Conflict(_)));
        assert!(matches!(m(400), EngineError::Rejected(_)));
        assert!(matches!(m(500), EngineError::Failed(_)));
        let improper = EngineError::from_bollard(
            "e",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: "container state improper".into(),
            },
        );
        assert!(matches!(improper, EngineError::Conflict(_)));
    }
}
