//! Jidoteki section 7 (part): `GET /admin/version`, `/admin/changelog`, `/admin/build`, views of
//! `areas::system::update::version_info` (native: `GET /api/v1/system/version`).
//!
//! Before any update package has been applied, the version is hostplane's own (a fresh
//! appliance reports what it runs), while the changelog and build information do not exist
//! yet and answer 404, as the document says for missing files.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hostplane_types::system::update::JidotekiVersion;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::system::update::version_info;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_version))
        .routes(routes!(get_changelog))
        .routes(routes!(get_build))
}

/// The system's version (Jidoteki `GET /version`): the last applied update's, else hostplane's.
#[utoipa::path(get, path = "/api/v1/admin/version",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Version", body = JidotekiVersion)))]
async fn get_version(State(state): State<AppState>) -> ApiResult<axum::Json<JidotekiVersion>> {
    Ok(axum::Json(JidotekiVersion {
        version: version_info(&state)?.version,
    }))
}

/// The changelog of the last applied update, plain text (Jidoteki `GET /changelog`). 404 before
/// the first update.
#[utoipa::path(get, path = "/api/v1/admin/changelog",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Changelog", body = String, content_type = "text/plain")))]
async fn get_changelog(State(state): State<AppState>) -> ApiResult<Response> {
    let text = version_info(&state)?
        .changelog
        .ok_or_else(|| ApiError::not_found("no changelog: no update has been applied"))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The build information of the last applied update, JSON (Jidoteki `GET /build`), e.g.
/// `{"builddate":"123456789"}`. 404 before the first update.
#[utoipa::path(get, path = "/api/v1/admin/build",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Build information", body = Object)))]
async fn get_build(State(state): State<AppState>) -> ApiResult<axum::Json<serde_json::Value>> {
    let build = version_info(&state)?
        .build
        .ok_or_else(|| ApiError::not_found("no build information: no update has been applied"))?;
    Ok(axum::Json(build))
}
