//! Templates and cloud-init.
//!
//! A template is a read-only base image in `images_dir/templates/<name>.qcow2`, recorded in the
//! `vm_templates` table. It comes from a Vagrant box (libvirt provider: a tar, usually gzipped,
//! with `metadata.json` and `box.img`), uploaded (`POST /vms/templates?name=`, the box as the
//! body) or fetched from a URL (`POST /vms/templates` with JSON `{name, url}`). The box is
//! unpacked while it streams in (limits counted on the decompressed bytes, see
//! [`super::intake`]) and its image checked (`qemu-img info`: the format metadata.json names,
//! no reference to any other file, a virtual size within `max_disk_bytes`): an upload during
//! the request (a bad box is a 4xx answer), a download in the job, after the URL passed the
//! address policy of [`super::fetch`] (each redirect hop too). The job records the template.
//! `POST /vms` with `template` makes the first disk from it, a full copy or a thin overlay.
//!
//! cloud-init: a VM created with `cloud_init` gets a NoCloud seed, an ISO 9660 image labelled
//! `cidata` with `user-data`, `meta-data` and `network-config`, made with genisoimage (or
//! xorriso) and attached as a CD-ROM.

use std::io::{BufRead, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use hostplane_host::qemu::img;
use hostplane_host::qemu::seed::{self, IsoTool, SeedFile};
use hostplane_types::vms::{
    CloneStrategy, CloudInit, DiskBus, DiskFormat, Template, TemplateFromUrl, VmCdrom, VmDisk,
};
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::checksum;
use crate::platform::fetch;
use super::intake::{self, TempPath};
use super::model;
use crate::http::answer::accepted;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::Query;
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use super::VmsState;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, delete_template))
}

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Template> {
    let data: String = r.get(1)?;
    serde_json::from_str(&data).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn load_all(state: &AppState) -> ApiResult<Vec<Template>> {
    Ok(state.store.read(|c| {
        let mut st = c.prepare("SELECT name, data FROM vm_templates ORDER BY name")?;
        st.query_map([], from_row)?.collect()
    })?)
}

pub fn find(state: &AppState, name: &str) -> ApiResult<Template> {
    state
        .store
        .read(|c| {
            c.query_row(
                "SELECT name, data FROM vm_templates WHERE name = ?1",
                [name],
                from_row,
            )
            .optional()
        })?
        .ok_or_else(|| ApiError::not_found(format!("no template {name:?}")))
}

/// List templates.
#[utoipa::path(get, path = "/api/v1/vms/templates",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms", params(CollectionParams),
    responses((status = 200, description = "Templates", body = [Template])))]
async fn list_templates(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(load_all(&state)?, &params, &headers)
}

/// Get one template.
#[utoipa::path(get, path = "/api/v1/vms/templates/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms",
    params(("name" = String, Path, description = "Template name")),
    responses((status = 200, description = "The template", body = Template)))]
