//! `/api/v1/shares`: SMB shares on Samba and NFS exports (kernel nfsd or nfs-ganesha) of pool
//! datasets, and the share users' Samba accounts.
//!
//! Request flow: a handler ([`smb`], [`nfs`]) checks the request and builds the share's
//! [`registry::ShareRecord`], then hands a change to [`apply`], which is the one way the
//! shares change (a transaction, one at a time):
//!
//! 1. load every record, apply the change in memory;
//! 2. [`prepare`]: resolve each share's folder ([`paths::resolve`]: inside its dataset, no
//!    symlink escape), render the SMB include file and the NFS exports file, and check the
//!    SMB candidate with `testparm`;
//! 3. store the records (one SQLite transaction);
//! 4. [`commit`]: write each file atomically (only when its text changed) and make smbd
//!    (`smbcontrol reload-config`) and the NFS server (ganesha SIGHUP, `exportfs -ra`) reread
//!    it. If that fails the stored records are put back.
//!
//! hostplane owns only its two files: smbd's main `smb.conf` carries an `include =` line for
//! the SMB file, ganesha's main config an `%include` for the exports file (`GET
//! /shares/status` says whether they do). A share whose pool is unmounted or whose folder is
//! gone is left out of the files and shows `state: unavailable`; [`sync`] renders again when
//! pools are mounted or unmounted and at start. Share users are users with role `share`;
//! [`accounts`] gives them a Unix account and a Samba password (the users area calls it).

pub mod accounts;
pub mod nfs;
pub mod paths;
pub mod registry;
pub mod smb;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use hostplane_host::command::which;
use hostplane_host::{accounts as unix, nfs as host_nfs, samba};
use hostplane_types::shares::{
    NfsBackend, NfsStatus, ShareProtocol, ShareState, ShareSummary, SharesStatus, SmbStatus,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::config::NfsBackendConfig;
use crate::error::{ApiError, ApiResult};
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::Query;
use crate::areas::{AnyState, Area};
use crate::platform::pool_users::{Notified, PoolUser, UsedBy};
use crate::state::{AppState, Services};
use paths::{Resolver, Unresolved};
use registry::{Options, ShareRecord};

pub const AREA: Area = Area {
    init: Some(init),
    ..Area::new("shares", "SMB shares (Samba) and NFS exports (kernel nfsd or nfs-ganesha) of pool datasets; share users are users with role share", router)
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_shares))
        .routes(routes!(status))
        .merge(smb::router())
        .merge(nfs::router())
}

pub fn href(protocol: ShareProtocol, name: &str) -> String {
    format!("/api/v1/shares/{}/{name}", protocol.as_str())
}

/// One change at a time: the files are derived from all records together.
static LOCK: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

/// The NFS server in use.
pub fn nfs_backend(state: &AppState) -> NfsBackend {
    match state.config.shares.nfs_backend {
        NfsBackendConfig::Kernel => NfsBackend::Kernel,
        NfsBackendConfig::Ganesha => NfsBackend::Ganesha,
        NfsBackendConfig::Off => NfsBackend::Off,
        NfsBackendConfig::Auto if host_nfs::kernel_available() => NfsBackend::Kernel,
        NfsBackendConfig::Auto => NfsBackend::Ganesha,
    }
}

fn nfs_exports_path(state: &AppState) -> PathBuf {
    state
        .config
        .nfs_exports(nfs_backend(state) == NfsBackend::Kernel)
}

pub fn smb_available() -> bool {
    ["smbd", "testparm", "smbpasswd", "smbcontrol"]
        .iter()
        .all(|p| which(p).is_some())
}

/// A share's folder now, or why it cannot be served.
pub fn resolve(res: &mut Resolver, r: &ShareRecord) -> Result<PathBuf, Unresolved> {
    res.resolve(&r.pool, &r.dataset, &r.subpath)
}

pub fn share_state(r: &ShareRecord, resolved: &Result<PathBuf, Unresolved>) -> ShareState {
    match (r.enabled, resolved) {
        (false, _) => ShareState::Disabled,
        (true, Ok(_)) => ShareState::Active,
        (true, Err(_)) => ShareState::Unavailable,
    }
}

