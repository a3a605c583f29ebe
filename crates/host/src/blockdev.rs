//! Commands that change block devices and mounts: wipefs, sgdisk + partx, mkfs.ext4/xfs,
//! mount/umount, and mergerfs. Callers check the safety rules (allow-list, not mounted, not
//! root, not in a pool) first; these functions only validate their arguments.

use std::time::Duration;

use hostplane_types::disks::{FormatType, PartitionType};

use crate::command::{Cmd, CommandError, validate_path_arg};

const MKFS_TIMEOUT: Duration = Duration::from_secs(600);

fn check<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<(), CommandError> {
    for p in paths {
        validate_path_arg("path", p)?;
    }
    Ok(())
}

/// `wipefs -a DEV`: erase every signature (filesystem, RAID, partition table).
///
/// wipefs opens the device exclusively, so it fails with EBUSY while anything else briefly
/// holds it: the kernel finishing an unmount, or a `blkid` probe from another process. The
/// callers have already refused mounted and in-use devices, so a busy device here is
/// transient: retry for up to two seconds before giving up.
pub async fn wipefs(dev: &str) -> Result<(), CommandError> {
    check([dev])?;
    let mut attempt = 0;
    loop {
        match Cmd::new("wipefs").args(["-a", dev]).run().await {
            Ok(_) => return Ok(()),
            Err(CommandError::Failed { ref stderr, .. })
                if stderr.contains("Device or resource busy") && attempt < 20 =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Tell the kernel the partitions changed: `partx -u` (add/resize/remove to match the table),
/// or `partx -d` when there is no table any more. The kernel here parses no table itself, and
/// elsewhere this is as good as BLKRRPART without needing the disk to be idle.
pub async fn partx_update(dev: &str, table: bool) -> Result<(), CommandError> {
    check([dev])?;
    let args: &[&str] = if table { &["-u", dev] } else { &["-d", dev] };
    // partx -d exits 1 when there was nothing to delete.
    Cmd::new("partx")
        .args(args)
        .ok_codes(if table { &[0] } else { &[0, 1] })
        .run()
        .await
        .map(|_| ())
}

/// sgdisk type code.
fn type_code(t: PartitionType) -> &'static str {
    match t {
        PartitionType::Linux => "8300",
        PartitionType::Efi => "ef00",
        PartitionType::Swap => "8200",
    }
}

/// One partition for [`partition_gpt`]: size in MiB (None = rest), name, type.
pub struct NewPartition {
    pub size_mib: Option<u64>,
    pub name: Option<String>,
    pub kind: PartitionType,
}

/// Replaces the partition table with a new GPT holding `parts` (1 MiB aligned), then updates
/// the kernel's view.
pub async fn partition_gpt(dev: &str, parts: &[NewPartition]) -> Result<(), CommandError> {
    check([dev])?;
    Cmd::new("sgdisk")
        .args(["--zap-all", dev])
        .ok_codes(&[0, 2])
        .run()
        .await?;
    let mut c = Cmd::new("sgdisk").args(["-a", "2048"]);
    for (i, p) in parts.iter().enumerate() {
        let n = i + 1;
        let end = p.size_mib.map_or("0".to_string(), |m| format!("+{m}M"));
        c = c
            .arg(format!("--new={n}:0:{end}"))
            .arg(format!("--typecode={n}:{}", type_code(p.kind)));
        if let Some(name) = &p.name {
            c = c.arg(format!("--change-name={n}:{name}"));
        }
    }
    c.arg(dev).run().await?;
    partx_update(dev, true).await
}

/// Makes a filesystem. `label` must already be validated.
pub async fn mkfs(fs: FormatType, dev: &str, label: Option<&str>) -> Result<(), CommandError> {
    check([dev])?;
    let (prog, force) = match fs {
        FormatType::Ext4 => ("mkfs.ext4", "-F"),
        FormatType::Xfs => ("mkfs.xfs", "-f"),
        FormatType::Btrfs => ("mkfs.btrfs", "-f"),
    };
    let mut c = Cmd::new(prog).arg(force).timeout(MKFS_TIMEOUT);
    if fs == FormatType::Ext4 {
        c = c.arg("-q");
    }
    if let Some(l) = label {
        check([l])?;
        c = c.args(["-L", l]);
    }
    c.arg(dev).run().await.map(|_| ())
}

/// `mount [-t TYPE] [-o OPTS] SRC DIR`.
pub async fn mount(
    fstype: Option<&str>,
    options: &[String],
    source: &str,
    dir: &str,
) -> Result<(), CommandError> {
    check([source, dir])?;
    let mut c = Cmd::new("mount");
    if let Some(t) = fstype {
        c = c.args(["-t", t]);
    }
    if !options.is_empty() {
        c = c.args(["-o", &options.join(",")]);
    }
    c.args([source, dir])
        .timeout(Duration::from_secs(120))
        .run()
        .await
        .map(|_| ())
}

/// `umount DIR`. A busy mount fails ("target is busy"); nothing is forced.
pub async fn umount(dir: &str) -> Result<(), CommandError> {
    check([dir])?;
    Cmd::new("umount")
        .arg(dir)
        .timeout(Duration::from_secs(120))
        .run()
        .await
        .map(|_| ())
}

/// `umount -l DIR`: detaches now, the kernel finishes when the last user lets go.
pub async fn umount_lazy(dir: &str) -> Result<(), CommandError> {
    check([dir])?;
    Cmd::new("umount")
        .args(["-l", dir])
        .timeout(Duration::from_secs(120))
        .run()
        .await
        .map(|_| ())
}

/// The error says the mount point is busy.
pub fn is_busy(e: &CommandError) -> bool {
    matches!(e, CommandError::Failed { stderr, .. } if stderr.contains("busy"))
}

/// mergerfs options hostplane uses: `allow_other` (Samba needs it), no page cache on files,
/// new files on the branch with most free space, a low `minfreespace` (the 4 GiB default fills
/// small disks up at once).
pub fn mergerfs_options(name: &str, min_free_space: u64) -> Vec<String> {
    vec![
        "allow_other".into(),
        "cache.files=off".into(),
        "dropcacheonclose=true".into(),
        "category.create=mfs".into(),
        "moveonenospc=true".into(),
        format!("minfreespace={min_free_space}"),
        format!("fsname={name}"),
    ]
}

/// Mounts mergerfs over `branches` at `dir`. mergerfs daemonizes; the command returns once
/// the mount is up.
pub async fn mergerfs(
    branches: &[String],
    dir: &str,
    options: &[String],
) -> Result<(), CommandError> {
    check(branches.iter().map(String::as_str))?;
    check([dir])?;
    for b in branches {
        if b.contains(':') {
            return Err(CommandError::InvalidArgument {
                message: format!("branch path {b:?} contains ':'"),
            });
        }
    }
    Cmd::new("mergerfs")
        .args(["-o", &options.join(",")])
        .arg(branches.join(":"))
        .arg(dir)
        .timeout(Duration::from_secs(60))
        .run()
        .await
        .map(|_| ())
}

/// Changes a mounted mergerfs pool's branches at run time through its control file
/// (`<mount>/.mergerfs`, xattr `user.mergerfs.branches`): `+>/path` appends a branch,
/// `-/path` removes one. No remount, open files stay open.
pub fn mergerfs_branches(mount: &str, change: &str) -> std::io::Result<()> {
    let ctl = crate::disks::cpath(&std::path::Path::new(mount).join(".mergerfs"))?;
    let name = c"user.mergerfs.branches";
    // SAFETY: valid NUL-terminated path and name; the value pointer and length describe
    // `change`'s bytes.
    let rc = unsafe {
        libc::setxattr(
            ctl.as_ptr(),
            name.as_ptr(),
            change.as_ptr() as *const libc::c_void,
            change.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// snapraid configuration for a mergerfs pool: parity files on the parity members, a content
/// file on each data member (and one in `state_dir`), one `data` line per member.
pub fn snapraid_conf(parity_dirs: &[String], data: &[(String, String)], state_dir: &str) -> String {
    let mut s = String::from("# written by hostplane; changes are overwritten\n");
    let levels = [
        "parity", "2-parity", "3-parity", "4-parity", "5-parity", "6-parity",
    ];
    for (i, p) in parity_dirs.iter().enumerate().take(levels.len()) {
        s.push_str(&format!("{} {p}/snapraid.parity\n", levels[i]));
    }
    s.push_str(&format!("content {state_dir}/snapraid.content\n"));
    for (_, dir) in data {
        s.push_str(&format!("content {dir}/.snapraid.content\n"));
    }
    for (name, dir) in data {
        s.push_str(&format!("data {name} {dir}/\n"));
    }
    s.push_str("exclude /lost+found/\nexclude *.unrecoverable\nexclude /.snapraid.content*\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapraid_config_text() {
        let c = snapraid_conf(
            &["/mnt/pools/.members/m/p1".into()],
            &[
                ("d1".into(), "/mnt/pools/.members/m/d1".into()),
                ("d2".into(), "/mnt/pools/.members/m/d2".into()),
            ],
            "/var/lib/hostplane/snapraid/m",
        );
        assert!(c.contains("parity /mnt/pools/.members/m/p1/snapraid.parity\n"));
        assert!(c.contains("content /var/lib/hostplane/snapraid/m/snapraid.content\n"));
        assert!(c.contains("data d2 /mnt/pools/.members/m/d2/\n"));
    }

    #[test]
    fn mergerfs_opts() {
        let o = mergerfs_options("media", 100 << 20);
        assert!(o.contains(&"allow_other".to_string()));
        assert!(o.contains(&"minfreespace=104857600".to_string()));
        assert!(o.contains(&"fsname=media".to_string()));
    }
}
