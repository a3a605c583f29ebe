//! `/api/v1/pools`: storage pools (btrfs, ext4, xfs, mergerfs + snapraid), their datasets and
//! snapshots.
//!
//! Request flow: the registry ([`registry`], rows in the store) says which pools exist and
//! what their members' stable disk ids are; everything else is read live ([`ops::view`]:
//! mountinfo, `btrfs filesystem show`, `device stats`, `filesystem df`, statvfs). Creating,
//! importing and destroying are jobs: the handler validates, checks every disk with the
//! disks area's refusal rules and claims them, then the job wipes, makes the filesystem,
//! records the pool and mounts it at `<pools.mount_root>/<name>`. Maintenance (scrub, balance,
//! device add/remove/replace) is in [`maintenance`], datasets and snapshots in [`datasets`]
//! and [`snapshots`]. At daemon start [`spawn_remount`] mounts every pool marked `auto_mount`
//! in a background task, so readiness does not wait for it. What other areas keep on a pool
//! (shares, VM disks) is asked through `state.pool_users` (`platform::pool_users`) before a
//! pool or dataset goes away or moves (409 `in_use` naming it) and told after; this area
//! imports none of them.

pub mod datasets;
pub mod maintenance;
pub mod ops;
pub mod registry;
pub mod snapshots;

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hostplane_host::command::validate_name;
use hostplane_host::disks::{self as hd, ScannedDisk};
use hostplane_types::disks::FormatType;
use hostplane_types::pools::{
    BtrfsProfile, CreatePoolRequest, ImportPoolRequest, ImportablePool, MemberRole, MountRequest,
    Pool, PoolKind,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::answer::accepted;
use crate::areas::disks::{self, check_destructive, claim, wipe_disk};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::platform::pool_users::PoolOp;
use crate::platform::time;
use crate::areas::{Area, HookFuture};
use crate::state::AppState;
use registry::{MemberRecord, PoolRecord};

pub const AREA: Area = Area {
    start: Some(start),
    ..Area::new("pools", "Storage pools (btrfs, ext4, xfs, mergerfs), datasets and snapshots", router)
};

/// Remounts the pools marked `auto_mount`, in the background.
fn start(state: AppState) -> HookFuture {
    Box::pin(async move { spawn_remount(state) })
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_pools, create_pool))
        .routes(routes!(importable))
        .routes(routes!(import_pool))
        .routes(routes!(get_pool, destroy_pool))
        .routes(routes!(mount_pool))
        .routes(routes!(unmount_pool))
        .routes(routes!(export_pool))
        .merge(maintenance::router())
        .merge(datasets::router())
        .merge(snapshots::router())
}

pub fn href(name: &str) -> String {
    format!("/api/v1/pools/{name}")
}

fn check_pool_name(name: &str) -> ApiResult<()> {
    validate_name("pool", name)
        .map_err(|e| ApiError::invalid_field("invalid_name", "name", e.to_string()))
}

/// The stored record, or 404.
pub fn find_record(state: &AppState, name: &str) -> ApiResult<PoolRecord> {
    registry::load(&state.store, name)?.ok_or_else(|| ApiError::not_found(format!("pool {name:?}")))
}

fn publish(state: &AppState, ty: &str, actor: &str, pool: &Pool) {
    state.events.publish(
        ty,
        &pool.href,
        actor,
        serde_json::to_value(pool).unwrap_or_default(),
    );
}

async fn publish_record(state: &AppState, ty: &str, actor: &str, rec: &PoolRecord) -> Option<Pool> {
    let pools = ops::views(state, std::slice::from_ref(rec)).await.ok()?;
    let pool = pools.into_iter().next()?;
    publish(state, ty, actor, &pool);
    Some(pool)
}

/// A pool job's result: the pool as it now is. One the listing cannot show fails the job
/// (`internal`) instead of succeeding with a `null` result.
async fn job_result(
    state: &AppState,
    ty: &str,
    actor: &str,
    rec: &PoolRecord,
) -> Result<Pool, JobFailure> {
    publish_record(state, ty, actor, rec).await.ok_or_else(|| {
        JobFailure::new(
            "internal",
            format!("pool {:?} could not be read back after the job", rec.name),
        )
    })
}

