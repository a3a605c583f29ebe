//! `/api/v1/provisioning` and `POST /api/v1/vms/{id}/provisioning`: turning a fresh guest
//! into a configured machine over its serial console, then its serial console, guest agent or
//! ssh ([`transport_ssh`]) (docs/provisioning.md).
//!
//! Request flow: recipes, profiles, secrets and artifacts are plain CRUD over
//! `provisioning_objects` ([`model`]; secrets in `platform::secrets`, values write-only).
//! `POST /vms/{id}/provisioning {profile, variables, skip}` resolves everything first
//! ([`runner::prepare`]: 422 on an unresolved variable, an unknown artifact or secret), stores
//! the run (its own variables sealed) and starts the `provisioning.run` job
//! ([`runner::execute`]), which drives the VM's serial console (`platform::serial`; viewers are
//! read-only meanwhile). `POST /provisioning/runs/{id}/retry` starts a `provisioning.retry`
//! job that resumes at the failed step. A guest fetches an artifact through
//! `GET /provisioning/fetch/{token}` (public: the single-use token issued for the run is the
//! credential).

pub mod artifacts;
pub mod console;
pub mod model;
pub mod render;
pub mod runner;
pub mod transport_ssh;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hostplane_types::jobs::Job;
use hostplane_types::provisioning::{
    Artifact, ArtifactFetch, Profile, ProfileSpec, ProvisioningRun, Recipe, RecipeSpec, RenderRequest,
    RenderResult, RunCreate, RunStatus, Secret, SecretCreate,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::{AnyState, Area};
use crate::error::{ApiError, ApiResult};
use crate::http::answer::{accepted, created};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::jobs::JobSpec;
use crate::platform::secrets::SecretInfo;
use crate::state::{AppState, Services};
use artifacts::GuestUrls;
use model::BASE;

pub const AREA: Area = Area {
    init: Some(init),
    ..Area::new(
        "provisioning",
        "Provisioning: recipes typed over a VM's serial console, profiles, secrets, artifacts and runs",
        router,
    )
};

struct ProvisioningArea {
    urls: Arc<GuestUrls>,
    /// `[provisioning] url_allow`: non-public addresses artifact URLs may reach.
    url_allow: Vec<crate::platform::fetch::Net>,
}

fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    let url_allow = services
        .config
        .provisioning
        .url_allow
        .iter()
        .map(|n| crate::platform::fetch::parse_net(n).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    services
        .pool_users
        .register(Arc::new(artifacts::ArtifactsOnPools));
    // The ssh transport's per-run key directories: no run outlives the daemon, so what is
    // here is left over from a crash.
    let ssh_runs = services.config.data_dir.join("provisioning/ssh");
    if ssh_runs.exists()
        && let Err(e) = std::fs::remove_dir_all(&ssh_runs)
    {
        tracing::warn!("removing {}: {e}", ssh_runs.display());
    }
    Ok(Some(Arc::new(ProvisioningArea {
        urls: Arc::new(GuestUrls::default()),
        url_allow,
    })))
}

fn urls(state: &AppState) -> Arc<GuestUrls> {
    state.area::<ProvisioningArea>().urls.clone()
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_recipes, create_recipe))
        .routes(routes!(get_recipe, put_recipe, delete_recipe))
        .routes(routes!(render_recipe))
        .routes(routes!(list_profiles, create_profile))
        .routes(routes!(get_profile, put_profile, delete_profile))
        .routes(routes!(list_secrets, create_secret))
        .routes(routes!(get_secret, delete_secret))
        .routes(routes!(list_artifacts))
        .routes(routes!(get_artifact, delete_artifact))
        .routes(routes!(guest_fetch))
        .routes(routes!(start_run))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(retry_run))
        .merge(
            // Artifact uploads are bounded by artifacts::MAX_BYTES while they stream.
            OpenApiRouter::new()
                .routes(routes!(upload_artifact))
                .layer(DefaultBodyLimit::disable()),
        )
}

// ---- recipes ---------------------------------------------------------------------------------

/// Recipes: the built-in ones (`builtin: true`, read-only) and stored ones.
#[utoipa::path(get, path = "/api/v1/provisioning/recipes",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(CollectionParams),
    responses((status = 200, description = "Recipes", body = [Recipe],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_recipes(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(model::all_recipes(&state.store)?, &params, &headers)
}

fn not_builtin(id: &str) -> ApiResult<()> {
    if model::builtin_recipes().iter().any(|r| r.name == id) {
        return Err(ApiError::conflict(
            "builtin_recipe",
            format!("recipe {id:?} ships with hostplane and cannot be changed; copy it under another name"),
        ));
    }
    Ok(())
}

/// Stores a recipe.
#[utoipa::path(post, path = "/api/v1/provisioning/recipes",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", request_body = RecipeSpec,
    responses((status = 201, description = "Stored", body = Recipe)))]
