//! `GET /api/v1/admin/logs` (Jidoteki section 4): `logs.tar.gz` of the daemon's logs and
//! `admin.log_paths`, served as `application/octet-stream`.
//!
//! Thin layer over the native `GET /api/v1/system/logs/archive`
//! (`areas::system::support::logs_archive`): same archive, same role (operator); a failure to
//! build it answers 400, as the spec says.

use axum::extract::State;
use axum::response::Response;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::system::support;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(logs))
}

/// Download `logs.tar.gz` (Jidoteki `GET /logs`).
#[utoipa::path(get, path = "/api/v1/admin/logs",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "logs.tar.gz", content_type = "application/octet-stream",
        body = Vec<u8>, headers(("filename" = String, description = "logs.tar.gz")))))]
async fn logs(State(state): State<AppState>) -> ApiResult<Response> {
    let a = support::logs_archive(&state)
        .await
        .map_err(|e| ApiError::BadRequest {
            code: "logs_failed",
            detail: format!("cannot compress the logs: {e}"),
        })?;
    Ok(a.into_response("application/octet-stream", "logs.tar.gz", true))
}
