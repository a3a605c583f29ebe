//! `/api/v1/container-engines/{engine}/volumes`: an engine's named volumes (list, create, get,
//! delete) and their backups into a pool dataset; and the containers as users of pools.
//!
//! Flow of a backup (`POST .../volumes/{name}/backup {dataset, file}`): the volume, the dataset
//! (a mounted pool's, resolved by the pools area) and the archive name are checked first (404,
//! 422, 409 `file_exists`); a job then creates a helper container with the volume mounted
//! read-only (never started, see `hostplane_host::containers::volumes` for why not the
//! volume's mount point), streams the engine's tar of it — entries rewritten relative to the
//! volume's root (the engines name them differently) — through zstd into
//! `<dataset>/.<file>.partial`, and renames that to `<file>` once complete. A restore
//! (`.../restore {dataset, file}`) reads the archive once to check it (every entry relative,
//! no `..`), then streams it decompressed into a writable helper's mount point; the
//! engine creates the volume when it does not exist and extracts over what it holds. While a
//! backup or restore runs, its dataset is in use (`platform::pool_users`, busy); so is every
//! dataset a container bind-mounts ([`ContainersOnPools`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hostplane_host::command::validate_name;
use hostplane_host::containers::volumes::volume_entry;
use hostplane_host::containers::{Engine, EngineError};
use hostplane_types::container_io::{
    ContainerVolume, VolumeBackupRequest, VolumeBackupResult, VolumeCreate, VolumeRestoreRequest,
};
use hostplane_types::containers::{ContainerState, MountKind};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ContainersState, engine_error, model};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use crate::platform::pool_users::{Notified, PoolUser, UsedBy};
use crate::state::{AppState, Services};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_volumes, create_volume))
        .routes(routes!(get_volume, delete_volume))
        .routes(routes!(backup_volume))
        .routes(routes!(restore_volume))
}

/// Registers the containers with the pools' users (called from the area's `init`).
pub fn register(services: &Services) {
    services.pool_users.register(Arc::new(ContainersOnPools));
}

/// Backups and restores running now: `(pool, dataset, engine, volume)`. Process-wide because
/// the pools' registry asks through a `PoolUser` that holds no area state.
static ACTIVE: Mutex<Vec<(String, String, String, String)>> = Mutex::new(Vec::new());

/// Marks a dataset busy for as long as it lives.
struct ActiveGuard((String, String, String, String));

impl ActiveGuard {
    fn new(pool: &str, dataset: &str, engine: &str, volume: &str) -> ActiveGuard {
        let k = (pool.into(), dataset.into(), engine.into(), volume.into());
        ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).push(k.clone());
        ActiveGuard(k)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut a = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = a.iter().position(|k| *k == self.0) {
            a.remove(i);
        }
    }
}

fn volume_href(engine: &str, name: &str) -> String {
    format!("/api/v1/container-engines/{engine}/volumes/{name}")
}

/// The engine and a checked volume name from a path (a malformed one names nothing: 404).
fn target<'a>(state: &'a AppState, engine: &str, name: &str) -> ApiResult<&'a Arc<Engine>> {
    super::engine_and_name(state, engine, "volume", name)
}

/// List an engine's named volumes.
#[utoipa::path(get, path = "/api/v1/container-engines/{engine}/volumes",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"), CollectionParams),
    responses((status = 200, description = "Volumes", body = [ContainerVolume],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_volumes(
    State(state): State<AppState>,
    Path(engine): Path<String>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?;
    let list = e.list_volumes().await.map_err(engine_error)?;
    collection::respond(list, &params, &headers)
}

/// Create a named volume (driver `local`).
#[utoipa::path(post, path = "/api/v1/container-engines/{engine}/volumes",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name")),
    request_body = VolumeCreate,
    responses((status = 201, description = "Created", body = ContainerVolume)))]
