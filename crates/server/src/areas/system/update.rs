//! `/api/v1/system/update`, `/system/version`, `/system/keys`: software updates from vendor
//! packages (format: `docs/update-package.md`, code: `hostplane_package::update`), and the
//! version, changelog and build information they leave behind.
//!
//! Flow of `POST /system/update` (and of the Jidoteki `POST /admin/update`, which calls the same
//! functions): refuse at once when an update runs (lock `system.update`) → stream the upload to
//! `DATA_DIR/tmp/update-*/package.enc` (never into memory) → [`start`] a `system.update` job
//! holding the lock → in the job: decrypt with the appliance identity, check the vendor
//! signature, extract the files the signed manifest lists and check their hashes (E1005) →
//! check the version against the installed one (E1001) → run `update.sh` through the host
//! adapter `hostplane_host::update` with `[admin] update_timeout_secs` (E1000) → record
//! version, changelog and build info in the store (E1002 on failure). The job log is the update
//! log; the Jidoteki view shows it as `[unixtime][SYSTEM] message` lines. Every failure's job
//! `error_code` is its E-code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use hostplane_host::command::CommandError;
use hostplane_host::update::{UpdateScript, run_script};
use hostplane_package::update::{self as pkg, Manifest, OpenError};
use hostplane_types::jobs::{Job, JobStatus};
use hostplane_types::system::update::{
    ApplianceKeys, UpdateState, UpdateStatus, VersionInfo, VersionSource,
};
use rusqlite::OptionalExtension;
use tokio::io::AsyncWriteExt;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::answer::accepted;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::platform::jobs::{JobCtx, JobFailure, JobSpec};
use crate::state::AppState;

/// Job kind and lock key of updates (shared by the native and the Jidoteki route).
pub const JOB_KIND: &str = "system.update";
pub const LOCK: &str = "system/update";
/// Lines of the update log `GET /update` shows.
pub const LOG_TAIL: usize = 10;
/// Lines of each of the script's output streams kept in the update log.
const MAX_SCRIPT_LOG_LINES: usize = 5000;

/// Jidoteki error codes, used as the job's `error_code` and the problem `code`.
pub mod codes {
    /// Scripting error in the update script (non-zero exit, timeout, not executable).
    pub const SCRIPT: &str = "E1000";
    /// Version error: not newer than the installed version, or below its `min_version`.
    pub const VERSION: &str = "E1001";
    /// Any other error during the update process.
    pub const PROCESS: &str = "E1002";
    /// The update package is missing.
    pub const MISSING: &str = "E1003";
    /// An update is already running.
    pub const RUNNING: &str = "E1004";
    /// The package cannot be decrypted, verified or extracted.
    pub const PACKAGE: &str = "E1005";
}

const K_VERSION: &str = "update.version";
const K_CHANGELOG: &str = "update.changelog";
const K_BUILD: &str = "update.build";
const K_INSTALLED_AT: &str = "update.installed_at";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_update, get_update))
        .routes(routes!(get_version))
        .routes(routes!(get_keys))
        // `post_update` caps its body itself ([`limit`]: the cap is a config key).
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// Caps an update upload at `[admin] update_upload_max_bytes` (plus multipart framing): a
/// longer `Content-Length` is 413 at once, a longer body 413 as soon as it passes the cap;
/// 503 `insufficient_space` when the data dir's filesystem has no room for it.
pub fn limit(state: &AppState, req: Request) -> ApiResult<Request> {
    let cap = state.config.admin.update_upload_max_bytes;
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let slack = if multipart {
        crate::areas::system::uploads::FORM_SLACK_BYTES
    } else {
        0
    };
    crate::areas::system::uploads::limit_request(
        req,
        cap.saturating_add(slack),
        "an update package",
        &state.config.data_dir,
    )
}

fn too_large(state: &AppState) -> ApiError {
    crate::areas::system::uploads::too_large(
        "an update package",
        state.config.admin.update_upload_max_bytes,
    )
}

// ---------------------------------------------------------------------------------------------
// Keys

/// Where the appliance identity is read from: `[admin] appliance_identity`, else
/// `DATA_DIR/keys/appliance.key`.
pub fn identity_path(cfg: &Config) -> PathBuf {
    match &cfg.admin.appliance_identity {
        Some(p) if !p.as_os_str().is_empty() => p.clone(),
        _ => cfg.data_dir.join("keys").join("appliance.key"),
    }
}