async fn get_template(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<axum::Json<Template>> {
    find(&state, &name).map(axum::Json)
}

/// Delete a template no VM disk is backed by.
#[utoipa::path(delete, path = "/api/v1/vms/templates/{name}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("name" = String, Path, description = "Template name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_template(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<StatusCode> {
    let t = find(&state, &name)?;
    let users: Vec<String> = model::load_all(&state.store)?
        .into_iter()
        .filter(|r| {
            r.def
                .disks
                .iter()
                .any(|d| d.backing.as_deref() == Some(t.path.as_str()))
        })
        .map(|r| r.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::conflict(
            "template_in_use",
            format!("thin disks of {} use it", users.join(", ")),
        ));
    }
    state
        .store
        .write(|tx| tx.execute("DELETE FROM vm_templates WHERE name = ?1", [&name]))?;
    let _ = std::fs::remove_file(&t.path);
    state.events.publish(
        "resource.deleted",
        &t.href,
        &p.user,
        serde_json::to_value(&t).unwrap_or_default(),
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadParams {
    /// Name of the template (for an uploaded box; with it the body is the `.box`, not JSON).
    #[param(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    name: Option<String>,
}

/// Import a Vagrant box (libvirt provider) as a template: upload the `.box` as the body with
/// `?name=`, or send JSON `{name, url}` to fetch it. A job; its result is the template.
#[utoipa::path(post, path = "/api/v1/vms/templates",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms", params(UploadParams),
    request_body(content((TemplateFromUrl = "application/json"), (Vec<u8> = "application/octet-stream")),
        description = "JSON {name, url}, or the .box itself"),
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn create_template(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(q): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let is_json = super::json_content(&headers) == Some(true);
    // Without `?name=` the body is JSON {name, url}; an upload needs the name in the query.
    if !is_json && (q.name.is_none() || super::json_content(&headers).is_none()) {
        let msg = "send JSON {name, url} (Content-Type: application/json), or the .box with ?name=";
        return super::refuse(body, ApiError::UnsupportedMediaType(msg.into())).await;
    }
    let mut body = Some(body);
    let (name, source, url) = if is_json {
        let bytes = axum::body::to_bytes(body.take().unwrap_or_default(), 64 * 1024)
            .await
            .map_err(|e| ApiError::PayloadTooLarge(e.to_string()))?;
        let req: TemplateFromUrl = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?;
        if !box_url_ok(&req.url) {
            return Err(ApiError::invalid_field(
                "invalid_url",
                "url",
                "an http:// or https:// URL with a host name or IPv4 address, at most 2048 \
                 printable ASCII characters",
            ));
        }
        let parsed = reqwest::Url::parse(&req.url)
            .map_err(|e| ApiError::invalid_field("invalid_url", "url", e.to_string()))?;
        // Refused now when it already points somewhere it must not; each redirect hop is
        // checked again by the download.
        fetch::resolve_checked(&parsed, &state.vms().url_allow).await?;
        (req.name, req.url.clone(), Some(req.url))
    } else {
        let name = q.name.ok_or_else(|| {
            ApiError::invalid_field("invalid_name", "name", "?name= names the template")
        })?;
        (name, "upload".to_string(), None)
    };
    let early = hostplane_host::validate_name("template", &name)
        .map_err(|e| ApiError::invalid_field("invalid_name", "name", e.to_string()))
        .and_then(|_| match find(&state, &name) {
            Ok(_) => Err(ApiError::conflict(
                "template_exists",
                format!("template {name:?} exists"),
            )),
            Err(_) => Ok(()),
        })
        .and_then(|_| match &url {
            None => super::export::precheck_upload(state.vms(), &headers).map(|_| ()),
            Some(_) => Ok(()),
        });
    if let Err(e) = early {
        return match body {
            Some(b) => super::refuse(b, e).await,
            None => Err(e),
        };
    }
    // The unpacked box.img; removed on every error path, moved into place by the job.
    let staging = TempPath::new(
        state
            .vms()
            .tmp_dir()
            .map_err(ApiError::internal)?
            .join(format!("box-{}.img", uuid::Uuid::now_v7())),
    );
    let lim = BoxLimits::of(&state);
    // An upload is unpacked and checked now: a bad box is a 4xx answer to the upload.
    let uploaded = match (&url, body) {
        (None, Some(body)) => {
            let dest = staging.path().to_path_buf();
            let metadata = intake::stream_into(
                body.into_data_stream(),
                state.vms().max_upload_bytes,
                move |r, trip| unpack_box(r, &dest, lim, trip),
            )
            .await?;
            let (fmt, info) = check_box(&state, &metadata, staging.path()).await?;
            Some((metadata, fmt, info))
        }
        _ => None,
    };
    let st = state.clone();
    let actor = p.user.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "vms.template_import",
            target: Some(format!("/api/v1/vms/templates/{name}")),
            lock_key: Some(format!("vms/templates/{name}")),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let (metadata, fmt, info) = match (uploaded, url) {
                (Some(u), _) => u,
                (None, Some(u)) => {
                    let dl = BoxDownload {
                        url: u,
                        auth: None,
                        checksum: None,
                    };
                    download_box(&st, &ctx, &dl, staging.path(), lim).await?
                }
                (None, None) => return Err(JobFailure::new("internal", "nothing to import")),
            };
            finish_template(
                &st, &ctx, &name, &source, staging, fmt, info, metadata, &actor,
            )
        },
    )?;
    Ok(accepted(&job))
}