async fn create_volume(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(engine): Path<String>,
    Json(req): Json<VolumeCreate>,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?;
    model::check_name("name", &req.name)?;
    model::check_labels(&req.labels)?;
    // Both engines answer an existing name with the volume as it is: say it exists instead.
    super::refuse_existing(
        e.inspect_volume(&req.name).await,
        "volume_exists",
        format!("volume {:?} on engine {engine:?}", req.name),
    )?;
    let v = e
        .create_volume(&req.name, &req.labels)
        .await
        .map_err(engine_error)?;
    publish(&state, "resource.created", &v, &p.user);
    Ok(crate::http::answer::created(&v.href, &v))
}

fn publish(state: &AppState, kind: &str, v: &ContainerVolume, actor: &str) {
    super::publish_object(state, kind, &v.href, actor, v);
}

/// One volume.
#[utoipa::path(get, path = "/api/v1/container-engines/{engine}/volumes/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Volume name")),
    responses((status = 200, description = "The volume", body = ContainerVolume)))]
async fn get_volume(
    State(state): State<AppState>,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<ContainerVolume>> {
    let e = target(&state, &engine, &name)?;
    Ok(axum::Json(e.inspect_volume(&name).await.map_err(engine_error)?))
}

/// Delete a volume and its data. One a container uses (running or not) is 409 `volume_in_use`.
#[utoipa::path(delete, path = "/api/v1/container-engines/{engine}/volumes/{name}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Volume name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_volume(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let e = target(&state, &engine, &name)?;
    let v = e.inspect_volume(&name).await.map_err(engine_error)?;
    if busy_volume(&engine, &name) {
        return Err(ApiError::conflict(
            "volume_in_use",
            format!("volume {name:?} is being backed up or restored"),
        ));
    }
    e.remove_volume(&name).await.map_err(|err| match err {
        EngineError::Conflict(m) => ApiError::conflict(
            "volume_in_use",
            format!("volume {name:?} is used by a container (remove the container first): {m}"),
        ),
        other => engine_error(other),
    })?;
    publish(&state, "resource.deleted", &v, &p.user);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn busy_volume(engine: &str, volume: &str) -> bool {
    ACTIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|(_, _, e, v)| e == engine && v == volume)
}

/// `pool/dataset`, each a valid name.
pub fn parse_dataset(field: &str, s: &str) -> ApiResult<(String, String)> {
    let bad = |m: String| ApiError::invalid_field("invalid_dataset", field, m);
    let (pool, ds) = s
        .split_once('/')
        .ok_or_else(|| bad(format!("{s:?}: give pool/dataset")))?;
    validate_name("pool", pool).map_err(|e| bad(e.to_string()))?;
    validate_name("dataset", ds).map_err(|e| bad(e.to_string()))?;
    Ok((pool.into(), ds.into()))
}

/// An archive's file name: a valid name ending in `.tar.zst`.
pub fn check_archive_name(field: &str, s: &str) -> ApiResult<()> {
    let stem = s.strip_suffix(".tar.zst");
    match stem {
        Some(stem) if validate_name(field, stem).is_ok() && !stem.ends_with('.') => Ok(()),
        _ => Err(ApiError::invalid_field(
            "invalid_file",
            field,
            format!("{s:?}: a name (A-Z a-z 0-9 _ . -) ending in .tar.zst"),
        )),
    }
}

/// The directory of a pool's dataset (422 `unknown_dataset` when it does not exist, 409 when
/// the pool is not mounted).
fn dataset_dir(state: &AppState, field: &str, pool: &str, ds: &str) -> ApiResult<PathBuf> {
    let unknown = |e: ApiError| match e {
        ApiError::NotFound(m) => ApiError::invalid_field("unknown_dataset", field, format!("no {m}")),
        other => other,
    };
    let c = crate::areas::pools::datasets::ctx(state, pool).map_err(unknown)?;
    c.require(ds).map_err(unknown)
}

