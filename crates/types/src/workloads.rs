//! Workloads (`/api/v1/workloads`): containers, LXC containers and VMs in one list, and the one
//! start order across them (`/api/v1/autostart`). See docs/stacks.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One thing that runs: a container, an LXC container or a VM.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Workload {
    /// `container`, `lxc` or `vm`.
    pub kind: String,
    /// What an autostart item names: `<engine>/<name>` for a container, the name otherwise.
    pub id: String,
    pub name: String,
    /// The kind's own state word (`running`, `exited`, `stopped`, `paused`, …).
    pub state: String,
    /// Whether it runs now.
    pub running: bool,
    /// The engine of a container; null for the others.
    pub engine: Option<String>,
    /// The object under its own area (`/api/v1/containers/docker/web`, `/api/v1/vms/<id>`).
    pub href: String,
}

/// What an autostart item waits for before the next one starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AutostartWait {
    /// A fixed delay after the start.
    Seconds {
        #[schema(maximum = 3600)]
        seconds: u32,
    },
    /// Until it runs, or (a container with a health check) until it reports healthy; a VM or
    /// LXC container counts as healthy once running. Bounded by the item's `timeout_secs`.
    Until(WaitFor),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    Running,
    Healthy,
}

impl Default for AutostartWait {
    fn default() -> Self {
        AutostartWait::Seconds { seconds: 0 }
    }
}

/// One entry of the start order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutostartItem {
    /// `container`, `vm` or `lxc` (a kind some area registered).
    #[schema(pattern = "^[a-z]{1,16}$")]
    pub kind: String,
    /// `<engine>/<name>` for a container; the name otherwise.
    #[schema(max_length = 129)]
    pub name: String,
    #[serde(default)]
    pub wait: AutostartWait,
    /// Longest wait for `running`/`healthy` (default 120, at most 3600); past it the next item
    /// starts and this one is reported.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3600)]
    pub timeout_secs: Option<u32>,
}

/// `GET|PUT /autostart`: the start order followed when the daemon starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Autostart {
    #[schema(max_items = 256)]
    pub items: Vec<AutostartItem>,
}

/// What happened to one item at a start.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AutostartOutcome {
    pub kind: String,
    pub name: String,
    /// `started`, `running` (it already ran), `skipped` (prerequisites missing: a mount, a
    /// pool, the object itself), `failed` (the start failed), `timeout` (it started but did not
    /// reach its wait state in time).
    pub outcome: String,
    pub reason: Option<String>,
    /// When its start was asked for (RFC 3339), when one was.
    pub started_at: Option<String>,
    /// When its wait was over.
    pub done_at: Option<String>,
}

/// Result of the job `workloads.autostart`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AutostartResult {
    pub items: Vec<AutostartOutcome>,
}