/// The path a view shows: the served folder, else where it would be.
pub fn shown_path(
    state: &AppState,
    r: &ShareRecord,
    resolved: &Result<PathBuf, Unresolved>,
) -> String {
    match resolved {
        Ok(p) => p.display().to_string(),
        Err(_) => {
            let mut p = crate::areas::pools::ops::mountpoint(state, &r.pool).join(&r.dataset);
            if !r.subpath.is_empty() {
                p = p.join(&r.subpath);
            }
            p.display().to_string()
        }
    }
}

/// The generated files for a set of records, checked and ready to write.
pub struct Prepared {
    /// SMB include text; None when Samba is not installed and no SMB share is active.
    smb: Option<String>,
    /// NFS exports text; None when NFS is off.
    nfs: Option<String>,
    /// The exports `nfs` was rendered from.
    exports: Vec<host_nfs::ExportSpec>,
    /// Writable SMB folders to hand to the share group.
    group_dirs: Vec<PathBuf>,
    /// ganesha: (folder, bind mount it is exported from).
    binds: Vec<(PathBuf, PathBuf)>,
    group: Option<String>,
}

/// Renders both files for `recs` and checks the SMB one with testparm.
pub async fn prepare(state: &AppState, recs: &[ShareRecord]) -> ApiResult<Prepared> {
    let cfg = &state.config.shares;
    let group = match unix::group_exists(&cfg.group).await {
        Ok(true) => Some(cfg.group.clone()),
        _ => None,
    };
    let mut sections = Vec::new();
    let mut exports = Vec::new();
    let mut group_dirs = Vec::new();
    let mut binds = Vec::new();
    let backend = nfs_backend(state);
    let mut res = Resolver::new(state);
    for r in recs.iter().filter(|r| r.enabled) {
        let Ok(path) = resolve(&mut res, r) else {
            continue;
        };
        match &r.options {
            Options::Smb(o) => {
                if !o.read_only {
                    group_dirs.push(path.clone());
                }
                sections.push(smb::section(r, o, &path, group.clone()));
            }
            Options::Nfs(o) if backend == NfsBackend::Ganesha => {
                let served = nfs::bind_path(state, o.export_id);
                exports.push(nfs::export(r, o, &served));
                binds.push((path, served));
            }
            Options::Nfs(o) => exports.push(nfs::export(r, o, &path)),
        }
    }
    let smb = if smb_available() {
        let text = samba::render(&sections);
        check_smb(&state.config.smb_include(), &text).await?;
        Some(text)
    } else if sections.is_empty() {
        None
    } else {
        return Err(smb_unavailable());
    };
    let nfs = match backend {
        NfsBackend::Off => None,
        NfsBackend::Kernel => Some(host_nfs::render_kernel(&exports)),
        NfsBackend::Ganesha => Some(host_nfs::render_ganesha(&exports)),
    };
    Ok(Prepared {
        smb,
        nfs,
        exports,
        group_dirs,
        binds,
        group,
    })
}

pub fn smb_unavailable() -> ApiError {
    ApiError::Unavailable {
        code: "smb_unavailable",
        detail: "Samba (smbd, testparm, smbpasswd, smbcontrol) is not installed on this host"
            .into(),
    }
}

/// testparm on a candidate next to the live file (same directory, so relative includes and
/// permissions behave the same), removed afterwards.
async fn check_smb(include: &Path, text: &str) -> ApiResult<()> {
    let dir = include.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
    let candidate = dir.join(format!(
        ".{}.candidate-{}",
        include
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("shares"),
        std::process::id()
    ));
    crate::fsutil::write_atomic(&candidate, text.as_bytes(), 0o600)
        .map_err(|e| ApiError::internal(format!("writing {}: {e}", candidate.display())))?;
    let res = samba::check(&candidate).await;
    let _ = std::fs::remove_file(&candidate);
    res.map_err(|e| match e {
        hostplane_host::CommandError::Failed { stderr, .. } => ApiError::invalid(
            "invalid_share_config",
            format!("testparm refused the generated configuration: {stderr}"),
        ),
        other => ApiError::from(other),
    })
}

