//! Devices of a VM: disks (add, remove, resize), NICs and CD-ROM drives.
//!
//! Flow of a change: the VM's lock → validate → change the files (a new image) → if the VM runs
//! and QEMU can hot-plug the device (virtio disks and NICs; SCSI disks when the VM has a SCSI
//! controller), do it over QMP (`blockdev-add` + `device_add`; removal `device_del`, wait for
//! `DEVICE_DELETED`, then `blockdev-del`/`netdev_del`) → store the definition → answer
//! [`VmChange`] with `applied: live` or `applied: next_boot` and the reason. Either way the
//! stored definition is what the VM boots with next time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hostplane_host::qemu::argv::{self, LaunchDisk, LaunchNic, NicBackend};
use hostplane_host::qemu::img;
use hostplane_types::vms::{
    Applied, CdromRequest, DiskBus, DiskFormat, DiskRequest, MachineType, NicMode, NicRequest,
    ResizeRequest, VmChange, VmDisk, VmNic,
};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::lifecycle::{Runtime, VmManager, bus_of, qmp_error};
use super::model::{self, HostLimits, VmRecord};
use super::storage::{self, Storage};
use super::{cdrom_entry, export};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::extract::{Json, Query};
use super::VmsState;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_disk))
        .routes(super::own_405(routes!(get_disk, remove_disk)))
        .routes(routes!(resize_disk))
        .routes(routes!(add_nic))
        .routes(routes!(remove_nic))
        .routes(routes!(add_cdrom))
        .routes(routes!(remove_cdrom))
}

/// A disk to create or take in place, checked.
pub enum Plan {
    New {
        size: u64,
        format: DiskFormat,
        bus: DiskBus,
    },
    Existing {
        path: PathBuf,
        format: DiskFormat,
        bus: DiskBus,
        size: u64,
    },
}

pub async fn plan_disk(
    mgr: &VmManager,
    limits: &HostLimits,
    field: &str,
    d: &DiskRequest,
) -> ApiResult<Plan> {
    let bus = d.bus.unwrap_or_default();
    match (&d.image, d.size_bytes) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::invalid_field(
            "invalid_disk",
            field,
            "give size_bytes (a new disk) or image (an existing one), not both",
        )),
        (None, Some(size)) => {
            limits.check_disk_size(&format!("{field}.size_bytes"), size)?;
            Ok(Plan::New {
                size,
                format: d.format.unwrap_or_default(),
                bus,
            })
        }
        (Some(image), None) => {
            let f = format!("{field}.image");
            let path = model::resolve_file(&f, image, &mgr.images_dir, &mgr.roots)?;
            if path.starts_with(mgr.templates_dir()) || path.starts_with(mgr.bases_dir()) {
                return Err(ApiError::invalid_field(
                    "path_not_allowed",
                    f,
                    "templates and bases are read-only; use template instead",
                ));
            }
            let pinned = d.format.map(|f| f.as_str());
            // Standalone only: a backing file, qcow2 data file or vmdk extent would make QEMU
            // (and an export) read a file nobody named.
            let info =
                super::intake::check_image(&path, pinned, mgr.max_disk_bytes, Some(&f)).await?;
            let format = model::disk_format_of(&info.format).ok_or_else(|| {
                ApiError::invalid_field(
                    "invalid_image",
                    &f,
                    format!(
                        "{} is {}; import it (POST .../disks?qcow2|raw|vhd)",
                        path.display(),
                        info.format
                    ),
                )
            })?;
            Ok(Plan::Existing {
                path,
                format,
                bus,
                size: info.virtual_size,
            })
        }
    }
}

/// Creates the planned disk in `dir` as disk number `index`.
pub async fn materialize(dir: &Path, index: u32, plan: Plan) -> ApiResult<VmDisk> {
    match plan {
        Plan::New { size, format, bus } => {
            let path = dir.join(format!("disk{index}.{}", format.as_str()));
            img::create(&path, format.as_str(), Some(size), None)
                .await
                .map_err(ApiError::from)?;
            Ok(model::disk_entry(
                index, &path, format, bus, size, None, true,
            ))
        }
        Plan::Existing {
            path,
            format,
            bus,
            size,
        } => Ok(model::disk_entry(
            index, &path, format, bus, size, None, false,
        )),
    }
}

