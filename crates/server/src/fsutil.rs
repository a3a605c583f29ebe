//! File helpers for files the daemon owns; the one implementation lives in the host layer.

pub use hostplane_host::fsutil::write_atomic;
