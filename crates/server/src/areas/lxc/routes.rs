//! The operations of `/api/v1/lxc`. Each handler validates (through [`model`] and
//! [`storage`]), then calls a plain function here that takes the container's lock, runs the
//! `lxc-*` tools through `hostplane_host::lxc`, reads the container back and publishes it.
//! Create, clone, snapshot and its restore, backup and restore are jobs (`lxc.<action>`,
//! lock key `lxc/<name>`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hostplane_host::btrfs;
use hostplane_host::lxc::{self as hl, Config, RootfsAt, Template};
use hostplane_types::auth::Role;
use hostplane_types::lxc::{
    LxcBackup, LxcBackupRequest, LxcClone, LxcContainer, LxcCreate, LxcRestoreRequest,
    LxcSnapshot, LxcState as S, LxcTemplate, LxcUpdate,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{BASE_CONFIG, LxcState, console, lxc_error, model, storage};
use crate::error::{ApiError, ApiResult};
use crate::http::answer::accepted;
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_lxc, create_lxc))
        .routes(routes!(get_lxc, update_lxc, delete_lxc))
        .routes(routes!(start_lxc))
        .routes(routes!(stop_lxc))
        .routes(routes!(restart_lxc))
        .routes(routes!(kill_lxc))
        .routes(routes!(freeze_lxc))
        .routes(routes!(unfreeze_lxc))
        .routes(routes!(list_snapshots, create_snapshot))
        .routes(routes!(delete_snapshot))
        .routes(routes!(restore_snapshot))
        .routes(routes!(clone_lxc))
        .routes(routes!(backup_lxc))
        .routes(routes!(restore_lxc))
        .routes(routes!(console::console_ticket))
        .routes(routes!(console::attach_ws))
}

fn lock_key(name: &str) -> String {
    format!("lxc/{name}")
}

fn publish(state: &AppState, kind: &str, c: &LxcContainer, actor: &str) {
    state.events.publish(
        kind,
        &c.href,
        actor,
        serde_json::to_value(c).unwrap_or_default(),
    );
}

/// 404 unless `name` is a container of the lxcpath.
fn require(state: &AppState, name: &str) -> ApiResult<()> {
    model::check_path_name(name)?;
    if state.lxc().lxc.exists(name) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("LXC container {name:?}")))
    }
}

fn read_config(state: &AppState, name: &str) -> ApiResult<Config> {
    Config::read(&state.lxc().lxc.config_path(name)).map_err(ApiError::internal)
}

/// One container as the API shows it (`lxc-info -H` and its config).
pub async fn get_one(state: &AppState, name: &str) -> ApiResult<LxcContainer> {
    require(state, name)?;
    let info = state.lxc().lxc.info(name).await.map_err(lxc_error)?;
    let cfg = read_config(state, name)?;
    Ok(model::view(
        &info,
        &cfg,
        storage::label(state, cfg.rootfs().as_deref()),
    ))
}

/// Every container: `lxc-ls --fancy` for state and addresses, `lxc-info -H` for the pid and
/// memory of those running.
pub async fn list_all(state: &AppState) -> ApiResult<Vec<LxcContainer>> {
    let lxc = &state.lxc().lxc;
    let rows = lxc.list().await.map_err(lxc_error)?;
    let infos = futures_util::future::join_all(rows.iter().map(|r| async move {
        if matches!(r.state, hl::State::Running | hl::State::Frozen) {
            lxc.info(&r.name).await.ok()
        } else {
            None
        }
    }))
    .await;
    let mut out = Vec::new();
    for (r, info) in rows.into_iter().zip(infos) {
        let Ok(cfg) = Config::read(&lxc.config_path(&r.name)) else {
            continue;
        };
        let info = info.unwrap_or_else(|| hl::Info {
            name: r.name.clone(),
            state: r.state,
            pid: None,
            ips: r.ipv4.iter().chain(&r.ipv6).cloned().collect(),
            memory_bytes: None,
            cpu_ns: None,
        });
        out.push(model::view(
            &info,
            &cfg,
            storage::label(state, cfg.rootfs().as_deref()),
        ));
    }
    Ok(out)
}