fn launch_disk(d: &VmDisk) -> LaunchDisk {
    LaunchDisk {
        index: d.index,
        path: PathBuf::from(&d.path),
        format: d.format.as_str(),
        bus: bus_of(d.bus),
        bootindex: None,
        read_only: false,
    }
}

/// Hot-plugs `d` into the running VM; Err(reason) when QEMU cannot.
pub async fn hotplug_disk(rt: &Runtime, machine: MachineType, d: &VmDisk) -> Result<(), String> {
    let launched = rt.launched();
    match d.bus {
        DiskBus::Sata => return Err("SATA (AHCI) disks cannot be hot-plugged".into()),
        DiskBus::Scsi if !launched.disks.iter().any(|x| x.bus == DiskBus::Scsi) => {
            return Err(
                "the running VM has no SCSI controller (it had no SCSI disk at start)".into(),
            );
        }
        _ => {}
    }
    let ld = launch_disk(d);
    let dev = argv::disk_dev(d.index);
    let port = if machine == MachineType::Q35 && d.bus == DiskBus::Virtio {
        Some(
            rt.take_port(&dev)
                .ok_or("all hot-plug ports of the VM are in use")?,
        )
    } else {
        None
    };
    let fail = |e: String| {
        rt.release_port(&dev);
        e
    };
    rt.qmp
        .execute("blockdev-add", Some(argv::disk_blockdev(&ld)))
        .await
        .map_err(|e| fail(e.to_string()))?;
    if let Err(e) = rt
        .qmp
        .execute("device_add", Some(argv::disk_device(&ld, port.as_deref())))
        .await
    {
        let _ = rt
            .qmp
            .execute(
                "blockdev-del",
                Some(json!({"node-name": argv::disk_node(d.index)})),
            )
            .await;
        return Err(fail(e.to_string()));
    }
    let d = d.clone();
    rt.update_launched(|l| l.disks.push(d));
    Ok(())
}

/// `device_del` and wait for the guest to let go (`DEVICE_DELETED`).
async fn unplug(rt: &Runtime, dev: &str) -> Result<(), String> {
    let mut events = rt.events.subscribe();
    rt.qmp
        .execute("device_del", Some(json!({"id": dev})))
        .await
        .map_err(|e| e.to_string())?;
    let wait = async {
        loop {
            match events.recv().await {
                Ok(ev) if ev.name == "DEVICE_DELETED" && ev.data["device"] == dev => return true,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return false,
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(15), wait).await {
        Ok(true) => {
            rt.release_port(dev);
            Ok(())
        }
        _ => Err("the guest did not release the device within 15 s".into()),
    }
}

fn change(
    state: &AppState,
    rec: &VmRecord,
    applied: Applied,
    reason: Option<String>,
    actor: &str,
) -> VmChange {
    state.vms().publish(&rec.id, actor);
    VmChange {
        applied,
        reason,
        vm: state.vms().view(rec),
    }
}

fn find_disk<'a>(rec: &'a VmRecord, n: &str) -> ApiResult<&'a VmDisk> {
    let idx: u32 = n
        .parse()
        .map_err(|_| ApiError::not_found(format!("no disk {n:?}")))?;
    rec.def
        .disks
        .iter()
        .find(|d| d.index == idx)
        .ok_or_else(|| ApiError::not_found(format!("no disk {idx} in this VM")))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiskAddParams {
    /// Present: import the body (not JSON) as a new disk, an image of this format (stored as
    /// qcow2). The bare flags `?raw`, `?qcow2` or `?vhd` (Xen Orchestra's style) mean the same.
    #[param(pattern = "^(raw|qcow2|vhd)$")]
    pub format: Option<String>,
    /// Flag (`?raw`, no value): the same as `format=raw`. Give one format only.
    #[param(max_length = 0)]
    pub raw: Option<String>,
    /// Flag (`?qcow2`): the same as `format=qcow2`.
    #[param(max_length = 0)]
    pub qcow2: Option<String>,
    /// Flag (`?vhd`): the same as `format=vhd`.
    #[param(max_length = 0)]
    pub vhd: Option<String>,
    /// Import: the body is zstd-compressed (also `Content-Encoding: zstd`).
    #[param(pattern = "^(zstd|none)?$")]
    pub compress: Option<String>,
    /// Import: bus of the new disk (default virtio).
    pub bus: Option<DiskBus>,
    /// Import: where the new disk's file goes, `images` or `<pool>/<dataset>` (default `[vms]
    /// default_storage`).
    #[param(pattern = "^(images|[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?/[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?)$", max_length = 129)]
    pub storage: Option<String>,
}

impl DiskAddParams {
    /// The qemu-img format of an import, if this is one: `format=` or exactly one bare flag.
    pub fn import_format(&self) -> ApiResult<Option<&'static str>> {
        let mut chosen: Vec<&'static str> = [
            ("raw", self.raw.is_some()),
            ("qcow2", self.qcow2.is_some()),
            ("vpc", self.vhd.is_some()),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| *f)
        .collect();
        if let Some(f) = &self.format {
            chosen.push(match f.as_str() {
                "raw" => "raw",
                "qcow2" => "qcow2",
                "vhd" => "vpc",
                _ => {
                    return Err(ApiError::invalid_field(
                        "invalid_format",
                        "format",
                        format!("{f:?}: format is raw, qcow2 or vhd"),
                    ));
                }
            });
        }
        chosen.dedup();
        match chosen.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(ApiError::invalid_field(
                "invalid_format",
                "format",
                "give one image format (format=, or one of ?raw, ?qcow2, ?vhd)",
            )),
        }
    }
}

