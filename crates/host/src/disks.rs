//! Block devices from kernel memory: sysfs, `/proc/self/mountinfo`, `/proc/swaps`,
//! `/proc/diskstats`, btrfs' sysfs and the udev database. Nothing here opens a disk, so a
//! scan never issues I/O to one (the `skipStandby` guarantee rests on this). Callers run
//! [`probe_blkid`], which does read disks, only when I/O is allowed.
//!
//! Why not `lsblk -J -O`: without a udev database (no udevd, as on the test machines) lsblk
//! reports no filesystem at all, and with one it adds nothing the udev database does not give
//! us directly; reading sysfs ourselves is also ~10x cheaper than a process per listing.
//! The one probe that reads disks is [`probe_blkid`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hostplane_types::disks::{Disk, DiskIdSource, Filesystem, Partition, PowerState};

use crate::command::{Cmd, CommandError, validate_path_arg};

/// Where the kernel's files are (tests point these into a fixture tree).
#[derive(Debug, Clone)]
pub struct SysPaths {
    pub sys: PathBuf,
    pub proc_self: PathBuf,
    pub proc: PathBuf,
    pub udev_data: PathBuf,
}

impl Default for SysPaths {
    fn default() -> Self {
        SysPaths {
            sys: "/sys".into(),
            proc_self: "/proc/self".into(),
            proc: "/proc".into(),
            udev_data: "/run/udev/data".into(),
        }
    }
}

/// One whole disk as scanned, with what the API type does not carry.
#[derive(Debug, Clone)]
pub struct ScannedDisk {
    pub disk: Disk,
    pub devno: (u32, u32),
    /// Real hardware (`/sys/block/X/device` exists): SMART and power management may work.
    pub physical: bool,
    /// Held by another block device (md, dm) or used as swap.
    pub held: bool,
    /// Kernel names of the disk and its partitions.
    pub knames: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// mountinfo

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within the filesystem (`/` or a subvolume/bind path).
    pub root: String,
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

/// `\040` and friends back to bytes.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo` (proc(5)); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 2 {
            continue;
        }
        let Some((maj, min)) = l[2].split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        out.push(MountEntry {
            major,
            minor,
            root: unescape_octal(l[3]),
            mount_point: unescape_octal(l[4]),
            fstype: r[0].to_string(),
            source: unescape_octal(r[1]),
            super_options: r.get(2).map(|s| s.to_string()).unwrap_or_default(),
        });
    }
    out
}

