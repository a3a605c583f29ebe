//! `GET /api/v1/admin/endpoints` (Jidoteki section 7): the enabled first-level admin
//! endpoints, sorted, as `{"endpoints": ["/api/v1/admin/build", …]}`.
//!
//! The list is derived from the routes this build serves under `/api/v1/admin` (so it cannot
//! list what does not exist), minus the optional endpoints `[admin] endpoints` disables.
//! `cluster` is not implemented yet (fleet issue): it answers 404 and is never listed. Jidoteki's `/docs` is not listed either: hostplane's API docs are
//! at `/api-docs/`, outside the admin prefix.

use std::sync::OnceLock;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::admin::endpoint_enabled;
use crate::config::ADMIN_OPTIONAL_ENDPOINTS;
use crate::state::AppState;

const PREFIX: &str = "/api/v1/admin/";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(endpoints))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointList {
    /// Sorted paths, e.g. `/api/v1/admin/health`.
    pub endpoints: Vec<String>,
}

/// First-level names of every route of the admin area, sorted (computed once).
fn routed() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let (_, doc) = crate::areas::admin::router().split_for_parts();
        let mut names: Vec<String> = doc
            .paths
            .paths
            .keys()
            .filter_map(|p| p.strip_prefix(PREFIX))
            .filter_map(|rest| rest.split('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        names
    })
}

/// The enabled endpoints (Jidoteki `GET /endpoints`).
#[utoipa::path(get, path = "/api/v1/admin/endpoints",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Enabled endpoints", body = EndpointList)))]
async fn endpoints(State(state): State<AppState>) -> axum::Json<EndpointList> {
    let endpoints = routed()
        .iter()
        .filter(|n| !ADMIN_OPTIONAL_ENDPOINTS.contains(&n.as_str()) || endpoint_enabled(&state, n))
        .map(|n| format!("{PREFIX}{n}"))
        .collect();
    axum::Json(EndpointList { endpoints })
}
