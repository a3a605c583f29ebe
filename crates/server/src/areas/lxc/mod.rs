//! `/api/v1/lxc`: LXC system containers on one lxcpath (`[lxc] path`), driven with the
//! `lxc-*` tools through `hostplane_host::lxc` (never a shell, never liblxc).
//!
//! Request flow: auth layer (viewer reads; operator changes; admin for the attach console and
//! for bind mounts outside pool datasets) → a handler in [`routes`] parses the request into a
//! typed value → [`model`] validates names, storage, limits and mounts (422 before anything
//! runs, so bad input changes nothing) → a plain function here or in [`routes`] takes the
//! container's lock ([`LxcArea::lock`]: one operation per container at a time, 409
//! `lxc_busy` otherwise) and runs the `lxc-*` tools; slow work (create, clone, snapshots,
//! backup, restore) is a job → the container is read back ([`view`]: `lxc-info -H` + its
//! config file) and published as a `resource.*` event.
//!
//! The daemon and every `lxc-*` it runs share one network namespace (children inherit it):
//! LXC's command socket is abstract and netns-scoped, so an `lxc-*` from another netns would
//! see a running container as stopped (and `lxc-destroy` would delete its rootfs).
//!
//! Modules: [`model`] (validation, views), [`routes`] (the operations), [`storage`] (rootfs
//! and backups on pool datasets; the containers as pool users), [`console`] (attach over a
//! WebSocket in a PTY).
//!
//! [`workloads`] and [`start_by_name`] are plain functions for the platform's workload and
//! autostart registry; [`processes`] hands the running containers to the metrics collector
//! (`platform::processes`).

pub mod console;
pub mod model;
pub mod processes;
pub mod routes;
pub mod storage;
pub mod workloads;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hostplane_host::command::CommandError;
use hostplane_host::lxc::{Cgroup, Lxc};
use utoipa_axum::router::OpenApiRouter;

use crate::areas::{AnyState, Area};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Services};

pub const AREA: Area = Area {
    init: Some(init),
    ..Area::new(
        "lxc",
        "LXC system containers: create (busybox or a rootfs tarball), lifecycle, limits, \
         mounts, snapshots, clones, backups into pool datasets, attach console",
        router,
    )
};

/// The base config every new container gets (`lxc-create -f`): no network unless a bridge
/// is named (LXC's default wants `lxcbr0`), and no AppArmor profile (no module here; a
/// profile would make the start fail).
pub const BASE_CONFIG: &str = "lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n";

/// This area's state.
pub struct LxcArea {
    pub lxc: Lxc,
    pub cgroup: Cgroup,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl LxcArea {
    pub fn new(path: PathBuf) -> LxcArea {
        LxcArea {
            lxc: Lxc::new(path),
            cgroup: Cgroup::detect(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn mutex(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, l| Arc::strong_count(l) > 1 || l.try_lock().is_err());
        m.entry(name.to_string()).or_default().clone()
    }

    /// The container's lock, now or 409 `lxc_busy` (a job works on it).
    pub fn lock(&self, name: &str) -> ApiResult<tokio::sync::OwnedMutexGuard<()>> {
        self.mutex(name).try_lock_owned().map_err(|_| {
            ApiError::conflict(
                "lxc_busy",
                format!("LXC container {name:?} is busy with another operation; try again"),
            )
        })
    }

    /// The container's lock, waiting for it (inside a job).
    pub async fn lock_wait(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.mutex(name).lock_owned().await
    }
}

fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    let path = services.config.lxc_path();
    tracing::info!(lxcpath = %path.display(), "LXC");
    storage::register(services);
    services
        .workloads
        .register(Arc::new(workloads::LxcWorkloads));
    services
        .processes
        .register(Arc::new(processes::LxcProcesses::new(Lxc::new(path.clone()))));
    Ok(Some(Arc::new(LxcArea::new(path))))
}

/// This area's state from the shared state.
pub(crate) trait LxcState {
    fn lxc(&self) -> &LxcArea;
}

impl LxcState for AppState {
    fn lxc(&self) -> &LxcArea {
        self.area::<LxcArea>()
    }
}

/// The one mapping of an `lxc-*` failure to the API: a tool that refused is 409
/// `lxc_failed` with what it said; the rest as every host command.
pub fn lxc_error(e: CommandError) -> ApiError {
    match e {
        CommandError::Failed { .. } => ApiError::conflict("lxc_failed", e.to_string()),
        other => other.into(),
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    routes::router()
}
