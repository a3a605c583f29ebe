//! The API areas, one folder each, mirroring the URL tree under `/api/v1`. Each area's
//! `router()` returns its routes together with their OpenAPI operations (utoipa-axum), so the
//! served routes and the published document cannot drift apart.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub mod admin;
pub mod audit;
pub mod auth;
pub mod disks;
pub mod events;
pub mod jobs;
pub mod pools;
pub mod services;
pub mod shares;
pub mod system;
pub mod tokens;
pub mod users;
pub mod vms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(tokens::router())
        .merge(jobs::router())
        .merge(events::router())
        .merge(audit::router())
        .merge(system::router())
        .merge(disks::router())
        .merge(pools::router())
        .merge(services::router())
        .merge(admin::router())
        .merge(vms::router())
        .merge(shares::router())
}

/// Answer for a created resource: 201, `Location`, the resource.
pub fn created<T: serde::Serialize>(href: &str, body: &T) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::CREATED,
        [(axum::http::header::LOCATION, href.to_string())],
        axum::Json(body),
    )
        .into_response()
}

/// Answer for a started job: 202, `Location: /api/v1/jobs/<id>`, the job.
pub fn accepted(job: &hostplane_types::jobs::Job) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, job.href.clone())],
        axum::Json(job),
    )
        .into_response()
}