/// Limits of unpacking one box.
#[derive(Debug, Clone, Copy)]
struct BoxLimits {
    /// box.img, as written.
    image: u64,
    /// Everything out of the gzip decompressor (box.img, metadata.json, skipped entries).
    total: u64,
}

impl BoxLimits {
    fn of(state: &AppState) -> BoxLimits {
        let image = super::export::image_file_limit(state.vms().max_disk_bytes);
        BoxLimits {
            image,
            total: image
                .saturating_add(16 << 20)
                .min(state.vms().max_upload_bytes),
        }
    }
}

/// A box to download: its URL, the credentials of its registry's origin, the checksum its
/// catalog declares.
pub(crate) struct BoxDownload {
    pub url: String,
    pub auth: Option<fetch::OriginAuth>,
    pub checksum: Option<checksum::Expected>,
}

/// Starts the job that downloads `dl` into the new template `name` (kind `kind`): what
/// [`create_template`] does for a URL, for callers that found the URL elsewhere (a registry).
/// The name is checked first (format, not taken: 422/409 now, not in the job).
pub(crate) fn spawn_download(
    state: &AppState,
    kind: &'static str,
    actor: &str,
    name: &str,
    source: String,
    dl: BoxDownload,
) -> ApiResult<hostplane_types::jobs::Job> {
    hostplane_host::validate_name("template", name)
        .map_err(|e| ApiError::invalid_field("invalid_name", "template", e.to_string()))?;
    if find(state, name).is_ok() {
        return Err(ApiError::conflict(
            "template_exists",
            format!("template {name:?} exists"),
        ));
    }
    let staging = TempPath::new(
        state
            .vms()
            .tmp_dir()
            .map_err(ApiError::internal)?
            .join(format!("box-{}.img", uuid::Uuid::now_v7())),
    );
    let lim = BoxLimits::of(state);
    let st = state.clone();
    let actor = actor.to_string();
    let name = name.to_string();
    state.jobs.spawn(
        JobSpec {
            kind,
            target: Some(format!("/api/v1/vms/templates/{name}")),
            lock_key: Some(format!("vms/templates/{name}")),
            actor: actor.clone(),
        },
        move |ctx| async move {
            let (metadata, fmt, info) = download_box(&st, &ctx, &dl, staging.path(), lim).await?;
            finish_template(
                &st, &ctx, &name, &source, staging, fmt, info, metadata, &actor,
            )
        },
    )
}