/// List the LXC containers with state, addresses and memory.
#[utoipa::path(get, path = "/api/v1/lxc",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("lxc:read"))),
    tag = "lxc", params(CollectionParams),
    responses((status = 200, description = "Containers", body = [LxcContainer],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_lxc(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(list_all(&state).await?, &params, &headers)
}

/// One LXC container.
#[utoipa::path(get, path = "/api/v1/lxc/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("lxc:read"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name")),
    responses((status = 200, description = "The container", body = LxcContainer)))]
async fn get_lxc(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<axum::Json<LxcContainer>> {
    Ok(axum::Json(get_one(&state, &name).await?))
}

/// A create request checked and resolved: what the job needs.
struct CreatePlan {
    req: LxcCreate,
    archive: Option<PathBuf>,
    /// The rootfs directory on a dataset, and whether to make it a btrfs subvolume.
    rootfs: Option<(PathBuf, bool)>,
    settings: hl::Settings,
}

/// Checks a create request (422 before anything is made; 409 when the name or its rootfs
/// directory is taken).
fn plan_create(state: &AppState, req: LxcCreate, admin: bool) -> ApiResult<CreatePlan> {
    model::check_name("name", &req.name)?;
    let archive = match (req.template, &req.rootfs_archive) {
        (LxcTemplate::Busybox, None) => None,
        (LxcTemplate::Busybox, Some(_)) => {
            return Err(ApiError::invalid_field(
                "invalid_archive",
                "rootfs_archive",
                "only the local template takes a rootfs archive",
            ));
        }
        (LxcTemplate::Local, None) => {
            return Err(ApiError::invalid_field(
                "invalid_archive",
                "rootfs_archive",
                "the local template needs a rootfs .tar.xz: <pool>/<dataset>/<path>",
            ));
        }
        (LxcTemplate::Local, Some(a)) => Some(storage::dataset_file(state, "rootfs_archive", a)?),
    };
    if let Some(b) = &req.bridge {
        hostplane_host::command::validate_name("bridge", b)
            .map_err(|e| ApiError::invalid_field("invalid_name", "bridge", e.to_string()))?;
        if b.len() > 15 || !Path::new("/sys/class/net").join(b).join("bridge").is_dir() {
            return Err(ApiError::invalid_field(
                "unknown_bridge",
                "bridge",
                format!("no bridge {b:?} on this host"),
            ));
        }
    }
    model::check_limits("limits", &req.limits)?;
    let settings = settings_with(state, hl::Settings::default(), &update_of(&req), admin)?;
    let rootfs = match &req.storage {
        None => None,
        Some(s) => {
            let (pool, ds) = model::parse_storage("storage", s)?;
            let d = storage::dataset_dir(state, "storage", &pool, &ds)?;
            let dir = d.path.join(&req.name);
            if dir.exists() {
                return Err(ApiError::conflict(
                    "rootfs_exists",
                    format!("{} exists already", dir.display()),
                ));
            }
            Some((dir, d.btrfs))
        }
    };
    if state.lxc().lxc.exists(&req.name) || state.lxc().lxc.dir(&req.name).exists() {
        return Err(ApiError::conflict(
            "lxc_exists",
            format!("an LXC container named {:?} exists", req.name),
        ));
    }
    Ok(CreatePlan {
        req,
        archive,
        rootfs,
        settings,
    })
}

/// A create request's settings as an update of a new container's (none) settings.
fn update_of(req: &LxcCreate) -> LxcUpdate {
    LxcUpdate {
        autostart: Some(req.autostart),
        start_order: None,
        start_delay_secs: None,
        limits: Some(req.limits.clone()),
        mounts: Some(req.mounts.clone()),
    }
}

/// `s` with `u` applied, every field checked (limits, mounts and their sources).
fn settings_with(
    state: &AppState,
    mut s: hl::Settings,
    u: &LxcUpdate,
    admin: bool,
) -> ApiResult<hl::Settings> {
    if let Some(a) = u.autostart {
        s.autostart = a;
    }
    if let Some(o) = u.start_order {
        s.start_order = Some(o);
    }
    if let Some(d) = u.start_delay_secs {
        if d > 3600 {
            return Err(ApiError::invalid_field(
                "invalid_limits",
                "start_delay_secs",
                "0 .. 3600",
            ));
        }
        s.start_delay_secs = Some(d);
    }
    if let Some(l) = &u.limits {
        model::check_limits("limits", l)?;
        s.memory_bytes = l.memory_bytes;
        s.cpus = l.cpus;
    }
    if let Some(ms) = &u.mounts {
        if ms.len() > model::MAX_MOUNTS {
            return Err(ApiError::invalid_field(
                "invalid_mount",
                "mounts",
                format!("at most {} mounts", model::MAX_MOUNTS),
            ));
        }
        let mut out = Vec::new();
        for (i, m) in ms.iter().enumerate() {
            let field = format!("mounts[{i}]");
            let e = model::check_mount(&field, m)?;
            storage::check_mount_source(state, &format!("{field}.source"), &e.source, admin)?;
            out.push(e);
        }
        s.mounts = out;
    }
    Ok(s)
}

/// Create a container from the `busybox` template or a local rootfs `.tar.xz` (a job; its
/// result is the container). Bind mounts outside pool datasets need role admin.
#[utoipa::path(post, path = "/api/v1/lxc",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    request_body = LxcCreate,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn create_lxc(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<LxcCreate>,
) -> ApiResult<Response> {
    let plan = plan_create(&state, req, p.role >= Role::Admin)?;
    let name = plan.req.name.clone();
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "lxc.create",
            target: Some(model::href(&name)),
            lock_key: Some(lock_key(&name)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _g = st.lxc().lock_wait(&plan.req.name).await;
            let c = create(&st, &ctx, plan)
                .await
                .map_err(|e| JobFailure::new("create_failed", e))?;
            publish(&st, "resource.created", &c, &actor);
            Ok(c)
        },
    )?;
    Ok(accepted(&job))
}

