//! `/api/v1/system/backups`: archives of the whole appliance state, and restoring one. The
//! archive format (manifest, entries, limits, packing, unpacking and its checks) is
//! `hostplane_package::backup`; this module is the HTTP and job layer over it.
//!
//! Flow of a backup: `POST /system/backups` → a `system.backup` job (lock `system.backup`,
//! shared with restores) → under `STATE_FILES` (platform::state_files) (no certificate or storage change meanwhile):
//! an SQLite online backup of the store (`Store::backup_to`), the role files the config names
//! (TLS certificate and key, the config file, a configured appliance identity), and the state
//! files under the data dir ([`DATA_PATHS`]: keys, the bootstrap token, ...) go into a tar with
//! a `manifest.json` listing every file's size, mode and SHA-256 → `DATA_DIR/backup/<id>.tar`
//! with a sidecar `<id>.json` (the [`Backup`] shown). Only the newest `[admin] backup_keep` are
//! kept. The backups themselves, logs and temp files are never in a backup. Every file is
//! streamed (never read whole); a failed or cancelled backup removes its partial archive and
//! work dir, and [`at_start`] removes what a killed daemon left.
//!
//! Flow of a restore: `POST /system/backups/{id}/restore` (or an upload first,
//! `POST /system/backups/upload`) → a `system.restore` job (same lock) → the archive is unpacked into
//! a staging dir and checked completely before anything changes: only known paths, regular
//! files, every checksum and size as the manifest says, nothing unlisted, an intact SQLite file
//! of a schema this version reads, a TLS key that matches its certificate, a config that
//! parses; gzip/zstd archives are decompressed on the fly with every unpacked byte counted
//! against `[admin] backup_unpacked_max_bytes`; links, devices, absolute names and `..` are
//! refused → then the swap: role and data files renamed into place with the modes of
//! [`restored_mode`] (never the archive's), files of [`DATA_PATHS`] the backup does not have
//! removed, the store replaced in one SQLite backup transaction under the writer lock
//! (`Store::replace_with`), keeping the history tables (jobs, events, audit: a restore does not
//! rewrite what happened) → the auth cache and the admin-API token reloaded, the TLS listener
//! reloaded, the persistent storage units regenerated from the restored settings.
//!
//! Every step is also written to `DATA_DIR/backup/backup.log` as `[unixtime][SYSTEM] message`
//! (Jidoteki `GET /admin/backup/log`). The Jidoteki routes (areas/admin/backup.rs) are a thin
//! layer over [`start_backup`], [`stop_latest`], [`import`] and [`start_restore`]; the reboot
//! endpoint calls [`take_backup`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use hostplane_types::jobs::{Job, JobStatus};
use hostplane_package::backup::{
    self as pkg, DATA_PATHS, MAX_MANIFEST, Manifest, Origin, Refusal, STORE_ENTRY, Source,
    file_mode, install, read_small, restored_mode, sha256_file,
};
use hostplane_types::system::backup::{Backup, BackupOrigin, BackupStatus, RestoreResult};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::system::{storage, uploads};
use crate::http::answer::{accepted, created};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::fsutil::write_atomic;
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::Query;
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use crate::platform::state_files::STATE_FILES;
use crate::platform::store::Store;
use crate::platform::time;
use crate::state::AppState;

pub const HREF: &str = "/api/v1/system/backups";
pub const JOB_KIND: &str = "system.backup";
pub const RESTORE_KIND: &str = "system.restore";
/// Backups and restores never overlap.
pub const LOCK: &str = "system/backup";
/// Tables a restore keeps from the live store, parents first: history, not state.
const HISTORY_TABLES: &[&str] = &["jobs", "job_log", "events", "audit"];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_backups, create_backup))
        .routes(routes!(upload_backup))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(download_backup))
        .routes(routes!(restore_backup))
}

// ---- helpers shared with the other system state resources ----

/// Sizes as Jidoteki shows them: `128.0K`, `3.4M`, `512B`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1}{}", UNITS[i])
}

fn backup_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("backup")
}

fn tar_path(cfg: &Config, id: &str) -> PathBuf {
    backup_dir(cfg).join(format!("{id}.tar"))
}

fn meta_path(cfg: &Config, id: &str) -> PathBuf {
    backup_dir(cfg).join(format!("{id}.json"))
}

/// `DATA_DIR/backup/backup.log`.
pub fn log_path(state: &AppState) -> PathBuf {
    backup_dir(&state.config).join("backup.log")
}

fn ensure_dir(cfg: &Config) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = backup_dir(cfg);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    Ok(dir)
}

/// Appends `[unixtime][SYSTEM] message` to the backup log.
pub fn log_line(cfg: &Config, message: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let res = ensure_dir(cfg).and_then(|dir| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.join("backup.log"))?;
        writeln!(f, "[{}][SYSTEM] {message}", time::now().unix_timestamp())
    });
    if let Err(e) = res {
        tracing::warn!(error = %e, "cannot write the backup log");
    }
}

/// A line to the job log and the backup log.
fn say(cfg: &Config, ctx: &JobCtx, message: &str) {
    ctx.log(message);
    log_line(cfg, message);
}

fn valid_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::parse_str(id).is_ok()
}