/// Start-up: the appliance identity ([`ensure_appliance_identity`]), and removal (in the
/// background) of update work directories a crash left in `DATA_DIR/tmp`.
pub fn at_start(cfg: &Config) {
    if let Err(e) = ensure_appliance_identity(cfg) {
        tracing::warn!(error = %e, "cannot create the appliance identity; updates will be refused");
    }
    // Listed now (before any request can create a new one), removed in the background.
    let stale: Vec<PathBuf> = std::fs::read_dir(cfg.data_dir.join("tmp"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("update-"))
        .map(|e| e.path())
        .collect();
    if !stale.is_empty() {
        std::thread::spawn(move || {
            for p in stale {
                let _ = std::fs::remove_dir_all(p);
            }
        });
    }
}

/// First start: create `DATA_DIR/keys/appliance.key` (0600, in a 0700 dir) when no identity is
/// configured and none exists yet. Returns the recipient vendors encrypt to.
pub fn ensure_appliance_identity(cfg: &Config) -> anyhow::Result<Option<String>> {
    let configured = cfg
        .admin
        .appliance_identity
        .as_ref()
        .is_some_and(|p| !p.as_os_str().is_empty());
    let path = identity_path(cfg);
    if configured || path.exists() {
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let id = hostplane_package::keys::generate_identity();
    crate::fsutil::write_atomic(
        &path,
        hostplane_package::keys::identity_file(&id).as_bytes(),
        0o600,
    )?;
    let recipient = id.to_public().to_string();
    tracing::info!(path = %path.display(), %recipient, "created the appliance identity for update packages");
    Ok(Some(recipient))
}

fn load_identities(cfg: &Config) -> Result<Vec<hostplane_package::keys::Identity>, String> {
    let path = identity_path(cfg);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the appliance identity {}: {e}", path.display()))?;
    hostplane_package::keys::parse_identity_file(&text)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The vendor key packages and licences must be signed with.
pub fn vendor_key(cfg: &Config) -> Result<hostplane_package::keys::VerifyingKey, String> {
    if cfg.admin.vendor_public_key.trim().is_empty() {
        return Err("no vendor public key is configured ([admin] vendor_public_key)".into());
    }
    hostplane_package::keys::parse_public_key(&cfg.admin.vendor_public_key)
        .map_err(|e| format!("[admin] vendor_public_key: {e}"))
}

struct UpdateKeys {
    identities: Vec<hostplane_package::keys::Identity>,
    vendor: hostplane_package::keys::VerifyingKey,
}

fn update_keys(cfg: &Config) -> Result<UpdateKeys, ApiError> {
    let unavailable = |detail: String| ApiError::Unavailable {
        code: "update_not_configured",
        detail: format!("updates cannot be verified: {detail}"),
    };
    Ok(UpdateKeys {
        vendor: vendor_key(cfg).map_err(unavailable)?,
        identities: load_identities(cfg).map_err(unavailable)?,
    })
}

/// 503 `update_not_configured` when this appliance cannot verify packages; checked before an
/// upload is read.
pub fn ensure_configured(state: &AppState) -> ApiResult<()> {
    update_keys(&state.config).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// State written by updates

fn setting(state: &AppState, key: &str) -> ApiResult<Option<String>> {
    Ok(state.store.get_setting(key)?)
}

/// The installed version: the last applied package's, else hostplane's own.
pub fn installed_version(state: &AppState) -> ApiResult<String> {
    Ok(setting(state, K_VERSION)?.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()))
}

/// Version, changelog and build info as the last update left them.
pub fn version_info(state: &AppState) -> ApiResult<VersionInfo> {
    let recorded = setting(state, K_VERSION)?;
    let build = match setting(state, K_BUILD)? {
        Some(text) => Some(serde_json::from_str(&text).map_err(ApiError::internal)?),
        None => None,
    };
    Ok(VersionInfo {
        source: if recorded.is_some() {
            VersionSource::Update
        } else {
            VersionSource::Hostplane
        },
        version: recorded.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
        hostplane_version: env!("CARGO_PKG_VERSION").to_string(),
        changelog: setting(state, K_CHANGELOG)?,
        build,
        installed_at: setting(state, K_INSTALLED_AT)?,
    })
}

fn record_installed(state: &AppState, m: &Manifest) -> rusqlite::Result<()> {
    let build = serde_json::Value::Object(m.build.clone()).to_string();
    let now = crate::platform::time::now_string();
    state.store.write(|tx| {
        for (k, v) in [
            (K_VERSION, m.version.as_str()),
            (K_CHANGELOG, m.changelog.as_str()),
            (K_BUILD, build.as_str()),
            (K_INSTALLED_AT, now.as_str()),
        ] {
            tx.execute(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [k, v],
            )?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Status and log

/// The latest update job, if any update was ever attempted.
pub fn last_job(state: &AppState) -> ApiResult<Option<Job>> {
    let id: Option<String> = state.store.read(|c| {
        c.query_row(
            "SELECT id FROM jobs WHERE kind = ?1 ORDER BY id DESC LIMIT 1",
            [JOB_KIND],
            |r| r.get(0),
        )
        .optional()
    })?;
    id.map(|id| state.jobs.get(&id)).transpose()
}

/// Refuses at once (409 `lock_held`) when an update is running, before an upload is read.
pub fn ensure_not_running(state: &AppState) -> ApiResult<()> {
    match last_job(state)? {
        Some(j) if !j.status.is_terminal() => Err(ApiError::conflict(
            "lock_held",
            format!(
                "job {} holds lock {LOCK:?}: an update is already running",
                j.href
            ),
        )),
        _ => Ok(()),
    }
}

/// Jidoteki state, error code and message of an update job.
pub fn job_outcome(job: &Job) -> (UpdateState, Option<String>, Option<String>) {
    match job.status {
        JobStatus::Queued | JobStatus::Running => (UpdateState::Running, None, None),
        JobStatus::Success => (UpdateState::Success, None, None),
        JobStatus::Failed => {
            let code = job
                .error_code
                .clone()
                .filter(|c| c.len() == 5 && c.starts_with("E100"))
                .unwrap_or_else(|| codes::PROCESS.to_string());
            (UpdateState::Failed, Some(code), job.error_message.clone())
        }
        JobStatus::Cancelled => (
            UpdateState::Failed,
            Some(codes::PROCESS.into()),
            Some("the update was cancelled".into()),
        ),
        JobStatus::Interrupted => (
            UpdateState::Failed,
            Some(codes::PROCESS.into()),
            Some("the daemon stopped while the update was running".into()),
        ),
    }
}

/// The update log of `job` as `[unixtime][SYSTEM] message` lines. The job engine's own
/// bookkeeping lines (`job system.update started by …`, `job finished: …`) are left out: the
/// update's own lines say the same in Jidoteki's words.
pub fn log_lines(state: &AppState, job: &Job) -> ApiResult<Vec<String>> {
    let started = format!("job {JOB_KIND} started by ");
    Ok(state
        .jobs
        .log_lines(&job.id, 0)?
        .into_iter()
        .filter(|(seq, _, line)| {
            let bookkeeping =
                (*seq == 1 && line.starts_with(&started)) || line.starts_with("job finished: ");
            !bookkeeping
        })
        .map(|(_, time, line)| {
            let unix = crate::platform::time::parse(&time)
                .map(|t| t.unix_timestamp())
                .unwrap_or(0);
            format!("[{unix}][SYSTEM] {line}")
        })
        .collect())
}

/// The last [`LOG_TAIL`] lines of the log.
pub fn log_tail(lines: &[String]) -> &[String] {
    &lines[lines.len().saturating_sub(LOG_TAIL)..]
}

pub fn update_status(state: &AppState, job: &Job) -> ApiResult<UpdateStatus> {
    let (status, error_code, error_message) = job_outcome(job);
    let lines = log_lines(state, job)?;
    Ok(UpdateStatus {
        status,
        job: job.href.clone(),
        version: job
            .result
            .as_ref()
            .and_then(|r| r["version"].as_str())
            .map(str::to_string),
        error_code,
        error_message,
        started_at: job.started_at.clone(),
        finished_at: job.finished_at.clone(),
        created_by: job.created_by.clone(),
        log: log_tail(&lines).to_vec(),
    })
}

// ---------------------------------------------------------------------------------------------
// Receiving a package

/// An uploaded package on disk, in its own work directory (removed when dropped).
pub struct Upload {
    dir: tempfile::TempDir,
    path: PathBuf,
    size: u64,
}

fn work_dir(state: &AppState) -> ApiResult<tempfile::TempDir> {
    let root = state.config.data_dir.join("tmp");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|e| ApiError::internal(format!("{}: {e}", root.display())))?;
    }
    tempfile::Builder::new()
        .prefix("update-")
        .tempdir_in(&root)
        .map_err(|e| ApiError::internal(format!("{}: {e}", root.display())))
}

/// Streams `chunks` to a new package file. None when nothing was sent.
async fn save<S, E>(state: &AppState, mut chunks: S) -> ApiResult<Option<Upload>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let dir = work_dir(state)?;
    let path = dir.path().join("package.enc");
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let limit = state.config.admin.update_upload_max_bytes;
    let mut size = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            let text = e.to_string();
            if text.contains("length limit") || text.contains("too large") {
                too_large(state)
            } else {
                ApiError::invalid("invalid_body", format!("the upload broke off: {text}"))
            }
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(state));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| crate::areas::system::uploads::write_error(&path, e))?;
    }
    file.flush()
        .await
        .map_err(|e| crate::areas::system::uploads::write_error(&path, e))?;
    if size == 0 {
        return Ok(None);
    }
    Ok(Some(Upload { dir, path, size }))
}

/// Reads the multipart field `field` (the package) to disk; other fields are skipped.
/// None when the field is absent or empty.
pub async fn receive_multipart(
    state: &AppState,
    mut form: Multipart,
    field: &str,
) -> ApiResult<Option<Upload>> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            too_large(state)
        } else {
            ApiError::invalid(
                "invalid_body",
                format!("unreadable form: {}", e.body_text()),
            )
        }
    };
    // The form has exactly the one field: with a package, any other field (or a second
    // package) is refused, as the schema's `additionalProperties: false` says, instead of being
    // ignored. Without a package the answer stays "missing package" (Jidoteki's E1003).
    let mut upload = None;
    let mut unknown = None;
    while let Some(f) = form.next_field().await.map_err(bad)? {
        let name = f.name().unwrap_or_default().to_string();
        if name != field || upload.is_some() {
            unknown.get_or_insert(name);
            continue;
        }
        let stream = Box::pin(futures_util::stream::unfold(f, |mut f| async move {
            match f.chunk().await {
                Ok(Some(b)) => Some((Ok(b), f)),
                Ok(None) => None,
                Err(e) => Some((Err(e), f)),
            }
        }));
        upload = Some(save(state, stream).await?);
    }
    let upload = upload.flatten();
    if let (Some(_), Some(name)) = (&upload, unknown) {
        return Err(ApiError::invalid_field(
            "unknown_field",
            name.clone(),
            format!("unknown or repeated form field {name:?}; this form takes one {field}"),
        ));
    }
    Ok(upload)
}