fn base_config(bridge: Option<&str>) -> String {
    match bridge {
        None => BASE_CONFIG.to_string(),
        Some(b) => format!(
            "lxc.net.0.type = veth\nlxc.net.0.link = {b}\nlxc.net.0.flags = up\n\
             lxc.apparmor.profile = unconfined\n"
        ),
    }
}

/// The distribution config the `local` template's meta archive carries: what a generic
/// rootfs needs to boot under LXC here.
const LOCAL_META_CONFIG: &str = "lxc.autodev = 1\nlxc.tty.max = 1\nlxc.pty.max = 16\n\
    lxc.mount.auto = cgroup:mixed proc:mixed sys:ro\n";

async fn create(state: &AppState, ctx: &JobCtx, plan: CreatePlan) -> Result<LxcContainer, String> {
    let lxc = &state.lxc().lxc;
    let name = plan.req.name.as_str();
    if lxc.dir(name).exists() {
        return Err(format!("LXC container {name:?} exists"));
    }
    std::fs::create_dir_all(lxc.path()).map_err(|e| e.to_string())?;
    let work = tempfile::Builder::new()
        .prefix(".hostplane-create-")
        .tempdir_in(lxc.path())
        .map_err(|e| e.to_string())?;
    let base = work.path().join("base.conf");
    std::fs::write(&base, base_config(plan.req.bridge.as_deref())).map_err(|e| e.to_string())?;
    let at = match &plan.rootfs {
        None => RootfsAt::Default,
        Some((dir, subvol)) => {
            if *subvol {
                btrfs::subvolume_create(&dir.to_string_lossy())
                    .await
                    .map_err(|e| e.to_string())?;
                ctx.log(format!("rootfs: btrfs subvolume {}", dir.display()));
            }
            RootfsAt::Dir(dir.clone())
        }
    };
    let template = match &plan.archive {
        None => Template::Busybox,
        Some(rootfs) => Template::Local {
            meta: hl::make_local_meta(work.path(), LOCAL_META_CONFIG)
                .await
                .map_err(|e| e.to_string())?,
            rootfs: rootfs.clone(),
        },
    };
    ctx.log(format!("lxc-create {name}"));
    ctx.progress(10);
    let made = async {
        lxc.create(name, &base, &template, &at)
            .await
            .map_err(|e| e.to_string())?;
        let mut cfg = Config::read(&lxc.config_path(name)).map_err(|e| e.to_string())?;
        cfg.apply(&plan.settings, state.lxc().cgroup);
        cfg.write(&lxc.config_path(name)).map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = made {
        // Whatever lxc-create left: its directory, the subvolume made for it.
        if lxc.exists(name) {
            let _ = lxc.destroy(name).await;
        }
        let _ = std::fs::remove_dir_all(lxc.dir(name));
        if let Some((dir, true)) = &plan.rootfs
            && btrfs::is_subvolume(dir)
        {
            let _ = btrfs::subvolume_delete(&dir.to_string_lossy()).await;
        }
        return Err(e);
    }
    ctx.progress(90);
    if plan.req.start {
        lxc.start(name).await.map_err(|e| e.to_string())?;
        ctx.log("started");
    }
    get_one(state, name).await.map_err(|e| e.to_string())
}

/// Change autostart, start order and delay, limits and bind mounts (in the config file,
/// written atomically; limits and mounts apply at the next start). Mounts outside pool
/// datasets need role admin.
#[utoipa::path(patch, path = "/api/v1/lxc/{name}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name")),
    request_body = LxcUpdate,
    responses((status = 200, description = "The container afterwards", body = LxcContainer)))]