/// Back a volume up into a pool dataset as `<file>.tar.zst` (a job; its result names the
/// archive). Entries are named relative to the volume's root.
#[utoipa::path(post, path = "/api/v1/container-engines/{engine}/volumes/{name}/backup",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Volume name")),
    request_body = VolumeBackupRequest,
    responses((status = 202, description = "The backup job", body = hostplane_types::jobs::Job)))]
async fn backup_volume(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
    Json(req): Json<VolumeBackupRequest>,
) -> ApiResult<Response> {
    let e = target(&state, &engine, &name)?.clone();
    let (pool, ds) = parse_dataset("dataset", &req.dataset)?;
    let file = match &req.file {
        Some(f) => f.clone(),
        None => {
            let t = time::OffsetDateTime::now_utc();
            format!(
                "{engine}-{name}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.tar.zst",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
    };
    check_archive_name("file", &file)?;
    let dir = dataset_dir(&state, "dataset", &pool, &ds)?;
    let path = dir.join(&file);
    if path.exists() {
        return Err(ApiError::conflict(
            "file_exists",
            format!("{} exists in {}: choose another file name", file, req.dataset),
        ));
    }
    e.inspect_volume(&name).await.map_err(engine_error)?;
    let guard = ActiveGuard::new(&pool, &ds, &engine, &name);
    let res = VolumeBackupResult {
        engine: engine.clone(),
        volume: name.clone(),
        dataset: req.dataset.clone(),
        file: file.clone(),
        path: path.display().to_string(),
        tar_bytes: 0,
        archive_bytes: 0,
    };
    let job = state.jobs.spawn(
        JobSpec {
            kind: "containers.volume_backup",
            target: Some(volume_href(&engine, &name)),
            lock_key: Some(format!("containers/volume:{engine}:{name}")),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _guard = guard;
            backup(&ctx, &e, res, &dir).await
        },
    )?;
    Ok(crate::http::answer::accepted(&job))
}

async fn backup(
    ctx: &JobCtx,
    e: &Engine,
    mut res: VolumeBackupResult,
    dir: &FsPath,
) -> Result<VolumeBackupResult, JobFailure> {
    let fail = |m: String| JobFailure::new("backup_failed", m);
    let helper = e
        .create_helper(&res.volume, true)
        .await
        .map_err(|err| fail(format!("helper container: {err}")))?;
    ctx.log(format!(
        "reading volume {} through helper container {}",
        res.volume,
        &helper.id[..12.min(helper.id.len())]
    ));
    let partial = dir.join(format!(".{}.partial", res.file));
    let out = async {
        let mut stream = e
            .volume_tar(&helper)
            .await
            .map_err(|err| fail(err.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes_of::Bytes>(16);
        let target = partial.clone();
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let f = std::fs::File::create(&target)?;
            let enc = zstd::Encoder::new(f, 3)?;
            let enc = rewrite_entries(ChannelReader { rx, cur: Default::default() }, enc)?;
            let f = enc.finish()?;
            f.sync_all()?;
            Ok(f.metadata()?.len())
        });
        let mut n: u64 = 0;
        while let Some(chunk) = stream.next().await {
            if ctx.is_cancelled() {
                return Err(JobFailure::new("cancelled", "cancelled"));
            }
            let chunk = chunk.map_err(|err| fail(err.to_string()))?;
            n += chunk.len() as u64;
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|err| fail(err.to_string()))?
            .map_err(|err| {
                if err.raw_os_error() == Some(libc::ENOSPC) {
                    JobFailure::new("insufficient_space", format!("the dataset is full: {err}"))
                } else {
                    fail(format!("writing the archive: {err}"))
                }
            })?;
        Ok((n, written))
    }
    .await;
    if let Err(err) = e.remove_helper(&helper).await {
        ctx.log(format!("helper container left behind: {err}"));
    }
    match out {
        Ok((n, written)) => {
            std::fs::rename(&partial, dir.join(&res.file))
                .map_err(|err| fail(format!("rename: {err}")))?;
            ctx.log(format!("{n} bytes of tar, {written} bytes compressed"));
            res.tar_bytes = n;
            res.archive_bytes = written;
            Ok(res)
        }
        Err(f) => {
            let _ = std::fs::remove_file(&partial);
            Err(f)
        }
    }
}

/// Bytes, as the engine's streams yield them.
mod bytes_of {
    pub use axum::body::Bytes;
}

/// Restore a volume from a backup archive in a pool dataset (a job). The volume is created
/// when it does not exist; files in the archive replace those of the same name.
#[utoipa::path(post, path = "/api/v1/container-engines/{engine}/volumes/{name}/restore",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Volume name")),
    request_body = VolumeRestoreRequest,
    responses((status = 202, description = "The restore job", body = hostplane_types::jobs::Job)))]