/// Writes what changed and makes the servers reread it.
pub async fn commit(state: &AppState, p: Prepared) -> ApiResult<()> {
    if let Some(text) = &p.smb {
        let include = state.config.smb_include();
        if write_if_changed(&include, text)? {
            samba::reload(&state.config.shares.smb_config)
                .await
                .map_err(ApiError::from)?;
        }
    }
    if let Some(text) = &p.nfs {
        let exports = nfs_exports_path(state);
        let backend = nfs_backend(state);
        let (bound, rebound) = if backend == NfsBackend::Ganesha {
            nfs::ensure_binds(&p.binds).await?
        } else {
            (false, Vec::new())
        };
        if !rebound.is_empty() {
            // ganesha keeps serving an export whose block did not change from the root it
            // opened first (the old subvolume after a rollback): take the re-bound exports
            // out, let it reread (asynchronously: wait for its log to say it is done), then put
            // them back below.
            let without: Vec<host_nfs::ExportSpec> = p
                .exports
                .iter()
                .filter(|e| !rebound.iter().any(|r| Path::new(&e.path) == r))
                .cloned()
                .collect();
            write_if_changed(&exports, &host_nfs::render_ganesha(&without))?;
            reload_ganesha(state).await?;
        }
        if write_if_changed(&exports, text)? || bound {
            match nfs_backend(state) {
                NfsBackend::Kernel => host_nfs::reload_kernel()
                    .await
                    .map_err(ApiError::from)?,
                NfsBackend::Ganesha => reload_ganesha(state).await?,
                NfsBackend::Off => {}
            }
        }
        if backend == NfsBackend::Ganesha {
            nfs::drop_stale_binds(state, &p.binds).await;
        }
    }
    if let Some(g) = &p.group {
        share_group_dirs(g, &p.group_dirs).await;
    }
    Ok(())
}

/// Longest wait for ganesha to say it reread its exports.
const GANESHA_REREAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// SIGHUP to ganesha, then its log's "Reread exports complete" (`[shares] ganesha_log`), so the
/// answer (and a following change) comes after ganesha serves the new exports.
async fn reload_ganesha(state: &AppState) -> ApiResult<()> {
    let c = &state.config.shares;
    let outcome = host_nfs::reload_ganesha_and_wait(
        &c.ganesha_pid_file,
        &c.ganesha_log,
        GANESHA_REREAD_TIMEOUT,
    )
    .await
    .map_err(ApiError::from)?;
    if outcome == host_nfs::GaneshaReload::Unconfirmed {
        tracing::warn!(
            log = %c.ganesha_log.display(),
            "ganesha was signalled but its log did not confirm the reread (shares.ganesha_log)"
        );
    }
    Ok(())
}

fn write_if_changed(path: &Path, text: &str) -> ApiResult<bool> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
    }
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)
        .map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
    Ok(true)
}

/// A writable SMB share's top folder belongs to the share group with `g+rwxs`, so every share
/// user the share admits can write there and new files keep the group. Only the top folder:
/// what is inside is the users' own business.
async fn share_group_dirs(group: &str, dirs: &[PathBuf]) {
    let Ok(Some(gid)) = unix::gid_of(group).await else {
        return;
    };
    for d in dirs {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let Ok(md) = std::fs::metadata(d) else {
            continue;
        };
        if md.gid() != gid
            && let Err(e) = std::os::unix::fs::chown(d, None, Some(gid))
        {
            tracing::warn!(path = %d.display(), error = %e, "cannot give the share folder to the share group");
            continue;
        }
        let mode = md.mode() & 0o7777;
        let want = mode | 0o2070;
        if want != mode {
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(want));
        }
    }
}

/// The one way shares change: see the module doc. `change` edits the records in memory and
/// returns what the handler answers.
pub async fn apply<T>(
    state: &AppState,
    change: impl FnOnce(&mut Vec<ShareRecord>) -> ApiResult<T>,
) -> ApiResult<T> {
    let _g = LOCK.lock().await;
    let before = registry::load_all(&state.store)?;
    let mut recs = before.clone();
    let out = change(&mut recs)?;
    let prepared = prepare(state, &recs).await?;
    let changed = recs != before;
    if changed {
        registry::save_all(&state.store, &recs)?;
    }
    if let Err(e) = commit(state, prepared).await {
        if changed {
            registry::save_all(&state.store, &before)?;
            if let Ok(p) = prepare(state, &before).await {
                let _ = commit(state, p).await;
            }
        }
        return Err(e);
    }
    Ok(out)
}

/// Renders the files again from the stored records (pools mounted or unmounted, start).
pub async fn sync(state: &AppState) {
    if let Err(e) = apply(state, |_| Ok(())).await {
        tracing::warn!(error = %e, "cannot bring the share configuration up to date");
    }
}

