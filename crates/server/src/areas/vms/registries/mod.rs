//! `/api/v1/template-registries`: Vagrant box registries (BoxVault, Vagrant Cloud) that VM
//! templates are pulled from, as ZoneweaverAPI pulls its boxes.
//!
//! It is part of the `vms` area (tag and scope `vms`), not an area of its own: a pull ends in a
//! template, made by the same download, unpack, image check and record as
//! `POST /vms/templates` with a URL ([`super::templates::spawn_download`]), and areas do not
//! import each other. Everything about registries is in this folder.
//!
//! Request flow: auth layer (viewer lists; operator browses and pulls, since browsing uses the
//! registry's credentials; admin adds, changes and removes registries, which hold a
//! credential) → a handler here → plain functions below: the record in the `settings` table
//! (`vms/template-registries/<name>`, without the token), the token in
//! `DATA_DIR/secrets/template-registries/<name>` (mode 0600 in a 0700 directory: only the
//! daemon's user reads it; never returned, logged, published or audited) → [`catalog`] (the
//! registry's API over `fetch`'s address policy) → for a pull, the job `vms.template_pull`
//! (locked on `vms/templates/<name>`), which verifies the declared checksum while the box
//! streams in.

pub mod catalog;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hostplane_types::vms::{
    RegistryBox, RegistryBoxVersion, RegistryKind, RegistryOrganization, TemplatePull,
    TemplateRegistry, TemplateRegistryCreate, TemplateRegistryUpdate,
};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::VmsState;
use crate::platform::fetch::{self, OriginAuth};
use super::templates::{self, BoxDownload};
use super::checksum::Expected;
use crate::error::{ApiError, ApiResult};
use crate::http::answer::{accepted, created};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::state::AppState;
use catalog::Catalog;

/// Key prefix of the records in the `settings` table.
const PREFIX: &str = "vms/template-registries/";
/// Longest token accepted.
const MAX_TOKEN: usize = 4096;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_registries, create_registry))
        .routes(routes!(get_registry, update_registry, delete_registry))
        .routes(routes!(list_organizations))
        .routes(routes!(list_boxes))
        .routes(routes!(list_versions))
        .routes(routes!(pull))
}

fn href(name: &str) -> String {
    format!("/api/v1/template-registries/{name}")
}

fn secrets_dir(state: &AppState) -> PathBuf {
    state
        .config
        .data_dir
        .join("secrets")
        .join("template-registries")
}

/// Writes the token: a 0600 file in a 0700 directory, replaced atomically.
fn write_token(state: &AppState, name: &str, token: &str) -> ApiResult<()> {
    let dir = secrets_dir(state);
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    for d in [dir.parent().unwrap_or(&dir), dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
            .map_err(ApiError::internal)?;
    }
    let tmp = dir.join(format!(".{name}.{}", uuid::Uuid::now_v7()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ApiError::internal(e));
    }
    Ok(())
}

fn read_token(state: &AppState, name: &str) -> Option<String> {
    std::fs::read_to_string(secrets_dir(state).join(name))
        .ok()
        .filter(|t| !t.is_empty())
}

fn remove_token(state: &AppState, name: &str) {
    let _ = std::fs::remove_file(secrets_dir(state).join(name));
}

fn load_all(state: &AppState) -> ApiResult<Vec<TemplateRegistry>> {
    let lo = PREFIX.to_string();
    let hi = format!("{}0", PREFIX.trim_end_matches('/'));
    let rows: Vec<String> = state.store.read(|c| {
        let mut st =
            c.prepare("SELECT value FROM settings WHERE key >= ?1 AND key < ?2 ORDER BY key")?;
        st.query_map([&lo, &hi], |r| r.get(0))?.collect()
    })?;
    Ok(rows
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect())
}

