//! `/api/v1/system/update`, `/system/version`, `/system/keys`: software updates from signed,
//! encrypted vendor packages, and the version they leave behind. The Jidoteki shapes
//! (`/api/v1/admin/update`, `/version`) are here too, since they are views of the same state.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an update stands (Jidoteki's status values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpdateState {
    Running,
    Success,
    Failed,
}

/// The latest update attempt (`GET /api/v1/system/update`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateStatus {
    pub status: UpdateState,
    /// The `system.update` job that ran it (its log is the update log).
    pub job: String,
    /// Version of the package, once it has been decrypted and verified.
    pub version: Option<String>,
    /// Jidoteki error code when failed: `E1000` script error, `E1001` version error,
    /// `E1002` other error during the update, `E1003` package missing, `E1004` already
    /// running, `E1005` cannot be decrypted, verified or extracted.
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Who started it.
    pub created_by: String,
    /// The last 10 lines of the update log, as `[unixtime][SYSTEM] message`.
    pub log: Vec<String>,
}

/// Where the reported version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionSource {
    /// No update has been applied: the appliance reports hostplane's own version.
    Hostplane,
    /// The last successfully applied update package.
    Update,
}

/// The appliance's version and what the last update recorded (`GET /api/v1/system/version`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    /// The installed version (semver): the last applied package's, else hostplane's.
    pub version: String,
    pub source: VersionSource,
    /// The version of the hostplane daemon itself.
    pub hostplane_version: String,
    /// Changelog of the last applied package (none before the first update).
    pub changelog: Option<String>,
    /// Build information of the last applied package (none before the first update).
    #[schema(value_type = Option<Object>)]
    pub build: Option<serde_json::Value>,
    /// When the last package was applied.
    pub installed_at: Option<String>,
}

/// The keys updates and licences are checked with (`GET /api/v1/system/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApplianceKeys {
    /// The age recipient (`age1…`) vendors encrypt update packages to; none when the appliance
    /// identity is missing or unreadable.
    pub appliance_recipient: Option<String>,
    /// Where the appliance identity is read from.
    pub appliance_identity: String,
    /// Why there is no recipient, when there is none.
    pub appliance_identity_error: Option<String>,
    /// The configured vendor public key (base64 ed25519), if any.
    pub vendor_public_key: Option<String>,
}

/// Jidoteki `GET /admin/update`: status and the last 10 log lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JidotekiUpdateStatus {
    /// `running`, `success` or `failed`.
    pub status: UpdateState,
    /// The last 10 lines of the update log, newline-separated, as `[unixtime][SYSTEM] message`.
    pub log: String,
    #[serde(rename = "error-message", skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// `E1000` … `E1005`.
    #[serde(rename = "error-code", skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// Jidoteki `GET /admin/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JidotekiVersion {
    pub version: String,
}
