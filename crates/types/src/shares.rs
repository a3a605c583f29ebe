//! Shares area (`/api/v1/shares`): SMB shares on Samba and NFS exports (kernel nfsd or
//! nfs-ganesha) of pool datasets. Share users are users with role `share`. See docs/shares.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The protocol a share is served with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShareProtocol {
    Smb,
    Nfs,
}

impl ShareProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareProtocol::Smb => "smb",
            ShareProtocol::Nfs => "nfs",
        }
    }
}

/// Whether a share is in the live configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShareState {
    /// In the generated configuration and served.
    Active,
    /// `enabled` is false: kept, not served.
    Disabled,
    /// Enabled, but its pool is not mounted or its folder is gone: left out of the
    /// configuration until it is back (see `problem`).
    Unavailable,
}

/// One line of `GET /shares`: a share of either protocol.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShareSummary {
    pub href: String,
    pub protocol: ShareProtocol,
    pub name: String,
    pub pool: String,
    pub dataset: String,
    /// Absolute path served.
    pub path: String,
    pub enabled: bool,
    pub state: ShareState,
}

/// An SMB share on Samba.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SmbShare {
    pub href: String,
    /// The share name clients see (`\\host\NAME`); unique regardless of case.
    pub name: String,
    pub pool: String,
    pub dataset: String,
    /// Folder inside the dataset; empty = the dataset itself.
    pub subpath: String,
    /// Absolute path served: `<pool mount>/<dataset>/<subpath>`.
    pub path: String,
    pub enabled: bool,
    pub state: ShareState,
    /// Why the share is unavailable, when it is.
    pub problem: Option<String>,
    pub comment: String,
    pub read_only: bool,
    pub browseable: bool,
    /// Allow access without a password (as the guest account; needs `map to guest` in smbd's
    /// global section).
    pub guest_ok: bool,
    /// Share users who may connect; empty = every share user.
    pub valid_users: Vec<String>,
    /// Share users who may write even when the share is read-only.
    pub write_list: Vec<String>,
    /// Deleted files go to `.recycle/<user>` in the share instead of disappearing.
    pub recycle_bin: bool,
    /// macOS interoperability (`vfs_fruit`: resource forks, Finder metadata).
    pub macos: bool,
    /// Offer the share as a Time Machine destination (implies `macos`).
    pub time_machine: bool,
    /// Largest Time Machine backup in bytes; null = no limit.
    pub time_machine_max_bytes: Option<u64>,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `POST /shares/smb`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSmbShareRequest {
    /// 1–64 of A-Z a-z 0-9 _ . -, starting with a letter or digit; not `global`, `homes`,
    /// `printers`, `print$` or `ipc$`.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub pool: String,
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub dataset: String,
    /// An existing folder inside the dataset (`a/b`); no `..`, no symlink out of the dataset.
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = r"^([A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?(/[A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?)*)?$"
    )]
    pub subpath: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// At most 256 characters; no control characters, `%` or `\`.
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\x00-\x1f\x7f%\\]*$")]
    pub comment: Option<String>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub browseable: Option<bool>,
    #[serde(default)]
    pub guest_ok: Option<bool>,
    /// Names of users with role `share`.
    #[serde(default)]
    pub valid_users: Option<Vec<String>>,
    #[serde(default)]
    pub write_list: Option<Vec<String>>,
    #[serde(default)]
    pub recycle_bin: Option<bool>,
    #[serde(default)]
    pub macos: Option<bool>,
    #[serde(default)]
    pub time_machine: Option<bool>,
    #[serde(default)]
    #[schema(minimum = 1)]
    pub time_machine_max_bytes: Option<u64>,
}

/// Body of `PATCH /shares/smb/{name}`: what changes; `name` renames the share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSmbShareRequest {
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub pool: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub dataset: Option<String>,
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = r"^([A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?(/[A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?)*)?$"
    )]
    pub subpath: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\x00-\x1f\x7f%\\]*$")]
    pub comment: Option<String>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub browseable: Option<bool>,
    #[serde(default)]
    pub guest_ok: Option<bool>,
    #[serde(default)]
    pub valid_users: Option<Vec<String>>,
    #[serde(default)]
    pub write_list: Option<Vec<String>>,
    #[serde(default)]
    pub recycle_bin: Option<bool>,
    #[serde(default)]
    pub macos: Option<bool>,
    #[serde(default)]
    pub time_machine: Option<bool>,
    /// 0 removes the limit.
    #[serde(default)]
    pub time_machine_max_bytes: Option<u64>,
}

