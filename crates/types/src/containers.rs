//! Containers (`/api/v1/containers`, `/api/v1/container-engines`): containers on the Docker
//! Engine API compatible engines a host already runs (dockerd, podman's Docker-compatible
//! service). Each container is addressed by its engine and its name. See docs/containers.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Container, engine, volume and network names: `hostplane_host::command::validate_name`'s
/// rule (a letter or digit first, then `A-Za-z0-9_.-`, no `..`, at most 64 bytes). The
/// `#[schema(pattern)]` attributes repeat it (literals only).
pub const NAME_PATTERN: &str = crate::NAME_PATTERN;
/// Image references: a letter or digit first, then `A-Za-z0-9._/:@-`, no `..`, at most 255
/// bytes (`localhost/busybox:1`, `registry.example:5000/a/b@sha256:...`).
pub const IMAGE_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$";
pub const IMAGE_MAX_LEN: usize = 255;

/// Which engine answers on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineDriver {
    Docker,
    Podman,
}

/// One configured engine (`[[containers.engines]]`) and what it answered just now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContainerEngine {
    pub href: String,
    pub name: String,
    /// The engine's socket, `unix:///path`.
    pub socket: String,
    /// Whether the engine answered `/version` within the timeout.
    pub reachable: bool,
    /// `docker` or `podman` (from `/version`); null when unreachable.
    pub driver: Option<EngineDriver>,
    /// The engine's own version (`20.10.24+dfsg1`, `4.3.1`).
    pub server_version: Option<String>,
    /// The highest API version the engine speaks (`1.41`).
    pub api_version: Option<String>,
    /// The API version hostplane talks to it with (the lower of the engine's and bollard's).
    pub negotiated_api_version: Option<String>,
    /// Why it is unreachable.
    pub error: Option<String>,
}

/// A container's state as its engine says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Stopping,
    Unknown,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    #[default]
    Tcp,
    Udp,
}

/// A container port, published on the host when `host_port` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    #[schema(minimum = 1, maximum = 65535)]
    pub container_port: u16,
    #[serde(default)]
    pub protocol: PortProtocol,
    /// Host port; 0 = any free port; absent = not published.
    #[serde(default)]
    pub host_port: Option<u16>,
    /// Host address to bind; absent = all.
    #[serde(default)]
    pub host_ip: Option<String>,
}

/// What a mount of a container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Volume,
    Tmpfs,
    Other,
}

/// A mount as a container has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContainerMount {
    pub kind: MountKind,
    /// Host path (bind) or volume name (volume).
    pub source: String,
    /// Path inside the container.
    pub target: String,
    pub read_only: bool,
}

/// A bind mount to create: a host directory inside the container (admin only, see
/// docs/containers.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindMount {
    /// Absolute host path that exists; no `..`.
    #[schema(max_length = 4096)]
    pub source: String,
    /// Absolute path inside the container; no `..`.
    #[schema(max_length = 4096)]
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A named volume to mount (created by the engine when missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub name: String,
    /// Absolute path inside the container; no `..`.
    #[schema(max_length = 4096)]
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// When the engine restarts a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicyName {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    #[serde(default)]
    pub name: RestartPolicyName,
    /// With `on-failure`: restarts at most this often (0 = no limit).
    #[serde(default)]
    #[schema(maximum = 1000)]
    pub max_retries: u32,
}

/// Resource limits; absent = none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerLimits {
    /// Memory limit in bytes (at least 6 MiB).
    #[serde(default)]
    #[schema(minimum = 6291456, maximum = 1099511627776_u64)]
    pub memory_bytes: Option<u64>,
    /// CPUs (fractions allowed: 0.5 = half a CPU).
    #[serde(default)]
    #[schema(minimum = 0.01, maximum = 1024)]
    pub cpus: Option<f64>,
    /// Most processes at once.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 4194304)]
    pub pids: Option<i64>,
}

/// A container on an engine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Container {
    pub href: String,
    pub engine: String,
    pub id: String,
    pub name: String,
    /// The image reference it was created from.
    pub image: String,
    /// The image's id (`sha256:...`).
    pub image_id: String,
    pub state: ContainerState,
    /// Exit code of the last run (0 when never run).
    pub exit_code: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub cmd: Vec<String>,
    pub ports: Vec<PortMapping>,
    pub mounts: Vec<ContainerMount>,
    pub labels: BTreeMap<String, String>,
    pub restart: RestartPolicy,
    pub limits: ContainerLimits,
    /// Networks it is attached to (or its network mode: `none`, `host`, `default`).
    pub networks: Vec<String>,
    /// Its compose project (`com.docker.compose.project` label), if any.
    pub stack: Option<String>,
}

/// `POST /containers/{engine}`: a container to create (not started).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerCreate {
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub name: String,
    /// An image the engine has (`GET /container-engines/{engine}/images`).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._/:@-]*$", max_length = 255)]
    pub image: String,
    /// Command and arguments; absent = the image's.
    #[serde(default)]
    #[schema(max_items = 256)]
    pub cmd: Option<Vec<String>>,
    /// Environment: names `[A-Za-z_][A-Za-z0-9_]*`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(max_items = 64)]
    pub ports: Vec<PortMapping>,
    /// Bind mounts (admin only).
    #[serde(default)]
    #[schema(max_items = 64)]
    pub mounts: Vec<BindMount>,
    /// Named volumes.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub volumes: Vec<VolumeMount>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub limits: ContainerLimits,
    /// Network to attach (`none`, `host`, `bridge` or a network's name); absent = the engine's
    /// default.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub network: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `POST .../exec`: a command run to completion inside a running container.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    #[schema(min_items = 1, max_items = 256)]
    pub cmd: Vec<String>,
    /// With a terminal: the answer is a ticket for the exec's WebSocket (`ExecTicket`).
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `user`, `user:group`, or numeric ids.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub user: Option<String>,
    /// Absolute working directory inside the container.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub workdir: Option<String>,
    /// Gives up waiting after this many seconds (1 .. 3600; default 60); the command may go on.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3600)]
    pub timeout_secs: Option<u64>,
}

/// What an exec printed and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecResult {
    /// Standard output (lossy UTF-8; at most 1 MiB kept).
    pub stdout: String,
    pub stderr: String,
    /// Null when it had not ended within the timeout.
    pub exit_code: Option<i64>,
    /// More than 1 MiB on a stream: the rest was dropped.
    pub truncated: bool,
    pub timed_out: bool,
}

/// An image on an engine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContainerImage {
    pub href: String,
    pub engine: String,
    /// `sha256:...`
    pub id: String,
    /// Its tags (`repo:tag`).
    pub tags: Vec<String>,
    /// Registry digests (`repo@sha256:...`); empty for local imports.
    pub digests: Vec<String>,
    pub size: i64,
    pub created_at: String,
}
