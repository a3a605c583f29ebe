//! `/api/v1/stacks`: compose stacks. A stack is a name, an engine and a compose file (plus an
//! optional `.env`), run by Debian's `docker-compose` 1.29 against the engine's socket.
//!
//! Request flow: auth layer (viewer reads; operator changes; admin for compose keys that hand a
//! container the host and for bind mounts outside pool datasets) → a handler here parses the
//! path and body → [`prepare`] checks the files before anything is stored ([`validate`]: YAML
//! and shape with the line of each finding, then `docker-compose config` in a scratch
//! directory for what compose itself refuses, then the bind mounts of the resolved file against
//! the pools) → the files are written atomically to `DATA_DIR/stacks/<name>/` and the row to the
//! store. `up`, `down`, `restart` and `pull` are jobs (`stacks.<action>`, locked per stack)
//! that run `hostplane_host::compose` with `DOCKER_HOST` set to the engine's socket. The
//! stack's containers are read from the engine by their `com.docker.compose.project` label.
//!
//! Why `docker-compose` rather than a native subset on bollard: compose files are a large
//! format (dependencies, healthcheck conditions, networks, volumes, profiles, interpolation,
//! `.env`, orphans, recreate on change by config hash). Running the real tool gives users what
//! their files mean elsewhere, and its labels are what every other compose tool reads. Debian
//! ships 1.29 (no v2 plugin); it speaks to dockerd and to podman's Docker-compatible socket.

pub mod validate;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hostplane_host::command::CommandError;
use hostplane_host::compose::{self, Action, Project};
use hostplane_host::containers::{Engine, EngineError};
use hostplane_types::auth::Role;
use hostplane_types::containers::ContainerState;
use hostplane_types::stacks::{Stack, StackActionResult, StackCreate, StackFiles};
use rusqlite::OptionalExtension;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::{AnyState, Area};
use crate::error::{ApiError, ApiResult};
use crate::http::answer::{accepted, created};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::platform::stack_images::{ServiceImage, StackImageSource, StackServices};
use crate::platform::workloads::WorkFuture;
use crate::state::{AppState, Services};

pub const AREA: Area = Area {
    init: Some(init),
    ..Area::new(
        "stacks",
        "Compose stacks: a compose file and .env per stack, up/down/restart/pull as jobs with \
         docker-compose on a container engine, the stack's containers and logs",
        router,
    )
};

/// This area's state: where the files live and the engines (its own clients of the
/// `[containers]` engines: areas do not share state).
pub struct Stacks {
    dir: PathBuf,
    engines: Vec<Arc<Engine>>,
    /// Serializes changes of the files and rows (create, replace, delete).
    write: tokio::sync::Mutex<()>,
}

impl Stacks {
    fn engine(&self, name: &str) -> Option<&Arc<Engine>> {
        self.engines.iter().find(|e| e.name() == name)
    }

    fn stack_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    let cfg = &services.config.containers;
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let engines = cfg
        .engines(services.config.sandbox())
        .iter()
        .map(|e| Arc::new(Engine::new(&e.name, &e.socket_path(), timeout)))
        .collect();
    let dir = services.config.data_dir.join("stacks");
    std::fs::create_dir_all(&dir)?;
    use std::os::unix::fs::PermissionsExt;
    // The files may hold secrets (.env).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    // Scratch directories of checks a crash interrupted.
    for e in std::fs::read_dir(&dir)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(".check-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    services.stack_images.register(Arc::new(StacksImages));
    Ok(Some(Arc::new(Stacks {
        dir,
        engines,
        write: Default::default(),
    })))
}

/// The stacks' services' images for update checks (`platform::stack_images`): each compose
/// file resolved by `docker-compose config`, as `up` reads it.
struct StacksImages;

impl StackImageSource for StacksImages {
    fn stacks<'a>(&'a self, state: &'a AppState) -> WorkFuture<'a, Vec<StackServices>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for rec in load_all(state)? {
                out.push(resolve_images(state, &rec).await);
            }
            Ok(out)
        })
    }
}

