//! LXC on pool datasets: root filesystems (`storage: "<pool>/<dataset>"` puts the rootfs in
//! `<dataset>/<name>`, a btrfs subvolume on a btrfs pool), `local` rootfs tarballs and backups
//! read from or written to a dataset, bind mounts confined to datasets for non-admins, and the
//! containers as users of pool datasets.
//!
//! Request flow: a create, restore or backup names `<pool>/<dataset>`: [`dataset_dir`]
//! resolves it through the pools area (the pool must exist and be mounted, the dataset must
//! exist; 422 `unknown_storage` otherwise). [`LxcOnPools`] answers the pools' registry
//! (`platform::pool_users`): a container whose rootfs or a bind mount source lies under a
//! dataset uses it. LXC containers do not follow a dataset rename (the config names the path),
//! so every one counts as busy: a rename or rollback is refused too, not only a destroy.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use hostplane_host::command::validate_name;
use hostplane_host::lxc::Config;

use super::LxcState;
use super::model;
use crate::areas::pools;
use crate::error::{ApiError, ApiResult};
use crate::platform::pool_users::{Notified, PoolUser, UsedBy};
use crate::state::AppState;

/// A dataset's directory and whether its pool is btrfs.
pub struct DatasetDir {
    pub path: PathBuf,
    pub btrfs: bool,
}

/// `<pool>/<dataset>` (already parsed) as a directory; 422 `unknown_storage` naming `field`
/// when the pool or dataset does not exist; 409 `pool_not_mounted` when unmounted.
pub fn dataset_dir(state: &AppState, field: &str, pool: &str, ds: &str) -> ApiResult<DatasetDir> {
    let unknown = |e: ApiError| match e {
        ApiError::NotFound(m) => ApiError::invalid_field("unknown_storage", field, format!("no {m}")),
        other => other,
    };
    let c = pools::datasets::ctx(state, pool).map_err(unknown)?;
    let path = c.require(ds).map_err(unknown)?;
    Ok(DatasetDir {
        path,
        btrfs: c.btrfs(),
    })
}

/// A file in a dataset given as `<pool>/<dataset>/<path>`: it must exist, be a regular file,
/// and stay inside the dataset after every symlink is followed (422 otherwise).
pub fn dataset_file(state: &AppState, field: &str, s: &str) -> ApiResult<PathBuf> {
    let bad = |why: &str| ApiError::invalid_field("invalid_archive", field, why.to_string());
    let mut parts = s.splitn(3, '/');
    let (Some(pool), Some(ds), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("give <pool>/<dataset>/<path of the file in the dataset>"));
    };
    validate_name("pool", pool).map_err(|e| bad(&e.to_string()))?;
    validate_name("dataset", ds).map_err(|e| bad(&e.to_string()))?;
    if rest.is_empty()
        || rest.len() > 1024
        || Path::new(rest)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(bad("the path in the dataset has no .. or absolute parts"));
    }
    let d = dataset_dir(state, field, pool, ds)?;
    let root = d.path.canonicalize().map_err(ApiError::internal)?;
    let file = d
        .path
        .join(rest)
        .canonicalize()
        .map_err(|_| bad("no such file in the dataset"))?;
    if !file.starts_with(&root) {
        return Err(bad("the file lies outside the dataset (a symlink)"));
    }
    if !file.is_file() {
        return Err(bad("not a regular file"));
    }
    Ok(file)
}

/// The pools' mount root, as configured and with symlinks resolved.
fn mount_roots(state: &AppState) -> Vec<PathBuf> {
    let root = state.config.pools.mount_root.clone();
    let mut roots = vec![root.clone()];
    if let Ok(c) = std::fs::canonicalize(&root)
        && c != root
    {
        roots.push(c);
    }
    roots
}

/// The pool and dataset a path below `root` is in (the two first components, valid names).
fn dataset_under(root: &Path, p: &Path) -> Option<(String, String)> {
    let mut parts = p.strip_prefix(root).ok()?.components();
    let pool = parts.next()?.as_os_str().to_str()?;
    let dataset = parts.next()?.as_os_str().to_str()?;
    (validate_name("pool", pool).is_ok() && validate_name("dataset", dataset).is_ok())
        .then(|| (pool.to_string(), dataset.to_string()))
}