/// Downloads the box (each hop checked, see [`crate::platform::fetch`]) and unpacks it while it arrives; with a
/// declared checksum, the bytes as served must match it (`checksum_mismatch`) before the image
/// is checked or kept.
async fn download_box(
    state: &AppState,
    ctx: &Arc<JobCtx>,
    dl: &BoxDownload,
    dest: &Path,
    lim: BoxLimits,
) -> Result<(serde_json::Value, DiskFormat, img::ImageInfo), JobFailure> {
    let url = dl.url.as_str();
    let resp = fetch::get_with(url, &state.vms().url_allow, dl.auth.as_ref())
        .await
        .map_err(intake::job_failure)?;
    if !resp.status().is_success() {
        return Err(JobFailure::new(
            "download_failed",
            format!("{url}: HTTP {}", resp.status()),
        ));
    }
    let total = resp.content_length().filter(|t| *t > 0);
    if let Some(t) = total {
        if t > state.vms().max_upload_bytes {
            return Err(JobFailure::new(
                "payload_too_large",
                format!(
                    "the box ({t} bytes) is larger than vms.max_upload_bytes ({})",
                    state.vms().max_upload_bytes
                ),
            ));
        }
        intake::ensure_space(&state.vms().images_dir, t).map_err(intake::job_failure)?;
    }
    let hasher = Arc::new(std::sync::Mutex::new(
        dl.checksum
            .as_ref()
            .map(|e| checksum::Hasher::new(e.kind)),
    ));
    let mut n = 0u64;
    let c = ctx.clone();
    let h = hasher.clone();
    let stream = Box::pin(resp.bytes_stream().inspect(move |piece| {
        if let Ok(b) = piece {
            if let Some(h) = h.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                h.update(b);
            }
            if let Some(t) = total {
                n += b.len() as u64;
                c.progress((n.min(t) * 90 / t) as u8);
            }
        }
    }));
    let d = dest.to_path_buf();
    let metadata = intake::stream_into(stream, state.vms().max_upload_bytes, move |r, trip| {
        unpack_box(r, &d, lim, trip)
    })
    .await
    .map_err(intake::job_failure)?;
    ctx.log(format!("downloaded and unpacked {url}"));
    let running = hasher.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let (Some(want), Some(h)) = (&dl.checksum, running) {
        // unpack_box stops after the tar's last entry; what is left of the stream (GNU tar's
        // padding) was read by the pump all the same, so the digest covers the whole file.
        let got = h.hex();
        if got != want.hex {
            return Err(JobFailure::new(
                "checksum_mismatch",
                format!(
                    "{} of the box is {got}, the registry declares {}",
                    want.kind.name(),
                    want.hex
                ),
            ));
        }
        ctx.log(format!("{} checksum verified", want.kind.name()));
    }
    let (fmt, info) = check_box(state, &metadata, dest)
        .await
        .map_err(intake::job_failure)?;
    Ok((metadata, fmt, info))
}

/// The box's image: the format metadata.json names, standalone, within `max_disk_bytes`.
async fn check_box(
    state: &AppState,
    metadata: &serde_json::Value,
    image: &Path,
) -> ApiResult<(DiskFormat, img::ImageInfo)> {
    let format = metadata["format"].as_str().unwrap_or("qcow2");
    let fmt = model::disk_format_of(format).ok_or_else(|| {
        ApiError::invalid(
            "invalid_box",
            format!("box format {format:?} is not qcow2 or raw"),
        )
    })?;
    let info = intake::check_image(image, Some(fmt.as_str()), state.vms().max_disk_bytes, None)
        .await
        .map_err(|e| match e {
            ApiError::Invalid { code, detail, .. } => {
                ApiError::invalid(code, format!("box.img: {detail}"))
            }
            other => other,
        })?;
    Ok((fmt, info))
}

/// Moves the checked image into `templates/` and records the template.
#[allow(clippy::too_many_arguments)]
fn finish_template(
    state: &AppState,
    ctx: &JobCtx,
    name: &str,
    source: &str,
    staging: TempPath,
    fmt: DiskFormat,
    info: img::ImageInfo,
    metadata: serde_json::Value,
    actor: &str,
) -> Result<Template, JobFailure> {
    let dir = state.vms().templates_dir();
    std::fs::create_dir_all(&dir).map_err(|e| JobFailure::new("internal", e.to_string()))?;
    let path = dir.join(format!("{name}.{}", fmt.as_str()));
    if path.exists() || find(state, name).is_ok() {
        return Err(JobFailure::new(
            "template_exists",
            format!("template {name:?} exists"),
        ));
    }
    std::fs::rename(staging.path(), &path)
        .map_err(|e| JobFailure::new("internal", e.to_string()))?;
    staging.keep();
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444));
    let t = Template {
        name: name.to_string(),
        href: format!("/api/v1/vms/templates/{name}"),
        path: path.to_string_lossy().into_owned(),
        format: fmt,
        size_bytes: info.virtual_size,
        source: source.to_string(),
        metadata,
        created_at: crate::platform::time::now_string(),
    };
    let data = serde_json::to_string(&t).map_err(|e| JobFailure::new("internal", e.to_string()))?;
    let inserted = state.store.write(|tx| {
        tx.execute(
            "INSERT INTO vm_templates(name, data, created_at) VALUES (?1, ?2, ?3)",
            params![t.name, data, t.created_at],
        )
    });
    if let Err(e) = inserted {
        let _ = std::fs::remove_file(&path);
        return Err(JobFailure::new("template_exists", e.to_string()));
    }
    state.events.publish(
        "resource.created",
        &t.href,
        actor,
        serde_json::to_value(&t).unwrap_or_default(),
    );
    ctx.log(format!(
        "template {name}: {} bytes ({})",
        t.size_bytes,
        fmt.as_str()
    ));
    Ok(t)
}

