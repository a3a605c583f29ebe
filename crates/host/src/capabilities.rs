//! Capability probe: what this host has (kernel, init, cgroups, KVM, the tools each area
//! needs), for `GET /system/capabilities`, and [`disk_free`] for the self-test.
//!
//! [`probe`] is called per request, so it must stay fast: it reads a few procfs/sysfs files and
//! stats tool paths, and runs no programs on the warm path. Tool versions come from a
//! process-wide cache keyed by the binary's path and (device, inode, size, mtime); a program
//! runs its version command (2 s timeout, concurrently with the others) only the first time a
//! given binary is seen, so an upgrade is noticed on the next probe. CPU flags are read from
//! `/proc/cpuinfo` once per process (they cannot change while running, and reading cpuinfo is
//! slow on large hosts); everything else is read live.
//!
//! KVM is not trusted on `/dev/kvm` alone: a nested PVM host has the device but no `vmx`/`svm`,
//! and ordinary guests crawl there. See [`kvm_decision`].

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use hostplane_types::system::{Capabilities, Tool, Virtualization};

use crate::command::{Cmd, which};

/// One external program hostplane relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolSpec {
    /// Program name as looked up with [`which`].
    pub name: &'static str,
    /// The area that needs it: `disks`, `pools`, `shares`, `containers`, `vms`, `network`,
    /// `services` or `system`.
    pub area: &'static str,
    /// Arguments that print the version; empty when the tool has no such option.
    pub version_args: &'static [&'static str],
}

const fn tool(
    name: &'static str,
    area: &'static str,
    version_args: &'static [&'static str],
) -> ToolSpec {
    ToolSpec {
        name,
        area,
        version_args,
    }
}

/// Every external program the areas use, in report order.
pub const TOOLS: &[ToolSpec] = &[
    tool("lsblk", "disks", &["--version"]),
    tool("blkid", "disks", &["-V"]),
    tool("wipefs", "disks", &["--version"]),
    tool("sgdisk", "disks", &["--version"]),
    tool("parted", "disks", &["--version"]),
    tool("smartctl", "disks", &["--version"]),
    tool("hdparm", "disks", &["-V"]),
    tool("mkfs.ext4", "pools", &["-V"]),
    tool("mkfs.xfs", "pools", &["-V"]),
    tool("mkfs.btrfs", "pools", &["--version"]),
    tool("btrfs", "pools", &["--version"]),
    tool("mergerfs", "pools", &["--version"]),
    tool("snapraid", "pools", &["--version"]),
    tool("zpool", "pools", &["version"]),
    tool("zfs", "pools", &["version"]),
    tool("smbd", "shares", &["--version"]),
    tool("testparm", "shares", &["--version"]),
    tool("smbclient", "shares", &["--version"]),
    tool("smbstatus", "shares", &["--version"]),
    tool("ganesha.nfsd", "shares", &["-v"]),
    // exportfs (nfs-utils) has no version option; `-v` lists exports instead.
    tool("exportfs", "shares", &[]),
    tool("dockerd", "containers", &["--version"]),
    tool("podman", "containers", &["--version"]),
    tool("lxc-start", "containers", &["--version"]),
    tool("qemu-system-x86_64", "vms", &["--version"]),
    tool("qemu-img", "vms", &["--version"]),
    tool("ip", "network", &["-V"]),
    tool("nft", "network", &["--version"]),
    tool("dnsmasq", "network", &["--version"]),
    tool("systemctl", "services", &["--version"]),
    tool("systemd-nspawn", "services", &["--version"]),
    tool("tar", "system", &["--version"]),
    tool("zstd", "system", &["--version"]),
];

