//! btrfs: the `btrfs` CLI (btrfs-progs 6.2), its output parsers, and the two ioctls/syscalls
//! that need no process (subvolume info, atomic rename-exchange).
//!
//! btrfs-progs 6.2 has `--format json` only for `filesystem df` and `device stats` (others
//! answer "output format json is unsupported for this command", and `qgroup show` with json
//! crashes), so the rest is parsed from text; quota groups are read from
//! `/sys/fs/btrfs/<uuid>/qgroups/` when the kernel has it (5.9+), else from
//! `qgroup show --raw`. Every parser is tested on output recorded on this machine.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use hostplane_types::pools::{BtrfsProfile, MemberErrors, ScrubResult};
use serde::Deserialize;

use crate::command::{Cmd, CommandError, validate_path_arg};

/// Long-running btrfs commands (device remove relocates data) get this long.
pub const LONG: Duration = Duration::from_secs(6 * 3600);

fn btrfs() -> Cmd {
    Cmd::new("btrfs")
}

fn check_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<(), CommandError> {
    for p in paths {
        validate_path_arg("path", p)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// filesystem show

/// One device line of `btrfs filesystem show --raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowDevice {
    pub devid: u64,
    pub size: u64,
    pub used: u64,
    /// None when the device is missing.
    pub path: Option<String>,
}

/// One filesystem of `btrfs filesystem show --raw`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShowFs {
    pub label: Option<String>,
    pub uuid: String,
    pub total_devices: u64,
    pub devices: Vec<ShowDevice>,
    pub some_missing: bool,
}

/// Parses `btrfs filesystem show --raw [...]`.
pub fn parse_fi_show(text: &str) -> Vec<ShowFs> {
    let mut out: Vec<ShowFs> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Label:") {
            let (label, uuid) = match rest.split_once("uuid:") {
                Some((l, u)) => (l.trim(), u.trim()),
                None => (rest.trim(), ""),
            };
            let label = if label == "none" {
                None
            } else {
                Some(label.trim_matches('\'').to_string())
            };
            out.push(ShowFs {
                label,
                uuid: uuid.to_string(),
                ..Default::default()
            });
        } else if let Some(fs) = out.last_mut() {
            if let Some(rest) = t.strip_prefix("Total devices") {
                fs.total_devices = rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            } else if t.starts_with("devid") {
                let w: Vec<&str> = t.split_whitespace().collect();
                let find = |k: &str| {
                    w.iter()
                        .position(|x| *x == k)
                        .and_then(|i| w.get(i + 1))
                        .copied()
                };
                let path = t.split_once(" path ").map(|x| x.1.trim());
                let missing = path.is_none_or(|p| p.starts_with('<') || p.ends_with("MISSING"));
                fs.devices.push(ShowDevice {
                    devid: find("devid").and_then(|v| v.parse().ok()).unwrap_or(0),
                    size: find("size").and_then(|v| v.parse().ok()).unwrap_or(0),
                    used: find("used").and_then(|v| v.parse().ok()).unwrap_or(0),
                    path: if missing {
                        None
                    } else {
                        path.map(str::to_string)
                    },
                });
                if missing {
                    fs.some_missing = true;
                }
            } else if t.contains("Some devices missing") {
                fs.some_missing = true;
            }
        }
    }
    out
}

/// `btrfs filesystem show --raw <mountpoint|uuid|device>`.
pub async fn fi_show(target: &str) -> Result<Option<ShowFs>, CommandError> {
    check_paths([target])?;
    let text = btrfs()
        .args(["filesystem", "show", "--raw", target])
        .run_text()
        .await?;
    Ok(parse_fi_show(&text).into_iter().next())
}

// ---------------------------------------------------------------------------------------------
// filesystem df (json)

#[derive(Debug, Deserialize)]
struct DfDoc {
    #[serde(rename = "filesystem-df")]
    df: Vec<DfRow>,
}

#[derive(Debug, Deserialize)]
struct DfRow {
    #[serde(rename = "bg-type")]
    bg_type: String,
    #[serde(rename = "bg-profile")]
    bg_profile: String,
}

