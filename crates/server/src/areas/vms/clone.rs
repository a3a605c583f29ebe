//! Clones (ZoneweaverAPI's two strategies), as a job locked on the source VM, which must be
//! stopped:
//!
//! * `full`: every disk copied with `qemu-img convert` (backing chains flattened, sparse).
//! * `thin`: every disk becomes a read-only base in `images_dir/bases/`, and both the source
//!   and the clone get a fresh qcow2 overlay on it, so neither changes what the other sees.
//!   Bases nobody uses any more are deleted with the last VM that used them.
//!
//! The clone gets new MAC addresses; a cloud-init seed is copied (same user data).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use hostplane_host::qemu::img;
use hostplane_types::vms::{CloneRequest, CloneStrategy, DiskFormat, VmDisk};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::lifecycle::VmManager;
use super::lock_key;
use super::model::{self, VmRecord};
use super::storage::{self, Storage};
use crate::http::answer::accepted;
use crate::error::ApiResult;
use crate::http::caller::Caller;
use crate::http::extract::Json;
use crate::platform::jobs::{JobFailure, JobSpec};
use super::VmsState;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(clone_vm))
}

/// Clone a stopped VM (`full` copy or `thin` overlays). A job; its result is the new VM.
#[utoipa::path(post, path = "/api/v1/vms/{id}/clone",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    request_body = CloneRequest,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn clone_vm(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(id): UrlPath<String>,
    Json(req): Json<CloneRequest>,
) -> ApiResult<Response> {
    model::check_name("name", &req.name)?;
    let rec = model::find(&state.store, &id)?;
    state.vms().require_stopped(&rec.id)?;
    if model::load(&state.store, &req.name)?.is_some() {
        return Err(crate::error::ApiError::conflict(
            "vm_exists",
            format!("a VM named {:?} exists", req.name),
        ));
    }
    if req.strategy == CloneStrategy::Thin && rec.def.disks.iter().any(|d| !d.owned) {
        return Err(crate::error::ApiError::conflict(
            "thin_clone_unsupported",
            "a thin clone needs disks hostplane owns (not images used in place)",
        ));
    }
    let at = Storage::chosen(&state, "storage", req.storage.as_deref())?;
    // Bases are in the images directory, and a disk becomes one by a rename: a thin clone
    // keeps both VMs' disks there.
    let images = &state.vms().images_dir;
    if req.strategy == CloneStrategy::Thin
        && (at != Storage::Images || rec.def.disks.iter().any(|d| !Path::new(&d.path).starts_with(images)))
    {
        return Err(crate::error::ApiError::conflict(
            "thin_clone_unsupported",
            "a thin clone keeps its disks in the images directory: the source's disks must be \
             there and storage must be images (or make a full clone)",
        ));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let disk_dir = storage::dir_for(&state, "storage", &at, &id)?;
    let st = state.clone();
    let (src_id, actor) = (rec.id.clone(), p.user.clone());
    let job = state.jobs.spawn(
        JobSpec {
            kind: "vms.clone",
            target: Some(format!("/api/v1/vms/{}", rec.id)),
            lock_key: Some(lock_key(&rec.id)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _g = st.vms().lock(&src_id).await;
            st.vms()
                .require_stopped(&src_id)
                .map_err(|e| JobFailure::new("vm_running", e.to_string()))?;
            let src = model::find(&st.store, &src_id)
                .map_err(|e| JobFailure::new("vm_gone", e.to_string()))?;
            ctx.log(format!(
                "{:?} clone of {} as {}",
                req.strategy, src.name, req.name
            ));
            let rec = clone(&st, &src, &req.name, req.strategy, &id, &disk_dir)
                .await
                .map_err(|e| JobFailure::new("clone_failed", e))?;
            let vm = st.vms().view(&rec);
            st.events.publish(
                "resource.created",
                &vm.href,
                &actor,
                serde_json::to_value(&vm).unwrap_or_default(),
            );
            st.vms().publish(&src_id, &actor);
            Ok(vm)
        },
    )?;
    Ok(accepted(&job))
}

fn io(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Moves `disk` into a read-only base and puts a qcow2 overlay in its place. Returns the base.
async fn rebase_in_place(mgr: &VmManager, disk: &mut VmDisk) -> Result<PathBuf, String> {
    let bases = mgr.bases_dir();
    std::fs::create_dir_all(&bases).map_err(io)?;
    let base = bases.join(format!("{}.{}", uuid::Uuid::now_v7(), disk.format.as_str()));
    let path = PathBuf::from(&disk.path);
    std::fs::rename(&path, &base).map_err(io)?;
    let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o444));
    if let Err(e) = img::create(&path, "qcow2", None, Some((&base, disk.format.as_str()))).await {
        let _ = std::fs::rename(&base, &path);
        return Err(e.to_string());
    }
    disk.format = DiskFormat::Qcow2;
    disk.backing = Some(base.to_string_lossy().into_owned());
    Ok(base)
}

pub async fn clone(
    state: &AppState,
    src: &VmRecord,
    name: &str,
    strategy: CloneStrategy,
    id: &str,
    disk_dir: &Path,
) -> Result<VmRecord, String> {
    let mgr = state.vms();
    let dir = mgr.vm_dir(id);
    std::fs::create_dir_all(&dir).map_err(io)?;
    std::fs::create_dir_all(disk_dir).map_err(io)?;
    let result = async {
        let mut src_def = src.def.clone();
        let mut def = src.def.clone();
        def.disks.clear();
        for sd in src_def.disks.iter_mut() {
            let nd = match strategy {
                CloneStrategy::Full => {
                    // An image used in place may have changed since it was checked: copying
                    // it must not pull in a file it references (data file, backing file).
                    if !sd.owned {
                        img::info_standalone(Path::new(&sd.path), Some(sd.format.as_str()))
                            .await
                            .map_err(|e| format!("disk {}: {e}", sd.index))?;
                    }
                    let dest =
                        disk_dir.join(format!("disk{}.{}", sd.index, sd.format.as_str()));
                    img::copy_flat(
                        Path::new(&sd.path),
                        sd.format.as_str(),
                        &dest,
                        sd.format.as_str(),
                    )
                    .await
                    .map_err(io)?;
                    model::disk_entry(
                        sd.index,
                        &dest,
                        sd.format,
                        sd.bus,
                        sd.size_bytes,
                        None,
                        true,
                    )
                }
                CloneStrategy::Thin => {
                    let base = rebase_in_place(mgr, sd).await?;
                    let dest = dir.join(format!("disk{}.qcow2", sd.index));
                    let base_fmt = Path::new(&base)
                        .extension()
                        .and_then(|e| e.to_str())
                        .unwrap_or("qcow2")
                        .to_string();
                    img::create(&dest, "qcow2", None, Some((&base, &base_fmt)))
                        .await
                        .map_err(io)?;
                    model::disk_entry(
                        sd.index,
                        &dest,
                        DiskFormat::Qcow2,
                        sd.bus,
                        sd.size_bytes,
                        Some(base.to_string_lossy().into_owned()),
                        true,
                    )
                }
            };
            def.disks.push(nd);
        }
        for c in def.cdroms.iter_mut().filter(|c| c.cloud_init) {
            if let Some(iso) = &c.iso {
                let dest = dir.join("seed.iso");
                std::fs::copy(iso, &dest).map_err(io)?;
                c.iso = Some(dest.to_string_lossy().into_owned());
            }
        }
        for n in def.nics.iter_mut() {
            n.mac = model::random_mac();
            // A host port is bound by one VM at a time: the clone gets none.
            n.port_forwards.clear();
        }
        def.autostart = false;
        if strategy == CloneStrategy::Thin {
            model::save_def(&state.store, &src.id, &src_def).map_err(io)?;
        }
        let now = crate::platform::time::now_string();
        let rec = VmRecord {
            id: id.to_string(),
            name: name.to_string(),
            def,
            created_at: now.clone(),
            updated_at: now,
        };
        model::insert(&state.store, &rec).map_err(io)?;
        Ok(rec)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
        // A directory on a dataset named by the new id: only this clone's files are in it.
        let _ = std::fs::remove_dir_all(disk_dir);
    }
    result
}

/// Deletes bases no disk (of any VM) is backed by any more.
pub fn prune_bases(mgr: &VmManager) {
    let Ok(records) = model::load_all(&mgr.store) else {
        return;
    };
    let mut used: Vec<String> = records
        .iter()
        .flat_map(|r| r.def.disks.iter().filter_map(|d| d.backing.clone()))
        .collect();
    // A base may itself be an overlay (a thin clone of a thin clone): keep its chain.
    let mut i = 0;
    while i < used.len() {
        if let Some(b) = qcow2_backing(Path::new(&used[i]))
            && !used.contains(&b)
        {
            used.push(b);
        }
        i += 1;
    }
    for entry in std::fs::read_dir(mgr.bases_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = entry.path().to_string_lossy().into_owned();
        if !used.contains(&p) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The backing file named in a qcow2 header (offset at byte 8, length at 16).
pub fn qcow2_backing(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = [0u8; 20];
    f.read_exact(&mut h).ok()?;
    if &h[..4] != b"QFI\xfb" {
        return None;
    }
    let off = u64::from_be_bytes(h[8..16].try_into().ok()?);
    let len = u32::from_be_bytes(h[16..20].try_into().ok()?) as usize;
    if off == 0 || len == 0 || len > 4096 {
        return None;
    }
    f.seek(SeekFrom::Start(off)).ok()?;
    let mut name = vec![0u8; len];
    f.read_exact(&mut name).ok()?;
    String::from_utf8(name).ok()
}
