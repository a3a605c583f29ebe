//! Pool maintenance jobs: scrub (btrfs; snapraid for mergerfs pools with parity), balance and
//! profile conversion, device add/remove/replace (btrfs). Each holds the pool's lock
//! (`pools/<name>`), so two maintenance jobs on one pool never overlap.

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use hostplane_host::btrfs;
use hostplane_host::snapraid::{self, Step};
use hostplane_host::disks::ScannedDisk;
use hostplane_types::pools::{
    AddDeviceRequest, BalanceRequest, MemberRole, PoolKind, ReplaceDeviceRequest, ScrubResult,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::registry::{self, MemberRecord, PoolRecord};
use super::{find_record, job_result, ops, publish_record};
use crate::http::answer::accepted;
use crate::areas::disks::{self, check_destructive, claim, wipe_disk};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::extract::Json;
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_scrub, scrub_status))
        .routes(routes!(balance))
        .routes(routes!(add_device))
        .routes(routes!(remove_device))
        .routes(routes!(replace_device))
        .routes(routes!(reset_errors))
}

const POLL: Duration = Duration::from_millis(500);

fn need_btrfs(rec: &PoolRecord, what: &str) -> ApiResult<()> {
    if rec.kind != PoolKind::Btrfs {
        return Err(ApiError::NotSupported {
            code: "unsupported_for_pool_kind",
            detail: format!(
                "{what} is for btrfs pools; {:?} is {}",
                rec.name,
                rec.kind.as_str()
            ),
        });
    }
    Ok(())
}

fn spec(kind: &'static str, rec: &PoolRecord, actor: &str) -> JobSpec {
    JobSpec {
        kind,
        target: Some(rec.href()),
        lock_key: Some(format!("pools/{}", rec.name)),
        actor: actor.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// scrub

/// Cancels a running btrfs scrub when the job is dropped before it finished.
struct ScrubGuard(Option<String>);

impl Drop for ScrubGuard {
    fn drop(&mut self) {
        if let Some(mp) = self.0.take() {
            tokio::spawn(async move { btrfs::scrub_cancel(&mp).await });
        }
    }
}

/// Verify every block against its checksum and repair from a good copy (a job whose result
/// says what was found and corrected). btrfs pools, and mergerfs pools with snapraid parity.
#[utoipa::path(post, path = "/api/v1/pools/{name}/scrub",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools",
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 202, description = "Started; the job's result is a ScrubResult", body = hostplane_types::jobs::Job)))]
async fn start_scrub(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let rec = find_record(&state, &name)?;
    let mp = ops::require_mounted(&state, &rec)?;
    let mps = ops::path_str(&mp)?;
    if rec.kind == PoolKind::Mergerfs && rec.parity_members().next().is_some() {
        return snapraid_job(&state, &rec, &p.user, "scrub");
    }
    need_btrfs(&rec, "scrub")?;
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(spec("pools.scrub", &rec, &p.user), move |ctx| async move {
        let total: u64 = btrfs::fi_show(&mps)
            .await
            .ok()
            .flatten()
            .map(|s| s.devices.iter().map(|d| d.used).sum())
            .unwrap_or(0);
        ctx.log(format!("scrubbing {mps} (~{} MiB allocated)", total >> 20));
        let mut guard = ScrubGuard(Some(mps.clone()));
        let run = btrfs::scrub_foreground(&mps);
        tokio::pin!(run);
        let out = loop {
            tokio::select! {
                out = &mut run => break out,
                _ = tokio::time::sleep(POLL) => {
                    if let Ok(s) = btrfs::scrub_status(&mps).await
                        && s.status == "running"
                        && total > 0
                    {
                        let r = s.result();
                        let done = r.data_bytes_scrubbed + r.tree_bytes_scrubbed;
                        ctx.progress((done.saturating_mul(100) / total).min(99) as u8);
                    }
                }
            }
        };
        guard.0 = None;
        let result: ScrubResult = out
            .map_err(|e| JobFailure::command("scrub_failed", e))?
            .result();
        ctx.log(format!(
            "{}: {} errors found ({} checksum, {} read, {} verify, {} super), {} corrected, {} uncorrectable",
            result.status,
            result.errors_found,
            result.csum_errors,
            result.read_errors,
            result.verify_errors,
            result.super_errors,
            result.corrected_errors,
            result.uncorrectable_errors
        ));
        let mut rec = rec;
        if result.status == "finished" {
            // A scrub that left nothing uncorrectable is the new baseline of the members'
            // error counters: health reports only errors after it.
            let stats = btrfs::device_stats(&mps).await.unwrap_or_default();
            let uncorrectable = result.uncorrectable_errors;
            if let Ok(Some(r)) = registry::update(&st.store, &rec.name, |r| {
                r.scrub_uncorrectable = uncorrectable;
                if uncorrectable == 0 {
                    r.error_baseline = stats.iter().map(|s| (s.devid, s.errors.clone())).collect();
                }
            }) {
                rec = r;
            }
        }
        let _ = publish_record(&st, "resource.updated", &actor, &rec).await;
        if result.status != "finished" {
            return Err(JobFailure::new("scrub_aborted", format!("scrub ended as {}", result.status)));
        }
        Ok(result)
    })?;
    Ok(accepted(&job))
}

