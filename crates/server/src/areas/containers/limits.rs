//! `PATCH /containers/{engine}/{name}` (limits and restart policy, live) and
//! `POST .../recreate` (a job).
//!
//! PATCH flow: validate the limits and policy as a create would (422) → inspect → any other
//! field that differs from the container's is a change only a recreate can make: 409
//! `recreate_required` naming the fields, nothing changed → `Engine::update_limits` (podman
//! gets a CPU quota, both get the restart policy again) → the container afterwards.
//!
//! Recreate flow: inspect (404/503 at once) → a job `containers.recreate` locked per container:
//! pull the image reference again when asked (progress and log), then `Engine::recreate` (same
//! name, configuration and mounts, so named volumes keep their data) → the new container as
//! the job's result, and a `resource.updated` event.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use hostplane_host::containers::{Engine, EngineError};
use hostplane_types::containers::{Container, ContainerCreate, ContainerLimits, RestartPolicy};
use hostplane_types::containers_ops::{ContainerPatch, RecreateRequest};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ContainersState, engine_error, model};
use crate::error::{ApiError, ApiResult};
use crate::http::answer::accepted;
use crate::http::caller::Caller;
use crate::http::extract::Json;
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(patch_container))
        .routes(routes!(recreate_container))
}

/// An engine failure inside a job, with the codes the API answers with.
pub fn job_failure(e: EngineError) -> JobFailure {
    match e {
        EngineError::Unavailable { .. } => JobFailure::new("engine_unavailable", e.to_string()),
        EngineError::NotFound(m) => JobFailure::new("not_found", m),
        EngineError::Conflict(m) => JobFailure::new("engine_conflict", m),
        EngineError::Rejected(m) => JobFailure::new("engine_rejected", m),
        EngineError::Failed(m) => JobFailure::new("engine_error", m),
    }
}

/// Validates limits and a restart policy the way a create does.
fn check_limits(limits: &ContainerLimits, restart: &RestartPolicy) -> ApiResult<()> {
    model::check_create(
        &ContainerCreate {
            name: "x".into(),
            image: "x".into(),
            cmd: None,
            env: BTreeMap::new(),
            ports: Vec::new(),
            mounts: Vec::new(),
            volumes: Vec::new(),
            restart: restart.clone(),
            limits: limits.clone(),
            network: None,
            labels: BTreeMap::new(),
        },
    )
}

/// The fields of `p` only a recreate can change that differ from `c` (env, ports, mounts and
/// volumes are not all visible in a container's view: given at all, they count as a change).
pub fn recreate_only(p: &ContainerPatch, c: &Container) -> Vec<&'static str> {
    let mut out = Vec::new();
    if p.image.as_ref().is_some_and(|i| *i != c.image) {
        out.push("image");
    }
    if p.cmd.as_ref().is_some_and(|x| *x != c.cmd) {
        out.push("cmd");
    }
    if p.env.is_some() {
        out.push("env");
    }
    if p.ports.is_some() {
        out.push("ports");
    }
    if p.mounts.is_some() {
        out.push("mounts");
    }
    if p.volumes.is_some() {
        out.push("volumes");
    }
    if p.network.as_ref().is_some_and(|n| !c.networks.contains(n)) {
        out.push("network");
    }
    if p.labels.as_ref().is_some_and(|l| *l != c.labels) {
        out.push("labels");
    }
    out
}

/// Change a container's memory, CPU and pids limits and its restart policy while it runs.
///
/// Other fields (image, cmd, env, ports, mounts, volumes, network, labels) can only change by
/// a recreate: given with a different value they answer 409 `recreate_required` naming them,
/// and nothing changes.
#[utoipa::path(patch, path = "/api/v1/containers/{engine}/{name}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id")),
    request_body = ContainerPatch,
    responses((status = 200, description = "The container afterwards", body = Container)))]