/// List pools with health, usage and members.
#[utoipa::path(get, path = "/api/v1/pools",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("pools:read"))),
    tag = "pools", params(CollectionParams),
    responses((status = 200, description = "Pools", body = [Pool],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_pools(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let recs = registry::load_all(&state.store)?;
    collection::respond(ops::views(&state, &recs).await?, &params, &headers)
}

/// One pool.
#[utoipa::path(get, path = "/api/v1/pools/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("pools:read"))),
    tag = "pools",
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 200, description = "The pool", body = Pool)))]
async fn get_pool(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Pool>> {
    let rec = find_record(&state, &name)?;
    let mut v = ops::views(&state, std::slice::from_ref(&rec)).await?;
    Ok(axum::Json(v.remove(0)))
}

fn resolve_devices<'a>(
    scanned: &'a [ScannedDisk],
    specs: &[String],
    field: &str,
) -> ApiResult<Vec<&'a ScannedDisk>> {
    let mut out: Vec<&ScannedDisk> = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let d = disks::find(scanned, s).ok_or_else(|| {
            ApiError::invalid_field(
                "unknown_disk",
                format!("{field}[{i}]"),
                format!("no disk {s:?}"),
            )
        })?;
        if out.iter().any(|o| o.disk.name == d.disk.name) {
            return Err(ApiError::invalid_field(
                "duplicate_disk",
                format!("{field}[{i}]"),
                format!("{s:?} is listed twice"),
            ));
        }
        out.push(d);
    }
    Ok(out)
}