async fn create_recipe(
    State(state): State<AppState>,
    Json(spec): Json<RecipeSpec>,
) -> ApiResult<Response> {
    model::check_recipe(&spec)?;
    not_builtin(&spec.name)?;
    model::put(&state.store, "recipe", &spec.name, &spec, true)?;
    let r = model::recipe_view(spec, false);
    Ok(created(&r.href, &r))
}

/// One recipe.
#[utoipa::path(get, path = "/api/v1/provisioning/recipes/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(("id" = String, Path, description = "Recipe id")),
    responses((status = 200, description = "The recipe", body = Recipe)))]
async fn get_recipe(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Recipe>> {
    let r = model::find_recipe(&state.store, &id)?;
    Ok(axum::Json(model::recipe_view(r.spec, r.builtin)))
}

/// Replaces a stored recipe (its `name` must be the id).
#[utoipa::path(put, path = "/api/v1/provisioning/recipes/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(("id" = String, Path, description = "Recipe id")), request_body = RecipeSpec,
    responses((status = 200, description = "Replaced", body = Recipe)))]
async fn put_recipe(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(spec): Json<RecipeSpec>,
) -> ApiResult<axum::Json<Recipe>> {
    not_builtin(&id)?;
    model::find_recipe(&state.store, &id)?;
    same_name(&id, &spec.name)?;
    model::check_recipe(&spec)?;
    model::put(&state.store, "recipe", &id, &spec, false)?;
    Ok(axum::Json(model::recipe_view(spec, false)))
}

fn same_name(id: &str, name: &str) -> ApiResult<()> {
    if id != name {
        return Err(ApiError::invalid_field(
            "name_mismatch",
            "name",
            format!("the body's name {name:?} is not the id {id:?} (renaming is not supported)"),
        ));
    }
    Ok(())
}

/// Deletes a stored recipe.
#[utoipa::path(delete, path = "/api/v1/provisioning/recipes/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(("id" = String, Path, description = "Recipe id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_recipe(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    not_builtin(&id)?;
    let users: Vec<String> = model::list::<ProfileSpec>(&state.store, "profile")?
        .into_iter()
        .filter(|p| p.recipe == id)
        .map(|p| p.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::conflict(
            "recipe_in_use",
            format!("profiles {} use recipe {id:?}", users.join(", ")),
        ));
    }
    if !model::delete(&state.store, "recipe", &id)? {
        return Err(ApiError::not_found(format!("recipe {id:?}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A dry run: the recipe's steps with the given variables (and its defaults) substituted;
/// secret values show as `<redacted>`, names without a value are listed in `unresolved`.
#[utoipa::path(post, path = "/api/v1/provisioning/recipes/{id}/render",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(("id" = String, Path, description = "Recipe id")), request_body = RenderRequest,
    responses((status = 200, description = "The rendered steps", body = RenderResult)))]
async fn render_recipe(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(req): Json<RenderRequest>,
) -> ApiResult<axum::Json<RenderResult>> {
    let r = model::find_recipe(&state.store, &id)?;
    let vars = render::resolve(&r.spec, &[&req.variables]);
    let (steps, unresolved) = render::dry_run(&r.spec, &vars);
    Ok(axum::Json(RenderResult { steps, unresolved }))
}

// ---- profiles --------------------------------------------------------------------------------

/// Profiles.
#[utoipa::path(get, path = "/api/v1/provisioning/profiles",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(CollectionParams),
    responses((status = 200, description = "Profiles", body = [Profile],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_profiles(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v: Vec<Profile> = model::list::<ProfileSpec>(&state.store, "profile")?
        .into_iter()
        .map(model::profile_view)
        .collect();
    collection::respond(v, &params, &headers)
}

/// Stores a profile. A credential names a stored secret.
#[utoipa::path(post, path = "/api/v1/provisioning/profiles",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", request_body = ProfileSpec,
    responses((status = 201, description = "Stored", body = Profile)))]
async fn create_profile(
    State(state): State<AppState>,
    Json(spec): Json<ProfileSpec>,
) -> ApiResult<Response> {
    model::check_profile(&spec)?;
    model::put(&state.store, "profile", &spec.name, &spec, true)?;
    let p = model::profile_view(spec);
    Ok(created(&p.href, &p))
}

/// One profile.
#[utoipa::path(get, path = "/api/v1/provisioning/profiles/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(("id" = String, Path, description = "Profile id")),
    responses((status = 200, description = "The profile", body = Profile)))]