/// The last (or running) scrub's statistics (btrfs).
#[utoipa::path(get, path = "/api/v1/pools/{name}/scrub",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("pools:read"))),
    tag = "pools",
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 200, description = "Status `none` when never scrubbed", body = ScrubResult)))]
async fn scrub_status(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<ScrubResult>> {
    let rec = find_record(&state, &name)?;
    need_btrfs(&rec, "scrub status")?;
    let mp = ops::require_mounted(&state, &rec)?;
    let st = btrfs::scrub_status(&ops::path_str(&mp)?)
        .await
        .map_err(ApiError::from)?;
    Ok(axum::Json(st.result()))
}

// ---------------------------------------------------------------------------------------------
// snapraid (mergerfs pools with parity)

fn snapraid_conf_path(state: &AppState, pool: &str) -> PathBuf {
    state
        .config
        .data_dir
        .join("snapraid")
        .join(format!("{pool}.conf"))
}

/// Writes the pool's snapraid.conf (atomically) into the data dir.
pub fn write_snapraid_conf(state: &AppState, rec: &PoolRecord) -> std::io::Result<()> {
    let dir = state.config.data_dir.join("snapraid").join(&rec.name);
    std::fs::create_dir_all(&dir)?;
    let s = |m: &MemberRecord| {
        ops::member_mountpoint(state, &rec.name, m)
            .to_string_lossy()
            .into_owned()
    };
    let parity: Vec<String> = rec.parity_members().map(s).collect();
    let data: Vec<(String, String)> = rec
        .data_members()
        .enumerate()
        .map(|(i, m)| (format!("d{}", i + 1), s(m)))
        .collect();
    let text = hostplane_host::blockdev::snapraid_conf(&parity, &data, &dir.to_string_lossy());
    crate::fsutil::write_atomic(
        &snapraid_conf_path(state, &rec.name),
        text.as_bytes(),
        0o644,
    )
}

pub fn remove_snapraid_conf(state: &AppState, pool: &str) {
    let _ = std::fs::remove_file(snapraid_conf_path(state, pool));
}

fn snapraid_job(
    state: &AppState,
    rec: &PoolRecord,
    actor: &str,
    what: &'static str,
) -> ApiResult<Response> {
    if hostplane_host::which(snapraid::SNAPRAID).is_none() {
        return Err(ApiError::tool_missing("snapraid is not installed"));
    }
    let conf = snapraid_conf_path(state, &rec.name);
    let rec = rec.clone();
    let st = state.clone();
    let actor = actor.to_string();
    let job = state.jobs.spawn(
        spec("pools.snapraid", &rec, &actor),
        move |ctx| async move {
            write_snapraid_conf(&st, &rec)
                .map_err(|e| JobFailure::new("snapraid_config_failed", e.to_string()))?;
            // A scrub needs parity: sync first (quick when nothing changed).
            let steps: &[Step] = match what {
                "scrub" => &[Step::Sync, Step::ScrubAll],
                _ => &[Step::Sync],
            };
            let mut log = String::new();
            for &step in steps {
                ctx.log(format!("snapraid {}", step.describe()));
                let text = snapraid::run(&conf, step)
                    .await
                    .map_err(|e| JobFailure::command("snapraid_failed", e))?;
                for l in text.lines().filter(|l| !l.trim().is_empty()).take(40) {
                    ctx.log(l);
                }
                log.push_str(&text);
            }
            let _ = publish_record(&st, "resource.updated", &actor, &rec).await;
            Ok(hostplane_types::jobs::SnapraidResult {
                status: "finished".into(),
                output: log,
            })
        },
    )?;
    Ok(accepted(&job))
}

// ---------------------------------------------------------------------------------------------
// balance

/// Rebalance a btrfs pool, converting data/metadata profiles when given (a job with progress).
#[utoipa::path(post, path = "/api/v1/pools/{name}/balance",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = BalanceRequest,
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn balance(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    Json(req): Json<BalanceRequest>,
) -> ApiResult<Response> {
    let rec = find_record(&state, &name)?;
    need_btrfs(&rec, "balance")?;
    let mp = ops::require_mounted(&state, &rec)?;
    let mps = ops::path_str(&mp)?;
    let devices = btrfs::fi_show(&mps)
        .await
        .map_err(ApiError::from)?
        .map_or(0, |s| s.devices.iter().filter(|d| d.path.is_some()).count());
    for (prof, field) in [
        (req.data_profile, "data_profile"),
        (req.metadata_profile, "metadata_profile"),
    ] {
        if let Some(pr) = prof
            && devices < pr.min_devices()
        {
            return Err(ApiError::invalid_field(
                "invalid_profile",
                field,
                format!(
                    "{} needs at least {} devices; the pool has {devices}",
                    pr.as_str(),
                    pr.min_devices()
                ),
            ));
        }
    }
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        spec("pools.balance", &rec, &p.user),
        move |ctx| async move {
            ctx.log(format!(
                "balance {mps}{}{}",
                req.data_profile
                    .map(|d| format!(" data→{}", d.as_str()))
                    .unwrap_or_default(),
                req.metadata_profile
                    .map(|m| format!(" metadata→{}", m.as_str()))
                    .unwrap_or_default()
            ));
            let run = btrfs::balance(&mps, req.data_profile, req.metadata_profile);
            tokio::pin!(run);
            let res = loop {
                tokio::select! {
                    r = &mut run => break r,
                    _ = tokio::time::sleep(POLL) => {
                        if let Some((done, total)) = btrfs::balance_status(&mps).await
                            && total > 0
                        {
                            ctx.progress((done * 100 / total).min(99) as u8);
                        }
                    }
                }
            };
            res.map_err(|e| JobFailure::command("balance_failed", e))?;
            job_result(&st, "resource.updated", &actor, &rec).await
        },
    )?;
    Ok(accepted(&job))
}

