//! `/api/v1/workloads` and `/api/v1/autostart`: containers, LXC containers and VMs in one
//! list, and one start order across them followed when the daemon starts.
//!
//! Request flow: `GET /workloads` asks every provider of `platform::workloads` (registered by
//! the areas that own the workloads in their `init` hooks; this area imports none of them) and
//! answers the standard collection. `GET|PUT /autostart` reads and replaces the order, stored
//! as the setting `autostart` (each item's kind must be a registered one and its name well
//! formed; whether the object exists is checked when the order is followed, since a container
//! may come and go with its stack).
//!
//! At start ([`AREA`]'s `start` hook) a background task starts the job `workloads.autostart`
//! ([`autostart::follow`]) and returns at once, so the daemon is ready without waiting for it.

pub mod autostart;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use hostplane_types::workloads::{Autostart, Workload};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::{Area, HookFuture};
use crate::error::ApiResult;
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::state::AppState;

pub const AREA: Area = Area {
    start: Some(start),
    ..Area::new(
        "workloads",
        "Containers, LXC containers and VMs together, and the one autostart order across them",
        router,
    )
};

/// Follows the autostart order in the background (never delays readiness).
fn start(state: AppState) -> HookFuture {
    Box::pin(async move {
        tokio::spawn(autostart::at_start(state));
    })
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workloads))
        .routes(routes!(get_autostart, put_autostart))
}

/// The header naming kinds a listing left out because their provider failed.
pub const UNAVAILABLE_HEADER: &str = "x-unavailable-kinds";

/// Containers (every engine), LXC containers and VMs, with kind, name, state and engine.
#[utoipa::path(get, path = "/api/v1/workloads",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("workloads:read"))),
    tag = "workloads", params(CollectionParams),
    responses((status = 200, description = "Workloads", body = [Workload],
        headers(("x-total-count" = u64, description = "Items before limit/offset"),
            ("x-unavailable-kinds" = String, description = "Kinds whose listing failed")))))]
async fn list_workloads(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (mut all, failed) = state.workloads.list(&state).await;
    all.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    let mut resp = collection::respond(all, &params, &headers)?;
    if !failed.is_empty() {
        for f in &failed {
            tracing::warn!(error = %f, "workloads left out of the listing");
        }
        let kinds: Vec<&str> = failed
            .iter()
            .map(|f| f.split(':').next().unwrap_or(""))
            .collect();
        if let Ok(v) = HeaderValue::from_str(&kinds.join(",")) {
            resp.headers_mut().insert(UNAVAILABLE_HEADER, v);
        }
    }
    Ok(resp)
}

/// The start order followed when the daemon starts.
#[utoipa::path(get, path = "/api/v1/autostart",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("workloads:read"))),
    tag = "workloads",
    responses((status = 200, description = "The order", body = Autostart)))]
async fn get_autostart(State(state): State<AppState>) -> ApiResult<axum::Json<Autostart>> {
    Ok(axum::Json(autostart::load(&state)?))
}

/// Replace the start order. Each item: `kind` (`container`, `vm`, `lxc`: a registered kind),
/// `name` (`<engine>/<name>` for a container), `wait` (`{"seconds": N}`, `"running"` or
/// `"healthy"`), `timeout_secs` for the last two. A name twice is refused.
#[utoipa::path(put, path = "/api/v1/autostart",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("workloads:write"))),
    tag = "workloads", request_body = Autostart,
    responses((status = 200, description = "The order", body = Autostart)))]
async fn put_autostart(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<Autostart>,
) -> ApiResult<axum::Json<Autostart>> {
    autostart::check(&state, &req)?;
    autostart::save(&state, &req)?;
    state.events.publish(
        "resource.updated",
        autostart::HREF,
        &p.user,
        serde_json::to_value(&req).unwrap_or_default(),
    );
    Ok(axum::Json(req))
}
