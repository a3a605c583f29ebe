//! `/api/v1/vms`: virtual machines that hostplane runs itself with QEMU and drives over QMP.
//!
//! Request flow: auth layer (operator for changes; a console WebSocket may carry a ticket
//! instead, see `platform::tickets`) → a handler here → [`model`] (stored definition, validation:
//! limits against the host, paths inside the images directory or `vms.allowed_paths`) →
//! [`lifecycle::VmManager`] (one lock per VM; QEMU processes, QMP sessions, status from QMP
//! events published as `resource.updated`) → `hostplane_host::qemu` (argv, process, QMP client,
//! qemu-img). Slow work (ACPI shutdown with its timeout, clones, snapshots with memory,
//! imports) runs as jobs locked per VM (`vms/<id>`).
//!
//! Files: disks in `vms.images_dir/<vm id>/` or on a pool dataset (`<dataset>/<vm id>/`, see
//! [`storage`], which also answers the pools' registry of users), templates in
//! `images_dir/templates/`, shared bases of thin clones in `images_dir/bases/`; sockets,
//! pidfile and QEMU's log in `vms.run_dir/<vm id>/`. QEMU outlives the daemon; at start the
//! daemon re-attaches.
//!
//! Modules: [`lifecycle`] (start/stop/re-attach), [`consoles`] (serial, VNC, screenshot),
//! [`disks`] (devices, hot-plug, resize), [`snapshots`], [`clone`], [`export`]
//! (disk and VM export/import), [`templates`] (Vagrant boxes, cloud-init seeds), [`intake`]
//! (every image that comes in: streamed limits, scratch files, the standalone check), [`crate::platform::fetch`]
//! (box URLs: address policy, redirects checked hop by hop), [`registries`]
//! (`/template-registries`: BoxVault and Vagrant Cloud catalogs, pulls into templates),
//! [`checksum`] (the digests catalogs declare).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hostplane_types::vms::{
    CdromRequest, DiskFormat, ShutdownRequest, Vm, VmCreate, VmMetrics, VmStatus, VmUpdate,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::answer::{accepted, created};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::areas::{Area, AnyState, HookFuture};
use crate::state::{AppState, Services};

pub mod checksum;
pub mod clone;
pub mod consoles;
pub mod disks;
pub mod export;
pub mod intake;
pub mod lifecycle;
pub mod model;
pub mod registries;
pub mod snapshots;
pub mod storage;
pub mod templates;
pub mod workloads;

pub use lifecycle::VmManager;
use model::VmRecord;
use storage::Storage;

pub const AREA: Area = Area {
    init: Some(init),
    start: Some(start),
    ..Area::new(
        "vms",
        "Virtual machines: QEMU over QMP, consoles, disks, snapshots, clones, templates, import/export",
        router,
    )
};

/// The VM manager is this area's state (an `Arc<VmManager>`: some of its methods run on
/// `Arc<Self>`).
fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    let mgr = VmManager::new(
        &services.config,
        services.store.clone(),
        services.events.clone(),
    )
    .context("preparing the VM directories")?;
    storage::register(services);
    services
        .workloads
        .register(Arc::new(workloads::VmWorkloads));
    services.serial.register(Arc::new(consoles::VmSerials));
    let mgr = Arc::new(mgr);
    services
        .processes
        .register(Arc::new(lifecycle::QemuProcesses(mgr.clone())));
    Ok(Some(Arc::new(mgr)))
}

/// Re-attaches to QEMUs that outlived the last run, then autostarts VMs, in the background.
fn start(state: AppState) -> HookFuture {
    Box::pin(async move {
        tokio::spawn(state.vms().clone().startup());
    })
}

/// This area's state from the shared state.
pub(crate) trait VmsState {
    fn vms(&self) -> &Arc<VmManager>;
}

