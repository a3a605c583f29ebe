//! LXC system containers (`/api/v1/lxc`): made from the `busybox` template or a local rootfs
//! tarball, driven with the `lxc-*` tools on one lxcpath (`[lxc] path`). See docs/lxc.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A container's state as `lxc-info` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LxcState {
    Stopped,
    Starting,
    Running,
    Stopping,
    Aborting,
    Freezing,
    Frozen,
    Thawed,
    Unknown,
}

/// A bind mount of a host directory into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LxcMount {
    /// Absolute host directory; inside a pool dataset unless the caller is admin.
    #[schema(pattern = r"^/[^\s]*$", max_length = 1024)]
    pub source: String,
    /// Directory inside the container, relative to its root (`mnt/data`); made when missing.
    #[schema(
        pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$",
        max_length = 255
    )]
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// Resource limits (cgroup keys in the container's config; applied at its next start).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LxcLimits {
    /// Memory limit in bytes (at least 4 MiB); null = none.
    #[schema(minimum = 4194304)]
    pub memory_bytes: Option<u64>,
    /// CPUs (fractional, 0.01 .. 1024): a CFS quota over a 100 ms period; null = none.
    pub cpus: Option<f64>,
}

/// One LXC container.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LxcContainer {
    pub href: String,
    pub name: String,
    pub state: LxcState,
    /// The init process (running or frozen).
    pub pid: Option<u32>,
    /// Addresses of the container's interfaces.
    pub ips: Vec<String>,
    /// Memory in use (running), bytes.
    pub memory_bytes: Option<u64>,
    /// Root filesystem: `lxcpath` (the lxcpath) or `<pool>/<dataset>`; null elsewhere.
    pub storage: Option<String>,
    /// The rootfs directory on the host.
    pub rootfs: String,
    /// Started when the daemon starts (`lxc.start.auto`).
    pub autostart: bool,
    pub start_order: Option<i64>,
    pub start_delay_secs: Option<u32>,
    pub limits: LxcLimits,
    pub mounts: Vec<LxcMount>,
}

/// `POST /lxc` template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LxcTemplate {
    /// The host's static busybox (package `busybox-static`).
    Busybox,
    /// A rootfs `.tar.xz` (`rootfs_archive`), through LXC's `local` template.
    Local,
}

/// `POST /lxc`: a new container (a job; its result is the container).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LxcCreate {
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    pub template: LxcTemplate,
    /// `local`: the rootfs `.tar.xz`, as `<pool>/<dataset>/<path>` (a file in a dataset).
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub rootfs_archive: Option<String>,
    /// Where the rootfs goes: `<pool>/<dataset>` (a btrfs subvolume `<name>` there on a btrfs
    /// pool); absent = the lxcpath.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?/[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$")]
    pub storage: Option<String>,
    /// A bridge on the host to attach a veth to; absent = no network (`lxc.net.0.type = empty`).
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub bridge: Option<String>,
    #[serde(default)]
    pub limits: LxcLimits,
    #[serde(default)]
    pub autostart: bool,
    #[serde(default)]
    pub mounts: Vec<LxcMount>,
    /// Start it once made.
    #[serde(default)]
    pub start: bool,
}

/// `PATCH /lxc/{name}`: what is given changes; limits and mounts apply at the next start.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LxcUpdate {
    pub autostart: Option<bool>,
    /// `lxc.start.order` (lower first).
    pub start_order: Option<i64>,
    /// `lxc.start.delay`: seconds to wait after starting it (0 .. 3600).
    #[schema(maximum = 3600)]
    pub start_delay_secs: Option<u32>,
    /// Replaces the limits (a null field removes that limit).
    pub limits: Option<LxcLimits>,
    /// Replaces hostplane's bind mounts.
    pub mounts: Option<Vec<LxcMount>>,
}

/// One snapshot (`lxc-snapshot`) of a container.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LxcSnapshot {
    pub href: String,
    /// `snap0`, `snap1`, … (LXC names them).
    pub name: String,
    /// When it was taken, as LXC recorded it (`2026:12:07 00:33:48`, the host's local time).
    pub created: String,
}

/// `POST /lxc/{name}/clone`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LxcClone {
    /// The new container's name.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
}

/// `POST /lxc/{name}/backup`: a `.tar.zst` of the stopped container into a pool dataset.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LxcBackupRequest {
    /// `<pool>/<dataset>` the archive goes to.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?/[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$")]
    pub storage: String,
    /// File name (ending `.tar.zst`); absent = `<name>-<UTC time>.tar.zst`.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.tar\.zst$", max_length = 128)]
    pub file: Option<String>,
}

/// The result of `lxc.backup`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LxcBackup {
    pub container: String,
    /// `<pool>/<dataset>`.
    pub storage: String,
    pub file: String,
    /// The archive on the host.
    pub path: String,
    pub size_bytes: u64,
}

/// `POST /lxc/{name}/restore`: container `name` (which must not exist) made from a backup in a
/// pool dataset (a job).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LxcRestoreRequest {
    /// `<pool>/<dataset>` holding the archive.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?/[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$")]
    pub storage: String,
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.tar\.zst$", max_length = 128)]
    pub file: String,
    /// Where the restored rootfs goes (as in `POST /lxc`); absent = the lxcpath.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?/[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$")]
    pub rootfs_storage: Option<String>,
}

/// `POST /lxc/{name}/console`: a ticket for the attach WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LxcConsoleTicket {
    pub ticket: String,
    /// `GET` this (a WebSocket) within 60 s, once.
    pub url: String,
    pub expires_at: String,
}