fn read_meta(cfg: &Config, id: &str) -> Option<Backup> {
    let text = std::fs::read(meta_path(cfg, id)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn write_meta(cfg: &Config, b: &Backup) -> std::io::Result<()> {
    ensure_dir(cfg)?;
    let json = serde_json::to_vec_pretty(b).map_err(std::io::Error::other)?;
    write_atomic(&meta_path(cfg, &b.id), &json, 0o600)
}

/// A `running` backup whose job no longer runs (daemon stopped, job cancelled) has failed.
fn effective(state: &AppState, mut b: Backup) -> Backup {
    if b.status == BackupStatus::Running && state.jobs.watch(&b.id).is_none() {
        b.status = BackupStatus::Failed;
        b.error
            .get_or_insert_with(|| "the backup job ended before the backup was finished".into());
    }
    b
}

/// Every backup, newest first.
pub fn list(state: &AppState) -> ApiResult<Vec<Backup>> {
    let dir = backup_dir(&state.config);
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ApiError::internal(format!("{}: {e}", dir.display()))),
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if valid_id(id)
            && let Some(b) = read_meta(&state.config, id)
        {
            out.push(effective(state, b));
        }
    }
    out.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(out)
}

pub fn get(state: &AppState, id: &str) -> ApiResult<Backup> {
    valid_id(id)
        .then(|| read_meta(&state.config, id))
        .flatten()
        .map(|b| effective(state, b))
        .ok_or_else(|| ApiError::not_found(format!("no backup {id:?}")))
}

/// The archive file of a finished backup.
pub fn archive_file(state: &AppState, id: &str) -> ApiResult<PathBuf> {
    let b = get(state, id)?;
    if b.status != BackupStatus::Success {
        return Err(ApiError::conflict(
            "backup_not_ready",
            format!("backup {id} is {:?}, not finished", b.status).to_lowercase(),
        ));
    }
    let p = tar_path(&state.config, id);
    if p.is_file() {
        Ok(p)
    } else {
        Err(ApiError::not_found(format!(
            "the archive of backup {id} is gone"
        )))
    }
}

fn remove_files(cfg: &Config, id: &str) {
    for p in [tar_path(cfg, id), meta_path(cfg, id)] {
        if let Err(e) = std::fs::remove_file(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = %p.display(), "cannot remove a backup file");
        }
    }
}

/// Deletes a finished backup. 409 while it runs (cancel its job instead).
pub fn delete(state: &AppState, id: &str, actor: &str) -> ApiResult<Backup> {
    let b = get(state, id)?;
    if b.status == BackupStatus::Running {
        return Err(ApiError::conflict(
            "backup_running",
            format!("backup {id} is running; cancel its job first (DELETE /api/v1/jobs/{id})"),
        ));
    }
    remove_files(&state.config, id);
    log_line(&state.config, &format!("Deleting backup archive {id}"));
    state
        .events
        .publish("resource.deleted", &b.href, actor, serde_json::Value::Null);
    Ok(b)
}

/// Keeps the newest `backup_keep` finished backups.
fn prune(state: &AppState) {
    let keep = state.config.admin.backup_keep;
    let Ok(all) = list(state) else { return };
    for b in all
        .into_iter()
        .filter(|b| b.status != BackupStatus::Running)
        .skip(keep)
    {
        remove_files(&state.config, &b.id);
        log_line(
            &state.config,
            &format!(
                "Deleting backup archive {} (keeping the newest {keep})",
                b.id
            ),
        );
        state.events.publish(
            "resource.deleted",
            &b.href,
            "system",
            serde_json::Value::Null,
        );
    }
}

fn new_backup(id: &str, origin: BackupOrigin, actor: &str, created_at: String) -> Backup {
    Backup {
        id: id.to_string(),
        href: format!("{HREF}/{id}"),
        status: BackupStatus::Running,
        origin,
        created_at,
        created_by: actor.to_string(),
        finished_at: None,
        size_bytes: None,
        filesize: None,
        sha256: None,
        files: None,
        job: None,
        download: None,
        error: None,
    }
}

fn finish_success(b: &mut Backup, size: u64, sha256: String, files: u32) {
    b.status = BackupStatus::Success;
    b.finished_at = Some(time::now_string());
    b.size_bytes = Some(size);
    b.filesize = Some(human_size(size));
    b.sha256 = Some(sha256);
    b.files = Some(files);
    b.download = Some(format!("{}/download", b.href));
}

// ---- making a backup ----

/// Files the config names, by role, as (archive name, live path). Restoring writes each to
/// where the config in force then says.
fn role_files(cfg: &Config) -> Vec<(&'static str, PathBuf)> {
    let tls = crate::tls::paths(cfg);
    let mut out = vec![("tls-cert.pem", tls.cert), ("tls-key.pem", tls.key)];
    if let Some(c) = &cfg.config_file {
        out.push(("config.toml", c.clone()));
    }
    if let Some(i) = cfg
        .admin
        .appliance_identity
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        out.push(("appliance-identity", i.clone()));
    }
    out
}

/// State files under the data dir now, relative (sorted), role files left out.
fn data_files(cfg: &Config) -> std::io::Result<Vec<String>> {
    let roles: Vec<PathBuf> = role_files(cfg).into_iter().map(|(_, p)| p).collect();
    let mut out = Vec::new();
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let t = e.file_type()?;
            let r = format!("{rel}/{name}");
            if t.is_dir() {
                walk(&e.path(), &r, out)?;
            } else if t.is_file() {
                out.push(r);
            }
        }
        Ok(())
    }
    for top in DATA_PATHS {
        let p = cfg.data_dir.join(top);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => out.push(top.to_string()),
            Ok(m) if m.is_dir() => walk(&p, top, &mut out)?,
            _ => {}
        }
    }
    out.retain(|r| !roles.iter().any(|p| *p == cfg.data_dir.join(r)));
    out.sort();
    Ok(out)
}

