//! Export and import (Xen Orchestra's names): one disk as `.raw`, `.qcow2` or `.vhd`
//! (`?compress=zstd`), a whole VM as `.tar.zst`; an uploaded image as a new disk
//! (`POST /vms/{id}/disks?raw|qcow2|vhd`), an archive as a new VM (`POST /vms?import`).
//!
//! Streaming, never buffering a whole image: a blocking thread reads the image in 1 MiB
//! pieces (through a zstd encoder, or a tar builder and a zstd encoder) into a channel of four
//! pieces that the response body drains; a slow client slows the reader, memory stays flat.
//! qemu-img cannot write to a pipe (it seeks), so a format change or a thin disk's flattening
//! goes to a sparse scratch file on the images file system first, deleted when the stream
//! ends. Uploads are streamed to a scratch file (decompressed and, for archives, unpacked on
//! the way, every limit counted as the bytes are written: see [`super::intake`]) and checked
//! before the answer: an image that references any other file (backing file, qcow2 data file,
//! vmdk extents) is refused (it would read a host file into the guest), as is one larger than
//! `vms.max_disk_bytes`. Then a job converts a disk with `qemu-img convert -p` for progress or
//! moves an archive's disks into place.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hostplane_host::qemu::img;
use hostplane_types::vms::{DiskBus, DiskFormat, VmDisk};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::disks::DiskAddParams;
use super::intake::{self, TempPath};
use super::lifecycle::VmManager;
use super::model::{self, VmDef, VmRecord};
use super::storage::{self, Storage};
use crate::http::answer::accepted;
use crate::error::{ApiError, ApiResult};
use crate::platform::auth::Principal;
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use super::VmsState;
use crate::state::AppState;

const CHUNK: usize = 1 << 20;
const ZSTD_LEVEL: i32 = 3;

/// The export operations live on routes that also serve other things (`/vms/{id}` and
/// `/vms/{id}/disks/{n}`: the router cannot split a path segment on a dot), so they are
/// documented here on their own.
#[derive(OpenApi)]
#[openapi(paths(export_disk_doc, export_archive_doc))]
struct ExportDocs;

pub fn router() -> OpenApiRouter<crate::state::AppState> {
    OpenApiRouter::with_openapi(ExportDocs::openapi())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `zstd`: compress the stream with zstd (`none` or empty: do not).
    #[param(pattern = "^(zstd|none)?$")]
    pub compress: Option<String>,
}

/// Export one disk: `n` is the disk number, the extension the format (`raw`, `qcow2`, `vhd`).
/// The VM must be stopped. Streamed; with `compress=zstd` a zstd stream.
#[utoipa::path(get, path = "/api/v1/vms/{id}/disks/{n}.{format}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"),
        ("n" = u32, Path, minimum = 0, description = "Disk number"),
        ("format" = String, Path, pattern = "^(raw|qcow2|vhd)$", description = "raw, qcow2 or vhd"),
        ExportParams),
    responses((status = 200, description = "The image; with `compress=zstd` a zstd stream",
        content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/zstd")))))]
#[allow(dead_code)]
fn export_disk_doc() {}

/// Export a stopped VM (definition and disks) as one `.tar.zst`; `POST /vms?import` reads it.
#[utoipa::path(get, path = "/api/v1/vms/{id}.tar.zst",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 200, description = "tar (vm.json, disks/disk<n>.<format>), zstd-compressed", content_type = "application/zstd", body = Vec<u8>)))]
#[allow(dead_code)]
fn export_archive_doc() {}

/// Sends what is written to it down the response channel in pieces.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<Result<Bytes, std::io::Error>>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn ship(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(piece)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.ship()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.ship()
    }
}

/// Deletes scratch files when dropped (the stream ended, failed or was abandoned).
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn scratch_path(mgr: &VmManager, what: &str) -> ApiResult<PathBuf> {
    Ok(mgr
        .tmp_dir()
        .map_err(ApiError::internal)?
        .join(format!("{what}-{}", uuid::Uuid::now_v7())))
}

pub(crate) fn want_zstd(q: &ExportParams) -> ApiResult<bool> {
    match q.compress.as_deref() {
        None | Some("") | Some("none") => Ok(false),
        Some("zstd") => Ok(true),
        Some(other) => Err(ApiError::invalid_field(
            "invalid_compress",
            "compress",
            format!("{other:?}: compress is zstd or none"),
        )),
    }
}

