//! `GET /api/v1/system/health` and `GET /api/v1/system/metrics`: the host's health now, and
//! rates sampled over an interval. Both read `/proc` and `statvfs` on every request
//! (`hostplane_host::health`); nothing is cached. The Jidoteki `GET /admin/health` is derived
//! from [`read_health`].
//!
//! Flow: auth layer (any authenticated caller) → handler → `spawn_blocking` for the file reads
//! (health) or an async sleep between two readings (metrics, `interval_ms` 100–4000).

use std::time::Duration;

use axum::extract::State;
use hostplane_types::health::{MetricsQuery, SystemHealth, SystemMetrics};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::{ApiError, ApiResult};
use crate::http::extract::Query;
use crate::state::AppState;

pub const MIN_INTERVAL_MS: u64 = 100;
/// Kept under the 5 s a client (and the fuzzer) waits by default.
pub const MAX_INTERVAL_MS: u64 = 4_000;
pub const DEFAULT_INTERVAL_MS: u64 = 1_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(metrics))
}

/// The health snapshot, read now (shared with `GET /admin/health`).
pub async fn read_health(state: &AppState) -> ApiResult<SystemHealth> {
    let data_dir = state.config.data_dir.clone();
    tokio::task::spawn_blocking(move || hostplane_host::health::health(&data_dir))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("reading host health: {e}")))
}

/// Load, memory, CPU count, uptime and the root and data-dir filesystems, read now.
#[utoipa::path(get, path = "/api/v1/system/health",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "Health, read now", body = SystemHealth)))]
async fn health(State(state): State<AppState>) -> ApiResult<axum::Json<SystemHealth>> {
    Ok(axum::Json(read_health(&state).await?))
}

/// Per-core CPU use, memory, load, and per-interface and per-disk rates, sampled over
/// `interval_ms` (the answer takes that long).
#[utoipa::path(get, path = "/api/v1/system/metrics",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("system:read"))),
    tag = "system", params(MetricsQuery),
    responses((status = 200, description = "Rates over the interval", body = SystemMetrics)))]
async fn metrics(Query(q): Query<MetricsQuery>) -> ApiResult<axum::Json<SystemMetrics>> {
    let ms = q.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms) {
        return Err(ApiError::invalid_field(
            "invalid_interval",
            "interval_ms",
            format!("interval_ms is {MIN_INTERVAL_MS} .. {MAX_INTERVAL_MS}"),
        ));
    }
    let m = hostplane_host::health::sample(Duration::from_millis(ms))
        .await
        .map_err(|e| ApiError::internal(format!("sampling host counters: {e}")))?;
    Ok(axum::Json(m))
}
