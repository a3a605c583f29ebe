//! `/api/v1/containers`: the containers of every engine (one collection), create, the
//! lifecycle actions, delete, logs and exec. Each handler validates, calls the engine through
//! `hostplane_host::containers`, maps its error with [`engine_error`], and publishes
//! `resource.*` events for what it changed.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hostplane_host::containers::ops::{Action, LogsQuery};
use hostplane_types::containers::{
    Container, ContainerCreate, ContainerState, ExecRequest, ExecResult,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ContainersState, engine_error, model};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use hostplane_types::auth::Role;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_containers))
        .routes(routes!(create_container))
        .routes(routes!(get_container, delete_container))
        .routes(routes!(start_container))
        .routes(routes!(stop_container))
        .routes(routes!(restart_container))
        .routes(routes!(kill_container))
        .routes(routes!(pause_container))
        .routes(routes!(unpause_container))
        .routes(routes!(container_logs))
        .routes(routes!(exec_container))
}

/// The header naming engines a listing left out because they did not answer.
pub const UNREACHABLE_HEADER: &str = "x-unreachable-engines";

/// List the containers of every engine (running or not). An engine that does not answer is
/// left out and named in `X-Unreachable-Engines`.
#[utoipa::path(get, path = "/api/v1/containers",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers", params(CollectionParams),
    responses((status = 200, description = "Containers", body = [Container],
        headers(("x-total-count" = u64, description = "Items before limit/offset"),
            ("x-unreachable-engines" = String, description = "Comma-separated engines that did not answer")))))]
async fn list_containers(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let lists = futures_util::future::join_all(
        state.engines().all().iter().map(|e| e.list_containers()),
    )
    .await;
    let mut all = Vec::new();
    let mut down = Vec::new();
    for (e, r) in state.engines().all().iter().zip(lists) {
        match r {
            Ok(list) => all.extend(list),
            Err(err) => {
                tracing::warn!(engine = e.name(), error = %err, "engine left out of the listing");
                down.push(e.name().to_string());
            }
        }
    }
    let mut resp = collection::respond(all, &params, &headers)?;
    if !down.is_empty()
        && let Ok(v) = HeaderValue::from_str(&down.join(","))
    {
        resp.headers_mut().insert(UNREACHABLE_HEADER, v);
    }
    Ok(resp)
}

/// Create a container (not started). When the engine lacks the image, a job pulls it first
/// and then creates the container (202 with the job).
///
/// Bind mounts (`mounts`) of a caller below admin must lie inside a pool's dataset (symlinks
/// resolved, 422 `bind_outside_pools` otherwise); an admin may bind any host path. Named
/// `volumes` are created by the engine when missing.
#[utoipa::path(post, path = "/api/v1/containers/{engine}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name")),
    request_body = ContainerCreate,
    responses((status = 201, description = "Created", body = Container),
        (status = 202, description = "The image is missing: a job pulls it, then creates the container (its result)", body = hostplane_types::jobs::Job)))]
async fn create_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(engine): Path<String>,
    Json(mut req): Json<ContainerCreate>,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?;
    model::check_create(&req)?;
    if p.role < Role::Admin {
        binds_in_pools(&state, &mut req)?;
    }
    // A missing image is pulled first, as a job (202).
    if let Some(job) = super::images_pull::create_after_pull(&state, e, &req, &p.user).await? {
        return Ok(job);
    }
    state.engines().actors.note(&engine, &req.name, &p.user);
    let c = e.create(&req).await.map_err(engine_error)?;
    publish(&state, "resource.created", &c, &p.user);
    Ok(crate::http::answer::created(&c.href, &c))
}

/// A caller below admin binds only inside pool datasets: each source must be one, and becomes
/// its resolved path (a symlink swapped in later changes nothing).
fn binds_in_pools(state: &AppState, req: &mut ContainerCreate) -> ApiResult<()> {
    for (i, m) in req.mounts.iter_mut().enumerate() {
        let real = crate::platform::pool_paths::inside_pool_dataset(state, &m.source).map_err(
            |why| {
                ApiError::invalid_field(
                    "bind_outside_pools",
                    format!("mounts[{i}].source"),
                    format!("{why}; bind mounts outside pool datasets need role admin"),
                )
            },
        )?;
        m.source = real.to_string_lossy().into_owned();
    }
    Ok(())
}

fn publish(state: &AppState, kind: &str, c: &Container, actor: &str) {
    super::publish_object(state, kind, &c.href, actor, c);
}

/// Finds the engine and checks the container name: 404 before the engine is asked.
fn target<'a>(
    state: &'a AppState,
    engine: &str,
    name: &str,
) -> ApiResult<&'a std::sync::Arc<hostplane_host::containers::Engine>> {
    super::engine_and_name(state, engine, "container", name)
}