/// Timeout of one version command.
const VERSION_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest version string kept.
const VERSION_MAX_CHARS: usize = 200;
/// `statfs` magic of cgroup2 (`CGROUP2_SUPER_MAGIC`).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Probe the host. Fast after the first call (no programs run unless a tool binary changed).
pub async fn probe() -> Capabilities {
    let uts = uname();
    let os = read_os_release();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let init = init_system();
    let cgroup = cgroup_mode(
        fs_magic(Path::new("/sys/fs/cgroup")),
        fs_magic(Path::new("/sys/fs/cgroup/unified")),
    )
    .to_string();
    let virtualization = kvm_decision(
        Path::new("/dev/kvm").exists(),
        cpuinfo(),
        Path::new("/sys/module/kvm_pvm").exists(),
    );

    let found: Vec<(ToolSpec, Option<(PathBuf, Stamp)>)> = TOOLS
        .iter()
        .map(|spec| {
            let located = which(spec.name).and_then(|p| Stamp::of(&p).map(|s| (p, s)));
            (*spec, located)
        })
        .collect();
    let versions = versions_for(&found).await;

    let tools = found
        .into_iter()
        .map(|(spec, located)| {
            let version = located
                .as_ref()
                .and_then(|(path, _)| versions.get(path).cloned().flatten());
            Tool {
                name: spec.name.to_string(),
                area: spec.area.to_string(),
                found: located.is_some(),
                path: located.map(|(p, _)| p.to_string_lossy().into_owned()),
                version,
            }
        })
        .collect();

    Capabilities {
        hostname: uts.nodename,
        kernel: uts.release,
        arch: uts.machine,
        os,
        is_root,
        init,
        cgroup,
        virtualization,
        tools,
        probed_at: now_rfc3339(),
        // Settings, not probed: the daemon fills them in.
        host_actions: Default::default(),
    }
}

/// Forget cached tool versions: the next [`probe`] runs every version command again.
pub fn forget_versions() {
    version_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

/// Decide whether KVM is usable from `/dev/kvm` presence, the text of `/proc/cpuinfo` and
/// whether the PVM module is loaded. Usable = device && (`vmx` || `svm`) && !PVM.
pub fn kvm_decision(device: bool, cpuinfo: &str, pvm: bool) -> Virtualization {
    let flags = virt_flags(cpuinfo);
    let has_hw = !flags.is_empty();
    let kvm_usable = device && has_hw && !pvm;
    let hw = if has_hw {
        format!("the CPU has {}", flags.join(" and "))
    } else {
        "the CPU reports neither vmx nor svm in /proc/cpuinfo".to_string()
    };
    let reason = if kvm_usable {
        format!("/dev/kvm exists, {hw} and KVM is not PVM: KVM acceleration is usable")
    } else if !device {
        format!("/dev/kvm does not exist ({hw}): VMs must use TCG (software emulation)")
    } else if pvm {
        format!(
            "/dev/kvm is PVM (pagetable-based nested KVM, /sys/module/kvm_pvm is loaded) and \
             {hw}: only PVM-aware guest kernels run at speed, so VMs must use TCG"
        )
    } else {
        format!("/dev/kvm exists but {hw}: KVM is not trusted, VMs must use TCG")
    };
    Virtualization {
        kvm_device: device,
        cpu_flags: flags.into_iter().map(str::to_string).collect(),
        pvm,
        kvm_usable,
        reason,
    }
}

/// The hardware virtualization flags (`vmx`, `svm`) that every `flags` line of `cpuinfo`
/// lists as a whole word. Other lines (`vmx flags`, `bugs`) are ignored. Empty when there is no
/// `flags` line (non-x86).
pub fn virt_flags(cpuinfo: &str) -> Vec<&'static str> {
    let mut lines = cpuinfo.lines().filter_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "flags").then_some(value)
    });
    let Some(first) = lines.next() else {
        return Vec::new();
    };
    let mut present: Vec<&'static str> = ["vmx", "svm"]
        .into_iter()
        .filter(|f| first.split_whitespace().any(|w| w == *f))
        .collect();
    for line in lines {
        present.retain(|f| line.split_whitespace().any(|w| w == *f));
    }
    present
}