/// qemu-img format for an export/import extension.
fn qemu_format(ext: &str) -> Option<&'static str> {
    match ext {
        "raw" => Some("raw"),
        "qcow2" => Some("qcow2"),
        "vhd" => Some("vpc"),
        _ => None,
    }
}

/// Streams `path` (whole file), optionally zstd-compressed; `keep` rides along until the end.
fn stream_file<K: Send + 'static>(path: PathBuf, zstd: bool, keep: K) -> Body {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let _keep = keep;
        let err_tx = tx.clone();
        let res = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::open(&path)?;
            let pump = |f: &mut std::fs::File, out: &mut dyn Write| -> std::io::Result<()> {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    out.write_all(&buf[..n])?;
                }
            };
            if zstd {
                let mut enc =
                    zstd::stream::write::Encoder::new(ChannelWriter::new(tx), ZSTD_LEVEL)?;
                pump(&mut f, &mut enc)?;
                enc.finish()?.flush()
            } else {
                let mut out = ChannelWriter::new(tx);
                pump(&mut f, &mut out)?;
                out.flush()
            }
        })();
        if let Err(e) = res
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            tracing::warn!(error = %e, "export stream failed");
            let _ = err_tx.blocking_send(Err(e));
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn attachment(resp: &mut Response, filename: &str, zstd: bool, len: Option<u64>) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if zstd {
            "application/zstd"
        } else {
            "application/octet-stream"
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(l) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(l));
    }
}

pub async fn export_disk(
    state: AppState,
    id: String,
    num: String,
    ext: String,
    q: ExportParams,
) -> ApiResult<Response> {
    let zstd = want_zstd(&q)?;
    let format = qemu_format(&ext).ok_or_else(|| {
        ApiError::invalid_field(
            "invalid_format",
            "n",
            format!("{ext:?}: export as .raw, .qcow2 or .vhd"),
        )
    })?;
    let rec = model::find(&state.store, &id)?;
    let guard = state.vms().lock_req(&rec.id).await?;
    state.vms().require_stopped(&rec.id)?;
    let idx: u32 = num
        .parse()
        .map_err(|_| ApiError::not_found(format!("no disk {num:?}")))?;
    let disk = rec
        .def
        .disks
        .iter()
        .find(|d| d.index == idx)
        .ok_or_else(|| ApiError::not_found(format!("no disk {idx} in this VM")))?
        .clone();
    intake::recheck_in_place(&disk).await?;
    let src = PathBuf::from(&disk.path);
    let (path, scratch) = if disk.format.as_str() == format && disk.backing.is_none() {
        (src, Scratch(Vec::new()))
    } else {
        let tmp = scratch_path(state.vms(), "export")?;
        let scratch = Scratch(vec![tmp.clone()]);
        img::convert(&src, disk.format.as_str(), &tmp, format, |_| {})
            .await
            .map_err(ApiError::from)?;
        (tmp, scratch)
    };
    let len = std::fs::metadata(&path).map_err(ApiError::internal)?.len();
    let mut resp = stream_file(path, zstd, (scratch, guard)).into_response();
    let name = format!(
        "{}-disk{idx}.{ext}{}",
        rec.name,
        if zstd { ".zst" } else { "" }
    );
    attachment(&mut resp, &name, zstd, (!zstd).then_some(len));
    Ok(resp)
}

/// `vm.json` in an archive.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    hostplane_vm_archive: u32,
    name: String,
    def: VmDef,
}