async fn update_lxc(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<LxcUpdate>,
) -> ApiResult<axum::Json<LxcContainer>> {
    let c = update(&state, &name, &req, p.role >= Role::Admin).await?;
    publish(&state, "resource.updated", &c, &p.user);
    Ok(axum::Json(c))
}

/// Applies `u` to the container's config.
pub async fn update(state: &AppState, name: &str, u: &LxcUpdate, admin: bool) -> ApiResult<LxcContainer> {
    require(state, name)?;
    let _g = state.lxc().lock(name)?;
    let path = state.lxc().lxc.config_path(name);
    let mut cfg = read_config(state, name)?;
    let s = settings_with(state, cfg.settings(), u, admin)?;
    cfg.apply(&s, state.lxc().cgroup);
    cfg.write(&path).map_err(ApiError::internal)?;
    get_one(state, name).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteParams {
    /// Delete it although it runs (killed first).
    force: Option<bool>,
}

/// Delete a container, its rootfs and its snapshots (a running one only with `force=true`).
#[utoipa::path(delete, path = "/api/v1/lxc/{name}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name"), DeleteParams),
    responses((status = 204, description = "Deleted")))]
async fn delete_lxc(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<DeleteParams>,
) -> ApiResult<Response> {
    let last = destroy(&state, &name, q.force.unwrap_or(false)).await?;
    publish(&state, "resource.deleted", &last, &p.user);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Destroys a container; returns it as last seen.
pub async fn destroy(state: &AppState, name: &str, force: bool) -> ApiResult<LxcContainer> {
    let last = get_one(state, name).await?;
    let _g = state.lxc().lock(name)?;
    let lxc = &state.lxc().lxc;
    if last.state != S::Stopped {
        if !force {
            return Err(ApiError::conflict(
                "lxc_running",
                format!("LXC container {name:?} is not stopped: stop it first, or delete with force=true"),
            ));
        }
        if last.state == S::Frozen {
            lxc.unfreeze(name).await.map_err(lxc_error)?;
        }
        lxc.kill(name).await.map_err(lxc_error)?;
    }
    // Asked again right before: lxc-destroy of a container that still runs would delete the
    // rootfs under it.
    let now = lxc.info(name).await.map_err(lxc_error)?;
    if now.state != hl::State::Stopped {
        return Err(ApiError::conflict(
            "lxc_running",
            format!("LXC container {name:?} did not stop"),
        ));
    }
    let rootfs = read_config(state, name)?.rootfs();
    lxc.destroy(name).await.map_err(lxc_error)?;
    if let Some(r) = rootfs
        && !r.starts_with(lxc.path())
        && btrfs::is_subvolume(&r)
    {
        btrfs::subvolume_delete(&r.to_string_lossy())
            .await
            .map_err(lxc_error)?;
    }
    Ok(last)
}

/// A lifecycle action.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Start,
    Stop(u32),
    Restart(u32),
    Kill,
    Freeze,
    Unfreeze,
}

