//! Artifacts: files a run places in a guest, content-addressed under `<dir>/<sha256>`, and the
//! single-use URLs a guest fetches them by. `<dir>` ([`dir_of`]) is
//! `DATA_DIR/provisioning/artifacts`, or with `[provisioning] artifacts_storage =
//! "<pool>/<dataset>"` the folder `hostplane-artifacts` of that dataset (mounted, existing:
//! checked through `platform::pool_paths` on each use); [`ArtifactsOnPools`] tells the pools
//! area that artifacts live there, so the pool and dataset are not destroyed under them.
//!
//! Upload flow: the request body is streamed into a temp file in the same directory while its
//! sha256 is computed and its size bounded ([`MAX_BYTES`]); a given `sha256` must match; the
//! file is renamed to its hash (the same content uploaded twice is stored once) and a row
//! names it. URL flow (`POST /provisioning/artifacts` with JSON `{name, url, sha256?}`):
//! the name, checksum and URL are checked in the request (the URL through
//! `platform::fetch`: no loopback or private address unless `[provisioning] url_allow` names
//! it, each redirect hop checked again), then the `provisioning.artifact_fetch` job streams the
//! answer through the same hashed write as an upload, with progress; a checksum mismatch keeps
//! nothing. Guest flow: a run asks [`GuestUrls::issue`] for a token bound to the run and the
//! artifact (valid [`URL_TTL`]); the guest's `GET /provisioning/fetch/{token}` redeems it once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use hostplane_types::jobs::Job;
use hostplane_types::provisioning::{Artifact, ArtifactFetch};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::model::{self, BASE};
use crate::error::{ApiError, ApiResult};
use crate::platform::fetch::{self, Net};
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::platform::store::Store;
use crate::platform::time;
use crate::state::AppState;

/// Largest artifact accepted.
pub const MAX_BYTES: u64 = 4 << 30;
/// How long a guest URL stays valid.
pub const URL_TTL: Duration = Duration::from_secs(600);

/// Where the artifacts are kept (`[provisioning] artifacts_storage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    Data,
    Pool { pool: String, dataset: String },
}

impl Storage {
    /// `data` or `<pool>/<dataset>` (the config's validation checked the names).
    pub fn of(state: &AppState) -> Storage {
        match state.config.provisioning.artifacts_storage.split_once('/') {
            Some((p, d)) => Storage::Pool {
                pool: p.to_string(),
                dataset: d.to_string(),
            },
            None => Storage::Data,
        }
    }
}

/// The artifacts' folder; on a pool dataset, 503 `artifacts_storage_unavailable` while that
/// dataset is not there (pool not mounted, dataset missing).
pub fn dir_of(state: &AppState) -> ApiResult<PathBuf> {
    match Storage::of(state) {
        Storage::Data => Ok(state.config.data_dir.join("provisioning/artifacts")),
        Storage::Pool { pool, dataset } => {
            let ds = state.config.pools.mount_root.join(&pool).join(&dataset);
            let resolved =
                crate::platform::pool_paths::inside_pool_dataset(state, &ds.to_string_lossy())
                    .map_err(|e| ApiError::Unavailable {
                        code: "artifacts_storage_unavailable",
                        detail: format!(
                            "[provisioning] artifacts_storage names {pool}/{dataset}: {e}"
                        ),
                    })?;
            Ok(resolved.join("hostplane-artifacts"))
        }
    }
}

pub fn path_of(dir: &Path, a: &Artifact) -> PathBuf {
    dir.join(&a.sha256)
}

/// The provisioning area's answer to the pools' registry: every artifact lives on the
/// configured dataset. They count as busy: the config cannot follow a rename, and a rollback
/// would lose files the rows name.
pub struct ArtifactsOnPools;