/// Data and metadata profiles from `btrfs --format json filesystem df`. With several profiles
/// of one type (a conversion in progress) the last one listed wins.
pub fn parse_df_profiles(
    json: &str,
) -> Result<(Option<BtrfsProfile>, Option<BtrfsProfile>), String> {
    let doc: DfDoc = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut data = None;
    let mut meta = None;
    for r in doc.df {
        let p = BtrfsProfile::parse(&r.bg_profile);
        match r.bg_type.as_str() {
            "Data" => data = p.or(data),
            "Metadata" => meta = p.or(meta),
            _ => {}
        }
    }
    Ok((data, meta))
}

pub async fn df_profiles(
    mnt: &str,
) -> Result<(Option<BtrfsProfile>, Option<BtrfsProfile>), CommandError> {
    check_paths([mnt])?;
    let text = btrfs()
        .args(["--format", "json", "filesystem", "df", mnt])
        .run_text()
        .await?;
    parse_df_profiles(&text).map_err(|message| CommandError::Parse {
        program: "btrfs".into(),
        message,
    })
}

// ---------------------------------------------------------------------------------------------
// device stats (json)

#[derive(Debug, Deserialize)]
struct StatsDoc {
    #[serde(rename = "device-stats")]
    stats: Vec<StatsRow>,
}

#[derive(Debug, Deserialize)]
struct StatsRow {
    device: String,
    devid: String,
    write_io_errs: String,
    read_io_errs: String,
    flush_io_errs: String,
    corruption_errs: String,
    generation_errs: String,
}

/// Error counters of one member from `btrfs --format json device stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStats {
    pub device: String,
    pub devid: u64,
    pub errors: MemberErrors,
}

pub fn parse_device_stats(json: &str) -> Result<Vec<DeviceStats>, String> {
    let doc: StatsDoc = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let n = |s: &str| s.parse::<u64>().unwrap_or(0);
    Ok(doc
        .stats
        .into_iter()
        .map(|r| DeviceStats {
            devid: n(&r.devid),
            errors: MemberErrors {
                write_io: n(&r.write_io_errs),
                read_io: n(&r.read_io_errs),
                flush_io: n(&r.flush_io_errs),
                corruption: n(&r.corruption_errs),
                generation: n(&r.generation_errs),
            },
            device: r.device,
        })
        .collect())
}

pub async fn device_stats(mnt: &str) -> Result<Vec<DeviceStats>, CommandError> {
    check_paths([mnt])?;
    // Exit 64 with --check when counters are non-zero; without it 0.
    let text = btrfs()
        .args(["--format", "json", "device", "stats", mnt])
        .run_text()
        .await?;
    parse_device_stats(&text).map_err(|message| CommandError::Parse {
        program: "btrfs".into(),
        message,
    })
}

/// `btrfs device stats -z DEVICE`: zeroes one member's error counters.
pub async fn device_stats_reset(device: &str) -> Result<(), CommandError> {
    check_paths([device])?;
    btrfs()
        .args(["device", "stats", "-z", device])
        .run()
        .await
        .map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// scrub status -R

/// `btrfs scrub status -R`: status word and raw counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrubStatus {
    /// `running`, `finished`, `aborted`, `interrupted`, or `none` (never scrubbed).
    pub status: String,
    pub duration_secs: u64,
    pub counters: HashMap<String, u64>,
}

impl ScrubStatus {
    pub fn result(&self) -> ScrubResult {
        let c = |k: &str| self.counters.get(k).copied().unwrap_or(0);
        ScrubResult {
            status: self.status.clone(),
            duration_secs: self.duration_secs,
            data_bytes_scrubbed: c("data_bytes_scrubbed"),
            tree_bytes_scrubbed: c("tree_bytes_scrubbed"),
            read_errors: c("read_errors"),
            csum_errors: c("csum_errors"),
            verify_errors: c("verify_errors"),
            super_errors: c("super_errors"),
            errors_found: c("read_errors")
                + c("csum_errors")
                + c("verify_errors")
                + c("super_errors"),
            corrected_errors: c("corrected_errors"),
            uncorrectable_errors: c("uncorrectable_errors"),
            unverified_errors: c("unverified_errors"),
        }
    }
}

fn parse_duration(s: &str) -> u64 {
    // h:mm:ss
    s.split(':')
        .map(|p| p.trim().parse::<u64>().unwrap_or(0))
        .fold(0, |acc, x| acc * 60 + x)
}