/// Writes the archive to `partial`; returns the manifest. Runs on a blocking thread: takes the
/// store's online backup into `work`, lists the role and state files, checks free space, then
/// packs them ([`pkg::pack`] streams every file).
fn build_archive(
    cfg: &Config,
    store: &Store,
    work: &Path,
    partial: &Path,
    created_by: &str,
    cancelled: &AtomicBool,
) -> Result<Manifest, String> {
    use std::os::unix::fs::DirBuilderExt;
    let stop = || {
        if cancelled.load(Ordering::Relaxed) {
            Err("cancelled".to_string())
        } else {
            Ok(())
        }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(work)
        .map_err(|e| format!("{}: {e}", work.display()))?;
    let db = work.join("hostplane.sqlite");
    store
        .backup_to(&db)
        .map_err(|e| format!("SQLite online backup: {e}"))?;
    stop()?;
    let mut sources = vec![Source {
        name: STORE_ENTRY.into(),
        path: db,
        mode: 0o600,
    }];
    for (role, path) in role_files(cfg) {
        if path.is_file() {
            let mode = file_mode(&path);
            sources.push(Source {
                name: format!("roles/{role}"),
                path,
                mode,
            });
        }
    }
    for rel in data_files(cfg).map_err(|e| format!("listing state files: {e}"))? {
        let path = cfg.data_dir.join(&rel);
        let mode = file_mode(&path);
        sources.push(Source {
            name: format!("data/{rel}"),
            path,
            mode,
        });
    }
    // The archive is about the files plus a header block each: refuse before reading or
    // writing anything when the backup dir's filesystem cannot hold it.
    let need = sources
        .iter()
        .map(|s| std::fs::metadata(&s.path).map_or(0, |m| m.len()) + 1024)
        .sum::<u64>()
        + MAX_MANIFEST;
    if let Some(dir) = partial.parent() {
        crate::areas::system::uploads::check_space(dir, need)?;
    }
    let origin = Origin {
        hostplane_version: env!("CARGO_PKG_VERSION").into(),
        created_at: time::now_string(),
        created_by: created_by.into(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        schema_version: crate::platform::store::schema_version(),
    };
    pkg::pack(&sources, origin, partial, cancelled)
}

/// What a backup, restore or upload creates in the backup dir while it works, by exact
/// name: `.work-<uuid>/`, `.restore-<uuid>/`, `.check-<uuid>/`, `.upload-<uuid>`,
/// `.import-<uuid>.tar`, `.<uuid>.tar.partial`, `.<uuid>.json.tmp-<pid>`. None when `name` is
/// none of them; else whether only the holder of the `system.backup` lock makes it (uploads,
/// their checks and sidecar writes run without it).
fn leftover(name: &str) -> Option<bool> {
    let id_then = |rest: &str, suffix: &str| {
        rest.strip_suffix(suffix)
            .is_some_and(|id| id.len() == 36 && uuid::Uuid::parse_str(id).is_ok())
    };
    if let Some(rest) = name.strip_prefix(".work-") {
        return id_then(rest, "").then_some(true);
    }
    if let Some(rest) = name.strip_prefix(".restore-") {
        return id_then(rest, "").then_some(true);
    }
    if let Some(rest) = name.strip_prefix(".check-") {
        return id_then(rest, "").then_some(false);
    }
    if let Some(rest) = name.strip_prefix(".upload-") {
        return id_then(rest, "").then_some(false);
    }
    if let Some(rest) = name.strip_prefix(".import-") {
        return id_then(rest, ".tar").then_some(false);
    }
    let rest = name.strip_prefix('.')?;
    // A sidecar being written (`write_atomic`: `.<uuid>.json.tmp-<pid>`).
    if let Some((id, pid)) = rest.split_once(".json.tmp-") {
        return (id_then(id, "") && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            .then_some(false);
    }
    id_then(rest, ".tar.partial").then_some(true)
}

/// Removes what interrupted backups and restores left behind ([`leftover`]). With `all`
/// (daemon start: nothing runs yet) also interrupted uploads; otherwise the caller holds the
/// `system.backup` lock, so none of what it removes is in use.
fn sweep(cfg: &Config, all: bool) -> u32 {
    let Ok(rd) = std::fs::read_dir(backup_dir(cfg)) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(locked) = name.to_str().and_then(leftover) else {
            continue;
        };
        if !locked && !all {
            continue;
        }
        let p = e.path();
        // Not followed: a symlink is removed itself.
        let r = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(error = %e, path = %p.display(), "cannot remove a backup leftover")
            }
        }
    }
    removed
}

fn sweep_leftovers(cfg: &Config) {
    sweep(cfg, false);
}

/// Daemon start (before any listener): removes what backups, restores and uploads a crash
/// or kill left in `DATA_DIR/backup`, and marks backups that were running as failed.
pub fn at_start(cfg: &Config) {
    let n = sweep(cfg, true);
    if n > 0 {
        tracing::info!(removed = n, "removed leftovers of interrupted backups");
        log_line(
            cfg,
            &format!("Removed {n} leftovers of interrupted backups and restores"),
        );
    }
    let Ok(rd) = std::fs::read_dir(backup_dir(cfg)) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if valid_id(id)
            && let Some(mut b) = read_meta(cfg, id)
            && b.status == BackupStatus::Running
        {
            b.status = BackupStatus::Failed;
            b.finished_at = Some(time::now_string());
            b.error = Some("the daemon stopped before the backup was finished".into());
            let _ = write_meta(cfg, &b);
        }
    }
}

