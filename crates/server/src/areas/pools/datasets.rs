//! `/api/v1/pools/{pool}/datasets`: btrfs subvolumes (usage and quota from quota groups), or
//! plain directories on ext4/xfs/mergerfs pools. A dataset `name` lives at
//! `<mountpoint>/<name>`; its snapshots at `<mountpoint>/.snapshots/<name>/` (see
//! [`super::snapshots`]).

use std::path::{Path as FsPath, PathBuf};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hostplane_host::btrfs::{self, Qgroup};
use hostplane_host::command::validate_name;
use hostplane_types::pools::{
    CreateDatasetRequest, Dataset, DatasetUsage, PoolKind, UpdateDatasetRequest,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::registry::{self, DatasetSettings, PoolRecord};
use super::{find_record, ops};
use crate::http::answer::created;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::pool_users::PoolOp;
use crate::platform::time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_datasets, create_dataset))
        .routes(routes!(get_dataset, update_dataset, delete_dataset))
}

/// Directory of a pool's snapshots.
pub const SNAPSHOT_DIR: &str = ".snapshots";

pub fn href(pool: &str, ds: &str) -> String {
    format!("/api/v1/pools/{pool}/datasets/{ds}")
}

pub fn check_name(kind: &str, name: &str, field: &str) -> ApiResult<()> {
    validate_name(kind, name)
        .map_err(|e| ApiError::invalid_field("invalid_name", field, e.to_string()))
}

/// What a pool needs for dataset work: the record and where it is mounted.
pub struct Ctx {
    pub rec: PoolRecord,
    pub mp: PathBuf,
}

pub fn ctx(state: &AppState, pool: &str) -> ApiResult<Ctx> {
    let rec = find_record(state, pool)?;
    let mp = ops::require_mounted(state, &rec)?;
    Ok(Ctx { rec, mp })
}

impl Ctx {
    pub fn btrfs(&self) -> bool {
        self.rec.kind == PoolKind::Btrfs
    }
    pub fn path(&self, ds: &str) -> PathBuf {
        self.mp.join(ds)
    }
    pub fn snap_dir(&self, ds: &str) -> PathBuf {
        self.mp.join(SNAPSHOT_DIR).join(ds)
    }
    /// Quota groups, None when quotas are off or this is not btrfs.
    pub async fn qgroups(&self) -> Option<Vec<Qgroup>> {
        if !self.btrfs() {
            return None;
        }
        let uuid = self.rec.uuid.as_deref()?;
        btrfs::qgroups(FsPath::new("/sys"), uuid, &self.mp.to_string_lossy())
            .await
            .ok()
            .flatten()
    }
    fn is_dataset(&self, p: &FsPath) -> bool {
        if self.btrfs() {
            btrfs::is_subvolume(p)
        } else {
            p.is_dir()
        }
    }
    /// Dataset names, sorted.
    pub fn names(&self) -> ApiResult<Vec<String>> {
        let rd = std::fs::read_dir(&self.mp).map_err(ApiError::internal)?;
        let mut v: Vec<String> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                (validate_name("dataset", &n).is_ok()
                    && n != "lost+found"
                    && self.is_dataset(&e.path()))
                .then_some(n)
            })
            .collect();
        v.sort();
        Ok(v)
    }
    pub fn require(&self, ds: &str) -> ApiResult<PathBuf> {
        let p = self.path(ds);
        if validate_name("dataset", ds).is_ok() && self.is_dataset(&p) {
            Ok(p)
        } else {
            Err(ApiError::not_found(format!(
                "dataset {ds:?} of pool {:?}",
                self.rec.name
            )))
        }
    }
}

pub fn unix_to_string(secs: i64) -> Option<String> {
    ::time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .map(time::format)
}

pub fn usage_of(q: &Option<Vec<Qgroup>>, id: Option<u64>) -> (Option<DatasetUsage>, Option<u64>) {
    let g = id.and_then(|id| q.as_ref()?.iter().find(|g| g.subvol_id == id));
    (
        g.map(|g| DatasetUsage {
            referenced: g.referenced,
            exclusive: g.exclusive,
        }),
        g.and_then(|g| g.max_referenced),
    )
}

fn count_snapshots(c: &Ctx, ds: &str) -> u32 {
    std::fs::read_dir(c.snap_dir(ds))
        .map(|rd| {
            rd.flatten()
                .filter(|e| btrfs::is_subvolume(&e.path()))
                .count() as u32
        })
        .unwrap_or(0)
}

