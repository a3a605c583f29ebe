//! `GET /api/v1/admin/reboot` (Jidoteki section 5): back up, then reboot, in the background;
//! answers `202 {"Status": "202 Accepted"}` at once.
//!
//! Thin layer over the native `POST /api/v1/system/reboot`
//! (`areas::system::power::start_reboot`): the same job, the same role (admin, and write
//! scope on `admin`, although the method is GET). A reboot already under way is not an error
//! here: the answer is 202 again. Since the auth layer audits only mutating methods, this
//! handler writes the audit entry itself.

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::admin::JidotekiStatus;
use crate::areas::system::power;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::peer::Peer;
use crate::platform::audit::Record;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reboot))
}

/// Back up, then reboot (Jidoteki `GET /reboot`; admin).
#[utoipa::path(get, path = "/api/v1/admin/reboot",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:write"))),
    tag = "admin",
    responses((status = 202, description = "Rebooting in the background", body = JidotekiStatus)))]
async fn reboot(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Caller(p): Caller,
) -> ApiResult<Response> {
    let status = match power::start_reboot(&state, &p.user) {
        Ok(job) => {
            tracing::warn!(job = %job.id, by = %p.user, "reboot requested");
            StatusCode::ACCEPTED
        }
        Err(ApiError::Conflict { .. }) => StatusCode::ACCEPTED,
        Err(e) => return Err(e),
    };
    let method = serde_json::to_value(p.method)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string));
    state.audit.record(Record {
        actor: &p.user,
        auth_method: method.as_deref(),
        method: "GET",
        path: "/api/v1/admin/reboot",
        target: "/api/v1/system/reboot",
        status: status.as_u16(),
        remote: &peer.describe(),
    });
    Ok((status, axum::Json(JidotekiStatus::accepted(None))).into_response())
}