// ---------------------------------------------------------------------------------------------
// devices

/// Add a disk to a pool (erases the disk). btrfs: run a balance afterwards to spread data;
/// mergerfs: the disk gets its own filesystem and becomes a branch at once.
#[utoipa::path(post, path = "/api/v1/pools/{name}/devices",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = AddDeviceRequest,
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn add_device(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    Json(req): Json<AddDeviceRequest>,
) -> ApiResult<Response> {
    let rec = find_record(&state, &name)?;
    if rec.kind == PoolKind::Mergerfs {
        return mergerfs_add(&state, rec, &req.device, &p.user).await;
    }
    need_btrfs(&rec, "adding a device")?;
    let mp = ops::require_mounted(&state, &rec)?;
    let mps = ops::path_str(&mp)?;
    let d = new_device(&state, &req.device).await?;
    let claim = claim(&[&d])?;
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        spec("pools.device_add", &rec, &p.user),
        move |ctx| async move {
            let _claim = claim;
            wipe_disk(&d.disk)
                .await
                .map_err(|e| JobFailure::command("wipe_failed", e))?;
            ctx.log(format!("btrfs device add {} {mps}", d.disk.path));
            btrfs::device_add(&d.disk.path, &mps)
                .await
                .map_err(|e| JobFailure::command("device_add_failed", e))?;
            let rec = registry::update(&st.store, &rec.name, |r| {
                r.members.push(MemberRecord {
                    disk: d.disk.id.clone(),
                    path: d.disk.path.clone(),
                    uuid: None,
                    role: MemberRole::Data,
                })
            })
            .map_err(|e| JobFailure::new("internal", e.to_string()))?
            .unwrap_or(rec);
            job_result(&st, "resource.updated", &actor, &rec).await
        },
    )?;
    Ok(accepted(&job))
}

