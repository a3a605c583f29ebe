//! The answers every area gives the same way.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Answer for a created resource: 201, `Location`, the resource.
pub fn created<T: serde::Serialize>(href: &str, body: &T) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, href.to_string())],
        axum::Json(body),
    )
        .into_response()
}

/// Answer for a started job: 202, `Location: /api/v1/jobs/<id>`, the job.
pub fn accepted(job: &hostplane_types::jobs::Job) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, job.href.clone())],
        axum::Json(job),
    )
        .into_response()
}