impl VmsState for AppState {
    fn vms(&self) -> &Arc<VmManager> {
        self.area::<Arc<VmManager>>()
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_vms, create_vm))
        .routes(own_405(routes!(get_vm, update_vm, delete_vm)))
        .routes(routes!(start_vm))
        .routes(routes!(stop_vm))
        .routes(routes!(shutdown_vm))
        .routes(routes!(reset_vm))
        .routes(routes!(pause_vm))
        .routes(routes!(resume_vm))
        .routes(routes!(vm_metrics))
        .routes(routes!(consoles::serial_ws))
        .routes(routes!(consoles::vnc_ws))
        .routes(routes!(consoles::screenshot))
        .routes(routes!(consoles::console_ticket))
        .merge(disks::router())
        .merge(snapshots::router())
        .merge(clone::router())
        .merge(export::router())
        .merge(templates::router())
        .merge(registries::router())
        .layer(axum::middleware::from_fn(archive_methods))
}

/// Gives a route its own 405 fallback, so that the server-wide one does not replace it and
/// [`archive_methods`] (a layer of this router) also sees methods no handler serves.
pub(crate) fn own_405(
    r: utoipa_axum::router::UtoipaMethodRouter<AppState>,
) -> utoipa_axum::router::UtoipaMethodRouter<AppState> {
    let (schemas, paths, method_router) = r;
    let method_router = method_router.fallback(|| async { ApiError::MethodNotAllowed });
    (schemas, paths, method_router)
}

/// `/vms/{id}.tar.zst` and `/vms/{id}/disks/{n}.{format}` share axum's routes with `/vms/{id}`
/// and `/vms/{id}/disks/{n}` (a path segment matches `x.tar.zst`, `0.raw`), but the exports
/// are GET only: answer any other method 405 with the export's `Allow`, not the VM's or disk's.
async fn archive_methods(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_export = req
        .uri()
        .path()
        .strip_prefix("/api/v1/vms/")
        .is_some_and(|rest| {
            let parts: Vec<&str> = rest.split('/').collect();
            match parts.as_slice() {
                [id] => id.ends_with(".tar.zst"),
                [_, "disks", n] => n.contains('.'),
                _ => false,
            }
        });
    let m = req.method();
    if is_export && m != axum::http::Method::GET && m != axum::http::Method::HEAD {
        let mut resp = ApiError::MethodNotAllowed.into_response();
        resp.headers_mut().insert(
            axum::http::header::ALLOW,
            axum::http::HeaderValue::from_static("GET,HEAD"),
        );
        return resp;
    }
    next.run(req).await
}

/// Reads (up to 1 MiB of) a body that is refused before it was read, then returns the error:
/// answering while the client still sends makes the server close the connection, and the
/// client sees a reset instead of the problem.
pub(crate) async fn refuse(body: Body, err: ApiError) -> ApiResult<Response> {
    let _ = axum::body::to_bytes(body, 1 << 20).await;
    Err(err)
}

/// Whether the request says its body is JSON: `None` without a `Content-Type`.
pub(crate) fn json_content(headers: &HeaderMap) -> Option<bool> {
    let v = headers.get(axum::http::header::CONTENT_TYPE)?;
    let v = v.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = v.split(';').next().unwrap_or("").trim();
    Some(essence == "application/json" || essence.ends_with("+json"))
}

pub(crate) fn lock_key(id: &str) -> String {
    format!("vms/{id}")
}

fn publish_created(state: &AppState, vm: &Vm, actor: &str) {
    state.events.publish(
        "resource.created",
        &vm.href,
        actor,
        serde_json::to_value(vm).unwrap_or_default(),
    );
}