async fn restore_volume(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
    Json(req): Json<VolumeRestoreRequest>,
) -> ApiResult<Response> {
    let e = target(&state, &engine, &name)?.clone();
    let (pool, ds) = parse_dataset("dataset", &req.dataset)?;
    check_archive_name("file", &req.file)?;
    let dir = dataset_dir(&state, "dataset", &pool, &ds)?;
    let path = dir.join(&req.file);
    let meta = std::fs::symlink_metadata(&path).map_err(|_| {
        ApiError::invalid_field(
            "unknown_file",
            "file",
            format!("no file {:?} in {}", req.file, req.dataset),
        )
    })?;
    if !meta.is_file() {
        return Err(ApiError::invalid_field(
            "unknown_file",
            "file",
            format!("{:?} in {} is not a regular file", req.file, req.dataset),
        ));
    }
    // The engine must answer before a job is made (503 now, not a failed job).
    e.list_volumes().await.map_err(engine_error)?;
    let guard = ActiveGuard::new(&pool, &ds, &engine, &name);
    let res = VolumeBackupResult {
        engine: engine.clone(),
        volume: name.clone(),
        dataset: req.dataset.clone(),
        file: req.file.clone(),
        path: path.display().to_string(),
        tar_bytes: 0,
        archive_bytes: meta.len(),
    };
    let actor = p.user.clone();
    let st = state.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "containers.volume_restore",
            target: Some(volume_href(&engine, &name)),
            lock_key: Some(format!("containers/volume:{engine}:{name}")),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _guard = guard;
            let res = restore(&ctx, &e, res, path).await?;
            if let Ok(v) = e.inspect_volume(&res.volume).await {
                publish(&st, "resource.updated", &v, &actor);
            }
            Ok(res)
        },
    )?;
    Ok(crate::http::answer::accepted(&job))
}

async fn restore(
    ctx: &JobCtx,
    e: &Engine,
    mut res: VolumeBackupResult,
    path: PathBuf,
) -> Result<VolumeBackupResult, JobFailure> {
    let p = path.clone();
    let entries = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        let f = std::fs::File::open(&p).map_err(|e| e.to_string())?;
        let dec = zstd::Decoder::new(f).map_err(|e| format!("not zstd: {e}"))?;
        check_volume_tar(dec)
    })
    .await
    .map_err(|err| JobFailure::new("restore_failed", err.to_string()))?
    .map_err(|m| JobFailure::new("invalid_archive", m))?;
    ctx.log(format!("archive checked: {entries} entries"));
    let helper = e
        .create_helper(&res.volume, false)
        .await
        .map_err(|err| JobFailure::new("restore_failed", format!("helper container: {err}")))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes_of::Bytes>>(16);
    let reader = tokio::task::spawn_blocking(move || -> u64 {
        let mut n = 0u64;
        let mut run = || -> std::io::Result<()> {
            let f = std::fs::File::open(&path)?;
            let mut dec = zstd::Decoder::new(f)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let k = dec.read(&mut buf)?;
                if k == 0 {
                    return Ok(());
                }
                n += k as u64;
                if tx
                    .blocking_send(Ok(bytes_of::Bytes::copy_from_slice(&buf[..k])))
                    .is_err()
                {
                    return Ok(());
                }
            }
        };
        if let Err(err) = run() {
            let _ = tx.blocking_send(Err(err));
        }
        n
    });
    let body = tokio_stream::wrappers::ReceiverStream::new(rx);
    let out = e.volume_untar(&helper, body).await;
    let n = reader.await.unwrap_or(0);
    if let Err(err) = e.remove_helper(&helper).await {
        ctx.log(format!("helper container left behind: {err}"));
    }
    out.map_err(|err| JobFailure::new("restore_failed", err.to_string()))?;
    ctx.log(format!("{n} bytes of tar extracted into volume {}", res.volume));
    res.tar_bytes = n;
    Ok(res)
}

