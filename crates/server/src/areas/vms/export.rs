//! Export and import (Xen Orchestra's names): one disk as `.raw`, `.qcow2` or `.vhd`
//! (`?compress=zstd`), a whole VM as `.tar.zst`; an uploaded image as a new disk
//! (`POST /vms/{id}/disks?raw|qcow2|vhd`), an archive as a new VM (`POST /vms?import`).
//!
//! Streaming, never buffering a whole image: a blocking thread reads the image in 1 MiB
//! pieces (through a zstd encoder, or a tar builder and a zstd encoder) into a channel of four
//! pieces that the response body drains; a slow client slows the reader, memory stays flat.
//! qemu-img cannot write to a pipe (it seeks), so a format change or a thin disk's flattening
//! goes to a sparse scratch file on the images file system first, deleted when the stream
//! ends. Uploads are streamed to a scratch file (decompressed on the way), then a job converts
//! them with `qemu-img convert -p` for progress. An uploaded qcow2 with a backing file is
//! refused (it would read a host file into the guest).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hostplane_host::qemu::img;
use hostplane_types::vms::{DiskBus, DiskFormat, VmDisk};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::disks::DiskAddParams;
use super::lifecycle::{VmManager, host_error};
use super::model::{self, VmDef, VmRecord};
use crate::areas::accepted;
use crate::error::{ApiError, ApiResult};
use crate::platform::auth::Principal;
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
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
    let guard = state.vms.lock_req(&rec.id).await?;
    state.vms.require_stopped(&rec.id)?;
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
    let src = PathBuf::from(&disk.path);
    let (path, scratch) = if disk.format.as_str() == format && disk.backing.is_none() {
        (src, Scratch(Vec::new()))
    } else {
        let tmp = scratch_path(&state.vms, "export")?;
        let scratch = Scratch(vec![tmp.clone()]);
        img::convert(&src, disk.format.as_str(), &tmp, format, |_| {})
            .await
            .map_err(host_error)?;
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
    let guard = state.vms.lock_req(&rec.id).await?;
    state.vms.require_stopped(&rec.id)?;
    let mut scratch = Scratch(Vec::new());
    let mut files = Vec::new();
    for d in &rec.def.disks {
        let name = format!("disks/disk{}.{}", d.index, d.format.as_str());
        if d.backing.is_some() {
            let tmp = scratch_path(&state.vms, "export")?;
            scratch.0.push(tmp.clone());
            img::copy_flat(
                Path::new(&d.path),
                d.format.as_str(),
                &tmp,
                d.format.as_str(),
            )
            .await
            .map_err(host_error)?;
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

/// Streams a request body into `dest` (decompressing zstd when asked), at most `limit`
/// decompressed bytes. Returns the bytes written.
pub async fn receive(body: Body, dest: PathBuf, zstd: bool, limit: u64) -> ApiResult<u64> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        struct Counting<W> {
            inner: W,
            n: u64,
            limit: u64,
        }
        impl<W: Write> Write for Counting<W> {
            fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
                self.n += d.len() as u64;
                if self.n > self.limit {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::FileTooLarge,
                        "too large",
                    ));
                }
                self.inner.write(d)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.inner.flush()
            }
        }
        let f = std::fs::File::create(&dest)?;
        let mut counting = Counting {
            inner: std::io::BufWriter::with_capacity(CHUNK, f),
            n: 0,
            limit,
        };
        if zstd {
            let mut dec = zstd::stream::write::Decoder::new(&mut counting)?;
            while let Some(piece) = rx.blocking_recv() {
                dec.write_all(&piece)?;
            }
            dec.flush()?;
        } else {
            while let Some(piece) = rx.blocking_recv() {
                counting.write_all(&piece)?;
            }
        }
        counting.flush()?;
        counting.inner.get_ref().sync_all()?;
        Ok(counting.n)
    });
    let mut stream = body.into_data_stream();
    let mut failed = None;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(b) => {
                if tx.send(b).await.is_err() {
                    break; // the writer failed; its error tells why
                }
            }
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(ApiError::internal)?;
    if let Some(e) = failed {
        return Err(ApiError::invalid(
            "upload_failed",
            format!("reading the upload: {e}"),
        ));
    }
    written.map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => ApiError::PayloadTooLarge(format!(
            "the image is larger than vms.max_disk_bytes ({limit})"
        )),
        _ if zstd => ApiError::invalid("invalid_zstd", format!("not a valid zstd stream: {e}")),
        _ => ApiError::internal(e),
    })
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