pub fn view(c: &Ctx, q: &Option<Vec<Qgroup>>, name: &str) -> Dataset {
    let path = c.path(name);
    let info = c.btrfs().then(|| btrfs::subvol_info(&path).ok()).flatten();
    let (usage, quota) = usage_of(q, info.as_ref().map(|i| i.id));
    let kept = c.rec.datasets.get(name).and_then(|s| s.created_at.clone());
    let created_at = kept.or_else(|| match &info {
        Some(i) => unix_to_string(i.otime),
        None => std::fs::metadata(&path)
            .ok()
            .and_then(|m| m.created().or_else(|_| m.modified()).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| unix_to_string(d.as_secs() as i64)),
    });
    Dataset {
        href: href(&c.rec.name, name),
        pool: c.rec.name.clone(),
        name: name.to_string(),
        path: path.to_string_lossy().into_owned(),
        kind: if c.btrfs() { "subvolume" } else { "directory" }.into(),
        subvolume_id: info.as_ref().map(|i| i.id),
        created_at,
        usage,
        quota,
        snapshot_retention: c.rec.datasets.get(name).and_then(|s| s.snapshot_retention),
        snapshots: if c.btrfs() {
            count_snapshots(c, name)
        } else {
            0
        },
    }
}

/// List a pool's datasets.
#[utoipa::path(get, path = "/api/v1/pools/{pool}/datasets",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("pools:read"))),
    tag = "pools", params(("pool" = String, Path, description = "Pool name"), CollectionParams),
    responses((status = 200, description = "Datasets", body = [Dataset],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_datasets(
    State(state): State<AppState>,
    Path(pool): Path<String>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = ctx(&state, &pool)?;
    let q = c.qgroups().await;
    let list: Vec<Dataset> = c.names()?.iter().map(|n| view(&c, &q, n)).collect();
    collection::respond(list, &params, &headers)
}

/// One dataset.
#[utoipa::path(get, path = "/api/v1/pools/{pool}/datasets/{dataset}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("pools:read"))),
    tag = "pools",
    params(("pool" = String, Path, description = "Pool name"), ("dataset" = String, Path, description = "Dataset name")),
    responses((status = 200, description = "The dataset", body = Dataset)))]
async fn get_dataset(
    State(state): State<AppState>,
    Path((pool, ds)): Path<(String, String)>,
) -> ApiResult<axum::Json<Dataset>> {
    let c = ctx(&state, &pool)?;
    c.require(&ds)?;
    let q = c.qgroups().await;
    Ok(axum::Json(view(&c, &q, &ds)))
}

fn check_retention(r: Option<u32>, allow_zero: bool) -> ApiResult<()> {
    if let Some(n) = r
        && (n > 10_000 || (n == 0 && !allow_zero))
    {
        return Err(ApiError::invalid_field(
            "invalid_retention",
            "snapshot_retention",
            if allow_zero {
                "0 (keep all) .. 10000"
            } else {
                "1 .. 10000"
            },
        ));
    }
    Ok(())
}

/// A quota is an int64 in the schema (and in the store): larger values are refused, not
/// handed to btrfs.
fn check_quota(quota: Option<u64>) -> ApiResult<()> {
    match quota {
        Some(q) if q > i64::MAX as u64 => Err(ApiError::invalid_field(
            "invalid_quota",
            "quota",
            format!("at most {} bytes", i64::MAX),
        )),
        _ => Ok(()),
    }
}

/// Sets (or with None removes) a quota, turning quotas on first when needed.
async fn set_quota(c: &Ctx, path: &FsPath, bytes: Option<u64>) -> ApiResult<()> {
    if !c.btrfs() {
        return Err(ApiError::NotSupported {
            code: "quota_unsupported",
            detail: format!(
                "quotas need btrfs quota groups; pool {:?} is {} (this kernel has no ext4/XFS quota support)",
                c.rec.name,
                c.rec.kind.as_str()
            ),
        });
    }
    let uuid = c.rec.uuid.clone().unwrap_or_default();
    let mps = c.mp.to_string_lossy().into_owned();
    if !btrfs::quotas_enabled(FsPath::new("/sys"), &uuid) {
        btrfs::quota_enable(&mps).await.map_err(|e| match e {
            hostplane_host::CommandError::Failed { stderr, .. }
                if stderr.contains("not supported") || stderr.contains("Operation not") =>
            {
                ApiError::NotSupported {
                    code: "quota_unsupported",
                    detail: stderr,
                }
            }
            other => ApiError::from(other),
        })?;
        let _ = btrfs::quota_rescan_wait(&mps).await;
    }
    let id = btrfs::subvol_info(path)
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?
        .id;
    if let Some(limit) = bytes {
        // A limit below what the subvolume holds would refuse every write to it, deletes
        // included: refuse it. Usage after the running transaction is committed.
        let _ = btrfs::fs_sync(&mps).await;
        let used = c
            .qgroups()
            .await
            .and_then(|q| q.into_iter().find(|g| g.subvol_id == id))
            .map_or(0, |g| g.referenced);
        if limit < used {
            return Err(ApiError::invalid_field(
                "quota_below_usage",
                "quota",
                format!(
                    "the dataset uses {used} bytes ({}); a quota of {limit} bytes would stop every write to it",
                    human_bytes(used)
                ),
            ));
        }
    }
    // By quota group id: removing or raising works also on a dataset over its limit.
    btrfs::qgroup_limit(&mps, id, bytes).await.map_err(ApiError::from)
}