impl crate::platform::pool_users::PoolUser for ArtifactsOnPools {
    fn uses(
        &self,
        state: &AppState,
        pool: &str,
        dataset: Option<&str>,
    ) -> ApiResult<Vec<crate::platform::pool_users::UsedBy>> {
        let Storage::Pool { pool: p, dataset: d } = Storage::of(state) else {
            return Ok(Vec::new());
        };
        if p != pool || dataset.is_some_and(|x| x != d) {
            return Ok(Vec::new());
        }
        Ok(model::list::<Artifact>(&state.store, "artifact")?
            .into_iter()
            .map(|a| crate::platform::pool_users::UsedBy {
                kind: "artifact".into(),
                name: a.name,
                href: a.href,
                dataset: d.clone(),
                busy: true,
            })
            .collect())
    }

    fn dataset_renamed<'a>(
        &'a self,
        _state: &'a AppState,
        _pool: &'a str,
        _from: &'a str,
        _to: &'a str,
    ) -> crate::platform::pool_users::Notified<'a> {
        // Refused while artifacts live there (busy); an empty store needs nothing.
        Box::pin(async {})
    }
}

pub fn find(store: &Store, name: &str) -> ApiResult<Artifact> {
    model::get::<Artifact>(store, "artifact", name)?
        .ok_or_else(|| ApiError::not_found(format!("artifact {name:?}")))
}

fn check_sha(field: &str, s: &str) -> ApiResult<String> {
    let s = s.to_ascii_lowercase();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid_field(
            "invalid_sha256",
            field,
            "a sha256 is 64 hex digits",
        ));
    }
    Ok(s)
}

/// Streams `body` into the store as artifact `name`.
pub async fn store_stream<S, E>(
    store: &Store,
    dir: &Path,
    name: &str,
    expect_sha: Option<&str>,
    source: &str,
    body: S,
) -> ApiResult<Artifact>
where
    S: Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    model::check_id("name", name)?;
    let expect = expect_sha.map(|s| check_sha("sha256", s)).transpose()?;
    if model::get::<Artifact>(store, "artifact", name)?.is_some() {
        return Err(ApiError::conflict(
            "exists",
            format!("an artifact named {name:?} exists; delete it first"),
        ));
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(ApiError::internal)?;
    let tmp = dir.join(format!(".upload-{}", uuid::Uuid::now_v7()));
    let res = write_hashed(&tmp, body).await;
    let (sha, size) = match res {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    if let Some(want) = expect
        && want != sha
    {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ApiError::invalid_field(
            "checksum_mismatch",
            "sha256",
            format!("the content's sha256 is {sha}, not {want}"),
        ));
    }
    tokio::fs::rename(&tmp, dir.join(&sha))
        .await
        .map_err(ApiError::internal)?;
    let a = Artifact {
        id: name.to_string(),
        name: name.to_string(),
        href: format!("{BASE}/artifacts/{name}"),
        sha256: sha,
        size_bytes: size,
        source: source.to_string(),
        created_at: time::now_string(),
    };
    model::put(store, "artifact", name, &a, true)?;
    Ok(a)
}

async fn write_hashed<S, E>(tmp: &Path, mut body: S) -> ApiResult<(String, u64)>
where
    S: Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut f = tokio::fs::File::create(tmp)
        .await
        .map_err(ApiError::internal)?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest {
            code: "body_unreadable",
            detail: format!("reading the body: {e}"),
        })?;
        size += chunk.len() as u64;
        if size > MAX_BYTES {
            return Err(ApiError::PayloadTooLarge(format!(
                "an artifact is at most {MAX_BYTES} bytes"
            )));
        }
        h.update(&chunk);
        f.write_all(&chunk).await.map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOSPC) {
                ApiError::insufficient_space(format!("writing the artifact: {e}"))
            } else {
                ApiError::internal(e)
            }
        })?;
    }
    f.sync_all().await.map_err(ApiError::internal)?;
    Ok((hex::encode(h.finalize()), size))
}