/// Runs `action` (a no-op when the container is already there) and answers the container
/// afterwards; 409 `lxc_state` when it does not apply.
pub async fn act(state: &AppState, actor: &str, name: &str, action: Action) -> ApiResult<LxcContainer> {
    let before = get_one(state, name).await?;
    let _g = state.lxc().lock(name)?;
    let lxc = &state.lxc().lxc;
    let cur = before.state;
    let refuse = || {
        Err(ApiError::conflict(
            "lxc_state",
            format!(
                "LXC container {name:?} is {}: {action:?} does not apply",
                serde_json::to_value(cur).unwrap_or_default()
            )
            .to_lowercase(),
        ))
    };
    match action {
        Action::Start => match cur {
            S::Stopped => lxc.start(name).await.map_err(lxc_error)?,
            S::Running => {}
            _ => return refuse(),
        },
        Action::Stop(t) => match cur {
            S::Stopped => {}
            S::Frozen => {
                lxc.unfreeze(name).await.map_err(lxc_error)?;
                lxc.stop(name, t).await.map_err(lxc_error)?
            }
            _ => lxc.stop(name, t).await.map_err(lxc_error)?,
        },
        Action::Restart(t) => {
            if cur == S::Frozen {
                lxc.unfreeze(name).await.map_err(lxc_error)?;
            }
            if cur != S::Stopped {
                lxc.stop(name, t).await.map_err(lxc_error)?;
            }
            lxc.start(name).await.map_err(lxc_error)?;
        }
        Action::Kill => match cur {
            S::Running => lxc.kill(name).await.map_err(lxc_error)?,
            S::Frozen => {
                lxc.unfreeze(name).await.map_err(lxc_error)?;
                lxc.kill(name).await.map_err(lxc_error)?
            }
            _ => return refuse(),
        },
        Action::Freeze => match cur {
            S::Running => lxc.freeze(name).await.map_err(lxc_error)?,
            S::Frozen => {}
            _ => return refuse(),
        },
        Action::Unfreeze => match cur {
            S::Frozen => lxc.unfreeze(name).await.map_err(lxc_error)?,
            S::Running => {}
            _ => return refuse(),
        },
    }
    let c = get_one(state, name).await?;
    if c.state != before.state {
        publish(state, "resource.updated", &c, actor);
    }
    Ok(c)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StopParams {
    /// Seconds between the halt signal and SIGKILL (0 .. 3600; default 10).
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

/// The state actions without parameters (start, kill, freeze, unfreeze): each its own route
/// and documentation, one body (`act`).
macro_rules! plain_action {
    ($(#[doc = $doc:literal])* $fn:ident, $path:literal, $action:expr) => {
        $(#[doc = $doc])*
        #[utoipa::path(post, path = $path,
            extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
            tag = "lxc",
            params(("name" = String, Path, description = "Container name")),
            responses((status = 200, description = "The container afterwards", body = LxcContainer)))]
        async fn $fn(
            State(state): State<AppState>,
            Caller(p): Caller,
            UrlPath(name): UrlPath<String>,
        ) -> ApiResult<axum::Json<LxcContainer>> {
            Ok(axum::Json(act(&state, &p.user, &name, $action).await?))
        }
    };
}

plain_action!(
    /// Start a container (`lxc-start -d`); a running one stays as it is.
    start_lxc, "/api/v1/lxc/{name}/start", Action::Start
);

/// Stop a container: its halt signal, SIGKILL after `timeout` seconds.
#[utoipa::path(post, path = "/api/v1/lxc/{name}/stop",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name"), StopParams),
    responses((status = 200, description = "The container afterwards", body = LxcContainer)))]
async fn stop_lxc(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<StopParams>,
) -> ApiResult<axum::Json<LxcContainer>> {
    let t = q.grace()?;
    Ok(axum::Json(act(&state, &p.user, &name, Action::Stop(t)).await?))
}

/// Restart a container (stop with `timeout`, then start).
#[utoipa::path(post, path = "/api/v1/lxc/{name}/restart",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name"), StopParams),
    responses((status = 200, description = "The container afterwards", body = LxcContainer)))]
async fn restart_lxc(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<StopParams>,
) -> ApiResult<axum::Json<LxcContainer>> {
    let t = q.grace()?;
    Ok(axum::Json(act(&state, &p.user, &name, Action::Restart(t)).await?))
}

plain_action!(
    /// Kill a running container (`lxc-stop -k`).
    kill_lxc, "/api/v1/lxc/{name}/kill", Action::Kill
);

plain_action!(
    /// Freeze a running container (`lxc-freeze`).
    freeze_lxc, "/api/v1/lxc/{name}/freeze", Action::Freeze
);

plain_action!(
    /// Unfreeze a frozen container (`lxc-unfreeze`).
    unfreeze_lxc, "/api/v1/lxc/{name}/unfreeze", Action::Unfreeze
);

fn snapshot_view(name: &str, s: hl::SnapshotRow) -> LxcSnapshot {
    LxcSnapshot {
        href: format!("{}/snapshots/{}", model::href(name), s.name),
        name: s.name,
        created: s.created,
    }
}