/// Shares are users of pool datasets: a shared dataset stays (409 `in_use` naming the
/// shares), a renamed one takes its shares along, and the files are rendered again when pools
/// come and go.
struct SharesOnPools;

impl PoolUser for SharesOnPools {
    fn uses(&self, state: &AppState, pool: &str, dataset: Option<&str>) -> ApiResult<Vec<UsedBy>> {
        Ok(registry::load_all(&state.store)?
            .into_iter()
            .filter(|r| r.pool == pool && dataset.is_none_or(|d| r.dataset == d))
            .map(|r| UsedBy {
                kind: "share".into(),
                name: format!("{}/{}", r.protocol().as_str(), r.name),
                href: r.href(),
                dataset: r.dataset.clone(),
                busy: false,
            })
            .collect())
    }

    fn dataset_renamed<'a>(
        &'a self,
        state: &'a AppState,
        pool: &'a str,
        from: &'a str,
        to: &'a str,
    ) -> Notified<'a> {
        Box::pin(dataset_renamed(state, pool, from, to))
    }

    fn storage_changed<'a>(&'a self, state: &'a AppState) -> Notified<'a> {
        Box::pin(sync(state))
    }
}

/// Registers the shares with the pools' users.
fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    services.pool_users.register(Arc::new(SharesOnPools));
    Ok(None)
}

/// A dataset was renamed: its shares follow it.
async fn dataset_renamed(state: &AppState, pool: &str, from: &str, to: &str) {
    let now = crate::platform::time::now_string();
    let res = apply(state, |recs| {
        for r in recs
            .iter_mut()
            .filter(|r| r.pool == pool && r.dataset == from)
        {
            r.dataset = to.to_string();
            r.updated_at = now.clone();
        }
        Ok(())
    })
    .await;
    if let Err(e) = res {
        tracing::warn!(pool, from, to, error = %e, "shares of a renamed dataset not updated");
    }
}

/// All shares of both protocols.
#[utoipa::path(get, path = "/api/v1/shares",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("shares:read"))),
    tag = "shares", params(CollectionParams),
    responses((status = 200, description = "Shares", body = [ShareSummary],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_shares(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let recs = registry::load_all(&state.store)?;
    let mut resolver = Resolver::new(&state);
    let items: Vec<ShareSummary> = recs
        .iter()
        .map(|r| {
            let res = resolve(&mut resolver, r);
            ShareSummary {
                href: r.href(),
                protocol: r.protocol(),
                name: r.name.clone(),
                pool: r.pool.clone(),
                dataset: r.dataset.clone(),
                path: shown_path(&state, r, &res),
                enabled: r.enabled,
                state: share_state(r, &res),
            }
        })
        .collect();
    collection::respond(items, &params, &headers)
}

/// Whether Samba and the NFS server are installed, running and reading hostplane's files.
#[utoipa::path(get, path = "/api/v1/shares/status",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("shares:read"))),
    tag = "shares",
    responses((status = 200, description = "File servers", body = SharesStatus)))]
async fn status(State(state): State<AppState>) -> ApiResult<axum::Json<SharesStatus>> {
    let recs = registry::load_all(&state.store)?;
    let count = |p: ShareProtocol| recs.iter().filter(|r| r.protocol() == p).count();
    let cfg = &state.config.shares;
    let include = state.config.smb_include();
    let main = std::fs::read_to_string(&cfg.smb_config).unwrap_or_default();
    let backend = nfs_backend(&state);
    let available = smb_available();
    let smb = SmbStatus {
        available,
        running: available && samba::running(&cfg.smb_config).await,
        config: cfg.smb_config.display().to_string(),
        include: include.display().to_string(),
        included: samba::includes(&main, &include),
        map_to_guest: match available {
            true => samba::global_parameter(&cfg.smb_config, "map to guest")
                .await
                .ok()
                .filter(|v| !v.is_empty()),
            false => None,
        },
        shares: count(ShareProtocol::Smb),
    };
    let nfs = NfsStatus {
        backend,
        available: match backend {
            NfsBackend::Kernel => host_nfs::kernel_available(),
            NfsBackend::Ganesha => host_nfs::ganesha_available(),
            NfsBackend::Off => false,
        },
        running: match backend {
            NfsBackend::Kernel => host_nfs::kernel_available(),
            NfsBackend::Ganesha => host_nfs::ganesha_pid(&cfg.ganesha_pid_file).is_some(),
            NfsBackend::Off => false,
        },
        exports: nfs_exports_path(&state).display().to_string(),
        shares: count(ShareProtocol::Nfs),
    };
    Ok(axum::Json(SharesStatus { smb, nfs }))
}