/// Checks an uploaded image: the claimed format, no backing file, a bounded size.
async fn check_upload(path: &Path, format: &str, limit: u64) -> Result<img::ImageInfo, JobFailure> {
    let info = img::info(path, Some(format))
        .await
        .map_err(|e| JobFailure::new("invalid_image", format!("not a {format} image: {e}")))?;
    if info.backing.is_some() {
        return Err(JobFailure::new(
            "invalid_image",
            "the image has a backing file; upload a standalone image",
        ));
    }
    if info.virtual_size > limit {
        return Err(JobFailure::new(
            "invalid_image",
            format!(
                "virtual size {} exceeds vms.max_disk_bytes ({limit})",
                info.virtual_size
            ),
        ));
    }
    Ok(info)
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
    let tmp = scratch_path(&state.vms, "upload")?;
    let scratch = Scratch(vec![tmp.clone()]);
    let limit = state.vms.max_disk_bytes;
    receive(body, tmp.clone(), zstd, limit).await?;
    let st = state.clone();
    let vm_id = rec.id.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "vm.disk_import",
            target: Some(format!("/api/v1/vms/{}", rec.id)),
            lock_key: None,
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _scratch = scratch;
            import_disk_job(st, ctx, vm_id, tmp, format, bus, actor).await
        },
    )?;
    Ok(accepted(&job))
}

async fn import_disk_job(
    state: AppState,
    ctx: Arc<JobCtx>,
    vm_id: String,
    tmp: PathBuf,
    format: &'static str,
    bus: DiskBus,
    actor: String,
) -> Result<serde_json::Value, JobFailure> {
    let info = check_upload(&tmp, format, state.vms.max_disk_bytes).await?;
    ctx.log(format!(
        "uploaded a {format} image of {} bytes (virtual)",
        info.virtual_size
    ));
    let _g = state.vms.lock(&vm_id).await;
    let rec =
        model::find(&state.store, &vm_id).map_err(|e| JobFailure::new("vm_gone", e.to_string()))?;
    let index = rec
        .def
        .next
        .disk
        .max(rec.def.disks.iter().map(|d| d.index + 1).max().unwrap_or(0));
    let dir = state.vms.vm_dir(&vm_id);
    std::fs::create_dir_all(&dir).map_err(|e| JobFailure::new("internal", e.to_string()))?;
    let dest = dir.join(format!("disk{index}.qcow2"));
    let c = ctx.clone();
    img::convert(&tmp, format, &dest, "qcow2", move |pct| {
        c.progress(pct.min(99))
    })
    .await
    .map_err(|e| JobFailure::new("convert_failed", e.to_string()))?;
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
    state.vms.publish(&vm_id, &actor);
    ctx.log(format!("disk {index} added ({applied:?})"));
    Ok(serde_json::json!({"disk": disk, "applied": applied, "reason": reason}))
}

pub async fn import_archive(
    state: AppState,
    p: Principal,
    name: Option<String>,
    _headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if let Some(n) = &name {
        model::check_name("name", n)?;
    }
    let tmp = scratch_path(&state.vms, "import")?;
    let scratch = Scratch(vec![tmp.clone()]);
    // The archive stays compressed on disk; the job decompresses while unpacking. Limit: the
    // largest VM (max_disk_bytes per disk, all disks) cannot be checked before reading, so the
    // compressed size is bounded by the same per-disk limit times the disk count.
    let limit = state
        .vms
        .max_disk_bytes
        .saturating_mul(model::MAX_DISKS as u64);
    receive(body, tmp.clone(), false, limit).await?;
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "vm.import",
            target: Some("/api/v1/vms".into()),
            lock_key: None,
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _scratch = scratch;
            import_archive_job(st, ctx, tmp, name, actor).await
        },
    )?;
    Ok(accepted(&job))
}