async fn new_device(state: &AppState, spec: &str) -> ApiResult<ScannedDisk> {
    let scanned = ops::quick_scan(state).await?;
    let d = disks::find(&scanned, spec)
        .ok_or_else(|| {
            ApiError::invalid_field("unknown_disk", "device", format!("no disk {spec:?}"))
        })?
        .clone();
    check_destructive(&d, None)?;
    Ok(d)
}

/// The member record, its current device (None if missing) and its devid.
async fn member_of(
    state: &AppState,
    rec: &PoolRecord,
    disk: &str,
    mps: &str,
) -> ApiResult<(MemberRecord, Option<ScannedDisk>, Option<u64>)> {
    let scanned = ops::quick_scan(state).await?;
    let cur = disks::find(&scanned, disk).cloned();
    let m = rec
        .members
        .iter()
        .find(|m| m.disk == disk || cur.as_ref().is_some_and(|c| c.disk.id == m.disk))
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("member {disk:?} of pool {:?}", rec.name)))?;
    let cur = scanned.iter().find(|d| d.disk.id == m.disk).cloned();
    let show = btrfs::fi_show(mps).await.map_err(ApiError::from)?;
    let devid = show.as_ref().and_then(|s| {
        match &cur {
            Some(c) => s
                .devices
                .iter()
                .find(|d| d.path.as_deref() == Some(c.disk.path.as_str()))
                .map(|d| d.devid),
            // A missing member: the one devid btrfs lists without a path.
            None => {
                let missing: Vec<u64> = s
                    .devices
                    .iter()
                    .filter(|d| d.path.is_none())
                    .map(|d| d.devid)
                    .collect();
                (missing.len() == 1).then(|| missing[0])
            }
        }
    });
    Ok((m, cur, devid))
}

/// Remove a disk from a pool (a job). btrfs first moves its data to the others; a mergerfs
/// data member must be empty (409 `member_not_empty`), its filesystem is left as it is.
#[utoipa::path(delete, path = "/api/v1/pools/{name}/devices/{disk}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools",
    params(("name" = String, Path, description = "Pool name"), ("disk" = String, Path, description = "Member disk id or kernel name")),
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn remove_device(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((name, disk)): Path<(String, String)>,
) -> ApiResult<Response> {
    let rec = find_record(&state, &name)?;
    if rec.kind == PoolKind::Mergerfs {
        return mergerfs_remove(&state, rec, &disk, &p.user).await;
    }
    need_btrfs(&rec, "removing a device")?;
    let mp = ops::require_mounted(&state, &rec)?;
    let mps = ops::path_str(&mp)?;
    let (m, cur, devid) = member_of(&state, &rec, &disk, &mps).await?;
    if rec.members.len() < 2 {
        return Err(ApiError::conflict(
            "last_member",
            "a pool's last disk cannot be removed; destroy the pool",
        ));
    }
    let (data, meta) = btrfs::df_profiles(&mps).await.map_err(ApiError::from)?;
    let remaining = rec.members.len() - 1;
    for pr in [data, meta].into_iter().flatten() {
        if remaining < pr.min_devices() {
            return Err(ApiError::conflict(
                "profile_needs_devices",
                format!(
                    "{} needs {} devices; convert the profile (POST .../balance) before removing",
                    pr.as_str(),
                    pr.min_devices()
                ),
            ));
        }
    }
    if let Some(c) = &cur {
        ops::check_member_online(&state, c, &rec)?;
    }
    let target = match (&cur, devid) {
        (Some(c), _) => c.disk.path.clone(),
        (None, _) => "missing".to_string(),
    };
    let claims: Vec<&ScannedDisk> = cur.iter().collect();
    let claim = claim(&claims)?;
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        spec("pools.device_remove", &rec, &p.user),
        move |ctx| async move {
            let _claim = claim;
            ctx.log(format!(
                "btrfs device remove {target} {mps} (moves its data to the other members)"
            ));
            btrfs::device_remove(&target, &mps)
                .await
                .map_err(|e| JobFailure::command("device_remove_failed", e))?;
            let rec = registry::update(&st.store, &rec.name, |r| {
                r.members.retain(|x| x.disk != m.disk);
                if let Some(id) = devid {
                    r.error_baseline.remove(&id);
                }
            })
            .map_err(|e| JobFailure::new("internal", e.to_string()))?
            .unwrap_or(rec);
            job_result(&st, "resource.updated", &actor, &rec).await
        },
    )?;
    Ok(accepted(&job))
}

