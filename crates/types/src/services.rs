//! Services area: systemd service units, read and driven over D-Bus (`/api/v1/services`).
//! The adapter lives in `hostplane-host::systemd`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A systemd service unit as the system manager reports it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Service {
    /// `/api/v1/services/{name}`.
    pub href: String,
    /// Full unit name, e.g. `ssh.service`.
    pub name: String,
    /// The unit's `Description=`.
    pub description: String,
    /// `loaded`, `not-found`, `masked`, `error`, or `stub` (installed but not loaded now).
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, `deactivating` or `reloading`.
    pub active_state: String,
    /// Type-specific state, e.g. `running`, `exited`, `dead`.
    pub sub_state: String,
    /// `enabled`, `disabled`, `static`, `masked`, `generated`, `indirect`…; empty when the unit
    /// has no unit file.
    pub unit_file_state: String,
    /// Main process, when running.
    pub main_pid: Option<u32>,
}

/// What a start/stop/restart job returns: the systemd job's result and the unit afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceActionResult {
    /// `start`, `stop` or `restart`.
    pub action: String,
    /// systemd's job result: `done`, `failed`, `canceled`, `timeout`, `dependency`, `skipped`.
    pub result: String,
    pub service: Service,
}
