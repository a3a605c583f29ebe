//! One lock over the daemon's state files.

use std::sync::LazyLock;

/// Held while the certificate, storage-unit, backup or restore code reads or writes state
/// files, so a backup never catches a half-replaced certificate pair.
pub static STATE_FILES: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));