pub fn parse_scrub_status(text: &str) -> ScrubStatus {
    let mut st = ScrubStatus {
        status: "none".into(),
        ..Default::default()
    };
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Status:") {
            st.status = v.trim().to_string();
        } else if let Some(v) = t.strip_prefix("Duration:") {
            st.duration_secs = parse_duration(v.trim());
        } else if let Some((k, v)) = t.split_once(':')
            && !k.contains(' ')
            && let Ok(n) = v.trim().parse::<u64>()
        {
            st.counters.insert(k.to_string(), n);
        }
    }
    st
}

pub async fn scrub_start(mnt: &str) -> Result<(), CommandError> {
    check_paths([mnt])?;
    btrfs()
        .args(["scrub", "start", mnt])
        .run()
        .await
        .map(|_| ())
}

/// `btrfs scrub start -B -R`: scrubs in the foreground (up to [`LONG`]) and returns the
/// statistics it prints at the end. Exit 3 (uncorrectable errors found) is not a failure: the
/// statistics say so.
pub async fn scrub_foreground(mnt: &str) -> Result<ScrubStatus, CommandError> {
    check_paths([mnt])?;
    let t = btrfs()
        .args(["scrub", "start", "-B", "-R", mnt])
        .ok_codes(&[0, 3])
        .timeout(LONG)
        .run_text()
        .await?;
    Ok(parse_scrub_status(&t))
}

pub async fn scrub_status(mnt: &str) -> Result<ScrubStatus, CommandError> {
    check_paths([mnt])?;
    let t = btrfs()
        .args(["scrub", "status", "-R", mnt])
        .run_text()
        .await?;
    Ok(parse_scrub_status(&t))
}

pub async fn scrub_cancel(mnt: &str) {
    if check_paths([mnt]).is_ok() {
        // Exit 2 when no scrub runs: nothing to do then.
        let _ = btrfs()
            .args(["scrub", "cancel", mnt])
            .ok_codes(&[0, 1, 2])
            .run()
            .await;
    }
}

// ---------------------------------------------------------------------------------------------
// balance status

/// `N out of about M chunks balanced` → (N, M); None when no balance runs.
pub fn parse_balance_status(text: &str) -> Option<(u64, u64)> {
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = w.iter().position(|x| *x == "out")
            && i >= 1
            && w.get(i + 1) == Some(&"of")
        {
            let done = w[i - 1].parse().ok()?;
            let total = w
                .get(i + 2..)
                .and_then(|rest| rest.iter().find_map(|x| x.parse::<u64>().ok()))?;
            return Some((done, total));
        }
    }
    None
}

pub async fn balance_status(mnt: &str) -> Option<(u64, u64)> {
    check_paths([mnt]).ok()?;
    let t = btrfs()
        .args(["balance", "status", mnt])
        .ok_codes(&[0, 1])
        .run_text()
        .await
        .ok()?;
    parse_balance_status(&t)
}

/// `btrfs balance start [-dconvert=P] [-mconvert=P] [--full-balance] MNT` (foreground).
pub async fn balance(
    mnt: &str,
    data: Option<BtrfsProfile>,
    meta: Option<BtrfsProfile>,
) -> Result<(), CommandError> {
    check_paths([mnt])?;
    let mut c = btrfs().args(["balance", "start"]).timeout(LONG);
    if let Some(d) = data {
        c = c.arg(format!("-dconvert={}", d.as_str()));
    }
    if let Some(m) = meta {
        // Metadata and system chunks go together.
        c = c
            .arg(format!("-mconvert={}", m.as_str()))
            .arg(format!("-sconvert={}", m.as_str()))
            .arg("-f");
    }
    if data.is_none() && meta.is_none() {
        c = c.arg("--full-balance");
    }
    c.arg(mnt).run().await.map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// quota groups

/// One level-0 quota group (one per subvolume).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Qgroup {
    pub subvol_id: u64,
    pub referenced: u64,
    pub exclusive: u64,
    pub max_referenced: Option<u64>,
    pub max_exclusive: Option<u64>,
}

/// Parses `btrfs qgroup show -re --raw MNT` (level-0 groups only).
pub fn parse_qgroup_show(text: &str) -> Vec<Qgroup> {
    let mut out = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 5 {
            continue;
        }
        let Some(("0", id)) = w[0].split_once('/') else {
            continue;
        };
        let Ok(subvol_id) = id.parse() else { continue };
        let lim = |s: &str| s.parse::<u64>().ok();
        out.push(Qgroup {
            subvol_id,
            referenced: w[1].parse().unwrap_or(0),
            exclusive: w[2].parse().unwrap_or(0),
            max_referenced: lim(w[3]),
            max_exclusive: lim(w[4]),
        });
    }
    out
}