/// Add a disk (JSON body: new or existing image), hot-plugged when the VM runs and QEMU can;
/// or, with `?format=raw|qcow2|vhd` (or a bare `?raw|qcow2|vhd`), import the uploaded image as a new disk (a job with progress).
#[utoipa::path(post, path = "/api/v1/vms/{id}/disks",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"), DiskAddParams),
    request_body(content((DiskRequest = "application/json"), (Vec<u8> = "application/octet-stream")),
        description = "A disk to add (JSON), or with ?format= an image to import (not JSON)"),
    responses((status = 200, description = "Added; `applied` says live or next_boot", body = VmChange),
        (status = 202, description = "Import started; follow the job", body = hostplane_types::jobs::Job)))]
async fn add_disk(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<DiskAddParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let json = super::json_content(&headers);
    let import = match q.import_format() {
        Ok(f) => f.is_some(),
        Err(e) => return super::refuse(body, e).await,
    };
    if import {
        if json != Some(false) {
            let msg = "with ?format= (or ?raw|qcow2|vhd) the body is a disk image, not JSON";
            return super::refuse(body, ApiError::UnsupportedMediaType(msg.into())).await;
        }
        // Checks that fail before the upload is read: read it anyway (see `refuse`).
        let compress = export::ExportParams {
            compress: q.compress.clone(),
        };
        if let Err(e) = export::want_zstd(&compress).and(model::find(&state.store, &id)) {
            return super::refuse(body, e).await;
        }
        return export::import_disk(state, p, id, q, headers, body).await;
    }
    if let Err(e) = export::want_zstd(&export::ExportParams {
        compress: q.compress.clone(),
    }) {
        return super::refuse(body, e).await;
    }
    // `?storage=` is checked in both modes; for a JSON disk it is the default of the body's.
    if let Some(s) = &q.storage
        && let Err(e) = Storage::chosen(&state, "storage", Some(s))
    {
        return super::refuse(body, e).await;
    }
    if json == Some(false) {
        let msg =
            "expected a JSON disk (Content-Type: application/json), or ?format= with an image";
        return super::refuse(body, ApiError::UnsupportedMediaType(msg.into())).await;
    }
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|e| ApiError::PayloadTooLarge(e.to_string()))?;
    let req: DiskRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("invalid_body", format!("invalid disk: {e}")))?;
    let (_g, rec) = state.vms().find_locked(&state.store, &id).await?;
    if rec.def.disks.len() >= model::MAX_DISKS {
        return Err(ApiError::conflict(
            "too_many_disks",
            format!("at most {} disks", model::MAX_DISKS),
        ));
    }
    let plan = plan_disk(state.vms(), &state.vms().limits(), "disk", &req).await?;
    let dir = match plan {
        Plan::New { .. } => {
            let wanted = req.storage.as_deref().or(q.storage.as_deref());
            let at = Storage::chosen(&state, "storage", wanted)?;
            storage::disk_dir(&state, "storage", &at, &rec.id)?
        }
        Plan::Existing { .. } => state.vms().vm_dir(&rec.id),
    };
    let index = rec
        .def
        .next
        .disk
        .max(rec.def.disks.iter().map(|d| d.index + 1).max().unwrap_or(0));
    let disk = materialize(&dir, index, plan).await?;
    let (applied, reason) = attach_disk_now(&state, &rec, &disk).await;
    let mut def = rec.def.clone();
    def.disks.push(disk);
    def.next.disk = index + 1;
    let rec = model::save_def(&state.store, &rec.id, &def)?;
    Ok(axum::Json(change(&state, &rec, applied, reason, &p.user)).into_response())
}