/// Create a pool (a job): wipes the disks, makes the filesystem(s), mounts the pool.
#[utoipa::path(post, path = "/api/v1/pools",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = CreatePoolRequest,
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn create_pool(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<CreatePoolRequest>,
) -> ApiResult<Response> {
    check_pool_name(&req.name)?;
    let min_free_space = ops::size_field(req.min_free_space.as_ref(), "min_free_space")?;
    if registry::load(&state.store, &req.name)?.is_some() {
        return Err(ApiError::conflict(
            "pool_exists",
            format!("pool {:?} exists", req.name),
        ));
    }
    if req.devices.is_empty() {
        return Err(ApiError::invalid_field(
            "invalid_devices",
            "devices",
            "at least one disk",
        ));
    }
    // The field's own format, whatever the kind (the schema's pattern): a btrfs pool with
    // `member_filesystem: ".."` is refused, not silently ignored.
    if let Some(fs) = req.member_filesystem.as_deref()
        && !matches!(fs, "ext4" | "xfs")
    {
        return Err(ApiError::invalid_field(
            "invalid_filesystem",
            "member_filesystem",
            "ext4 or xfs",
        ));
    }
    let n = req.devices.len();
    let (mut data, mut meta) = (None, None);
    let mut member_fs = None;
    match req.kind {
        PoolKind::Ext4 | PoolKind::Xfs => {
            if n != 1 {
                return Err(ApiError::invalid_field(
                    "invalid_devices",
                    "devices",
                    format!("an {} pool has exactly one disk", req.kind.as_str()),
                ));
            }
        }
        PoolKind::Btrfs => {
            let d = req.data_profile.unwrap_or(if n == 1 {
                BtrfsProfile::Single
            } else {
                BtrfsProfile::Raid1
            });
            let m = req.metadata_profile.unwrap_or(if n == 1 {
                BtrfsProfile::Dup
            } else {
                BtrfsProfile::Raid1
            });
            for (p, field) in [(d, "data_profile"), (m, "metadata_profile")] {
                if n < p.min_devices() {
                    return Err(ApiError::invalid_field(
                        "invalid_profile",
                        field,
                        format!(
                            "{} needs at least {} disks, {n} given",
                            p.as_str(),
                            p.min_devices()
                        ),
                    ));
                }
            }
            data = Some(d);
            meta = Some(m);
        }
        PoolKind::Mergerfs => {
            let fs = req.member_filesystem.as_deref().unwrap_or("ext4");
            if !matches!(fs, "ext4" | "xfs") {
                return Err(ApiError::invalid_field(
                    "invalid_filesystem",
                    "member_filesystem",
                    "ext4 or xfs",
                ));
            }
            member_fs = Some(fs.to_string());
            if !req.parity_devices.is_empty() && hostplane_host::which("snapraid").is_none() {
                return Err(ApiError::tool_missing(
                    "snapraid is not installed: parity is not available",
                ));
            }
        }
    }
    if req.kind != PoolKind::Btrfs && (req.data_profile.is_some() || req.metadata_profile.is_some())
    {
        return Err(ApiError::invalid_field(
            "invalid_profile",
            "data_profile",
            "profiles are for btrfs pools",
        ));
    }
    if req.kind != PoolKind::Mergerfs && !req.parity_devices.is_empty() {
        return Err(ApiError::invalid_field(
            "invalid_devices",
            "parity_devices",
            "parity is for mergerfs pools",
        ));
    }
    let scanned = ops::quick_scan(&state).await?;
    let devs = resolve_devices(&scanned, &req.devices, "devices")?;
    let parity = resolve_devices(&scanned, &req.parity_devices, "parity_devices")?;
    if let Some(dup) = parity
        .iter()
        .find(|p| devs.iter().any(|d| d.disk.name == p.disk.name))
    {
        return Err(ApiError::invalid_field(
            "duplicate_disk",
            "parity_devices",
            format!("{} is also a data disk", dup.disk.path),
        ));
    }
    for d in devs.iter().chain(parity.iter()) {
        check_destructive(d, None)?;
        let needs_xfs = req.kind == PoolKind::Xfs || member_fs.as_deref() == Some("xfs");
        if needs_xfs && d.disk.size_bytes < 300_000_000 {
            return Err(ApiError::invalid_field(
                "device_too_small",
                "devices",
                "XFS needs at least 300 MB",
            ));
        }
    }
    if let Some(max) = devs.iter().map(|d| d.disk.size_bytes).max()
        && let Some(small) = parity.iter().find(|p| p.disk.size_bytes < max)
    {
        return Err(ApiError::invalid_field(
            "device_too_small",
            "parity_devices",
            format!(
                "parity disk {} is smaller than the largest data disk",
                small.disk.path
            ),
        ));
    }
    let all: Vec<&ScannedDisk> = devs.iter().chain(parity.iter()).copied().collect();
    let claim = claim(&all)?;
    let devs: Vec<ScannedDisk> = devs.into_iter().cloned().collect();
    let parity: Vec<ScannedDisk> = parity.into_iter().cloned().collect();
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "pools.create",
            target: Some(href(&req.name)),
            lock_key: Some(format!("pools/{}", req.name)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _claim = claim;
            let total = (devs.len() + parity.len()) as u8;
            for (i, d) in devs.iter().chain(parity.iter()).enumerate() {
                ctx.log(format!("wiping {}", d.disk.path));
                wipe_disk(&d.disk)
                    .await
                    .map_err(|e| JobFailure::command("wipe_failed", e))?;
                ctx.progress(((i as u8 + 1) * 30 / total.max(1)).min(30));
            }
            let mut rec = PoolRecord {
                name: req.name.clone(),
                kind: req.kind,
                uuid: None,
                members: Vec::new(),
                auto_mount: true,
                min_free_space,
                member_fs: member_fs.clone(),
                datasets: BTreeMap::new(),
                created_at: time::now_string(),
                error_baseline: BTreeMap::new(),
                scrub_uncorrectable: 0,
            };
            let paths: Vec<String> = devs.iter().map(|d| d.disk.path.clone()).collect();
            let uuid_of = |dev: String| async move {
                hd::probe_blkid(std::slice::from_ref(&dev))
                    .await
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .and_then(|i| i.get("UUID"))
                    .ok_or_else(|| {
                        JobFailure::new(
                            "mkfs_failed",
                            format!("no filesystem UUID on {dev} after mkfs"),
                        )
                    })
            };
            match req.kind {
                PoolKind::Btrfs => {
                    let (d, m) = (
                        data.unwrap_or(BtrfsProfile::Single),
                        meta.unwrap_or(BtrfsProfile::Dup),
                    );
                    ctx.log(format!(
                        "mkfs.btrfs -d {} -m {} {}",
                        d.as_str(),
                        m.as_str(),
                        paths.join(" ")
                    ));
                    hostplane_host::btrfs::mkfs(&paths, &req.name, d, m)
                        .await
                        .map_err(|e| JobFailure::command("mkfs_failed", e))?;
                    rec.uuid = Some(uuid_of(paths[0].clone()).await?);
                }
                PoolKind::Ext4 | PoolKind::Xfs => {
                    let fs = if req.kind == PoolKind::Ext4 {
                        FormatType::Ext4
                    } else {
                        FormatType::Xfs
                    };
                    let max = if fs == FormatType::Ext4 { 16 } else { 12 };
                    let label = (req.name.len() <= max).then_some(req.name.as_str());
                    ctx.log(format!("mkfs.{} {}", fs.as_str(), paths[0]));
                    hostplane_host::blockdev::mkfs(fs, &paths[0], label)
                        .await
                        .map_err(|e| JobFailure::command("mkfs_failed", e))?;
                    rec.uuid = Some(uuid_of(paths[0].clone()).await?);
                }
                PoolKind::Mergerfs => {
                    let fs = if member_fs.as_deref() == Some("xfs") {
                        FormatType::Xfs
                    } else {
                        FormatType::Ext4
                    };
                    for (d, role) in devs
                        .iter()
                        .map(|d| (d, MemberRole::Data))
                        .chain(parity.iter().map(|d| (d, MemberRole::Parity)))
                    {
                        ctx.log(format!("mkfs.{} {}", fs.as_str(), d.disk.path));
                        hostplane_host::blockdev::mkfs(fs, &d.disk.path, None)
                            .await
                            .map_err(|e| JobFailure::command("mkfs_failed", e))?;
                        let uuid = uuid_of(d.disk.path.clone()).await?;
                        rec.members.push(MemberRecord {
                            disk: d.disk.id.clone(),
                            path: d.disk.path.clone(),
                            uuid: Some(uuid),
                            role,
                        });
                    }
                }
            }
            if req.kind != PoolKind::Mergerfs {
                rec.members = devs
                    .iter()
                    .map(|d| MemberRecord {
                        disk: d.disk.id.clone(),
                        path: d.disk.path.clone(),
                        uuid: None,
                        role: MemberRole::Data,
                    })
                    .collect();
            }
            ctx.progress(70);
            if !registry::insert(&st.store, &rec)
                .map_err(|e| JobFailure::new("internal", e.to_string()))?
            {
                return Err(JobFailure::new(
                    "pool_exists",
                    format!("pool {:?} exists", rec.name),
                ));
            }
            ctx.log(format!(
                "mounting at {}",
                ops::mountpoint(&st, &rec.name).display()
            ));
            ops::mount(&st, &rec, false)
                .await
                .map_err(|e| JobFailure::new("mount_failed", e.to_string()))?;
            if rec.kind == PoolKind::Btrfs && req.quotas.unwrap_or(true) {
                let mp = ops::mountpoint(&st, &rec.name);
                ctx.log("enabling quotas (qgroups)");
                hostplane_host::btrfs::quota_enable(&mp.to_string_lossy())
                    .await
                    .map_err(|e| JobFailure::command("quota_failed", e))?;
            }
            if rec.parity_members().next().is_some() {
                maintenance::write_snapraid_conf(&st, &rec)
                    .map_err(|e| JobFailure::new("snapraid_config_failed", e.to_string()))?;
            }
            ctx.progress(100);
            job_result(&st, "resource.created", &actor, &rec).await
        },
    )?;
    Ok(accepted(&job))
}