/// A volume backup's tar: entries relative to the volume's root, without `..`.
pub fn check_volume_tar(r: impl Read) -> Result<usize, String> {
    super::files::check_tar(r)
}

/// The engine's tar of the helper's mount point, written again with entries relative to the
/// volume's root (the engines name them differently, see `volume_entry`) into `out`.
/// Extended (pax) attributes are not carried over.
fn rewrite_entries<W: Write>(input: impl Read, out: W) -> std::io::Result<W> {
    let mut a = tar::Archive::new(input);
    let mut b = tar::Builder::new(out);
    for entry in a.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(name) = path.to_str() else {
            return Err(std::io::Error::other(format!(
                "{path:?}: a file name that is not UTF-8 cannot be backed up"
            )));
        };
        let rel = volume_entry(name).to_string();
        if rel.is_empty() {
            continue;
        }
        let mut h = entry.header().clone();
        match h.entry_type() {
            tar::EntryType::Symlink => {
                let target = entry.link_name()?.unwrap_or_default().into_owned();
                b.append_link(&mut h, &rel, target)?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name()?.unwrap_or_default().into_owned();
                let t = volume_entry(target.to_str().unwrap_or_default()).to_string();
                b.append_link(&mut h, &rel, t)?;
            }
            _ => b.append_data(&mut h, &rel, &mut entry)?,
        }
    }
    b.into_inner()
}

/// Blocking reads from the chunks an async task sends.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes_of::Bytes>,
    cur: bytes_of::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Containers on pools: a dataset is used by every container that bind-mounts a path in it
/// (busy while it runs), and by a volume backup or restore writing or reading it (busy).
pub struct ContainersOnPools;

impl PoolUser for ContainersOnPools {
    fn uses(&self, state: &AppState, pool: &str, dataset: Option<&str>) -> ApiResult<Vec<UsedBy>> {
        let mut out: Vec<UsedBy> = ACTIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(p, d, _, _)| p == pool && dataset.is_none_or(|x| x == d))
            .map(|(_, d, e, v)| UsedBy {
                kind: "container-volume-backup".into(),
                name: format!("{e}/{v}"),
                href: volume_href(e, v),
                dataset: d.clone(),
                busy: true,
            })
            .collect();
        out.extend(bind_users(state, pool, dataset));
        Ok(out)
    }

    fn dataset_renamed<'a>(
        &'a self,
        _state: &'a AppState,
        _pool: &'a str,
        _from: &'a str,
        _to: &'a str,
    ) -> Notified<'a> {
        // A container's bind mounts are fixed at create: a renamed dataset is not followed (a
        // running container blocks the rename; a stopped one would need a recreate).
        Box::pin(async {})
    }
}

