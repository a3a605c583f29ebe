//! Jidoteki section 12, Backup (optional endpoint `backup`): `POST /admin/backup`,
//! `GET /admin/backup`, `GET /admin/backup/download`, `GET /admin/backup/log`,
//! `POST /admin/backup/restore`, a thin layer over `areas::system::backup` (native:
//! `/api/v1/system/backups`, the same jobs, lock and files).
//!
//! `action=START` starts a backup job; `action=STOP` stops the running backup or else deletes
//! the newest one (both `202 {"Status":"202 Accepted","Location":"/api/v1/admin/backup"}`).
//! `GET` shows the newest backup made here (`running`, `success` with `filesize` and
//! `sha256`, `failed`), 404 when there is none; `download` sends it as `backup.tar`; `log` is
//! `DATA_DIR/backup/backup.log`. `restore` is synchronous: the `archive` field is received,
//! checked completely (400 if missing or invalid, the live state untouched; 413 over
//! `[admin] backup_upload_max_bytes` or when it unpacks to more than
//! `[admin] backup_unpacked_max_bytes`), restored by a `system.restore` job, and the answer
//! waits for it: `200 {"Status":"200 OK"}`.

use std::time::Duration;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hostplane_types::jobs::JobStatus;
use hostplane_types::system::backup::{Backup, BackupOrigin, BackupStatus, JidotekiBackupStatus};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::admin::compat::{self, as_400, bad_request};
use crate::areas::admin::{JidotekiStatus, require_enabled};
use crate::areas::system::backup::{self as svc, Upload};
use crate::areas::system::uploads;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::state::AppState;

const HREF: &str = "/api/v1/admin/backup";
/// How long `restore` waits for the restore job.
const RESTORE_WAIT: Duration = Duration::from_secs(600);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_backup, get_backup))
        .routes(routes!(download_backup))
        .routes(routes!(backup_log))
        .merge(
            // The restore form is capped by `[admin] backup_upload_max_bytes` in the handler
            // (the config is not known here); the other forms keep axum's default cap.
            OpenApiRouter::new()
                .routes(routes!(restore_backup))
                .layer(DefaultBodyLimit::disable()),
        )
}

/// `multipart/form-data` body of `POST /admin/backup`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BackupForm {
    /// `START` to start a backup, `STOP` to stop or delete a backup.
    #[schema(example = "START")]
    action: String,
}

/// `multipart/form-data` body of `POST /admin/backup/restore`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RestoreForm {
    /// tar backup archive, e.g. `backup.tar`.
    #[schema(format = Binary, content_media_type = "application/x-tar")]
    archive: String,
}

/// The newest backup made here (uploads are not the document's "backup").
fn newest(state: &AppState) -> ApiResult<Option<Backup>> {
    Ok(svc::list(state)?
        .into_iter()
        .find(|b| b.origin == BackupOrigin::Created))
}

/// Generate a backup or stop/delete one (Jidoteki `POST /backup`).
#[utoipa::path(post, path = "/api/v1/admin/backup",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:write"))),
    tag = "admin",
    request_body(content = BackupForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "Started, stopped or deleted", body = JidotekiStatus,
        headers(("Location" = String, description = "/api/v1/admin/backup")))))]
async fn post_backup(
    State(state): State<AppState>,
    Caller(p): Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    require_enabled(&state, "backup")?;
    let f = compat::fields(form, &["action"]).await?;
    let action = f
        .get("action")
        .map(|a| String::from_utf8_lossy(a).trim().to_string())
        .ok_or_else(|| bad_request("invalid_action", "the action field is required"))?;
    match action.as_str() {
        "START" => {
            svc::start_backup(&state, &p.user).map_err(as_400)?;
        }
        "STOP" => svc::stop_latest(&state, &p.user).await.map_err(as_400)?,
        other => {
            return Err(bad_request(
                "invalid_action",
                format!("action {other:?}: use START or STOP"),
            ));
        }
    }
    Ok(compat::accepted(HREF))
}