/// One container.
#[utoipa::path(get, path = "/api/v1/containers/{engine}/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id")),
    responses((status = 200, description = "The container", body = Container)))]
async fn get_container(
    State(state): State<AppState>,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Container>> {
    let e = target(&state, &engine, &name)?;
    Ok(axum::Json(e.inspect(&name).await.map_err(engine_error)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteParams {
    /// Remove it although it runs (killed first).
    force: Option<bool>,
    /// Remove its anonymous volumes too.
    volumes: Option<bool>,
}

/// Delete a container (a running one only with `force=true`).
#[utoipa::path(delete, path = "/api/v1/containers/{engine}/{name}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id"), DeleteParams),
    responses((status = 204, description = "Deleted")))]
async fn delete_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
    Query(params): Query<DeleteParams>,
) -> ApiResult<Response> {
    let e = target(&state, &engine, &name)?;
    let last = e.inspect(&name).await.map_err(engine_error)?;
    state.engines().actors.note(&engine, &last.name, &p.user);
    let force = params.force.unwrap_or(false);
    // One answer on every engine (podman says 500 here, dockerd 409).
    if !force
        && matches!(
            last.state,
            ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
        )
    {
        return Err(ApiError::conflict(
            "container_running",
            format!(
                "container {name:?} is {}: stop it first, or delete with force=true",
                serde_json::to_value(last.state).unwrap_or_default()
            ),
        ));
    }
    e.remove(
        &name,
        force,
        params.volumes.unwrap_or(false),
    )
    .await
    .map_err(engine_error)?;
    publish(&state, "resource.deleted", &last, &p.user);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Runs `action` and answers the container as it is afterwards.
async fn act(
    state: &AppState,
    actor: &str,
    engine: &str,
    name: &str,
    action: Action,
) -> ApiResult<axum::Json<Container>> {
    let e = target(state, engine, name)?;
    let before = e.inspect(name).await.map_err(engine_error)?;
    check_state(name, before.state, action)?;
    state.engines().actors.note(engine, &before.name, actor);
    e.act(name, action).await.map_err(engine_error)?;
    let c = e.inspect(name).await.map_err(engine_error)?;
    publish(state, "resource.updated", &c, actor);
    Ok(axum::Json(c))
}

/// Whether `action` can apply to a container in `state`: one 409 `container_state` on every
/// engine (dockerd and podman answer these with a 500 of their own wording).
pub fn check_state(name: &str, state: ContainerState, action: Action) -> ApiResult<()> {
    use ContainerState as S;
    let ok = match action {
        Action::Pause => state == S::Running,
        Action::Unpause => state == S::Paused,
        Action::Kill => matches!(state, S::Running | S::Paused | S::Restarting),
        Action::Start => state != S::Paused,
        Action::Stop(_) | Action::Restart(_) => true,
    };
    if ok {
        return Ok(());
    }
    let state = serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Err(ApiError::conflict(
        "container_state",
        format!("container {name:?} is {state}: {action:?} does not apply").to_lowercase(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StopParams {
    /// Seconds between SIGTERM and SIGKILL (0 .. 3600; default 10).
    #[param(minimum = 0, maximum = 3600)]
    timeout: Option<u32>,
}

impl StopParams {
    fn grace(&self) -> ApiResult<u32> {
        let t = self.timeout.unwrap_or(10);
        if t > 3600 {
            return Err(ApiError::invalid_field(
                "invalid_timeout",
                "timeout",
                "must be 0 .. 3600",
            ));
        }
        Ok(t)
    }
}

/// Start a container.
#[utoipa::path(post, path = "/api/v1/containers/{engine}/{name}/start",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id")),
    responses((status = 200, description = "The container afterwards", body = Container)))]
async fn start_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Container>> {
    act(&state, &p.user, &engine, &name, Action::Start).await
}

/// Stop a container: SIGTERM, then SIGKILL after `timeout` seconds.
#[utoipa::path(post, path = "/api/v1/containers/{engine}/{name}/stop",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id"), StopParams),
    responses((status = 200, description = "The container afterwards", body = Container)))]
async fn stop_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
    Query(params): Query<StopParams>,
) -> ApiResult<axum::Json<Container>> {
    let t = params.grace()?;
    act(&state, &p.user, &engine, &name, Action::Stop(t)).await
}

/// Restart a container (stop with `timeout`, then start).
#[utoipa::path(post, path = "/api/v1/containers/{engine}/{name}/restart",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id"), StopParams),
    responses((status = 200, description = "The container afterwards", body = Container)))]