/// List VMs.
#[utoipa::path(get, path = "/api/v1/vms",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms", params(CollectionParams),
    responses((status = 200, description = "VMs", body = [Vm],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_vms(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let vms: Vec<Vm> = model::load_all(&state.store)?
        .iter()
        .map(|r| state.vms().view(r))
        .collect();
    collection::respond(vms, &params, &headers)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CreateParams {
    /// Present (any value): the body is a VM archive (`GET /vms/{id}.tar.zst`,
    /// `application/zstd`) to import, not JSON.
    #[param(allow_reserved)]
    import: Option<String>,
    /// With `import`: the new VM's name (default: the name in the archive); the rule of
    /// `VmCreate.name`.
    #[param(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    name: Option<String>,    /// With `import`: where the disks go, `images` or `<pool>/<dataset>` (default `[vms]
    /// default_storage`).
    #[param(pattern = "^(images|[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?/[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?)$", max_length = 129)]
    storage: Option<String>,
}

/// Define a VM; or, with `?import`, create one from a `.tar.zst` archive (a job).
///
/// New disks are created empty (qcow2 by default, sparse); `template` makes the first disk
/// from a template; `cloud_init` attaches a NoCloud seed ISO as a CD-ROM.
#[utoipa::path(post, path = "/api/v1/vms",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms", params(CreateParams),
    request_body(content((VmCreate = "application/json"), (Vec<u8> = "application/zstd")),
        description = "A VM definition, or with `?import` a VM archive"),
    responses((status = 201, description = "Created", body = Vm),
        (status = 202, description = "Import started; follow the job", body = hostplane_types::jobs::Job)))]
async fn create_vm(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(params): Query<CreateParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let is_json = json_content(&headers);
    if params.import.is_some() {
        // The mode and the media type must agree: a JSON definition never starts an import.
        if is_json != Some(false) {
            let msg = "with ?import the body is a VM archive (Content-Type: application/zstd), \
                       not JSON";
            return refuse(body, ApiError::UnsupportedMediaType(msg.into())).await;
        }
        if let Some(Err(e)) = params.name.as_deref().map(|n| model::check_name("name", n)) {
            return refuse(body, e).await;
        }
        return export::import_archive(state, p, params.name, params.storage, headers, body)
            .await;
    }
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::PayloadTooLarge(e.to_string()))?;
    if is_json != Some(true) {
        return Err(ApiError::UnsupportedMediaType(
            "expected a body with Content-Type: application/json (or ?import with an archive)"
                .into(),
        ));
    }
    let req: VmCreate = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("invalid_body", format!("invalid VM definition: {e}")))?;
    let rec = define(&state, req, &p.user).await?;
    let vm = state.vms().view(&rec);
    publish_created(&state, &vm, &p.user);
    Ok(created(&vm.href, &vm))
}