async fn resolve_images(state: &AppState, rec: &StackRecord) -> StackServices {
    let mut s = StackServices {
        name: rec.name.clone(),
        href: href(&rec.name),
        engine: rec.engine.clone(),
        project: rec.name.clone(),
        services: Vec::new(),
        error: None,
    };
    let Some(engine) = state.stacks().engine(&rec.engine) else {
        s.error = Some(format!("engine {:?} is not configured", rec.engine));
        return s;
    };
    let project = Project {
        name: rec.name.clone(),
        dir: state.stacks().stack_dir(&rec.name),
        socket: engine.socket().to_path_buf(),
    };
    let resolved = match project.run(Action::Check, Duration::from_secs(60)).await {
        Ok(out) => out.stdout_lossy().into_owned(),
        Err(e) => {
            s.error = Some(format!("docker-compose config: {e}"));
            return s;
        }
    };
    match validate::service_images(&resolved) {
        Ok(v) => {
            s.services = v
                .into_iter()
                .map(|(service, image)| ServiceImage { service, image })
                .collect()
        }
        Err(e) => s.error = Some(format!("the resolved compose file: {e}")),
    }
    s
}

trait StacksState {
    fn stacks(&self) -> &Stacks;
}

impl StacksState for AppState {
    fn stacks(&self) -> &Stacks {
        self.area::<Stacks>()
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_stacks, create_stack))
        .routes(routes!(get_stack, delete_stack))
        .routes(routes!(get_files, put_files))
        .routes(routes!(stack_up))
        .routes(routes!(stack_down))
        .routes(routes!(stack_restart))
        .routes(routes!(stack_pull))
        .routes(routes!(stack_logs))
}

/// A stored stack.
#[derive(Debug, Clone)]
pub struct StackRecord {
    pub name: String,
    pub engine: String,
    pub services: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<StackRecord> {
    let services: String = r.get(2)?;
    Ok(StackRecord {
        name: r.get(0)?,
        engine: r.get(1)?,
        services: serde_json::from_str(&services).unwrap_or_default(),
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

const COLUMNS: &str = "name, engine, services, created_at, updated_at";

fn load_all(state: &AppState) -> ApiResult<Vec<StackRecord>> {
    Ok(state.store.read(|c| {
        let mut s = c.prepare(&format!("SELECT {COLUMNS} FROM stacks ORDER BY name"))?;
        s.query_map([], row)?.collect()
    })?)
}

fn find(state: &AppState, name: &str) -> ApiResult<StackRecord> {
    let rec = state.store.read(|c| {
        c.query_row(
            &format!("SELECT {COLUMNS} FROM stacks WHERE name = ?1"),
            [name],
            row,
        )
        .optional()
    })?;
    rec.ok_or_else(|| ApiError::not_found(format!("no stack named {name:?}")))
}

pub fn href(name: &str) -> String {
    format!("/api/v1/stacks/{name}")
}

fn lock_key(name: &str) -> String {
    format!("stacks/{name}")
}

/// The stack-name rule ([`hostplane_types::stacks::STACK_NAME_PATTERN`]): what compose keeps
/// unchanged as the project name.
pub fn check_name(name: &str) -> ApiResult<()> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_name",
            "name",
            format!(
                "invalid stack name {name:?}: 1 to 63 of a-z 0-9 _ -, a letter or digit first \
                 (compose's project names)"
            ),
        ))
    }
}

fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::Unavailable { .. } => ApiError::Unavailable {
            code: "engine_unavailable",
            detail: e.to_string(),
        },
        EngineError::NotFound(m) => ApiError::NotFound(m),
        EngineError::Conflict(m) => ApiError::conflict("engine_conflict", m),
        EngineError::Rejected(m) => ApiError::invalid("engine_rejected", m),
        EngineError::Failed(m) => ApiError::Unavailable {
            code: "engine_error",
            detail: m,
        },
    }
}