async fn get_profile(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Profile>> {
    Ok(axum::Json(model::profile_view(
        model::find_profile(&state.store, &id)?.spec,
    )))
}

/// Replaces a profile (its `name` must be the id).
#[utoipa::path(put, path = "/api/v1/provisioning/profiles/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(("id" = String, Path, description = "Profile id")), request_body = ProfileSpec,
    responses((status = 200, description = "Replaced", body = Profile)))]
async fn put_profile(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(spec): Json<ProfileSpec>,
) -> ApiResult<axum::Json<Profile>> {
    model::find_profile(&state.store, &id)?;
    same_name(&id, &spec.name)?;
    model::check_profile(&spec)?;
    model::put(&state.store, "profile", &id, &spec, false)?;
    Ok(axum::Json(model::profile_view(spec)))
}

/// Deletes a profile.
#[utoipa::path(delete, path = "/api/v1/provisioning/profiles/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(("id" = String, Path, description = "Profile id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_profile(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    if !model::delete(&state.store, "profile", &id)? {
        return Err(ApiError::not_found(format!("profile {id:?}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- secrets ---------------------------------------------------------------------------------

fn secret_view(s: SecretInfo) -> Secret {
    Secret {
        href: format!("{BASE}/secrets/{}", s.name),
        id: s.id,
        name: s.name,
        created_at: s.created_at,
    }
}

/// Stored secrets: names only, never values.
#[utoipa::path(get, path = "/api/v1/provisioning/secrets",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(CollectionParams),
    responses((status = 200, description = "Secrets (without values)", body = [Secret],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_secrets(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v: Vec<Secret> = state
        .secrets
        .list(&state.store)?
        .into_iter()
        .map(secret_view)
        .collect();
    collection::respond(v, &params, &headers)
}

/// Stores a secret, sealed with the data dir's key. The value is never returned.
#[utoipa::path(post, path = "/api/v1/provisioning/secrets",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", request_body = SecretCreate,
    responses((status = 201, description = "Stored (no value in the answer)", body = Secret)))]
async fn create_secret(
    State(state): State<AppState>,
    Json(req): Json<SecretCreate>,
) -> ApiResult<Response> {
    model::check_id("name", &req.name)?;
    // Characters, as the schema's `maxLength` counts them.
    if req.value.chars().count() > 65536 {
        return Err(ApiError::invalid_field(
            "invalid_secret",
            "value",
            "at most 65536 bytes",
        ));
    }
    let s = secret_view(state.secrets.create(&state.store, &req.name, &req.value)?);
    Ok(created(&s.href, &s))
}

/// One secret, without its value.
#[utoipa::path(get, path = "/api/v1/provisioning/secrets/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(("id" = String, Path, description = "Secret id or name")),
    responses((status = 200, description = "The secret (no value)", body = Secret)))]
async fn get_secret(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<axum::Json<Secret>> {
    Ok(axum::Json(secret_view(state.secrets.info(&state.store, &id)?)))
}

/// Deletes a secret.
#[utoipa::path(delete, path = "/api/v1/provisioning/secrets/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(("id" = String, Path, description = "Secret id or name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_secret(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.secrets.delete(&state.store, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- artifacts -------------------------------------------------------------------------------

/// Artifacts.
#[utoipa::path(get, path = "/api/v1/provisioning/artifacts",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(CollectionParams),
    responses((status = 200, description = "Artifacts", body = [Artifact],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_artifacts(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(
        model::list::<Artifact>(&state.store, "artifact")?,
        &params,
        &headers,
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadParams {
    /// The artifact's name (an upload; required with it, ignored with a JSON body).
    #[param(pattern = r"^[a-z0-9](\.?[a-z0-9_-])*\.?$", max_length = 64)]
    name: Option<String>,
    /// Expected sha256 of an upload (hex); 422 `checksum_mismatch` when the content differs.
    #[param(pattern = r"^[0-9a-fA-F]{64}$")]
    sha256: Option<String>,
}

/// Whether the body is JSON (`application/json`, parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Adds an artifact: upload the file as the body with `?name=` (streamed, at most 4 GiB; 201),
/// or send JSON `{name, url, sha256?}` to download it (202 with a `provisioning.artifact_fetch`
/// job whose result is the artifact). Either way it is stored under its sha256, checked
/// against `sha256` when given.
#[utoipa::path(post, path = "/api/v1/provisioning/artifacts",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(UploadParams),
    request_body(content((ArtifactFetch = "application/json"), (Vec<u8> = "application/octet-stream")),
        description = "JSON {name, url, sha256?}, or the file itself"),
    responses((status = 201, description = "Uploaded and stored", body = Artifact),
        (status = 202, description = "Download started; the job's result is the artifact", body = Job)))]
async fn upload_artifact(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(q): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if is_json(&headers) {
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map_err(|e| ApiError::PayloadTooLarge(e.to_string()))?;
        let req: ArtifactFetch = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?;
        let allow = state.area::<ProvisioningArea>().url_allow.clone();
        let job = artifacts::start_fetch(&state, &p.user, req, allow).await?;
        return Ok(accepted(&job));
    }
    let name = q.name.ok_or_else(|| {
        ApiError::invalid_field(
            "invalid_name",
            "name",
            "an upload names the artifact with ?name= (or send JSON {name, url} to download one)",
        )
    })?;
    let a = artifacts::store_stream(
        &state.store,
        &artifacts::dir_of(&state)?,
        &name,
        q.sha256.as_deref(),
        "upload",
        body.into_data_stream(),
    )
    .await?;
    Ok(created(&a.href, &a))
}

/// One artifact.
#[utoipa::path(get, path = "/api/v1/provisioning/artifacts/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(("id" = String, Path, description = "Artifact name")),
    responses((status = 200, description = "The artifact", body = Artifact)))]
async fn get_artifact(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<axum::Json<Artifact>> {
    Ok(axum::Json(artifacts::find(&state.store, &id)?))
}

/// Deletes an artifact (its file too, unless another artifact has the same content).
#[utoipa::path(delete, path = "/api/v1/provisioning/artifacts/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(("id" = String, Path, description = "Artifact name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_artifact(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    artifacts::remove(&state.store, &artifacts::dir_of(&state)?, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The guest's download of an artifact through a run URL: public, the token (issued to one
/// run, valid 10 minutes) is the credential and works once.
#[utoipa::path(get, path = "/api/v1/provisioning/fetch/{token}",
    extensions(("x-required-role" = json!("public"))),
    tag = "provisioning", params(("token" = String, Path, description = "Single-use token from the run")),
    responses((status = 200, description = "The artifact's content", content_type = "application/octet-stream", body = Vec<u8>)))]
async fn guest_fetch(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let (run, a) = urls(&state)
        .redeem(&token)
        .ok_or_else(|| ApiError::not_found("this download link (used, expired or unknown)"))?;
    let file = tokio::fs::File::open(artifacts::path_of(&artifacts::dir_of(&state)?, &a))
        .await
        .map_err(|e| ApiError::internal(format!("artifact {}: {e}", a.name)))?;
    tracing::info!(run, artifact = a.name, "a guest fetched an artifact");
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, a.size_bytes.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

// ---- runs ------------------------------------------------------------------------------------

/// The URL the guest reaches this daemon at: given, or QEMU user-mode networking's host
/// address with the port this request came in on.
fn guest_base(state: &AppState, given: Option<&str>, headers: &HeaderMap) -> ApiResult<String> {
    if let Some(g) = given {
        let u = reqwest::Url::parse(g).map_err(|e| {
            ApiError::invalid_field("invalid_url", "guest_base_url", format!("{g:?}: {e}"))
        })?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(ApiError::invalid_field(
                "invalid_url",
                "guest_base_url",
                "an http or https URL with a host",
            ));
        }
        return Ok(g.trim_end_matches('/').to_string());
    }
    let port = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .or_else(|| state.config.listen.first().map(|a| a.port()))
        .unwrap_or(8443);
    let scheme = if state.tls.is_some() { "https" } else { "http" };
    Ok(format!("{scheme}://10.0.2.2:{port}"))
}

/// The VM's id, by id or name (404 when there is none).
async fn find_vm(state: &AppState, vm: &str) -> ApiResult<String> {
    let p = state
        .workloads
        .provider("vm")
        .ok_or_else(|| ApiError::Unavailable {
            code: "vms_unavailable",
            detail: "the VM area is not running".into(),
        })?;
    let all = p.list(state).await?;
    all.into_iter()
        .find_map(|w| {
            let id = w.href.rsplit('/').next().unwrap_or_default().to_string();
            (w.name == vm || id == vm).then_some(id)
        })
        .ok_or_else(|| ApiError::not_found(format!("VM {vm:?}")))
}

fn job_spec(kind: &'static str, rec: &model::RunRecord, actor: &str) -> JobSpec {
    JobSpec {
        kind,
        target: Some(rec.run.href.clone()),
        lock_key: Some(format!("vms/{}/provisioning", rec.run.vm)),
        actor: actor.to_string(),
    }
}

fn spawn_run(state: &AppState, kind: &'static str, rec: &model::RunRecord, actor: &str) -> ApiResult<Job> {
    let st = state.clone();
    let id = rec.run.id.clone();
    let who = actor.to_string();
    let u = urls(state);
    state.jobs.spawn(job_spec(kind, rec, actor), move |ctx| {
        runner::execute(st, ctx, id, who, u)
    })
}

/// Provisions a VM with a profile: 202 with the `provisioning.run` job. Everything the run
/// needs is resolved first: an unresolved variable, an unknown artifact or secret is a 422 now,
/// never a failure halfway through.
#[utoipa::path(post, path = "/api/v1/vms/{id}/provisioning",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(("id" = String, Path, description = "VM id or name")), request_body = RunCreate,
    responses((status = 202, description = "Started; the job's result is the run", body = Job)))]