/// Removes what an unfinished backup left, also when its job is cancelled (dropped).
struct BackupGuard {
    cfg: Config,
    id: String,
    work: PathBuf,
    partial: PathBuf,
    cancelled: Arc<AtomicBool>,
    armed: bool,
}

impl Drop for BackupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.cancelled.store(true, Ordering::Relaxed);
        if let Some(mut b) = read_meta(&self.cfg, &self.id)
            && b.status == BackupStatus::Running
        {
            b.status = BackupStatus::Failed;
            b.finished_at = Some(time::now_string());
            b.error = Some("stopped".into());
            let _ = write_meta(&self.cfg, &b);
            log_line(&self.cfg, "Backup stopped");
        }
        let _ = std::fs::remove_file(&self.partial);
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// Starts a backup job (202). 409 `lock_held` while a backup or restore runs.
pub fn start_backup(state: &AppState, actor: &str) -> ApiResult<Job> {
    ensure_dir(&state.config).map_err(ApiError::internal)?;
    let (go, ready) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    let who = actor.to_string();
    let job = state.jobs.spawn(
        JobSpec {
            kind: JOB_KIND,
            target: Some(HREF.into()),
            lock_key: Some(LOCK.into()),
            actor: actor.to_string(),
        },
        move |ctx| async move {
            // Wait until the sidecar exists, so the backup is listed from the first moment.
            ready
                .await
                .map_err(|_| JobFailure::new("internal", "the backup could not be registered"))?;
            run_backup(st, ctx, who).await
        },
    )?;
    let mut b = new_backup(
        &job.id,
        BackupOrigin::Created,
        actor,
        job.created_at.clone(),
    );
    b.job = Some(job.href.clone());
    write_meta(&state.config, &b).map_err(ApiError::internal)?;
    let _ = go.send(());
    state.events.publish(
        "resource.created",
        &b.href,
        actor,
        serde_json::to_value(&b).unwrap_or_default(),
    );
    Ok(job)
}

async fn run_backup(
    state: AppState,
    ctx: Arc<JobCtx>,
    actor: String,
) -> Result<Backup, JobFailure> {
    let cfg = state.config.clone();
    let dir = backup_dir(&cfg);
    let id = ctx.id().to_string();
    let cancelled = Arc::new(AtomicBool::new(false));
    let mut guard = BackupGuard {
        cfg: cfg.clone(),
        id: id.clone(),
        work: dir.join(format!(".work-{id}")),
        partial: dir.join(format!(".{id}.tar.partial")),
        cancelled: cancelled.clone(),
        armed: true,
    };
    sweep_leftovers(&cfg);
    say(&cfg, &ctx, "Starting backup");
    ctx.progress(5);
    let files_lock = STATE_FILES.lock().await;
    let (work, partial) = (guard.work.clone(), guard.partial.clone());
    let (c2, store, who) = (cfg.clone(), state.store.clone(), actor.clone());
    let built = tokio::task::spawn_blocking(move || {
        let r = build_archive(&c2, &store, &work, &partial, &who, &cancelled);
        let _ = std::fs::remove_dir_all(&work);
        if cancelled.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(&partial);
        }
        r
    })
    .await
    .map_err(|e| JobFailure::new("internal", e.to_string()))?;
    drop(files_lock);
    let fail = |msg: String| {
        if let Some(mut b) = read_meta(&cfg, &id) {
            b.status = BackupStatus::Failed;
            b.finished_at = Some(time::now_string());
            b.error = Some(msg.clone());
            let _ = write_meta(&cfg, &b);
        }
        let _ = std::fs::remove_file(&guard.partial);
        log_line(&cfg, &format!("Backup failed: {msg}"));
        JobFailure::new("backup_failed", msg)
    };
    let manifest = match built {
        Ok(m) => m,
        Err(msg) => {
            let e = fail(msg);
            guard.armed = false;
            return Err(e);
        }
    };
    ctx.progress(80);
    let tar = tar_path(&cfg, &id);
    let finished = std::fs::rename(&guard.partial, &tar).and_then(|()| sha256_file(&tar));
    let (size, sha) = match finished {
        Ok(x) => x,
        Err(e) => {
            let e = fail(format!("{}: {e}", tar.display()));
            guard.armed = false;
            return Err(e);
        }
    };
    let mut b = read_meta(&cfg, &id)
        .unwrap_or_else(|| new_backup(&id, BackupOrigin::Created, &actor, time::now_string()));
    finish_success(&mut b, size, sha.clone(), manifest.files.len() as u32 + 1);
    b.job = Some(ctx.href().to_string());
    write_meta(&cfg, &b).map_err(|e| fail(e.to_string()))?;
    guard.armed = false;
    say(
        &cfg,
        &ctx,
        &format!(
            "Created file: {} - size: {} - hash: {sha}",
            tar.display(),
            human_size(size)
        ),
    );
    say(&cfg, &ctx, "Backup complete");
    state.events.publish(
        "resource.updated",
        &b.href,
        &actor,
        serde_json::to_value(&b).unwrap_or_default(),
    );
    prune(&state);
    Ok(b)
}