pub fn find(state: &AppState, name: &str) -> ApiResult<TemplateRegistry> {
    state
        .store
        .get_setting(&format!("{PREFIX}{name}"))?
        .and_then(|v| serde_json::from_str(&v).ok())
        .ok_or_else(|| ApiError::not_found(format!("no template registry {name:?}")))
}

fn save(state: &AppState, r: &TemplateRegistry) -> ApiResult<()> {
    let v = serde_json::to_string(r).map_err(ApiError::internal)?;
    Ok(state.store.set_setting(&format!("{PREFIX}{}", r.name), &v)?)
}

/// The base URL: `http(s)://host[:port][/path]`, no query, no credentials; reachable under
/// `[vms] url_allow`'s policy.
async fn check_url(state: &AppState, url: &str) -> ApiResult<String> {
    let bad = |m: &str| ApiError::invalid_field("invalid_url", "url", m.to_string());
    if !templates::box_url_ok(url) {
        return Err(bad(
            "an http:// or https:// URL with a host name or IPv4 address, at most 2048 \
             printable ASCII characters",
        ));
    }
    let u = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(bad("the registry's base URL, without query, fragment or user"));
    }
    fetch::resolve_checked(&u, &state.vms().url_allow).await?;
    Ok(u.as_str().trim_end_matches('/').to_string())
}