/// Checks a download request now (422 for a bad name, checksum or URL, 409 for a taken name)
/// and starts the `provisioning.artifact_fetch` job; its result is the artifact.
pub async fn start_fetch(
    state: &AppState,
    actor: &str,
    req: ArtifactFetch,
    allow: Vec<Net>,
) -> ApiResult<Job> {
    model::check_id("name", &req.name)?;
    let expect = req.sha256.as_deref().map(|s| check_sha("sha256", s)).transpose()?;
    let url = reqwest::Url::parse(&req.url)
        .map_err(|e| ApiError::invalid_field("invalid_url", "url", format!("{:?}: {e}", req.url)))?;
    // Refused now when it already points somewhere it must not; each redirect hop is checked
    // again by the download.
    fetch::resolve_checked(&url, &allow).await?;
    if model::get::<Artifact>(&state.store, "artifact", &req.name)?.is_some() {
        return Err(ApiError::conflict(
            "exists",
            format!("an artifact named {:?} exists; delete it first", req.name),
        ));
    }
    let st = state.clone();
    let name = req.name.clone();
    state.jobs.spawn(
        JobSpec {
            kind: "provisioning.artifact_fetch",
            target: Some(format!("{BASE}/artifacts/{name}")),
            lock_key: Some(format!("provisioning/artifacts/{name}")),
            actor: actor.to_string(),
        },
        move |ctx| async move {
            let failed = |e: ApiError| JobFailure::new(e.code(), e.to_string());
            let url = req.url.as_str();
            let resp = fetch::get(url, &allow).await.map_err(failed)?;
            if !resp.status().is_success() {
                return Err(JobFailure::new(
                    "download_failed",
                    format!("{url}: HTTP {}", resp.status()),
                ));
            }
            let total = resp.content_length().filter(|t| *t > 0);
            if let Some(t) = total
                && t > MAX_BYTES
            {
                return Err(JobFailure::new(
                    "payload_too_large",
                    format!("{url} is {t} bytes; an artifact is at most {MAX_BYTES}"),
                ));
            }
            let mut n = 0u64;
            let c = ctx.clone();
            let stream = Box::pin(resp.bytes_stream().inspect(move |piece| {
                if let (Ok(b), Some(t)) = (piece, total) {
                    n += b.len() as u64;
                    c.progress((n.min(t) * 99 / t) as u8);
                }
            }));
            let dir = dir_of(&st).map_err(failed)?;
            let a = store_stream(
                &st.store,
                &dir,
                &name,
                expect.as_deref(),
                url,
                stream,
            )
            .await
            .map_err(failed)?;
            ctx.log(format!("downloaded {url}: {} bytes, sha256 {}", a.size_bytes, a.sha256));
            Ok(a)
        },
    )
}

/// Deletes the row, and the file when no other artifact has the same content.
pub fn remove(store: &Store, dir: &Path, name: &str) -> ApiResult<Artifact> {
    let a = find(store, name)?;
    model::delete(store, "artifact", name)?;
    let others = model::list::<Artifact>(store, "artifact")?;
    if !others.iter().any(|o| o.sha256 == a.sha256) {
        let _ = std::fs::remove_file(path_of(dir, &a));
    }
    Ok(a)
}

struct Grant {
    run: String,
    artifact: Artifact,
    expires: Instant,
}

/// Single-use, run-scoped guest URLs.
#[derive(Default)]
pub struct GuestUrls(Mutex<HashMap<String, Grant>>);

impl GuestUrls {
    /// A token for `artifact`, bound to run `run`.
    pub fn issue(&self, run: &str, artifact: Artifact) -> String {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).expect("the OS random source works");
        let token = hex::encode(raw);
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, g| g.expires > now);
        m.insert(
            token.clone(),
            Grant {
                run: run.to_string(),
                artifact,
                expires: now + URL_TTL,
            },
        );
        token
    }

    /// The artifact and its run, once.
    pub fn redeem(&self, token: &str) -> Option<(String, Artifact)> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let g = m.remove(token)?;
        (g.expires > Instant::now()).then_some((g.run, g.artifact))
    }

    /// Forgets a run's unused tokens (the run ended).
    pub fn revoke_run(&self, run: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, g| g.run != run);
    }
}