/// Reads and parses the live mount table.
pub fn mounts() -> io::Result<Vec<MountEntry>> {
    Ok(parse_mountinfo(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// The mount at exactly `path`, the last one stacked there.
pub fn mount_at<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let p = path.to_string_lossy();
    mounts.iter().rev().find(|m| m.mount_point == p)
}

/// Which of a disk's mount points `mps` are mounts of something other than the filesystem
/// mounted at `own` (a pool's mount point). The pool's own mounts are that mount, and every
/// mount with the same device numbers: bind mounts of it, of its subvolumes or of a folder in
/// it (a btrfs filesystem has one anonymous device number for all its subvolumes), such as
/// the NFS export binds under `.nfs-exports`. Mount points under `own_dirs` count as the
/// pool's too. When nothing is mounted at `own`, only `own_dirs` are the pool's.
pub fn foreign_mounts(
    mounts: &[MountEntry],
    mps: &[String],
    own: &Path,
    own_dirs: &[&Path],
) -> Vec<String> {
    let dev = mount_at(mounts, own).map(|m| (m.major, m.minor));
    mps.iter()
        .filter(|mp| {
            if own_dirs
                .iter()
                .any(|o| Path::new(mp.as_str()).starts_with(o))
            {
                return false;
            }
            let same = dev.is_some()
                && mount_at(mounts, Path::new(mp.as_str())).map(|m| (m.major, m.minor)) == dev;
            !same
        })
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// small readers

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_trim(path)?.parse().ok()
}

/// The udev database record of a block device: `E:` properties and `S:` links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdevRecord {
    pub props: HashMap<String, String>,
    pub links: Vec<String>,
}

/// Parses `/run/udev/data/b<major>:<minor>`.
pub fn parse_udev_record(text: &str) -> UdevRecord {
    let mut rec = UdevRecord::default();
    for line in text.lines() {
        if let Some(kv) = line.strip_prefix("E:") {
            if let Some((k, v)) = kv.split_once('=') {
                rec.props.insert(k.to_string(), v.to_string());
            }
        } else if let Some(link) = line.strip_prefix("S:") {
            rec.links.push(format!("/dev/{link}"));
        }
    }
    rec
}

fn udev_record(paths: &SysPaths, devno: (u32, u32)) -> UdevRecord {
    std::fs::read_to_string(paths.udev_data.join(format!("b{}:{}", devno.0, devno.1)))
        .map(|t| parse_udev_record(&t))
        .unwrap_or_default()
}

fn parse_devno(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// 64-bit FNV-1a: a stable, dependency-free hash for loop ids.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Keeps `[A-Za-z0-9._-]`, replaces the rest with `_` (ids go into URLs).
pub fn sanitize_id(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The stable id and where it came from (see [`DiskIdSource`]).
pub fn stable_id(
    name: &str,
    wwn: Option<&str>,
    bus: Option<&str>,
    model: Option<&str>,
    serial: Option<&str>,
    udev_serial: Option<&str>,
    backing_file: Option<&str>,
) -> (String, DiskIdSource) {
    if let Some(w) = wwn.filter(|w| !w.is_empty()) {
        let w = sanitize_id(w);
        let id = if name.starts_with("nvme") {
            format!("nvme-{w}")
        } else {
            format!("wwn-{w}")
        };
        return (id, DiskIdSource::Wwn);
    }
    let bus = bus.filter(|b| !b.is_empty()).unwrap_or("disk");
    if let Some(s) = udev_serial.filter(|s| !s.is_empty()) {
        return (
            format!("{}-{}", sanitize_id(bus), sanitize_id(s)),
            DiskIdSource::Serial,
        );
    }
    if let Some(s) = serial.filter(|s| !s.is_empty()) {
        let m = model
            .map(|m| m.trim().replace(' ', "_"))
            .unwrap_or_default();
        let joined = if m.is_empty() {
            s.to_string()
        } else {
            format!("{m}_{s}")
        };
        return (
            format!("{}-{}", sanitize_id(bus), sanitize_id(&joined)),
            DiskIdSource::Serial,
        );
    }
    if let Some(f) = backing_file.filter(|f| !f.is_empty()) {
        return (
            format!("loop-{:016x}", fnv1a64(f.as_bytes())),
            DiskIdSource::BackingFile,
        );
    }
    (
        format!("dev-{}", sanitize_id(name)),
        DiskIdSource::KernelName,
    )
}

/// `naa.5000c500a0b0c0d0` → `0x5000c500a0b0c0d0`; `eui.…`/`nvme.…` kept; `t10.` (vendor text,
/// not a name) dropped.
fn wwn_from_wwid(w: &str) -> Option<String> {
    let w = w.trim();
    if let Some(naa) = w.strip_prefix("naa.") {
        return Some(format!("0x{}", naa.to_ascii_lowercase()));
    }
    if w.starts_with("eui.") || w.starts_with("nvme.") {
        return Some(w.to_string());
    }
    None
}

fn transport(name: &str, real: &str, udev_bus: Option<&str>) -> Option<String> {
    if name.starts_with("nvme") {
        return Some("nvme".into());
    }
    if name.starts_with("vd") {
        return Some("virtio".into());
    }
    if name.starts_with("mmcblk") {
        return Some("mmc".into());
    }
    if real.contains("/usb") {
        return Some("usb".into());
    }
    if real.contains("/ata") {
        return Some("sata".into());
    }
    if let Some(b) = udev_bus {
        return Some(b.to_string());
    }
    if real.contains("/host") {
        return Some("sas".into());
    }
    None
}

// ---------------------------------------------------------------------------------------------
// the scan

/// Mount points by kernel name (disk or partition), from mountinfo and btrfs' sysfs (a
/// multi-device btrfs lists one member in mountinfo; sysfs names them all).
fn mountpoints_by_kname(
    paths: &SysPaths,
    mounts: &[MountEntry],
) -> (HashMap<String, Vec<String>>, HashMap<String, String>) {
    let mut by: HashMap<String, Vec<String>> = HashMap::new();
    let mut fstype: HashMap<String, String> = HashMap::new();
    let mut add = |k: String, m: &MountEntry| {
        let v = by.entry(k.clone()).or_default();
        if !v.contains(&m.mount_point) {
            v.push(m.mount_point.clone());
        }
        fstype.entry(k).or_insert_with(|| m.fstype.clone());
    };
    for m in mounts {
        if m.major != 0
            && let Ok(link) =
                std::fs::read_link(paths.sys.join(format!("dev/block/{}:{}", m.major, m.minor)))
            && let Some(k) = link.file_name()
        {
            add(k.to_string_lossy().into_owned(), m);
            continue;
        }
        if m.source.starts_with("/dev/") {
            // Resolves /dev/disk/by-* and /dev/mapper links: a readlink on devtmpfs, no I/O.
            let real = std::fs::canonicalize(&m.source).unwrap_or_else(|_| m.source.clone().into());
            if let Some(k) = real.file_name() {
                add(k.to_string_lossy().into_owned(), m);
            }
        }
    }
    // btrfs: give every member of a mounted filesystem the filesystem's mount points.
    for group in btrfs_sysfs_groups(paths).into_values() {
        let mut mps: Vec<String> = Vec::new();
        for k in &group.devices {
            for mp in by.get(k).into_iter().flatten() {
                if !mps.contains(mp) {
                    mps.push(mp.clone());
                }
            }
        }
        for k in &group.devices {
            let v = by.entry(k.clone()).or_default();
            for mp in &mps {
                if !v.contains(mp) {
                    v.push(mp.clone());
                }
            }
            fstype.entry(k.clone()).or_insert_with(|| "btrfs".into());
        }
    }
    (by, fstype)
}

/// A mounted btrfs filesystem as `/sys/fs/btrfs/<uuid>` shows it.
#[derive(Debug, Clone, Default)]
pub struct BtrfsSysfs {
    pub uuid: String,
    pub label: Option<String>,
    /// Kernel names of the member devices.
    pub devices: Vec<String>,
}

/// Mounted btrfs filesystems by UUID (the sysfs directory exists only while mounted).
pub fn btrfs_sysfs_groups(paths: &SysPaths) -> HashMap<String, BtrfsSysfs> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(paths.sys.join("fs/btrfs")) else {
        return out;
    };
    for e in rd.flatten() {
        let uuid = e.file_name().to_string_lossy().into_owned();
        let devdir = e.path().join("devices");
        let Ok(devs) = std::fs::read_dir(&devdir) else {
            continue;
        };
        let devices = devs
            .flatten()
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect();
        out.insert(
            uuid.clone(),
            BtrfsSysfs {
                label: read_trim(&e.path().join("label")),
                uuid,
                devices,
            },
        );
    }
    out
}

fn swap_knames(paths: &SysPaths) -> HashSet<String> {
    let text = std::fs::read_to_string(paths.proc.join("swaps")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| s.starts_with("/dev/"))
        .filter_map(|s| {
            std::fs::canonicalize(s)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .collect()
}

/// Kernel names that hold the root filesystem (the device, and for btrfs every member).
fn root_knames(mounts: &[MountEntry], by: &HashMap<String, Vec<String>>) -> HashSet<String> {
    let mut out = HashSet::new();
    if mounts.iter().any(|m| m.mount_point == "/") {
        for (k, mps) in by {
            if mps.iter().any(|m| m == "/") {
                out.insert(k.clone());
            }
        }
    }
    out
}

fn statvfs_usage(path: &str) -> Option<(u64, u64, u64)> {
    let c = CString::new(path.as_bytes()).ok()?;
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
    Some((blocks * fr, blocks.saturating_sub(free) * fr, avail * fr))
}

fn filesystem_from(
    udev: &UdevRecord,
    mounted_fstype: Option<&String>,
    mountpoints: &[String],
    btrfs: Option<&BtrfsSysfs>,
) -> Option<Filesystem> {
    let p = |k: &str| udev.props.get(k).cloned().filter(|v| !v.is_empty());
    let fstype = p("ID_FS_TYPE")
        .or_else(|| btrfs.map(|_| "btrfs".to_string()))
        .or_else(|| mounted_fstype.cloned())?;
    let usage = mountpoints.first().and_then(|m| statvfs_usage(m));
    Some(Filesystem {
        fstype,
        version: p("ID_FS_VERSION"),
        label: p("ID_FS_LABEL").or_else(|| btrfs.and_then(|b| b.label.clone())),
        uuid: p("ID_FS_UUID").or_else(|| btrfs.map(|b| b.uuid.clone())),
        mountpoints: mountpoints.to_vec(),
        size_bytes: usage.map(|u| u.0),
        used: usage.map(|u| u.1),
        available: usage.map(|u| u.2),
    })
}

/// Every whole disk, from kernel memory only (no device is opened). Loop devices without a
/// backing file (size 0) are left out.
pub fn scan(paths: &SysPaths) -> io::Result<Vec<ScannedDisk>> {
    let mounts = parse_mountinfo(
        &std::fs::read_to_string(paths.proc_self.join("mountinfo")).unwrap_or_default(),
    );
    let (by, mounted_fstype) = mountpoints_by_kname(paths, &mounts);
    let btrfs = btrfs_sysfs_groups(paths);
    let btrfs_of: HashMap<&str, &BtrfsSysfs> = btrfs
        .values()
        .flat_map(|g| g.devices.iter().map(move |d| (d.as_str(), g)))
        .collect();
    let swaps = swap_knames(paths);
    let root = root_knames(&mounts, &by);

    let mut out = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(paths.sys.join("block"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by(|a, b| natural_cmp(a, b));
    for name in names {
        let dir = paths.sys.join("block").join(&name);
        let sectors = read_u64(&dir.join("size")).unwrap_or(0);
        if sectors == 0 {
            continue;
        }
        let Some(devno) = read_trim(&dir.join("dev")).and_then(|s| parse_devno(&s)) else {
            continue;
        };
        let udev = udev_record(paths, devno);
        let up = |k: &str| udev.props.get(k).cloned().filter(|v| !v.is_empty());
        let physical = dir.join("device").exists();
        let real = std::fs::canonicalize(&dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let backing_file = read_trim(&dir.join("loop/backing_file"));
        let kind = if name.starts_with("loop") {
            "loop"
        } else {
            "disk"
        };
        let model = up("ID_MODEL")
            .map(|m| m.replace('_', " "))
            .or_else(|| read_trim(&dir.join("device/model")));
        let vendor = up("ID_VENDOR").or_else(|| read_trim(&dir.join("device/vendor")));
        let serial = up("ID_SERIAL_SHORT").or_else(|| read_trim(&dir.join("device/serial")));
        let wwid = read_trim(&dir.join("wwid")).or_else(|| read_trim(&dir.join("device/wwid")));
        let wwn = up("ID_WWN_WITH_EXTENSION")
            .or_else(|| up("ID_WWN"))
            .or_else(|| wwid.as_deref().and_then(wwn_from_wwid));
        let bus = up("ID_BUS");
        let (id, id_source) = stable_id(
            &name,
            wwn.as_deref(),
            bus.as_deref().or(transport(&name, &real, None).as_deref()),
            model.as_deref(),
            serial.as_deref(),
            up("ID_SERIAL").as_deref(),
            backing_file.as_deref(),
        );

        let mut knames = vec![name.clone()];
        let mut held = read_dir_nonempty(&dir.join("holders")) || swaps.contains(&name);
        let mut partitions = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut parts: Vec<(u32, String)> = rd
                .flatten()
                .filter(|e| e.path().join("partition").exists())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    read_u64(&e.path().join("partition")).map(|num| (num as u32, n))
                })
                .collect();
            parts.sort();
            for (number, pname) in parts {
                let pdir = dir.join(&pname);
                let pdevno = read_trim(&pdir.join("dev"))
                    .and_then(|s| parse_devno(&s))
                    .unwrap_or((0, 0));
                let pudev = udev_record(paths, pdevno);
                let pp = |k: &str| pudev.props.get(k).cloned().filter(|v| !v.is_empty());
                let mps = by.get(&pname).cloned().unwrap_or_default();
                held |= read_dir_nonempty(&pdir.join("holders")) || swaps.contains(&pname);
                partitions.push(Partition {
                    path: format!("/dev/{pname}"),
                    number,
                    start: read_u64(&pdir.join("start")).unwrap_or(0) * 512,
                    size_bytes: read_u64(&pdir.join("size")).unwrap_or(0) * 512,
                    part_label: pp("ID_PART_ENTRY_NAME"),
                    part_uuid: pp("ID_PART_ENTRY_UUID"),
                    part_type: pp("ID_PART_ENTRY_TYPE"),
                    filesystem: filesystem_from(
                        &pudev,
                        mounted_fstype.get(&pname),
                        &mps,
                        btrfs_of.get(pname.as_str()).copied(),
                    ),
                    name: pname.clone(),
                });
                knames.push(pname);
            }
        }
        let own_mps = by.get(&name).cloned().unwrap_or_default();
        let mut mountpoints = own_mps.clone();
        for p in &partitions {
            for m in p.filesystem.iter().flat_map(|f| f.mountpoints.iter()) {
                if !mountpoints.contains(m) {
                    mountpoints.push(m.clone());
                }
            }
        }
        let holds_root = knames.iter().any(|k| root.contains(k));
        let disk = Disk {
            href: String::new(),
            id,
            id_source,
            path: format!("/dev/{name}"),
            by_id: udev
                .links
                .iter()
                .filter(|l| l.starts_with("/dev/disk/by-id/"))
                .cloned()
                .collect(),
            kind: kind.into(),
            model,
            vendor,
            serial,
            wwn,
            size_bytes: sectors * 512,
            logical_sector_size: read_u64(&dir.join("queue/logical_block_size")).unwrap_or(512)
                as u32,
            physical_sector_size: read_u64(&dir.join("queue/physical_block_size")).unwrap_or(512)
                as u32,
            rotational: read_u64(&dir.join("queue/rotational")) == Some(1),
            removable: read_u64(&dir.join("removable")) == Some(1),
            read_only: read_u64(&dir.join("ro")) == Some(1),
            transport: transport(&name, &real, bus.as_deref()).filter(|_| physical),
            backing_file,
            partition_table: up("ID_PART_TABLE_TYPE"),
            filesystem: filesystem_from(
                &udev,
                mounted_fstype.get(&name),
                &own_mps,
                btrfs_of.get(name.as_str()).copied(),
            ),
            partitions,
            in_use: held || !mountpoints.is_empty(),
            mountpoints,
            pool: None,
            holds_root,
            allowed: false,
            power_state: PowerState::Unknown,
            temperature_celsius: None,
            smart_health: None,
            performance: None,
            name: name.clone(),
        };
        out.push(ScannedDisk {
            disk,
            devno,
            physical,
            held,
            knames,
        });
    }
    // Two loops on one image would share an id: fall back to the kernel name for both.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for d in &out {
        *seen.entry(d.disk.id.clone()).or_default() += 1;
    }
    for d in &mut out {
        if seen[&d.disk.id] > 1 {
            d.disk.id = format!("dev-{}", sanitize_id(&d.disk.name));
            d.disk.id_source = DiskIdSource::KernelName;
        }
    }
    Ok(out)
}

fn read_dir_nonempty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut rd| rd.next().is_some())
        .unwrap_or(false)
}

/// `loop2` < `loop10`; `sda` < `sdb`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let i = s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        (s[..i].to_string(), s[i..].parse::<u64>().unwrap_or(0))
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

// ---------------------------------------------------------------------------------------------
// blkid: the one probe that reads disks

/// What blkid (`-o export`) found on one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkidInfo {
    pub devname: String,
    pub props: BTreeMap<String, String>,
}