pub async fn export_archive(state: AppState, id: String, q: ExportParams) -> ApiResult<Response> {
    if q.compress.as_deref().is_some_and(|c| c != "zstd") {
        return Err(ApiError::invalid_field(
            "invalid_compress",
            "compress",
            "a VM archive is always zstd",
        ));
    }
    let rec = model::find(&state.store, &id)?;
    let guard = state.vms().lock_req(&rec.id).await?;
    state.vms().require_stopped(&rec.id)?;
    let mut scratch = Scratch(Vec::new());
    let mut files = Vec::new();
    for d in &rec.def.disks {
        intake::recheck_in_place(d).await?;
        let name = format!("disks/disk{}.{}", d.index, d.format.as_str());
        if d.backing.is_some() {
            let tmp = scratch_path(state.vms(), "export")?;
            scratch.0.push(tmp.clone());
            img::copy_flat(
                Path::new(&d.path),
                d.format.as_str(),
                &tmp,
                d.format.as_str(),
            )
            .await
            .map_err(ApiError::from)?;
            files.push((name, tmp));
        } else {
            files.push((name, PathBuf::from(&d.path)));
        }
    }
    let manifest = serde_json::to_vec_pretty(&Manifest {
        hostplane_vm_archive: 1,
        name: rec.name.clone(),
        def: rec.def.clone(),
    })
    .map_err(ApiError::internal)?;
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let _keep = (scratch, guard);
        let err_tx = tx.clone();
        let res = (|| -> std::io::Result<()> {
            let enc = zstd::stream::write::Encoder::new(ChannelWriter::new(tx), ZSTD_LEVEL)?;
            let mut tar = tar::Builder::new(enc);
            let mut h = tar::Header::new_gnu();
            h.set_size(manifest.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, "vm.json", &manifest[..])?;
            for (name, path) in files {
                let mut f = std::fs::File::open(&path)?;
                tar.append_file(&name, &mut f)?;
            }
            let mut enc = tar.into_inner()?;
            enc.flush()?;
            let mut w = enc.finish()?;
            w.flush()
        })();
        if let Err(e) = res
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            tracing::warn!(error = %e, "VM archive stream failed");
            let _ = err_tx.blocking_send(Err(e));
        }
    });
    let mut resp =
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).into_response();
    attachment(&mut resp, &format!("{}.tar.zst", rec.name), true, None);
    Ok(resp)
}

fn zstd_body(headers: &HeaderMap, compress: Option<&str>) -> ApiResult<bool> {
    let encoded = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("zstd"));
    match compress {
        None | Some("") | Some("none") => Ok(encoded),
        Some("zstd") => Ok(true),
        Some(other) => Err(ApiError::invalid_field(
            "invalid_compress",
            "compress",
            format!("{other:?}: compress is zstd or none"),
        )),
    }
}

/// How much larger than its virtual size an image file may be (qcow2/vhd metadata).
pub(crate) fn image_file_limit(max_disk_bytes: u64) -> u64 {
    max_disk_bytes
        .saturating_add(max_disk_bytes / 32)
        .saturating_add(4 << 20)
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Before an upload is read: the size it announces fits `max_upload_bytes` and the free space.
pub(crate) fn precheck_upload(mgr: &VmManager, headers: &HeaderMap) -> ApiResult<PathBuf> {
    let tmp = mgr.tmp_dir().map_err(ApiError::internal)?;
    let announced = content_length(headers);
    if announced > mgr.max_upload_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "the upload ({announced} bytes) is larger than vms.max_upload_bytes ({})",
            mgr.max_upload_bytes
        )));
    }
    intake::ensure_space(&tmp, announced)?;
    Ok(tmp)
}

pub async fn import_disk(
    state: AppState,
    p: Principal,
    id: String,
    q: DiskAddParams,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let format = q.import_format()?.ok_or_else(|| {
        ApiError::invalid_field("invalid_format", "format", "format is raw, qcow2 or vhd")
    })?;
    let zstd = zstd_body(&headers, q.compress.as_deref())?;
    let bus = q.bus.unwrap_or_default();
    let rec = model::find(&state.store, &id)?;
    if rec.def.disks.len() >= model::MAX_DISKS {
        return Err(ApiError::conflict(
            "too_many_disks",
            format!("at most {} disks", model::MAX_DISKS),
        ));
    }
    if let Err(e) = precheck_upload(state.vms(), &headers) {
        return super::refuse(body, e).await;
    }
    let dir = match Storage::chosen(&state, "storage", q.storage.as_deref())
        .and_then(|at| storage::disk_dir(&state, "storage", &at, &rec.id))
    {
        Ok(d) => d,
        Err(e) => return super::refuse(body, e).await,
    };
    // Removed on every error path, and by the job when it ends.
    let tmp = TempPath::new(scratch_path(state.vms(), "upload")?);
    let max_disk = state.vms().max_disk_bytes;
    let dest = tmp.path().to_path_buf();
    intake::stream_into(
        body.into_data_stream(),
        state.vms().max_upload_bytes,
        move |r, trip| {
            let mut out =
                intake::CappedFile::create(&dest, image_file_limit(max_disk), "the image", trip)?;
            if zstd {
                let mut dec = zstd::stream::read::Decoder::new(r)
                    .map_err(|e| intake::io_error(e, trip, ApiError::internal))?;
                std::io::copy(&mut dec, &mut out).map_err(|e| {
                    intake::io_error(e, trip, |m| {
                        ApiError::invalid("invalid_zstd", format!("not a valid zstd stream: {m}"))
                    })
                })?;
            } else {
                std::io::copy(r, &mut out).map_err(|e| {
                    intake::io_error(e, trip, |m| ApiError::invalid("upload_failed", m))
                })?;
            }
            out.finish().map_err(ApiError::internal)
        },
    )
    .await?;
    let info = intake::check_image(tmp.path(), Some(format), max_disk, None).await?;
    intake::ensure_space(&dir, info.actual_size)?;
    let st = state.clone();
    let vm_id = rec.id.clone();
    let actor = p.user.clone();
    let job =
        state.jobs.spawn(
            JobSpec {
                kind: "vms.disk_import",
                target: Some(format!("/api/v1/vms/{}", rec.id)),
                lock_key: None,
                actor: p.user.clone(),
            },
            move |ctx| async move {
                import_disk_job(st, ctx, vm_id, tmp, info, format, bus, dir, actor).await
            },
        )?;
    Ok(accepted(&job))
}