/// Root squashing of an NFS export or client rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NfsSquash {
    /// Map root to the anonymous user (the safe default).
    Root,
    /// Map every user to the anonymous user.
    All,
    /// Trust the client's root.
    None,
}

/// Access a client rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NfsAccess {
    Ro,
    Rw,
}

/// Which clients may mount an export and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NfsClientRule {
    /// `*`, an address (`192.0.2.7`, `2001:db8::7`), a network (`192.0.2.0/24`), a host name
    /// or a wildcard host name (`*.example.com`).
    #[schema(pattern = r"^[A-Za-z0-9*.:/_-]{1,255}$")]
    pub host: String,
    /// Absent: `rw` unless the export is read-only.
    #[serde(default)]
    pub access: Option<NfsAccess>,
    /// Absent: the export's squash.
    #[serde(default)]
    pub squash: Option<NfsSquash>,
}

/// An NFS export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NfsShare {
    pub href: String,
    pub name: String,
    pub pool: String,
    pub dataset: String,
    pub subpath: String,
    pub path: String,
    pub enabled: bool,
    pub state: ShareState,
    pub problem: Option<String>,
    pub comment: String,
    /// NFSv4 pseudo path clients mount: `/<name>`.
    pub pseudo: String,
    /// Stable export id (ganesha `Export_Id`, kernel `fsid`).
    pub export_id: u32,
    /// No client may write, whatever its rule says.
    pub read_only: bool,
    pub squash: NfsSquash,
    /// Who may mount; a client no rule matches is refused.
    pub clients: Vec<NfsClientRule>,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `POST /shares/nfs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNfsShareRequest {
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub pool: String,
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub dataset: String,
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = r"^([A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?(/[A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?)*)?$"
    )]
    pub subpath: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\x00-\x1f\x7f%\\]*$")]
    pub comment: Option<String>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub squash: Option<NfsSquash>,
    /// At least one rule (`{"host": "*"}` for everyone); at most 64.
    #[schema(min_items = 1, max_items = 64)]
    pub clients: Vec<NfsClientRule>,
}

/// Body of `PATCH /shares/nfs/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNfsShareRequest {
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub pool: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub dataset: Option<String>,
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = r"^([A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?(/[A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?)*)?$"
    )]
    pub subpath: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^\x00-\x1f\x7f%\\]*$")]
    pub comment: Option<String>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub squash: Option<NfsSquash>,
    #[serde(default)]
    #[schema(min_items = 1, max_items = 64)]
    pub clients: Option<Vec<NfsClientRule>>,
}

/// A client connected to smbd (`smbstatus -j`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SmbSession {
    pub session_id: String,
    pub username: String,
    pub group: String,
    /// Client address.
    pub remote: String,
    /// SMB dialect, e.g. `SMB3_11`.
    pub dialect: String,
    pub encryption: String,
    pub signing: String,
    /// Shares this session has open.
    pub shares: Vec<SmbSessionShare>,
}

/// A share a session has open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SmbSessionShare {
    pub share: String,
    pub connected_at: String,
}

/// Which NFS server carries the exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NfsBackend {
    /// Kernel nfsd: `/etc/exports.d`, `exportfs -ra`.
    Kernel,
    /// nfs-ganesha: an `%include`d EXPORT file, SIGHUP.
    Ganesha,
    /// NFS exports are switched off in config.
    Off,
}

/// `GET /shares/status`: whether the file servers are there and read hostplane's files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SharesStatus {
    pub smb: SmbStatus,
    pub nfs: NfsStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SmbStatus {
    /// smbd, testparm and smbpasswd are installed.
    pub available: bool,
    /// smbd answers `smbcontrol ping`.
    pub running: bool,
    /// smbd's main configuration.
    pub config: String,
    /// The file hostplane generates.
    pub include: String,
    /// The main configuration includes it (else hostplane's shares are not served).
    pub included: bool,
    /// smbd's `map to guest` (`Never` by default): shares with `guest_ok` admit guests only
    /// when it is `Bad User` (or `Bad Password`). Null when testparm cannot say.
    pub map_to_guest: Option<String>,
    pub shares: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NfsStatus {
    pub backend: NfsBackend,
    /// The backend's tools are installed.
    pub available: bool,
    /// The server is running (ganesha's pid file names a live process; kernel: `/proc/fs/nfsd`).
    pub running: bool,
    /// The file hostplane generates.
    pub exports: String,
    pub shares: usize,
}