impl BlkidInfo {
    pub fn get(&self, k: &str) -> Option<String> {
        self.props.get(k).cloned().filter(|v| !v.is_empty())
    }
}

fn unescape_blkid(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses `blkid [-p] -o export DEV...`: blocks separated by blank lines, each starting with
/// `DEVNAME=`.
pub fn parse_blkid_export(text: &str) -> Vec<BlkidInfo> {
    let mut out: Vec<BlkidInfo> = Vec::new();
    let mut cur: Option<BlkidInfo> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            if let Some(c) = cur.take() {
                out.push(c);
            }
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = unescape_blkid(v);
        if k == "DEVNAME" {
            if let Some(c) = cur.take() {
                out.push(c);
            }
            cur = Some(BlkidInfo {
                devname: v,
                props: BTreeMap::new(),
            });
        } else if let Some(c) = cur.as_mut() {
            c.props.insert(k.to_string(), v);
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    out
}

/// Probes `devices` with `blkid -c /dev/null -o export` (no cache: every device is read).
///
/// Not `blkid -p`: in low-level mode blkid stops at the first device where it finds nothing
/// (seen with util-linux 2.38), so one blank disk hides every device after it.
pub async fn probe_blkid(devices: &[String]) -> Result<Vec<BlkidInfo>, CommandError> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    for d in devices {
        validate_path_arg("device", d)?;
    }
    // Exit 2 when some device has nothing on it (or vanished); the others are printed.
    let out = Cmd::new("blkid")
        .args(["-c", "/dev/null", "-o", "export"])
        .args(devices)
        .ok_codes(&[0, 2, 4, 8])
        .run()
        .await?;
    if out.status != 0 && out.status != 2 {
        tracing::debug!(
            status = out.status,
            stderr = out.stderr,
            "blkid reported problems"
        );
    }
    Ok(parse_blkid_export(&out.stdout_lossy()))
}

/// Fills filesystem and partition details from a blkid probe into a scanned disk (for
/// devices the udev database said nothing about).
pub fn apply_blkid(d: &mut Disk, probes: &HashMap<String, BlkidInfo>) {
    let fs_of = |info: &BlkidInfo, old: Option<Filesystem>| -> Option<Filesystem> {
        let fstype = info.get("TYPE");
        match (fstype, old) {
            (Some(t), old) => {
                let old = old.unwrap_or_default();
                Some(Filesystem {
                    fstype: t,
                    version: info.get("VERSION").or(old.version),
                    label: info.get("LABEL").or(old.label),
                    uuid: info.get("UUID").or(old.uuid),
                    ..old
                })
            }
            (None, old) => old,
        }
    };
    if let Some(info) = probes.get(&d.path) {
        d.filesystem = fs_of(info, d.filesystem.take());
        if d.partition_table.is_none() {
            d.partition_table = info.get("PTTYPE");
        }
    }
    for p in &mut d.partitions {
        if let Some(info) = probes.get(&p.path) {
            p.filesystem = fs_of(info, p.filesystem.take());
            p.part_label = p
                .part_label
                .take()
                .or_else(|| info.get("PART_ENTRY_NAME"))
                .or_else(|| info.get("PARTLABEL"));
            p.part_uuid = p
                .part_uuid
                .take()
                .or_else(|| info.get("PART_ENTRY_UUID"))
                .or_else(|| info.get("PARTUUID"));
            p.part_type = p.part_type.take().or_else(|| info.get("PART_ENTRY_TYPE"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// I/O counters

/// Counters of one device from `/proc/diskstats` or `/sys/block/X/stat` (sectors are 512 B).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounters {
    pub reads: u64,
    pub read_sectors: u64,
    pub writes: u64,
    pub write_sectors: u64,
    /// Milliseconds spent doing I/O.
    pub io_ms: u64,
}

/// Parses the fields of `/sys/block/X/stat` (the same as diskstats after the name).
pub fn parse_stat_fields(fields: &[&str]) -> Option<IoCounters> {
    let n = |i: usize| fields.get(i).and_then(|s| s.parse::<u64>().ok());
    Some(IoCounters {
        reads: n(0)?,
        read_sectors: n(2)?,
        writes: n(4)?,
        write_sectors: n(6)?,
        io_ms: n(9)?,
    })
}

/// Parses `/proc/diskstats` into counters by kernel name.
pub fn parse_diskstats(text: &str) -> HashMap<String, IoCounters> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        if let Some(c) = parse_stat_fields(&f[3..]) {
            out.insert(f[2].to_string(), c);
        }
    }
    out
}

pub fn read_diskstats(paths: &SysPaths) -> io::Result<HashMap<String, IoCounters>> {
    Ok(parse_diskstats(&std::fs::read_to_string(
        paths.proc.join("diskstats"),
    )?))
}

/// Rates between two samples `ms` milliseconds apart.
pub fn rates(a: &IoCounters, b: &IoCounters, ms: u64) -> hostplane_types::disks::DiskPerformance {
    let secs = (ms.max(1)) as f64 / 1000.0;
    let d = |x: u64, y: u64| y.saturating_sub(x) as f64;
    hostplane_types::disks::DiskPerformance {
        interval_ms: ms,
        read_bytes_per_sec: d(a.read_sectors, b.read_sectors) * 512.0 / secs,
        write_bytes_per_sec: d(a.write_sectors, b.write_sectors) * 512.0 / secs,
        read_iops: d(a.reads, b.reads) / secs,
        write_iops: d(a.writes, b.writes) / secs,
        utilization_percent: (d(a.io_ms, b.io_ms) * 100.0 / ms.max(1) as f64).min(100.0),
    }
}

// ---------------------------------------------------------------------------------------------
// allow-list globs

/// Shell-style glob: `*` any run, `?` one character, `[abc]`, `[a-z]`, `[!x]`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, chars consumed including ']').
        let mut i = 0;
        let neg = matches!(p.first(), Some('!') | Some('^'));
        if neg {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != neg, i + 1));
            }
            first = false;
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                if p[i] <= c && c <= p[i + 2] {
                    matched = true;
                }
                i += 3;
            } else {
                if p[i] == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    fn rec(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| rec(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && rec(&p[1..], &t[1..]),
            Some('[') => {
                let Some(&c) = t.first() else { return false };
                match class(&p[1..], c) {
                    Some((true, n)) => rec(&p[1 + n..], &t[1..]),
                    Some((false, _)) => false,
                    None => c == '[' && rec(&p[1..], &t[1..]),
                }
            }
            Some(&c) => t.first() == Some(&c) && rec(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    rec(&p, &t)
}

/// The device (by its path or one of its `/dev/disk/by-id` links) matches an allow glob.
pub fn allowed(globs: &[String], path: &str, links: &[String]) -> bool {
    globs
        .iter()
        .any(|g| glob_match(g, path) || links.iter().any(|l| glob_match(g, l)))
}

// ---------------------------------------------------------------------------------------------
// wake

/// Wakes a disk by reading 4 KiB from its middle with O_DIRECT (no page cache hit possible).
pub fn wake_read(path: &Path, size: u64) -> io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut buf = AlignedBuf::new(4096);
    let off = (size / 2) & !4095;
    f.read_at(buf.as_mut(), off)?;
    Ok(())
}

struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: non-zero size layout.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation failed");
        AlignedBuf { ptr, len }
    }
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is a live allocation of len bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, 4096).expect("layout");
        // SAFETY: allocated in new() with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