/// Reads a `.box` (tar, gzipped or not) from `r`: writes `box.img` to `dest`, returns
/// metadata.json. Limits: [`BoxLimits`], counted on the decompressed bytes.
fn unpack_box(
    r: &mut dyn Read,
    dest: &Path,
    lim: BoxLimits,
    trip: &intake::Trip,
) -> ApiResult<serde_json::Value> {
    let bad = |m: String| ApiError::invalid("invalid_box", m);
    let io = |e: std::io::Error| intake::io_error(e, trip, bad);
    let mut buffered = std::io::BufReader::new(r);
    let gz = buffered.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let reader = intake::CappedReader::new(reader, lim.total, "the unpacked box", trip);
    let mut tar = tar::Archive::new(reader);
    let mut metadata = None;
    let mut image = false;
    let entries = tar
        .entries()
        .map_err(|e| intake::io_error(e, trip, |m| bad(format!("not a tar archive: {m}"))))?;
    for entry in entries {
        let mut entry = entry
            .map_err(|e| intake::io_error(e, trip, |m| bad(format!("reading the box: {m}"))))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        match path.trim_start_matches("./") {
            "metadata.json" => {
                let mut s = Vec::new();
                (&mut entry).take(1 << 20).read_to_end(&mut s).map_err(io)?;
                let m: serde_json::Value =
                    serde_json::from_slice(&s).map_err(|e| bad(format!("metadata.json: {e}")))?;
                if let Some(p) = m["provider"].as_str()
                    && p != "libvirt"
                {
                    return Err(bad(format!(
                        "provider {p:?}: only libvirt boxes hold a QEMU image"
                    )));
                }
                metadata = Some(m);
            }
            "box.img" => {
                if image {
                    return Err(bad("two box.img in the box".into()));
                }
                if entry.header().size().unwrap_or(0) > lim.image {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "box.img is larger than vms.max_disk_bytes allows ({} bytes)",
                        lim.image
                    )));
                }
                let mut out = intake::CappedFile::create(dest, lim.image, "box.img", trip)?;
                std::io::copy(&mut entry, &mut out).map_err(io)?;
                out.finish().map_err(io)?;
                image = true;
            }
            _ => {}
        }
    }
    if !image {
        return Err(bad("no box.img in the box".into()));
    }
    metadata.ok_or_else(|| bad("no metadata.json in the box".into()))
}

/// Disk `index` of a new VM made from template `t` in `dir`.
pub async fn disk_from_template(
    _state: &AppState,
    t: &Template,
    dir: &Path,
    index: u32,
    strategy: CloneStrategy,
) -> ApiResult<VmDisk> {
    let base = PathBuf::from(&t.path);
    let dest = dir.join(format!("disk{index}.qcow2"));
    match strategy {
        CloneStrategy::Full => {
            img::copy_flat(&base, t.format.as_str(), &dest, "qcow2")
                .await
                .map_err(ApiError::from)?;
            Ok(model::disk_entry(
                index,
                &dest,
                DiskFormat::Qcow2,
                DiskBus::Virtio,
                t.size_bytes,
                None,
                true,
            ))
        }
        CloneStrategy::Thin => {
            img::create(&dest, "qcow2", None, Some((&base, t.format.as_str())))
                .await
                .map_err(ApiError::from)?;
            Ok(model::disk_entry(
                index,
                &dest,
                DiskFormat::Qcow2,
                DiskBus::Virtio,
                t.size_bytes,
                Some(t.path.clone()),
                true,
            ))
        }
    }
}