#[allow(clippy::too_many_arguments)]
async fn import_disk_job(
    state: AppState,
    ctx: Arc<JobCtx>,
    vm_id: String,
    tmp: TempPath,
    info: img::ImageInfo,
    format: &'static str,
    bus: DiskBus,
    dir: PathBuf,
    actor: String,
) -> Result<hostplane_types::jobs::VmDiskImportResult, JobFailure> {
    ctx.log(format!(
        "uploaded a {format} image of {} bytes (virtual)",
        info.virtual_size
    ));
    let _g = state.vms().lock(&vm_id).await;
    let rec =
        model::find(&state.store, &vm_id).map_err(|e| JobFailure::new("vm_gone", e.to_string()))?;
    let index = rec
        .def
        .next
        .disk
        .max(rec.def.disks.iter().map(|d| d.index + 1).max().unwrap_or(0));
    std::fs::create_dir_all(&dir).map_err(|e| JobFailure::new("internal", e.to_string()))?;
    let dest = dir.join(format!("disk{index}.qcow2"));
    let c = ctx.clone();
    let converted = img::convert(tmp.path(), format, &dest, "qcow2", move |pct| {
        c.progress(pct.min(99))
    })
    .await;
    drop(tmp);
    if let Err(e) = converted {
        let _ = std::fs::remove_file(&dest);
        return Err(JobFailure::command("convert_failed", e));
    }
    let disk = model::disk_entry(
        index,
        &dest,
        DiskFormat::Qcow2,
        bus,
        info.virtual_size,
        None,
        true,
    );
    let (applied, reason) = super::disks::attach_disk_now(&state, &rec, &disk).await;
    let mut def = rec.def.clone();
    def.disks.push(disk.clone());
    def.next.disk = index + 1;
    model::save_def(&state.store, &vm_id, &def)
        .map_err(|e| JobFailure::new("internal", e.to_string()))?;
    state.vms().publish(&vm_id, &actor);
    ctx.log(format!("disk {index} added ({applied:?})"));
    Ok(hostplane_types::jobs::VmDiskImportResult {
        disk,
        applied,
        reason,
    })
}