/// `comment`: at most 256 characters, no control characters, `%` or `\` (Samba would expand
/// or continue them).
pub const COMMENT_PATTERN: &str = r"^[^\x00-\x1f\x7f%\\]*$";

static COMMENT: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(COMMENT_PATTERN).unwrap());

/// Checks what every share has: its name (unique per protocol, any case), its folder and its
/// comment. `others` are the other shares.
pub fn check_common(
    state: &AppState,
    r: &ShareRecord,
    others: &[ShareRecord],
) -> ApiResult<PathBuf> {
    hostplane_host::validate_name("share", &r.name)
        .map_err(|e| ApiError::invalid_field("invalid_name", "name", e.to_string()))?;
    if others.iter().any(|o| o.same(r.protocol(), &r.name)) {
        return Err(ApiError::conflict(
            "share_exists",
            format!(
                "an {} share named {:?} exists",
                r.protocol().as_str(),
                r.name
            ),
        ));
    }
    for (field, v) in [("pool", &r.pool), ("dataset", &r.dataset)] {
        hostplane_host::validate_name(field, v)
            .map_err(|e| ApiError::invalid_field("invalid_name", field, e.to_string()))?;
    }
    paths::check_subpath(&r.subpath)?;
    if r.comment.chars().count() > 256 || !COMMENT.is_match(&r.comment) {
        return Err(ApiError::invalid_field(
            "invalid_comment",
            "comment",
            "at most 256 characters without line breaks, control characters, % or \\",
        ));
    }
    resolve(&mut Resolver::new(state), r).map_err(|u| u.to_api_error())
}

/// The record named in a URL, or 404.
pub fn find<'a>(
    recs: &'a mut [ShareRecord],
    protocol: ShareProtocol,
    name: &str,
) -> ApiResult<&'a mut ShareRecord> {
    recs.iter_mut()
        .find(|r| r.same(protocol, name))
        .ok_or_else(|| ApiError::not_found(format!("no {} share {name:?}", protocol.as_str())))
}

pub fn load_one(state: &AppState, protocol: ShareProtocol, name: &str) -> ApiResult<ShareRecord> {
    let mut recs = registry::load_all(&state.store)?;
    find(&mut recs, protocol, name).cloned()
}

/// The fields every share has, as a PATCH gives them.
pub struct CommonPatch {
    pub name: Option<String>,
    pub pool: Option<String>,
    pub dataset: Option<String>,
    pub subpath: Option<String>,
    pub enabled: Option<bool>,
    pub comment: Option<String>,
}

impl CommonPatch {
    fn apply_to(self, r: &mut ShareRecord) {
        let set = |dst: &mut String, v: Option<String>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut r.name, self.name);
        set(&mut r.pool, self.pool);
        set(&mut r.dataset, self.dataset);
        set(&mut r.subpath, self.subpath);
        set(&mut r.comment, self.comment);
        if let Some(v) = self.enabled {
            r.enabled = v;
        }
    }
}

/// A protocol's view of its records and its checks of a new or changed one.
pub struct Protocol<V> {
    pub protocol: ShareProtocol,
    pub view: fn(&mut Resolver, &ShareRecord) -> V,
    pub check: fn(&AppState, &ShareRecord, &[ShareRecord]) -> ApiResult<()>,
}