/// cgroup layout from the filesystem magic of `/sys/fs/cgroup` and `/sys/fs/cgroup/unified`
/// (`None` = not mounted / unreadable): `v2`, `hybrid`, `v1` or `none`.
pub fn cgroup_mode(root: Option<i64>, unified: Option<i64>) -> &'static str {
    match (root, unified) {
        (Some(CGROUP2_SUPER_MAGIC), _) => "v2",
        (_, Some(CGROUP2_SUPER_MAGIC)) => "hybrid",
        (Some(_), _) => "v1",
        (None, _) => "none",
    }
}

/// `PRETTY_NAME` from the text of an os-release file (quotes and backslash escapes removed).
pub fn os_pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .filter_map(|l| l.trim().strip_prefix("PRETTY_NAME="))
        .next_back()?
        .trim();
    let unquoted = match value.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) if value.len() >= 2 && value.as_bytes()[value.len() - 1] == q => {
            &value[1..value.len() - 1]
        }
        _ => value,
    };
    let mut out = String::with_capacity(unquoted.len());
    let mut chars = unquoted.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Total and available bytes of the filesystem holding `path` (`statvfs`; "available" is what
/// an unprivileged user may still write, as `df` reports).
pub fn disk_free(path: impl AsRef<Path>) -> io::Result<(u64, u64)> {
    let c = std::ffi::CString::new(path.as_ref().as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: statvfs is plain data; all-zero is a valid value and the call fills it in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    let (frsize, blocks, avail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    Ok((blocks.saturating_mul(frsize), avail.saturating_mul(frsize)))
}

// ---- probe internals ----

struct Uname {
    nodename: String,
    release: String,
    machine: String,
}

fn uname() -> Uname {
    // SAFETY: utsname is plain data; all-zero is valid and uname fills it in.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid out pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Uname {
            nodename: String::new(),
            release: String::new(),
            machine: std::env::consts::ARCH.to_string(),
        };
    }
    let field = |f: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates each field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Uname {
        nodename: field(&u.nodename),
        release: field(&u.release),
        machine: field(&u.machine),
    }
}

fn read_os_release() -> Option<String> {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| os_pretty_name(&text))
}

fn init_system() -> String {
    let comm = std::fs::read_to_string("/proc/1/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if comm.is_empty() {
        "unknown".to_string()
    } else if comm == "systemd" && Path::new("/run/systemd/system").is_dir() {
        "systemd".to_string()
    } else {
        comm
    }
}