/// Takes a backup and waits until it is done (the reboot endpoint calls this before
/// rebooting). When a backup already runs, waits for that one instead.
pub async fn take_backup(state: &AppState, actor: &str) -> ApiResult<Backup> {
    let job = match start_backup(state, actor) {
        Ok(j) => j,
        Err(ApiError::Conflict {
            code: "lock_held",
            detail,
        }) => match state.jobs.latest_of_kind(JOB_KIND)? {
            Some(j) if !j.status.is_terminal() => j,
            _ => return Err(ApiError::conflict("lock_held", detail)),
        },
        Err(e) => return Err(e),
    };
    let done = state.jobs.wait(&job.id, Duration::from_secs(3600)).await?;
    if done.status == JobStatus::Success {
        get(state, &job.id)
    } else {
        Err(ApiError::Unavailable {
            code: "backup_failed",
            detail: format!(
                "the backup {} ended {}: {}",
                job.id,
                done.status.as_str(),
                done.error_message.unwrap_or_default()
            ),
        })
    }
}

/// Jidoteki `STOP`: stops the running backup, or else deletes the newest one. Nothing to do
/// is not an error.
pub async fn stop_latest(state: &AppState, actor: &str) -> ApiResult<()> {
    let Some(b) = list(state)?
        .into_iter()
        .find(|b| b.origin == BackupOrigin::Created)
    else {
        return Ok(());
    };
    if b.status == BackupStatus::Running {
        log_line(&state.config, "Stopping backup");
        let _ = state.jobs.cancel(&b.id);
        state.jobs.wait(&b.id, Duration::from_secs(30)).await?;
        // The cancelled job cleans up as it is dropped; wait for that before deleting.
        let work = backup_dir(&state.config).join(format!(".work-{}", b.id));
        for _ in 0..100 {
            if !work.exists()
                && read_meta(&state.config, &b.id)
                    .is_some_and(|m| m.status != BackupStatus::Running)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    delete(state, &b.id, actor).map(|_| ())
}

// ---- checking and restoring an archive ----

/// The job error code of a refused archive.
fn refusal_code(r: &Refusal) -> &'static str {
    match r {
        Refusal::Invalid(_) | Refusal::TooLarge(_) => "invalid_archive",
        Refusal::NoSpace(_) => "insufficient_space",
    }
}

/// A refused archive as an answer: 422 `invalid_archive`, 413, or 409 `insufficient_space`.
fn refusal_error(r: Refusal) -> ApiError {
    match r {
        Refusal::Invalid(m) => ApiError::invalid_field("invalid_archive", "archive", m),
        Refusal::TooLarge(m) => ApiError::PayloadTooLarge(m),
        Refusal::NoSpace(m) => crate::areas::system::uploads::no_space(m),
    }
}

/// Unpacks `archive` into `staging` and checks all of it ([`pkg::unpack`]: the format,
/// every checksum, at most `limit` bytes unpacked), then what only the daemon can check: an
/// intact SQLite file of a schema this version reads, a TLS key that matches its certificate,
/// a config that parses. Nothing live is touched; on failure the caller removes `staging`.
fn unpack_and_check(
    archive: &Path,
    staging: &Path,
    limit: u64,
    plain: Option<&Path>,
) -> Result<Manifest, Refusal> {
    let manifest = pkg::unpack(archive, staging, limit, plain)?;
    Store::check_candidate(&staging.join(STORE_ENTRY))
        .map_err(|e| format!("{STORE_ENTRY}: {e}"))?;
    let role = |r: &str| {
        let p = staging.join("roles").join(r);
        p.is_file().then_some(p)
    };
    match (role("tls-cert.pem"), role("tls-key.pem")) {
        (Some(c), Some(k)) => {
            let (c, k) = (
                read_small(&c).map_err(|e| e.to_string())?,
                read_small(&k).map_err(|e| e.to_string())?,
            );
            crate::areas::system::certificate::check_pair(&c, &k)
                .map_err(|e| format!("the TLS certificate and key: {e}"))?;
        }
        (None, None) => {}
        _ => return Err("the archive has only half of the TLS pair".into()),
    }
    if let Some(c) = role("config.toml") {
        let text = String::from_utf8(read_small(&c).map_err(|e| e.to_string())?)
            .map_err(|_| "config.toml is not UTF-8".to_string())?;
        Config::from_toml(&text)
            .map_err(|e| format!("config.toml: {e}"))?
            .validate()
            .map_err(|e| format!("config.toml: {e}"))?;
    }
    Ok(manifest)
}

/// What swapping the files did.
struct Swapped {
    restored: u32,
    removed: u32,
    config: bool,
    tls: bool,
}

/// The swap: role and data files into place, missing state files removed, the store
/// replaced. Runs on a blocking thread, with everything already checked. Modes come from
/// [`restored_mode`], never from the archive or its manifest.
fn swap_in(
    cfg: &Config,
    store: &Store,
    staging: &Path,
    manifest: &Manifest,
) -> Result<Swapped, String> {
    let mut s = Swapped {
        restored: 0,
        removed: 0,
        config: false,
        tls: false,
    };
    for (role, live) in role_files(cfg) {
        let name = format!("roles/{role}");
        let staged = staging.join(&name);
        if !staged.is_file() {
            continue;
        }
        install(&staged, &live, restored_mode(&name))
            .map_err(|e| format!("{}: {e}", live.display()))?;
        s.restored += 1;
        s.config |= role == "config.toml";
        s.tls |= role.starts_with("tls-");
    }
    let mut keep = Vec::new();
    for f in &manifest.files {
        let Some(rel) = f.path.strip_prefix("data/") else {
            continue;
        };
        let live = cfg.data_dir.join(rel);
        install(&staging.join(&f.path), &live, restored_mode(&f.path))
            .map_err(|e| format!("{}: {e}", live.display()))?;
        keep.push(rel.to_string());
        s.restored += 1;
    }
    for rel in data_files(cfg).map_err(|e| e.to_string())? {
        if !keep.contains(&rel) {
            std::fs::remove_file(cfg.data_dir.join(&rel)).map_err(|e| format!("{rel}: {e}"))?;
            s.removed += 1;
        }
    }
    store
        .replace_with(&staging.join(STORE_ENTRY), HISTORY_TABLES)
        .map_err(|e| format!("replacing the store: {e}"))?;
    Ok(s)
}

/// Stores an uploaded archive (a temp file in the backup dir) as a backup after checking it
/// completely. 422 `invalid_archive` when it is not a sound hostplane backup, 413
/// `payload_too_large` when it unpacks to more than `[admin] backup_unpacked_max_bytes`.
/// A gzip- or zstd-compressed archive is stored as its plain tar. Whatever the outcome,
/// nothing but the stored backup is left.
pub async fn import(state: &AppState, actor: &str, upload: Upload) -> ApiResult<Backup> {
    let cfg = state.config.clone();
    let id = uuid::Uuid::now_v7().to_string();
    let dir = backup_dir(&cfg);
    let staging = dir.join(format!(".check-{id}"));
    let plain = dir.join(format!(".import-{id}.tar"));
    let src = upload.path.clone();
    let (st, pl) = (staging.clone(), plain.clone());
    let limit = cfg.admin.backup_unpacked_max_bytes;
    let checked = tokio::task::spawn_blocking(move || {
        // Unpacking needs about the archive's size again (more if it is compressed: then the
        // unpacked bytes are counted against the limit as they come).
        let size = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
        let r = crate::areas::system::uploads::check_space(
            st.parent().unwrap_or(&st),
            size.saturating_mul(2),
        )
        .map_err(Refusal::NoSpace)
        .and_then(|()| unpack_and_check(&src, &st, limit, Some(&pl)));
        let _ = std::fs::remove_dir_all(&st);
        let stored = if pl.exists() { pl.clone() } else { src };
        let r = r.and_then(|m| {
            sha256_file(&stored)
                .map(|h| (m, h))
                .map_err(|e| Refusal::Invalid(e.to_string()))
        });
        if r.is_err() {
            let _ = std::fs::remove_file(&pl);
        }
        r
    })
    .await
    .map_err(ApiError::internal)?;
    let (manifest, (size, sha)) = checked.map_err(|r| {
        log_line(
            &cfg,
            &format!("Refused an uploaded backup archive: {}", r.message()),
        );
        refusal_error(r)
    })?;
    let dest = tar_path(&cfg, &id);
    let persisted = if plain.exists() {
        let r = std::fs::rename(&plain, &dest);
        if r.is_err() {
            let _ = std::fs::remove_file(&plain);
        }
        r
    } else {
        upload.persist(&dest)
    };
    persisted.map_err(ApiError::internal)?;
    let mut b = new_backup(&id, BackupOrigin::Uploaded, actor, time::now_string());
    finish_success(&mut b, size, sha.clone(), manifest.files.len() as u32 + 1);
    if let Err(e) = write_meta(&cfg, &b) {
        let _ = std::fs::remove_file(&dest);
        return Err(ApiError::internal(e));
    }
    log_line(
        &cfg,
        &format!(
            "Received backup archive {id} (made {} by {} on {}) - size: {} - hash: {sha}",
            manifest.created_at,
            manifest.created_by,
            manifest.hostname,
            human_size(size)
        ),
    );
    state.events.publish(
        "resource.created",
        &b.href,
        actor,
        serde_json::to_value(&b).unwrap_or_default(),
    );
    prune(state);
    Ok(b)
}

/// Starts restoring backup `id` (202). The archive is checked again before anything changes;
/// a bad one fails the job with `invalid_archive` and the live state untouched.
pub fn start_restore(state: &AppState, actor: &str, id: &str) -> ApiResult<Job> {
    let path = archive_file(state, id)?;
    let st = state.clone();
    let who = actor.to_string();
    let id = id.to_string();
    state.jobs.spawn(
        JobSpec {
            kind: RESTORE_KIND,
            target: Some(format!("{HREF}/{id}")),
            lock_key: Some(LOCK.into()),
            actor: actor.to_string(),
        },
        move |ctx| run_restore(st, ctx, who, id, path),
    )
}

async fn run_restore(
    state: AppState,
    ctx: Arc<JobCtx>,
    actor: String,
    id: String,
    archive: PathBuf,
) -> Result<RestoreResult, JobFailure> {
    let cfg = state.config.clone();
    sweep_leftovers(&cfg);
    say(&cfg, &ctx, &format!("Restoring backup {id}"));
    say(&cfg, &ctx, "Validating backup archive");
    let staging = backup_dir(&cfg).join(format!(".restore-{}", ctx.id()));
    let _files = STATE_FILES.lock().await;
    let (c2, st, store) = (cfg.clone(), staging.clone(), state.store.clone());
    let limit = cfg.admin.backup_unpacked_max_bytes;
    let result = tokio::task::spawn_blocking(move || {
        let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
        // A stored archive is a plain tar (uploads are stored decompressed, after the check
        // against the limit): it unpacks to at most its own size, so a backup made here that
        // is larger than the limit still restores.
        let limit = limit.max(size);
        let r = crate::areas::system::uploads::check_space(st.parent().unwrap_or(&st), size)
            .map_err(Refusal::NoSpace)
            .and_then(|()| unpack_and_check(&archive, &st, limit, None))
            .map_err(|r| (refusal_code(&r), r.message().to_string()));
        let r = r.and_then(|m| {
            swap_in(&c2, &store, &st, &m)
                .map(|s| (m, s))
                .map_err(|e| ("restore_failed", e))
        });
        let _ = std::fs::remove_dir_all(&st);
        r
    })
    .await
    .map_err(|e| JobFailure::new("internal", e.to_string()))?;
    let (manifest, swapped) = match result {
        Ok(x) => x,
        Err((code, msg)) => {
            log_line(&cfg, &format!("Restore failed: {msg}"));
            return Err(JobFailure::new(code, msg));
        }
    };
    ctx.progress(60);
    say(
        &cfg,
        &ctx,
        &format!(
            "Restored the store and {} files (made {} by {} on {}); removed {}",
            swapped.restored,
            manifest.created_at,
            manifest.created_by,
            manifest.hostname,
            swapped.removed
        ),
    );
    state
        .auth
        .reload()
        .map_err(|e| JobFailure::new("internal", format!("reloading credentials: {e}")))?;
    say(&cfg, &ctx, "Reloaded users, tokens and the admin API token");
    // The restored store's secrets are sealed with the restored key.
    state
        .secrets
        .reload(&cfg.data_dir)
        .map_err(|e| JobFailure::new("internal", format!("reloading the secrets key: {e}")))?;
    let mut tls_reloaded = false;
    if let Some(live) = &state.tls
        && swapped.tls
    {
        match crate::tls::reload_from_files(live, &crate::tls::paths(&cfg)).await {
            Ok(()) => {
                tls_reloaded = true;
                say(
                    &cfg,
                    &ctx,
                    "Reloaded the HTTPS listener with the restored certificate",
                );
            }
            Err(e) => say(
                &cfg,
                &ctx,
                &format!(
                    "The HTTPS listener keeps its certificate: the restored one failed to load ({e})"
                ),
            ),
        }
    }
    if swapped.config {
        say(
            &cfg,
            &ctx,
            "Restored the configuration file; it applies at the next start",
        );
    }
    let storage_reapplied = match storage::settings(&state) {
        Ok(s) => match storage::write_units(&state, &s).await {
            Ok(_) => {
                say(
                    &cfg,
                    &ctx,
                    &format!("Regenerated the persistent storage units ({})", s.kind()),
                );
                true
            }
            Err(e) => {
                say(
                    &cfg,
                    &ctx,
                    &format!("Persistent storage units not regenerated: {e}"),
                );
                false
            }
        },
        Err(e) => {
            say(
                &cfg,
                &ctx,
                &format!("Persistent storage settings unreadable: {e}"),
            );
            false
        }
    };
    say(&cfg, &ctx, "Restore complete");
    let result = RestoreResult {
        backup: format!("{HREF}/{id}"),
        files_restored: swapped.restored,
        files_removed: swapped.removed,
        tls_reloaded,
        config_restored: swapped.config,
        storage_reapplied,
    };
    let data = serde_json::to_value(&result).unwrap_or_default();
    state.events.publish(
        "resource.updated",
        &format!("{HREF}/{id}"),
        &actor,
        data,
    );
    Ok(result)
}

// ---- uploads ----

/// An upload being received into `DATA_DIR/backup/.upload-<uuid>`; removed unless persisted
/// (also when the request is dropped half-way). At most `[admin] backup_upload_max_bytes`.
pub struct Upload {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    len: u64,
    limit: u64,
}

impl Upload {
    /// A new upload; `expected` is the announced length, if any (refused at once when over
    /// the limit or when the backup dir's filesystem has no room for it).
    pub async fn new(state: &AppState, expected: Option<u64>) -> ApiResult<Upload> {
        let limit = state.config.admin.backup_upload_max_bytes;
        if expected.is_some_and(|n| n > limit) {
            return Err(uploads::too_large("a backup archive", limit));
        }
        let dir = ensure_dir(&state.config).map_err(ApiError::internal)?;
        uploads::ensure_space(&dir, expected.unwrap_or(0))?;
        let path = dir.join(format!(".upload-{}", uuid::Uuid::now_v7()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(ApiError::internal)?;
        Ok(Upload {
            path,
            file: Some(file),
            len: 0,
            limit,
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> ApiResult<()> {
        use tokio::io::AsyncWriteExt;
        self.len += chunk.len() as u64;
        if self.len > self.limit {
            return Err(uploads::too_large("a backup archive", self.limit));
        }
        if let Some(f) = &mut self.file {
            f.write_all(chunk)
                .await
                .map_err(|e| uploads::write_error(&self.path, e))?;
        }
        Ok(())
    }

    pub async fn finish(&mut self) -> ApiResult<u64> {
        use tokio::io::AsyncWriteExt;
        if let Some(mut f) = self.file.take() {
            f.flush()
                .await
                .map_err(|e| uploads::write_error(&self.path, e))?;
            f.sync_all()
                .await
                .map_err(|e| uploads::write_error(&self.path, e))?;
        }
        Ok(self.len)
    }

    fn persist(mut self, dest: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, dest)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A body chunk that could not be read: over the length cap is 413, anything else 422.
pub fn body_error(e: &(dyn std::error::Error + 'static), limit: u64) -> ApiError {
    if uploads::is_limit_error(e) {
        uploads::too_large("a backup archive", limit)
    } else {
        ApiError::invalid("invalid_body", format!("the upload broke off: {e}"))
    }
}

// ---- routes ----

/// List backups, newest first.
#[utoipa::path(get, path = "/api/v1/system/backups",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:read"))),
    tag = "system", params(CollectionParams),
    responses((status = 200, description = "Backups, newest first", body = [Backup],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_backups(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(list(&state)?, &params, &headers)
}

/// Make a backup of the whole appliance state (admin): a `system.backup` job.
#[utoipa::path(post, path = "/api/v1/system/backups",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:write"))),
    tag = "system",
    responses((status = 202, description = "Started; the backup is listed at once as running", body = Job)))]
async fn create_backup(State(state): State<AppState>, Caller(p): Caller) -> ApiResult<Response> {
    Ok(accepted(&start_backup(&state, &p.user)?))
}

/// Upload a backup archive (admin; body: the tar). Checked completely, then kept as a backup
/// that `.../restore` can restore.
#[utoipa::path(post, path = "/api/v1/system/backups/upload",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:write"))),
    tag = "system",
    request_body(content = String, content_type = "application/x-tar", description = "A backup archive made by hostplane"),
    responses((status = 201, description = "Stored", body = Backup,
        headers(("location" = String, description = "The backup")))))]
async fn upload_backup(
    State(state): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let mut upload = Upload::new(&state, uploads::content_length(&headers)).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e, upload.limit))?;
        upload.write(&chunk).await?;
    }
    upload.finish().await?;
    let b = import(&state, &p.user, upload).await?;
    Ok(created(&b.href, &b))
}

/// One backup.
#[utoipa::path(get, path = "/api/v1/system/backups/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    params(("id" = String, Path, description = "Backup id")),
    responses((status = 200, description = "The backup", body = Backup)))]
async fn get_backup(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<Backup>> {
    Ok(axum::Json(get(&state, &id)?))
}

/// Delete a backup (admin). 409 while it runs: cancel its job instead.
#[utoipa::path(delete, path = "/api/v1/system/backups/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:write"))),
    tag = "system",
    params(("id" = String, Path, description = "Backup id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_backup(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<StatusCode> {
    delete(&state, &id, &p.user)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Download a backup archive (admin: it holds keys and credential hashes).
#[utoipa::path(get, path = "/api/v1/system/backups/{id}/download",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    params(("id" = String, Path, description = "Backup id")),
    responses((status = 200, description = "backup.tar", content_type = "application/x-tar", body = Vec<u8>)))]
async fn download_backup(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    download(&state, &id, &format!("backup-{id}.tar"), false)
}

/// The archive of backup `id` as a download.
pub fn download(state: &AppState, id: &str, filename: &str, jidoteki: bool) -> ApiResult<Response> {
    let path = archive_file(state, id)?;
    let file = std::fs::File::open(&path).map_err(ApiError::internal)?;
    let len = file.metadata().map_err(ApiError::internal)?.len();
    Ok(
        crate::areas::system::support::Archive { file, len }.into_response(
            "application/x-tar",
            filename,
            jidoteki,
        ),
    )
}

/// Restore backup `id` (admin): replaces users, tokens, settings, certificates, keys and the
/// config with the backup's, as a `system.restore` job.
#[utoipa::path(post, path = "/api/v1/system/backups/{id}/restore",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:write"))),
    tag = "system",
    params(("id" = String, Path, description = "Backup id")),
    responses((status = 202, description = "Restore started", body = Job)))]
