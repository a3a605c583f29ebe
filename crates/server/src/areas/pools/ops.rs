//! Pool mechanics shared by the handlers and jobs: where pools mount, finding members by
//! filesystem UUID, mounting and unmounting each kind, and the live view of a pool.

use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use hostplane_host::blockdev;
use hostplane_host::btrfs;
use hostplane_host::disks::{self as hd, MountEntry, ScannedDisk};
use hostplane_types::pools::{
    MemberErrors, MemberRole, Pool, PoolHealth, PoolKind, PoolMember, PoolUsage,
};

use super::registry::{MemberRecord, PoolRecord};
use crate::areas::disks::{self, ScanOpts};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn mountpoint(state: &AppState, name: &str) -> PathBuf {
    state.config.pools.mount_root.join(name)
}

/// Where mergerfs members of `pool` are mounted (one directory per member disk id).
pub fn members_dir(state: &AppState, pool: &str) -> PathBuf {
    state.config.pools.mount_root.join(".members").join(pool)
}

pub fn member_mountpoint(state: &AppState, pool: &str, m: &MemberRecord) -> PathBuf {
    members_dir(state, pool).join(&m.disk)
}

pub fn path_str(p: &Path) -> ApiResult<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| ApiError::internal(format!("non-UTF-8 path {}", p.display())))
}

/// Scan without I/O (sysfs only).
pub async fn quick_scan(state: &AppState) -> ApiResult<Vec<ScannedDisk>> {
    disks::inventory(
        state,
        ScanOpts {
            io: false,
            power: false,
        },
    )
    .await
}

/// Block devices (disks and partitions, not the root disk) that hold a filesystem with this
/// UUID now. Probes with blkid (reads the devices).
pub async fn devices_with_uuid(state: &AppState, uuid: &str) -> ApiResult<Vec<String>> {
    let scanned = quick_scan(state).await?;
    let mut candidates = Vec::new();
    for d in scanned.iter().filter(|d| !d.disk.holds_root) {
        candidates.push(d.disk.path.clone());
        candidates.extend(d.disk.partitions.iter().map(|p| p.path.clone()));
    }
    let found = hd::probe_blkid(&candidates).await.map_err(ApiError::from)?;
    Ok(found
        .into_iter()
        .filter(|i| i.get("UUID").as_deref() == Some(uuid))
        .map(|i| i.devname)
        .collect())
}

fn mounted_at(mounts: &[MountEntry], p: &Path) -> bool {
    hd::mount_at(mounts, p).is_some()
}

/// Whether the pool's own mountpoint has a mount now.
pub fn is_mounted(state: &AppState, rec: &PoolRecord) -> bool {
    hd::mounts().is_ok_and(|m| mounted_at(&m, &mountpoint(state, &rec.name)))
}

