//! `/api/v1/container-engines`: the configured engines as they answer now, and each engine's
//! images (list, import of a root filesystem tarball, delete).
//!
//! Flow of an import: the body streams through a byte counter (413 past
//! `containers.import_max_bytes`) into the engine's `POST /images/create?fromSrc=-`; the new
//! image is answered as listed.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use hostplane_types::API_BASE;
use hostplane_types::containers::{ContainerEngine, ContainerImage};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ContainersState, engine_error, model};
use crate::error::{ApiError, ApiResult};
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::Query;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_engines))
        .routes(routes!(get_engine))
        .routes(routes!(list_images))
        .routes(routes!(import_image))
        .routes(routes!(delete_image))
}

fn engine_href(name: &str) -> String {
    format!("{API_BASE}/container-engines/{name}")
}

/// Every engine, probed concurrently (each within the request timeout).
pub async fn probe_all(state: &AppState) -> Vec<ContainerEngine> {
    let probes = state
        .engines()
        .all()
        .iter()
        .map(|e| e.probe(engine_href(e.name())));
    futures_util::future::join_all(probes).await
}

/// List the container engines with their reachability, driver and API versions.
#[utoipa::path(get, path = "/api/v1/container-engines",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers", params(CollectionParams),
    responses((status = 200, description = "Engines", body = [ContainerEngine],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_engines(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(probe_all(&state).await, &params, &headers)
}

/// One container engine as it answers now (an unreachable one says so; it is not an error).
#[utoipa::path(get, path = "/api/v1/container-engines/{engine}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name")),
    responses((status = 200, description = "The engine", body = ContainerEngine)))]
async fn get_engine(
    State(state): State<AppState>,
    Path(engine): Path<String>,
) -> ApiResult<axum::Json<ContainerEngine>> {
    let e = state.engines().get(&engine)?;
    Ok(axum::Json(e.probe(engine_href(e.name())).await))
}

/// List an engine's images.
#[utoipa::path(get, path = "/api/v1/container-engines/{engine}/images",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"), CollectionParams),
    responses((status = 200, description = "Images", body = [ContainerImage],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_images(
    State(state): State<AppState>,
    Path(engine): Path<String>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?;
    let images = e.list_images().await.map_err(engine_error)?;
    collection::respond(images, &params, &headers)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ImportParams {
    /// Repository of the new image (`localhost/busybox`).
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._/:@-]*$", max_length = 255)]
    repo: String,
    /// Its tag (default `latest`).
    #[param(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    tag: Option<String>,
}

/// Import a root filesystem tarball (`application/x-tar`, optionally gzip-compressed) as an
/// image `repo:tag`; answers the new image.
#[utoipa::path(post, path = "/api/v1/container-engines/{engine}/images/import",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"), ImportParams),
    request_body(content((Vec<u8> = "application/x-tar")),
        description = "A tar of the root filesystem (at most `containers.import_max_bytes`)"),
    responses((status = 201, description = "Imported", body = ContainerImage)))]
async fn import_image(
    State(state): State<AppState>,
    Path(engine): Path<String>,
    Query(params): Query<ImportParams>,
    body: Body,
) -> ApiResult<Response> {
    let checked = (|| {
        let e = state.engines().get(&engine)?;
        model::check_image("repo", &params.repo)?;
        if params.repo.contains('@') || params.repo.rsplit('/').next().is_some_and(|l| l.contains(':')) {
            return Err(ApiError::invalid_field(
                "invalid_image",
                "repo",
                "a repository without tag or digest (give the tag in ?tag=)",
            ));
        }
        let tag = params.tag.clone().unwrap_or_else(|| "latest".into());
        model::check_name("tag", &tag)?;
        Ok((e.clone(), tag))
    })();
    let (e, tag) = match checked {
        Ok(v) => v,
        Err(err) => return refuse(body, err).await,
    };
    let max = state.engines().import_max_bytes;
    let mut seen: u64 = 0;
    let too_big = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = too_big.clone();
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > max {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(std::io::Error::other("upload larger than the limit"));
            }
            Ok(chunk)
        });
    let res = e.import_rootfs(&params.repo, &tag, stream).await;
    if too_big.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::PayloadTooLarge(format!(
            "the tarball is larger than containers.import_max_bytes ({max} bytes)"
        )));
    }
    let id = res.map_err(engine_error)?;
    let image = e
        .list_images()
        .await
        .map_err(engine_error)?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| ApiError::internal(format!("imported image {id} is not listed")))?;
    Ok(crate::http::answer::created(&image.href, &image))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteImageParams {
    /// Remove it although containers use it (their image then shows as an id only).
    force: Option<bool>,
}

/// Delete an image by id (`sha256:...`).
#[utoipa::path(delete, path = "/api/v1/container-engines/{engine}/images/{image}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("image" = String, Path, description = "Image id (`sha256:...`)"), DeleteImageParams),
    responses((status = 204, description = "Deleted")))]
async fn delete_image(
    State(state): State<AppState>,
    Path((engine, image)): Path<(String, String)>,
    Query(params): Query<DeleteImageParams>,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?;
    model::check_image_ref("image", &image)?;
    e.remove_image(&image, params.force.unwrap_or(false))
        .await
        .map_err(engine_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reads (up to 1 MiB of) a body that is refused before it was read, then returns the error:
/// answering while the client still sends makes the server close the connection, and the
/// client would see a reset instead of the problem.
async fn refuse(body: Body, err: ApiError) -> ApiResult<Response> {
    let _ = axum::body::to_bytes(body, 1 << 20).await;
    Err(err)
}