fn dataset_of(state: &AppState, p: &Path) -> Option<(String, String)> {
    mount_roots(state).iter().find_map(|r| dataset_under(r, p))
}

/// `lxcpath` for a rootfs in the lxcpath, `<pool>/<dataset>` for one on a dataset.
pub fn label(state: &AppState, rootfs: Option<&Path>) -> Option<String> {
    let p = rootfs?;
    if p.starts_with(state.lxc().lxc.path()) {
        return Some("lxcpath".into());
    }
    dataset_of(state, p).map(|(pool, ds)| format!("{pool}/{ds}"))
}

/// A bind mount source: an admin may name any existing directory; anyone else only one
/// inside a pool dataset (after symlinks), else 422 `mount_outside_pools`.
pub fn check_mount_source(state: &AppState, field: &str, src: &str, admin: bool) -> ApiResult<()> {
    let p = Path::new(src);
    let real = p.canonicalize().map_err(|_| {
        ApiError::invalid_field("invalid_mount", field, format!("{src:?} does not exist"))
    })?;
    if !real.is_dir() {
        return Err(ApiError::invalid_field(
            "invalid_mount",
            field,
            format!("{src:?} is not a directory"),
        ));
    }
    if admin {
        return Ok(());
    }
    let inside = dataset_of(state, &real).is_some_and(|(pool, ds)| {
        pools::datasets::ctx(state, &pool)
            .and_then(|c| c.require(&ds))
            .is_ok_and(|d| d.canonicalize().is_ok_and(|d| real.starts_with(d)))
    });
    if inside {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "mount_outside_pools",
            field,
            format!("{src:?} is not inside a pool dataset; only an admin may mount other host paths"),
        ))
    }
}

/// Containers of the lxcpath with their config (unreadable ones left out).
pub fn configs(state: &AppState) -> Vec<(String, Config)> {
    let lxc = &state.lxc().lxc;
    let Ok(rd) = std::fs::read_dir(lxc.path()) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Config)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            validate_name("container", &name).ok()?;
            let cfg = Config::read(&lxc.config_path(&name)).ok()?;
            Some((name, cfg))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The containers' answers to the pools' registry (registered by the area's `init` hook).
pub struct LxcOnPools;

impl PoolUser for LxcOnPools {
    fn uses(&self, state: &AppState, pool: &str, dataset: Option<&str>) -> ApiResult<Vec<UsedBy>> {
        let mut out = Vec::new();
        for (name, cfg) in configs(state) {
            let mut paths: Vec<PathBuf> = cfg.rootfs().into_iter().collect();
            paths.extend(cfg.settings().mounts.iter().map(|m| PathBuf::from(&m.source)));
            let mut seen = std::collections::BTreeSet::new();
            for p in paths {
                if let Some((pl, ds)) = dataset_of(state, &p)
                    && pl == pool
                    && dataset.is_none_or(|d| d == ds)
                    && seen.insert(ds.clone())
                {
                    out.push(UsedBy {
                        kind: "lxc".into(),
                        name: name.clone(),
                        href: model::href(&name),
                        dataset: ds,
                        busy: true,
                    });
                }
            }
        }
        Ok(out)
    }

    fn dataset_renamed<'a>(
        &'a self,
        _state: &'a AppState,
        _pool: &'a str,
        _from: &'a str,
        _to: &'a str,
    ) -> Notified<'a> {
        // Never reached for a dataset a container uses: it counts as busy (refused before).
        Box::pin(async {})
    }
}

/// Registers the containers with the pools' users.
pub fn register(services: &crate::state::Services) {
    services.pool_users.register(Arc::new(LxcOnPools));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_from_paths() {
        let root = Path::new("/srv/pools");
        assert_eq!(
            dataset_under(root, Path::new("/srv/pools/tank/ct/web")),
            Some(("tank".into(), "ct".into()))
        );
        assert_eq!(dataset_under(root, Path::new("/srv/pools/tank")), None);
        assert_eq!(dataset_under(root, Path::new("/srv/pools/.members/a/b")), None);
        assert_eq!(dataset_under(root, Path::new("/var/lib/lxc/web/rootfs")), None);
    }
}