/// Reads a raw request body (`application/octet-stream`) to disk.
pub async fn receive_body(state: &AppState, body: Body) -> ApiResult<Option<Upload>> {
    save(state, body.into_data_stream()).await
}

// ---------------------------------------------------------------------------------------------
// The update job

/// Starts the update job for `upload`. 409 `lock_held` when one runs, 503
/// `update_not_configured` when packages cannot be verified (no vendor key or identity).
pub fn start(state: &AppState, actor: &str, upload: Upload) -> ApiResult<Job> {
    let keys = update_keys(&state.config)?;
    let timeout = Duration::from_secs(state.config.admin.update_timeout_secs);
    let st = state.clone();
    state.jobs.spawn(
        JobSpec {
            kind: JOB_KIND,
            target: Some("/api/v1/system/update".into()),
            lock_key: Some(LOCK.into()),
            actor: actor.to_string(),
        },
        move |ctx| async move { run(st, ctx, upload, keys, timeout).await },
    )
}

/// Records a request refused before any job could start (Jidoteki shows it as the last
/// update's status, e.g. E1003 "Missing update package"). Nothing is recorded while an update
/// runs: its status stays visible. Returns once the record is final, so a `GET` right after
/// the refusal never sees it `running`.
pub async fn record_refused(state: &AppState, actor: &str, code: &'static str, message: &str) {
    let message = message.to_string();
    let res = state.jobs.spawn(
        JobSpec {
            kind: JOB_KIND,
            target: Some("/api/v1/system/update".into()),
            lock_key: Some(LOCK.into()),
            actor: actor.to_string(),
        },
        move |ctx| async move {
            ctx.log(format!("Failed updating: {message}"));
            Err::<hostplane_types::jobs::UpdateResult, _>(JobFailure::new(code, message))
        },
    );
    match res {
        Ok(job) => {
            let _ = state.jobs.wait(&job.id, Duration::from_secs(5)).await;
        }
        Err(e) => tracing::debug!(error = %e, "refused update not recorded"),
    }
}