/// Hot-plugs a new disk when the VM runs; says where the change applies.
pub async fn attach_disk_now(
    state: &AppState,
    rec: &VmRecord,
    disk: &VmDisk,
) -> (Applied, Option<String>) {
    match state.vms().runtime(&rec.id) {
        None => (Applied::NextBoot, Some("the VM is not running".into())),
        Some(rt) => match hotplug_disk(&rt, rec.def.machine, disk).await {
            Ok(()) => (Applied::Live, None),
            Err(reason) => (Applied::NextBoot, Some(reason)),
        },
    }
}

/// One disk of a VM. With an extension (`/disks/0.raw`, `.qcow2`, `.vhd`) the disk is exported
/// instead: see the export operation.
#[utoipa::path(get, path = "/api/v1/vms/{id}/disks/{n}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"),
        ("n" = String, Path, pattern = "^[0-9]{1,3}(\\.(raw|qcow2|vhd))?$",
            description = "Disk number; with an extension the disk is exported (see the export operation)"),
        export::ExportParams),
    responses((status = 200, description = "The disk", body = VmDisk)))]
async fn get_disk(
    State(state): State<AppState>,
    UrlPath((id, n)): UrlPath<(String, String)>,
    Query(q): Query<export::ExportParams>,
) -> ApiResult<Response> {
    if let Some((num, ext)) = n.split_once('.') {
        return export::export_disk(state, id, num.to_string(), ext.to_string(), q).await;
    }
    export::want_zstd(&q)?; // documented (for exports): a bad value is refused here too
    let rec = model::find(&state.store, &id)?;
    Ok(axum::Json(state.vms().disk_view(find_disk(&rec, &n)?)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RemoveDiskParams {
    /// Also delete the image file (only files hostplane created).
    #[serde(default)]
    delete_file: Option<bool>,
}

/// Remove a disk: unplugged live when the VM runs and QEMU can, else at next boot.
#[utoipa::path(delete, path = "/api/v1/vms/{id}/disks/{n}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"),
        ("n" = String, Path, pattern = "^[0-9]{1,3}$", description = "Disk number"), RemoveDiskParams),
    responses((status = 200, description = "Removed; `applied` says live or next_boot", body = VmChange)))]
async fn remove_disk(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath((id, n)): UrlPath<(String, String)>,
    Query(q): Query<RemoveDiskParams>,
) -> ApiResult<axum::Json<VmChange>> {
    let (_g, rec) = state.vms().find_locked(&state.store, &id).await?;
    let disk = find_disk(&rec, &n)?.clone();
    let (applied, reason) = match state.vms().runtime(&rec.id) {
        None => (Applied::NextBoot, Some("the VM is not running".to_string())),
        Some(rt) if !rt.launched().disks.iter().any(|d| d.index == disk.index) => {
            (Applied::Live, None)
        }
        Some(_) if disk.bus == DiskBus::Sata => (
            Applied::NextBoot,
            Some("SATA (AHCI) disks cannot be unplugged".to_string()),
        ),
        Some(rt) => match unplug(&rt, &argv::disk_dev(disk.index)).await {
            Ok(()) => {
                let _ = rt
                    .qmp
                    .execute(
                        "blockdev-del",
                        Some(json!({"node-name": argv::disk_node(disk.index)})),
                    )
                    .await;
                rt.update_launched(|l| l.disks.retain(|d| d.index != disk.index));
                (Applied::Live, None)
            }
            Err(r) => (Applied::NextBoot, Some(r)),
        },
    };
    if q.delete_file.unwrap_or(false) && disk.owned {
        if applied == Applied::NextBoot && state.vms().runtime(&rec.id).is_some() {
            return Err(ApiError::conflict(
                "disk_in_use",
                "the running VM still uses the disk; remove it without delete_file or stop the VM",
            ));
        }
        let _ = std::fs::remove_file(&disk.path);
    }
    let mut def = rec.def.clone();
    def.disks.retain(|d| d.index != disk.index);
    let rec = model::save_def(&state.store, &rec.id, &def)?;
    Ok(axum::Json(change(&state, &rec, applied, reason, &p.user)))
}