/// Validates a definition and creates its files and record. Nothing is left behind on error.
pub(crate) async fn define(state: &AppState, req: VmCreate, actor: &str) -> ApiResult<VmRecord> {
    let mgr = state.vms();
    let limits = mgr.limits();
    model::check_name("name", &req.name)?;
    if model::load(&state.store, &req.name)?.is_some() {
        return Err(ApiError::conflict(
            "vm_exists",
            format!("a VM named {:?} exists", req.name),
        ));
    }
    let vcpus = req.vcpus.unwrap_or(1);
    limits.check_vcpus("vcpus", vcpus)?;
    let memory = req.memory_mib.unwrap_or(512);
    limits.check_memory("memory_mib", memory)?;
    let total_disks = req.disks.len() + usize::from(req.template.is_some());
    if total_disks > model::MAX_DISKS {
        return Err(ApiError::invalid_field(
            "too_many_disks",
            "disks",
            format!("at most {} disks", model::MAX_DISKS),
        ));
    }
    let cd_total = req.cdroms.len() + usize::from(req.cloud_init.is_some());
    if cd_total > model::MAX_CDROMS {
        return Err(ApiError::invalid_field(
            "too_many_cdroms",
            "cdroms",
            format!(
                "at most {} CD-ROM drives (cloud-init takes one)",
                model::MAX_CDROMS
            ),
        ));
    }
    if req.nics.len() > model::MAX_NICS {
        return Err(ApiError::invalid_field(
            "too_many_nics",
            "nics",
            format!("at most {} NICs", model::MAX_NICS),
        ));
    }
    model::check_boot("boot", &req.boot)?;
    if req.kernel.is_none() && (req.initrd.is_some() || req.cmdline.is_some()) {
        return Err(ApiError::invalid_field(
            "invalid_kernel",
            "kernel",
            "initrd and cmdline need a kernel",
        ));
    }
    if let Some(c) = &req.cmdline {
        model::check_cmdline("cmdline", c)?;
    }
    if let Some(k) = &req.kernel {
        mgr_resolve(mgr, "kernel", k)?;
    }
    if let Some(i) = &req.initrd {
        mgr_resolve(mgr, "initrd", i)?;
    }
    if let Some(c) = &req.cloud_init {
        model::check_cloud_init(c)?;
    }
    if req.clone.is_some() && req.template.is_none() {
        return Err(ApiError::invalid_field(
            "invalid_clone",
            "clone",
            "clone is the strategy for a template",
        ));
    }
    let template = match &req.template {
        Some(t) => Some(templates::find(state, t).map_err(|_| {
            ApiError::invalid_field("unknown_template", "template", format!("no template {t:?}"))
        })?),
        None => None,
    };
    // Check every disk before creating any file.
    let vm_storage = Storage::chosen(state, "storage", req.storage.as_deref())?;
    let mut planned = Vec::new();
    for (i, d) in req.disks.iter().enumerate() {
        let field = format!("disks[{i}]");
        let plan = disks::plan_disk(mgr, &limits, &field, d).await?;
        let (at, at_field) = match &d.storage {
            Some(s) => {
                let f = format!("{field}.storage");
                (Storage::chosen(state, &f, Some(s))?, f)
            }
            None => (vm_storage.clone(), "storage".to_string()),
        };
        planned.push((plan, at, at_field));
    }
    let mut nics = Vec::new();
    for (i, n) in req.nics.iter().enumerate() {
        nics.push(model::check_nic(&format!("nics[{i}]"), n, i as u32)?);
    }
    model::check_forward_duplicates("nics", nics.iter().flat_map(|n| &n.port_forwards))?;
    let mut cdroms = Vec::new();
    for (i, c) in req.cdroms.iter().enumerate() {
        cdroms.push(cdrom_entry(mgr, &format!("cdroms[{i}]"), c, i as u32)?);
    }

    let id = uuid::Uuid::now_v7().to_string();
    let dir = mgr.vm_dir(&id);
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    // The VM's directories on datasets, made on the way (removed again on failure).
    let mut made: Vec<std::path::PathBuf> = Vec::new();
    let result = async {
        let mut disk_dir = |s: &Storage, field: &str| {
            let d = storage::disk_dir(state, field, s, &id)?;
            if d != dir && !made.contains(&d) {
                made.push(d.clone());
            }
            Ok::<_, ApiError>(d)
        };
        let mut def = model::new_def(
            vcpus,
            memory,
            req.machine.unwrap_or_default(),
            req.firmware.unwrap_or_default(),
            req.accelerator.unwrap_or_default(),
        );
        if let Some(t) = &template {
            let strategy = req.clone.unwrap_or_default();
            let at = disk_dir(&vm_storage, "storage")?;
            let disk = templates::disk_from_template(state, t, &at, 0, strategy).await?;
            def.disks.push(disk);
            def.template = Some(t.name.clone());
        }
        for (plan, at, field) in planned {
            let index = def.disks.len() as u32;
            // An image used in place stays where it is.
            let at = match plan {
                disks::Plan::New { .. } => disk_dir(&at, &field)?,
                disks::Plan::Existing { .. } => dir.clone(),
            };
            def.disks.push(disks::materialize(&at, index, plan).await?);
        }
        def.next.disk = def.disks.len() as u32;
        def.nics = nics;
        def.next.nic = def.nics.len() as u32;
        def.cdroms = cdroms;
        if let Some(c) = &req.cloud_init {
            let index = def.cdroms.len() as u32;
            def.cdroms
                .push(templates::cloud_init_seed(&dir, &id, &req.name, c, index).await?);
        }
        def.next.cdrom = def.cdroms.len() as u32;
        if !req.boot.is_empty() {
            def.boot = req.boot.clone();
        }
        def.kernel = req.kernel.clone();
        def.initrd = req.initrd.clone();
        def.cmdline = req.cmdline.clone();
        def.autostart = req.autostart;
        let now = crate::platform::time::now_string();
        let rec = VmRecord {
            id: id.clone(),
            name: req.name.clone(),
            def,
            created_at: now.clone(),
            updated_at: now,
        };
        model::insert(&state.store, &rec)?;
        Ok::<_, ApiError>(rec)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
        // Directories this request made, named by the new VM's id: nothing else is in them.
        for d in &made {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    if let Ok(rec) = &result {
        tracing::info!(vm = rec.id, name = rec.name, by = actor, "VM defined");
    }
    result
}

fn mgr_resolve(mgr: &VmManager, field: &str, s: &str) -> ApiResult<std::path::PathBuf> {
    model::resolve_file(field, s, &mgr.images_dir, &mgr.roots)
}

pub(crate) fn cdrom_entry(
    mgr: &VmManager,
    field: &str,
    c: &CdromRequest,
    index: u32,
) -> ApiResult<hostplane_types::vms::VmCdrom> {
    let iso = match &c.iso {
        Some(s) => Some(
            mgr_resolve(mgr, &format!("{field}.iso"), s)?
                .to_string_lossy()
                .into_owned(),
        ),
        None => None,
    };
    Ok(hostplane_types::vms::VmCdrom {
        index,
        iso,
        cloud_init: false,
    })
}

/// Get one VM. `GET /vms/{id}.tar.zst` exports it instead (see the export operation).
#[utoipa::path(get, path = "/api/v1/vms/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 200, description = "The VM", body = Vm)))]
async fn get_vm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<export::ExportParams>,
) -> ApiResult<Response> {
    if let Some(base) = id.strip_suffix(".tar.zst") {
        return export::export_archive(state, base.to_string(), q).await;
    }
    let rec = model::find(&state.store, &id)?;
    Ok(axum::Json(state.vms().view(&rec)).into_response())
}

/// Change settings; they apply at the next boot (`pending_changes` says so while running).
#[utoipa::path(patch, path = "/api/v1/vms/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    request_body = VmUpdate,
    responses((status = 200, description = "The updated VM", body = Vm)))]