/// A container's snapshots (`lxc-snapshot -L`).
#[utoipa::path(get, path = "/api/v1/lxc/{name}/snapshots",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("lxc:read"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name")),
    responses((status = 200, description = "Snapshots", body = [LxcSnapshot])))]
async fn list_snapshots(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<axum::Json<Vec<LxcSnapshot>>> {
    require(&state, &name)?;
    let rows = state.lxc().lxc.snapshots(&name).await.map_err(lxc_error)?;
    Ok(axum::Json(rows.into_iter().map(|s| snapshot_view(&name, s)).collect()))
}

/// 409 `lxc_running` unless the container is stopped.
async fn require_stopped(state: &AppState, name: &str) -> ApiResult<()> {
    let info = state.lxc().lxc.info(name).await.map_err(lxc_error)?;
    if info.state == hl::State::Stopped {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "lxc_running",
            format!("LXC container {name:?} must be stopped first"),
        ))
    }
}

/// Starts a job on container `name` (stopped, and staying so while the job runs).
fn spawn_on<F, Fut, R>(
    state: &AppState,
    actor: &str,
    kind: &'static str,
    name: &str,
    work: F,
) -> ApiResult<Response>
where
    F: FnOnce(AppState, Arc<JobCtx>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<R, JobFailure>> + Send + 'static,
    R: hostplane_types::jobs::JobResult,
{
    let st = state.clone();
    let n = name.to_string();
    let job = state.jobs.spawn(
        JobSpec {
            kind,
            target: Some(model::href(name)),
            lock_key: Some(lock_key(name)),
            actor: actor.to_string(),
        },
        move |ctx| async move {
            let _g = st.lxc().lock_wait(&n).await;
            require_stopped(&st, &n)
                .await
                .map_err(|e| JobFailure::new("lxc_running", e.to_string()))?;
            work(st.clone(), ctx).await
        },
    )?;
    Ok(accepted(&job))
}

/// Take a snapshot of a stopped container (`lxc-snapshot`, a copy of its rootfs; a job whose
/// result is the snapshot, named `snapN` by LXC).
#[utoipa::path(post, path = "/api/v1/lxc/{name}/snapshots",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name")),
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn create_snapshot(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    require(&state, &name)?;
    require_stopped(&state, &name).await?;
    let n = name.clone();
    spawn_on(&state, &p.user, "lxc.snapshot", &name, move |st, ctx| async move {
        let snap = st
            .lxc()
            .lxc
            .snapshot_create(&n)
            .await
            .map_err(|e| JobFailure::command("snapshot_failed", e))?;
        ctx.log(format!("snapshot {snap}"));
        let rows = st
            .lxc()
            .lxc
            .snapshots(&n)
            .await
            .map_err(|e| JobFailure::command("snapshot_failed", e))?;
        let row = rows
            .into_iter()
            .find(|r| r.name == snap)
            .ok_or_else(|| JobFailure::new("snapshot_failed", "the new snapshot is not listed"))?;
        Ok(snapshot_view(&n, row))
    })
}

fn check_snapshot_name(s: &str) -> ApiResult<()> {
    hostplane_host::command::validate_name("snapshot", s)
        .map_err(|e| ApiError::not_found(format!("no snapshot named {s:?}: {e}")))
}

async fn require_snapshot(state: &AppState, name: &str, snap: &str) -> ApiResult<()> {
    require(state, name)?;
    check_snapshot_name(snap)?;
    let rows = state.lxc().lxc.snapshots(name).await.map_err(lxc_error)?;
    if rows.iter().any(|r| r.name == snap) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "snapshot {snap:?} of LXC container {name:?}"
        )))
    }
}

