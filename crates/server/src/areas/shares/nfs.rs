//! `/api/v1/shares/nfs`: NFS exports, served by kernel nfsd or nfs-ganesha (see
//! [`super::nfs_backend`]).
//!
//! Handlers build a [`ShareRecord`], check it ([`check`]) and hand it to [`super::apply`];
//! [`export`] turns a record into what `hostplane_host::nfs` renders. Each export keeps the
//! id it got at creation (ganesha `Export_Id`, kernel `fsid`), so clients' file handles stay
//! valid across renames and restarts.

use std::path::Path as FsPath;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hostplane_host::nfs::{self as host_nfs, ClientSpec, ExportSpec};
use hostplane_types::shares::{
    CreateNfsShareRequest, NfsAccess, NfsBackend, NfsClientRule, NfsShare, NfsSquash,
    ShareProtocol, UpdateNfsShareRequest,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::registry::{NfsOptions, Options, ShareRecord};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::CollectionParams;
use crate::http::extract::{Json, Query};
use crate::platform::time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

const P: ShareProtocol = ShareProtocol::Nfs;

fn opts(r: &ShareRecord) -> &NfsOptions {
    match &r.options {
        Options::Nfs(o) => o,
        Options::Smb(_) => unreachable!("an NFS route loaded an SMB record"),
    }
}

pub fn view(resolver: &mut super::Resolver, r: &ShareRecord) -> NfsShare {
    let res = super::resolve(resolver, r);
    let o = opts(r);
    NfsShare {
        href: r.href(),
        name: r.name.clone(),
        pool: r.pool.clone(),
        dataset: r.dataset.clone(),
        subpath: r.subpath.clone(),
        path: super::shown_path(resolver.state, r, &res),
        enabled: r.enabled,
        state: super::share_state(r, &res),
        problem: res.as_ref().err().map(|u| u.message().to_string()),
        comment: r.comment.clone(),
        pseudo: format!("/{}", r.name),
        export_id: o.export_id,
        read_only: o.read_only,
        squash: o.squash,
        clients: o.clients.clone(),
        created_at: r.created_at.clone(),
        updated_at: r.updated_at.clone(),
    }
}

/// What the NFS server is told about an active export.
pub fn export(r: &ShareRecord, o: &NfsOptions, path: &FsPath) -> ExportSpec {
    ExportSpec {
        id: o.export_id,
        path: path.display().to_string(),
        pseudo: format!("/{}", r.name),
        read_only: o.read_only,
        squash: o.squash,
        clients: o
            .clients
            .iter()
            .map(|c| ClientSpec {
                host: c.host.clone(),
                access: c.access.unwrap_or(if o.read_only {
                    NfsAccess::Ro
                } else {
                    NfsAccess::Rw
                }),
                squash: c.squash.unwrap_or(o.squash),
            })
            .collect(),
    }
}

fn check(state: &AppState, r: &ShareRecord, others: &[ShareRecord]) -> ApiResult<()> {
    super::check_common(state, r, others)?;
    check_clients(&opts(r).clients)?;
    if super::nfs_backend(state) == NfsBackend::Off {
        return Err(ApiError::NotSupported {
            code: "nfs_disabled",
            detail: "NFS exports are switched off ([shares] nfs_backend = \"off\")".into(),
        });
    }
    Ok(())
}

fn check_clients(clients: &[NfsClientRule]) -> ApiResult<()> {
    if clients.is_empty() || clients.len() > 64 {
        return Err(ApiError::invalid_field(
            "invalid_clients",
            "clients",
            "1 to 64 rules; {\"host\": \"*\"} admits everyone",
        ));
    }
    for (i, c) in clients.iter().enumerate() {
        host_nfs::check_client(&c.host).map_err(|e| {
            ApiError::invalid_field("invalid_client", format!("clients[{i}].host"), e)
        })?;
        if clients[..i].iter().any(|o| o.host == c.host) {
            return Err(ApiError::invalid_field(
                "invalid_client",
                format!("clients[{i}].host"),
                format!("{:?} is listed twice", c.host),
            ));
        }
    }
    Ok(())
}

const NFS: super::Protocol<NfsShare> = super::Protocol {
    protocol: P,
    view,
    check,
};

/// List NFS exports.
#[utoipa::path(get, path = "/api/v1/shares/nfs",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("shares:read"))),
    tag = "shares", params(CollectionParams),
    responses((status = 200, description = "NFS exports", body = [NfsShare],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    NFS.list(&state, &params, &headers)
}

/// Export a dataset folder over NFS (NFSv4 pseudo path `/<name>`).
#[utoipa::path(post, path = "/api/v1/shares/nfs",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("shares:write"))),
    tag = "shares", request_body = CreateNfsShareRequest,
    responses((status = 201, description = "Created", body = NfsShare)))]
async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<CreateNfsShareRequest>,
) -> ApiResult<Response> {
    let now = time::now_string();
    NFS.create(&state, &p.user, |recs| {
        // Ids are never reused while the share exists: clients' file handles carry them.
        let export_id = recs
            .iter()
            .filter_map(|r| match &r.options {
                Options::Nfs(o) => Some(o.export_id),
                Options::Smb(_) => None,
            })
            .max()
            .unwrap_or(0)
            + 1;
        ShareRecord {
            name: req.name,
            pool: req.pool,
            dataset: req.dataset,
            subpath: req.subpath.unwrap_or_default(),
            enabled: req.enabled.unwrap_or(true),
            comment: req.comment.unwrap_or_default(),
            options: Options::Nfs(NfsOptions {
                export_id,
                read_only: req.read_only.unwrap_or(false),
                squash: req.squash.unwrap_or(NfsSquash::Root),
                clients: req.clients,
            }),
            created_at: now.clone(),
            updated_at: now,
        }
    })
    .await
}