/// The API view: the record and its containers now.
async fn view(state: &AppState, rec: &StackRecord) -> Stack {
    let (containers, error) = match state.stacks().engine(&rec.engine) {
        Some(e) => match compose::project_containers(e, &rec.name).await {
            Ok(c) => (c, None),
            Err(err) => (Vec::new(), Some(err.to_string())),
        },
        None => (
            Vec::new(),
            Some(format!("engine {:?} is not configured", rec.engine)),
        ),
    };
    let running = containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .count();
    let status = if error.is_some() {
        "unknown"
    } else if containers.is_empty() {
        "down"
    } else if running == 0 {
        "stopped"
    } else if running >= rec.services.len() && running == containers.len() {
        "running"
    } else {
        "partial"
    };
    let has_env = state
        .stacks()
        .stack_dir(&rec.name)
        .join(compose::ENV_FILE)
        .exists();
    Stack {
        href: href(&rec.name),
        name: rec.name.clone(),
        engine: rec.engine.clone(),
        services: rec.services.clone(),
        has_env,
        status: status.to_string(),
        containers,
        engine_error: error,
        created_at: rec.created_at.clone(),
        updated_at: rec.updated_at.clone(),
    }
}

fn publish(state: &AppState, kind: &str, stack: &Stack, actor: &str) {
    state.events.publish(
        kind,
        &stack.href,
        actor,
        serde_json::to_value(stack).unwrap_or_default(),
    );
}

/// Writes the files into `dir` (created 0700), each atomically.
fn write_files(dir: &FsPath, files: &StackFiles) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let (c, e) = compose::files(dir);
    hostplane_host::fsutil::write_atomic(&c, files.compose.as_bytes(), 0o600)?;
    match &files.env {
        Some(env) => hostplane_host::fsutil::write_atomic(&e, env.as_bytes(), 0o600)?,
        None => match std::fs::remove_file(&e) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        },
    }
    Ok(())
}