async fn update_vm(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    Json(req): Json<VmUpdate>,
) -> ApiResult<axum::Json<Vm>> {
    let (_g, rec) = state.vms().find_locked(&state.store, &id).await?;
    let limits = state.vms().limits();
    let mut def = rec.def.clone();
    if let Some(v) = req.vcpus {
        limits.check_vcpus("vcpus", v)?;
        def.vcpus = v;
    }
    if let Some(m) = req.memory_mib {
        limits.check_memory("memory_mib", m)?;
        def.memory_mib = m;
    }
    if let Some(a) = req.autostart {
        def.autostart = a;
    }
    if let Some(a) = req.accelerator {
        def.accelerator = a;
    }
    if let Some(b) = req.boot {
        model::check_boot("boot", &b)?;
        def.boot = b;
    }
    if let Some(k) = req.kernel {
        if k.is_empty() {
            def.kernel = None;
            def.initrd = None;
            def.cmdline = None;
        } else {
            mgr_resolve(state.vms(), "kernel", &k)?;
            def.kernel = Some(k);
        }
    }
    if let Some(i) = req.initrd {
        if i.is_empty() {
            def.initrd = None;
        } else {
            mgr_resolve(state.vms(), "initrd", &i)?;
            def.initrd = Some(i);
        }
    }
    if let Some(c) = req.cmdline {
        model::check_cmdline("cmdline", &c)?;
        def.cmdline = (!c.is_empty()).then_some(c);
    }
    if def.kernel.is_none() && (def.initrd.is_some() || def.cmdline.is_some()) {
        return Err(ApiError::invalid_field(
            "invalid_kernel",
            "kernel",
            "initrd and cmdline need a kernel",
        ));
    }
    let rec = model::save_def(&state.store, &rec.id, &def)?;
    state.vms().publish(&rec.id, &p.user);
    Ok(axum::Json(state.vms().view(&rec)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteParams {
    /// Keep the VM's disk files (default: delete the disks hostplane created).
    #[serde(default)]
    keep_disks: Option<bool>,
}

/// Delete a stopped VM, with its disks unless `keep_disks=true` (images used in place are never
/// deleted).
#[utoipa::path(delete, path = "/api/v1/vms/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"), DeleteParams),
    responses((status = 204, description = "Deleted")))]
async fn delete_vm(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    Query(q): Query<DeleteParams>,
) -> ApiResult<StatusCode> {
    let rec = model::find(&state.store, &id)?;
    let _g = state.vms().lock_req(&rec.id).await?;
    state.vms().require_stopped(&rec.id)?;
    let vm = state.vms().view(&rec);
    let keep = q.keep_disks.unwrap_or(false);
    model::delete(&state.store, &rec.id)?;
    let dir = state.vms().vm_dir(&rec.id);
    if keep {
        // Disks stay where they are; everything else of the VM goes.
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let is_disk = rec
                .def
                .disks
                .iter()
                .any(|d| std::path::Path::new(&d.path) == path);
            if !is_disk {
                let _ = std::fs::remove_file(&path);
            }
        }
    } else {
        for d in rec.def.disks.iter().filter(|d| d.owned) {
            let _ = std::fs::remove_file(&d.path);
        }
        storage::remove_empty_dirs(&state, &rec.id, &rec.def);
        let _ = std::fs::remove_dir_all(&dir);
        clone::prune_bases(state.vms());
    }
    let _ = std::fs::remove_dir_all(state.vms().run_files(&rec.id).dir);
    state.events.publish(
        "resource.deleted",
        &vm.href,
        &p.user,
        serde_json::to_value(&vm).unwrap_or_default(),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Start the VM: QEMU is running (not yet booted) when this answers.
#[utoipa::path(post, path = "/api/v1/vms/{id}/start",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 200, description = "Running", body = Vm)))]
async fn start_vm(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vm>> {
    let (_g, rec) = state.vms().find_locked(&state.store, &id).await?;
    state.vms().start(&rec, &p.user).await?;
    Ok(axum::Json(state.vms().view(&rec)))
}

/// Stop the VM at once (like pulling the power cord).
#[utoipa::path(post, path = "/api/v1/vms/{id}/stop",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 200, description = "Stopped", body = Vm)))]
async fn stop_vm(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vm>> {
    let rec = model::find(&state.store, &id)?;
    state.vms().require_running(&rec.id)?;
    state.vms().stop_force(&rec.id).await?;
    tracing::info!(vm = rec.id, by = p.user, "VM stopped by force");
    Ok(axum::Json(state.vms().view(&rec)))
}

/// ACPI shutdown: the guest gets the power button; after `timeout_secs` without power-off
/// QEMU is stopped by force. A job: its result says `{"clean": true|false}`.
#[utoipa::path(post, path = "/api/v1/vms/{id}/shutdown",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    request_body = Option<ShutdownRequest>,
    responses((status = 202, description = "Shutting down; follow the job", body = hostplane_types::jobs::Job)))]
async fn shutdown_vm(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|e| ApiError::PayloadTooLarge(e.to_string()))?;
    // The body is optional (documented nullable): none, whitespace or `null` mean defaults.
    let req: ShutdownRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        ShutdownRequest::default()
    } else {
        serde_json::from_slice::<Option<ShutdownRequest>>(&bytes)
            .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?
            .unwrap_or_default()
    };
    let secs = req.timeout_secs.unwrap_or(60);
    if !(1..=3600).contains(&secs) {
        return Err(ApiError::invalid_field(
            "invalid_timeout",
            "timeout_secs",
            "timeout_secs is 1 .. 3600",
        ));
    }
    let rec = model::find(&state.store, &id)?;
    state.vms().require_running(&rec.id)?;
    let st = state.clone();
    let vm_id = rec.id.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "vms.shutdown",
            target: Some(format!("/api/v1/vms/{}", rec.id)),
            lock_key: Some(lock_key(&rec.id)),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            ctx.log(format!("ACPI power button; waiting up to {secs} s"));
            let clean = st
                .vms()
                .shutdown(&vm_id, Duration::from_secs(secs), &actor)
                .await
                .map_err(|e| JobFailure::new("shutdown_failed", e.to_string()))?;
            ctx.log(if clean {
                "the guest powered off"
            } else {
                "the guest did not power off in time; stopped by force"
            });
            Ok(hostplane_types::jobs::VmShutdownResult { clean })
        },
    )?;
    Ok(accepted(&job))
}