impl<V: serde::Serialize + utoipa::ToSchema + 'static> Protocol<V> {
    pub fn list(
        &self,
        state: &AppState,
        params: &CollectionParams,
        headers: &HeaderMap,
    ) -> ApiResult<Response> {
        let mut res = Resolver::new(state);
        let items: Vec<V> = registry::load_all(&state.store)?
            .iter()
            .filter(|r| r.protocol() == self.protocol)
            .map(|r| (self.view)(&mut res, r))
            .collect();
        collection::respond(items, params, headers)
    }

    pub fn get(&self, state: &AppState, name: &str) -> ApiResult<Response> {
        let r = load_one(state, self.protocol, name)?;
        Ok(crate::http::etag::with_etag(&(self.view)(
            &mut Resolver::new(state),
            &r,
        )))
    }

    /// Adds a share built by `build` (from the other records, e.g. for a free export id).
    pub async fn create(
        &self,
        state: &AppState,
        actor: &str,
        build: impl FnOnce(&[ShareRecord]) -> ShareRecord,
    ) -> ApiResult<Response> {
        let rec = apply(state, |recs| {
            let rec = build(recs);
            (self.check)(state, &rec, recs)?;
            recs.push(rec.clone());
            Ok(rec)
        })
        .await?;
        let v = (self.view)(&mut Resolver::new(state), &rec);
        publish(state, "resource.created", actor, &rec.href(), &v);
        Ok(crate::http::answer::created(&rec.href(), &v))
    }

    /// Changes the share named `name`: `If-Match` against its current view, the common fields,
    /// then `edit` for the protocol's own, then the checks against the other shares.
    pub async fn update(
        &self,
        state: &AppState,
        actor: &str,
        name: &str,
        headers: &HeaderMap,
        common: CommonPatch,
        edit: impl FnOnce(&mut Options),
    ) -> ApiResult<Response> {
        let now = crate::platform::time::now_string();
        let rec = apply(state, |recs| {
            let mut r = find(recs, self.protocol, name)?.clone();
            crate::http::etag::check_if_match(
                headers,
                &crate::http::etag::etag_of(&(self.view)(&mut Resolver::new(state), &r)),
            )?;
            common.apply_to(&mut r);
            edit(&mut r.options);
            recs.retain(|x| !x.same(self.protocol, name));
            (self.check)(state, &r, recs)?;
            r.updated_at = now;
            recs.push(r.clone());
            Ok(r)
        })
        .await?;
        let v = (self.view)(&mut Resolver::new(state), &rec);
        publish(state, "resource.updated", actor, &rec.href(), &v);
        Ok(crate::http::etag::with_etag(&v))
    }

    /// Removes the share named `name` (its folder and files stay).
    pub async fn delete(
        &self,
        state: &AppState,
        actor: &str,
        name: &str,
        headers: &HeaderMap,
    ) -> ApiResult<axum::http::StatusCode> {
        let gone = apply(state, |recs| {
            let cur = find(recs, self.protocol, name)?.clone();
            crate::http::etag::check_if_match(
                headers,
                &crate::http::etag::etag_of(&(self.view)(&mut Resolver::new(state), &cur)),
            )?;
            recs.retain(|x| !x.same(self.protocol, name));
            Ok(cur)
        })
        .await?;
        state.events.publish(
            "resource.deleted",
            &gone.href(),
            actor,
            serde_json::json!({"name": gone.name}),
        );
        Ok(axum::http::StatusCode::NO_CONTENT)
    }
}

fn publish<V: serde::Serialize>(state: &AppState, ty: &str, actor: &str, href: &str, v: &V) {
    state
        .events
        .publish(ty, href, actor, serde_json::to_value(v).unwrap_or_default());
}

#[cfg(test)]
mod schema_tests {
    /// The request schemas carry the server's own patterns (attributes need literal copies).
    #[test]
    fn schemas_carry_the_checked_patterns() {
        let doc: serde_json::Value = serde_json::from_str(&crate::openapi_json()).unwrap();
        let props = |s: &str| doc["components"]["schemas"][s]["properties"].clone();
        for s in [
            "CreateSmbShareRequest",
            "UpdateSmbShareRequest",
            "CreateNfsShareRequest",
            "UpdateNfsShareRequest",
        ] {
            let p = props(s);
            let pattern = |f: &str| {
                // Optional fields are `oneOf [null, {…}]` or carry the pattern directly.
                let v = &p[f];
                v["pattern"]
                    .as_str()
                    .or_else(|| {
                        v["oneOf"]
                            .as_array()?
                            .iter()
                            .find_map(|x| x["pattern"].as_str())
                    })
                    .map(str::to_string)
            };
            assert_eq!(
                pattern("subpath").as_deref(),
                Some(super::paths::SUBPATH_PATTERN),
                "{s}"
            );
            assert_eq!(
                pattern("comment").as_deref(),
                Some(super::COMMENT_PATTERN),
                "{s}"
            );
            assert_eq!(
                pattern("pool").as_deref(),
                Some(hostplane_types::NAME_PATTERN),
                "{s}"
            );
        }
    }
}