async fn restore_backup(
    State(state): State<AppState>,
    Caller(p): Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    Ok(accepted(&start_restore(&state, &p.user, &id)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_jidoteki() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(128 * 1024), "128.0K");
        assert_eq!(human_size(3_565_158), "3.4M");
    }

    #[test]
    fn leftovers_are_matched_exactly() {
        let id = "0193a3b4-0000-7000-8000-000000000001";
        for (name, locked) in [
            (format!(".work-{id}"), true),
            (format!(".restore-{id}"), true),
            (format!(".{id}.tar.partial"), true),
            (format!(".check-{id}"), false),
            (format!(".upload-{id}"), false),
            (format!(".import-{id}.tar"), false),
            (format!(".{id}.json.tmp-4242"), false),
        ] {
            assert_eq!(leftover(&name), Some(locked), "{name}");
        }
        for name in [
            format!("{id}.tar"),
            format!("{id}.json"),
            "backup.log".to_string(),
            ".work-".to_string(),
            ".work-x".to_string(),
            format!(".work-{id}x"),
            format!(".{id}.tar.partial.x"),
            format!(".{id}.json.tmp-"),
            format!(".import-{id}"),
            format!("..work-{id}"),
        ] {
            assert_eq!(leftover(&name), None, "{name}");
        }
    }
}