/// `62.3 MiB`.
fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Create a dataset (btrfs subvolume, or a directory).
#[utoipa::path(post, path = "/api/v1/pools/{pool}/datasets",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = CreateDatasetRequest,
    params(("pool" = String, Path, description = "Pool name")),
    responses((status = 201, description = "Created", body = Dataset),
        (status = 501, description = "Quota asked on a pool without quota support", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn create_dataset(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(pool): Path<String>,
    Json(req): Json<CreateDatasetRequest>,
) -> ApiResult<Response> {
    check_name("dataset", &req.name, "name")?;
    if req.name == "lost+found" {
        return Err(ApiError::invalid_field(
            "invalid_name",
            "name",
            "reserved name",
        ));
    }
    check_retention(req.snapshot_retention, false)?;
    let quota = ops::size_field(req.quota.as_ref(), "quota")?;
    check_quota(quota)?;
    let c = ctx(&state, &pool)?;
    if quota.is_some() && !c.btrfs() {
        set_quota(&c, &c.mp, None).await?;
    }
    if req.snapshot_retention.is_some() && !c.btrfs() {
        return Err(ApiError::NotSupported {
            code: "snapshots_unsupported",
            detail: format!(
                "pool {:?} ({}) has no snapshots",
                c.rec.name,
                c.rec.kind.as_str()
            ),
        });
    }
    let path = c.path(&req.name);
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(ApiError::conflict(
            "dataset_exists",
            format!("{} exists", path.display()),
        ));
    }
    if c.btrfs() {
        btrfs::subvolume_create(&path.to_string_lossy())
            .await
            .map_err(ApiError::from)?;
        if let Some(q) = quota
            && let Err(e) = set_quota(&c, &path, Some(q)).await
        {
            let _ = btrfs::subvolume_delete(&path.to_string_lossy()).await;
            return Err(e);
        }
    } else {
        std::fs::create_dir(&path).map_err(|e| {
            ApiError::conflict(
                "command_failed",
                format!("creating {}: {e}", path.display()),
            )
        })?;
    }
    let rec = registry::update(&state.store, &pool, |r| {
        r.datasets.insert(
            req.name.clone(),
            DatasetSettings {
                snapshot_retention: req.snapshot_retention,
                created_at: None,
            },
        );
    })?
    .unwrap_or(c.rec.clone());
    let c = Ctx { rec, mp: c.mp };
    let q = c.qgroups().await;
    let ds = view(&c, &q, &req.name);
    state.events.publish(
        "resource.created",
        &ds.href,
        &p.user,
        serde_json::to_value(&ds).unwrap_or_default(),
    );
    Ok(created(&ds.href, &ds))
}

/// Rename a dataset, set or remove its quota, change its snapshot retention.
#[utoipa::path(patch, path = "/api/v1/pools/{pool}/datasets/{dataset}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools", request_body = UpdateDatasetRequest,
    params(("pool" = String, Path, description = "Pool name"), ("dataset" = String, Path, description = "Dataset name")),
    responses((status = 200, description = "The dataset", body = Dataset)))]
