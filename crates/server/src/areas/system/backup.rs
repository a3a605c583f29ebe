//! `/api/v1/system/backups`: archives of the whole appliance state, and restoring one.
//!
//! Flow of a backup: `POST /system/backups` → a `system.backup` job (lock `system.backup`,
//! shared with restores) → under [`STATE_FILES`] (no certificate or storage change meanwhile):
//! an SQLite online backup of the store (`Store::backup_to`), the role files the config names
//! (TLS certificate and key, the config file, a configured appliance identity), and the state
//! files under the data dir ([`DATA_PATHS`]: keys, the bootstrap token, ...) go into a tar with
//! a `manifest.json` listing every file's size, mode and SHA-256 → `DATA_DIR/backup/<id>.tar`
//! with a sidecar `<id>.json` (the [`Backup`] shown). Only the newest `[admin] backup_keep` are
//! kept. The backups themselves, logs and temp files are never in a backup.
//!
//! Flow of a restore: `POST /system/backups/{id}/restore` (or an upload first,
//! `POST /system/backups/upload`) → a `system.restore` job (same lock) → the archive is
//! unpacked into a staging dir and checked completely before anything changes: only known
//! paths, regular files, every checksum and size as the manifest says, nothing unlisted, an
//! intact SQLite file of a schema this version reads, a TLS key that matches its certificate, a
//! config that parses → then the swap: role and data files renamed into place (files of
//! [`DATA_PATHS`] the backup does not have are removed), the store replaced in one SQLite
//! backup transaction under the writer lock (`Store::replace_with`), keeping the history
//! tables (jobs, events, audit: a restore does not rewrite what happened) → the auth cache and
//! the admin-API token reloaded, the TLS listener reloaded, the persistent storage units
//! regenerated from the restored settings.
//!
//! Every step is also written to `DATA_DIR/backup/backup.log` as `[unixtime][SYSTEM] message`
//! (Jidoteki `GET /admin/backup/log`). The Jidoteki routes (areas/admin/backup.rs) are a thin
//! layer over [`start_backup`], [`stop_latest`], [`import`] and [`start_restore`]; the reboot
//! endpoint calls [`take_backup`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use hostplane_types::jobs::{Job, JobStatus};
use hostplane_types::system::backup::{Backup, BackupOrigin, BackupStatus, RestoreResult};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::system::storage;
use crate::areas::{accepted, created};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::fsutil::write_atomic;
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::Query;
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use crate::platform::store::Store;
use crate::platform::time;
use crate::state::AppState;

pub const HREF: &str = "/api/v1/system/backups";
pub const JOB_KIND: &str = "system.backup";
pub const RESTORE_KIND: &str = "system.restore";
/// Backups and restores never overlap.
pub const LOCK: &str = "system.backup";
/// Largest archive accepted for upload.
pub const MAX_ARCHIVE_BYTES: u64 = 1 << 30;
/// State files under the data dir that backups carry (a file or a directory). An area that
/// keeps state in files there adds its path here; everything else in the data dir (logs,
/// temp files, the backups themselves) is not state.
pub const DATA_PATHS: &[&str] = &["bootstrap-token", "keys", "tls", "license", "licence"];
/// Tables a restore keeps from the live store, parents first: history, not state.
const HISTORY_TABLES: &[&str] = &["jobs", "job_log", "events", "audit"];
const FORMAT: &str = "hostplane-backup";
const FORMAT_VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";
const STORE_ENTRY: &str = "store/hostplane.sqlite";
const MAX_MANIFEST: u64 = 16 << 20;
const MAX_ENTRIES: usize = 100_000;

/// Held while certificate, storage, backup or restore read or write state files, so a backup
/// never catches a half-replaced certificate pair.
pub static STATE_FILES: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_backups, create_backup))
        .routes(routes!(upload_backup))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(download_backup))
        .routes(routes!(restore_backup))
}

// ---- helpers shared with the other system state resources ----

/// The newest job of `kind`, if any.
pub fn latest_job(state: &AppState, kind: &str) -> ApiResult<Option<Job>> {
    let id: Option<String> = state.store.read(|c| {
        c.query_row(
            "SELECT id FROM jobs WHERE kind = ?1 ORDER BY id DESC LIMIT 1",
            [kind],
            |r| r.get(0),
        )
        .optional()
    })?;
    match id {
        Some(id) => Ok(Some(state.jobs.get(&id)?)),
        None => Ok(None),
    }
}

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
        size: None,
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
    b.size = Some(size);
    b.filesize = Some(human_size(size));
    b.sha256 = Some(sha256);
    b.files = Some(files);
    b.download = Some(format!("{}/download", b.href));
}