/// Mounts a pool (and, for mergerfs, its members first). A mounted pool is left alone.
pub async fn mount(state: &AppState, rec: &PoolRecord, degraded: bool) -> ApiResult<()> {
    let mp = mountpoint(state, &rec.name);
    let mounts = hd::mounts().map_err(ApiError::internal)?;
    if mounted_at(&mounts, &mp) {
        return Ok(());
    }
    std::fs::create_dir_all(&mp)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", mp.display())))?;
    let mps = path_str(&mp)?;
    let mount_failed = |e: hostplane_host::CommandError| match e {
        hostplane_host::CommandError::Failed { .. } => {
            ApiError::conflict("mount_failed", e.to_string())
        }
        other => ApiError::from(other),
    };
    match rec.kind {
        PoolKind::Btrfs | PoolKind::Ext4 | PoolKind::Xfs => {
            let uuid = rec
                .uuid
                .as_deref()
                .ok_or_else(|| ApiError::internal("pool record without a filesystem UUID"))?;
            let devs = devices_with_uuid(state, uuid).await?;
            if devs.is_empty() {
                return Err(ApiError::conflict(
                    "pool_members_missing",
                    format!(
                        "no device holds the filesystem {uuid} of pool {:?}",
                        rec.name
                    ),
                ));
            }
            let mut opts: Vec<String> = Vec::new();
            if rec.kind == PoolKind::Btrfs {
                opts.extend(devs.iter().map(|d| format!("device={d}")));
                if degraded {
                    opts.push("degraded".into());
                }
            }
            blockdev::mount(Some(rec.kind.as_str()), &opts, &devs[0], &mps)
                .await
                .map_err(mount_failed)
        }
        PoolKind::Mergerfs => {
            let mut branches = Vec::new();
            for m in &rec.members {
                let dir = member_mountpoint(state, &rec.name, m);
                let dirs = path_str(&dir)?;
                if m.role == MemberRole::Data {
                    branches.push(dirs.clone());
                }
                if mounted_at(&mounts, &dir) {
                    continue;
                }
                let uuid = m.uuid.as_deref().unwrap_or_default();
                let devs = devices_with_uuid(state, uuid).await?;
                let Some(dev) = devs.first() else {
                    if m.role == MemberRole::Parity {
                        tracing::warn!(pool = rec.name, disk = m.disk, "parity member missing");
                        continue;
                    }
                    return Err(ApiError::conflict(
                        "pool_members_missing",
                        format!("member {} of pool {:?} is missing", m.disk, rec.name),
                    ));
                };
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
                blockdev::mount(rec.member_fs.as_deref(), &[], dev, &dirs)
                    .await
                    .map_err(mount_failed)?;
            }
            let opts =
                blockdev::mergerfs_options(&rec.name, rec.min_free_space.unwrap_or(100 << 20));
            blockdev::mergerfs(&branches, &mps, &opts)
                .await
                .map_err(mount_failed)
        }
    }
}

/// Unmounts a pool (mergerfs: then its members). 409 `pool_busy` when files are open.
pub async fn unmount(state: &AppState, rec: &PoolRecord) -> ApiResult<()> {
    let mp = mountpoint(state, &rec.name);
    let busy = |e: hostplane_host::CommandError, what: &Path| {
        if blockdev::is_busy(&e) {
            ApiError::conflict(
                "pool_busy",
                format!(
                    "{} is busy (open files or a process inside)",
                    what.display()
                ),
            )
        } else {
            ApiError::from(e)
        }
    };
    let mounts = hd::mounts().map_err(ApiError::internal)?;
    if mounted_at(&mounts, &mp) {
        blockdev::umount(&path_str(&mp)?)
            .await
            .map_err(|e| busy(e, &mp))?;
    }
    if rec.kind == PoolKind::Mergerfs {
        for m in &rec.members {
            let dir = member_mountpoint(state, &rec.name, m);
            if mounted_at(&mounts, &dir) {
                blockdev::umount(&path_str(&dir)?)
                    .await
                    .map_err(|e| busy(e, &dir))?;
            }
        }
    }
    Ok(())
}

/// A size field of a request in bytes, or 422 `invalid_size` naming the field.
pub fn size_field(s: Option<&hostplane_types::pools::Size>, field: &str) -> ApiResult<Option<u64>> {
    s.map(|s| s.bytes())
        .transpose()
        .map_err(|m| ApiError::invalid_field("invalid_size", field, m))
}

/// Errors counted beyond `baseline` (each counter on its own; a counter reset below its
/// baseline counts from zero).
pub fn errors_since(now: &MemberErrors, baseline: Option<&MemberErrors>) -> u64 {
    let Some(b) = baseline else {
        return now.total();
    };
    now.write_io.saturating_sub(b.write_io)
        + now.read_io.saturating_sub(b.read_io)
        + now.flush_io.saturating_sub(b.flush_io)
        + now.corruption.saturating_sub(b.corruption)
        + now.generation.saturating_sub(b.generation)
}

