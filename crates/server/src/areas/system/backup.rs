//! `/api/v1/system/backups`: archives of the whole appliance state, and restoring one.
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

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use hostplane_types::jobs::{Job, JobStatus};
use hostplane_types::system::backup::{Backup, BackupOrigin, BackupStatus, RestoreResult};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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

/// Reads a state file into the archive: counts and hashes what passes, and stops with an
/// error as soon as the backup is cancelled. Nothing is buffered beyond one read.
struct Checked<'a, R> {
    inner: R,
    hash: Sha256,
    n: u64,
    cancelled: &'a AtomicBool,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("cancelled"));
        }
        let k = self.inner.read(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
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

/// Writes the archive to `partial`; returns the manifest. Runs on a blocking thread. Every
/// file is streamed (hashed once for the manifest, then copied into the tar through a hashing
/// reader that must see the same bytes): memory use does not grow with the file sizes.
fn build_archive(
    cfg: &Config,
    store: &Store,
    work: &Path,
    partial: &Path,
    created_by: &str,
    cancelled: &AtomicBool,
) -> Result<Manifest, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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
    // The archive is about the files plus a header block each: refuse before reading or
    // writing anything when the backup dir's filesystem cannot hold it.
    let need = sources
        .iter()
        .map(|(_, p, _)| std::fs::metadata(p).map_or(0, |m| m.len()) + 1024)
        .sum::<u64>()
        + MAX_MANIFEST;
    if let Some(dir) = partial.parent() {
        crate::areas::system::uploads::check_space(dir, need)?;
    }
    let mut files = Vec::new();
    for (name, path, mode) in &sources {
        stop()?;
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
        .mode(0o600)
        .open(partial)
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
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
        // Streamed from the file; what went in must be what the manifest says.
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = Checked {
            inner: f.take(listed.size),
            hash: Sha256::new(),
            n: 0,
            cancelled,
        };
        let written = append(&mut builder, name, &mut reader, listed.size, *mode);
        stop()?;
        written.map_err(|e| format!("{}: {e}", path.display()))?;
        if reader.n != listed.size || hex::encode(reader.hash.finalize()) != listed.sha256 {
            return Err(format!(
                "{} changed while the backup was made; try again",
                path.display()
            ));
        }
    }
    let buffered = builder.into_inner().map_err(io)?;
    let f = buffered.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)?;
    Ok(manifest)
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

/// Why an archive was refused.
#[derive(Debug)]
enum Refusal {
    /// Not a sound hostplane backup (422 `invalid_archive`).
    Invalid(String),
    /// It unpacks to more than `[admin] backup_unpacked_max_bytes` (413).
    TooLarge(String),
    /// The filesystem has no room for it (409 `insufficient_space`).
    NoSpace(String),
}

impl Refusal {
    fn message(&self) -> &str {
        match self {
            Refusal::Invalid(m) | Refusal::TooLarge(m) | Refusal::NoSpace(m) => m,
        }
    }

    fn job_code(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) | Refusal::TooLarge(_) => "invalid_archive",
            Refusal::NoSpace(_) => "insufficient_space",
        }
    }

    fn api_error(self) -> ApiError {
        match self {
            Refusal::Invalid(m) => ApiError::invalid_field("invalid_archive", "archive", m),
            Refusal::TooLarge(m) => ApiError::PayloadTooLarge(m),
            Refusal::NoSpace(m) => crate::areas::system::uploads::no_space(m),
        }
    }
}

impl From<String> for Refusal {
    fn from(m: String) -> Self {
        Refusal::Invalid(m)
    }
}

impl From<&str> for Refusal {
    fn from(m: &str) -> Self {
        Refusal::Invalid(m.to_string())
    }
}

/// A local write failed: ENOSPC/EDQUOT is [`Refusal::NoSpace`], anything else is reported
/// as it is.
fn local(path: &Path, e: std::io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            Refusal::NoSpace(format!("{}: the filesystem is full", path.display()))
        }
        _ => Refusal::Invalid(format!("{}: {e}", path.display())),
    }
}

