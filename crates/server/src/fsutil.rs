//! File helpers for files the daemon owns; the one implementation lives in the host layer.

pub use hostplane_host::fsutil::write_atomic;

use std::path::Path;

use crate::error::{ApiError, ApiResult};

/// Bytes kept free on any file system hostplane writes uploads, images or backups to.
pub const SPACE_RESERVE_BYTES: u64 = 64 << 20;

/// Bytes free for an unprivileged writer on the file system holding `dir`.
pub fn available(dir: &Path) -> std::io::Result<u64> {
    hostplane_host::health::fs_usage(dir).map(|u| u.available_bytes)
}

/// Whether `need` bytes fit in `dir`, keeping [`SPACE_RESERVE_BYTES`] free. `Err(detail)` if
/// not. Not knowing (statvfs failed) is no reason to refuse: the write itself will tell.
pub fn check_space(dir: &Path, need: u64) -> Result<(), String> {
    let avail = match available(dir) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "statvfs failed");
            return Ok(());
        }
    };
    if avail < need.saturating_add(SPACE_RESERVE_BYTES) {
        return Err(format!(
            "not enough free space in {}: {need} bytes needed (+{SPACE_RESERVE_BYTES} kept free), {avail} available",
            dir.display()
        ));
    }
    Ok(())
}

/// [`check_space`] as a 409 `insufficient_space`: the one check every area uses.
pub fn ensure_space(dir: &Path, need: u64) -> ApiResult<()> {
    check_space(dir, need).map_err(ApiError::insufficient_space)
}