/// Writes the NoCloud seed ISO for a VM and returns its CD-ROM entry.
pub async fn cloud_init_seed(
    dir: &Path,
    id: &str,
    name: &str,
    c: &CloudInit,
    index: u32,
) -> ApiResult<VmCdrom> {
    let src = dir.join("cidata");
    std::fs::create_dir_all(&src).map_err(ApiError::internal)?;
    let meta = c
        .meta_data
        .clone()
        .unwrap_or_else(|| format!("instance-id: {id}\nlocal-hostname: {name}\n"));
    let mut files = vec![
        (SeedFile::UserData, c.user_data.clone()),
        (SeedFile::MetaData, meta),
    ];
    if let Some(n) = &c.network_config {
        files.push((SeedFile::NetworkConfig, n.clone()));
    }
    for (f, text) in &files {
        std::fs::write(src.join(f.name()), text).map_err(ApiError::internal)?;
    }
    let iso = dir.join("seed.iso");
    let names: Vec<SeedFile> = files.iter().map(|(f, _)| *f).collect();
    let tool = IsoTool::find().ok_or_else(|| {
        ApiError::tool_missing("cloud-init needs genisoimage (or xorriso) to write the seed ISO")
    })?;
    seed::write_iso(tool, &src, &names, &iso)
        .await
        .map_err(ApiError::from)?;
    let _ = std::fs::remove_dir_all(&src);
    Ok(VmCdrom {
        index,
        iso: Some(iso.to_string_lossy().into_owned()),
        cloud_init: true,
    })
}

/// The rule documented as `TemplateFromUrl.url`'s pattern: `http(s)://`, a host name whose last
/// label is letters only (so the URL parser never reads it as an IPv4 number) or a dotted IPv4
/// address without leading zeros, an optional port ≤ 65535, then `/`, `?` or `#` and printable
/// ASCII; at most 2048 characters.
pub(crate) fn box_url_ok(url: &str) -> bool {
    fn octet(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 3
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'))
            && s.parse::<u16>().is_ok_and(|n| n <= 255)
    }
    fn host_ok(h: &str) -> bool {
        let labels: Vec<&str> = h.split('.').collect();
        let name = labels
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            && labels
                .last()
                .is_some_and(|l| l.bytes().all(|b| b.is_ascii_alphabetic()));
        name || (labels.len() == 4 && labels.iter().all(|l| octet(l)))
    }
    if url.len() > 2048 {
        return false;
    }
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p.len() < 5 || !p.starts_with('0'))
            && p.parse::<u32>().is_ok_and(|n| n <= 65535)
    });
    host_ok(host) && port_ok && tail.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

#[cfg(test)]
mod url_tests {
    use super::box_url_ok;

    #[test]
    fn box_urls() {
        for ok in [
            "http://127.0.0.1:8080/test.box",
            "https://cloud-images.ubuntu.com/x/y.box?a=b#c",
            "http://localhost",
            "http://a:0",
            "https://x.y:65535/",
        ] {
            assert!(box_url_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "ftp://x/",
            "http://",
            "http://a.999/",
            "http://1.2.3/",
            "http://01.2.3.4/",
            "http://256.1.1.1/",
            "http://a:65536/",
            "http://a:/",
            "http://a..b/",
            "http://a/ b",
            "http://a@b/",
        ] {
            assert!(!box_url_ok(bad), "{bad}");
        }
    }
}
