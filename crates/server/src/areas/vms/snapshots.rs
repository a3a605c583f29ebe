//! Snapshots: qcow2 internal snapshots on every disk of the VM, by name.
//!
//! Stopped VM: `qemu-img snapshot -c|-a|-d` on each disk. Running VM: HMP `savevm`, `loadvm`,
//! `delvm` over QMP, which also save and restore the guest's memory. Creating and reverting are
//! jobs (locked per VM); listing reads `qemu-img info -U` of the first disk.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hostplane_host::qemu::img::{self, SnapshotOp};
use hostplane_types::vms::{Snapshot, SnapshotCreate};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::lifecycle::qmp_error;
use super::model::{self, VmRecord};
use super::{all_qcow2, lock_key};
use crate::http::answer::accepted;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use super::VmsState;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_snapshots, create_snapshot))
        .routes(routes!(delete_snapshot))
        .routes(routes!(revert_snapshot))
}

const HMP_TIMEOUT: Duration = Duration::from_secs(600);

fn check_snapshottable(rec: &VmRecord) -> ApiResult<()> {
    if rec.def.disks.is_empty() || !all_qcow2(rec) {
        return Err(ApiError::conflict(
            "snapshot_unsupported",
            "snapshots need at least one disk and every disk in qcow2",
        ));
    }
    Ok(())
}

async fn snapshots_of(rec: &VmRecord) -> ApiResult<Vec<Snapshot>> {
    let Some(first) = rec.def.disks.first() else {
        return Ok(Vec::new());
    };
    if first.format.as_str() != "qcow2" {
        return Ok(Vec::new());
    }
    let info = img::info(Path::new(&first.path), Some("qcow2"))
        .await
        .map_err(ApiError::from)?;
    Ok(info
        .snapshots
        .into_iter()
        .map(|s| Snapshot {
            href: format!("/api/v1/vms/{}/snapshots/{}", rec.id, s.name),
            created_at: crate::platform::time::format(
                time::OffsetDateTime::from_unix_timestamp(s.date_sec as i64)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            ),
            vm_state_bytes: s.vm_state_size,
            name: s.name,
        })
        .collect())
}

/// List snapshots.
#[utoipa::path(get, path = "/api/v1/vms/{id}/snapshots",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"), CollectionParams),
    responses((status = 200, description = "Snapshots", body = [Snapshot])))]
async fn list_snapshots(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let rec = model::find(&state.store, &id)?;
    collection::respond(snapshots_of(&rec).await?, &params, &headers)
}

/// HMP answers errors as text; an empty answer is success.
fn hmp_ok(out: String) -> Result<(), JobFailure> {
    let t = out.trim();
    if t.is_empty() {
        Ok(())
    } else {
        Err(JobFailure::new("snapshot_failed", t.to_string()))
    }
}

async fn each_disk(rec: &VmRecord, op: SnapshotOp, name: &str) -> Result<(), JobFailure> {
    for d in &rec.def.disks {
        img::snapshot(Path::new(&d.path), op, name)
            .await
            .map_err(|e| JobFailure::command("snapshot_failed", e))?;
    }
    Ok(())
}