/// The unpacked stream of an archive: counts every byte after decompression and fails once
/// more than `limit` went through (`over` says so, whatever error the tar reader makes of
/// it); optionally copies what it reads to `tee` (the plain tar of a compressed upload).
struct Unpacked<R> {
    inner: R,
    n: u64,
    limit: u64,
    tee: Option<std::io::BufWriter<std::fs::File>>,
    /// Why reading stopped, seen by the caller whatever the tar reader made of the error.
    stopped: Rc<RefCell<Option<Stopped>>>,
}

enum Stopped {
    Over,
    Tee(std::io::Error),
}

impl<R: Read> Read for Unpacked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        if self.n > self.limit {
            *self.stopped.borrow_mut() = Some(Stopped::Over);
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "the archive unpacks to too much data",
            ));
        }
        if let Some(t) = &mut self.tee
            && let Err(e) = t.write_all(&buf[..k])
        {
            let msg = e.to_string();
            *self.stopped.borrow_mut() = Some(Stopped::Tee(e));
            return Err(std::io::Error::other(msg));
        }
        Ok(k)
    }
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens an archive: a tar, or a gzip- or zstd-compressed tar (by its magic bytes). Returns
/// the decompressed stream and whether it was compressed.
fn open_archive(archive: &Path) -> Result<(Box<dyn Read>, bool), Refusal> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(archive)
        .map_err(|e| Refusal::Invalid(format!("cannot open the archive: {e}")))?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) => return Err(Refusal::Invalid(format!("reading the archive: {e}"))),
        }
    }
    f.seek(SeekFrom::Start(0))
        .map_err(|e| Refusal::Invalid(format!("reading the archive: {e}")))?;
    if got == 4 && magic == ZSTD_MAGIC {
        let d = zstd::stream::read::Decoder::new(f)
            .map_err(|e| Refusal::Invalid(format!("not a zstd stream: {e}")))?;
        Ok((Box::new(d), true))
    } else if got >= 2 && magic[..2] == GZIP_MAGIC {
        let d = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
        Ok((Box::new(d), true))
    } else {
        Ok((Box::new(f), false))
    }
}