fn check_token(t: &str) -> ApiResult<()> {
    // A header value: visible ASCII only, so it cannot split or forge a header.
    if t.len() > MAX_TOKEN || !t.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return Err(ApiError::invalid_field(
            "invalid_token",
            "token",
            format!("at most {MAX_TOKEN} printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

/// The registry's API client, with its token for its own origin.
fn catalog_of(state: &AppState, r: &TemplateRegistry) -> ApiResult<Catalog> {
    let base = Url::parse(&r.url).map_err(ApiError::internal)?;
    let auth = match read_token(state, &r.name) {
        None => None,
        Some(t) => {
            let mut headers = reqwest::header::HeaderMap::new();
            let mut bearer =
                HeaderValue::from_str(&format!("Bearer {t}")).map_err(ApiError::internal)?;
            bearer.set_sensitive(true);
            headers.insert(AUTHORIZATION, bearer);
            if r.kind == RegistryKind::Boxvault {
                let mut v = HeaderValue::from_str(&t).map_err(ApiError::internal)?;
                v.set_sensitive(true);
                headers.insert(HeaderName::from_static("x-access-token"), v);
            }
            Some(OriginAuth {
                origin: base.clone(),
                headers,
            })
        }
    };
    Ok(Catalog {
        kind: r.kind,
        base,
        auth,
    })
}

pub async fn create(
    state: &AppState,
    actor: &str,
    req: TemplateRegistryCreate,
) -> ApiResult<TemplateRegistry> {
    hostplane_host::validate_name("registry", &req.name)
        .map_err(|e| ApiError::invalid_field("invalid_name", "name", e.to_string()))?;
    if let Some(t) = &req.token {
        check_token(t)?;
    }
    let url = check_url(state, &req.url).await?;
    if find(state, &req.name).is_ok() {
        return Err(ApiError::conflict(
            "registry_exists",
            format!("template registry {:?} exists", req.name),
        ));
    }
    let now = crate::platform::time::now_string();
    let r = TemplateRegistry {
        href: href(&req.name),
        name: req.name.clone(),
        kind: req.kind,
        url,
        has_token: req.token.as_deref().is_some_and(|t| !t.is_empty()),
        created_at: now.clone(),
        updated_at: now,
    };
    // The token first: a record never names a token that is not there.
    remove_token(state, &r.name);
    if let Some(t) = req.token.as_deref().filter(|t| !t.is_empty()) {
        write_token(state, &r.name, t)?;
    }
    save(state, &r)?;
    publish(state, "resource.created", &r, actor);
    Ok(r)
}

pub async fn update(
    state: &AppState,
    actor: &str,
    name: &str,
    req: TemplateRegistryUpdate,
) -> ApiResult<TemplateRegistry> {
    let mut r = find(state, name)?;
    if let Some(t) = &req.token {
        check_token(t)?;
    }
    if let Some(u) = &req.url {
        r.url = check_url(state, u).await?;
    }
    match req.token.as_deref() {
        Some("") => {
            remove_token(state, name);
            r.has_token = false;
        }
        Some(t) => {
            write_token(state, name, t)?;
            r.has_token = true;
        }
        None => {}
    }
    r.updated_at = crate::platform::time::now_string();
    save(state, &r)?;
    publish(state, "resource.updated", &r, actor);
    Ok(r)
}

pub fn delete(state: &AppState, actor: &str, name: &str) -> ApiResult<()> {
    let r = find(state, name)?;
    state.store.write(|tx| {
        tx.execute(
            "DELETE FROM settings WHERE key = ?1",
            [format!("{PREFIX}{name}")],
        )
    })?;
    remove_token(state, name);
    publish(state, "resource.deleted", &r, actor);
    Ok(())
}

/// Events carry the record as `GET` shows it: never the token.
fn publish(state: &AppState, kind: &str, r: &TemplateRegistry, actor: &str) {
    state.events.publish(
        kind,
        &r.href,
        actor,
        serde_json::to_value(r).unwrap_or_default(),
    );
}

/// Starts the pull of a box version into a new template.
pub async fn start_pull(
    state: &AppState,
    actor: &str,
    name: &str,
    req: TemplatePull,
) -> ApiResult<hostplane_types::jobs::Job> {
    let r = find(state, name)?;
    hostplane_host::validate_name("template", &req.template)
        .map_err(|e| ApiError::invalid_field("invalid_name", "template", e.to_string()))?;
    if templates::find(state, &req.template).is_ok() {
        return Err(ApiError::conflict(
            "template_exists",
            format!("template {:?} exists", req.template),
        ));
    }
    let cat = catalog_of(state, &r)?;
    let allow = &state.vms().url_allow;
    let versions = cat.versions(allow, &req.organization, &req.box_name).await?;
    let version = versions
        .iter()
        .find(|v| v.version == req.version)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "{}/{} has no version {:?}",
                req.organization, req.box_name, req.version
            ))
        })?;
    let provider = req.provider.as_deref().unwrap_or("libvirt");
    let file = catalog::pick(version, provider, req.architecture.as_deref())?;
    let checksum = Expected::from_catalog(file.checksum_type.as_deref(), file.checksum.as_deref())?;
    Url::parse(&file.url).map_err(|e| ApiError::Unavailable {
        code: "registry_invalid_answer",
        detail: format!("the provider's url {:?}: {e}", file.url),
    })?;
    let source = format!(
        "registry:{}/{}/{}@{}/{}/{}",
        r.name,
        req.organization,
        req.box_name,
        version.version,
        file.name,
        file.architecture.as_deref().unwrap_or("-")
    );
    let dl = BoxDownload {
        url: file.url.clone(),
        auth: cat.auth,
        checksum,
    };
    templates::spawn_download(
        state,
        "vms.template_pull",
        actor,
        &req.template,
        source,
        dl,
    )
}

/// List template registries (tokens are never shown; `has_token` says whether one is set).
#[utoipa::path(get, path = "/api/v1/template-registries",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms", params(CollectionParams),
    responses((status = 200, description = "Registries", body = [TemplateRegistry])))]
async fn list_registries(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(load_all(&state)?, &params, &headers)
}

/// Add a template registry (BoxVault or Vagrant Cloud) with an optional token, kept as a secret.
#[utoipa::path(post, path = "/api/v1/template-registries",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms", request_body = TemplateRegistryCreate,
    responses((status = 201, description = "Added", body = TemplateRegistry)))]
async fn create_registry(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<TemplateRegistryCreate>,
) -> ApiResult<Response> {
    let r = create(&state, &p.user, req).await?;
    Ok(created(&r.href, &r))
}