/// Filesystems on disks that no pool uses and that are not mounted: btrfs (grouped by UUID),
/// ext4 and xfs. Probes the disks with blkid.
#[utoipa::path(get, path = "/api/v1/pools/importable",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("pools:read"))),
    tag = "pools", params(CollectionParams),
    responses((status = 200, description = "Importable filesystems", body = [ImportablePool],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn importable(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let list = find_importable(&state).await?;
    collection::respond(list, &params, &headers)
}

async fn find_importable(state: &AppState) -> ApiResult<Vec<ImportablePool>> {
    let scanned = ops::quick_scan(state).await?;
    let recs = registry::load_all(&state.store)?;
    let mut candidates: Vec<(String, &ScannedDisk)> = Vec::new();
    for d in scanned
        .iter()
        .filter(|d| !d.disk.holds_root && d.disk.mountpoints.is_empty() && d.disk.pool.is_none())
    {
        candidates.push((d.disk.path.clone(), d));
        for p in &d.disk.partitions {
            candidates.push((p.path.clone(), d));
        }
    }
    let paths: Vec<String> = candidates.iter().map(|c| c.0.clone()).collect();
    let found = hd::probe_blkid(&paths).await.map_err(ApiError::from)?;
    let mut by_uuid: BTreeMap<String, ImportablePool> = BTreeMap::new();
    for info in found {
        let (Some(t), Some(uuid)) = (info.get("TYPE"), info.get("UUID")) else {
            continue;
        };
        let kind = match t.as_str() {
            "btrfs" => PoolKind::Btrfs,
            "ext4" => PoolKind::Ext4,
            "xfs" => PoolKind::Xfs,
            _ => continue,
        };
        if recs.iter().any(|r| {
            r.uuid.as_deref() == Some(&uuid)
                || r.members.iter().any(|m| m.uuid.as_deref() == Some(&uuid))
        }) {
            continue;
        }
        let Some((_, d)) = candidates.iter().find(|c| c.0 == info.devname) else {
            continue;
        };
        let e = by_uuid
            .entry(uuid.clone())
            .or_insert_with(|| ImportablePool {
                uuid,
                kind,
                label: info.get("LABEL"),
                devices: Vec::new(),
                disks: Vec::new(),
                allowed: true,
            });
        e.devices.push(info.devname.clone());
        if !e.disks.contains(&d.disk.id) {
            e.disks.push(d.disk.id.clone());
        }
        e.allowed &= d.disk.allowed;
    }
    Ok(by_uuid.into_values().collect())
}

/// Import a filesystem found on disks as a pool and mount it (a job). Every device must be
/// in `disks.allow`.
#[utoipa::path(post, path = "/api/v1/pools/import",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = ImportPoolRequest,
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn import_pool(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<ImportPoolRequest>,
) -> ApiResult<Response> {
    check_pool_name(&req.name)?;
    if registry::load(&state.store, &req.name)?.is_some() {
        return Err(ApiError::conflict(
            "pool_exists",
            format!("pool {:?} exists", req.name),
        ));
    }
    let found = find_importable(&state).await?;
    let Some(imp) = found.into_iter().find(|i| i.uuid == req.uuid) else {
        return Err(ApiError::invalid_field(
            "unknown_filesystem",
            "uuid",
            format!(
                "no unmounted, unused filesystem with UUID {:?} (see GET /api/v1/pools/importable)",
                req.uuid
            ),
        ));
    };
    if !imp.allowed {
        return Err(ApiError::conflict(
            "disk_not_allowed",
            format!(
                "not every device of {} is in disks.allow: {}",
                imp.uuid,
                imp.devices.join(", ")
            ),
        ));
    }
    let scanned = ops::quick_scan(&state).await?;
    let members: Vec<&ScannedDisk> = imp
        .disks
        .iter()
        .filter_map(|id| scanned.iter().find(|d| &d.disk.id == id))
        .collect();
    let claim = claim(&members)?;
    let rec = PoolRecord {
        name: req.name.clone(),
        kind: imp.kind,
        uuid: Some(imp.uuid.clone()),
        members: members
            .iter()
            .map(|d| MemberRecord {
                disk: d.disk.id.clone(),
                path: d.disk.path.clone(),
                uuid: None,
                role: MemberRole::Data,
            })
            .collect(),
        auto_mount: true,
        min_free_space: None,
        member_fs: None,
        datasets: BTreeMap::new(),
        created_at: time::now_string(),
        error_baseline: BTreeMap::new(),
        scrub_uncorrectable: 0,
    };
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "pools.import",
            target: Some(href(&req.name)),
            lock_key: Some(format!("pools/{}", req.name)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _claim = claim;
            if !registry::insert(&st.store, &rec)
                .map_err(|e| JobFailure::new("internal", e.to_string()))?
            {
                return Err(JobFailure::new(
                    "pool_exists",
                    format!("pool {:?} exists", rec.name),
                ));
            }
            ctx.log(format!(
                "mounting {} ({}) at {}",
                rec.uuid.as_deref().unwrap_or(""),
                rec.kind.as_str(),
                ops::mountpoint(&st, &rec.name).display()
            ));
            if let Err(e) = ops::mount(&st, &rec, false).await {
                let _ = registry::delete(&st.store, &rec.name);
                return Err(JobFailure::new("mount_failed", e.to_string()));
            }
            job_result(&st, "resource.created", &actor, &rec).await
        },
    )?;
    Ok(accepted(&job))
}

/// Mount a pool (and remount it at daemon start from now on).
#[utoipa::path(post, path = "/api/v1/pools/{name}/mount",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = MountRequest,
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 200, description = "The pool", body = Pool)))]
async fn mount_pool(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    Json(req): Json<MountRequest>,
) -> ApiResult<axum::Json<Pool>> {
    let rec = find_record(&state, &name)?;
    if req.degraded && rec.kind != PoolKind::Btrfs {
        return Err(ApiError::invalid_field(
            "invalid_option",
            "degraded",
            "degraded mounts are for btrfs pools",
        ));
    }
    let unchanged = rec.auto_mount && ops::is_mounted(&state, &rec);
    ops::mount(&state, &rec, req.degraded).await?;
    let rec = registry::update(&state.store, &name, |r| r.auto_mount = true)?.unwrap_or(rec);
    if unchanged {
        // Mounting a mounted pool changes nothing: no event (docs/conventions.md).
        let pools = ops::views(&state, std::slice::from_ref(&rec)).await?;
        return pools
            .into_iter()
            .next()
            .map(axum::Json)
            .ok_or_else(|| ApiError::internal("pool view failed"));
    }
    // What lives on it comes back (shares are served again).
    state.pool_users.storage_changed(&state).await;
    let pool = publish_record(&state, "resource.updated", &p.user, &rec)
        .await
        .ok_or_else(|| ApiError::internal("pool view failed"))?;
    Ok(axum::Json(pool))
}