/// Unpacks `archive` (a tar, or a gzip/zstd-compressed tar) into `staging` and checks all of
/// it. Nothing live is touched. At most `limit` bytes are unpacked (counted after
/// decompression, as they come): past that it stops, and the caller removes `staging`.
/// Only regular files are written, each created new with mode 0600 (the archive's modes,
/// owners and setuid bits are never used); links, devices, FIFOs, absolute names and `..`
/// are refused. A compressed archive's plain tar is written to `plain` when given.
fn unpack_and_check(
    archive: &Path,
    staging: &Path,
    limit: u64,
    plain: Option<&Path>,
) -> Result<Manifest, Refusal> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let (reader, compressed) = open_archive(archive)?;
    let tee = match plain {
        Some(p) if compressed => Some(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
                .map_err(|e| local(p, e))?,
        )),
        _ => None,
    };
    let stopped = Rc::new(RefCell::new(None));
    let mut ar = tar::Archive::new(Unpacked {
        inner: reader,
        n: 0,
        limit,
        tee,
        stopped: stopped.clone(),
    });
    // A read error caused by the limit or by the tee file, as what it is.
    let why = |fallback: String| -> Refusal {
        match stopped.borrow_mut().take() {
            Some(Stopped::Over) => Refusal::TooLarge(format!(
                "the archive unpacks to more than {limit} bytes (config: [admin] backup_unpacked_max_bytes)"
            )),
            Some(Stopped::Tee(e)) => local(plain.unwrap_or(archive), e),
            None => Refusal::Invalid(fallback),
        }
    };
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    let dirs = |d: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(|e| local(d, e))
    };
    dirs(staging)?;
    {
        let entries = ar
            .entries()
            .map_err(|e| Refusal::Invalid(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut e = entry.map_err(|e| why(format!("not a tar archive: {e}")))?;
            let ty = e.header().entry_type();
            let path = e
                .path()
                .map_err(|e| Refusal::Invalid(format!("bad entry name: {e}")))?;
            let Some(name) = safe_rel(&path) else {
                return Err(Refusal::Invalid(format!(
                    "unsafe entry name {:?}",
                    path.display().to_string()
                )));
            };
            if ty.is_dir() {
                // Directories are made as files need them (0700), never from the archive.
                continue;
            }
            if !ty.is_file() {
                return Err(Refusal::Invalid(format!(
                    "{name} is not a regular file (links, devices and FIFOs are refused)"
                )));
            }
            if seen.len() >= MAX_ENTRIES {
                return Err("too many entries".into());
            }
            if seen.contains_key(&name) || (name == MANIFEST && manifest.is_some()) {
                return Err(format!("{name} appears twice").into());
            }
            if name == MANIFEST {
                let mut buf = Vec::new();
                (&mut e)
                    .take(MAX_MANIFEST + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| why(format!("reading the manifest: {e}")))?;
                if buf.len() as u64 > MAX_MANIFEST {
                    return Err("the manifest is too large".into());
                }
                manifest = Some(buf);
                continue;
            }
            if !allowed_entry(&name) {
                return Err(format!("{name} is not part of a hostplane backup").into());
            }
            let dest = staging.join(&name);
            if let Some(dir) = dest.parent() {
                dirs(dir)?;
            }
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dest)
                .map_err(|e| local(&dest, e))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 << 10];
            let mut n = 0u64;
            loop {
                let k = e
                    .read(&mut buf)
                    .map_err(|err| why(format!("reading {name}: {err}")))?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                out.write_all(&buf[..k]).map_err(|e| local(&dest, e))?;
                n += k as u64;
            }
            out.sync_all().map_err(|e| local(&dest, e))?;
            seen.insert(name, (n, hex::encode(h.finalize())));
        }
    }
    // Read to the end: the whole (decompressed) stream counts, is valid, and is in `plain`.
    let mut rest = ar.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())
        .map_err(|e| why(format!("the archive is damaged after its last entry: {e}")))?;
    if let Some(mut t) = rest.tee.take() {
        let p = plain.unwrap_or(archive);
        t.flush().map_err(|e| local(p, e))?;
        t.get_ref().sync_all().map_err(|e| local(p, e))?;
    }
    let manifest = manifest.ok_or("the archive has no manifest.json")?;
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| format!("manifest.json is not a hostplane backup manifest: {e}"))?;
    if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
        return Err(format!(
            "unknown backup format {:?} version {} (this hostplane reads {FORMAT} {FORMAT_VERSION})",
            manifest.format, manifest.version
        )
        .into());
    }
    for f in &manifest.files {
        match seen.get(&f.path) {
            None => return Err(format!("{} is listed but missing", f.path).into()),
            Some((size, sha)) if *size != f.size || *sha != f.sha256 => {
                return Err(format!("{} does not match its checksum", f.path).into());
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
        return Err(format!("{extra} is in the archive but not in its manifest").into());
    }
    if !seen.contains_key(STORE_ENTRY) {
        return Err(format!("the archive has no {STORE_ENTRY}").into());
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

/// Certificates, keys and config files are small; a larger one is not one.
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_MANIFEST {
        return Err(std::io::Error::other(format!(
            "{} is larger than {MAX_MANIFEST} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

/// The mode a restored file gets, from hostplane's own rules (never from the archive):
/// certificates, the licence and the config file 0644, everything else (keys, the bootstrap
/// token, the appliance identity, anything unknown) 0600. Nothing is executable or setuid.
fn restored_mode(name: &str) -> u32 {
    let public =
        matches!(
            name,
            "roles/tls-cert.pem" | "roles/config.toml" | "data/license" | "data/licence"
        ) || (name.starts_with("data/tls/") && name.ends_with(".pem") && !name.contains("key"));
    if public { 0o644 } else { 0o600 }
}

/// Puts a staged (checked) file in place atomically with `mode`: the staged file is given the
/// mode and renamed over `live`; across filesystems it is streamed to a temp file next to
/// `live` (created with the mode), synced and renamed. The directory is synced after.
fn install(staged: &Path, live: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = live.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(staged, std::fs::Permissions::from_mode(mode))?;
    match std::fs::rename(staged, live) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let name = live.file_name().and_then(|n| n.to_str()).unwrap_or("file");
            let tmp = dir.join(format!(".{name}.restore-{}", std::process::id()));
            let r = (|| {
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(mode)
                    .open(&tmp)?;
                // An existing temp file keeps its mode under O_CREAT: set it.
                out.set_permissions(std::fs::Permissions::from_mode(mode))?;
                std::io::copy(&mut std::fs::File::open(staged)?, &mut out)?;
                out.sync_all()?;
                std::fs::rename(&tmp, live)
            })();
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r?;
        }
        Err(e) => return Err(e),
    }
    std::fs::File::open(dir)?.sync_all()
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
        r.api_error()
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
            .map_err(|r| (r.job_code(), r.message().to_string()));
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

    #[test]
    fn restored_modes_follow_hostplanes_rules() {
        for (name, mode) in [
            ("data/bootstrap-token", 0o600),
            ("data/keys/appliance.key", 0o600),
            ("roles/tls-key.pem", 0o600),
            ("roles/appliance-identity", 0o600),
            ("data/tls/key.pem", 0o600),
            ("data/other", 0o600),
            ("roles/tls-cert.pem", 0o644),
            ("roles/config.toml", 0o644),
            ("data/tls/cert.pem", 0o644),
            ("data/license", 0o644),
            ("data/licence", 0o644),
        ] {
            assert_eq!(restored_mode(name), mode, "{name}");
        }
    }

    /// A tar of `entries` (name, data), optionally compressed.
    fn tar_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacking_stops_at_the_limit_after_decompression() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("manifest.json", b"{}".to_vec()),
            ("data/keys/zeros", vec![0u8; 8 << 20]),
        ]);
        let zst = zstd::stream::encode_all(tar.as_slice(), 3).unwrap();
        let archive = dir.path().join("a.tar.zst");
        std::fs::write(&archive, &zst).unwrap();
        let staging = dir.path().join("staging");
        let plain = dir.path().join("plain.tar");
        let r = unpack_and_check(&archive, &staging, 1 << 20, Some(&plain));
        assert!(matches!(r, Err(Refusal::TooLarge(_))), "{r:?}");
        // What was unpacked stays below the limit (the caller removes it).
        let unpacked = std::fs::metadata(staging.join("data/keys/zeros")).map_or(0, |m| m.len());
        assert!(unpacked <= 1 << 20, "{unpacked}");
        assert!(std::fs::metadata(&plain).unwrap().len() <= 1 << 20);
    }

    #[test]
    fn staged_files_are_private_whatever_the_archive_says() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o4777);
        h.set_cksum();
        b.append_data(&mut h, "data/bootstrap-token", &b"x"[..])
            .unwrap();
        let archive = dir.path().join("a.tar");
        std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
        let staging = dir.path().join("staging");
        // Refused later (no manifest), but what was staged is 0600.
        assert!(unpack_and_check(&archive, &staging, 1 << 20, None).is_err());
        let m = std::fs::metadata(staging.join("data/bootstrap-token")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    }

    #[test]
    fn install_replaces_atomically_with_the_given_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        std::fs::write(&staged, b"new").unwrap();
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o6777)).unwrap();
        let live = dir.path().join("sub/live");
        std::fs::create_dir_all(live.parent().unwrap()).unwrap();
        std::fs::write(&live, b"old").unwrap();
        install(&staged, &live, 0o600).unwrap();
        assert_eq!(std::fs::read(&live).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&live).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert!(!staged.exists());
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