async fn qmp_action(state: &AppState, id: &str, command: &str) -> ApiResult<axum::Json<Vm>> {
    let rec = model::find(&state.store, id)?;
    let rt = state.vms().require_running(&rec.id)?;
    rt.qmp
        .execute(command, None)
        .await
        .map_err(lifecycle::qmp_error)?;
    Ok(axum::Json(state.vms().view(&rec)))
}

/// Hard reset (like the reset button).
#[utoipa::path(post, path = "/api/v1/vms/{id}/reset",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 200, description = "Reset", body = Vm)))]
async fn reset_vm(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vm>> {
    qmp_action(&state, &id, "system_reset").await
}

/// Pause the vCPUs.
#[utoipa::path(post, path = "/api/v1/vms/{id}/pause",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 200, description = "Paused", body = Vm)))]
async fn pause_vm(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vm>> {
    let r = qmp_action(&state, &id, "stop").await?;
    wait_status(&state, &r.0.id, VmStatus::Paused).await
}

/// Resume paused vCPUs.
#[utoipa::path(post, path = "/api/v1/vms/{id}/resume",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 200, description = "Running", body = Vm)))]
async fn resume_vm(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vm>> {
    let r = qmp_action(&state, &id, "cont").await?;
    wait_status(&state, &r.0.id, VmStatus::Running).await
}

/// The STOP/RESUME event follows the command's answer; wait briefly so the answer shows it.
async fn wait_status(state: &AppState, id: &str, want: VmStatus) -> ApiResult<axum::Json<Vm>> {
    for _ in 0..50 {
        match state.vms().runtime(id) {
            Some(rt) if rt.status() != want => tokio::time::sleep(Duration::from_millis(20)).await,
            _ => break,
        }
    }
    let rec = model::find(&state.store, id)?;
    Ok(axum::Json(state.vms().view(&rec)))
}

/// CPU, memory, block and network counters of a running VM.
#[utoipa::path(get, path = "/api/v1/vms/{id}/metrics",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 200, description = "Counters", body = VmMetrics)))]
async fn vm_metrics(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<VmMetrics>> {
    use hostplane_host::qemu::{process, qmp};
    let rec = model::find(&state.store, &id)?;
    let rt = state.vms().require_running(&rec.id)?;
    let stat = process::proc_stat(rt.pid);
    let blocks = rt
        .qmp
        .execute("query-blockstats", None)
        .await
        .map_err(lifecycle::qmp_error)?;
    let cpus = rt
        .qmp
        .execute("query-cpus-fast", None)
        .await
        .map_err(lifecycle::qmp_error)?;
    let net_info = rt
        .qmp
        .hmp("info network", Duration::from_secs(5))
        .await
        .unwrap_or_default();
    let net = rec
        .def
        .nics
        .iter()
        .map(|n| {
            let ifname = disks::tap_name(&net_info, n.index);
            let read = |f: &str| {
                ifname.as_ref().and_then(|i| {
                    std::fs::read_to_string(format!("/sys/class/net/{i}/statistics/{f}"))
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                })
            };
            hostplane_types::vms::NetCounters {
                nic: format!("net{}", n.index),
                // The host sees a tap's traffic reversed: its tx is the guest's rx.
                rx_bytes: read("tx_bytes"),
                tx_bytes: read("rx_bytes"),
                rx_packets: read("tx_packets"),
                tx_packets: read("rx_packets"),
                ifname,
            }
        })
        .collect();
    Ok(axum::Json(VmMetrics {
        status: rt.status(),
        cpu_seconds: stat.map(|s| s.cpu_seconds).unwrap_or(0.0),
        rss_bytes: stat.map(|s| s.rss_bytes).unwrap_or(0),
        memory_bytes: rec.def.memory_mib << 20,
        vcpu_threads: qmp::parse_cpu_threads(&cpus),
        block: qmp::parse_blockstats(&blocks)
            .into_iter()
            .map(|b| hostplane_types::vms::BlockCounters {
                device: b.device,
                rd_bytes: b.rd_bytes,
                wr_bytes: b.wr_bytes,
                rd_operations: b.rd_operations,
                wr_operations: b.wr_operations,
            })
            .collect(),
        net,
    }))
}

/// `qcow2` disks only (snapshots, thin clones).
pub(crate) fn all_qcow2(rec: &VmRecord) -> bool {
    rec.def.disks.iter().all(|d| d.format == DiskFormat::Qcow2)
}
