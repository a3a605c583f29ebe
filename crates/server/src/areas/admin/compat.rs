//! Helpers the Jidoteki routes of certs, storage and backup share: multipart forms, the 400
//! answers the document asks for, `202 {"Status":"202 Accepted","Location":...}`, and job logs
//! as `[unixtime][SYSTEM] message` lines.

use std::collections::HashMap;

use axum::extract::Multipart;
use axum::extract::multipart::MultipartRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hostplane_types::jobs::{Job, JobStatus};

use crate::areas::admin::JidotekiStatus;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest text field read into memory.
const MAX_FIELD: usize = 1 << 20;

pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: detail.into(),
    }
}

/// A native error as the document answers it: what the caller caused (invalid input, busy,
/// a tool missing) is 400, keeping the native `code` in the problem+json; 403, 404, 413 and
/// internal errors stay what they are.
pub fn as_400(e: ApiError) -> ApiError {
    match e {
        ApiError::Invalid { code, detail, .. }
        | ApiError::Conflict { code, detail }
        | ApiError::Unavailable { code, detail }
        | ApiError::NotSupported { code, detail } => ApiError::BadRequest { code, detail },
        ApiError::InUse { detail, .. } => bad_request("in_use", detail),
        ApiError::PreconditionFailed(detail) => bad_request("precondition_failed", detail),
        ApiError::UnsupportedMediaType(detail) => bad_request("unsupported_media_type", detail),
        other => other,
    }
}

/// The named fields of a small multipart form, each at most 1 MiB. A field the form does not
/// define is refused (400 `unknown_field`): the OpenAPI document says
/// `additionalProperties: false` for every multipart body.
pub async fn fields(
    form: Result<Multipart, MultipartRejection>,
    wanted: &[&str],
) -> ApiResult<HashMap<String, Vec<u8>>> {
    let mut form = form
        .map_err(|e| bad_request("invalid_form", format!("expected multipart/form-data: {e}")))?;
    // Over the body cap (axum's default, 2 MiB) or a field over 1 MiB: 413.
    let unreadable = |what: String, e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("the form is too large: {e}"))
        } else {
            bad_request("invalid_form", format!("unreadable {what}: {e}"))
        }
    };
    let mut out = HashMap::new();
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| unreadable("form".into(), e))?
    {
        let Some(name) = field.name().map(str::to_string) else {
            continue;
        };
        if !wanted.contains(&name.as_str()) {
            return Err(bad_request(
                "unknown_field",
                format!(
                    "unknown form field {name:?}; this form takes {}",
                    wanted.join(", ")
                ),
            ));
        }
        let mut data = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| unreadable(format!("field {name}"), e))?
        {
            data.extend_from_slice(&chunk);
            if data.len() > MAX_FIELD {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the field {name} is larger than 1 MiB"
                )));
            }
        }
        out.insert(name, data);
    }
    Ok(out)
}

/// `202 Accepted`, `Location: <location>`, `{"Status":"202 Accepted","Location":"<location>"}`.
pub fn accepted(location: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location.to_string())],
        axum::Json(JidotekiStatus::accepted(Some(location))),
    )
        .into_response()
}

/// The document's status values: `running`, `success`, `failed`.
pub fn status_word(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued | JobStatus::Running => "running",
        JobStatus::Success => "success",
        JobStatus::Failed | JobStatus::Cancelled | JobStatus::Interrupted => "failed",
    }
}

/// A job's log as `[unixtime][SYSTEM] message` lines. The engine's bookkeeping lines (`job …
/// started by …`, `job finished: success`) are left out; a failure line stays.
pub fn job_log(state: &AppState, job: &Job) -> ApiResult<Vec<String>> {
    let started = format!("job {} started by ", job.kind);
    Ok(state
        .jobs
        .log_lines(&job.id, 0)?
        .into_iter()
        .filter(|(_, _, line)| !line.starts_with(&started) && line != "job finished: success")
        .map(|(_, time, line)| {
            let unix = crate::platform::time::parse(&time)
                .map(|t| t.unix_timestamp())
                .unwrap_or(0);
            format!("[{unix}][SYSTEM] {line}")
        })
        .collect())
}

/// The last `n` lines, newline-separated.
pub fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}