/// Delete a snapshot.
#[utoipa::path(delete, path = "/api/v1/lxc/{name}/snapshots/{snapshot}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name"),
        ("snapshot" = String, Path, description = "Snapshot name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_snapshot(
    State(state): State<AppState>,
    UrlPath((name, snap)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    require_snapshot(&state, &name, &snap).await?;
    let _g = state.lxc().lock(&name)?;
    state
        .lxc()
        .lxc
        .snapshot_delete(&name, &snap)
        .await
        .map_err(lxc_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Put a stopped container's root filesystem back as it was in a snapshot (a job; its result
/// is the container). The rootfs stays where it is (on its pool dataset too): the snapshot's
/// files are copied over it with `rsync --delete`; the config is left as it is now.
#[utoipa::path(post, path = "/api/v1/lxc/{name}/snapshots/{snapshot}/restore",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name"),
        ("snapshot" = String, Path, description = "Snapshot name")),
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn restore_snapshot(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath((name, snap)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    require_snapshot(&state, &name, &snap).await?;
    require_stopped(&state, &name).await?;
    let n = name.clone();
    let actor = p.user.clone();
    spawn_on(&state, &p.user, "lxc.snapshot_restore", &name, move |st, ctx| async move {
        let lxc = &st.lxc().lxc;
        let rootfs = read_config(&st, &n)
            .ok()
            .and_then(|c| c.rootfs())
            .ok_or_else(|| JobFailure::new("restore_failed", "the container's config names no rootfs directory"))?;
        let src = lxc.snapshot_rootfs(&n, &snap);
        ctx.log(format!("rsync {} -> {}", src.display(), rootfs.display()));
        hl::rsync_replace(&src, &rootfs)
            .await
            .map_err(|e| JobFailure::command("restore_failed", e))?;
        let c = get_one(&st, &n)
            .await
            .map_err(|e| JobFailure::new("restore_failed", e.to_string()))?;
        publish(&st, "resource.updated", &c, &actor);
        Ok(c)
    })
}

/// Copy a stopped container under a new name (`lxc-copy`: a full copy whose rootfs is in the
/// lxcpath; a job whose result is the new container).
#[utoipa::path(post, path = "/api/v1/lxc/{name}/clone",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name")),
    request_body = LxcClone,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn clone_lxc(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<LxcClone>,
) -> ApiResult<Response> {
    model::check_name("name", &req.name)?;
    require(&state, &name)?;
    if state.lxc().lxc.dir(&req.name).exists() {
        return Err(ApiError::conflict(
            "lxc_exists",
            format!("an LXC container named {:?} exists", req.name),
        ));
    }
    require_stopped(&state, &name).await?;
    let n = name.clone();
    let actor = p.user.clone();
    spawn_on(&state, &p.user, "lxc.clone", &name, move |st, ctx| async move {
        let _g2 = st.lxc().lock_wait(&req.name).await;
        ctx.log(format!("lxc-copy {n} -> {}", req.name));
        st.lxc()
            .lxc
            .copy(&n, &req.name)
            .await
            .map_err(|e| JobFailure::command("clone_failed", e))?;
        let c = get_one(&st, &req.name)
            .await
            .map_err(|e| JobFailure::new("clone_failed", e.to_string()))?;
        publish(&st, "resource.created", &c, &actor);
        Ok(c)
    })
}

/// Back a stopped container (config and rootfs) up as a `.tar.zst` into a pool dataset (a job
/// whose result says where).
#[utoipa::path(post, path = "/api/v1/lxc/{name}/backup",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name")),
    request_body = LxcBackupRequest,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn backup_lxc(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<LxcBackupRequest>,
) -> ApiResult<Response> {
    require(&state, &name)?;
    let (pool, ds) = model::parse_storage("storage", &req.storage)?;
    let file = match &req.file {
        Some(f) => {
            model::check_backup_file("file", f)?;
            f.clone()
        }
        None => {
            let t = ::time::OffsetDateTime::now_utc();
            format!(
                "{name}-{:04}{:02}{:02}-{:02}{:02}{:02}.tar.zst",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
    };
    let d = storage::dataset_dir(&state, "storage", &pool, &ds)?;
    let out = d.path.join(&file);
    if out.exists() {
        return Err(ApiError::conflict(
            "backup_exists",
            format!("{file:?} exists in {}", req.storage),
        ));
    }
    require_stopped(&state, &name).await?;
    let n = name.clone();
    spawn_on(&state, &p.user, "lxc.backup", &name, move |st, ctx| async move {
        let lxc = &st.lxc().lxc;
        let rootfs = read_config(&st, &n)
            .ok()
            .and_then(|c| c.rootfs())
            .ok_or_else(|| JobFailure::new("backup_failed", "the container's config names no rootfs directory"))?;
        let partial = d.path.join(format!(".{file}.partial"));
        ctx.log(format!("tar --zstd -> {}", out.display()));
        let r = hl::backup_tar(&lxc.dir(&n), &rootfs, &partial).await;
        if let Err(e) = r {
            let _ = std::fs::remove_file(&partial);
            return Err(JobFailure::command("backup_failed", e));
        }
        std::fs::rename(&partial, &out)
            .map_err(|e| JobFailure::new("backup_failed", e.to_string()))?;
        let size_bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        Ok(LxcBackup {
            container: n.clone(),
            storage: req.storage.clone(),
            file,
            path: out.to_string_lossy().into_owned(),
            size_bytes,
        })
    })
}

/// Make container `name` (which must not exist) from a backup in a pool dataset (a job whose
/// result is the container, stopped).
#[utoipa::path(post, path = "/api/v1/lxc/{name}/restore",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "The new container's name")),
    request_body = LxcRestoreRequest,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn restore_lxc(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<LxcRestoreRequest>,
) -> ApiResult<Response> {
    model::check_name("name", &name)?;
    let (pool, ds) = model::parse_storage("storage", &req.storage)?;
    model::check_backup_file("file", &req.file)?;
    let archive = storage::dataset_file(&state, "file", &format!("{pool}/{ds}/{}", req.file))?;
    let lxc = &state.lxc().lxc;
    if lxc.dir(&name).exists() {
        return Err(ApiError::conflict(
            "lxc_exists",
            format!("an LXC container named {name:?} exists"),
        ));
    }
    let rootfs = match &req.rootfs_storage {
        None => (lxc.dir(&name).join("rootfs"), false),
        Some(s) => {
            let (pool, ds) = model::parse_storage("rootfs_storage", s)?;
            let d = storage::dataset_dir(&state, "rootfs_storage", &pool, &ds)?;
            let dir = d.path.join(&name);
            if dir.exists() {
                return Err(ApiError::conflict(
                    "rootfs_exists",
                    format!("{} exists already", dir.display()),
                ));
            }
            (dir, d.btrfs)
        }
    };
    let st = state.clone();
    let actor = p.user.clone();
    let n = name.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "lxc.restore",
            target: Some(model::href(&name)),
            lock_key: Some(lock_key(&name)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _g = st.lxc().lock_wait(&n).await;
            let c = restore(&st, &ctx, &n, &archive, rootfs)
                .await
                .map_err(|e| JobFailure::new("restore_failed", e))?;
            publish(&st, "resource.created", &c, &actor);
            Ok(c)
        },
    )?;
    Ok(accepted(&job))
}

async fn restore(
    state: &AppState,
    ctx: &JobCtx,
    name: &str,
    archive: &Path,
    (rootfs, subvol): (PathBuf, bool),
) -> Result<LxcContainer, String> {
    let lxc = &state.lxc().lxc;
    let dir = lxc.dir(name);
    std::fs::create_dir_all(lxc.path()).map_err(|e| e.to_string())?;
    // Fails when it exists: nothing of another container is touched, and the cleanup below
    // removes only what this made.
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut made_rootfs = false;
    let made = async {
        if subvol {
            btrfs::subvolume_create(&rootfs.to_string_lossy())
                .await
                .map_err(|e| e.to_string())?;
        } else {
            std::fs::create_dir(&rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
        }
        made_rootfs = true;
        ctx.log(format!("tar --extract {}", archive.display()));
        hl::restore_tar(archive, &dir, &rootfs)
            .await
            .map_err(|e| e.to_string())?;
        let path = lxc.config_path(name);
        let mut cfg = Config::read(&path).map_err(|e| format!("the backup's config: {e}"))?;
        // Paths of the backed-up container's directory now name this one's.
        let old_dir = cfg
            .rootfs()
            .filter(|r| r.ends_with("rootfs"))
            .and_then(|r| r.parent().map(Path::to_path_buf));
        cfg.set("lxc.rootfs.path", &format!("dir:{}", rootfs.display()));
        cfg.set("lxc.uts.name", &format!("\"{name}\""));
        if let Some(old) = old_dir {
            cfg.replace_prefix(&old.to_string_lossy(), &dir.to_string_lossy());
        }
        cfg.write(&path).map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&dir);
        if made_rootfs && subvol && btrfs::is_subvolume(&rootfs) {
            let _ = btrfs::subvolume_delete(&rootfs.to_string_lossy()).await;
        } else if made_rootfs && !rootfs.starts_with(&dir) {
            let _ = std::fs::remove_dir_all(&rootfs);
        }
        return Err(e);
    }
    get_one(state, name).await.map_err(|e| e.to_string())
}