/// The kernel name a user-supplied device refers to (`sda`, `/dev/sda`, a `/dev/disk/...`
/// link); None when it does not resolve to a block device under /dev.
pub fn resolve_kname(dev: &str) -> Option<String> {
    if !dev.contains('/') {
        return Some(dev.to_string());
    }
    if !dev.starts_with("/dev/") {
        return None;
    }
    let real = std::fs::canonicalize(dev).ok()?;
    if !real.starts_with("/dev") {
        return None;
    }
    real.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Whether a path is a mount point now (mountinfo).
pub fn is_mountpoint(path: &Path) -> bool {
    mounts()
        .map(|m| mount_at(&m, path).is_some())
        .unwrap_or(false)
}

/// The raw bytes of a path as a C string.
pub fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
                    90 27 0:45 /data /mnt/pools/my\\040tank rw - btrfs /dev/loop3 rw,space_cache=v2,subvolid=256\n\
                    bogus\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].major, m[0].minor), (254, 0));
        assert_eq!(m[1].mount_point, "/mnt/pools/my tank");
        assert_eq!(m[1].root, "/data");
        assert_eq!(m[1].fstype, "btrfs");
        assert_eq!(m[1].source, "/dev/loop3");
        assert!(m[1].super_options.contains("subvolid=256"));
    }

    #[test]
    fn foreign_mounts_are_mounts_of_another_filesystem() {
        let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                    90 27 0:45 / /mnt/pools/tank rw - btrfs /dev/loop1 rw,subvolid=5\n\
                    91 27 0:45 /media /mnt/pools/.nfs-exports/1 rw - btrfs /dev/loop1 rw,subvolid=256\n\
                    92 27 0:45 /media/sub /srv/elsewhere rw - btrfs /dev/loop1 rw,subvolid=256\n\
                    93 27 7:2 / /mnt/other rw - ext4 /dev/loop2 rw\n";
        let m = parse_mountinfo(text);
        let mps: Vec<String> = [
            "/mnt/pools/tank",
            "/mnt/pools/.nfs-exports/1",
            "/srv/elsewhere",
            "/mnt/other",
            "/mnt/pools/.members/tank/x",
        ]
        .map(String::from)
        .to_vec();
        let members = Path::new("/mnt/pools/.members/tank");
        assert_eq!(
            foreign_mounts(&m, &mps, Path::new("/mnt/pools/tank"), &[members]),
            ["/mnt/other"]
        );
        // Pool not mounted: its binds are not recognised as its own.
        assert_eq!(
            foreign_mounts(&m, &mps, Path::new("/mnt/pools/gone"), &[members]),
            [
                "/mnt/pools/tank",
                "/mnt/pools/.nfs-exports/1",
                "/srv/elsewhere",
                "/mnt/other"
            ]
        );
    }

    #[test]
    fn udev_record_props_and_links() {
        let r = parse_udev_record(
            "S:disk/by-id/ata-FakeDisk_2TB_FAKE0\nS:disk/by-id/wwn-0x5000c500a0b0c00\nE:ID_SERIAL=FakeDisk_2TB_FAKE0\nE:ID_WWN=0x5000c500a0b0c00\nE:ID_BUS=ata\nG:systemd\n",
        );
        assert_eq!(r.links.len(), 2);
        assert_eq!(r.links[0], "/dev/disk/by-id/ata-FakeDisk_2TB_FAKE0");
        assert_eq!(r.props["ID_BUS"], "ata");
    }

    #[test]
    fn stable_ids_in_order_of_preference() {
        let (id, src) = stable_id(
            "sda",
            Some("0x5000c500a0b0c0d0"),
            Some("ata"),
            Some("ST4000"),
            Some("ZDH1"),
            None,
            None,
        );
        assert_eq!(
            (id.as_str(), src),
            ("wwn-0x5000c500a0b0c0d0", DiskIdSource::Wwn)
        );
        let (id, _) = stable_id(
            "nvme0n1",
            Some("eui.0025388b71b2a0c1"),
            None,
            None,
            None,
            None,
            None,
        );
        assert_eq!(id, "nvme-eui.0025388b71b2a0c1");
        let (id, src) = stable_id(
            "sdb",
            None,
            Some("ata"),
            None,
            None,
            Some("Samsung_SSD_870_EVO_1TB_S6PUNX0T123456"),
            None,
        );
        assert_eq!(
            (id.as_str(), src),
            (
                "ata-Samsung_SSD_870_EVO_1TB_S6PUNX0T123456",
                DiskIdSource::Serial
            )
        );
        let (id, _) = stable_id(
            "sdc",
            None,
            Some("usb"),
            Some("My Disk"),
            Some("AB 12"),
            None,
            None,
        );
        assert_eq!(id, "usb-My_Disk_AB_12");
        let (id, src) = stable_id(
            "loop3",
            None,
            None,
            None,
            None,
            None,
            Some("/var/tmp/d0.img"),
        );
        assert_eq!(src, DiskIdSource::BackingFile);
        assert_eq!(id, format!("loop-{:016x}", fnv1a64(b"/var/tmp/d0.img")));
        let (id, src) = stable_id("vda", None, None, None, None, None, None);
        assert_eq!((id.as_str(), src), ("dev-vda", DiskIdSource::KernelName));
    }

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn wwid_forms() {
        assert_eq!(
            wwn_from_wwid("naa.5000C500A0B0C0D0").as_deref(),
            Some("0x5000c500a0b0c0d0")
        );
        assert_eq!(
            wwn_from_wwid("eui.0025388b71b2a0c1").as_deref(),
            Some("eui.0025388b71b2a0c1")
        );
        assert_eq!(wwn_from_wwid("t10.ATA     QEMU HARDDISK   QM00001"), None);
    }

    /// Recorded on this machine: `blkid -p -o export /dev/loop0 /dev/loop2 /dev/loop2p1
    /// /dev/loop2p2` (btrfs member, GPT disk, ext4 partition, empty partition).
    #[test]
    fn blkid_export_recorded() {
        let text = "DEVNAME=/dev/loop0\nLABEL=tank\nUUID=4c383ee1-d312-4efb-ad3f-e9bc6d7874a0\nUUID_SUB=ee61a266-d79e-41e6-93a9-44748a6a95d7\nBLOCK_SIZE=4096\nTYPE=btrfs\nUSAGE=filesystem\n\nDEVNAME=/dev/loop2\nPTUUID=d2d34c41-372d-49bd-8006-134bccec505a\nPTTYPE=gpt\n\nDEVNAME=/dev/loop2p1\nLABEL=e4\nUUID=059a3832-e8cf-48fc-b315-2e95d475ec9a\nVERSION=1.0\nBLOCK_SIZE=1024\nTYPE=ext4\nUSAGE=filesystem\nPART_ENTRY_SCHEME=gpt\nPART_ENTRY_NAME=data\nPART_ENTRY_UUID=1ba12bf1-edfa-48df-9ba4-659d51beea81\nPART_ENTRY_TYPE=0fc63daf-8483-4772-8e79-3d69d8477de4\nPART_ENTRY_NUMBER=1\nPART_ENTRY_OFFSET=2048\nPART_ENTRY_SIZE=102400\nPART_ENTRY_DISK=7:2\n\nDEVNAME=/dev/loop2p2\nPART_ENTRY_SCHEME=gpt\nPART_ENTRY_UUID=45532591-026d-4ea7-b7f0-a0f501ba3995\nPART_ENTRY_TYPE=0fc63daf-8483-4772-8e79-3d69d8477de4\nPART_ENTRY_NUMBER=2\n";
        let v = parse_blkid_export(text);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].get("TYPE").as_deref(), Some("btrfs"));
        assert_eq!(v[1].get("PTTYPE").as_deref(), Some("gpt"));
        assert_eq!(v[2].get("PART_ENTRY_NAME").as_deref(), Some("data"));
        assert_eq!(v[3].get("TYPE"), None);
        assert_eq!(
            parse_blkid_export("DEVNAME=/dev/x\nLABEL=my\\ disk\n")[0]
                .get("LABEL")
                .as_deref(),
            Some("my disk")
        );
    }

    /// Recorded here: `blkid -c /dev/null -o export /dev/loop0 <empty loop> /dev/loop4
    /// /dev/loop2 /dev/loop2p1` (the empty loop prints nothing; the rest still comes).
    #[test]
    fn blkid_cacheless_export_recorded_and_applied() {
        let text = "DEVNAME=/dev/loop0\nLABEL=tank\nUUID=4c383ee1-d312-4efb-ad3f-e9bc6d7874a0\nUUID_SUB=ee61a266-d79e-41e6-93a9-44748a6a95d7\nBLOCK_SIZE=4096\nTYPE=btrfs\n\nDEVNAME=/dev/loop4\nLABEL=listed\nUUID=fcfa118f-0ca4-45a6-9d31-8666c3135cd5\nBLOCK_SIZE=1024\nTYPE=ext4\n\nDEVNAME=/dev/loop2\nPTUUID=d2d34c41-372d-49bd-8006-134bccec505a\nPTTYPE=gpt\n\nDEVNAME=/dev/loop2p1\nLABEL=e4\nUUID=059a3832-e8cf-48fc-b315-2e95d475ec9a\nBLOCK_SIZE=1024\nTYPE=ext4\nPARTLABEL=data\nPARTUUID=1ba12bf1-edfa-48df-9ba4-659d51beea81\n";
        let v = parse_blkid_export(text);
        assert_eq!(v.len(), 4);
        let map: HashMap<String, BlkidInfo> =
            v.into_iter().map(|i| (i.devname.clone(), i)).collect();
        let mut d = Disk {
            href: String::new(),
            id: "x".into(),
            id_source: DiskIdSource::KernelName,
            name: "loop2".into(),
            path: "/dev/loop2".into(),
            by_id: vec![],
            kind: "loop".into(),
            model: None,
            vendor: None,
            serial: None,
            wwn: None,
            size_bytes: 1,
            logical_sector_size: 512,
            physical_sector_size: 512,
            rotational: true,
            removable: false,
            read_only: false,
            transport: None,
            backing_file: None,
            partition_table: None,
            filesystem: None,
            partitions: vec![Partition {
                name: "loop2p1".into(),
                path: "/dev/loop2p1".into(),
                number: 1,
                start: 0,
                size_bytes: 1,
                part_label: None,
                part_uuid: None,
                part_type: None,
                filesystem: None,
            }],
            mountpoints: vec![],
            pool: None,
            holds_root: false,
            in_use: false,
            allowed: false,
            power_state: PowerState::Unknown,
            temperature_celsius: None,
            smart_health: None,
            performance: None,
        };
        apply_blkid(&mut d, &map);
        assert_eq!(d.partition_table.as_deref(), Some("gpt"));
        let p = &d.partitions[0];
        assert_eq!(p.part_label.as_deref(), Some("data"));
        assert_eq!(
            p.part_uuid.as_deref(),
            Some("1ba12bf1-edfa-48df-9ba4-659d51beea81")
        );
        let fs = p.filesystem.as_ref().unwrap();
        assert_eq!(
            (fs.fstype.as_str(), fs.label.as_deref()),
            ("ext4", Some("e4"))
        );
    }

    #[test]
    fn diskstats_and_rates() {
        let text = "   7       0 loop0 653 1274 207496 576 395 4685 117648 589 0 260 1248 5 0 2113536 26 72 56\n 254 0 vda 1 2 3\n";
        let m = parse_diskstats(text);
        assert_eq!(m.len(), 1);
        let a = m["loop0"];
        assert_eq!(
            (a.reads, a.read_sectors, a.writes, a.write_sectors, a.io_ms),
            (653, 207496, 395, 117648, 260)
        );
        let b = IoCounters {
            reads: 753,
            read_sectors: 207496 + 2048,
            writes: 395,
            write_sectors: 117648,
            io_ms: 360,
        };
        let r = rates(&a, &b, 500);
        assert_eq!(r.read_iops, 200.0);
        assert_eq!(r.read_bytes_per_sec, 2048.0 * 512.0 * 2.0);
        assert_eq!(r.utilization_percent, 20.0);
    }

    #[test]
    fn globs() {
        assert!(glob_match("/dev/loop*", "/dev/loop12"));
        assert!(glob_match("/dev/loop1?", "/dev/loop12"));
        assert!(!glob_match("/dev/loop1?", "/dev/loop1"));
        assert!(glob_match("/dev/sd[a-c]", "/dev/sdb"));
        assert!(!glob_match("/dev/sd[!a-c]", "/dev/sdb"));
        assert!(glob_match("/dev/loop3", "/dev/loop3"));
        assert!(!glob_match("/dev/loop3", "/dev/loop31"));
        assert!(!glob_match("", "/dev/vda"));
        assert!(allowed(
            &["/dev/disk/by-id/ata-*".into()],
            "/dev/sda",
            &["/dev/disk/by-id/ata-X".into()]
        ));
        assert!(!allowed(&[], "/dev/sda", &[]));
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["loop10", "loop2", "sda", "loop1", "nvme0n1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["loop1", "loop2", "loop10", "nvme0n1", "sda"]);
    }

    /// A fixture sysfs tree: a GPT loop disk with one mounted partition, a btrfs pair
    /// mounted once, an unattached loop, and the root disk.
    #[test]
    fn scan_fixture_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let w = |p: &str, s: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        // vda: root disk
        w("sys/block/vda/size", "2097152\n");
        w("sys/block/vda/dev", "254:0\n");
        std::fs::create_dir_all(root.join("sys/block/vda/device")).unwrap();
        // loop0, loop1: btrfs pair
        for (n, minor) in [("loop0", 0), ("loop1", 1)] {
            w(&format!("sys/block/{n}/size"), "524288\n");
            w(&format!("sys/block/{n}/dev"), &format!("7:{minor}\n"));
            w(&format!("sys/block/{n}/queue/rotational"), "1\n");
            w(
                &format!("sys/block/{n}/loop/backing_file"),
                &format!("/img/{n}.img\n"),
            );
        }
        w("sys/fs/btrfs/aaaa-bbbb/label", "tank\n");
        std::fs::create_dir_all(root.join("sys/fs/btrfs/aaaa-bbbb/devices/loop0")).unwrap();
        std::fs::create_dir_all(root.join("sys/fs/btrfs/aaaa-bbbb/devices/loop1")).unwrap();
        // loop2: GPT with one ext4 partition (udev knows it)
        w("sys/block/loop2/size", "524288\n");
        w("sys/block/loop2/dev", "7:2\n");
        w("sys/block/loop2/loop2p1/partition", "1\n");
        w("sys/block/loop2/loop2p1/start", "2048\n");
        w("sys/block/loop2/loop2p1/size", "102400\n");
        w("sys/block/loop2/loop2p1/dev", "259:0\n");
        w(
            "run/udev/data/b259:0",
            "E:ID_FS_TYPE=ext4\nE:ID_FS_LABEL=e4\nE:ID_PART_ENTRY_NAME=data\n",
        );
        // loop3: not attached
        w("sys/block/loop3/size", "0\n");
        w("sys/block/loop3/dev", "7:3\n");
        w(
            "proc/self/mountinfo",
            "27 1 254:0 / / rw - ext4 /dev/vda rw\n90 27 0:45 / /mnt/pools/tank rw - btrfs /dev/loop0 rw\n91 27 259:0 / /mnt/e4 rw - ext4 /dev/loop2p1 rw\n",
        );
        w("proc/swaps", "Filename Type Size Used Priority\n");
        // /sys/dev/block links for the numbered mounts
        std::fs::create_dir_all(root.join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink("../../block/vda", root.join("sys/dev/block/254:0")).unwrap();
        std::os::unix::fs::symlink(
            "../../block/loop2/loop2p1",
            root.join("sys/dev/block/259:0"),
        )
        .unwrap();
        let paths = SysPaths {
            sys: root.join("sys"),
            proc_self: root.join("proc/self"),
            proc: root.join("proc"),
            udev_data: root.join("run/udev/data"),
        };
        let disks = scan(&paths).unwrap();
        let names: Vec<&str> = disks.iter().map(|d| d.disk.name.as_str()).collect();
        assert_eq!(names, ["loop0", "loop1", "loop2", "vda"]);
        let vda = &disks[3];
        assert!(vda.disk.holds_root && vda.physical && vda.disk.in_use);
        assert_eq!(vda.disk.id, "dev-vda");
        let l1 = &disks[1];
        assert_eq!(
            l1.disk.mountpoints,
            ["/mnt/pools/tank"],
            "btrfs member not in mountinfo"
        );
        let fs = l1.disk.filesystem.as_ref().unwrap();
        assert_eq!(
            (fs.fstype.as_str(), fs.label.as_deref(), fs.uuid.as_deref()),
            ("btrfs", Some("tank"), Some("aaaa-bbbb"))
        );
        assert_eq!(l1.disk.backing_file.as_deref(), Some("/img/loop1.img"));
        assert_eq!(l1.disk.id_source, DiskIdSource::BackingFile);
        assert!(!l1.disk.holds_root);
        let l2 = &disks[2];
        assert_eq!(l2.disk.partitions.len(), 1);
        let p = &l2.disk.partitions[0];
        assert_eq!(
            (p.number, p.start, p.size_bytes),
            (1, 2048 * 512, 102400 * 512)
        );
        assert_eq!(p.part_label.as_deref(), Some("data"));
        assert_eq!(p.filesystem.as_ref().unwrap().label.as_deref(), Some("e4"));
        assert_eq!(l2.disk.mountpoints, ["/mnt/e4"]);
        assert!(l2.disk.in_use);
        assert_eq!(l2.knames, ["loop2", "loop2p1"]);
    }
}