async fn patch_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
    Json(req): Json<ContainerPatch>,
) -> ApiResult<axum::Json<Container>> {
    let e = state.engines().get(&engine)?;
    model::check_path_name("container", &name)?;
    let limits = req.limits.clone().unwrap_or_default();
    let restart = req.restart.clone().unwrap_or_default();
    check_limits(&limits, &restart)?;
    if let Some(i) = &req.image {
        model::check_image("image", i)?;
    }
    let current = e.inspect(&name).await.map_err(engine_error)?;
    let fields = recreate_only(&req, &current);
    if !fields.is_empty() {
        return Err(ApiError::conflict(
            "recreate_required",
            format!(
                "{} of container {name:?} can only change by a recreate \
                 (POST {}/recreate after changing its definition); nothing was changed",
                fields.join(", "),
                current.href
            ),
        ));
    }
    if req.limits.is_none() && req.restart.is_none() {
        return Ok(axum::Json(current));
    }
    state.engines().actors.note(&engine, &current.name, &p.user);
    let c = e
        .update_limits(&current, req.limits.as_ref(), req.restart.as_ref())
        .await
        .map_err(|err| match err {
            // An engine without a live update (or refusing this one) leaves a recreate.
            EngineError::NotFound(m) | EngineError::Rejected(m) | EngineError::Conflict(m)
                if !m.to_ascii_lowercase().contains("no such") =>
            {
                ApiError::conflict(
                    "recreate_required",
                    format!("the engine cannot change this live ({m}); recreate the container"),
                )
            }
            other => engine_error(other),
        })?;
    state.events.publish(
        "resource.updated",
        &c.href,
        &p.user,
        serde_json::to_value(&c).unwrap_or_default(),
    );
    Ok(axum::Json(c))
}

/// Recreate a container: same name, configuration and mounts (named volumes keep their data),
/// from its image reference resolved again (`pull: true` pulls it first). A running container
/// is stopped and the new one started. A job; its result is the new container.
#[utoipa::path(post, path = "/api/v1/containers/{engine}/{name}/recreate",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id")),
    request_body = RecreateRequest,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn recreate_container(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
    Json(req): Json<RecreateRequest>,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?.clone();
    model::check_path_name("container", &name)?;
    let current = e.inspect(&name).await.map_err(engine_error)?;
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "containers.recreate",
            target: Some(current.href.clone()),
            lock_key: Some(format!("containers/{engine}/{}", current.name)),
            actor: p.user.clone(),
        },
        move |ctx| async move { recreate_job(st, e, ctx, current, req.pull, actor).await },
    )?;
    Ok(accepted(&job))
}

async fn recreate_job(
    state: AppState,
    e: Arc<Engine>,
    ctx: Arc<crate::platform::jobs::JobCtx>,
    current: Container,
    pull: bool,
    actor: String,
) -> Result<Container, JobFailure> {
    if pull {
        ctx.log(format!("pulling {}", current.image));
        super::images_pull::pull_with_progress(&e, &current.image, &ctx, 90)
            .await
            .map_err(job_failure)?;
    }
    state.engines().actors.note(e.name(), &current.name, &actor);
    // The old container is renamed aside before it goes: its events carry its id.
    state.engines().actors.note(e.name(), &current.id, &actor);
    let log_ctx = ctx.clone();
    let c = e
        .recreate(&current.id, &move |line| log_ctx.log(line))
        .await
        .map_err(job_failure)?;
    ctx.progress(100);
    state.events.publish(
        "resource.updated",
        &c.href,
        &actor,
        serde_json::to_value(&c).unwrap_or_default(),
    );
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_differing_fields_need_a_recreate() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "href": "/x", "engine": "e", "id": "1", "name": "n", "image": "img:1",
            "image_id": "sha256:1", "state": "running", "exit_code": 0, "created_at": "",
            "started_at": null, "finished_at": null, "cmd": ["sh"], "ports": [], "mounts": [],
            "labels": {}, "restart": {"name": "no", "max_retries": 0}, "limits": {},
            "networks": ["none"], "stack": null
        }))
        .unwrap();
        let p = ContainerPatch {
            image: Some("img:1".into()),
            network: Some("none".into()),
            ..Default::default()
        };
        assert!(recreate_only(&p, &c).is_empty());
        let p = ContainerPatch {
            image: Some("img:2".into()),
            env: Some(BTreeMap::new()),
            ..Default::default()
        };
        assert_eq!(recreate_only(&p, &c), vec!["image", "env"]);
    }
}
