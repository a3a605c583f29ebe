//! `POST /container-engines/{engine}/images/pull` (a job with layer progress),
//! `POST .../images/prune`, and the pull a create needs when its image is missing.
//!
//! Pull flow: validate the reference (422) → the engine (404/503) → a job
//! `containers.image_pull` locked per engine and reference: the engine's status stream becomes
//! job progress (bytes of the layers seen) and log lines (a layer's status changed) → the
//! image as the job's result.
//!
//! Create flow (`POST /containers/{engine}`, in `lifecycle`): when the engine has the image the
//! create stays synchronous (201); when it does not, [`create_after_pull`] answers 202 with a
//! job `containers.create` that pulls it, then creates, with the container as its result.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use hostplane_host::containers::{Engine, EngineError};
use hostplane_types::containers::{ContainerCreate, ContainerImage};
use hostplane_types::containers_ops::{ImagePruneResult, ImagePullRequest};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::limits::job_failure;
use super::{ContainersState, engine_error, model};
use crate::error::ApiResult;
use crate::http::answer::accepted;
use crate::http::caller::Caller;
use crate::http::extract::Json;
use crate::platform::jobs::{JobCtx, JobSpec};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pull_image))
        .routes(routes!(prune_images))
}

/// Pulls `image` on `e`, reporting progress up to `upto` percent and one log line per layer
/// step.
pub async fn pull_with_progress(
    e: &Engine,
    image: &str,
    ctx: &JobCtx,
    upto: u8,
) -> Result<ContainerImage, EngineError> {
    let mut on = |pct: u8, line: Option<String>| {
        if let Some(l) = line {
            ctx.log(l);
        }
        ctx.progress(((pct as u32 * upto as u32) / 100) as u8);
    };
    e.pull(image, &mut on).await
}

/// Pull an image from its registry (a job: progress is the share of layer bytes downloaded,
/// the log has each layer's steps; the result is the image).
#[utoipa::path(post, path = "/api/v1/container-engines/{engine}/images/pull",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name")),
    request_body = ImagePullRequest,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn pull_image(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(engine): Path<String>,
    Json(req): Json<ImagePullRequest>,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?.clone();
    model::check_image("image", &req.image)?;
    // An engine that is down answers 503 now, not as a failed job.
    e.client().await.map_err(engine_error)?;
    let job = state.jobs.spawn(
        JobSpec {
            kind: "containers.image_pull",
            target: Some(format!("/api/v1/container-engines/{engine}/images")),
            lock_key: Some(format!("containers/image-pull/{engine}/{}", req.image)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            ctx.log(format!("pulling {}", req.image));
            let img = pull_with_progress(&e, &req.image, &ctx, 100)
                .await
                .map_err(job_failure)?;
            ctx.progress(100);
            Ok(img)
        },
    )?;
    Ok(accepted(&job))
}

/// Delete the images no container uses (tagged or not).
#[utoipa::path(post, path = "/api/v1/container-engines/{engine}/images/prune",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name")),
    responses((status = 200, description = "What was removed", body = ImagePruneResult)))]
async fn prune_images(
    State(state): State<AppState>,
    Path(engine): Path<String>,
) -> ApiResult<axum::Json<ImagePruneResult>> {
    let e = state.engines().get(&engine)?;
    Ok(axum::Json(e.prune_images().await.map_err(engine_error)?))
}

/// For a create whose image `e` lacks: a job that pulls, then creates (202). `None` when the
/// image is there (the caller creates at once).
pub async fn create_after_pull(
    state: &AppState,
    e: &Arc<Engine>,
    req: &ContainerCreate,
    actor: &str,
) -> ApiResult<Option<Response>> {
    if e.has_image(&req.image).await.map_err(engine_error)? {
        return Ok(None);
    }
    let (st, e, req, who) = (state.clone(), e.clone(), req.clone(), actor.to_string());
    let job = state.jobs.spawn(
        JobSpec {
            kind: "containers.create",
            target: Some(hostplane_host::containers::convert::container_href(
                e.name(),
                &req.name,
            )),
            lock_key: Some(format!("containers/{}/{}", e.name(), req.name)),
            actor: actor.to_string(),
        },
        move |ctx| async move {
            ctx.log(format!("{} is not on {}: pulling it", req.image, e.name()));
            pull_with_progress(&e, &req.image, &ctx, 90)
                .await
                .map_err(job_failure)?;
            st.engines().actors.note(e.name(), &req.name, &who);
            let c = e.create(&req).await.map_err(job_failure)?;
            ctx.log(format!("created {}", c.name));
            ctx.progress(100);
            st.events.publish(
                "resource.created",
                &c.href,
                &who,
                serde_json::to_value(&c).unwrap_or_default(),
            );
            Ok(c)
        },
    )?;
    Ok(Some(accepted(&job)))
}
