//! `GET /api/v1/admin/debug` (Jidoteki section 4): `debug-bundle.tar`, encrypted to the
//! vendor (`admin.vendor_recipient`), served as `application/octet-stream`.
//!
//! Thin layer over the native `GET /api/v1/system/debug-bundle`
//! (`areas::system::support::debug_bundle`): same bundle, same role (admin). A bundle that
//! cannot be made answers 400, as the spec says — `vendor_recipient_missing` when no
//! (valid) recipient is configured, `debug_failed` otherwise.

use axum::extract::State;
use axum::response::Response;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::system::support::{self, ArchiveError};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(debug))
}

/// Download the encrypted `debug-bundle.tar` (Jidoteki `GET /debug`).
#[utoipa::path(get, path = "/api/v1/admin/debug",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "debug-bundle.tar holding debug.tar.gz.age",
        content_type = "application/octet-stream", body = Vec<u8>,
        headers(("filename" = String, description = "debug-bundle.tar")))))]
async fn debug(State(state): State<AppState>) -> ApiResult<Response> {
    let a = support::debug_bundle(&state).await.map_err(|e| match e {
        ArchiveError::NoRecipient(detail) => ApiError::BadRequest {
            code: "vendor_recipient_missing",
            detail,
        },
        ArchiveError::Io(m) => ApiError::BadRequest {
            code: "debug_failed",
            detail: format!("cannot create the debug bundle: {m}"),
        },
    })?;
    Ok(a.into_response("application/octet-stream", "debug-bundle.tar", true))
}