/// Unmount a pool (it stays unmounted across daemon restarts until mounted again).
#[utoipa::path(post, path = "/api/v1/pools/{name}/unmount",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools",
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 200, description = "The pool", body = Pool)))]
async fn unmount_pool(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Pool>> {
    let rec = find_record(&state, &name)?;
    state
        .pool_users
        .refuse(&state, PoolOp::UnmountPool, &name, None)?;
    ops::unmount(&state, &rec).await?;
    let rec = registry::update(&state.store, &name, |r| r.auto_mount = false)?.unwrap_or(rec);
    let pool = publish_record(&state, "resource.updated", &p.user, &rec)
        .await
        .ok_or_else(|| ApiError::internal("pool view failed"))?;
    Ok(axum::Json(pool))
}

/// Unmount a pool and forget it, leaving its data on the disks (import it again later).
#[utoipa::path(post, path = "/api/v1/pools/{name}/export",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools",
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 204, description = "Exported")))]
async fn export_pool(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let rec = find_record(&state, &name)?;
    state
        .pool_users
        .refuse(&state, PoolOp::ExportPool, &name, None)?;
    ops::unmount(&state, &rec).await?;
    registry::delete(&state.store, &name)?;
    let _ = std::fs::remove_dir(ops::mountpoint(&state, &name));
    state.events.publish(
        "resource.deleted",
        &rec.href(),
        &p.user,
        serde_json::json!({"name": name, "exported": true}),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /pools/{name}` confirmation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DestroyParams {
    /// The pool's name again: destroying erases every member disk.
    pub confirm: Option<String>,
}

/// Destroy a pool (a job): unmount it, erase every member disk's signatures, forget it.
#[utoipa::path(delete, path = "/api/v1/pools/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools",
    params(("name" = String, Path, description = "Pool name"), DestroyParams),
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn destroy_pool(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    Query(q): Query<DestroyParams>,
) -> ApiResult<Response> {
    let rec = find_record(&state, &name)?;
    state
        .pool_users
        .refuse(&state, PoolOp::DestroyPool, &name, None)?;
    if q.confirm.as_deref() != Some(name.as_str()) {
        return Err(ApiError::invalid_field(
            "confirm_mismatch",
            "confirm",
            format!("pass confirm={name} to destroy the pool and erase its disks"),
        ));
    }
    let scanned = ops::quick_scan(&state).await?;
    let members: Vec<&ScannedDisk> = rec
        .members
        .iter()
        .filter_map(|m| scanned.iter().find(|d| d.disk.id == m.disk))
        .collect();
    for d in &members {
        ops::check_member(&state, d, &rec)?;
    }
    let claim = claim(&members)?;
    let members: Vec<ScannedDisk> = members.into_iter().cloned().collect();
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "pools.destroy",
            target: Some(rec.href()),
            lock_key: Some(format!("pools/{name}")),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _claim = claim;
            ctx.log(format!(
                "unmounting {}",
                ops::mountpoint(&st, &rec.name).display()
            ));
            ops::unmount(&st, &rec).await.map_err(|e| {
                JobFailure::new(
                    if e.code() == "pool_busy" {
                        "pool_busy"
                    } else {
                        "unmount_failed"
                    },
                    e.to_string(),
                )
            })?;
            // Forget first: a crash during the wipe leaves no pool pointing at erased disks.
            registry::delete(&st.store, &rec.name)
                .map_err(|e| JobFailure::new("internal", e.to_string()))?;
            for (i, d) in members.iter().enumerate() {
                ctx.log(format!("wiping {}", d.disk.path));
                wipe_disk(&d.disk)
                    .await
                    .map_err(|e| JobFailure::command("wipe_failed", e))?;
                ctx.progress(((i + 1) * 90 / members.len().max(1)) as u8);
            }
            let _ = std::fs::remove_dir(ops::mountpoint(&st, &rec.name));
            // Only empty directories go: never remove_dir_all near mount points.
            for m in &rec.members {
                let _ = std::fs::remove_dir(ops::member_mountpoint(&st, &rec.name, m));
            }
            let _ = std::fs::remove_dir(ops::members_dir(&st, &rec.name));
            maintenance::remove_snapraid_conf(&st, &rec.name);
            st.events.publish(
                "resource.deleted",
                &rec.href(),
                &actor,
                serde_json::json!({"name": rec.name}),
            );
            let wiped = members.iter().map(|d| d.disk.path.clone()).collect();
            Ok(hostplane_types::jobs::PoolDestroyResult {
                pool: rec.name,
                wiped,
            })
        },
    )?;
    Ok(accepted(&job))
}

/// Mounts every pool marked `auto_mount` in a background task (start-up does not wait).
pub fn spawn_remount(state: AppState) {
    tokio::spawn(async move {
        let recs = match registry::load_all(&state.store) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the pool registry; no pool remounted");
                return;
            }
        };
        for rec in recs.iter().filter(|r| r.auto_mount) {
            if ops::is_mounted(&state, rec) {
                continue;
            }
            match ops::mount(&state, rec, false).await {
                Ok(()) => {
                    tracing::info!(pool = rec.name, "pool mounted");
                    let _ = publish_record(&state, "resource.updated", "system", rec).await;
                }
                Err(e) => {
                    tracing::error!(pool = rec.name, error = %e, "cannot mount pool at start")
                }
            }
        }
        // Shares are rendered once the pools they live on are back.
        state.pool_users.storage_changed(&state).await;
    });
}

#[cfg(test)]
mod name_pattern_tests {
    use hostplane_host::command::validate_name;
    use hostplane_types::{NAME_MAX_LEN, NAME_PATTERN};

    /// Every string of up to 4 characters from an alphabet around the rule's edges, and the
    /// length limit: the schema pattern accepts exactly what `validate_name` accepts.
    #[test]
    fn pattern_matches_validate_name() {
        let re = regex::Regex::new(NAME_PATTERN).unwrap();
        let schema_ok = |s: &str| re.is_match(s) && s.len() <= NAME_MAX_LEN;
        let alphabet = ['a', 'Z', '0', '_', '.', '-', ':', ' ', '/', 'é', '\n'];
        let mut words = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..4 {
            last = last
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            words.extend(last.iter().cloned());
        }
        words.extend([
            "a".repeat(64),
            "a".repeat(65),
            format!("a.{}", "b".repeat(62)),
        ]);
        for w in &words {
            assert_eq!(schema_ok(w), validate_name("x", w).is_ok(), "{w:?}");
        }
    }

    /// The schemas carry the pattern and length limit (attributes need a literal copy).
    #[test]
    fn schemas_carry_the_name_pattern() {
        let doc: serde_json::Value = serde_json::from_str(&crate::openapi_json()).unwrap();
        for (schema, field) in [
            ("CreatePoolRequest", "name"),
            ("ImportPoolRequest", "name"),
            ("CreateDatasetRequest", "name"),
            ("UpdateDatasetRequest", "name"),
            ("CreateSnapshotRequest", "name"),
        ] {
            let f = &doc["components"]["schemas"][schema]["properties"][field];
            assert_eq!(f["pattern"], NAME_PATTERN, "{schema}.{field}");
            assert_eq!(f["maxLength"], NAME_MAX_LEN, "{schema}.{field}");
        }
    }
}