/// The live view of a pool.
pub async fn view(
    state: &AppState,
    rec: &PoolRecord,
    disks: &[ScannedDisk],
    mounts: &[MountEntry],
) -> Pool {
    let mp = mountpoint(state, &rec.name);
    let mps = mp.to_string_lossy().into_owned();
    let mount = hd::mount_at(mounts, &mp);
    let mounted = mount.is_some();
    let mut members: Vec<PoolMember> = rec
        .members
        .iter()
        .map(|m| {
            let d = disks.iter().find(|d| d.disk.id == m.disk);
            PoolMember {
                disk: m.disk.clone(),
                disk_href: disks::href(&m.disk),
                path: d.map(|d| d.disk.path.clone()),
                present: d.is_some(),
                role: m.role,
                devid: None,
                size_bytes: None,
                mountpoint: (rec.kind == PoolKind::Mergerfs).then(|| {
                    member_mountpoint(state, &rec.name, m)
                        .to_string_lossy()
                        .into_owned()
                }),
                errors: MemberErrors::default(),
            }
        })
        .collect();
    let mut detail: Vec<String> = Vec::new();
    let (mut data_profile, mut metadata_profile, mut quotas) = (None, None, false);
    if rec.kind == PoolKind::Btrfs && mounted {
        let (show, stats, profiles) = tokio::join!(
            btrfs::fi_show(&mps),
            btrfs::device_stats(&mps),
            btrfs::df_profiles(&mps)
        );
        if let Ok(Some(show)) = show {
            for dev in &show.devices {
                if let Some(m) = members
                    .iter_mut()
                    .find(|m| m.path.is_some() && m.path == dev.path)
                {
                    m.devid = Some(dev.devid);
                    m.size_bytes = Some(dev.size);
                }
            }
            if show.some_missing {
                detail.push("a member device is missing".into());
            }
        }
        if let Ok(stats) = stats {
            for s in stats {
                if let Some(m) = members.iter_mut().find(|m| m.devid == Some(s.devid)) {
                    m.errors = s.errors.clone();
                }
                // What is wrong now: errors since the last clean scrub (the kernel's
                // counters keep what a scrub already repaired).
                let since = errors_since(&s.errors, rec.error_baseline.get(&s.devid));
                if since > 0 {
                    detail.push(format!(
                        "{} has {since} I/O or checksum errors since the last clean scrub (btrfs device stats)",
                        s.device
                    ));
                }
            }
        }
        if rec.scrub_uncorrectable > 0 {
            detail.push(format!(
                "the last scrub found {} uncorrectable errors",
                rec.scrub_uncorrectable
            ));
        }
        if let Ok((d, m)) = profiles {
            data_profile = d;
            metadata_profile = m;
        }
        if let Some(u) = &rec.uuid {
            quotas = btrfs::quotas_enabled(Path::new("/sys"), u);
        }
        if mount.is_some_and(|m| m.super_options.split(',').any(|o| o == "degraded")) {
            detail.push("mounted degraded".into());
        }
    }
    if rec.kind == PoolKind::Mergerfs {
        for m in &mut members {
            if let Some(dir) = &m.mountpoint
                && !mounted_at(mounts, Path::new(dir))
                && m.present
                && mounted
            {
                detail.push(format!("member {} is not mounted", m.disk));
            }
        }
    }
    let missing: Vec<&str> = members
        .iter()
        .filter(|m| !m.present)
        .map(|m| m.disk.as_str())
        .collect();
    if !missing.is_empty() {
        detail.insert(0, format!("missing member(s): {}", missing.join(", ")));
    }
    let health = match (mounted, detail.is_empty()) {
        (true, true) => PoolHealth::Online,
        (true, false) => PoolHealth::Degraded,
        (false, _) if missing.is_empty() => PoolHealth::Unmounted,
        (false, _) => PoolHealth::Unavailable,
    };
    let usage = if mounted { statvfs(&mps) } else { None };
    Pool {
        href: rec.href(),
        name: rec.name.clone(),
        kind: rec.kind,
        uuid: rec.uuid.clone(),
        mountpoint: mps,
        mounted,
        auto_mount: rec.auto_mount,
        health,
        health_detail: (!detail.is_empty()).then(|| detail.join("; ")),
        usage,
        data_profile,
        metadata_profile,
        quotas,
        snapraid: rec.parity_members().next().is_some(),
        members,
        created_at: rec.created_at.clone(),
    }
}