async fn start_run(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(vm): Path<String>,
    headers: HeaderMap,
    Json(req): Json<RunCreate>,
) -> ApiResult<Response> {
    let vm_id = find_vm(&state, &vm).await?;
    runner::check_skip(&req.skip)?;
    let prep = runner::prepare(&state, &req.profile, &req.variables)?;
    let base = guest_base(&state, req.guest_base_url.as_deref(), &headers)?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::time::now_string();
    let names = runner::plan(&prep.profile);
    let rec = model::RunRecord {
        run: ProvisioningRun {
            href: format!("{BASE}/runs/{id}"),
            id: id.clone(),
            vm: vm_id,
            profile: req.profile.clone(),
            status: RunStatus::Running,
            steps: runner::steps_for_attempt(&names, &[], 0, &req.skip),
            failed_step: None,
            job: String::new(),
            attempts: 1,
            created_at: now.clone(),
            updated_at: now,
        },
        vars_sealed: hex::encode(state.secrets.seal(&model::encode_vars(&req.variables))),
        guest_base_url: base,
        skip: req.skip.clone(),
    };
    model::put(&state.store, "run", &id, &rec, true)?;
    let job = match spawn_run(&state, "provisioning.run", &rec, &p.user) {
        Ok(j) => j,
        Err(e) => {
            model::delete(&state.store, "run", &id)?;
            return Err(e);
        }
    };
    Ok(accepted(&job))
}

