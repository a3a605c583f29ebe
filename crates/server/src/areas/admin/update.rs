//! Jidoteki section 3, Updates: `POST /admin/update`, `GET /admin/update`,
//! `GET /admin/update/log`. A thin layer over `areas::system::update` (the same job, lock and
//! state as `POST /api/v1/system/update`).
//!
//! `POST` answers `202 {"Status":"202 Accepted","Location":"/api/v1/admin/update"}` once the
//! package is received and the job started; everything after that (decrypt, verify, version,
//! script) shows in `GET /admin/update` as `failed` with its E-code. A request that cannot
//! start an update answers 400 (problem+json whose `code` is the E-code): E1004 while one runs,
//! E1003 without an `update` field (also recorded as the last update's status, so `GET
//! /admin/update` shows it as in the document), E1002 when packages cannot be verified here.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hostplane_types::system::update::JidotekiUpdateStatus;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::admin::JidotekiStatus;
use crate::areas::system::update::{self as svc, codes};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::state::AppState;

const HREF: &str = "/api/v1/admin/update";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_update, get_update))
        .routes(routes!(get_update_log))
        // `post_update` caps its body itself (`svc::limit`: the cap is a config key).
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// `multipart/form-data` body of `POST /admin/update`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UpdateUploadForm {
    /// Encrypted software update package (`hostplane package build` output).
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    update: String,
}

fn refuse(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: detail.into(),
    }
}

/// Update the system with an encrypted software update package (Jidoteki `POST /update`).
/// Asynchronous: poll `GET /admin/update`.
#[utoipa::path(post, path = "/api/v1/admin/update",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:write"))),
    tag = "admin",
    request_body(content = UpdateUploadForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "Update started", body = JidotekiStatus,
        headers(("Location" = String, description = "/api/v1/admin/update")))))]
async fn post_update(
    State(state): State<AppState>,
    Caller(p): Caller,
    req: Request,
) -> ApiResult<Response> {
    if let Err(e) = svc::ensure_not_running(&state) {
        return Err(refuse(
            codes::RUNNING,
            format!("The update process is already running ({e})"),
        ));
    }
    if let Err(e) = svc::ensure_configured(&state) {
        let detail = e.to_string();
        svc::record_refused(&state, &p.user, codes::PROCESS, &detail).await;
        return Err(refuse(codes::PROCESS, detail));
    }
    let req = svc::limit(&state, req)?;
    let form: Result<Multipart, MultipartRejection> = Multipart::from_request(req, &state).await;
    let upload = match form {
        Ok(form) => match svc::receive_multipart(&state, form, "update").await {
            Ok(u) => u,
            // Our fault, over the size cap, or no room: said as they are (500, 413, 503).
            Err(e @ (ApiError::Internal(_) | ApiError::PayloadTooLarge(_))) => return Err(e),
            Err(e @ ApiError::Unavailable { .. }) => return Err(e),
            Err(e) => {
                let msg = format!("The update package could not be received: {e}");
                svc::record_refused(&state, &p.user, codes::MISSING, &msg).await;
                return Err(refuse(codes::MISSING, msg));
            }
        },
        Err(_) => None,
    };
    let Some(upload) = upload else {
        svc::record_refused(&state, &p.user, codes::MISSING, "Missing update package").await;
        return Err(refuse(
            codes::MISSING,
            "Missing update package (multipart field `update`)",
        ));
    };
    match svc::start(&state, &p.user, upload) {
        Ok(_job) => Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, HREF)],
            axum::Json(JidotekiStatus::accepted(Some(HREF))),
        )
            .into_response()),
        Err(ApiError::Conflict { detail, .. }) => Err(refuse(
            codes::RUNNING,
            format!("The update process is already running ({detail})"),
        )),
        Err(ApiError::Unavailable { detail, .. }) => {
            svc::record_refused(&state, &p.user, codes::PROCESS, &detail).await;
            Err(refuse(codes::PROCESS, detail))
        }
        Err(e) => Err(e),
    }
}

/// Status of the latest update and the last 10 lines of its log (Jidoteki `GET /update`).
/// 404 before the first update.
#[utoipa::path(get, path = "/api/v1/admin/update",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Update status", body = JidotekiUpdateStatus)))]
async fn get_update(State(state): State<AppState>) -> ApiResult<axum::Json<JidotekiUpdateStatus>> {
    let job = svc::last_job(&state)?
        .ok_or_else(|| ApiError::not_found("no update has been attempted"))?;
    let (status, error_code, error_message) = svc::job_outcome(&job);
    let lines = svc::log_lines(&state, &job)?;
    Ok(axum::Json(JidotekiUpdateStatus {
        status,
        log: svc::log_tail(&lines).join("\n"),
        error_message,
        error_code,
    }))
}

/// The full log of the latest update, plain text (Jidoteki `GET /update/log`). 404 before the
/// first update.
#[utoipa::path(get, path = "/api/v1/admin/update/log",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Update log", body = String, content_type = "text/plain")))]
async fn get_update_log(State(state): State<AppState>) -> ApiResult<Response> {
    let job = svc::last_job(&state)?
        .ok_or_else(|| ApiError::not_found("no update log: no update has been attempted"))?;
    let mut text = svc::log_lines(&state, &job)?.join("\n");
    text.push('\n');
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}