fn statvfs(path: &str) -> Option<PoolUsage> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: statvfs is plain data; zeroed is valid and the call fills it in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)]
    let (fr, blocks, free, avail) = (
        st.f_frsize as u64,
        st.f_blocks as u64,
        st.f_bfree as u64,
        st.f_bavail as u64,
    );
    Some(PoolUsage {
        size_bytes: blocks * fr,
        used: blocks.saturating_sub(free) * fr,
        available: avail * fr,
    })
}

/// Views of many pools at once.
pub async fn views(state: &AppState, recs: &[PoolRecord]) -> ApiResult<Vec<Pool>> {
    let disks = quick_scan(state).await?;
    let mounts = hd::mounts().map_err(ApiError::internal)?;
    Ok(join_all(recs.iter().map(|r| view(state, r, &disks, &mounts))).await)
}

/// A pool must be mounted for this operation: its mount point, or 409 `pool_not_mounted`.
pub fn require_mounted(state: &AppState, rec: &PoolRecord) -> ApiResult<PathBuf> {
    let mp = mountpoint(state, &rec.name);
    let mounts = hd::mounts().map_err(ApiError::internal)?;
    if mounted_at(&mounts, &mp) {
        Ok(mp)
    } else {
        Err(ApiError::conflict(
            "pool_not_mounted",
            format!(
                "pool {:?} is not mounted; POST {}/mount first",
                rec.name,
                rec.href()
            ),
        ))
    }
}

/// A member disk may be written (wiped, removed): root, allow-list and busy rules as for any
/// disk, but mounts of the pool itself are fine (the job unmounts them). Other mounts of the
/// pool's filesystem (bind mounts such as NFS export binds) are refused: the job would wipe a
/// disk whose filesystem stays mounted there.
pub fn check_member(state: &AppState, d: &ScannedDisk, rec: &PoolRecord) -> ApiResult<()> {
    check_member_with(state, d, rec, false)
}

/// A member disk may leave the mounted pool (device remove, replace): the filesystem stays
/// mounted, so every mount of it counts as the pool's own (its mount point, bind mounts of it
/// or of its subvolumes: hostplane's NFS export binds, or a user's); only a mount of
/// something else is refused.
pub fn check_member_online(state: &AppState, d: &ScannedDisk, rec: &PoolRecord) -> ApiResult<()> {
    check_member_with(state, d, rec, true)
}

fn check_member_with(
    state: &AppState,
    d: &ScannedDisk,
    rec: &PoolRecord,
    online: bool,
) -> ApiResult<()> {
    if d.disk.holds_root {
        return Err(ApiError::conflict(
            "disk_holds_root",
            format!("{} holds the root filesystem", d.disk.path),
        ));
    }
    if !d.disk.allowed {
        return Err(ApiError::conflict(
            "disk_not_allowed",
            format!("{} is not in disks.allow", d.disk.path),
        ));
    }
    let own = [mountpoint(state, &rec.name), members_dir(state, &rec.name)];
    let other = if online {
        let mounts = hd::mounts().map_err(ApiError::internal)?;
        let members = members_dir(state, &rec.name);
        hd::foreign_mounts(&mounts, &d.disk.mountpoints, &own[0], &[&members])
            .into_iter()
            .next()
    } else {
        d.disk
            .mountpoints
            .iter()
            .find(|m| !own.iter().any(|o| Path::new(m).starts_with(o)))
            .cloned()
    };
    if let Some(other) = other {
        return Err(ApiError::conflict(
            "disk_mounted",
            format!("{} is mounted at {other}", d.disk.path),
        ));
    }
    if d.held {
        return Err(ApiError::conflict(
            "disk_busy",
            format!(
                "{} is in use (swap, or held by another block device)",
                d.disk.path
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_since_count_beyond_the_baseline() {
        let now = MemberErrors {
            corruption: 1024,
            read_io: 2,
            ..Default::default()
        };
        assert_eq!(errors_since(&now, None), 1026);
        // After a clean scrub recorded them: nothing new.
        assert_eq!(errors_since(&now, Some(&now.clone())), 0);
        let base = MemberErrors {
            corruption: 1000,
            write_io: 5,
            ..Default::default()
        };
        // New corruption and read errors count; a counter below its baseline (reset) does not
        // go negative.
        assert_eq!(errors_since(&now, Some(&base)), 26);
    }
}