/// One NFS export.
#[utoipa::path(get, path = "/api/v1/shares/nfs/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("shares:read"))),
    tag = "shares",
    params(("name" = String, Path, description = "Export name (any case)")),
    responses((status = 200, description = "The export", body = NfsShare,
        headers(("etag" = String, description = "Send as If-Match to update safely")))))]
async fn get_one(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    NFS.get(&state, &name)
}

/// Change an NFS export; the server rereads its exports.
#[utoipa::path(patch, path = "/api/v1/shares/nfs/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("shares:write"))),
    tag = "shares", request_body = UpdateNfsShareRequest,
    params(("name" = String, Path, description = "Export name (any case)"),
        ("If-Match" = Option<String>, Header, description = "ETag from a previous read; 412 if the export changed since")),
    responses((status = 200, description = "The export", body = NfsShare),
        (status = 412, description = "If-Match does not match", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn update(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<UpdateNfsShareRequest>,
) -> ApiResult<Response> {
    let common = super::CommonPatch {
        name: req.name,
        pool: req.pool,
        dataset: req.dataset,
        subpath: req.subpath,
        enabled: req.enabled,
        comment: req.comment,
    };
    NFS.update(&state, &p.user, &name, &headers, common, |o| {
        let Options::Nfs(o) = o else { return };
        if let Some(v) = req.read_only {
            o.read_only = v;
        }
        if let Some(v) = req.squash {
            o.squash = v;
        }
        if let Some(v) = req.clients {
            o.clients = v;
        }
    })
    .await
}

/// Stop exporting (the folder and its files stay).
#[utoipa::path(delete, path = "/api/v1/shares/nfs/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("shares:write"))),
    tag = "shares",
    params(("name" = String, Path, description = "Export name (any case)"),
        ("If-Match" = Option<String>, Header, description = "ETag from a previous read; 412 if the export changed since")),
    responses((status = 204, description = "Deleted"),
        (status = 412, description = "If-Match does not match", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn delete(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    NFS.delete(&state, &p.user, &name, &headers).await
}

/// Where ganesha exports a share from: a bind mount of the share's folder at
/// `<pools.mount_root>/.nfs-exports/<export id>`.
///
/// Why: ganesha's VFS backend only exports folders on filesystems it finds in the mount table,
/// and a btrfs subvolume (a dataset) has its own device number that no mount-table entry
/// carries (`resolve_posix_filesystem … No such file or directory`; ganesha issues #703,
/// #1177). A bind mount of the folder is such an entry. Binding elsewhere rather than onto the
/// dataset itself keeps the dataset renamable (a mount point cannot be renamed).
pub fn bind_path(state: &AppState, export_id: u32) -> std::path::PathBuf {
    bind_root(state).join(export_id.to_string())
}

fn bind_root(state: &AppState) -> std::path::PathBuf {
    state.config.pools.mount_root.join(".nfs-exports")
}

fn same_dir(a: &FsPath, b: &FsPath) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Makes every bind mount point at its folder (a rollback swaps the folder for another
/// subvolume; a rename keeps it). Returns whether any bind was made, and the bind mounts that
/// replaced an existing one (their exports must be re-created in ganesha).
pub async fn ensure_binds(
    binds: &[(std::path::PathBuf, std::path::PathBuf)],
) -> ApiResult<(bool, Vec<std::path::PathBuf>)> {
    use hostplane_host::blockdev;
    let mut made = false;
    let mut replaced = Vec::new();
    // Each bind has its own mount point: one read of the table serves them all.
    let mounts = hostplane_host::disks::mounts().map_err(ApiError::internal)?;
    for (src, dst) in binds {
        let bound = hostplane_host::disks::mount_at(&mounts, dst).is_some();
        if bound && same_dir(src, dst) {
            continue;
        }
        if bound {
            let _ = blockdev::umount_lazy(&dst.to_string_lossy()).await;
            replaced.push(dst.clone());
        }
        std::fs::create_dir_all(dst)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", dst.display())))?;
        blockdev::mount(
            None,
            &["bind".to_string()],
            &src.to_string_lossy(),
            &dst.to_string_lossy(),
        )
        .await
        .map_err(ApiError::from)?;
        made = true;
    }
    Ok((made, replaced))
}

/// Unmounts the bind mounts no export uses any more (after ganesha let go of them).
pub async fn drop_stale_binds(state: &AppState, keep: &[(std::path::PathBuf, std::path::PathBuf)]) {
    let root = bind_root(state);
    let Ok(mounts) = hostplane_host::disks::mounts() else {
        return;
    };
    for m in mounts.iter().rev() {
        let mp = std::path::Path::new(&m.mount_point);
        if mp.parent() != Some(root.as_path()) || keep.iter().any(|(_, d)| d == mp) {
            continue;
        }
        let p = m.mount_point.clone();
        if hostplane_host::blockdev::umount(&p).await.is_err() {
            let _ = hostplane_host::blockdev::umount_lazy(&p).await;
        }
        let _ = std::fs::remove_dir(mp);
    }
}