/// Containers whose bind mounts are in `pool` (a dataset of it, when given). The pools'
/// registry asks synchronously; the engines answer asynchronously, so this waits for them on
/// the runtime's blocking allowance (each listing under the engine's deadline). An engine
/// that does not answer is skipped: its containers cannot be asked.
fn bind_users(state: &AppState, pool: &str, dataset: Option<&str>) -> Vec<UsedBy> {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return Vec::new();
    };
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Vec::new();
    }
    let engines: Vec<Arc<Engine>> = state.engines().all().to_vec();
    let lists = tokio::task::block_in_place(|| {
        handle.block_on(futures_util::future::join_all(
            engines.iter().map(|e| e.list_containers()),
        ))
    });
    let root = state.config.pools.mount_root.clone();
    let mut roots = vec![root.clone()];
    if let Ok(c) = std::fs::canonicalize(&root)
        && c != root
    {
        roots.push(c);
    }
    let mut out = Vec::new();
    for list in lists.into_iter().flatten() {
        for c in list {
            let mut seen = BTreeMap::new();
            for m in c.mounts.iter().filter(|m| m.kind == MountKind::Bind) {
                let Some(ds) = roots
                    .iter()
                    .find_map(|r| dataset_of(r, FsPath::new(&m.source), pool))
                else {
                    continue;
                };
                if dataset.is_none_or(|d| d == ds) {
                    seen.insert(ds, ());
                }
            }
            for ds in seen.into_keys() {
                out.push(UsedBy {
                    kind: "container".into(),
                    name: format!("{}/{}", c.engine, c.name),
                    href: c.href.clone(),
                    dataset: ds,
                    busy: matches!(
                        c.state,
                        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
                    ),
                });
            }
        }
    }
    out
}

/// The dataset of `pool` a path below `root` is in (the pool's directory itself counts as no
/// dataset: a bind of the whole pool is refused by nothing here).
fn dataset_of(root: &FsPath, p: &FsPath, pool: &str) -> Option<String> {
    let mut parts = p.strip_prefix(root).ok()?.components();
    if parts.next()?.as_os_str() != pool {
        return None;
    }
    let ds = parts.next()?.as_os_str().to_str()?;
    validate_name("dataset", ds).is_ok().then(|| ds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_datasets_and_archives() {
        assert_eq!(
            parse_dataset("d", "tank/backups").unwrap(),
            ("tank".into(), "backups".into())
        );
        for bad in ["tank", "tank/a/b", "../x", "tank/..", "-t/x", "tank/"] {
            assert!(parse_dataset("d", bad).is_err(), "{bad}");
        }
        assert!(check_archive_name("f", "v1-2026.tar.zst").is_ok());
        for bad in ["x.tar", ".tar.zst", "../a.tar.zst", "a/b.tar.zst", "-a.tar.zst", "a..tar.zst"] {
            assert!(check_archive_name("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bind_mount_path_names_its_dataset() {
        let r = FsPath::new("/mnt/pools");
        assert_eq!(
            dataset_of(r, FsPath::new("/mnt/pools/tank/data/x"), "tank"),
            Some("data".into())
        );
        assert_eq!(dataset_of(r, FsPath::new("/mnt/pools/tank/data"), "tank"), Some("data".into()));
        assert_eq!(dataset_of(r, FsPath::new("/mnt/pools/other/data"), "tank"), None);
        assert_eq!(dataset_of(r, FsPath::new("/srv/data"), "tank"), None);
    }

    #[test]
    fn backups_are_rewritten_relative_to_the_volume() {
        // dockerd's shape (`volume/...`) and podman's (`/...`) give the same archive.
        for (root, prefix) in [("volume/", "volume/"), ("/", "/")] {
            let mut b = tar::Builder::new(Vec::new());
            for n in [root.to_string(), format!("{prefix}a"), format!("{prefix}d/b")] {
                let mut h = tar::Header::new_gnu();
                h.set_size(1);
                let bytes = n.as_bytes();
                h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
                h.set_cksum();
                b.append(&h, &b"x"[..]).unwrap();
            }
            let t = b.into_inner().unwrap();
            let out = rewrite_entries(&t[..], Vec::new()).unwrap();
            let mut a = tar::Archive::new(&out[..]);
            let names: Vec<String> = a
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            assert_eq!(names, ["a", "d/b"], "{root}");
            assert_eq!(check_volume_tar(&out[..]), Ok(2));
        }
    }
}