/// Grow a disk (online with QMP `block_resize` while running, else `qemu-img resize`).
#[utoipa::path(post, path = "/api/v1/vms/{id}/disks/{n}/resize",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"),
        ("n" = String, Path, description = "Disk number")),
    request_body = ResizeRequest,
    responses((status = 200, description = "Resized", body = VmChange)))]
async fn resize_disk(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath((id, n)): UrlPath<(String, String)>,
    Json(req): Json<ResizeRequest>,
) -> ApiResult<axum::Json<VmChange>> {
    let (_g, rec) = state.vms().find_locked(&state.store, &id).await?;
    let disk = find_disk(&rec, &n)?.clone();
    state
        .vms()
        .limits()
        .check_disk_size("size_bytes", req.size_bytes)?;
    let current = img::info(Path::new(&disk.path), Some(disk.format.as_str()))
        .await
        .map_err(ApiError::from)?
        .virtual_size;
    if req.size_bytes < current {
        return Err(ApiError::invalid_field(
            "invalid_size",
            "size_bytes",
            format!("disks only grow: the disk has {current} bytes"),
        ));
    }
    let rt = state
        .vms()
        .runtime(&rec.id)
        .filter(|rt| rt.launched().disks.iter().any(|d| d.index == disk.index));
    match rt {
        Some(rt) => {
            rt.qmp
                .execute(
                    "block_resize",
                    Some(json!({"node-name": argv::disk_node(disk.index), "size": req.size_bytes})),
                )
                .await
                .map_err(qmp_error)?;
        }
        None => img::resize(Path::new(&disk.path), disk.format.as_str(), req.size_bytes)
            .await
            .map_err(ApiError::from)?,
    }
    let live = state.vms().runtime(&rec.id).is_some();
    let mut def = rec.def.clone();
    if let Some(d) = def.disks.iter_mut().find(|d| d.index == disk.index) {
        d.size_bytes = req.size_bytes;
    }
    let rec = model::save_def(&state.store, &rec.id, &def)?;
    Ok(axum::Json(change(
        &state,
        &rec,
        if live {
            Applied::Live
        } else {
            Applied::NextBoot
        },
        None,
        &p.user,
    )))
}

fn launch_nic(n: &VmNic, helper: PathBuf) -> LaunchNic {
    LaunchNic {
        host_forwards: super::lifecycle::host_forwards(n),
        index: n.index,
        backend: match (n.mode, &n.bridge) {
            (NicMode::Bridge, Some(b)) => NicBackend::Bridge {
                bridge: b.clone(),
                helper,
            },
            _ => NicBackend::User,
        },
        mac: n.mac.clone(),
        model: model::nic_model_name(n.model),
        bootindex: None,
        romfile: String::new(),
    }
}

/// Add a NIC, hot-plugged when the VM runs.
#[utoipa::path(post, path = "/api/v1/vms/{id}/nics",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    request_body = NicRequest,
    responses((status = 200, description = "Added; `applied` says live or next_boot", body = VmChange)))]