// ---- making a backup ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    version: u32,
    hostplane_version: String,
    created_at: String,
    created_by: String,
    hostname: String,
    schema_version: i64,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    path: String,
    size: u64,
    sha256: String,
    mode: u32,
}

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

const ROLE_NAMES: &[&str] = &[
    "tls-cert.pem",
    "tls-key.pem",
    "config.toml",
    "appliance-identity",
];

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

fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600)
}

fn append(
    builder: &mut tar::Builder<std::fs::File>,
    name: &str,
    data: &mut dyn Read,
    size: u64,
    mode: u32,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(time::now().unix_timestamp().max(0) as u64);
    h.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut h, name, data)
}

/// Writes the archive to `partial`; returns the manifest. Runs on a blocking thread.
fn build_archive(
    cfg: &Config,
    store: &Store,
    work: &Path,
    partial: &Path,
    created_by: &str,
    cancelled: &AtomicBool,
) -> Result<Manifest, String> {
    let stop = || {
        if cancelled.load(Ordering::Relaxed) {
            Err("cancelled".to_string())
        } else {
            Ok(())
        }
    };
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let db = work.join("hostplane.sqlite");
    store
        .backup_to(&db)
        .map_err(|e| format!("SQLite online backup: {e}"))?;
    stop()?;
    let mut sources: Vec<(String, PathBuf, u32)> = vec![(STORE_ENTRY.into(), db, 0o600)];
    for (role, path) in role_files(cfg) {
        if path.is_file() {
            let mode = file_mode(&path);
            sources.push((format!("roles/{role}"), path, mode));
        }
    }
    for rel in data_files(cfg).map_err(|e| format!("listing state files: {e}"))? {
        let p = cfg.data_dir.join(&rel);
        let mode = file_mode(&p);
        sources.push((format!("data/{rel}"), p, mode));
    }
    let mut files = Vec::new();
    for (name, path, mode) in &sources {
        let (size, sha256) = sha256_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(ManifestFile {
            path: name.clone(),
            size,
            sha256,
            mode: *mode,
        });
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        hostplane_version: env!("CARGO_PKG_VERSION").into(),
        created_at: time::now_string(),
        created_by: created_by.into(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        schema_version: crate::platform::store::schema_version(),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(partial)
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let mut builder = tar::Builder::new(out);
    let io = |e: std::io::Error| format!("writing the archive: {e}");
    append(
        &mut builder,
        MANIFEST,
        &mut json.as_slice(),
        json.len() as u64,
        0o600,
    )
    .map_err(io)?;
    for ((name, path, mode), listed) in sources.iter().zip(&manifest.files) {
        stop()?;
        // Read once, check it is what the manifest says, then write it.
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if hex::encode(Sha256::digest(&data)) != listed.sha256 {
            return Err(format!(
                "{} changed while the backup was made; try again",
                path.display()
            ));
        }
        append(
            &mut builder,
            name,
            &mut data.as_slice(),
            data.len() as u64,
            *mode,
        )
        .map_err(io)?;
    }
    let f = builder.into_inner().map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(manifest)
}

/// Removes what backups and restores a crash interrupted left behind. Called by the holder of
/// the `system.backup` lock, so none of it is in use.
fn sweep_leftovers(cfg: &Config) {
    let Ok(rd) = std::fs::read_dir(backup_dir(cfg)) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let p = e.path();
        if name.starts_with(".work-") || name.starts_with(".restore-") {
            let _ = std::fs::remove_dir_all(&p);
        } else if name.starts_with('.') && name.ends_with(".tar.partial") {
            let _ = std::fs::remove_file(&p);
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
) -> Result<serde_json::Value, JobFailure> {
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
    serde_json::to_value(&b).map_err(|e| JobFailure::new("internal", e.to_string()))
}

/// Takes a backup and waits until it is done (the reboot endpoint calls this before
/// rebooting). When a backup already runs, waits for that one instead.
pub async fn take_backup(state: &AppState, actor: &str) -> ApiResult<Backup> {
    let job = match start_backup(state, actor) {
        Ok(j) => j,
        Err(ApiError::Conflict {
            code: "lock_held",
            detail,
        }) => match latest_job(state, JOB_KIND)? {
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

fn safe_rel(path: &Path) -> Option<String> {
    let s = path.to_str()?;
    let ok = !s.is_empty()
        && s.len() <= 4096
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| s.to_string())
}

fn allowed_entry(name: &str) -> bool {
    if name == STORE_ENTRY {
        return true;
    }
    if let Some(role) = name.strip_prefix("roles/") {
        return ROLE_NAMES.contains(&role);
    }
    if let Some(rel) = name.strip_prefix("data/") {
        let top = rel.split('/').next().unwrap_or("");
        return DATA_PATHS.contains(&top) && !rel.split('/').any(|c| c.starts_with('.'));
    }
    false
}

/// Unpacks `archive` into `staging` and checks all of it. Nothing live is touched.
fn unpack_and_check(archive: &Path, staging: &Path) -> Result<Manifest, String> {
    let f = std::fs::File::open(archive).map_err(|e| format!("cannot open the archive: {e}"))?;
    let mut ar = tar::Archive::new(f);
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    let mut total = 0u64;
    std::fs::create_dir_all(staging).map_err(|e| e.to_string())?;
    let entries = ar
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let mut e = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        let ty = e.header().entry_type();
        if ty.is_dir() {
            continue;
        }
        let path = e.path().map_err(|e| format!("bad entry name: {e}"))?;
        let Some(name) = safe_rel(&path) else {
            return Err(format!(
                "unsafe entry name {:?}",
                path.display().to_string()
            ));
        };
        if !ty.is_file() {
            return Err(format!("{name} is not a regular file"));
        }
        if seen.len() >= MAX_ENTRIES {
            return Err("too many entries".into());
        }
        if seen.contains_key(&name) || (name == MANIFEST && manifest.is_some()) {
            return Err(format!("{name} appears twice"));
        }
        if name == MANIFEST {
            let mut buf = Vec::new();
            (&mut e)
                .take(MAX_MANIFEST + 1)
                .read_to_end(&mut buf)
                .map_err(|e| format!("reading the manifest: {e}"))?;
            if buf.len() as u64 > MAX_MANIFEST {
                return Err("the manifest is too large".into());
            }
            manifest = Some(buf);
            continue;
        }
        if !allowed_entry(&name) {
            return Err(format!("{name} is not part of a hostplane backup"));
        }
        let dest = staging.join(&name);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let mut out = std::fs::File::create(&dest).map_err(|e| e.to_string())?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut n = 0u64;
        loop {
            let k = e
                .read(&mut buf)
                .map_err(|e| format!("reading {name}: {e}"))?;
            if k == 0 {
                break;
            }
            total += k as u64;
            if total > 4 * MAX_ARCHIVE_BYTES {
                return Err("the archive unpacks to too much data".into());
            }
            h.update(&buf[..k]);
            out.write_all(&buf[..k]).map_err(|e| e.to_string())?;
            n += k as u64;
        }
        seen.insert(name, (n, hex::encode(h.finalize())));
    }
    let manifest = manifest.ok_or("the archive has no manifest.json")?;
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| format!("manifest.json is not a hostplane backup manifest: {e}"))?;
    if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
        return Err(format!(
            "unknown backup format {:?} version {} (this hostplane reads {FORMAT} {FORMAT_VERSION})",
            manifest.format, manifest.version
        ));
    }
    for f in &manifest.files {
        match seen.get(&f.path) {
            None => return Err(format!("{} is listed but missing", f.path)),
            Some((size, sha)) if *size != f.size || *sha != f.sha256 => {
                return Err(format!("{} does not match its checksum", f.path));
            }
            _ => {}
        }
    }
    if seen.len() != manifest.files.len() {
        let listed: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        let extra = seen
            .keys()
            .find(|k| !listed.contains(&k.as_str()))
            .cloned()
            .unwrap_or_default();
        return Err(format!("{extra} is in the archive but not in its manifest"));
    }
    if !seen.contains_key(STORE_ENTRY) {
        return Err(format!("the archive has no {STORE_ENTRY}"));
    }
    Store::check_candidate(&staging.join(STORE_ENTRY))
        .map_err(|e| format!("{STORE_ENTRY}: {e}"))?;
    let role = |r: &str| {
        let p = staging.join("roles").join(r);
        p.is_file().then_some(p)
    };
    match (role("tls-cert.pem"), role("tls-key.pem")) {
        (Some(c), Some(k)) => {
            let (c, k) = (
                std::fs::read(c).map_err(|e| e.to_string())?,
                std::fs::read(k).map_err(|e| e.to_string())?,
            );
            crate::areas::system::certificate::check_pair(&c, &k)
                .map_err(|e| format!("the TLS certificate and key: {e}"))?;
        }
        (None, None) => {}
        _ => return Err("the archive has only half of the TLS pair".into()),
    }
    if let Some(c) = role("config.toml") {
        let text = std::fs::read_to_string(c).map_err(|e| e.to_string())?;
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
/// replaced. Runs on a blocking thread, with everything already checked.
fn swap_in(
    cfg: &Config,
    store: &Store,
    staging: &Path,
    manifest: &Manifest,
) -> Result<Swapped, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut s = Swapped {
        restored: 0,
        removed: 0,
        config: false,
        tls: false,
    };
    let mode_of = |name: &str| {
        manifest
            .files
            .iter()
            .find(|f| f.path == name)
            .map(|f| f.mode & 0o777)
            .unwrap_or(0o600)
    };
    for (role, live) in role_files(cfg) {
        let name = format!("roles/{role}");
        let staged = staging.join(&name);
        if !staged.is_file() {
            continue;
        }
        let data = std::fs::read(&staged).map_err(|e| e.to_string())?;
        if let Some(dir) = live.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mode = if role == "tls-key.pem" || role == "appliance-identity" {
            0o600
        } else {
            mode_of(&name)
        };
        write_atomic(&live, &data, mode).map_err(|e| format!("{}: {e}", live.display()))?;
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
        if let Some(dir) = live.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let staged = staging.join(&f.path);
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(f.mode & 0o777))
            .map_err(|e| e.to_string())?;
        std::fs::rename(&staged, &live).map_err(|e| format!("{}: {e}", live.display()))?;
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
/// completely. 422 `invalid_archive` when it is not a sound hostplane backup.
pub async fn import(state: &AppState, actor: &str, upload: Upload) -> ApiResult<Backup> {
    let cfg = state.config.clone();
    let id = uuid::Uuid::now_v7().to_string();
    let staging = backup_dir(&cfg).join(format!(".check-{id}"));
    let src = upload.path.clone();
    let st = staging.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let r = unpack_and_check(&src, &st);
        let _ = std::fs::remove_dir_all(&st);
        r.and_then(|m| sha256_file(&src).map(|h| (m, h)).map_err(|e| e.to_string()))
    })
    .await
    .map_err(ApiError::internal)?;
    let (manifest, (size, sha)) = checked.map_err(|msg| {
        log_line(&cfg, &format!("Refused an uploaded backup archive: {msg}"));
        ApiError::invalid_field("invalid_archive", "archive", msg)
    })?;
    upload
        .persist(&tar_path(&cfg, &id))
        .map_err(ApiError::internal)?;
    let mut b = new_backup(&id, BackupOrigin::Uploaded, actor, time::now_string());
    finish_success(&mut b, size, sha.clone(), manifest.files.len() as u32 + 1);
    write_meta(&cfg, &b).map_err(ApiError::internal)?;
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
) -> Result<serde_json::Value, JobFailure> {
    let cfg = state.config.clone();
    sweep_leftovers(&cfg);
    say(&cfg, &ctx, &format!("Restoring backup {id}"));
    say(&cfg, &ctx, "Validating backup archive");
    let staging = backup_dir(&cfg).join(format!(".restore-{}", ctx.id()));
    let _files = STATE_FILES.lock().await;
    let (c2, st, store) = (cfg.clone(), staging.clone(), state.store.clone());
    let result = tokio::task::spawn_blocking(move || {
        let r = unpack_and_check(&archive, &st).map_err(|m| ("invalid_archive", m));
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
        data.clone(),
    );
    Ok(data)
}

// ---- uploads ----

/// An upload being received into `DATA_DIR/backup/.upload-<uuid>`; removed unless persisted.
pub struct Upload {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    len: u64,
}

impl Upload {
    pub async fn new(state: &AppState) -> ApiResult<Upload> {
        let dir = ensure_dir(&state.config).map_err(ApiError::internal)?;
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
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> ApiResult<()> {
        use tokio::io::AsyncWriteExt;
        self.len += chunk.len() as u64;
        if self.len > MAX_ARCHIVE_BYTES {
            return Err(ApiError::PayloadTooLarge(format!(
                "a backup archive is at most {} bytes",
                MAX_ARCHIVE_BYTES
            )));
        }
        if let Some(f) = &mut self.file {
            f.write_all(chunk).await.map_err(ApiError::internal)?;
        }
        Ok(())
    }

    pub async fn finish(&mut self) -> ApiResult<u64> {
        use tokio::io::AsyncWriteExt;
        if let Some(mut f) = self.file.take() {
            f.flush().await.map_err(ApiError::internal)?;
            f.sync_all().await.map_err(ApiError::internal)?;
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
    body: Body,
) -> ApiResult<Response> {
    let mut upload = Upload::new(&state).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?;
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
    fn only_known_entries_are_allowed() {
        assert!(allowed_entry("store/hostplane.sqlite"));
        assert!(allowed_entry("roles/tls-key.pem"));
        assert!(allowed_entry("data/keys/appliance.key"));
        assert!(!allowed_entry("data/logs/x"));
        assert!(!allowed_entry("data/keys/.hidden"));
        assert!(!allowed_entry("roles/other"));
        assert!(safe_rel(Path::new("../etc/passwd")).is_none());
        assert!(safe_rel(Path::new("/etc/passwd")).is_none());
    }
}