/// Everything checked before a stack's files are stored; answers the services.
pub async fn prepare(
    state: &AppState,
    name: &str,
    engine: &str,
    files: &StackFiles,
    admin: bool,
) -> ApiResult<Vec<String>> {
    let Some(e) = state.stacks().engine(engine) else {
        return Err(ApiError::invalid_field(
            "unknown_engine",
            "engine",
            format!("no container engine named {engine:?}"),
        ));
    };
    if let Some(env) = &files.env {
        validate::check_env(env)?;
    }
    let services =
        validate::check_text(&files.compose, admin).map_err(|f| f.to_api_error())?;
    // compose's own reading, in a scratch directory removed afterwards.
    let scratch = state
        .stacks()
        .dir
        .join(format!(".check-{}", uuid::Uuid::now_v7()));
    let resolved = async {
        write_files(&scratch, files).map_err(ApiError::internal)?;
        let project = Project {
            name: name.to_string(),
            dir: scratch.clone(),
            socket: e.socket().to_path_buf(),
        };
        match project.run(Action::Check, Duration::from_secs(60)).await {
            Ok(out) => Ok(out.stdout_lossy().into_owned()),
            Err(CommandError::Failed { stderr, .. }) => {
                let msg = stderr.replace(&format!("{}/", scratch.display()), "");
                Err(ApiError::invalid_field(
                    "invalid_compose",
                    "compose",
                    format!("docker-compose refuses the file: {}", msg.trim()),
                ))
            }
            Err(other) => Err(other.into()),
        }
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let resolved = resolved?;
    validate::check_resolved(&files.compose, &resolved).map_err(|f| f.to_api_error())?;
    if !admin {
        let binds = validate::bind_sources(&resolved).map_err(ApiError::internal)?;
        for b in binds {
            if let Err(why) = crate::platform::pool_paths::inside_pool_dataset(state, &b.source) {
                let line = validate::line_of(&files.compose, &["services", &b.service, "volumes"]);
                let f = validate::Finding {
                    line,
                    reason: format!(
                        "service {:?}: bind mount {why}; bind mounts outside pool datasets need \
                         role admin",
                        b.service
                    ),
                    admin_only: true,
                };
                return Err(f.to_api_error());
            }
        }
    }
    Ok(services)
}

/// List the stacks with their containers and status.
#[utoipa::path(get, path = "/api/v1/stacks",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("stacks:read"))),
    tag = "stacks", params(CollectionParams),
    responses((status = 200, description = "Stacks", body = [Stack],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_stacks(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mut out = Vec::new();
    for rec in load_all(&state)? {
        out.push(view(&state, &rec).await);
    }
    collection::respond(out, &params, &headers)
}

/// Store a new stack (not started: `POST .../up`). The compose file is checked first (422
/// `invalid_compose` with the line and reason; `compose_not_allowed` for what needs admin);
/// nothing is stored when it fails.
#[utoipa::path(post, path = "/api/v1/stacks",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("stacks:write"))),
    tag = "stacks", request_body = StackCreate,
    responses((status = 201, description = "Stored", body = Stack)))]
async fn create_stack(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<StackCreate>,
) -> ApiResult<Response> {
    check_name(&req.name)?;
    let files = StackFiles {
        compose: req.compose,
        env: req.env,
    };
    let services = prepare(&state, &req.name, &req.engine, &files, p.role >= Role::Admin).await?;
    let _w = state.stacks().write.lock().await;
    if find(&state, &req.name).is_ok() {
        return Err(ApiError::conflict(
            "stack_exists",
            format!("a stack named {:?} exists", req.name),
        ));
    }
    let dir = state.stacks().stack_dir(&req.name);
    write_files(&dir, &files).map_err(ApiError::internal)?;
    let now = crate::platform::time::now_string();
    let services_json = serde_json::to_string(&services).map_err(ApiError::internal)?;
    let res = state.store.write(|tx| {
        tx.execute(
            "INSERT INTO stacks(name, engine, services, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            rusqlite::params![req.name, req.engine, services_json, now],
        )
    });
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e.into());
    }
    let stack = view(&state, &find(&state, &req.name)?).await;
    publish(&state, "resource.created", &stack, &p.user);
    tracing::info!(stack = req.name, engine = req.engine, by = p.user, "stack stored");
    Ok(created(&stack.href, &stack))
}

/// One stack with its containers and status.
#[utoipa::path(get, path = "/api/v1/stacks/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("stacks:read"))),
    tag = "stacks", params(("name" = String, Path, description = "Stack name")),
    responses((status = 200, description = "The stack", body = Stack)))]
async fn get_stack(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Stack>> {
    let rec = find(&state, &name)?;
    Ok(axum::Json(view(&state, &rec).await))
}

/// Delete a stack's files and record. Its containers must be gone (`down`) first: 409
/// `stack_not_down` otherwise.
#[utoipa::path(delete, path = "/api/v1/stacks/{name}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("stacks:write"))),
    tag = "stacks", params(("name" = String, Path, description = "Stack name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_stack(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let rec = find(&state, &name)?;
    let _w = state.stacks().write.lock().await;
    // An engine no longer configured leaves nothing to take down here.
    if let Some(e) = state.stacks().engine(&rec.engine) {
        let left = compose::project_containers(e, &name)
            .await
            .map_err(engine_error)?;
        if !left.is_empty() {
            return Err(ApiError::conflict(
                "stack_not_down",
                format!(
                    "stack {name:?} still has {} container(s); take it down first (POST {}/down)",
                    left.len(),
                    href(&name)
                ),
            ));
        }
    }
    let stack = view(&state, &rec).await;
    state.store.write(|tx| tx.execute("DELETE FROM stacks WHERE name = ?1", [&name]))?;
    let _ = std::fs::remove_dir_all(state.stacks().stack_dir(&name));
    publish(&state, "resource.deleted", &stack, &p.user);
    Ok(StatusCode::NO_CONTENT)
}

/// The stack's compose file and `.env` (operator: they may hold secrets).
#[utoipa::path(get, path = "/api/v1/stacks/{name}/files",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("stacks:read"))),
    tag = "stacks", params(("name" = String, Path, description = "Stack name")),
    responses((status = 200, description = "The files", body = StackFiles)))]