/// Level-0 quota groups from `/sys/fs/btrfs/<uuid>/qgroups/0_<id>/` (no process, no I/O).
/// None when quotas are off or the kernel lacks the directory.
pub fn qgroups_sysfs(sys: &Path, uuid: &str) -> Option<Vec<Qgroup>> {
    let dir = sys.join("fs/btrfs").join(uuid).join("qgroups");
    let rd = std::fs::read_dir(&dir).ok()?;
    let num = |p: &Path| -> u64 {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix("0_").and_then(|s| s.parse().ok()) else {
            continue;
        };
        let p = e.path();
        // limit_flags bit 0: max_rfer set; bit 1: max_excl set.
        let flags = num(&p.join("limit_flags"));
        out.push(Qgroup {
            subvol_id: id,
            referenced: num(&p.join("referenced")),
            exclusive: num(&p.join("exclusive")),
            max_referenced: (flags & 1 != 0).then(|| num(&p.join("max_referenced"))),
            max_exclusive: (flags & 2 != 0).then(|| num(&p.join("max_exclusive"))),
        });
    }
    Some(out)
}

/// Quota groups of the filesystem mounted at `mnt` (sysfs first, then `qgroup show`).
/// Ok(None) when quotas are off.
pub async fn qgroups(
    sys: &Path,
    uuid: &str,
    mnt: &str,
) -> Result<Option<Vec<Qgroup>>, CommandError> {
    if let Some(q) = qgroups_sysfs(sys, uuid) {
        return Ok(Some(q));
    }
    check_paths([mnt])?;
    match btrfs()
        .args(["qgroup", "show", "-re", "--raw", mnt])
        .run_text()
        .await
    {
        Ok(t) => Ok(Some(parse_qgroup_show(&t))),
        Err(CommandError::Failed { stderr, .. }) if stderr.contains("not enabled") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Quotas are on for the mounted filesystem `uuid`.
pub fn quotas_enabled(sys: &Path, uuid: &str) -> bool {
    std::fs::read_to_string(sys.join("fs/btrfs").join(uuid).join("qgroups/enabled"))
        .map(|s| s.trim() == "1")
        .unwrap_or_else(|_| sys.join("fs/btrfs").join(uuid).join("qgroups").exists())
}

pub async fn quota_enable(mnt: &str) -> Result<(), CommandError> {
    check_paths([mnt])?;
    btrfs()
        .args(["quota", "enable", mnt])
        .timeout(LONG)
        .run()
        .await
        .map(|_| ())
}

/// `btrfs qgroup limit SIZE|none 0/<subvol_id> MNT`. The quota group is named by id, with the
/// filesystem's mount point as the path: with the subvolume's own path the change runs in a
/// transaction charged to that subvolume, which fails with "Disk quota exceeded" once it is
/// over its limit, so a limit could never be raised or removed again.
pub async fn qgroup_limit(
    mnt: &str,
    subvol_id: u64,
    bytes: Option<u64>,
) -> Result<(), CommandError> {
    check_paths([mnt])?;
    let v = bytes.map_or("none".to_string(), |b| b.to_string());
    btrfs()
        .args(["qgroup", "limit", &v, &format!("0/{subvol_id}"), mnt])
        .run()
        .await
        .map(|_| ())
}

/// `btrfs quota rescan -W MNT`: waits for a running rescan (quota enable starts one; usage
/// numbers are incomplete until it ends).
pub async fn quota_rescan_wait(mnt: &str) -> Result<(), CommandError> {
    check_paths([mnt])?;
    btrfs()
        .args(["quota", "rescan", "-W", mnt])
        .timeout(LONG)
        .run()
        .await
        .map(|_| ())
}

/// `btrfs filesystem sync MNT`: commits the running transaction, so quota group numbers are
/// up to date.
pub async fn fs_sync(mnt: &str) -> Result<(), CommandError> {
    check_paths([mnt])?;
    btrfs()
        .args(["filesystem", "sync", mnt])
        .timeout(LONG)
        .run()
        .await
        .map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// subvolumes

/// The directory is the root of a btrfs subvolume (inode 256 on btrfs).
pub fn is_subvolume(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_dir() && m.ino() == 256)
        .unwrap_or(false)
}

pub async fn subvolume_create(path: &str) -> Result<(), CommandError> {
    check_paths([path])?;
    btrfs()
        .args(["subvolume", "create", path])
        .run()
        .await
        .map(|_| ())
}

pub async fn subvolume_delete(path: &str) -> Result<(), CommandError> {
    check_paths([path])?;
    btrfs()
        .args(["subvolume", "delete", path])
        .timeout(Duration::from_secs(300))
        .run()
        .await
        .map(|_| ())
}

/// `btrfs subvolume snapshot [-r] SRC DEST`.
pub async fn snapshot(src: &str, dest: &str, read_only: bool) -> Result<(), CommandError> {
    check_paths([src, dest])?;
    let mut c = btrfs().args(["subvolume", "snapshot"]);
    if read_only {
        c = c.arg("-r");
    }
    c.args([src, dest]).run().await.map(|_| ())
}

/// `btrfs property set -ts PATH ro true|false`.
pub async fn set_read_only(path: &str, ro: bool) -> Result<(), CommandError> {
    check_paths([path])?;
    btrfs()
        .args([
            "property",
            "set",
            "-ts",
            path,
            "ro",
            if ro { "true" } else { "false" },
        ])
        .run()
        .await
        .map(|_| ())
}

/// What `BTRFS_IOC_GET_SUBVOL_INFO` says about a subvolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolInfo {
    pub id: u64,
    pub read_only: bool,
    /// Creation time (seconds since the epoch).
    pub otime: i64,
    pub parent_uuid: [u8; 16],
}

#[repr(C)]
struct IoctlTimespec {
    sec: u64,
    nsec: u32,
}

/// `struct btrfs_ioctl_get_subvol_info_args` from linux/btrfs.h (504 bytes).
#[repr(C)]
struct GetSubvolInfoArgs {
    treeid: u64,
    name: [u8; 256],
    parent_id: u64,
    dirid: u64,
    generation: u64,
    flags: u64,
    uuid: [u8; 16],
    parent_uuid: [u8; 16],
    received_uuid: [u8; 16],
    ctransid: u64,
    otransid: u64,
    stransid: u64,
    rtransid: u64,
    ctime: IoctlTimespec,
    otime: IoctlTimespec,
    stime: IoctlTimespec,
    rtime: IoctlTimespec,
    reserved: [u64; 8],
}

/// `BTRFS_ROOT_SUBVOL_RDONLY`: GET_SUBVOL_INFO reports the root item's flags (bit 0), not the
/// SUBVOL_GETFLAGS bits (where read-only is bit 1).
const BTRFS_ROOT_SUBVOL_RDONLY: u64 = 1 << 0;

const fn ior(ty: u64, nr: u64, size: u64) -> u64 {
    (2 << 30) | (size << 16) | (ty << 8) | nr
}

/// Subvolume id, read-only flag and creation time, by ioctl (unprivileged, no process).
pub fn subvol_info(path: &Path) -> io::Result<SubvolInfo> {
    use std::os::fd::AsRawFd;
    const _: () = assert!(std::mem::size_of::<GetSubvolInfoArgs>() == 504);
    let f = std::fs::File::open(path)?;
    // SAFETY: plain-data struct; all-zero is valid.
    let mut args: GetSubvolInfoArgs = unsafe { std::mem::zeroed() };
    let req = ior(0x94, 60, std::mem::size_of::<GetSubvolInfoArgs>() as u64);
    // SAFETY: the fd is open for the duration of the call; `args` is a valid, correctly
    // sized out buffer for this request.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), req as _, &mut args as *mut GetSubvolInfoArgs) };
    // Some kernels return a positive leftover of an internal search with the data filled in:
    // only -1 is an error.
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(SubvolInfo {
        id: args.treeid,
        read_only: args.flags & BTRFS_ROOT_SUBVOL_RDONLY != 0,
        otime: args.otime.sec as i64,
        parent_uuid: args.parent_uuid,
    })
}

/// Atomically swaps two paths on one filesystem (`renameat2(RENAME_EXCHANGE)`).
pub fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    let ca = crate::disks::cpath(a)?;
    let cb = crate::disks::cpath(b)?;
    // SAFETY: valid NUL-terminated paths; AT_FDCWD with absolute or cwd-relative paths.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// filesystem lifecycle

/// `mkfs.btrfs -f -L LABEL -d DATA -m META DEV...`.
pub async fn mkfs(
    devices: &[String],
    label: &str,
    data: BtrfsProfile,
    meta: BtrfsProfile,
) -> Result<(), CommandError> {
    check_paths(devices.iter().map(String::as_str))?;
    check_paths([label])?;
    Cmd::new("mkfs.btrfs")
        .args([
            "-f",
            "-q",
            "-L",
            label,
            "-d",
            data.as_str(),
            "-m",
            meta.as_str(),
        ])
        .args(devices)
        .timeout(Duration::from_secs(300))
        .run()
        .await
        .map(|_| ())
}

/// `btrfs device add -f DEV MNT`.
pub async fn device_add(dev: &str, mnt: &str) -> Result<(), CommandError> {
    check_paths([dev, mnt])?;
    btrfs()
        .args(["device", "add", "-f", dev, mnt])
        .timeout(Duration::from_secs(300))
        .run()
        .await
        .map(|_| ())
}

/// `btrfs device remove DEV|DEVID|missing MNT` (relocates the device's data first).
pub async fn device_remove(dev: &str, mnt: &str) -> Result<(), CommandError> {
    check_paths([dev, mnt])?;
    btrfs()
        .args(["device", "remove", dev, mnt])
        .timeout(LONG)
        .run()
        .await
        .map(|_| ())
}

/// `btrfs replace start -B -f OLD(DEV|DEVID) NEW MNT`.
pub async fn replace(old: &str, new: &str, mnt: &str) -> Result<(), CommandError> {
    check_paths([old, new, mnt])?;
    btrfs()
        .args(["replace", "start", "-B", "-f", old, new, mnt])
        .timeout(LONG)
        .run()
        .await
        .map(|_| ())
}

/// `btrfs filesystem resize DEVID:max MNT`: grow onto a larger replacement.
pub async fn resize_max(devid: u64, mnt: &str) -> Result<(), CommandError> {
    check_paths([mnt])?;
    btrfs()
        .args(["filesystem", "resize", &format!("{devid}:max"), mnt])
        .run()
        .await
        .map(|_| ())
}

/// `btrfs device scan DEV...` so the kernel knows every member before a mount.
pub async fn device_scan(devices: &[String]) -> Result<(), CommandError> {
    check_paths(devices.iter().map(String::as_str))?;
    btrfs()
        .args(["device", "scan"])
        .args(devices)
        .run()
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded here: `btrfs filesystem show --raw MNT` (raid1 on two loops).
    const SHOW: &str = "Label: 'tank'  uuid: 0cea9cc3-59ab-4a2f-a50d-1036365bb75e\n\tTotal devices 2 FS bytes used 147456\n\tdevid    1 size 268435456 used 109051904 path /dev/loop0\n\tdevid    2 size 268435456 used 109051904 path /dev/loop1\n\n";

    #[test]
    fn fi_show_recorded() {
        let v = parse_fi_show(SHOW);
        assert_eq!(v.len(), 1);
        let fs = &v[0];
        assert_eq!(fs.label.as_deref(), Some("tank"));
        assert_eq!(fs.uuid, "0cea9cc3-59ab-4a2f-a50d-1036365bb75e");
        assert_eq!(fs.total_devices, 2);
        assert!(!fs.some_missing);
        assert_eq!(
            fs.devices[1],
            ShowDevice {
                devid: 2,
                size: 268435456,
                used: 109051904,
                path: Some("/dev/loop1".into())
            }
        );
    }

    #[test]
    fn fi_show_missing_device() {
        let text = "Label: none  uuid: 1111\n\tTotal devices 2 FS bytes used 1\n\tdevid    1 size 268435456 used 1 path /dev/loop0\n\t*** Some devices missing\n";
        let fs = &parse_fi_show(text)[0];
        assert_eq!(fs.label, None);
        assert!(fs.some_missing);
        assert_eq!(fs.devices.len(), 1);
        let text = "Label: 'x'  uuid: 2222\n\tTotal devices 2 FS bytes used 1\n\tdevid    1 size 1 used 1 path /dev/loop0\n\tdevid    2 size 0 used 0 path <missing disk> MISSING\n";
        let fs = &parse_fi_show(text)[0];
        assert!(fs.some_missing);
        assert_eq!(fs.devices[1].path, None);
    }

    #[test]
    fn df_json_recorded() {
        let json = r#"{"__header":{"version":"1"},"filesystem-df":[{"bg-type":"Data","bg-profile":"RAID1","total":"67108864","used":"0"},{"bg-type":"System","bg-profile":"RAID1","total":"8388608","used":"16384"},{"bg-type":"Metadata","bg-profile":"RAID1","total":"33554432","used":"131072"},{"bg-type":"GlobalReserve","bg-profile":"single","total":"5767168","used":"0"}]}"#;
        assert_eq!(
            parse_df_profiles(json).unwrap(),
            (Some(BtrfsProfile::Raid1), Some(BtrfsProfile::Raid1))
        );
    }

    #[test]
    fn device_stats_recorded() {
        let json = r#"{"__header":{"version":"1"},"device-stats":[{"device":"/dev/loop0","devid":"1","write_io_errs":"0","read_io_errs":"0","flush_io_errs":"0","corruption_errs":"2032","generation_errs":"0"},{"device":"/dev/loop1","devid":"2","write_io_errs":"0","read_io_errs":"0","flush_io_errs":"0","corruption_errs":"0","generation_errs":"0"}]}"#;
        let v = parse_device_stats(json).unwrap();
        assert_eq!(v[0].devid, 1);
        assert_eq!(v[0].errors.corruption, 2032);
        assert_eq!(v[0].errors.total(), 2032);
        assert_eq!(v[1].device, "/dev/loop1");
    }

    /// Recorded here after overwriting 8 MiB of one raid1 member's image.
    #[test]
    fn scrub_status_recorded() {
        let text = "UUID:             0cea9cc3-59ab-4a2f-a50d-1036365bb75e\nScrub started:    Tue Nov 24 09:25:10 2026\nStatus:           finished\nDuration:         0:00:00\n\tdata_extents_scrubbed: 960\n\ttree_extents_scrubbed: 28\n\tdata_bytes_scrubbed: 62914560\n\ttree_bytes_scrubbed: 458752\n\tread_errors: 0\n\tcsum_errors: 2032\n\tverify_errors: 0\n\tno_csum: 0\n\tcsum_discards: 0\n\tsuper_errors: 0\n\tmalloc_errors: 0\n\tuncorrectable_errors: 0\n\tunverified_errors: 0\n\tcorrected_errors: 2032\n\tlast_physical: 110166016\n";
        let st = parse_scrub_status(text);
        assert_eq!(st.status, "finished");
        let r = st.result();
        assert_eq!(r.csum_errors, 2032);
        assert_eq!(r.errors_found, 2032);
        assert_eq!(r.corrected_errors, 2032);
        assert_eq!(r.uncorrectable_errors, 0);
        assert_eq!(r.data_bytes_scrubbed, 62914560);
        assert_eq!(parse_duration("1:02:03"), 3723);
        assert_eq!(
            parse_scrub_status("UUID: x\n\tno stats available\n").status,
            "none"
        );
    }

    /// Recorded here: `btrfs qgroup show -re --raw MNT` after `qgroup limit 100000000 MNT/data`.
    #[test]
    fn qgroup_show_recorded() {
        let text = "Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path \n--------    ----------    ---------  --------------  -------------   ---- \n0/5              16384        16384            none           none   <toplevel>\n0/256         31473664        16384       100000000           none   data\n0/257         31473664        16384            none           none   .snapshots/data/s1\n";
        let q = parse_qgroup_show(text);
        assert_eq!(q.len(), 3);
        assert_eq!(
            q[1],
            Qgroup {
                subvol_id: 256,
                referenced: 31473664,
                exclusive: 16384,
                max_referenced: Some(100000000),
                max_exclusive: None
            }
        );
    }

    #[test]
    fn balance_status_forms() {
        assert_eq!(
            parse_balance_status(
                "Balance on 'mnt' is running\n2 out of about 3 chunks balanced (3 considered),  33% left\n"
            ),
            Some((2, 3))
        );
        assert_eq!(parse_balance_status("No balance found on 'mnt'\n"), None);
    }

    #[test]
    fn ioctl_number() {
        // BTRFS_IOC_GET_SUBVOL_INFO as the C headers compute it.
        assert_eq!(ior(0x94, 60, 504), 0x81f8_943c);
    }
}
