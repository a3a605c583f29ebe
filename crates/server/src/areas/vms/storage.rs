//! Where a VM's disk files live (the images directory or a dataset of a pool), and the VMs as
//! users of pool datasets.
//!
//! Request flow: a create, clone, disk add or import names `storage` (else `[vms]
//! default_storage` applies): [`Storage::parse`] checks its form, [`disk_dir`] resolves it
//! through the pools area (the pool must exist and be mounted, the dataset must exist) to
//! `<dataset>/<vm id>/`, where the new disk files are made. Which storage a disk is on is
//! derived from its path ([`label`]), never stored beside it.
//!
//! [`VmsOnPools`] answers the pools' registry (`platform::pool_users`): a VM with any file
//! (disk, backing file, ISO, kernel, initrd) under a pool's dataset uses that dataset; it is
//! busy while QEMU runs or an operation holds its lock. After a dataset rename the stored paths
//! of the VMs on it follow ([`rewrite`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hostplane_host::command::validate_name;

use super::VmsState;
use super::model::{self, VmDef};
use crate::areas::pools;
use crate::error::{ApiError, ApiResult};
use crate::platform::pool_users::{Notified, PoolUser, UsedBy};
use crate::state::AppState;

/// A storage location for new disk files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `vms.images_dir/<vm id>/`.
    Images,
    /// `<pool mountpoint>/<dataset>/<vm id>/`.
    Dataset { pool: String, dataset: String },
}

impl Storage {
    /// `images` or `<pool>/<dataset>`.
    pub fn parse(s: &str) -> Result<Storage, String> {
        if s == "images" {
            return Ok(Storage::Images);
        }
        let Some((pool, dataset)) = s.split_once('/') else {
            return Err(format!("{s:?}: give images or <pool>/<dataset>"));
        };
        validate_name("pool", pool).map_err(|e| e.to_string())?;
        validate_name("dataset", dataset).map_err(|e| e.to_string())?;
        Ok(Storage::Dataset {
            pool: pool.into(),
            dataset: dataset.into(),
        })
    }

    /// The request's choice (`field`), else `[vms] default_storage`.
    pub fn chosen(state: &AppState, field: &str, s: Option<&str>) -> ApiResult<Storage> {
        match s {
            Some(s) => Storage::parse(s)
                .map_err(|e| ApiError::invalid_field("invalid_storage", field, e)),
            // Checked when the configuration was loaded.
            None => Storage::parse(&state.config.vms.default_storage)
                .map_err(|e| ApiError::internal(format!("vms.default_storage: {e}"))),
        }
    }
}

/// The directory for new disk files of VM `id` on `storage`, created. A pool or dataset that
/// does not exist is the request's fault (422 naming `field`); an unmounted pool is 409
/// `pool_not_mounted`.
pub fn disk_dir(state: &AppState, field: &str, storage: &Storage, id: &str) -> ApiResult<PathBuf> {
    let dir = dir_for(state, field, storage, id)?;
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    Ok(dir)
}

/// [`disk_dir`], checked but not made yet (a job makes it).
pub fn dir_for(state: &AppState, field: &str, storage: &Storage, id: &str) -> ApiResult<PathBuf> {
    Ok(match storage {
        Storage::Images => state.vms().vm_dir(id),
        Storage::Dataset { pool, dataset } => {
            let unknown = |e: ApiError| match e {
                ApiError::NotFound(m) => {
                    ApiError::invalid_field("unknown_storage", field, format!("no {m}"))
                }
                other => other,
            };
            let c = pools::datasets::ctx(state, pool).map_err(unknown)?;
            c.require(dataset).map_err(unknown)?.join(id)
        }
    })
}

/// Removes a VM's directory on a dataset once it is empty (never recursively: it is on a pool).
pub fn remove_empty_dirs(state: &AppState, id: &str, def: &VmDef) {
    let images = &state.vms().images_dir;
    let dirs: BTreeSet<&Path> = def
        .disks
        .iter()
        .filter_map(|d| Path::new(&d.path).parent())
        .filter(|p| !p.starts_with(images) && p.file_name().is_some_and(|n| n == id))
        .collect();
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}

/// `images`, `<pool>/<dataset>`, or None for a file elsewhere.
pub fn label(images_dir: &Path, pools_root: &Path, path: &str) -> Option<String> {
    let p = Path::new(path);
    if p.starts_with(images_dir) {
        return Some("images".into());
    }
    let (pool, dataset) = dataset_under(pools_root, p)?;
    Some(format!("{pool}/{dataset}"))
}