async fn add_nic(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(id): UrlPath<String>,
    Json(req): Json<NicRequest>,
) -> ApiResult<axum::Json<VmChange>> {
    let (_g, rec) = state.vms().find_locked(&state.store, &id).await?;
    if rec.def.nics.len() >= model::MAX_NICS {
        return Err(ApiError::conflict(
            "too_many_nics",
            format!("at most {} NICs", model::MAX_NICS),
        ));
    }
    let index = rec
        .def
        .next
        .nic
        .max(rec.def.nics.iter().map(|n| n.index + 1).max().unwrap_or(0));
    let nic = model::check_nic("nic", &req, index)?;
    model::check_forward_duplicates(
        "nic.port_forwards",
        rec.def
            .nics
            .iter()
            .chain([&nic])
            .flat_map(|n| &n.port_forwards),
    )?;
    if state.vms().runtime(&rec.id).is_some() {
        model::check_host_ports(nic.port_forwards.iter())?;
    }
    let (applied, reason) = match state.vms().runtime(&rec.id) {
        None => (Applied::NextBoot, Some("the VM is not running".to_string())),
        Some(rt) => match hotplug_nic(&rt, rec.def.machine, &nic, state.vms().bridge_helper()?).await {
            Ok(()) => (Applied::Live, None),
            Err(r) => (Applied::NextBoot, Some(r)),
        },
    };
    let mut def = rec.def.clone();
    def.nics.push(nic);
    def.next.nic = index + 1;
    let rec = model::save_def(&state.store, &rec.id, &def)?;
    Ok(axum::Json(change(&state, &rec, applied, reason, &p.user)))
}

async fn hotplug_nic(
    rt: &Arc<Runtime>,
    machine: MachineType,
    n: &VmNic,
    helper: PathBuf,
) -> Result<(), String> {
    if let (NicMode::Bridge, Some(br)) = (n.mode, &n.bridge)
        && !Path::new("/sys/class/net").join(br).join("bridge").exists()
    {
        return Err(format!("host bridge {br:?} does not exist"));
    }
    let ln = launch_nic(n, helper);
    let dev = argv::net_dev(n.index);
    let port = if machine == MachineType::Q35 {
        Some(
            rt.take_port(&dev)
                .ok_or("all hot-plug ports of the VM are in use")?,
        )
    } else {
        None
    };
    rt.qmp
        .execute("netdev_add", Some(argv::netdev_qmp(&ln)))
        .await
        .map_err(|e| {
            rt.release_port(&dev);
            e.to_string()
        })?;
    if let Err(e) = rt
        .qmp
        .execute("device_add", Some(argv::nic_device(&ln, port.as_deref())))
        .await
    {
        let _ = rt
            .qmp
            .execute("netdev_del", Some(json!({"id": argv::net_id(n.index)})))
            .await;
        rt.release_port(&dev);
        return Err(e.to_string());
    }
    let n = n.clone();
    rt.update_launched(|l| l.nics.push(n));
    Ok(())
}

/// Remove a NIC, unplugged live when the VM runs.
#[utoipa::path(delete, path = "/api/v1/vms/{id}/nics/{n}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"), ("n" = u32, Path, description = "NIC number")),
    responses((status = 200, description = "Removed; `applied` says live or next_boot", body = VmChange)))]
async fn remove_nic(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath((id, n)): UrlPath<(String, u32)>,
) -> ApiResult<axum::Json<VmChange>> {
    let (_g, rec) = state.vms().find_locked(&state.store, &id).await?;
    if !rec.def.nics.iter().any(|x| x.index == n) {
        return Err(ApiError::not_found(format!("no NIC {n} in this VM")));
    }
    let (applied, reason) = match state.vms().runtime(&rec.id) {
        None => (Applied::NextBoot, Some("the VM is not running".to_string())),
        Some(rt) if !rt.launched().nics.iter().any(|x| x.index == n) => (Applied::Live, None),
        Some(rt) => match unplug(&rt, &argv::net_dev(n)).await {
            Ok(()) => {
                let _ = rt
                    .qmp
                    .execute("netdev_del", Some(json!({"id": argv::net_id(n)})))
                    .await;
                rt.update_launched(|l| l.nics.retain(|x| x.index != n));
                (Applied::Live, None)
            }
            Err(r) => (Applied::NextBoot, Some(r)),
        },
    };
    let mut def = rec.def.clone();
    def.nics.retain(|x| x.index != n);
    let rec = model::save_def(&state.store, &rec.id, &def)?;
    Ok(axum::Json(change(&state, &rec, applied, reason, &p.user)))
}