/// Script output lines into the update log (each line is a store row: the last
/// [`MAX_SCRIPT_LOG_LINES`] of a stream are kept).
fn log_output(ctx: &JobCtx, prefix: &str, text: &str) {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = lines.len().saturating_sub(MAX_SCRIPT_LOG_LINES);
    if skip > 0 {
        ctx.log(format!("{prefix}: ({skip} earlier lines not logged)"));
    }
    for line in &lines[skip..] {
        ctx.log(format!("{prefix}: {line}"));
    }
}

fn fail(ctx: &JobCtx, code: &'static str, message: impl Into<String>) -> JobFailure {
    let message = message.into();
    ctx.log(format!("Failed updating: {message}"));
    JobFailure::new(code, message)
}

async fn run(
    state: AppState,
    ctx: std::sync::Arc<JobCtx>,
    upload: Upload,
    keys: UpdateKeys,
    timeout: Duration,
) -> Result<hostplane_types::jobs::UpdateResult, JobFailure> {
    ctx.log("Updating system. Please wait..");
    ctx.log(format!(
        "Decrypting and verifying the update package ({} bytes)",
        upload.size
    ));
    let dest = upload.dir.path().join("package");
    let (pkg_path, dest2) = (upload.path.clone(), dest.clone());
    let opened = tokio::task::spawn_blocking(move || -> Result<Manifest, OpenError> {
        std::fs::create_dir(&dest2).map_err(|e| OpenError::Local(e.to_string()))?;
        let file = std::fs::File::open(&pkg_path).map_err(|e| OpenError::Local(e.to_string()))?;
        let m = pkg::open(file, &keys.identities, &keys.vendor, &dest2)?;
        // The ciphertext is no longer needed; free the space before the script runs.
        let _ = std::fs::remove_file(&pkg_path);
        Ok(m)
    })
    .await
    .map_err(|e| {
        fail(
            &ctx,
            codes::PROCESS,
            format!("verifying the package crashed: {e}"),
        )
    })?;
    let manifest = match opened {
        Ok(m) => m,
        Err(OpenError::Local(e)) => {
            return Err(fail(
                &ctx,
                codes::PROCESS,
                format!("extracting the package failed: {e}"),
            ));
        }
        Err(e) => return Err(fail(&ctx, codes::PACKAGE, e.to_string())),
    };
    ctx.log(format!(
        "Package verified: version {} (applies over >= {}), {} files, built {}",
        manifest.version,
        manifest.min_version,
        manifest.files.len(),
        manifest.created
    ));
    ctx.progress(30);

    let installed = installed_version(&state).map_err(|e| {
        fail(
            &ctx,
            codes::PROCESS,
            format!("reading the installed version: {e}"),
        )
    })?;
    manifest
        .check_version(&installed)
        .map_err(|m| fail(&ctx, codes::VERSION, m))?;
    ctx.log(format!(
        "Version check passed: {installed} -> {}",
        manifest.version
    ));

    let payload = dest.join(pkg::PAYLOAD);
    if !payload.exists() {
        let _ = std::fs::create_dir(&payload);
    }
    let script = dest.join(pkg::SCRIPT);
    ctx.log(format!(
        "Running the update script (timeout {} s)",
        timeout.as_secs()
    ));
    ctx.progress(40);
    let out = run_script(&UpdateScript {
        script: &script,
        dir: &dest,
        payload: &payload,
        version: &manifest.version,
        installed_version: &installed,
        data_dir: &state.config.data_dir,
        timeout,
    })
    .await;
    let out = match out {
        Ok(o) => o,
        Err(CommandError::Timeout { after, .. }) => {
            return Err(fail(
                &ctx,
                codes::SCRIPT,
                format!(
                    "the update script did not finish within {} s and was killed",
                    after.as_secs()
                ),
            ));
        }
        Err(CommandError::Failed { status: None, .. }) => {
            return Err(fail(
                &ctx,
                codes::SCRIPT,
                "the update script was killed by a signal",
            ));
        }
        Err(e) => {
            return Err(fail(
                &ctx,
                codes::SCRIPT,
                format!("the update script could not be run: {e}"),
            ));
        }
    };
    log_output(&ctx, "update.sh", &out.stdout);
    log_output(&ctx, "update.sh (stderr)", &out.stderr);
    if out.status != 0 {
        return Err(fail(
            &ctx,
            codes::SCRIPT,
            format!("the update script failed with exit status {}", out.status),
        ));
    }
    ctx.progress(90);

    record_installed(&state, &manifest).map_err(|e| {
        fail(
            &ctx,
            codes::PROCESS,
            format!("recording the new version failed: {e}"),
        )
    })?;
    state.events.publish(
        "resource.updated",
        "/api/v1/system/version",
        "system",
        serde_json::json!({"version": manifest.version, "previous_version": installed}),
    );
    ctx.log(format!("Installed version {}", manifest.version));
    ctx.log("Updating system successful");
    drop(upload);
    Ok(hostplane_types::jobs::UpdateResult {
        version: manifest.version,
        previous_version: installed,
        min_version: manifest.min_version,
    })
}

