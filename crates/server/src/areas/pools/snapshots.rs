//! Snapshots of btrfs datasets: read-only subvolumes at `<mountpoint>/.snapshots/<dataset>/
//! <name>`. Creating one applies the dataset's retention (the newest N are kept). Rollback
//! makes a writable snapshot of the chosen one and swaps it with the dataset in one
//! `renameat2(RENAME_EXCHANGE)`, so the dataset path is never missing; the old state is then
//! deleted or kept as a `pre-rollback-…` snapshot, and the dataset's quota is carried over.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hostplane_host::btrfs::{self, Qgroup};
use hostplane_types::pools::{CreateSnapshotRequest, RollbackRequest, Snapshot};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::datasets::{self, Ctx, check_name, ctx, unix_to_string, usage_of};
use super::registry;
use crate::platform::pool_users::PoolOp;
use crate::http::answer::created;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_pool_snapshots))
        .routes(routes!(list_snapshots, create_snapshot))
        .routes(routes!(get_snapshot, delete_snapshot))
        .routes(routes!(rollback))
}

fn href(pool: &str, ds: &str, snap: &str) -> String {
    format!("{}/snapshots/{snap}", datasets::href(pool, ds))
}

fn need_btrfs(c: &Ctx) -> ApiResult<()> {
    if c.btrfs() {
        Ok(())
    } else {
        Err(ApiError::NotSupported {
            code: "snapshots_unsupported",
            detail: format!(
                "pool {:?} is {}: snapshots need btrfs",
                c.rec.name,
                c.rec.kind.as_str()
            ),
        })
    }
}