async fn get_files(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<StackFiles>> {
    let rec = find(&state, &name)?;
    let (c, e) = compose::files(&state.stacks().stack_dir(&rec.name));
    let compose = std::fs::read_to_string(&c).map_err(ApiError::internal)?;
    let env = match std::fs::read_to_string(&e) {
        Ok(s) => Some(s),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(ApiError::internal(err)),
    };
    Ok(axum::Json(StackFiles { compose, env }))
}

/// Replace the compose file and `.env` (checked like a new stack; nothing changes when the
/// check fails). Running containers change at the next `up`.
#[utoipa::path(put, path = "/api/v1/stacks/{name}/files",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("stacks:write"))),
    tag = "stacks", params(("name" = String, Path, description = "Stack name")),
    request_body = StackFiles,
    responses((status = 200, description = "The stack", body = Stack)))]
async fn put_files(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    Json(files): Json<StackFiles>,
) -> ApiResult<axum::Json<Stack>> {
    let rec = find(&state, &name)?;
    let services = prepare(&state, &rec.name, &rec.engine, &files, p.role >= Role::Admin).await?;
    let _w = state.stacks().write.lock().await;
    write_files(&state.stacks().stack_dir(&name), &files).map_err(ApiError::internal)?;
    let now = crate::platform::time::now_string();
    let services_json = serde_json::to_string(&services).map_err(ApiError::internal)?;
    state.store.write(|tx| {
        tx.execute(
            "UPDATE stacks SET services = ?2, updated_at = ?3 WHERE name = ?1",
            rusqlite::params![name, services_json, now],
        )
    })?;
    let stack = view(&state, &find(&state, &name)?).await;
    publish(&state, "resource.updated", &stack, &p.user);
    Ok(axum::Json(stack))
}

/// Starts the job running `action` on the stack.
fn spawn_action(state: &AppState, name: &str, action: Action, actor: &str) -> ApiResult<Response> {
    let rec = find(state, name)?;
    let Some(engine) = state.stacks().engine(&rec.engine).cloned() else {
        return Err(ApiError::conflict(
            "engine_not_configured",
            format!("engine {:?} of stack {name:?} is not configured", rec.engine),
        ));
    };
    if !compose::available() {
        return Err(ApiError::tool_missing(format!(
            "`{}` is not installed on this host (Debian package docker-compose)",
            compose::PROGRAM
        )));
    }
    let kind = match action {
        Action::Up => "stacks.up",
        Action::Down => "stacks.down",
        Action::Restart => "stacks.restart",
        Action::Pull => "stacks.pull",
        Action::Check => return Err(ApiError::internal("check is not a job")),
    };
    let project = Project {
        name: rec.name.clone(),
        dir: state.stacks().stack_dir(&rec.name),
        socket: engine.socket().to_path_buf(),
    };
    let st = state.clone();
    let actor_s = actor.to_string();
    let job = state.jobs.spawn(
        JobSpec {
            kind,
            target: Some(href(&rec.name)),
            lock_key: Some(lock_key(&rec.name)),
            actor: actor.to_string(),
        },
        move |ctx| async move {
            ctx.log(format!(
                "docker-compose -p {} {} on engine {}",
                project.name,
                action.word(),
                engine.name()
            ));
            // Pulls and first starts can take long; the command runner kills the process
            // group at the deadline.
            let timeout = Duration::from_secs(match action {
                Action::Pull | Action::Up => 3600,
                _ => 900,
            });
            let res = tokio::select! {
                r = project.run(action, timeout) => r,
                _ = ctx.cancelled() => return Err(JobFailure::new("cancelled", "cancelled")),
            };
            match res {
                Ok(out) => {
                    for l in out.stderr.lines().chain(out.stdout_lossy().lines()) {
                        if !l.trim().is_empty() {
                            ctx.log(l);
                        }
                    }
                }
                Err(e) => {
                    if let CommandError::Failed { stderr, .. } = &e {
                        for l in stderr.lines().filter(|l| !l.trim().is_empty()) {
                            ctx.log(l);
                        }
                    }
                    return Err(JobFailure::command("compose_failed", e));
                }
            }
            let containers = compose::project_containers(&engine, &project.name)
                .await
                .map(|v| {
                    v.into_iter()
                        .map(|c| format!("{}/{}", c.engine, c.name))
                        .collect()
                })
                .unwrap_or_default();
            if let Ok(rec) = find(&st, &project.name) {
                let stack = view(&st, &rec).await;
                publish(&st, "resource.updated", &stack, &actor_s);
            }
            Ok(StackActionResult {
                stack: project.name.clone(),
                action: action.word().to_string(),
                containers,
            })
        },
    )?;
    Ok(accepted(&job))
}