/// The pool and dataset a path below `root` (the pools' mount root) is in: the two first
/// components, each a valid name (hidden helper directories like `.snapshots` are not
/// datasets), with something below them.
fn dataset_under(root: &Path, p: &Path) -> Option<(String, String)> {
    let mut parts = p.strip_prefix(root).ok()?.components();
    let pool = parts.next()?.as_os_str().to_str()?;
    let dataset = parts.next()?.as_os_str().to_str()?;
    parts.next()?;
    (validate_name("pool", pool).is_ok() && validate_name("dataset", dataset).is_ok())
        .then(|| (pool.to_string(), dataset.to_string()))
}

/// Every file a definition names.
fn files_of(def: &VmDef) -> Vec<String> {
    let mut out = Vec::new();
    for d in &def.disks {
        out.push(d.path.clone());
        out.extend(d.backing.clone());
    }
    out.extend(def.cdroms.iter().filter_map(|c| c.iso.clone()));
    out.extend(def.kernel.clone());
    out.extend(def.initrd.clone());
    out
}

/// The pools' mount root, as configured and with symlinks resolved (paths of images used in
/// place are canonical).
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

/// Points every file of `def` under `from` to the same place under `to`; whether any moved.
pub fn rewrite(def: &mut VmDef, from: &Path, to: &Path) -> bool {
    let mut changed = false;
    let mut fix = |s: &mut String| {
        if let Ok(rest) = Path::new(s.as_str()).strip_prefix(from) {
            *s = to.join(rest).to_string_lossy().into_owned();
            changed = true;
        }
    };
    for d in &mut def.disks {
        fix(&mut d.path);
        if let Some(b) = d.backing.as_mut() {
            fix(b);
        }
    }
    for c in &mut def.cdroms {
        if let Some(i) = c.iso.as_mut() {
            fix(i);
        }
    }
    for f in [def.kernel.as_mut(), def.initrd.as_mut()].into_iter().flatten() {
        fix(f);
    }
    changed
}

/// The VMs' answers to the pools' registry (registered by the area's `init` hook).
pub struct VmsOnPools;

impl PoolUser for VmsOnPools {
    fn uses(&self, state: &AppState, pool: &str, dataset: Option<&str>) -> ApiResult<Vec<UsedBy>> {
        let mgr = state.vms();
        let roots = mount_roots(state);
        let mut out = Vec::new();
        for rec in model::load_all(&state.store)? {
            let rt = mgr.runtime(&rec.id);
            let mut files = files_of(&rec.def);
            // A running VM may still hold a disk removed for the next boot.
            if let Some(rt) = &rt {
                files.extend(files_of(&rt.launched()));
            }
            let busy = rt.is_some() || mgr.is_locked(&rec.id);
            let on: BTreeSet<String> = files
                .iter()
                .filter_map(|f| {
                    roots
                        .iter()
                        .find_map(|r| dataset_under(r, Path::new(f)))
                        .filter(|(p, _)| p == pool)
                        .map(|(_, ds)| ds)
                })
                .filter(|ds| dataset.is_none_or(|d| d == ds))
                .collect();
            out.extend(on.into_iter().map(|ds| UsedBy {
                kind: "vm".into(),
                name: rec.name.clone(),
                href: format!("/api/v1/vms/{}", rec.id),
                dataset: ds,
                busy,
            }));
        }
        Ok(out)
    }

    fn dataset_renamed<'a>(
        &'a self,
        state: &'a AppState,
        pool: &'a str,
        from: &'a str,
        to: &'a str,
    ) -> Notified<'a> {
        Box::pin(async move {
            let roots = mount_roots(state);
            let Ok(recs) = model::load_all(&state.store) else {
                tracing::warn!(pool, from, to, "VMs of a renamed dataset not updated");
                return;
            };
            for rec in recs {
                let _g = state.vms().lock(&rec.id).await;
                let Ok(Some(rec)) = model::load(&state.store, &rec.id) else {
                    continue;
                };
                let mut def = rec.def.clone();
                let mut changed = false;
                for r in &roots {
                    changed |= rewrite(&mut def, &r.join(pool).join(from), &r.join(pool).join(to));
                }
                if !changed {
                    continue;
                }
                match model::save_def(&state.store, &rec.id, &def) {
                    Ok(_) => {
                        tracing::info!(vm = rec.id, pool, from, to, "VM files follow a renamed dataset");
                        state.vms().publish(&rec.id, "system");
                    }
                    Err(e) => {
                        tracing::warn!(vm = rec.id, error = %e, "VM of a renamed dataset not updated")
                    }
                }
            }
        })
    }
}

