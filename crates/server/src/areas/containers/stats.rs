//! `GET /containers/{engine}/{name}/stats` (one sample as JSON, or `?stream=true` as
//! server-sent events, one `stats` event per sample) and `GET .../top`.
//!
//! Flow: check the names (404) → inspect, so a missing container or engine answers 404/503
//! before a stream starts → `hostplane_host::containers::stats`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hostplane_types::containers_ops::{ContainerStats, ContainerTop};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ContainersState, engine_error, model};
use crate::error::ApiResult;
use crate::http::extract::Query;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(container_stats))
        .routes(routes!(container_top))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StatsParams {
    /// Keep sending samples (about one a second) as server-sent events (`event: stats`).
    stream: Option<bool>,
}

/// A container's resource use: CPU percent, memory use and limit, pids, network and block I/O.
/// One sample as JSON (takes about a second: CPU use is measured between two samples), or with
/// `stream=true` a `text/event-stream` of samples until the client leaves or the container is
/// removed.
#[utoipa::path(get, path = "/api/v1/containers/{engine}/{name}/stats",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id"), StatsParams),
    responses((status = 200, description = "One sample, or a stream of `stats` events",
        content((ContainerStats = "application/json"), (String = "text/event-stream")))))]
async fn container_stats(
    State(state): State<AppState>,
    Path((engine, name)): Path<(String, String)>,
    Query(params): Query<StatsParams>,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?;
    model::check_path_name("container", &name)?;
    let c = e.inspect(&name).await.map_err(engine_error)?;
    if !params.stream.unwrap_or(false) {
        let mut st = e.stats(&c.id).await.map_err(engine_error)?;
        st.name = c.name;
        return Ok(axum::Json(st).into_response());
    }
    let engine_name = engine.clone();
    let s = e
        .stats_stream(&c.id)
        .await
        .map_err(engine_error)?
        .map(move |mut r| {
            if let Ok(st) = r.as_mut() {
                st.name = c.name.clone();
            }
            r
        })
        .take_while(move |r| {
            if let Err(err) = r {
                tracing::debug!(engine = %engine_name, error = %err, "stats stream ended");
            }
            std::future::ready(r.is_ok())
        })
        .filter_map(|r| {
            std::future::ready(r.ok().map(|st| {
                Ok::<_, Infallible>(
                    SseEvent::default()
                        .event("stats")
                        .data(serde_json::to_string(&st).unwrap_or_default()),
                )
            }))
        });
    Ok(Sse::new(s)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The processes running in a container (`ps` columns as the engine gives them).
#[utoipa::path(get, path = "/api/v1/containers/{engine}/{name}/top",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id")),
    responses((status = 200, description = "Its processes", body = ContainerTop)))]
async fn container_top(
    State(state): State<AppState>,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<ContainerTop>> {
    let e = state.engines().get(&engine)?;
    model::check_path_name("container", &name)?;
    let c = e.inspect(&name).await.map_err(engine_error)?;
    if !hostplane_host::containers::update::is_running(c.state) {
        return Err(crate::error::ApiError::conflict(
            "container_state",
            format!("container {name:?} is not running: it has no processes"),
        ));
    }
    Ok(axum::Json(e.top(&c.id).await.map_err(engine_error)?))
}