/// Moves a checked image from the scratch space to `dest`: a rename on the same file system,
/// else a sparse copy (`qemu-img convert`) to a pool dataset and the scratch file removed.
async fn move_image(from: &Path, format: &str, dest: &Path) -> Result<(), String> {
    match std::fs::rename(from, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            img::copy_flat(from, format, dest, format).await.map_err(|e| {
                let _ = std::fs::remove_file(dest);
                e.to_string()
            })?;
            let _ = std::fs::remove_file(from);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// What an archive unpacked to.
struct Unpacked {
    manifest: Manifest,
    /// (disk index, file in the staging directory)
    disks: Vec<(u32, PathBuf)>,
}

/// `POST /vms?import`: the archive is unpacked while it is uploaded (zstd → tar → disk files in
/// a staging directory under the scratch space, every limit counted on the way), the manifest
/// and every disk image are checked, and only then a job moves the files into place and
/// records the VM. So a refused archive is a 4xx answer to the upload and leaves nothing.
pub async fn import_archive(
    state: AppState,
    p: Principal,
    name: Option<String>,
    storage: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if let Some(n) = &name {
        model::check_name("name", n)?;
    }
    if let Err(e) = precheck_upload(state.vms(), &headers) {
        return super::refuse(body, e).await;
    }
    // The new VM's id names its directory on the chosen storage, which is checked now.
    let id = uuid::Uuid::now_v7().to_string();
    let disk_dir = match Storage::chosen(&state, "storage", storage.as_deref())
        .and_then(|at| storage::disk_dir(&state, "storage", &at, &id))
    {
        Ok(d) => d,
        Err(e) => return super::refuse(body, e).await,
    };
    // Until the job owns it: every refusal below leaves nothing behind.
    let made = TempPath::new(disk_dir.clone());
    let staging = TempPath::new(scratch_path(state.vms(), "import")?);
    std::fs::create_dir_all(staging.path()).map_err(ApiError::internal)?;
    let max_disk = state.vms().max_disk_bytes;
    // Decompressed: every disk at its largest, plus the manifest and tar headers; and never
    // more than an upload may carry.
    let total = max_disk
        .saturating_mul(model::MAX_DISKS as u64)
        .saturating_add(16 << 20)
        .min(state.vms().max_upload_bytes);
    let dir = staging.path().to_path_buf();
    let unpacked = intake::stream_into(
        body.into_data_stream(),
        state.vms().max_upload_bytes,
        move |r, trip| unpack(r, &dir, image_file_limit(max_disk), total, trip),
    )
    .await?;
    let Unpacked { manifest, disks } = unpacked;
    let name = name.unwrap_or(manifest.name.clone());
    model::check_name("name", &name)
        .map_err(|e| ApiError::invalid_field("invalid_name", "name", e.to_string()))?;
    let limits = state.vms().limits();
    let mut def = manifest.def;
    limits
        .check_vcpus("vcpus", def.vcpus)
        .and_then(|_| limits.check_memory("memory_mib", def.memory_mib))
        .map_err(|e| ApiError::invalid("invalid_archive", e.to_string()))?;
    if def.disks.len() > model::MAX_DISKS {
        return Err(ApiError::invalid(
            "invalid_archive",
            format!("at most {} disks", model::MAX_DISKS),
        ));
    }
    let mut checked = Vec::new();
    for old in &def.disks {
        let Some(file) = disks
            .iter()
            .find(|(i, _)| *i == old.index)
            .map(|(_, p)| p.clone())
        else {
            return Err(ApiError::invalid(
                "invalid_archive",
                format!("disk {} is missing", old.index),
            ));
        };
        let info = intake::check_image(&file, Some(old.format.as_str()), max_disk, None)
            .await
            .map_err(|e| match e {
                ApiError::Invalid { code, detail, .. } => {
                    ApiError::invalid(code, format!("disk {}: {detail}", old.index))
                }
                other => other,
            })?;
        checked.push((old.clone(), file, info.virtual_size));
    }
    // Files outside the archive are kept only when they resolve here too.
    let ok = |s: &Option<String>| {
        s.as_ref().is_some_and(|p| {
            model::resolve_file("x", p, &state.vms().images_dir, &state.vms().roots).is_ok()
        })
    };
    for c in &mut def.cdroms {
        if c.cloud_init || !ok(&c.iso) {
            c.iso = None;
            c.cloud_init = false;
        }
    }
    if !ok(&def.kernel) || (def.initrd.is_some() && !ok(&def.initrd)) {
        def.kernel = None;
        def.initrd = None;
        def.cmdline = None;
    }
    def.template = None;
    def.autostart = false;
    let st = state.clone();
    let actor = p.user.clone();
    let job =
        state.jobs.spawn(
            JobSpec {
                kind: "vms.import",
                target: Some("/api/v1/vms".into()),
                lock_key: None,
                actor: p.user.clone(),
            },
            move |ctx| async move {
                let target = Target { id, disk_dir, made };
                import_archive_job(st, ctx, staging, checked, def, name, target, actor).await
            },
        )?;
    Ok(accepted(&job))
}

/// Where an imported VM goes: its id and the directory of its disks (on a dataset: removed
/// with `made` unless the import succeeds).
struct Target {
    id: String,
    disk_dir: PathBuf,
    made: TempPath,
}

#[allow(clippy::too_many_arguments)]
async fn import_archive_job(
    state: AppState,
    ctx: Arc<JobCtx>,
    staging: TempPath,
    checked: Vec<(VmDisk, PathBuf, u64)>,
    mut def: VmDef,
    name: String,
    target: Target,
    actor: String,
) -> Result<hostplane_types::vms::Vm, JobFailure> {
    let Target { id, disk_dir, made } = target;
    let dir = state.vms().vm_dir(&id);
    let internal = |e: String| JobFailure::new("internal", e);
    // Only the disks the definition names move along; the rest goes with the staging dir.
    std::fs::create_dir_all(&dir).map_err(|e| internal(e.to_string()))?;
    let mut disks = Vec::new();
    for (old, file, virtual_size) in &checked {
        let dest = disk_dir.join(file.file_name().unwrap_or_default());
        if let Err(e) = move_image(file, old.format.as_str(), &dest).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(internal(e));
        }
        disks.push(model::disk_entry(
            old.index,
            &dest,
            old.format,
            old.bus,
            *virtual_size,
            None,
            true,
        ));
    }
    drop(staging);
    def.disks = disks;
    let now = crate::platform::time::now_string();
    let rec = VmRecord {
        id: id.clone(),
        name,
        def,
        created_at: now.clone(),
        updated_at: now,
    };
    if let Err(e) = model::insert(&state.store, &rec) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(JobFailure::new("vm_exists", e.to_string()));
    }
    let _ = made.keep();
    let vm = state.vms().view(&rec);
    state.events.publish(
        "resource.created",
        &vm.href,
        &actor,
        serde_json::to_value(&vm).unwrap_or_default(),
    );
    ctx.progress(99);
    ctx.log(format!("created VM {} ({})", rec.name, rec.id));
    Ok(vm)
}