const CD_NOT_HOTPLUG: &str = "CD-ROM drives sit on AHCI, which QEMU cannot hot-plug";

/// Add a CD-ROM drive (with an ISO or empty). Applies at next boot (AHCI is not hot-pluggable).
#[utoipa::path(post, path = "/api/v1/vms/{id}/cdroms",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    request_body = CdromRequest,
    responses((status = 200, description = "Added (`applied: next_boot` while running)", body = VmChange)))]
async fn add_cdrom(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(id): UrlPath<String>,
    Json(req): Json<CdromRequest>,
) -> ApiResult<axum::Json<VmChange>> {
    let (_g, rec) = state.vms().find_locked(&state.store, &id).await?;
    if rec.def.cdroms.len() >= model::MAX_CDROMS {
        return Err(ApiError::conflict(
            "too_many_cdroms",
            format!("at most {} CD-ROM drives", model::MAX_CDROMS),
        ));
    }
    let index = rec.def.next.cdrom.max(
        rec.def
            .cdroms
            .iter()
            .map(|c| c.index + 1)
            .max()
            .unwrap_or(0),
    );
    let cd = cdrom_entry(state.vms(), "cdrom", &req, index)?;
    let reason = if state.vms().runtime(&rec.id).is_some() {
        CD_NOT_HOTPLUG
    } else {
        "the VM is not running"
    };
    let mut def = rec.def.clone();
    def.cdroms.push(cd);
    def.next.cdrom = index + 1;
    let rec = model::save_def(&state.store, &rec.id, &def)?;
    Ok(axum::Json(change(
        &state,
        &rec,
        Applied::NextBoot,
        Some(reason.into()),
        &p.user,
    )))
}

/// Remove a CD-ROM drive (next boot; the cloud-init seed is deleted with its drive).
#[utoipa::path(delete, path = "/api/v1/vms/{id}/cdroms/{n}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"), ("n" = u32, Path, description = "CD-ROM number")),
    responses((status = 200, description = "Removed (`applied: next_boot` while running)", body = VmChange)))]
async fn remove_cdrom(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath((id, n)): UrlPath<(String, u32)>,
) -> ApiResult<axum::Json<VmChange>> {
    let (_g, rec) = state.vms().find_locked(&state.store, &id).await?;
    let cd = rec
        .def
        .cdroms
        .iter()
        .find(|c| c.index == n)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no CD-ROM {n} in this VM")))?;
    let running = state.vms().runtime(&rec.id).is_some();
    if cd.cloud_init
        && !running
        && let Some(iso) = &cd.iso
    {
        let _ = std::fs::remove_file(iso);
    }
    let mut def = rec.def.clone();
    def.cdroms.retain(|c| c.index != n);
    let rec = model::save_def(&state.store, &rec.id, &def)?;
    let reason = if running {
        CD_NOT_HOTPLUG
    } else {
        "the VM is not running"
    };
    Ok(axum::Json(change(
        &state,
        &rec,
        Applied::NextBoot,
        Some(reason.into()),
        &p.user,
    )))
}

/// The host tap device of NIC `index`, from HMP `info network` (`net0: index=0,type=tap,ifname=tap3,...`).
pub fn tap_name(info_network: &str, index: u32) -> Option<String> {
    let prefix = format!("{}: ", argv::net_id(index));
    info_network
        .lines()
        .map(|l| l.trim_start_matches([' ', '\\']))
        .find_map(|l| {
            let rest = l.trim().strip_prefix(&prefix)?;
            rest.split(',')
                .find_map(|kv| kv.strip_prefix("ifname="))
                .map(str::to_string)
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tap_names_from_info_network() {
        // Real output (user-mode NIC), plus a tap line as QEMU prints it.
        let user = "net0-dev: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\r\n \\ net0: index=0,type=user,net=10.0.2.0,restrict=off\r\n";
        assert_eq!(super::tap_name(user, 0), None);
        let tap = "net1-dev: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:57\r\n \\ net1: index=0,type=tap,ifname=tap7,script=no,downscript=no\r\n";
        assert_eq!(super::tap_name(tap, 1).as_deref(), Some("tap7"));
        assert_eq!(super::tap_name(tap, 0), None);
    }
}