/// The status of the newest backup (Jidoteki `GET /backup`). 404 when there is none.
#[utoipa::path(get, path = "/api/v1/admin/backup",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Backup status", body = JidotekiBackupStatus)))]
async fn get_backup(State(state): State<AppState>) -> ApiResult<axum::Json<JidotekiBackupStatus>> {
    require_enabled(&state, "backup")?;
    let b = newest(&state)?.ok_or_else(|| ApiError::not_found("no backup status"))?;
    let ok = b.status == BackupStatus::Success;
    Ok(axum::Json(JidotekiBackupStatus {
        status: match b.status {
            BackupStatus::Running => "running",
            BackupStatus::Success => "success",
            BackupStatus::Failed => "failed",
        }
        .into(),
        filesize: b.filesize.filter(|_| ok),
        sha256: b.sha256.filter(|_| ok),
    }))
}

/// Download the newest backup as `backup.tar` (Jidoteki `GET /backup/download`).
#[utoipa::path(get, path = "/api/v1/admin/backup/download",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "backup.tar", content_type = "application/octet-stream", body = Vec<u8>)))]
async fn download_backup(State(state): State<AppState>) -> ApiResult<Response> {
    require_enabled(&state, "backup")?;
    let b = newest(&state)?
        .filter(|b| b.status == BackupStatus::Success)
        .ok_or_else(|| ApiError::not_found("backup.tar does not exist"))?;
    let mut resp = svc::download(&state, &b.id, "backup.tar", true).map_err(|e| match e {
        ApiError::Conflict { detail, .. } => ApiError::not_found(detail),
        other => other,
    })?;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(resp)
}

/// The backup log, plain text (Jidoteki `GET /backup/log`). 404 when there is none.
#[utoipa::path(get, path = "/api/v1/admin/backup/log",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "The log", content_type = "text/plain", body = String)))]
async fn backup_log(State(state): State<AppState>) -> ApiResult<Response> {
    require_enabled(&state, "backup")?;
    match tokio::fs::read(svc::log_path(&state)).await {
        Ok(text) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ApiError::not_found("the backup log does not exist"))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Restore a backup archive, synchronously (Jidoteki `POST /backup/restore`).
#[utoipa::path(post, path = "/api/v1/admin/backup/restore",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:write"))),
    tag = "admin",
    request_body(content = RestoreForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "Restored", body = JidotekiStatus)))]
async fn restore_backup(
    State(state): State<AppState>,
    Caller(p): Caller,
    req: Request,
) -> ApiResult<axum::Json<JidotekiStatus>> {
    require_enabled(&state, "backup")?;
    let limit = state.config.admin.backup_upload_max_bytes;
    let invalid = |d: String| bad_request("invalid_archive", d);
    // The whole form is capped (the archive plus framing); a longer Content-Length is
    // refused before a byte is read.
    let req = uploads::limit_request(
        req,
        limit.saturating_add(uploads::FORM_SLACK_BYTES),
        "a backup archive",
        &state.config.data_dir,
    )?;
    let form: Result<Multipart, MultipartRejection> = Multipart::from_request(req, &state).await;
    let mut form = form.map_err(|e| invalid(format!("expected multipart/form-data: {e}")))?;
    let unreadable = |what: &str, e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            uploads::too_large("a backup archive", limit)
        } else {
            invalid(format!("unreadable {what}: {e}"))
        }
    };
    let mut upload = None;
    while let Some(mut field) = form.next_field().await.map_err(|e| unreadable("form", e))? {
        if field.name() != Some("archive") || upload.is_some() {
            continue;
        }
        let mut u = Upload::new(&state, None).await?;
        while let Some(chunk) = field.chunk().await.map_err(|e| unreadable("archive", e))? {
            u.write(&chunk).await?;
        }
        u.finish().await?;
        upload = Some(u);
    }
    let upload = upload.ok_or_else(|| invalid("the archive field is required".into()))?;
    let b = svc::import(&state, &p.user, upload).await.map_err(as_400)?;
    let job = svc::start_restore(&state, &p.user, &b.id).map_err(as_400)?;
    let done = state.jobs.wait(&job.id, RESTORE_WAIT).await?;
    match done.status {
        JobStatus::Success => Ok(axum::Json(JidotekiStatus::ok())),
        JobStatus::Running | JobStatus::Queued => Err(bad_request(
            "restore_running",
            format!("the restore is still running; follow {}", job.href),
        )),
        _ => Err(bad_request(
            "restore_failed",
            done.error_message
                .unwrap_or_else(|| "the restore failed".into()),
        )),
    }
}