// ---------------------------------------------------------------------------------------------
// Native routes

/// The native form of `POST /update`: `multipart/form-data` with the package in field `update`
/// (as the Jidoteki route takes it), or the package as the raw body
/// (`application/octet-stream`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UpdateForm {
    /// The encrypted update package (`hostplane package build` output).
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    update: String,
}

/// The package as a raw `application/octet-stream` body.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct PackageBody(Vec<u8>);

/// Apply an update package (admin). Answers 202 with the `system.update` job; the job's
/// `error_code` is the Jidoteki code of a failure (`E1000` script, `E1001` version, `E1002`
/// other, `E1005` decrypt/verify/extract). 409 `lock_held` while an update runs, 422 `E1003`
/// without a package, 503 `update_not_configured` without a vendor key or appliance identity.
#[utoipa::path(post, path = "/api/v1/system/update",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("system:write"))),
    tag = "system",
    request_body(content(
        (UpdateForm = "multipart/form-data"),
        (PackageBody = "application/octet-stream"),
    )),
    responses((status = 202, description = "Started; follow the job at Location", body = Job)))]
async fn post_update(
    State(state): State<AppState>,
    Caller(p): Caller,
    req: Request,
) -> ApiResult<Response> {
    ensure_not_running(&state)?;
    ensure_configured(&state)?;
    let req = limit(&state, req)?;
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let upload = if multipart {
        let form = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::invalid("invalid_body", e.body_text()))?;
        receive_multipart(&state, form, "update").await?
    } else {
        receive_body(&state, req.into_body()).await?
    };
    let upload = upload.ok_or_else(|| {
        ApiError::invalid_field(
            codes::MISSING,
            "update",
            "Missing update package: send it as multipart field `update` or as the body",
        )
    })?;
    let job = start(&state, &p.user, upload)?;
    Ok(accepted(&job))
}

