//! Whether a host path lies inside a pool's dataset: the one check behind "bind mounts only
//! inside pool datasets" for callers below admin (containers' `mounts`, stacks' compose binds).
//!
//! Flow: the path must be written as `<pools.mount_root>/<pool>/<dataset>/…` (no `..`); the
//! pool must be mounted and the dataset exist (the pools area's records); then the path, symlinks
//! resolved (`hostplane_host::fsutil::resolve_inside`), must stay inside the dataset's
//! directory. The answer is the resolved path, which is what callers hand to the engine so a
//! symlink swapped in later changes nothing.

use std::path::{Path, PathBuf};

use crate::areas::pools::datasets;
use crate::state::AppState;

/// The resolved `source` when it is inside a dataset of a mounted pool; why not otherwise.
pub fn inside_pool_dataset(state: &AppState, source: &str) -> Result<PathBuf, String> {
    let root = &state.config.pools.mount_root;
    let p = Path::new(source);
    let outside = || {
        format!(
            "{source} is not inside a pool's dataset ({}/<pool>/<dataset>/…)",
            root.display()
        )
    };
    let rest = p.strip_prefix(root).map_err(|_| outside())?;
    let mut parts = rest.components();
    let (Some(pool), Some(ds)) = (parts.next(), parts.next()) else {
        return Err(outside());
    };
    let (pool, ds) = (
        pool.as_os_str().to_string_lossy().into_owned(),
        ds.as_os_str().to_string_lossy().into_owned(),
    );
    let ctx = datasets::ctx(state, &pool).map_err(|e| format!("{source}: {e}"))?;
    let ds_dir = ctx.require(&ds).map_err(|e| format!("{source}: no {e}"))?;
    hostplane_host::fsutil::resolve_inside(p, &ds_dir)
}
