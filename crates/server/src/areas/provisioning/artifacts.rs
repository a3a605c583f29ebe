//! Artifacts: files a run places in a guest, content-addressed under
//! `DATA_DIR/provisioning/artifacts/<sha256>`, and the single-use URLs a guest fetches them by.
//!
//! Upload flow: the request body is streamed into a temp file in the same directory while its
//! sha256 is computed and its size bounded ([`MAX_BYTES`]); a given `sha256` must match; the
//! file is renamed to its hash (the same content uploaded twice is stored once) and a row
//! names it. Guest flow: a run asks [`GuestUrls::issue`] for a token bound to the run and the
//! artifact (valid [`URL_TTL`]); the guest's `GET /provisioning/fetch/{token}` redeems it once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use hostplane_types::provisioning::Artifact;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::model::{self, BASE};
use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;
use crate::platform::time;

/// Largest artifact accepted.
pub const MAX_BYTES: u64 = 4 << 30;
/// How long a guest URL stays valid.
pub const URL_TTL: Duration = Duration::from_secs(600);

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("provisioning/artifacts")
}

pub fn path_of(data_dir: &Path, a: &Artifact) -> PathBuf {
    dir(data_dir).join(&a.sha256)
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
    data_dir: &Path,
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
    let dir = dir(data_dir);
    tokio::fs::create_dir_all(&dir)
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

/// Deletes the row, and the file when no other artifact has the same content.
pub fn remove(store: &Store, data_dir: &Path, name: &str) -> ApiResult<Artifact> {
    let a = find(store, name)?;
    model::delete(store, "artifact", name)?;
    let others = model::list::<Artifact>(store, "artifact")?;
    if !others.iter().any(|o| o.sha256 == a.sha256) {
        let _ = std::fs::remove_file(path_of(data_dir, &a));
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
