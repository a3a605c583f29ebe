//! `/api/v1/admin`: the Jidoteki-compatible admin API, implemented exactly as
//! `reference/jidoteki-admin-api.md` says (multipart field names, `{"Status": ...}` bodies,
//! status codes, `E1000`–`E1005`, `[unixtime][SYSTEM] message` log lines).
//!
//! Flow: auth layer (here authentication failures answer 403, per the spec) → the compat
//! handler in this folder, which is a thin layer over the native `/api/v1` implementation of the
//! same thing (jobs, problem+json, roles) → the platform. Optional endpoints (`[admin] endpoints`
//! in the config) that are disabled answer 404 and are not listed by `GET /admin/endpoints`.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::areas::Area;
use crate::state::AppState;

pub mod backup;
pub mod certs;
pub mod compat;
pub mod debug;
pub mod endpoints;
pub mod health;
pub mod info;
pub mod license;
pub mod logs;
pub mod reboot;
pub mod services;
pub mod settings;
pub mod setup;
pub mod storage;
pub mod update;

/// Optional endpoints hostplane implements (Jidoteki: enabled by configuration).
/// `cluster` stays disabled until the fleet issue.
pub const OPTIONAL_IMPLEMENTED: &[&str] = &["settings", "license", "certs", "storage", "backup"];

pub const AREA: Area = Area::new("admin", "Jidoteki-compatible admin API", router);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(setup::router())
        .merge(logs::router())
        .merge(debug::router())
        .merge(reboot::router())
        .merge(services::router())
        .merge(health::router())
        .merge(endpoints::router())
        .merge(update::router())
        .merge(info::router())
        .merge(license::router())
        .merge(certs::router())
        .merge(storage::router())
        .merge(backup::router())
        .merge(settings::router())
}

/// Jidoteki status answer, e.g. `{"Status":"200 OK"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JidotekiStatus {
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "Location", skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl JidotekiStatus {
    pub fn ok() -> Self {
        JidotekiStatus {
            status: "200 OK".into(),
            location: None,
        }
    }

    pub fn accepted(location: Option<&str>) -> Self {
        JidotekiStatus {
            status: "202 Accepted".into(),
            location: location.map(str::to_string),
        }
    }
}

/// Whether optional endpoint `name` is enabled: listed in `[admin] endpoints`, or the key is
/// absent and hostplane implements it.
pub fn endpoint_enabled(state: &AppState, name: &str) -> bool {
    match &state.config.admin.endpoints {
        Some(list) => list.iter().any(|e| e == name) && OPTIONAL_IMPLEMENTED.contains(&name),
        None => OPTIONAL_IMPLEMENTED.contains(&name),
    }
}

/// 404 for a disabled optional endpoint, as the spec says.
pub fn require_enabled(state: &AppState, name: &str) -> Result<(), ApiError> {
    if endpoint_enabled(state, name) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "the optional endpoint {name:?} is disabled"
        )))
    }
}
