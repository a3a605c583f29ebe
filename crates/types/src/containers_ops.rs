//! Container operations beyond create and lifecycle (docs/containers.md): live limit changes,
//! recreate, stats and top, image pulls and prunes, update checks against registries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::containers::{BindMount, ContainerLimits, PortMapping, RestartPolicy, VolumeMount};

/// `PATCH /containers/{engine}/{name}`: limits and restart policy change live. The other
/// fields are accepted so that a caller learns which of its changes need a recreate: when one
/// differs from the container's, the answer is 409 `recreate_required` naming them, and nothing
/// changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerPatch {
    /// New limits; a field left out keeps its value.
    #[serde(default)]
    pub limits: Option<ContainerLimits>,
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// Recreate only.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._/:@-]*$", max_length = 255)]
    pub image: Option<String>,
    /// Recreate only.
    #[serde(default)]
    #[schema(max_items = 256)]
    pub cmd: Option<Vec<String>>,
    /// Recreate only.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// Recreate only.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub ports: Option<Vec<PortMapping>>,
    /// Recreate only.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub mounts: Option<Vec<BindMount>>,
    /// Recreate only.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub volumes: Option<Vec<VolumeMount>>,
    /// Recreate only.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub network: Option<String>,
    /// Recreate only.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `POST /containers/{engine}/{name}/recreate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecreateRequest {
    /// Pull the image reference again first (a newer image under the same tag).
    #[serde(default)]
    pub pull: bool,
}

/// One sample of a container's resource use.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContainerStats {
    pub engine: String,
    pub name: String,
    /// When the engine took the sample (RFC 3339).
    pub read_at: String,
    /// CPU use since the previous sample, in percent of one CPU (200 = two CPUs busy); null
    /// when the engine gave no previous sample.
    pub cpu_percent: Option<f64>,
    pub memory_usage_bytes: Option<u64>,
    /// The memory limit the kernel applies (the host's memory when none is set).
    pub memory_limit_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// Over all networks.
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub blk_read_bytes: u64,
    pub blk_write_bytes: u64,
}

/// `GET .../top`: the container's processes as `ps` shows them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContainerTop {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// `POST /container-engines/{engine}/images/pull`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagePullRequest {
    /// `[registry[:port]/]path[:tag][@digest]`; without a tag, `latest`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._/:@-]*$", max_length = 255)]
    pub image: String,
}

/// `POST /container-engines/{engine}/images/prune`: what it removed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImagePruneResult {
    /// Images deleted or untagged (`sha256:...`, `repo:tag`).
    pub deleted: Vec<String>,
    pub space_reclaimed_bytes: u64,
}

/// `unknown`: no registry digest to compare with (a local import, a registry that did not
/// answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpdateUnknown {
    Unknown,
}

/// `true`, `false` or `"unknown"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum UpdateAvailable {
    Known(bool),
    Unknown(UpdateUnknown),
}

fn container_kind() -> String {
    "container".into()
}

/// The last update check of one container or one compose stack (`GET /container-updates`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContainerUpdateStatus {
    /// `container` or `stack`.
    #[serde(default = "container_kind")]
    #[schema(example = "container")]
    pub kind: String,
    /// The container, or the stack (`/api/v1/stacks/{name}`).
    pub href: String,
    pub engine: String,
    /// The container's name, or the stack's.
    pub name: String,
    /// The reference it was created from; for a stack its services' images, comma-separated.
    pub image: String,
    /// The digest the engine pulled (`sha256:...`); null for a local image.
    pub local_digest: Option<String>,
    /// The registry's manifest digest for the reference now.
    pub registry_digest: Option<String>,
    pub update_available: UpdateAvailable,
    pub checked_at: String,
    /// Why it is `unknown`.
    pub reason: Option<String>,
    /// A stack's services with an update (empty for a container).
    #[serde(default)]
    pub updated_services: Vec<String>,
    /// A stack's services, each with its own status (empty for a container).
    #[serde(default)]
    pub services: Vec<ServiceUpdateStatus>,
}

/// One service of a stack in an update check: the image its compose file resolves to, the
/// digest its container (or, before `up`, the engine's image of that reference) has, and the
/// registry's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceUpdateStatus {
    pub service: String,
    pub image: String,
    pub local_digest: Option<String>,
    pub registry_digest: Option<String>,
    pub update_available: UpdateAvailable,
    /// Why it is `unknown`.
    pub reason: Option<String>,
}

/// `containers.update_check`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateCheckResult {
    pub checked: u32,
    pub updates_available: u32,
    pub unknown: u32,
    /// Engines that did not answer (their containers and stacks keep their last status).
    pub unreachable_engines: Vec<String>,
    /// Stacks checked (their services' images), and those with an update.
    #[serde(default)]
    pub stacks_checked: u32,
    #[serde(default)]
    pub stack_updates_available: u32,
}