/// Unpacks a VM archive (zstd-compressed tar) from `r` into `dir`: at most `total` bytes out of
/// the decompressor, at most `image_limit` bytes per disk file, at most MAX_DISKS disk entries.
fn unpack(
    r: &mut dyn Read,
    dir: &Path,
    image_limit: u64,
    total: u64,
    trip: &intake::Trip,
) -> ApiResult<Unpacked> {
    let bad = |m: String| ApiError::invalid("invalid_archive", m);
    let io = |e: std::io::Error| intake::io_error(e, trip, bad);
    let dec = zstd::stream::read::Decoder::new(r).map_err(io)?;
    let dec = intake::CappedReader::new(dec, total, "the unpacked archive", trip);
    let mut tar = tar::Archive::new(dec);
    let mut manifest: Option<Manifest> = None;
    let mut disks: Vec<(u32, PathBuf)> = Vec::new();
    let entries = tar
        .entries()
        .map_err(|e| intake::io_error(e, trip, |m| bad(format!("not a tar.zst archive: {m}"))))?;
    for entry in entries {
        let mut entry = entry
            .map_err(|e| intake::io_error(e, trip, |m| bad(format!("reading the archive: {m}"))))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if path == "vm.json" {
            let mut s = Vec::new();
            (&mut entry).take(1 << 20).read_to_end(&mut s).map_err(io)?;
            let m: Manifest =
                serde_json::from_slice(&s).map_err(|e| bad(format!("vm.json: {e}")))?;
            if m.hostplane_vm_archive != 1 {
                return Err(bad(format!(
                    "archive version {} is unknown",
                    m.hostplane_vm_archive
                )));
            }
            manifest = Some(m);
        } else if let Some(rest) = path.strip_prefix("disks/disk") {
            let (num, ext) = rest
                .split_once('.')
                .ok_or_else(|| bad(format!("odd entry {path}")))?;
            let index: u32 = num.parse().map_err(|_| bad(format!("odd entry {path}")))?;
            let fmt = model::disk_format_of(ext).ok_or_else(|| bad(format!("odd entry {path}")))?;
            if index > 4096 || disks.iter().any(|(i, _)| *i == index) {
                return Err(bad(format!("odd entry {path}")));
            }
            if disks.len() >= model::MAX_DISKS {
                return Err(bad(format!("more than {} disks", model::MAX_DISKS)));
            }
            if entry.header().size().unwrap_or(0) > image_limit {
                return Err(ApiError::PayloadTooLarge(format!(
                    "{path} is larger than vms.max_disk_bytes allows"
                )));
            }
            let dest = dir.join(format!("disk{index}.{}", fmt.as_str()));
            let mut out = intake::CappedFile::create(&dest, image_limit, path.clone(), trip)?;
            disks.push((index, dest));
            std::io::copy(&mut entry, &mut out).map_err(io)?;
            out.finish().map_err(io)?;
        }
    }
    Ok(Unpacked {
        manifest: manifest.ok_or_else(|| bad("no vm.json in the archive".into()))?,
        disks,
    })
}