/// Replace a member (present or missing) with a new disk (a job: `btrfs replace`, then the
/// filesystem grows onto a larger disk).
#[utoipa::path(post, path = "/api/v1/pools/{name}/devices/{disk}/replace",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = ReplaceDeviceRequest,
    params(("name" = String, Path, description = "Pool name"), ("disk" = String, Path, description = "Member disk id or kernel name")),
    responses((status = 202, description = "Started; follow the job at Location", body = hostplane_types::jobs::Job)))]
async fn replace_device(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((name, disk)): Path<(String, String)>,
    Json(req): Json<ReplaceDeviceRequest>,
) -> ApiResult<Response> {
    let rec = find_record(&state, &name)?;
    need_btrfs(&rec, "replacing a device")?;
    let mp = ops::require_mounted(&state, &rec)?;
    let mps = ops::path_str(&mp)?;
    let (m, cur, devid) = member_of(&state, &rec, &disk, &mps).await?;
    let new = new_device(&state, &req.device).await?;
    if let Some(c) = &cur {
        ops::check_member_online(&state, c, &rec)?;
        if new.disk.size_bytes < c.disk.size_bytes {
            return Err(ApiError::invalid_field(
                "device_too_small",
                "device",
                format!("{} is smaller than {}", new.disk.path, c.disk.path),
            ));
        }
    }
    let Some(devid) = devid else {
        return Err(ApiError::conflict(
            "member_unknown",
            format!("btrfs does not list member {disk:?} (devid unknown)"),
        ));
    };
    let mut claims: Vec<&ScannedDisk> = cur.iter().collect();
    claims.push(&new);
    let claim = claim(&claims)?;
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        spec("pools.device_replace", &rec, &p.user),
        move |ctx| async move {
            let _claim = claim;
            wipe_disk(&new.disk)
                .await
                .map_err(|e| JobFailure::command("wipe_failed", e))?;
            ctx.progress(5);
            ctx.log(format!(
                "btrfs replace start {devid} {} {mps}",
                new.disk.path
            ));
            btrfs::replace(&devid.to_string(), &new.disk.path, &mps)
                .await
                .map_err(|e| JobFailure::command("replace_failed", e))?;
            ctx.progress(90);
            if let Err(e) = btrfs::resize_max(devid, &mps).await {
                ctx.log(format!("resize to the new disk's size failed: {e}"));
            }
            let rec = registry::update(&st.store, &rec.name, |r| {
                for x in r.members.iter_mut().filter(|x| x.disk == m.disk) {
                    x.disk = new.disk.id.clone();
                    x.path = new.disk.path.clone();
                }
                // The new disk keeps the devid and starts with zero counters.
                r.error_baseline.remove(&devid);
            })
            .map_err(|e| JobFailure::new("internal", e.to_string()))?
            .unwrap_or(rec);
            job_result(&st, "resource.updated", &actor, &rec).await
        },
    )?;
    Ok(accepted(&job))
}

