//! `/api/v1/containers` and `/api/v1/container-engines`: containers and images on the Docker
//! Engine API compatible engines the host runs (dockerd; podman's Docker-compatible service).
//!
//! Request flow: auth layer (viewer reads; operator changes; admin for exec and for bind
//! mounts outside pool datasets, `platform::pool_paths`) → a handler here parses path, query and body into typed values →
//! [`model`] validates every name, image reference, path and limit (422 before an engine is
//! asked, so bad input changes nothing) → the named engine from this area's state
//! ([`Engines`], made by the `init` hook from `[containers]`) → `hostplane_host::containers`
//! (bollard, each request under a deadline) → [`engine_error`] maps the engine's answer
//! (unreachable or silent → 503 `engine_unavailable`, never a hang or a 500).
//!
//! Modules: [`model`] (validation), [`engines`] (engine list, images), [`lifecycle`]
//! (containers: list, create, actions, delete, logs, exec).

pub mod engines;
pub mod exec_ws;
pub mod files;
pub mod events;
pub mod images_pull;
pub mod lifecycle;
pub mod limits;
pub mod model;
pub mod networks;
pub mod processes;
pub mod volumes;
pub mod stats;
pub mod updates;

use std::sync::Arc;
use std::time::Duration;

use hostplane_host::containers::{Engine, EngineError};
use utoipa_axum::router::OpenApiRouter;

use crate::areas::{AnyState, Area};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Services};

pub const AREA: Area = Area {
    init: Some(init),
    start: Some(events::start),
    ..Area::new(
        "containers",
        "Containers on Docker Engine API engines (dockerd, podman): engines, containers, \
         lifecycle, logs, exec, images",
        router,
    )
};

/// The configured engines; this area's state.
pub struct Engines {
    list: Vec<Arc<Engine>>,
    import_max_bytes: u64,
    /// Who acted on which container lately (for the engine events, [`events`]).
    pub(crate) actors: events::Actors,
}

impl Engines {
    pub fn from_config(cfg: &crate::config::ContainersConfig, sandbox: bool) -> Engines {
        let timeout = Duration::from_secs(cfg.timeout_secs);
        Engines {
            list: cfg
                .engines(sandbox)
                .iter()
                .map(|e| Arc::new(Engine::new(&e.name, &e.socket_path(), timeout)))
                .collect(),
            import_max_bytes: cfg.import_max_bytes,
            actors: events::Actors::default(),
        }
    }

    pub fn all(&self) -> &[Arc<Engine>] {
        &self.list
    }

    /// The engine named `name`, else 404 (a malformed name names no engine either: engine names
    /// are checked when the configuration loads).
    pub fn get(&self, name: &str) -> ApiResult<&Arc<Engine>> {
        model::check_path_name("engine", name)?;
        self.list
            .iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| ApiError::not_found(format!("no container engine named {name:?}")))
    }
}

fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    let engines = Engines::from_config(&services.config.containers, services.config.sandbox());
    for e in engines.all() {
        tracing::info!(engine = e.name(), socket = %e.socket().display(), "container engine");
    }
    services.workloads.register(Arc::new(
        crate::platform::workloads::ContainerWorkloads::new(engines.all().to_vec()),
    ));
    services
        .processes
        .register(Arc::new(processes::ContainerProcesses::new(
            engines.all().to_vec(),
        )));
    volumes::register(services);
    networks::register(services);
    Ok(Some(Arc::new(engines)))
}

/// This area's state from the shared state.
pub(crate) trait ContainersState {
    fn engines(&self) -> &Engines;
}

impl ContainersState for AppState {
    fn engines(&self) -> &Engines {
        self.area::<Engines>()
    }
}

/// The engine a path names and the object name of `kind` checked (a malformed name names
/// nothing: 404 before the engine is asked). Shared by containers, volumes and networks.
pub(crate) fn engine_and_name<'a>(
    state: &'a AppState,
    engine: &str,
    kind: &str,
    name: &str,
) -> ApiResult<&'a Arc<Engine>> {
    let e = state.engines().get(engine)?;
    model::check_path_name(kind, name)?;
    Ok(e)
}

/// A `resource.*` event for an engine object, with the object as its data.
pub(crate) fn publish_object<T: serde::Serialize>(
    state: &AppState,
    kind: &str,
    href: &str,
    actor: &str,
    obj: &T,
) {
    state.events.publish(
        kind,
        href,
        actor,
        serde_json::to_value(obj).unwrap_or_default(),
    );
}

/// Before a create: 409 `code` when the engine's inspect found the object (both engines answer
/// a create of an existing volume with the volume as it is), Ok when it does not exist.
pub(crate) fn refuse_existing<T>(
    found: Result<T, EngineError>,
    code: &'static str,
    what: String,
) -> ApiResult<()> {
    match found {
        Ok(_) => Err(ApiError::conflict(code, format!("{what} exists"))),
        Err(EngineError::NotFound(_)) => Ok(()),
        Err(err) => Err(engine_error(err)),
    }
}

/// The one mapping of an engine's failure to the API's answer.
pub fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::Unavailable { .. } => ApiError::Unavailable {
            code: "engine_unavailable",
            detail: e.to_string(),
        },
        EngineError::NotFound(m) => ApiError::NotFound(m),
        EngineError::Conflict(m) => ApiError::conflict("engine_conflict", m),
        EngineError::Rejected(m) => ApiError::invalid("engine_rejected", m),
        EngineError::Failed(m) => ApiError::Unavailable {
            code: "engine_error",
            detail: m,
        },
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(engines::router())
        .merge(lifecycle::router())
        .merge(exec_ws::router())
        .merge(files::router())
        .merge(volumes::router())
        .merge(networks::router())
        .merge(limits::router())
        .merge(stats::router())
        .merge(images_pull::router())
        .merge(updates::router())
}
