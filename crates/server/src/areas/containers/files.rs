//! Files in and out of a container as tar: `GET|PUT /containers/{engine}/{name}/files?path=`.
//!
//! Flow of a download: `path` must be absolute and clean ([`model::check_abs_path`]); the
//! engine's tar of it streams out (`application/x-tar`) once its first chunk arrived (a
//! missing path is 404 before any byte). Flow of an upload: the body streams into an unlinked
//! temp file through a byte counter (413 past `containers.files_max_bytes`); the whole tar is
//! then read ([`check_tar`]: every entry, and every hard link's target, relative and without
//! `..`; at most [`MAX_ENTRIES`]), and only a tar that passes goes to the engine, which
//! extracts it below `path`. So a refused upload changes nothing in the container.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path as FsPath};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ContainersState, engine_error, model};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::Query;
use crate::state::AppState;

/// Most entries an uploaded tar may have.
pub const MAX_ENTRIES: usize = 1_000_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_files, put_files))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FilesParams {
    /// Absolute path inside the container, without `.` or `..` (a download: a file or a
    /// directory; an upload: the directory the tar is extracted into, which must exist).
    #[param(pattern = "^/", max_length = 4096)]
    path: String,
}

/// Download a file or directory of a container as a tar (entries named from the path's last
/// component: `/etc` gives `etc/...`).
#[utoipa::path(get, path = "/api/v1/containers/{engine}/{name}/files",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id"), FilesParams),
    responses((status = 200, description = "A tar", body = Vec<u8>, content_type = "application/x-tar")))]
async fn get_files(
    State(state): State<AppState>,
    Path((engine, name)): Path<(String, String)>,
    Query(params): Query<FilesParams>,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?;
    model::check_path_name("container", &name)?;
    model::check_abs_path("path", &params.path)?;
    let stream = e
        .download(&name, &params.path)
        .await
        .map_err(engine_error)?;
    let body = Body::from_stream(stream.map(|r| r.map_err(|e| std::io::Error::other(e.to_string()))));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// Upload a tar and extract it into directory `path` of a container (which must exist).
/// Entries must be relative without `..`; at most `containers.files_max_bytes` (413).
#[utoipa::path(put, path = "/api/v1/containers/{engine}/{name}/files",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id"), FilesParams),
    request_body(content((Vec<u8> = "application/x-tar")), description = "A tar"),
    responses((status = 204, description = "Extracted")))]
async fn put_files(
    State(state): State<AppState>,
    Path((engine, name)): Path<(String, String)>,
    Query(params): Query<FilesParams>,
    body: Body,
) -> ApiResult<Response> {
    let checked = (|| {
        let e = state.engines().get(&engine)?.clone();
        model::check_path_name("container", &name)?;
        model::check_abs_path("path", &params.path)?;
        Ok(e)
    })();
    let e = match checked {
        Ok(e) => e,
        Err(err) => {
            let _ = axum::body::to_bytes(body, 1 << 20).await;
            return Err(err);
        }
    };
    let max = state.config.containers.files_max_bytes;
    let file = spool(body, max).await?;
    let file = tokio::task::spawn_blocking(move || check_spooled(file))
        .await
        .map_err(ApiError::internal)??;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    e.upload(&name, &params.path, stream)
        .await
        .map_err(engine_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body in an unlinked temp file, at most `max` bytes (413 past it).
pub async fn spool(body: Body, max: u64) -> ApiResult<std::fs::File> {
    let mut file = tempfile::tempfile().map_err(ApiError::internal)?;
    let mut seen: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid("body_unreadable", e.to_string()))?;
        seen += chunk.len() as u64;
        if seen > max {
            return Err(ApiError::PayloadTooLarge(format!(
                "the tar is larger than containers.files_max_bytes ({max} bytes)"
            )));
        }
        // Small synchronous writes to a local temp file; the chunk is at most a few KiB.
        file.write_all(&chunk).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOSPC) {
                ApiError::insufficient_space("no room for the upload's temp file")
            } else {
                ApiError::internal(e)
            }
        })?;
    }
    Ok(file)
}

fn check_spooled(mut file: std::fs::File) -> ApiResult<std::fs::File> {
    file.seek(SeekFrom::Start(0)).map_err(ApiError::internal)?;
    check_tar(&mut file).map_err(|m| ApiError::invalid_field("invalid_tar", "body", m))?;
    file.seek(SeekFrom::Start(0)).map_err(ApiError::internal)?;
    Ok(file)
}

/// Reads a whole tar: every entry (and hard link target) relative, without `..`; answers the
/// number of entries. Symlink targets are not checked: the engine resolves them inside the
/// container's root.
pub fn check_tar(r: impl Read) -> Result<usize, String> {
    let mut a = tar::Archive::new(r);
    let mut n = 0;
    for entry in a.entries().map_err(|e| format!("not a tar: {e}"))? {
        let entry = entry.map_err(|e| format!("not a tar: {e}"))?;
        n += 1;
        if n > MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        let path = entry.path().map_err(|e| format!("entry {n}: {e}"))?;
        check_entry_path(&path).map_err(|m| format!("entry {:?}: {m}", path.display()))?;
        if entry.header().entry_type() == tar::EntryType::Link
            && let Some(target) = entry.link_name().map_err(|e| format!("entry {n}: {e}"))?
        {
            check_entry_path(&target)
                .map_err(|m| format!("hard link {:?}: {m}", path.display()))?;
        }
    }
    if n == 0 {
        return Err("an empty tar".into());
    }
    Ok(n)
}

fn check_entry_path(p: &FsPath) -> Result<(), &'static str> {
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("is absolute"),
            Component::ParentDir => return Err("contains .."),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(names: &[&str]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for n in names {
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o644);
            // set_path refuses `..`; write the raw name as an attacker would.
            let bytes = n.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn relative_entries_pass_and_escapes_do_not() {
        assert_eq!(check_tar(&tar_of(&["a", "./b", "d/e"])[..]), Ok(3));
        assert!(check_tar(&tar_of(&["a", "../x"])[..]).unwrap_err().contains(".."));
        assert!(check_tar(&tar_of(&["d/../../x"])[..]).is_err());
        assert!(check_tar(&tar_of(&["/etc/passwd"])[..]).unwrap_err().contains("absolute"));
        assert!(check_tar(&b"not a tar at all, just some bytes"[..]).is_err());
        assert!(check_tar(&[0u8; 1024][..]).is_err(), "an empty tar");
    }

    #[test]
    fn hard_link_targets_are_checked() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        let t = b"../../etc/shadow";
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        h.set_path("l").unwrap();
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        let t = b.into_inner().unwrap();
        assert!(check_tar(&t[..]).unwrap_err().contains("hard link"));
    }
}