/// The latest update: status, Jidoteki error code, last 10 log lines. 404 before the first.
#[utoipa::path(get, path = "/api/v1/system/update",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "The latest update", body = UpdateStatus)))]
async fn get_update(State(state): State<AppState>) -> ApiResult<axum::Json<UpdateStatus>> {
    let job =
        last_job(&state)?.ok_or_else(|| ApiError::not_found("no update has been attempted"))?;
    Ok(axum::Json(update_status(&state, &job)?))
}

/// Installed version, changelog and build information. Before any update the version is
/// hostplane's own and there is no changelog or build information.
#[utoipa::path(get, path = "/api/v1/system/version",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "Version information", body = VersionInfo)))]
async fn get_version(State(state): State<AppState>) -> ApiResult<axum::Json<VersionInfo>> {
    Ok(axum::Json(version_info(&state)?))
}

/// The keys updates and licences are checked with: the appliance's age recipient (what vendors
/// encrypt packages to) and the configured vendor public key.
#[utoipa::path(get, path = "/api/v1/system/keys",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("system:read"))),
    tag = "system",
    responses((status = 200, description = "Keys", body = ApplianceKeys)))]
async fn get_keys(State(state): State<AppState>) -> axum::Json<ApplianceKeys> {
    let cfg = &state.config;
    let (recipient, error) = match load_identities(cfg) {
        Ok(ids) => (ids.first().map(|i| i.to_public().to_string()), None),
        Err(e) => (None, Some(e)),
    };
    let vendor = cfg.admin.vendor_public_key.trim();
    axum::Json(ApplianceKeys {
        appliance_recipient: recipient,
        appliance_identity: identity_path(cfg).display().to_string(),
        appliance_identity_error: error,
        vendor_public_key: (!vendor.is_empty()).then(|| vendor.to_string()),
    })
}
