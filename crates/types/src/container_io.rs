//! Containers, input and output: the terminal exec ticket, files in and out, and an engine's
//! volumes and networks (`/api/v1/container-engines/{engine}/volumes|networks`) with volume
//! backups into a pool dataset. See docs/containers.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /containers/{engine}/{name}/exec` with `tty: true`: the exec was created (not started)
/// and waits for its WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecTicket {
    /// The engine's exec id.
    pub id: String,
    /// Single-use ticket; pass as `?ticket=` instead of any other credential.
    pub ticket: String,
    /// The terminal WebSocket (path and query, with the ticket): binary frames carry the PTY
    /// both ways; text frames carry JSON control (`{"type":"resize","cols":80,"rows":24}` in,
    /// `{"type":"exit","code":0}` out).
    pub ws_url: String,
    /// Expiry of the ticket (RFC 3339, UTC); about 60 s after creation.
    pub expires_at: String,
}

/// A named volume on an engine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContainerVolume {
    pub href: String,
    pub engine: String,
    pub name: String,
    /// `local` for the engines' own volumes.
    pub driver: String,
    /// Where the engine keeps it on the host.
    pub mountpoint: String,
    pub created_at: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// `POST /container-engines/{engine}/volumes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeCreate {
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A network on an engine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContainerNetwork {
    pub href: String,
    pub engine: String,
    pub id: String,
    pub name: String,
    /// `bridge`, `host`, `null`, `macvlan`, ...
    pub driver: String,
    /// No route outside the network.
    pub internal: bool,
    /// Its subnets (CIDR).
    pub subnets: Vec<String>,
    pub created_at: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// One of the engine's own networks (`none`, `host`, `bridge`, `podman`): never deleted.
    pub predefined: bool,
}

/// `POST /container-engines/{engine}/networks`: a bridge network.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub name: String,
    /// Without a route outside the network.
    #[serde(default)]
    pub internal: bool,
    /// Its subnet (`10.89.7.0/24`); absent = the engine picks one.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `POST .../volumes/{name}/backup`: where the archive goes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeBackupRequest {
    /// A mounted pool's dataset, `pool/dataset`.
    #[schema(
        pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?/[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$",
        max_length = 129
    )]
    pub dataset: String,
    /// The archive's file name in the dataset (ends in `.tar.zst`); absent =
    /// `<engine>-<volume>-<UTC time>.tar.zst`. An existing file is not overwritten (409).
    #[serde(default)]
    #[schema(
        pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.tar\\.zst$",
        max_length = 128
    )]
    pub file: Option<String>,
}

/// `POST .../volumes/{name}/restore`: the archive to bring back (a volume backup).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeRestoreRequest {
    /// The pool dataset that holds the archive, `pool/dataset`.
    #[schema(
        pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?/[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$",
        max_length = 129
    )]
    pub dataset: String,
    /// The archive's file name in the dataset.
    #[schema(
        pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.tar\\.zst$",
        max_length = 128
    )]
    pub file: String,
}

/// What a volume backup or restore job answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VolumeBackupResult {
    pub engine: String,
    pub volume: String,
    pub dataset: String,
    pub file: String,
    /// The archive on the host.
    pub path: String,
    /// Bytes of the tar (uncompressed) and of the archive.
    pub tar_bytes: u64,
    pub archive_bytes: u64,
}