/// Get one template registry.
#[utoipa::path(get, path = "/api/v1/template-registries/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms", params(("name" = String, Path, description = "Registry name")),
    responses((status = 200, description = "The registry", body = TemplateRegistry)))]
async fn get_registry(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<axum::Json<TemplateRegistry>> {
    find(&state, &name).map(axum::Json)
}

/// Change a registry's URL or token (`token: ""` removes it).
#[utoipa::path(patch, path = "/api/v1/template-registries/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms", params(("name" = String, Path, description = "Registry name")),
    request_body = TemplateRegistryUpdate,
    responses((status = 200, description = "Changed", body = TemplateRegistry)))]
async fn update_registry(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<TemplateRegistryUpdate>,
) -> ApiResult<axum::Json<TemplateRegistry>> {
    update(&state, &p.user, &name, req).await.map(axum::Json)
}

/// Remove a registry and its token (templates pulled from it stay).
#[utoipa::path(delete, path = "/api/v1/template-registries/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms", params(("name" = String, Path, description = "Registry name")),
    responses((status = 204, description = "Removed")))]
async fn delete_registry(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<StatusCode> {
    delete(&state, &p.user, &name).map(|()| StatusCode::NO_CONTENT)
}

/// The registry's organisations (BoxVault; Vagrant Cloud lists none: 501).
#[utoipa::path(get, path = "/api/v1/template-registries/{name}/organizations",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms", params(("name" = String, Path, description = "Registry name")),
    responses((status = 200, description = "Organisations", body = [RegistryOrganization])))]
async fn list_organizations(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<axum::Json<Vec<RegistryOrganization>>> {
    let cat = catalog_of(&state, &find(&state, &name)?)?;
    cat.organizations(&state.vms().url_allow)
        .await
        .map(axum::Json)
}

/// The boxes of an organisation (BoxVault) or user (Vagrant Cloud).
#[utoipa::path(get, path = "/api/v1/template-registries/{name}/organizations/{org}/boxes",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms", params(("name" = String, Path, description = "Registry name"),
        ("org" = String, Path, description = "Organisation or user")),
    responses((status = 200, description = "Boxes", body = [RegistryBox])))]
async fn list_boxes(
    State(state): State<AppState>,
    UrlPath((name, org)): UrlPath<(String, String)>,
) -> ApiResult<axum::Json<Vec<RegistryBox>>> {
    let cat = catalog_of(&state, &find(&state, &name)?)?;
    cat.boxes(&state.vms().url_allow, &org)
        .await
        .map(axum::Json)
}

/// A box's versions with their providers (name, architecture, url, checksum).
#[utoipa::path(get,
    path = "/api/v1/template-registries/{name}/organizations/{org}/boxes/{box}/versions",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms", params(("name" = String, Path, description = "Registry name"),
        ("org" = String, Path, description = "Organisation or user"),
        ("box" = String, Path, description = "Box name")),
    responses((status = 200, description = "Versions", body = [RegistryBoxVersion])))]
async fn list_versions(
    State(state): State<AppState>,
    UrlPath((name, org, bx)): UrlPath<(String, String, String)>,
) -> ApiResult<axum::Json<Vec<RegistryBoxVersion>>> {
    let cat = catalog_of(&state, &find(&state, &name)?)?;
    cat.versions(&state.vms().url_allow, &org, &bx)
        .await
        .map(axum::Json)
}

/// Pull a box version (libvirt provider) into a new template: a job (`vms.template_pull`) that
/// downloads it, verifies the checksum the registry declares, checks the image and records the
/// template; its result is the template.
#[utoipa::path(post, path = "/api/v1/template-registries/{name}/pull",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms", params(("name" = String, Path, description = "Registry name")),
    request_body = TemplatePull,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn pull(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<TemplatePull>,
) -> ApiResult<Response> {
    let job = start_pull(&state, &p.user, &name, req).await?;
    Ok(accepted(&job))
}
