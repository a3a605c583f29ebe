//! LXC containers as workloads (`platform::workloads`): listed in `/api/v1/workloads` and
//! started by the autostart order. Registered by the area's `init` hook.
//!
//! A container is named by its name. It is missing something when its root filesystem or a
//! bind mount's source is not there (a pool that is not mounted shows up this way).

use std::path::Path;

use hostplane_types::lxc::{LxcContainer, LxcState};
use hostplane_types::workloads::Workload;

use super::{model, routes};
use crate::platform::workloads::{RunState, WorkFuture, WorkloadProvider};
use crate::state::AppState;

pub struct LxcWorkloads;

fn word(s: LxcState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn running(c: &LxcContainer) -> bool {
    matches!(
        c.state,
        LxcState::Running | LxcState::Frozen | LxcState::Freezing | LxcState::Thawed
    )
}

impl WorkloadProvider for LxcWorkloads {
    fn kind(&self) -> &'static str {
        "lxc"
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        model::check_name("name", name).map_err(|e| e.to_string())
    }

    fn list<'a>(&'a self, state: &'a AppState) -> WorkFuture<'a, Vec<Workload>> {
        Box::pin(async move {
            Ok(routes::list_all(state)
                .await?
                .into_iter()
                .map(|c| Workload {
                    kind: "lxc".into(),
                    id: c.name.clone(),
                    running: running(&c),
                    state: word(c.state),
                    name: c.name,
                    engine: None,
                    href: c.href,
                })
                .collect())
        })
    }

    fn status<'a>(&'a self, state: &'a AppState, name: &'a str) -> WorkFuture<'a, RunState> {
        Box::pin(async move {
            let c = routes::get_one(state, name).await?;
            Ok(RunState {
                running: running(&c),
                health: None,
            })
        })
    }

    fn missing<'a>(&'a self, state: &'a AppState, name: &'a str) -> WorkFuture<'a, Vec<String>> {
        Box::pin(async move {
            let c = routes::get_one(state, name).await?;
            let mut missing = Vec::new();
            if !Path::new(&c.rootfs).exists() {
                missing.push(format!(
                    "root filesystem {} does not exist (is its pool mounted?)",
                    c.rootfs
                ));
            }
            for m in &c.mounts {
                if !Path::new(&m.source).exists() {
                    missing.push(format!(
                        "bind mount source {} does not exist (is its pool mounted?)",
                        m.source
                    ));
                }
            }
            Ok(missing)
        })
    }

    fn start<'a>(
        &'a self,
        state: &'a AppState,
        name: &'a str,
        actor: &'a str,
    ) -> WorkFuture<'a, ()> {
        Box::pin(async move {
            routes::act(state, actor, name, routes::Action::Start).await?;
            Ok(())
        })
    }
}