async fn restart_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
    Query(params): Query<StopParams>,
) -> ApiResult<axum::Json<Container>> {
    let t = params.grace()?;
    act(&state, &p.user, &engine, &name, Action::Restart(t)).await
}

/// Kill a running container (SIGKILL).
#[utoipa::path(post, path = "/api/v1/containers/{engine}/{name}/kill",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id")),
    responses((status = 200, description = "The container afterwards", body = Container)))]
async fn kill_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Container>> {
    act(&state, &p.user, &engine, &name, Action::Kill).await
}

/// Pause (freeze) a running container.
#[utoipa::path(post, path = "/api/v1/containers/{engine}/{name}/pause",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id")),
    responses((status = 200, description = "The container afterwards", body = Container)))]
async fn pause_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Container>> {
    act(&state, &p.user, &engine, &name, Action::Pause).await
}

/// Unpause a paused container.
#[utoipa::path(post, path = "/api/v1/containers/{engine}/{name}/unpause",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id")),
    responses((status = 200, description = "The container afterwards", body = Container)))]
async fn unpause_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Container>> {
    act(&state, &p.user, &engine, &name, Action::Unpause).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsParams {
    /// Keep the response open and send new lines as they are written.
    follow: Option<bool>,
    /// Only the last N lines (default: all).
    #[param(minimum = 0)]
    tail: Option<u64>,
    /// Only lines written at or after this Unix time (seconds).
    #[param(minimum = 0)]
    since: Option<i64>,
    /// Prefix each line with its RFC 3339 timestamp.
    timestamps: Option<bool>,
}

/// A container's log (stdout and stderr as written), as plain text; `follow` streams.
#[utoipa::path(get, path = "/api/v1/containers/{engine}/{name}/logs",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id"), LogsParams),
    responses((status = 200, description = "The log", body = String, content_type = "text/plain")))]
async fn container_logs(
    State(state): State<AppState>,
    Path((engine, name)): Path<(String, String)>,
    Query(params): Query<LogsParams>,
) -> ApiResult<Response> {
    let e = target(&state, &engine, &name)?;
    if params.since.is_some_and(|s| s < 0) {
        return Err(ApiError::invalid_field(
            "invalid_since",
            "since",
            "must be a Unix time in seconds",
        ));
    }
    // Errors of the log stream surface only with its first chunk (never, while a followed
    // container stays quiet): inspect first, so a missing container or engine answers 404/503.
    e.inspect(&name).await.map_err(engine_error)?;
    let q = LogsQuery {
        follow: params.follow.unwrap_or(false),
        tail: params.tail,
        since: params.since,
        timestamps: params.timestamps.unwrap_or(false),
    };
    let stream = e.logs(&name, &q).await.map_err(engine_error)?;
    let engine_name = engine.clone();
    let body = Body::from_stream(stream.map(move |r| {
        r.map_err(|err| {
            tracing::warn!(engine = %engine_name, error = %err, "container log stream ended");
            std::io::Error::other(err.to_string())
        })
    }));
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// Run a command in a running container. Without `tty`: to completion, answering its output
/// and exit code (200). With `tty: true`: the exec is created and 201 answers a single-use
/// ticket for its terminal WebSocket (`GET .../exec/{id}/ws`). Admin only: a container may see
/// host paths.
#[utoipa::path(post, path = "/api/v1/containers/{engine}/{name}/exec",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id")),
    request_body = ExecRequest,
    responses((status = 200, description = "Output and exit code", body = ExecResult),
        (status = 201, description = "`tty: true`: the terminal's ticket", body = hostplane_types::container_io::ExecTicket)))]
async fn exec_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
    Json(req): Json<ExecRequest>,
) -> ApiResult<Response> {
    let e = target(&state, &engine, &name)?;
    model::check_exec(&req)?;
    if req.tty {
        let t = super::exec_ws::open(&state, &p, e, &name, &req).await?;
        return Ok(super::exec_ws::ticket_response(t));
    }
    Ok(axum::Json(e.exec(&name, &req).await.map_err(engine_error)?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_that_do_not_apply_are_409() {
        use ContainerState as S;
        assert!(check_state("c", S::Running, Action::Pause).is_ok());
        assert!(check_state("c", S::Paused, Action::Unpause).is_ok());
        assert!(check_state("c", S::Exited, Action::Stop(1)).is_ok());
        for (state, action) in [
            (S::Exited, Action::Pause),
            (S::Running, Action::Unpause),
            (S::Created, Action::Kill),
            (S::Paused, Action::Start),
        ] {
            let e = check_state("c", state, action).unwrap_err();
            assert_eq!(e.code(), "container_state", "{state:?} {action:?}");
        }
    }
}
