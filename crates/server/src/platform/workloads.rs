//! Every kind of workload (containers, LXC containers, VMs) behind one trait, so that
//! `GET /api/v1/workloads` and the autostart order can list, check and start them without
//! importing the areas that own them.
//!
//! Flow: each owning area's `init` hook adds its [`WorkloadProvider`] to `Services::workloads`
//! (`services.workloads.register(Arc::new(MyProvider))`: containers and vms today, LXC next).
//! The workloads area asks the registry: [`Workloads::list`] for the listing, and for each
//! autostart item [`Workloads::provider`] by kind, then `missing` (prerequisites: mounts,
//! pools), `status` and `start`.
//!
//! The containers' provider lives here ([`ContainerWorkloads`]): it needs only the engines
//! (`hostplane_host::containers::Engine`), which the containers area hands over when it
//! registers it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use hostplane_host::containers::{Engine, EngineError};
use hostplane_types::containers::{ContainerState, MountKind};
use hostplane_types::workloads::Workload;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A provider's boxed future.
pub type WorkFuture<'a, T> = Pin<Box<dyn Future<Output = ApiResult<T>> + Send + 'a>>;

/// Where a workload is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub running: bool,
    /// The health check's word (`starting`, `healthy`, `unhealthy`); None without one, in
    /// which case running counts as healthy.
    pub health: Option<String>,
}

impl RunState {
    pub fn healthy(&self) -> bool {
        self.running && self.health.as_deref().is_none_or(|h| h == "healthy")
    }
}

/// One kind of workload, implemented by the area that owns it.
pub trait WorkloadProvider: Send + Sync {
    /// `container`, `vm`, `lxc`.
    fn kind(&self) -> &'static str;

    /// Checks the form of an autostart item's name (422 message when wrong).
    fn check_name(&self, name: &str) -> Result<(), String>;

    /// All of them, running or not.
    fn list<'a>(&'a self, state: &'a AppState) -> WorkFuture<'a, Vec<Workload>>;

    /// Its state now (404 when it does not exist).
    fn status<'a>(&'a self, state: &'a AppState, name: &'a str) -> WorkFuture<'a, RunState>;

    /// What it needs and is missing now (a bind mount's source, a pool that is not mounted,
    /// a disk file): empty when it can start.
    fn missing<'a>(&'a self, state: &'a AppState, name: &'a str) -> WorkFuture<'a, Vec<String>>;

    /// Starts it; `actor` is who asked (`autostart`).
    fn start<'a>(
        &'a self,
        state: &'a AppState,
        name: &'a str,
        actor: &'a str,
    ) -> WorkFuture<'a, ()>;
}

/// The registered providers (platform state: `Services::workloads`).
#[derive(Default)]
pub struct Workloads(RwLock<Vec<Arc<dyn WorkloadProvider>>>);

impl Workloads {
    /// Called from an area's `init` hook; a kind registered twice replaces the first.
    pub fn register(&self, p: Arc<dyn WorkloadProvider>) {
        let mut v = self.0.write().unwrap_or_else(|e| e.into_inner());
        v.retain(|o| o.kind() != p.kind());
        v.push(p);
    }

    pub fn all(&self) -> Vec<Arc<dyn WorkloadProvider>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut k: Vec<_> = self.all().iter().map(|p| p.kind()).collect();
        k.sort_unstable();
        k
    }

    pub fn provider(&self, kind: &str) -> Option<Arc<dyn WorkloadProvider>> {
        self.all().into_iter().find(|p| p.kind() == kind)
    }

    /// Every provider's workloads; a provider that fails (an engine down) is left out and
    /// named in the second list.
    pub async fn list(&self, state: &AppState) -> (Vec<Workload>, Vec<String>) {
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for p in self.all() {
            match p.list(state).await {
                Ok(v) => out.extend(v),
                Err(e) => failed.push(format!("{}: {e}", p.kind())),
            }
        }
        (out, failed)
    }
}

/// Containers on the configured engines, named `<engine>/<name>`.
pub struct ContainerWorkloads {
    engines: Vec<Arc<Engine>>,
}

impl ContainerWorkloads {
    pub fn new(engines: Vec<Arc<Engine>>) -> ContainerWorkloads {
        ContainerWorkloads { engines }
    }

    fn split<'n>(&self, name: &'n str) -> ApiResult<(&Arc<Engine>, &'n str)> {
        let (engine, c) = name
            .split_once('/')
            .ok_or_else(|| ApiError::not_found(format!("container {name:?}")))?;
        let e = self
            .engines
            .iter()
            .find(|e| e.name() == engine)
            .ok_or_else(|| ApiError::not_found(format!("no container engine named {engine:?}")))?;
        Ok((e, c))
    }
}

fn engine_err(e: EngineError) -> ApiError {
    match e {
        EngineError::NotFound(m) => ApiError::NotFound(m),
        EngineError::Conflict(m) => ApiError::conflict("engine_conflict", m),
        EngineError::Rejected(m) => ApiError::invalid("engine_rejected", m),
        other => ApiError::Unavailable {
            code: "engine_unavailable",
            detail: other.to_string(),
        },
    }
}

fn state_word(s: ContainerState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}").to_lowercase())
}

impl WorkloadProvider for ContainerWorkloads {
    fn kind(&self) -> &'static str {
        "container"
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        let (e, c) = name
            .split_once('/')
            .ok_or_else(|| format!("{name:?}: a container is named <engine>/<name>"))?;
        for (what, n) in [("engine", e), ("container", c)] {
            hostplane_host::command::validate_name(what, n).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn list<'a>(&'a self, _state: &'a AppState) -> WorkFuture<'a, Vec<Workload>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for e in &self.engines {
                // An engine that is down has nothing to list here; the containers area
                // reports it.
                let Ok(list) = e.list_containers().await else {
                    continue;
                };
                out.extend(list.into_iter().map(|c| Workload {
                    kind: "container".into(),
                    id: format!("{}/{}", c.engine, c.name),
                    running: c.state == ContainerState::Running,
                    state: state_word(c.state),
                    name: c.name,
                    engine: Some(c.engine),
                    href: c.href,
                }));
            }
            Ok(out)
        })
    }

    fn status<'a>(&'a self, _state: &'a AppState, name: &'a str) -> WorkFuture<'a, RunState> {
        Box::pin(async move {
            let (e, c) = self.split(name)?;
            let (running, health) = hostplane_host::compose::run_state(e, c)
                .await
                .map_err(engine_err)?;
            Ok(RunState { running, health })
        })
    }

    fn missing<'a>(&'a self, _state: &'a AppState, name: &'a str) -> WorkFuture<'a, Vec<String>> {
        Box::pin(async move {
            let (e, c) = self.split(name)?;
            let c = e.inspect(c).await.map_err(engine_err)?;
            Ok(c.mounts
                .iter()
                .filter(|m| m.kind == MountKind::Bind)
                .map(|m| m.source.as_str())
                .filter(|s| !std::path::Path::new(s).exists())
                .map(|s| format!("bind mount source {s} does not exist"))
                .collect())
        })
    }

    fn start<'a>(
        &'a self,
        _state: &'a AppState,
        name: &'a str,
        _actor: &'a str,
    ) -> WorkFuture<'a, ()> {
        Box::pin(async move {
            let (e, c) = self.split(name)?;
            e.act(c, hostplane_host::containers::ops::Action::Start)
                .await
                .map_err(engine_err)
        })
    }
}