/// Registers the VMs with the pools' users and the links' users.
pub fn register(services: &crate::state::Services) {
    services.pool_users.register(Arc::new(VmsOnPools));
    services.link_users.register(Arc::new(VmsOnLinks));
}

/// The VMs' answers to the links' registry: a NIC in bridge mode names its bridge (also a
/// running VM's NICs as launched, which may differ from the next boot's).
pub struct VmsOnLinks;

impl crate::platform::link_users::LinkUser for VmsOnLinks {
    fn uses<'a>(
        &'a self,
        state: &'a AppState,
        link: &'a str,
    ) -> crate::platform::link_users::Uses<'a> {
        // The store and the runtimes answer at once: nothing to wait for.
        Box::pin(std::future::ready(vms_on_link(state, link)))
    }
}

fn vms_on_link(
    state: &AppState,
    link: &str,
) -> ApiResult<Vec<crate::platform::link_users::LinkUse>> {
    let mgr = state.vms();
    let mut out = Vec::new();
    for rec in model::load_all(&state.store)? {
        let launched = mgr.runtime(&rec.id).map(|rt| rt.launched());
        let names = |d: &VmDef| d.nics.iter().any(|n| n.bridge.as_deref() == Some(link));
        if names(&rec.def) || launched.as_ref().is_some_and(names) {
            out.push(crate::platform::link_users::LinkUse {
                kind: "vm".into(),
                name: rec.name.clone(),
                href: format!("/api/v1/vms/{}", rec.id),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostplane_types::vms::{Accelerator, DiskBus, DiskFormat, Firmware, MachineType, VmCdrom};

    #[test]
    fn storage_forms() {
        assert_eq!(Storage::parse("images").unwrap(), Storage::Images);
        assert_eq!(
            Storage::parse("tank/vms").unwrap(),
            Storage::Dataset {
                pool: "tank".into(),
                dataset: "vms".into()
            }
        );
        for bad in ["", "tank", "tank/", "/vms", "tank/a/b", "../x", "tank/..", "Images/"] {
            assert!(Storage::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_and_datasets_from_paths() {
        let images = Path::new("/var/lib/hostplane/vms");
        let root = Path::new("/srv/pools");
        assert_eq!(
            label(images, root, "/var/lib/hostplane/vms/x/disk0.qcow2").as_deref(),
            Some("images")
        );
        assert_eq!(
            label(images, root, "/srv/pools/tank/vms/x/disk0.qcow2").as_deref(),
            Some("tank/vms")
        );
        assert_eq!(label(images, root, "/srv/pools/tank/vms"), None);
        assert_eq!(label(images, root, "/srv/pools/.members/a/b"), None);
        assert_eq!(label(images, root, "/srv/pools/tank/.snapshots/x"), None);
        assert_eq!(label(images, root, "/opt/isos/a.iso"), None);
    }

    #[test]
    fn rewrite_moves_only_files_under_the_old_dataset() {
        let mut def = model::new_def(
            1,
            64,
            MachineType::default(),
            Firmware::default(),
            Accelerator::default(),
        );
        def.disks.push(model::disk_entry(
            0,
            Path::new("/srv/pools/tank/vms/id/disk0.qcow2"),
            DiskFormat::Qcow2,
            DiskBus::Virtio,
            1 << 20,
            None,
            true,
        ));
        def.disks.push(model::disk_entry(
            1,
            Path::new("/srv/pools/tank/vms2/id/disk1.qcow2"),
            DiskFormat::Qcow2,
            DiskBus::Virtio,
            1 << 20,
            None,
            true,
        ));
        def.cdroms.push(VmCdrom {
            index: 0,
            iso: Some("/srv/pools/tank/vms/boot.iso".into()),
            cloud_init: false,
        });
        let from = Path::new("/srv/pools/tank/vms");
        let to = Path::new("/srv/pools/tank/machines");
        assert!(rewrite(&mut def, from, to));
        assert_eq!(def.disks[0].path, "/srv/pools/tank/machines/id/disk0.qcow2");
        assert_eq!(def.disks[1].path, "/srv/pools/tank/vms2/id/disk1.qcow2");
        assert_eq!(
            def.cdroms[0].iso.as_deref(),
            Some("/srv/pools/tank/machines/boot.iso")
        );
        assert!(!rewrite(&mut def, from, to));
    }
}
