//! `/api/v1/system/backups`: archives of the whole appliance state, and restoring one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    Running,
    Success,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupOrigin {
    /// Made by this appliance (`POST /system/backups`).
    Created,
    /// Uploaded (`POST /system/backups/upload`, or the Jidoteki restore).
    Uploaded,
}

/// One backup archive (a tar: manifest, SQLite snapshot, data files, certificates, config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Backup {
    /// UUIDv7 (time ordered); for a created backup, also the id of the job that made it.
    pub id: String,
    pub href: String,
    pub status: BackupStatus,
    pub origin: BackupOrigin,
    pub created_at: String,
    pub created_by: String,
    pub finished_at: Option<String>,
    /// Archive size in bytes (when finished).
    pub size_bytes: Option<u64>,
    /// Archive size for humans, e.g. `128.0K` (Jidoteki's `filesize`).
    pub filesize: Option<String>,
    /// SHA-256 of the archive, lowercase hex.
    pub sha256: Option<String>,
    /// Number of files in the archive, manifest included.
    pub files: Option<u32>,
    /// The job that made it (created backups).
    pub job: Option<String>,
    /// Where to download the archive (when finished).
    pub download: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What a restore did (the result of a `system.restore` job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestoreResult {
    /// The backup restored.
    pub backup: String,
    /// Data files written (certificates, licence, keys, ... under the data dir).
    pub files_restored: u32,
    /// Data files removed because the backup does not have them.
    pub files_removed: u32,
    /// The HTTPS listener now serves the restored certificate.
    pub tls_reloaded: bool,
    /// The configuration file was restored (it applies at the next start).
    pub config_restored: bool,
    /// The persistent storage units were regenerated from the restored settings.
    pub storage_reapplied: bool,
}

/// Jidoteki `GET /admin/backup`: the newest backup's status; size and hash once it succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JidotekiBackupStatus {
    /// `running`, `success` or `failed`.
    pub status: String,
    /// e.g. `128.0K`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesize: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}