/// Provisioning runs, newest last.
#[utoipa::path(get, path = "/api/v1/provisioning/runs",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(CollectionParams),
    responses((status = 200, description = "Runs", body = [ProvisioningRun],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_runs(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v: Vec<ProvisioningRun> = model::list::<model::RunRecord>(&state.store, "run")?
        .into_iter()
        .map(|r| r.run)
        .collect();
    collection::respond(v, &params, &headers)
}

/// One run with its steps (status, exit code, duration, log).
#[utoipa::path(get, path = "/api/v1/provisioning/runs/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:read"))),
    tag = "provisioning", params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = ProvisioningRun)))]
async fn get_run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<axum::Json<ProvisioningRun>> {
    Ok(axum::Json(model::find_run(&state.store, &id)?.run))
}

/// Retries a failed run from the step that failed (the profile is read again, so a fixed
/// profile takes effect): 202 with the `provisioning.retry` job; 409 `run_not_failed` unless
/// the run failed.
#[utoipa::path(post, path = "/api/v1/provisioning/runs/{id}/retry",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("provisioning:write"))),
    tag = "provisioning", params(("id" = String, Path, description = "Run id")),
    responses((status = 202, description = "Started; the job's result is the run", body = Job)))]
async fn retry_run(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut rec = model::find_run(&state.store, &id)?;
    if rec.run.status != RunStatus::Failed {
        return Err(ApiError::conflict(
            "run_not_failed",
            format!("run {id} is {:?}; only a failed run is retried", rec.run.status),
        ));
    }
    let sealed = hex::decode(&rec.vars_sealed).map_err(ApiError::internal)?;
    let vars = serde_json::from_slice(&state.secrets.open(&sealed)?).unwrap_or_default();
    runner::prepare(&state, &rec.run.profile, &vars)?;
    rec.run.attempts += 1;
    rec.run.status = RunStatus::Running;
    model::put(&state.store, "run", &id, &rec, false)?;
    match spawn_run(&state, "provisioning.retry", &rec, &p.user) {
        Ok(job) => Ok(accepted(&job)),
        Err(e) => {
            rec.run.attempts -= 1;
            rec.run.status = RunStatus::Failed;
            model::put(&state.store, "run", &id, &rec, false)?;
            Err(e)
        }
    }
}