/// Zero a member's error counters (`btrfs device stats -z`), e.g. after the cause was dealt
/// with. Answers the pool.
#[utoipa::path(post, path = "/api/v1/pools/{name}/devices/{disk}/reset-errors",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools",
    params(("name" = String, Path, description = "Pool name"), ("disk" = String, Path, description = "Member disk id or kernel name")),
    responses((status = 200, description = "The pool, the member's counters at zero", body = hostplane_types::pools::Pool),
        (status = 409, description = "`member_missing`: the member is not present", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn reset_errors(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((name, disk)): Path<(String, String)>,
) -> ApiResult<axum::Json<hostplane_types::pools::Pool>> {
    let rec = find_record(&state, &name)?;
    need_btrfs(&rec, "resetting error counters")?;
    let mp = ops::require_mounted(&state, &rec)?;
    let mps = ops::path_str(&mp)?;
    let (m, cur, devid) = member_of(&state, &rec, &disk, &mps).await?;
    let (Some(cur), Some(devid)) = (cur, devid) else {
        return Err(ApiError::conflict(
            "member_missing",
            format!(
                "member {:?} is not present; replace or remove it instead",
                m.disk
            ),
        ));
    };
    let before = btrfs::device_stats(&mps)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .find(|s| s.devid == devid)
        .map(|s| s.errors)
        .unwrap_or_default();
    btrfs::device_stats_reset(&cur.disk.path)
        .await
        .map_err(ApiError::from)?;
    let rec = registry::update(&state.store, &rec.name, |r| {
        r.error_baseline.remove(&devid);
    })?
    .unwrap_or(rec);
    let pools = ops::views(&state, std::slice::from_ref(&rec)).await?;
    let pool = pools
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("pool {name:?}")))?;
    // The pool as it is now, with what was reset (as retention deletions carry a reason).
    let mut data = serde_json::to_value(&pool).unwrap_or_default();
    if let Some(o) = data.as_object_mut() {
        o.insert("reason".into(), serde_json::json!("errors_reset"));
        o.insert(
            "reset".into(),
            serde_json::json!({"disk": m.disk, "devid": devid, "errors_before": before}),
        );
    }
    state
        .events
        .publish("resource.updated", &pool.href, &p.user, data);
    Ok(axum::Json(pool))
}

// ---------------------------------------------------------------------------------------------
// mergerfs members

/// Adds a data member to a mergerfs pool: wipe, mkfs, mount under the members dir, append the
/// branch at run time (no remount).
async fn mergerfs_add(
    state: &AppState,
    rec: PoolRecord,
    device: &str,
    actor: &str,
) -> ApiResult<Response> {
    let mp = ops::require_mounted(state, &rec)?;
    let mps = ops::path_str(&mp)?;
    let d = new_device(state, device).await?;
    let fs = if rec.member_fs.as_deref() == Some("xfs") {
        hostplane_types::disks::FormatType::Xfs
    } else {
        hostplane_types::disks::FormatType::Ext4
    };
    if fs == hostplane_types::disks::FormatType::Xfs && d.disk.size_bytes < 300_000_000 {
        return Err(ApiError::invalid_field(
            "device_too_small",
            "device",
            "XFS needs at least 300 MB",
        ));
    }
    let claim = claim(&[&d])?;
    let st = state.clone();
    let actor = actor.to_string();
    let job = state.jobs.spawn(
        spec("pools.device_add", &rec, &actor),
        move |ctx| async move {
            let _claim = claim;
            wipe_disk(&d.disk)
                .await
                .map_err(|e| JobFailure::command("wipe_failed", e))?;
            ctx.log(format!("mkfs.{} {}", fs.as_str(), d.disk.path));
            hostplane_host::blockdev::mkfs(fs, &d.disk.path, None)
                .await
                .map_err(|e| JobFailure::command("mkfs_failed", e))?;
            let uuid = hostplane_host::disks::probe_blkid(std::slice::from_ref(&d.disk.path))
                .await
                .ok()
                .and_then(|v| v.into_iter().next())
                .and_then(|i| i.get("UUID"))
                .ok_or_else(|| {
                    JobFailure::new(
                        "mkfs_failed",
                        format!("no filesystem UUID on {}", d.disk.path),
                    )
                })?;
            let m = MemberRecord {
                disk: d.disk.id.clone(),
                path: d.disk.path.clone(),
                uuid: Some(uuid),
                role: MemberRole::Data,
            };
            // Recorded before it is mounted, so the disk counts as the pool's from now on.
            let rec = registry::update(&st.store, &rec.name, |r| r.members.push(m.clone()))
                .map_err(|e| JobFailure::new("internal", e.to_string()))?
                .unwrap_or(rec);
            let dir = ops::member_mountpoint(&st, &rec.name, &m);
            std::fs::create_dir_all(&dir)
                .map_err(|e| JobFailure::new("mount_failed", e.to_string()))?;
            let dirs = dir.to_string_lossy().into_owned();
            hostplane_host::blockdev::mount(Some(fs.as_str()), &[], &d.disk.path, &dirs)
                .await
                .map_err(|e| JobFailure::command("mount_failed", e))?;
            ctx.log(format!("adding branch {dirs} to {mps}"));
            hostplane_host::blockdev::mergerfs_branches(&mps, &format!("+>{dirs}")).map_err(
                |e| JobFailure::new("device_add_failed", format!("mergerfs branch change: {e}")),
            )?;
            if rec.parity_members().next().is_some() {
                write_snapraid_conf(&st, &rec)
                    .map_err(|e| JobFailure::new("snapraid_config_failed", e.to_string()))?;
            }
            job_result(&st, "resource.updated", &actor, &rec).await
        },
    )?;
    Ok(accepted(&job))
}