async fn import_archive_job(
    state: AppState,
    ctx: Arc<JobCtx>,
    archive: PathBuf,
    name: Option<String>,
    actor: String,
) -> Result<serde_json::Value, JobFailure> {
    let id = uuid::Uuid::now_v7().to_string();
    let dir = state.vms.vm_dir(&id);
    std::fs::create_dir_all(&dir).map_err(|e| JobFailure::new("internal", e.to_string()))?;
    let total = std::fs::metadata(&archive)
        .map(|m| m.len())
        .unwrap_or(1)
        .max(1);
    let c = ctx.clone();
    let d = dir.clone();
    let unpacked = tokio::task::spawn_blocking(move || unpack(&archive, &d, total, &c))
        .await
        .map_err(|e| JobFailure::new("internal", e.to_string()))
        .and_then(|r| r);
    let result = async {
        let (manifest, disk_files) = unpacked?;
        let name = name.unwrap_or(manifest.name.clone());
        model::check_name("name", &name)
            .map_err(|e| JobFailure::new("invalid_name", e.to_string()))?;
        let limits = state.vms.limits();
        let mut def = manifest.def;
        limits
            .check_vcpus("vcpus", def.vcpus)
            .and_then(|_| limits.check_memory("memory_mib", def.memory_mib))
            .map_err(|e| JobFailure::new("invalid_archive", e.to_string()))?;
        let mut disks: Vec<VmDisk> = Vec::new();
        for old in &def.disks {
            let Some(path) = disk_files
                .iter()
                .find(|(i, _)| *i == old.index)
                .map(|(_, p)| p.clone())
            else {
                return Err(JobFailure::new(
                    "invalid_archive",
                    format!("disk {} is missing", old.index),
                ));
            };
            let info = check_upload(&path, old.format.as_str(), state.vms.max_disk_bytes).await?;
            disks.push(model::disk_entry(
                old.index,
                &path,
                old.format,
                old.bus,
                info.virtual_size,
                None,
                true,
            ));
        }
        def.disks = disks;
        // Files outside the archive are kept only when they resolve here too.
        let ok = |s: &Option<String>| {
            s.as_ref().is_some_and(|p| {
                model::resolve_file("x", p, &state.vms.images_dir, &state.vms.roots).is_ok()
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
        let now = crate::platform::time::now_string();
        let rec = VmRecord {
            id: id.clone(),
            name,
            def,
            created_at: now.clone(),
            updated_at: now,
        };
        model::insert(&state.store, &rec)
            .map_err(|e| JobFailure::new("vm_exists", e.to_string()))?;
        Ok(rec)
    }
    .await;
    match result {
        Ok(rec) => {
            let vm = state.vms.view(&rec);
            state.events.publish(
                "resource.created",
                &vm.href,
                &actor,
                serde_json::to_value(&vm).unwrap_or_default(),
            );
            ctx.log(format!("created VM {} ({})", rec.name, rec.id));
            Ok(serde_json::to_value(&vm).unwrap_or_default())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// Unpacks a VM archive into `dir`: the manifest and `(disk index, path)` pairs.
fn unpack(
    archive: &Path,
    dir: &Path,
    total: u64,
    ctx: &JobCtx,
) -> Result<(Manifest, Vec<(u32, PathBuf)>), JobFailure> {
    let bad = |m: String| JobFailure::new("invalid_archive", m);
    let f = std::fs::File::open(archive).map_err(|e| JobFailure::new("internal", e.to_string()))?;
    let counter = ProgressReader {
        inner: f,
        n: 0,
        total,
        ctx,
    };
    let dec = zstd::stream::read::Decoder::new(counter).map_err(|e| bad(e.to_string()))?;
    let mut tar = tar::Archive::new(dec);
    let mut manifest: Option<Manifest> = None;
    let mut disks = Vec::new();
    for entry in tar
        .entries()
        .map_err(|e| bad(format!("not a tar.zst archive: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("reading the archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if path == "vm.json" {
            let mut s = Vec::new();
            (&mut entry)
                .take(1 << 20)
                .read_to_end(&mut s)
                .map_err(|e| bad(e.to_string()))?;
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
            if index > 4096 {
                return Err(bad(format!("odd entry {path}")));
            }
            let dest = dir.join(format!("disk{index}.{}", fmt.as_str()));
            let mut out = std::fs::File::create(&dest)
                .map_err(|e| JobFailure::new("internal", e.to_string()))?;
            std::io::copy(&mut entry, &mut out).map_err(|e| bad(e.to_string()))?;
            disks.push((index, dest));
        }
    }
    Ok((
        manifest.ok_or_else(|| bad("no vm.json in the archive".into()))?,
        disks,
    ))
}

struct ProgressReader<'a, R> {
    inner: R,
    n: u64,
    total: u64,
    ctx: &'a JobCtx,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        self.ctx.progress((self.n * 99 / self.total) as u8);
        Ok(n)
    }
}
