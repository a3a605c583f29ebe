//! `GET /api/v1/admin/services` (Jidoteki section 6): `{"services": [{"<name>": "running"},
//! …]}` for the units in `admin.services`, in that order.
//!
//! Thin layer over the native services area (`areas::services`, systemd over D-Bus): a unit
//! whose `ActiveState` is `active` or `reloading` is `running`; anything else, a unit that
//! does not exist included, is `not running` (Jidoteki's two values). A name without a suffix
//! means `<name>.service`; the answer keeps the configured name. Without systemd the answer
//! is 503 `systemd_unavailable`, never made-up states.

use std::collections::BTreeMap;

use axum::extract::State;
use hostplane_host::systemd::SystemdError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::services;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(services_status))
}

/// Jidoteki services answer: one single-key object per configured service.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServicesStatus {
    /// `[{"openssh": "running"}, {"hostplane": "not running"}]`
    pub services: Vec<BTreeMap<String, String>>,
}

/// Status of the configured services (Jidoteki `GET /services`).
#[utoipa::path(get, path = "/api/v1/admin/services",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Service states", body = ServicesStatus)))]
async fn services_status(State(state): State<AppState>) -> ApiResult<axum::Json<ServicesStatus>> {
    let sd = services::connect(&state).await?;
    let mut out = Vec::new();
    for name in &state.config.admin.services {
        let running = match sd.unit(name).await {
            Ok(u) => matches!(u.active_state.as_str(), "active" | "reloading"),
            Err(SystemdError::NoSuchUnit(_) | SystemdError::InvalidName(_)) => false,
            Err(e) => return Err(e.into()),
        };
        let state = if running { "running" } else { "not running" };
        out.push(BTreeMap::from([(name.clone(), state.to_string())]));
    }
    Ok(axum::Json(ServicesStatus { services: out }))
}