/// Snapshot names of a dataset, oldest first: by subvolume id, which btrfs allocates in
/// increasing order (creation times have one-second resolution).
pub fn names(c: &Ctx, ds: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(c.snap_dir(ds)) else {
        return Vec::new();
    };
    let mut v: Vec<(u64, String)> = rd
        .flatten()
        .filter(|e| btrfs::is_subvolume(&e.path()))
        .map(|e| {
            let id = btrfs::subvol_info(&e.path()).map(|i| i.id).unwrap_or(0);
            (id, e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    v.into_iter().map(|x| x.1).collect()
}

fn view(c: &Ctx, q: &Option<Vec<Qgroup>>, ds: &str, name: &str) -> Snapshot {
    let path = c.snap_dir(ds).join(name);
    let info = btrfs::subvol_info(&path).ok();
    let (usage, _) = usage_of(q, info.as_ref().map(|i| i.id));
    Snapshot {
        href: href(&c.rec.name, ds, name),
        pool: c.rec.name.clone(),
        dataset: ds.to_string(),
        name: name.to_string(),
        path: path.to_string_lossy().into_owned(),
        subvolume_id: info.as_ref().map(|i| i.id),
        created_at: info.as_ref().and_then(|i| unix_to_string(i.otime)),
        read_only: info.as_ref().is_some_and(|i| i.read_only),
        usage,
    }
}

fn require_snapshot(c: &Ctx, ds: &str, snap: &str) -> ApiResult<std::path::PathBuf> {
    let p = c.snap_dir(ds).join(snap);
    if hostplane_host::validate_name("snapshot", snap).is_ok() && btrfs::is_subvolume(&p) {
        Ok(p)
    } else {
        Err(ApiError::not_found(format!(
            "snapshot {snap:?} of dataset {ds:?}"
        )))
    }
}

/// Every snapshot of every dataset of a pool.
#[utoipa::path(get, path = "/api/v1/pools/{pool}/snapshots",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("pools:read"))),
    tag = "pools",
    params(("pool" = String, Path, description = "Pool name"), CollectionParams),
    responses((status = 200, description = "Snapshots", body = [Snapshot],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_pool_snapshots(
    State(state): State<AppState>,
    Path(pool): Path<String>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = ctx(&state, &pool)?;
    need_btrfs(&c)?;
    let q = c.qgroups().await;
    let mut list = Vec::new();
    for ds in c.names()? {
        for s in names(&c, &ds) {
            list.push(view(&c, &q, &ds, &s));
        }
    }
    collection::respond(list, &params, &headers)
}

/// A dataset's snapshots, oldest first.
#[utoipa::path(get, path = "/api/v1/pools/{pool}/datasets/{dataset}/snapshots",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("pools:read"))),
    tag = "pools",
    params(("pool" = String, Path, description = "Pool name"), ("dataset" = String, Path, description = "Dataset name"), CollectionParams),
    responses((status = 200, description = "Snapshots", body = [Snapshot],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_snapshots(
    State(state): State<AppState>,
    Path((pool, ds)): Path<(String, String)>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = ctx(&state, &pool)?;
    need_btrfs(&c)?;
    c.require(&ds)?;
    let q = c.qgroups().await;
    let list: Vec<Snapshot> = names(&c, &ds)
        .iter()
        .map(|s| view(&c, &q, &ds, s))
        .collect();
    collection::respond(list, &params, &headers)
}

/// One snapshot.
#[utoipa::path(get, path = "/api/v1/pools/{pool}/datasets/{dataset}/snapshots/{snapshot}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("pools:read"))),
    tag = "pools",
    params(("pool" = String, Path, description = "Pool name"), ("dataset" = String, Path, description = "Dataset name"), ("snapshot" = String, Path, description = "Snapshot name")),
    responses((status = 200, description = "The snapshot", body = Snapshot)))]
async fn get_snapshot(
    State(state): State<AppState>,
    Path((pool, ds, snap)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<Snapshot>> {
    let c = ctx(&state, &pool)?;
    need_btrfs(&c)?;
    c.require(&ds)?;
    require_snapshot(&c, &ds, &snap)?;
    let q = c.qgroups().await;
    Ok(axum::Json(view(&c, &q, &ds, &snap)))
}

fn stamp() -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

/// Take a read-only snapshot; then delete the oldest beyond the dataset's retention.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/datasets/{dataset}/snapshots",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = CreateSnapshotRequest,
    params(("pool" = String, Path, description = "Pool name"), ("dataset" = String, Path, description = "Dataset name")),
    responses((status = 201, description = "Created", body = Snapshot),
        (status = 501, description = "The pool is not btrfs", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn create_snapshot(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((pool, ds)): Path<(String, String)>,
    Json(req): Json<CreateSnapshotRequest>,
) -> ApiResult<Response> {
    let c = ctx(&state, &pool)?;
    need_btrfs(&c)?;
    let src = c.require(&ds)?;
    let name = req.name.unwrap_or_else(stamp);
    check_name("snapshot", &name, "name")?;
    let dir = c.snap_dir(&ds);
    let dest = dir.join(&name);
    if std::fs::symlink_metadata(&dest).is_ok() {
        return Err(ApiError::conflict(
            "snapshot_exists",
            format!("snapshot {name:?} of {ds:?} exists"),
        ));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
    btrfs::snapshot(&src.to_string_lossy(), &dest.to_string_lossy(), true)
        .await
        .map_err(ApiError::from)?;
    // Retention: keep the newest N (the one just taken included).
    if let Some(keep) = c.rec.datasets.get(&ds).and_then(|s| s.snapshot_retention) {
        let all = names(&c, &ds);
        let excess = all.len().saturating_sub(keep as usize);
        for old in all.iter().filter(|n| **n != name).take(excess) {
            match btrfs::subvolume_delete(&dir.join(old).to_string_lossy()).await {
                Ok(()) => state.events.publish(
                    "resource.deleted",
                    &href(&pool, &ds, old),
                    &p.user,
                    serde_json::json!({"reason": "retention", "keep": keep}),
                ),
                Err(e) => {
                    tracing::warn!(pool, dataset = ds, snapshot = old, error = %e, "retention: cannot delete snapshot")
                }
            }
        }
    }
    let q = c.qgroups().await;
    let s = view(&c, &q, &ds, &name);
    state.events.publish(
        "resource.created",
        &s.href,
        &p.user,
        serde_json::to_value(&s).unwrap_or_default(),
    );
    Ok(created(&s.href, &s))
}

/// Delete a snapshot.
#[utoipa::path(delete, path = "/api/v1/pools/{pool}/datasets/{dataset}/snapshots/{snapshot}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools",
    params(("pool" = String, Path, description = "Pool name"), ("dataset" = String, Path, description = "Dataset name"), ("snapshot" = String, Path, description = "Snapshot name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_snapshot(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((pool, ds, snap)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let c = ctx(&state, &pool)?;
    need_btrfs(&c)?;
    let path = require_snapshot(&c, &ds, &snap)?;
    btrfs::subvolume_delete(&path.to_string_lossy())
        .await
        .map_err(ApiError::from)?;
    state.events.publish(
        "resource.deleted",
        &href(&pool, &ds, &snap),
        &p.user,
        serde_json::json!({"pool": pool, "dataset": ds, "name": snap}),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Roll a dataset back to a snapshot: a writable copy of the snapshot replaces the dataset
/// atomically. The snapshot itself stays.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/datasets/{dataset}/snapshots/{snapshot}/rollback",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = RollbackRequest,
    params(("pool" = String, Path, description = "Pool name"), ("dataset" = String, Path, description = "Dataset name"), ("snapshot" = String, Path, description = "Snapshot name")),
    responses((status = 200, description = "The dataset after the rollback", body = hostplane_types::pools::Dataset)))]
async fn rollback(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((pool, ds, snap)): Path<(String, String, String)>,
    Json(req): Json<RollbackRequest>,
) -> ApiResult<axum::Json<hostplane_types::pools::Dataset>> {
    let c = ctx(&state, &pool)?;
    need_btrfs(&c)?;
    let live = c.require(&ds)?;
    let snap_path = require_snapshot(&c, &ds, &snap)?;
    state
        .pool_users
        .refuse(&state, PoolOp::RollbackDataset, &pool, Some(&ds))?;
    let q = c.qgroups().await;
    let old_quota = usage_of(&q, btrfs::subvol_info(&live).ok().map(|i| i.id)).1;
    // The new subvolume's creation time is the snapshot's: the dataset's own is kept.
    let created_at = datasets::view(&c, &q, &ds).created_at;
    if let Some(t) = &created_at {
        registry::update(&state.store, &pool, |r| {
            r.datasets.entry(ds.clone()).or_default().created_at = Some(t.clone());
        })?;
    }
    // The new subvolume is made next to the dataset: RENAME_EXCHANGE needs one directory tree
    // of one filesystem, and a hidden name keeps it out of dataset listings.
    let tmp =
        c.mp.join(format!(".rollback-{ds}-{}", uuid::Uuid::now_v7().simple()));
    btrfs::snapshot(&snap_path.to_string_lossy(), &tmp.to_string_lossy(), false)
        .await
        .map_err(ApiError::from)?;
    if let Err(e) = btrfs::rename_exchange(&tmp, &live) {
        let _ = btrfs::subvolume_delete(&tmp.to_string_lossy()).await;
        return Err(ApiError::conflict(
            "rollback_failed",
            format!("swapping in the rolled-back dataset: {e}"),
        ));
    }
    // `tmp` now holds the state before the rollback. Shares are pointed at the new subvolume
    // first (ganesha exports from a bind mount of the old one, which would keep it busy).
    state.pool_users.storage_changed(&state).await;
    if let Some(qb) = old_quota
        && let Ok(info) = btrfs::subvol_info(&live)
        && let Err(e) = btrfs::qgroup_limit(&c.mp.to_string_lossy(), info.id, Some(qb)).await
    {
        tracing::warn!(pool, dataset = ds, error = %e, "rollback: cannot carry the quota over");
    }
    let mut kept = None;
    if req.keep_current {
        let name = format!("pre-rollback-{}", stamp());
        let dest = c.snap_dir(&ds).join(&name);
        // Move first: btrfs refuses to move a read-only subvolume to another directory.
        std::fs::create_dir_all(c.snap_dir(&ds)).map_err(ApiError::internal)?;
        std::fs::rename(&tmp, &dest).map_err(|e| {
            ApiError::conflict(
                "rollback_failed",
                format!("keeping the previous state: {e}"),
            )
        })?;
        btrfs::set_read_only(&dest.to_string_lossy(), true)
            .await
            .map_err(ApiError::from)?;
        kept = Some(href(&pool, &ds, &name));
    } else {
        btrfs::subvolume_delete(&tmp.to_string_lossy())
            .await
            .map_err(ApiError::from)?;
    }
    let q = c.qgroups().await;
    let mut v = datasets::view(&c, &q, &ds);
    v.created_at = created_at;
    state.events.publish(
        "resource.updated",
        &v.href,
        &p.user,
        serde_json::json!({"rolled_back_to": href(&pool, &ds, &snap), "previous_kept_as": kept}),
    );
    if let Some(k) = kept {
        state.events.publish(
            "resource.created",
            &k,
            &p.user,
            serde_json::json!({"reason": "rollback"}),
        );
    }
    Ok(axum::Json(v))
}
