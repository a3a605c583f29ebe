//! Bounds for uploads (backup archives, restore forms, update packages): a byte cap enforced
//! while the body streams (a `Content-Length` over it is refused before a byte is read), and
//! a free-space check of the filesystem the upload is written to.
//!
//! Over the cap is 413 `payload_too_large`; a filesystem without room is 409
//! `insufficient_space`. The caps are config keys (`[admin] backup_upload_max_bytes`,
//! `update_upload_max_bytes`, `backup_unpacked_max_bytes`).

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, header};

use crate::error::{ApiError, ApiResult};

/// Room left on a filesystem after an upload or a backup is written: never fill it up.
pub use crate::fsutil::SPACE_RESERVE_BYTES as RESERVE_BYTES;
/// What multipart framing (boundaries, part headers, other small fields) may add to a file.
pub const FORM_SLACK_BYTES: u64 = 64 << 10;

/// 413 `payload_too_large` for `what` over `limit`.
pub fn too_large(what: &str, limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "{what} is at most {limit} bytes (config: {})",
        match what {
            "an update package" => "[admin] update_upload_max_bytes",
            _ => "[admin] backup_upload_max_bytes",
        }
    ))
}

/// 409 `insufficient_space` ([`ApiError::insufficient_space`]).
pub fn no_space(detail: impl Into<String>) -> ApiError {
    ApiError::insufficient_space(detail)
}

pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Refuses a request whose `Content-Length` is over `limit` at once, and caps the body of any
/// other at `limit` bytes while it is read: reading past it fails with a length-limit error
/// ([`is_limit_error`]). Also checks there is room for the body in `dir`.
pub fn limit_request(req: Request, limit: u64, what: &str, dir: &Path) -> ApiResult<Request> {
    let len = content_length(req.headers());
    if len.is_some_and(|n| n > limit) {
        return Err(too_large(what, limit));
    }
    ensure_space(dir, len.unwrap_or(0))?;
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    Ok(req.map(|b| Body::new(http_body_util::Limited::new(b, cap))))
}

/// True when `e` (or what caused it) is the length-limit error of [`limit_request`].
pub fn is_limit_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

pub use crate::fsutil::{available, check_space, ensure_space};

/// An I/O error from writing an upload: ENOSPC/EDQUOT are 409 `insufficient_space`.
pub fn write_error(path: &Path, e: std::io::Error) -> ApiError {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            no_space(format!("{}: the filesystem is full", path.display()))
        }
        _ => ApiError::internal(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_over_the_cap_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let req = Request::builder()
            .header(header::CONTENT_LENGTH, "2000")
            .body(Body::empty())
            .unwrap();
        let e = limit_request(req, 1000, "a backup archive", dir.path()).unwrap_err();
        assert_eq!(e.code(), "payload_too_large");
        assert_eq!(e.status(), 413);
    }

    #[tokio::test]
    async fn a_body_without_length_is_cut_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let req = Request::builder()
            .body(Body::from(vec![0u8; 5000]))
            .unwrap();
        let req = limit_request(req, 1000, "a backup archive", dir.path()).unwrap();
        let e = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .unwrap_err();
        assert!(is_limit_error(&e), "{e}");
    }

    #[test]
    fn space_check_keeps_a_reserve() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_space(dir.path(), 0).is_ok());
        assert!(check_space(dir.path(), u64::MAX / 2).is_err());
        assert_eq!(
            ensure_space(dir.path(), u64::MAX / 2).unwrap_err().code(),
            "insufficient_space"
        );
    }
}