fn spawn_job<F, Fut>(
    state: &AppState,
    p_user: &str,
    kind: &'static str,
    rec: &VmRecord,
    work: F,
) -> ApiResult<Response>
where
    F: FnOnce(Arc<JobCtx>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<hostplane_types::jobs::VmSnapshotResult, JobFailure>>
        + Send
        + 'static,
{
    let job = state.jobs.spawn(
        JobSpec {
            kind,
            target: Some(format!("/api/v1/vms/{}", rec.id)),
            lock_key: Some(lock_key(&rec.id)),
            actor: p_user.to_string(),
        },
        work,
    )?;
    Ok(accepted(&job))
}

/// Take a snapshot (with the guest's memory when the VM runs). A job.
#[utoipa::path(post, path = "/api/v1/vms/{id}/snapshots",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    request_body = SnapshotCreate,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn create_snapshot(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(id): UrlPath<String>,
    Json(req): Json<SnapshotCreate>,
) -> ApiResult<Response> {
    hostplane_host::validate_name("snapshot", &req.name)
        .map_err(|e| ApiError::invalid_field("invalid_name", "name", e.to_string()))?;
    let rec = model::find(&state.store, &id)?;
    check_snapshottable(&rec)?;
    if snapshots_of(&rec).await?.iter().any(|s| s.name == req.name) {
        return Err(ApiError::conflict(
            "snapshot_exists",
            format!("snapshot {:?} exists", req.name),
        ));
    }
    let st = state.clone();
    let (vm_id, name, actor) = (rec.id.clone(), req.name.clone(), p.user.clone());
    spawn_job(
        &state,
        &p.user,
        "vms.snapshot",
        &rec,
        move |ctx| async move {
            let _g = st.vms().lock(&vm_id).await;
            let rec = model::find(&st.store, &vm_id)
                .map_err(|e| JobFailure::new("vm_gone", e.to_string()))?;
            match st.vms().runtime(&vm_id) {
                Some(rt) => {
                    ctx.log(format!("savevm {name} (disks and memory)"));
                    hmp_ok(
                        rt.qmp
                            .hmp(&format!("savevm {name}"), HMP_TIMEOUT)
                            .await
                            .map_err(|e| JobFailure::new("snapshot_failed", e.to_string()))?,
                    )?;
                }
                None => {
                    ctx.log(format!(
                        "qemu-img snapshot -c {name} on {} disks",
                        rec.def.disks.len()
                    ));
                    each_disk(&rec, SnapshotOp::Create, &name).await?;
                }
            }
            st.vms().publish(&vm_id, &actor);
            Ok(hostplane_types::jobs::VmSnapshotResult {
                href: Some(format!("/api/v1/vms/{vm_id}/snapshots/{name}")),
                name,
            })
        },
    )
}

/// Revert to a snapshot. A running VM can only revert to a snapshot taken while running
/// (one with memory); otherwise stop it first. A job.
#[utoipa::path(post, path = "/api/v1/vms/{id}/snapshots/{name}/revert",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"), ("name" = String, Path, description = "Snapshot")),
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn revert_snapshot(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath((id, name)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    let rec = model::find(&state.store, &id)?;
    let snap = snapshots_of(&rec)
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no snapshot {name:?}")))?;
    if state.vms().runtime(&rec.id).is_some() && snap.vm_state_bytes == 0 {
        return Err(ApiError::conflict(
            "vm_running",
            "this snapshot has no memory state; stop the VM to revert to it",
        ));
    }
    let st = state.clone();
    let (vm_id, actor) = (rec.id.clone(), p.user.clone());
    spawn_job(
        &state,
        &p.user,
        "vms.snapshot_revert",
        &rec,
        move |ctx| async move {
            let _g = st.vms().lock(&vm_id).await;
            let rec = model::find(&st.store, &vm_id)
                .map_err(|e| JobFailure::new("vm_gone", e.to_string()))?;
            match st.vms().runtime(&vm_id) {
                Some(rt) => {
                    ctx.log(format!("loadvm {name}"));
                    hmp_ok(
                        rt.qmp
                            .hmp(&format!("loadvm {name}"), HMP_TIMEOUT)
                            .await
                            .map_err(|e| JobFailure::new("snapshot_failed", e.to_string()))?,
                    )?;
                }
                None => each_disk(&rec, SnapshotOp::Apply, &name).await?,
            }
            st.vms().publish(&vm_id, &actor);
            Ok(hostplane_types::jobs::VmSnapshotResult { name, href: None })
        },
    )
}

/// Delete a snapshot.
#[utoipa::path(delete, path = "/api/v1/vms/{id}/snapshots/{name}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"), ("name" = String, Path, description = "Snapshot")),
    responses((status = 204, description = "Deleted")))]
async fn delete_snapshot(
    State(state): State<AppState>,
    UrlPath((id, name)): UrlPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let rec = model::find(&state.store, &id)?;
    let _g = state.vms().lock_req(&rec.id).await?;
    if !snapshots_of(&rec).await?.iter().any(|s| s.name == name) {
        return Err(ApiError::not_found(format!("no snapshot {name:?}")));
    }
    match state.vms().runtime(&rec.id) {
        Some(rt) => {
            let out = rt
                .qmp
                .hmp(&format!("delvm {name}"), HMP_TIMEOUT)
                .await
                .map_err(qmp_error)?;
            if !out.trim().is_empty() {
                return Err(ApiError::conflict(
                    "snapshot_failed",
                    out.trim().to_string(),
                ));
            }
        }
        None => {
            for d in &rec.def.disks {
                img::snapshot(Path::new(&d.path), SnapshotOp::Delete, &name)
                    .await
                    .map_err(ApiError::from)?;
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
