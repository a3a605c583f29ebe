//! The API areas, one folder each, mirroring the URL tree under `/api/v1`.
//!
//! An area is its folder plus one line in [`areas!`] below. Its `mod.rs` exports
//! `pub const AREA: Area`: the name (the OpenAPI tag and the token scope; usually also the URL subtree, though an area may
//! serve several: `containers` has `/containers` and `/container-engines`), the tag
//! description, `router()` (routes together with their OpenAPI operations, so the served routes
//! and the published document cannot drift apart), and optional hooks:
//!
//! - `init` runs before anything listens and returns the area's own state, which handlers reach
//!   through `AppState::area::<T>()`, usually behind a small accessor trait private to the
//!   area (`vms::VmsState`); the shared `AppState` names no area;
//! - `start` runs once the listeners are bound, before the daemon says it is ready (it spawns
//!   the area's background work);
//! - `shutdown` runs after the listeners have stopped.
//!
//! `http::openapi_and_router`, the token scope list (`scope_names`) and `serve::run` iterate over
//! [`ALL`]; nothing else names an area.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::state::{AppState, Services};

/// An area's own state, as its `init` hook hands it over.
pub type AnyState = Arc<dyn Any + Send + Sync>;

/// An `init` hook: prepares the area before anything listens; `Some` state to register.
pub type InitHook = fn(&Services) -> anyhow::Result<Option<AnyState>>;

/// A boxed future of a hook.
pub type HookFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One API area: what the router, the document, the scopes and `serve` need to know.
pub struct Area {
    /// The OpenAPI tag and the scope name (`<name>:read|write`); usually the URL subtree too.
    pub name: &'static str,
    /// The OpenAPI tag's description.
    pub description: &'static str,
    pub router: fn() -> OpenApiRouter<AppState>,
    /// Before listening: prepares the area and returns its state (put into [`AreaStates`]).
    pub init: Option<InitHook>,
    /// After binding, before ready: starts background work (awaited; spawn what runs on).
    pub start: Option<fn(AppState) -> HookFuture>,
    /// After the listeners stopped.
    pub shutdown: Option<fn(AppState) -> HookFuture>,
}

impl Area {
    /// An area with routes only.
    pub const fn new(
        name: &'static str,
        description: &'static str,
        router: fn() -> OpenApiRouter<AppState>,
    ) -> Area {
        Area {
            name,
            description,
            router,
            init: None,
            start: None,
            shutdown: None,
        }
    }
}

/// Declares the area modules and [`ALL`] from one list: adding an area is one name here.
macro_rules! areas {
    ($($area:ident),* $(,)?) => {
        $(pub mod $area;)*
        /// Every area, in the order of the OpenAPI tags.
        pub const ALL: &[&Area] = &[$(&$area::AREA),*];
    };
}

areas!(
    auth,
    users,
    tokens,
    jobs,
    events,
    audit,
    system,
    admin,
    disks,
    pools,
    services,
    vms,
    shares,
    network,
    containers,
    lxc,
    stacks,
    workloads,
    terminal,
    metrics,
    provisioning,
);

/// All routes of all areas. Registering them (utoipa builds each operation and its schemas)
/// is the longest part of start-up, so the second half of the areas is registered on another
/// thread; merged in registry order, the result is the same as one pass.
pub fn router() -> OpenApiRouter<AppState> {
    let fold = |areas: &[&Area]| {
        areas
            .iter()
            .fold(OpenApiRouter::new(), |r, area| r.merge((area.router)()))
    };
    let (head, tail) = ALL.split_at(ALL.len() / 2);
    std::thread::scope(|s| {
        let other = std::thread::Builder::new()
            .name("hp-routes".into())
            .spawn_scoped(s, || fold(tail));
        let first = fold(head);
        let second = match other {
            Ok(handle) => handle.join().expect("registering routes panicked"),
            // No thread to be had: one pass.
            Err(_) => fold(tail),
        };
        first.merge(second)
    })
}

/// The area names a token scope may name.
pub fn scope_names() -> Vec<&'static str> {
    ALL.iter().map(|a| a.name).collect()
}

/// Each area's own state, by type; filled by the `init` hooks before the daemon serves.
#[derive(Default)]
pub struct AreaStates(HashMap<TypeId, AnyState>);

impl AreaStates {
    pub fn insert(&mut self, state: AnyState) {
        self.0.insert((*state).type_id(), state);
    }

    /// The state of type `T`, borrowed.
    pub fn get_ref<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|s| s.downcast_ref::<T>())
    }
}

/// Runs every area's `init` hook on `services` and stores the states they return.
pub fn init_all(services: &mut Services) -> anyhow::Result<()> {
    for area in ALL {
        if let Some(init) = area.init
            && let Some(state) =
                init(services).map_err(|e| e.context(format!("starting the {} area", area.name)))?
        {
            services.areas.insert(state);
        }
    }
    Ok(())
}

/// Runs every area's `start` hook, in order.
pub async fn start_all(state: &AppState) {
    for area in ALL {
        if let Some(start) = area.start {
            start(state.clone()).await;
        }
    }
}

/// Runs every area's `shutdown` hook, in order.
pub async fn shutdown_all(state: &AppState) {
    for area in ALL {
        if let Some(stop) = area.shutdown {
            stop(state.clone()).await;
        }
    }
}