/// `docker-compose up -d` (creates what is missing or changed, starts everything; never
/// builds). A job.
#[utoipa::path(post, path = "/api/v1/stacks/{name}/up",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("stacks:write"))),
    tag = "stacks", params(("name" = String, Path, description = "Stack name")),
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn stack_up(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    spawn_action(&state, &name, Action::Up, &p.user)
}

/// `docker-compose down`: stops and removes the containers and the project's networks (named
/// volumes stay). A job.
#[utoipa::path(post, path = "/api/v1/stacks/{name}/down",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("stacks:write"))),
    tag = "stacks", params(("name" = String, Path, description = "Stack name")),
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn stack_down(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    spawn_action(&state, &name, Action::Down, &p.user)
}

/// `docker-compose restart`. A job.
#[utoipa::path(post, path = "/api/v1/stacks/{name}/restart",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("stacks:write"))),
    tag = "stacks", params(("name" = String, Path, description = "Stack name")),
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn stack_restart(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    spawn_action(&state, &name, Action::Restart, &p.user)
}

/// `docker-compose pull`: the services' images from their registries (`up` then recreates
/// what changed). A job.
#[utoipa::path(post, path = "/api/v1/stacks/{name}/pull",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("stacks:write"))),
    tag = "stacks", params(("name" = String, Path, description = "Stack name")),
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn stack_pull(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    spawn_action(&state, &name, Action::Pull, &p.user)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsParams {
    /// Lines from the end of each service's log (default 200, at most 100000).
    #[param(minimum = 0, maximum = 100000)]
    tail: Option<u64>,
}

/// The last lines of every service's log, plain text (`service_1  | line`).
#[utoipa::path(get, path = "/api/v1/stacks/{name}/logs",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("stacks:read"))),
    tag = "stacks", params(("name" = String, Path, description = "Stack name"), LogsParams),
    responses((status = 200, description = "The logs", body = String, content_type = "text/plain")))]
async fn stack_logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LogsParams>,
) -> ApiResult<Response> {
    let tail = q.tail.unwrap_or(200);
    if tail > 100_000 {
        return Err(ApiError::invalid_field(
            "invalid_tail",
            "tail",
            "tail is 0 .. 100000",
        ));
    }
    let rec = find(&state, &name)?;
    let Some(engine) = state.stacks().engine(&rec.engine) else {
        return Err(ApiError::conflict(
            "engine_not_configured",
            format!("engine {:?} of stack {name:?} is not configured", rec.engine),
        ));
    };
    let project = Project {
        name: rec.name.clone(),
        dir: state.stacks().stack_dir(&rec.name),
        socket: engine.socket().to_path_buf(),
    };
    let text = project
        .logs(tail, engine.timeout() + Duration::from_secs(30))
        .await
        .map_err(|e| match e {
            CommandError::Failed { .. } => ApiError::Unavailable {
                code: "engine_unavailable",
                detail: e.to_string(),
            },
            other => other.into(),
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}