async fn update_dataset(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((pool, ds)): Path<(String, String)>,
    Json(req): Json<UpdateDatasetRequest>,
) -> ApiResult<axum::Json<Dataset>> {
    check_retention(req.snapshot_retention, true)?;
    let quota = ops::size_field(req.quota.as_ref(), "quota")?;
    check_quota(quota)?;
    let c = ctx(&state, &pool)?;
    let mut path = c.require(&ds)?;
    let mut name = ds.clone();
    if let Some(q) = quota {
        set_quota(&c, &path, (q > 0).then_some(q)).await?;
    }
    if let Some(r) = req.snapshot_retention
        && !c.btrfs()
        && r > 0
    {
        return Err(ApiError::NotSupported {
            code: "snapshots_unsupported",
            detail: format!(
                "pool {:?} ({}) has no snapshots",
                c.rec.name,
                c.rec.kind.as_str()
            ),
        });
    }
    if let Some(new) = &req.name
        && new != &ds
    {
        check_name("dataset", new, "name")?;
        state
            .pool_users
            .refuse(&state, PoolOp::RenameDataset, &pool, Some(&ds))?;
        let to = c.path(new);
        if std::fs::symlink_metadata(&to).is_ok()
            || std::fs::symlink_metadata(c.snap_dir(new)).is_ok()
        {
            return Err(ApiError::conflict(
                "dataset_exists",
                format!("{} exists", to.display()),
            ));
        }
        std::fs::rename(&path, &to)
            .map_err(|e| ApiError::conflict("command_failed", format!("renaming: {e}")))?;
        let snaps = c.snap_dir(&ds);
        if snaps.exists()
            && let Err(e) = std::fs::rename(&snaps, c.snap_dir(new))
        {
            let _ = std::fs::rename(&to, &path);
            return Err(ApiError::conflict(
                "command_failed",
                format!("renaming the snapshot folder: {e}"),
            ));
        }
        path = to;
        name = new.clone();
    }
    let _ = path;
    let rec = registry::update(&state.store, &pool, |r| {
        let mut s = r.datasets.remove(&ds).unwrap_or_default();
        if let Some(n) = req.snapshot_retention {
            s.snapshot_retention = (n > 0).then_some(n);
        }
        r.datasets.insert(name.clone(), s);
    })?
    .unwrap_or(c.rec.clone());
    let c = Ctx { rec, mp: c.mp };
    let q = c.qgroups().await;
    let v = view(&c, &q, &name);
    if name != ds {
        state
            .pool_users
            .dataset_renamed(&state, &pool, &ds, &name)
            .await;
        state.events.publish(
            "resource.deleted",
            &href(&pool, &ds),
            &p.user,
            serde_json::json!({"renamed_to": v.href}),
        );
        state.events.publish(
            "resource.created",
            &v.href,
            &p.user,
            serde_json::to_value(&v).unwrap_or_default(),
        );
    } else {
        state.events.publish(
            "resource.updated",
            &v.href,
            &p.user,
            serde_json::to_value(&v).unwrap_or_default(),
        );
    }
    Ok(axum::Json(v))
}

/// `DELETE` options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteDatasetParams {
    /// Also delete the dataset's snapshots (otherwise a dataset with snapshots is 409).
    pub recursive: Option<bool>,
}

/// Delete a dataset and everything in it.
#[utoipa::path(delete, path = "/api/v1/pools/{pool}/datasets/{dataset}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("pools:write"))),
    tag = "pools",
    params(("pool" = String, Path, description = "Pool name"), ("dataset" = String, Path, description = "Dataset name"), DeleteDatasetParams),
    responses((status = 204, description = "Deleted")))]
async fn delete_dataset(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((pool, ds)): Path<(String, String)>,
    Query(q): Query<DeleteDatasetParams>,
) -> ApiResult<StatusCode> {
    let c = ctx(&state, &pool)?;
    let path = c.require(&ds)?;
    state
        .pool_users
        .refuse(&state, PoolOp::DeleteDataset, &pool, Some(&ds))?;
    if c.btrfs() {
        let snaps = super::snapshots::names(&c, &ds);
        if !snaps.is_empty() && !q.recursive.unwrap_or(false) {
            return Err(ApiError::conflict(
                "dataset_has_snapshots",
                format!(
                    "dataset {ds:?} has {} snapshot(s); pass recursive=true to delete them too",
                    snaps.len()
                ),
            ));
        }
        for s in &snaps {
            btrfs::subvolume_delete(&c.snap_dir(&ds).join(s).to_string_lossy())
                .await
                .map_err(ApiError::from)?;
        }
        let _ = std::fs::remove_dir(c.snap_dir(&ds));
        btrfs::subvolume_delete(&path.to_string_lossy())
            .await
            .map_err(ApiError::from)?;
    } else {
        // Never descend into something mounted inside the dataset.
        let mounts = hostplane_host::disks::mounts().map_err(ApiError::internal)?;
        if let Some(m) = mounts
            .iter()
            .find(|m| FsPath::new(&m.mount_point).starts_with(&path))
        {
            return Err(ApiError::conflict(
                "dataset_busy",
                format!("{} is mounted inside the dataset", m.mount_point),
            ));
        }
        let p2 = path.clone();
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(p2))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| {
                ApiError::conflict(
                    "command_failed",
                    format!("removing {}: {e}", path.display()),
                )
            })?;
    }
    registry::update(&state.store, &pool, |r| {
        r.datasets.remove(&ds);
    })?;
    state.events.publish(
        "resource.deleted",
        &href(&pool, &ds),
        &p.user,
        serde_json::json!({"pool": pool, "name": ds}),
    );
    Ok(StatusCode::NO_CONTENT)
}