/// Files on a member other than what a fresh filesystem or snapraid put there.
fn member_has_files(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n != "lost+found" && !n.starts_with(".snapraid") && n != "snapraid.parity"
            })
        })
        .unwrap_or(false)
}

/// Removes a member from a mergerfs pool: the branch goes at run time, then the member is
/// unmounted. Its filesystem is left as it is. A data member must hold no files (move them
/// off through its `mountpoint` first): otherwise they would silently leave the pool.
async fn mergerfs_remove(
    state: &AppState,
    rec: PoolRecord,
    disk: &str,
    actor: &str,
) -> ApiResult<Response> {
    let mp = ops::require_mounted(state, &rec)?;
    let mps = ops::path_str(&mp)?;
    let scanned = ops::quick_scan(state).await?;
    let cur = disks::find(&scanned, disk).cloned();
    let m = rec
        .members
        .iter()
        .find(|m| m.disk == disk || cur.as_ref().is_some_and(|c| c.disk.id == m.disk))
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("member {disk:?} of pool {:?}", rec.name)))?;
    if m.role == MemberRole::Data && rec.data_members().count() < 2 {
        return Err(ApiError::conflict(
            "last_member",
            "a pool's last data disk cannot be removed; destroy the pool",
        ));
    }
    let dir = ops::member_mountpoint(state, &rec.name, &m);
    if m.role == MemberRole::Data && member_has_files(&dir) {
        return Err(ApiError::conflict(
            "member_not_empty",
            format!(
                "{} still holds files; move them to other members first",
                dir.display()
            ),
        ));
    }
    let claims: Vec<&ScannedDisk> = scanned.iter().filter(|d| d.disk.id == m.disk).collect();
    let claim = claim(&claims)?;
    let st = state.clone();
    let actor = actor.to_string();
    let job = state.jobs.spawn(
        spec("pools.device_remove", &rec, &actor),
        move |ctx| async move {
            let _claim = claim;
            let dirs = dir.to_string_lossy().into_owned();
            if m.role == MemberRole::Data {
                ctx.log(format!("removing branch {dirs} from {mps}"));
                hostplane_host::blockdev::mergerfs_branches(&mps, &format!("-{dirs}")).map_err(
                    |e| {
                        JobFailure::new(
                            "device_remove_failed",
                            format!("mergerfs branch change: {e}"),
                        )
                    },
                )?;
            }
            if hostplane_host::disks::is_mountpoint(&dir) {
                hostplane_host::blockdev::umount(&dirs)
                    .await
                    .map_err(|e| JobFailure::command("unmount_failed", e))?;
            }
            let _ = std::fs::remove_dir(&dir);
            let rec = registry::update(&st.store, &rec.name, |r| {
                r.members.retain(|x| x.disk != m.disk)
            })
            .map_err(|e| JobFailure::new("internal", e.to_string()))?
            .unwrap_or(rec);
            if rec.parity_members().next().is_some() {
                write_snapraid_conf(&st, &rec)
                    .map_err(|e| JobFailure::new("snapraid_config_failed", e.to_string()))?;
            } else {
                remove_snapraid_conf(&st, &rec.name);
            }
            job_result(&st, "resource.updated", &actor, &rec).await
        },
    )?;
    Ok(accepted(&job))
}