fn fs_magic(path: &Path) -> Option<i64> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs is plain data; all-zero is valid and the call fills it in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` a valid out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // f_type is i64 on x86_64, u32/i32 elsewhere
    Some(st.f_type as i64)
}

/// `/proc/cpuinfo`, read once per process.
fn cpuinfo() -> &'static str {
    static CPUINFO: OnceLock<String> = OnceLock::new();
    CPUINFO.get_or_init(|| std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    // Millisecond precision is plenty and keeps the string short.
    now.replace_millisecond(now.millisecond())
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Identity of a binary on disk: a package upgrade changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }
}

type VersionCache = Mutex<HashMap<PathBuf, (Stamp, Option<String>)>>;

fn version_cache() -> &'static VersionCache {
    static CACHE: OnceLock<VersionCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Serializes cache fills so that concurrent cold probes run each version command once.
static FILL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Versions of the found tools, from the cache, running version commands for misses.
async fn versions_for(
    found: &[(ToolSpec, Option<(PathBuf, Stamp)>)],
) -> HashMap<PathBuf, Option<String>> {
    let wanted: Vec<(&'static [&'static str], &PathBuf, Stamp)> = found
        .iter()
        .filter_map(|(spec, located)| {
            let (path, stamp) = located.as_ref()?;
            Some((spec.version_args, path, *stamp))
        })
        .collect();

    let lookup = |out: &mut HashMap<PathBuf, Option<String>>| {
        let cache = version_cache().lock().unwrap_or_else(|p| p.into_inner());
        let mut misses = Vec::new();
        for &(args, path, stamp) in &wanted {
            match cache.get(path) {
                Some((s, v)) if *s == stamp => {
                    out.insert(path.clone(), v.clone());
                }
                _ => misses.push((args, path.clone(), stamp)),
            }
        }
        misses
    };

    let mut out = HashMap::new();
    if lookup(&mut out).is_empty() {
        return out;
    }
    let _fill = FILL.lock().await;
    // Another probe may have filled the cache while we waited.
    let misses = lookup(&mut out);
    let mut set = tokio::task::JoinSet::new();
    for (args, path, stamp) in misses {
        set.spawn(async move {
            let version = tool_version(&path, args).await;
            (path, stamp, version)
        });
    }
    let mut fresh = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(entry) = joined {
            fresh.push(entry);
        }
    }
    let mut cache = version_cache().lock().unwrap_or_else(|p| p.into_inner());
    for (path, stamp, version) in fresh {
        out.insert(path.clone(), version.clone());
        cache.insert(path, (stamp, version));
    }
    out
}

/// First non-empty line of the version command's stdout (or stderr, where e.g. `mke2fs -V`
/// writes it). `None` on any failure.
async fn tool_version(path: &Path, args: &[&str]) -> Option<String> {
    if args.is_empty() {
        return None;
    }
    let program = path.to_str()?;
    let out = Cmd::new(program)
        .args(args)
        .timeout(VERSION_TIMEOUT)
        .max_stdout(64 * 1024)
        .run()
        .await
        .ok()?;
    // Collapse blanks and drop decorations such as zstd's `*** Zstandard CLI … ***`.
    let first_line = |text: &str| {
        text.lines()
            .map(|l| l.trim_matches(|c: char| c == '*' || c.is_whitespace()))
            .find(|l| !l.is_empty())
            .map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.join(" ").chars().take(VERSION_MAX_CHARS).collect()
            })
    };
    first_line(&out.stdout_lossy()).or_else(|| first_line(&out.stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/cpuinfo` of the development VM (first CPU): Firecracker on AMD EPYC with nested
    /// PVM: `/dev/kvm` exists, `/sys/module/kvm_pvm` exists, no `svm` flag.
    const PVM_HOST: &str = include_str!("../tests/fixtures/cpuinfo-pvm-amd-epyc.txt");

    /// Intel host with VT-x (abridged; note the separate `vmx flags` line).
    const VMX_HOST: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) \
        Xeon(R) Gold 6230 CPU @ 2.10GHz\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep \
        mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx \
        pdpe1gb rdtscp lm constant_tsc pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 \
        ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx \
        f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cdp_l3 invpcid_single \
        ssbd mba ibrs ibpb stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad \
        avx512f avx512dq\nvmx flags\t: vnmi preemption_timer posted_intr invvpid ept_x_only \
        ept_ad ept_1gb flexpriority apicv tsc_offset vtpr mtf vapic ept vpid \
        unrestricted_guest vapic_reg vid ple pml\nbugs\t\t: spectre_v1 spectre_v2\n\n\
        processor\t: 1\nflags\t\t: fpu vme vmx smx est\n";

    /// AMD host with AMD-V (abridged; `svm_lock` must not be mistaken for `svm`).
    const SVM_HOST: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD Ryzen \
        9 5950X 16-Core Processor\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr \
        pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb \
        rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid aperfmperf rapl pni \
        pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand \
        lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs \
        skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb cat_l3 \
        cdp_l3 hw_pstate ssbd mba ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 erms \
        invpcid cqm rdt_a rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves \
        cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local clzero irperf xsaveerptr rdpru \
        wbnoinvd arat npt lbrv svm_lock nrip_save tsc_scale vmcb_clean flushbyasid \
        decodeassists pausefilter pfthreshold avic v_vmsave_vmload vgif v_spec_ctrl umip pku \
        ospke vaes vpclmulqdq rdpid overflow_recov succor smca fsrm\nbugs\t\t: sysret_ss_attrs \
        spectre_v1 spectre_v2 spec_store_bypass srso\n";

    #[test]
    fn pvm_host_is_not_usable() {
        let v = kvm_decision(true, PVM_HOST, true);
        assert!(v.kvm_device && v.pvm);
        assert!(v.cpu_flags.is_empty(), "{:?}", v.cpu_flags);
        assert!(!v.kvm_usable);
        assert!(v.reason.contains("PVM"), "{}", v.reason);
        assert!(v.reason.contains("neither vmx nor svm"), "{}", v.reason);
        assert!(v.reason.contains("TCG"), "{}", v.reason);
    }

    #[test]
    fn pvm_fixture_is_real_cpuinfo() {
        assert!(PVM_HOST.contains("AuthenticAMD"));
        // `vmmcall` and the `hypervisor` flag are present; `svm` as a word is not.
        assert!(PVM_HOST.contains("vmmcall") && PVM_HOST.contains(" hypervisor "));
        assert!(virt_flags(PVM_HOST).is_empty());
    }

    #[test]
    fn vmx_host_is_usable() {
        let v = kvm_decision(true, VMX_HOST, false);
        assert_eq!(v.cpu_flags, ["vmx"]);
        assert!(v.kvm_usable && v.kvm_device && !v.pvm);
        assert!(
            v.reason.contains("usable") && v.reason.contains("vmx"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn svm_host_is_usable() {
        let v = kvm_decision(true, SVM_HOST, false);
        assert_eq!(v.cpu_flags, ["svm"]);
        assert!(v.kvm_usable);
    }

    #[test]
    fn flags_needed_on_every_cpu() {
        let mixed = "flags\t: fpu vmx\n\nflags\t: fpu\n";
        assert!(virt_flags(mixed).is_empty());
        assert!(!kvm_decision(true, mixed, false).kvm_usable);
        // Only the `flags` key counts, not `vmx flags` or `bugs`.
        assert!(virt_flags("vmx flags\t: vmx svm\nbugs\t: svm\n").is_empty());
        assert!(virt_flags("").is_empty());
    }

    #[test]
    fn no_device() {
        let v = kvm_decision(false, VMX_HOST, false);
        assert!(!v.kvm_usable && !v.kvm_device);
        assert_eq!(v.cpu_flags, ["vmx"]);
        assert!(v.reason.contains("/dev/kvm does not exist"), "{}", v.reason);
    }

    #[test]
    fn device_without_cpu_flags() {
        let v = kvm_decision(true, "flags\t: fpu sse\n", false);
        assert!(!v.kvm_usable && !v.pvm);
        assert!(v.reason.contains("not trusted"), "{}", v.reason);
    }

    #[test]
    fn pvm_wins_even_with_flags() {
        let v = kvm_decision(true, SVM_HOST, true);
        assert!(!v.kvm_usable);
        assert!(v.reason.contains("PVM"));
    }

    #[test]
    fn cgroup_modes() {
        const TMPFS: i64 = 0x0102_1994;
        assert_eq!(cgroup_mode(Some(CGROUP2_SUPER_MAGIC), None), "v2");
        assert_eq!(
            cgroup_mode(Some(TMPFS), Some(CGROUP2_SUPER_MAGIC)),
            "hybrid"
        );
        assert_eq!(cgroup_mode(Some(TMPFS), None), "v1");
        assert_eq!(cgroup_mode(None, None), "none");
    }

    #[test]
    fn os_release_parsing() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                      VERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(
            os_pretty_name(debian).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            os_pretty_name("PRETTY_NAME='Alpine Linux v3.20'").as_deref(),
            Some("Alpine Linux v3.20")
        );
        assert_eq!(
            os_pretty_name("PRETTY_NAME=Arch\\ Linux").as_deref(),
            Some("Arch Linux")
        );
        assert_eq!(os_pretty_name("NAME=x\n"), None);
        assert_eq!(os_pretty_name("PRETTY_NAME=\"\"\n"), None);
    }

    #[test]
    fn tool_table_is_sane() {
        let areas = [
            "disks",
            "pools",
            "shares",
            "containers",
            "vms",
            "network",
            "services",
            "system",
        ];
        let mut names: Vec<_> = TOOLS.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), 33);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len(), "duplicate tool");
        for t in TOOLS {
            assert!(areas.contains(&t.area), "{}: {}", t.name, t.area);
        }
    }
}
