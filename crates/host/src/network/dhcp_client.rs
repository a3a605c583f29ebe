//! The runtime DHCP client of the management interface (host settings `mode: dhcp`): busybox
//! `udhcpc` in the foreground, supervised by the daemon, with hostplane's own binary as its
//! event script, so no shell script is ever run.
//!
//! Flow: the daemon ([`Files::prepare`]) links `DIR/hostplane-udhcpc-hook` to its own
//! executable and spawns [`command`]: `busybox udhcpc -f -i IF -s DIR/hostplane-udhcpc-hook -p
//! DIR/udhcpc.pid …` with `HOSTPLANE_UDHCPC_DIR=DIR` in its environment. udhcpc runs the hook
//! as `HOOK EVENT` with the lease in its environment (`ip`, `mask`/`subnet`, `router`, `dns`,
//! `lease`, `serverid`); `main` sees the program name [`HOOK_NAME`] and calls [`hook`], which
//! applies the event over netlink (`bound`/`renew`: the leased address as the interface's only
//! IPv4 address and the default route via the first router; `deconfig`: the IPv4 addresses
//! removed) and records it in `DIR/lease.json` (atomically) for the daemon to show.
//!
//! Stopping the client (SIGKILL of its process group) leaves the address in place (no `-R`):
//! a rollback puts the prior configuration back itself, a shutdown keeps the lease's address.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Netlink;
use crate::command::Cmd;

/// The file name of the hook link: `main` runs [`hook`] when started under this name.
pub const HOOK_NAME: &str = "hostplane-udhcpc-hook";
/// The environment variable naming the client's directory (where `lease.json` goes).
pub const DIR_ENV: &str = "HOSTPLANE_UDHCPC_DIR";

/// The client's files, under one directory of the daemon's data dir.
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
}

impl Files {
    pub fn hook(&self) -> PathBuf {
        self.dir.join(HOOK_NAME)
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("udhcpc.pid")
    }
    pub fn lease_file(&self) -> PathBuf {
        self.dir.join("lease.json")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("udhcpc.log")
    }

    /// Creates the directory, points the hook link at `exe` (the daemon's own binary) and
    /// drops the lease of an earlier client.
    pub fn prepare(&self, exe: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let hook = self.hook();
        let tmp = self.dir.join(format!(".{HOOK_NAME}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(exe, &tmp)?;
        std::fs::rename(&tmp, &hook)?;
        match std::fs::remove_file(self.lease_file()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The last event the hook recorded, if any.
    pub fn lease(&self) -> Option<Lease> {
        serde_json::from_slice(&std::fs::read(self.lease_file()).ok()?).ok()
    }
}

/// `busybox udhcpc` for `interface`: foreground, 3 discovers 2 s apart, then a 3 s pause and
/// again (it never gives up: `-n` is not given), the host name sent when set.
pub fn command(files: &Files, interface: &str, hostname: Option<&str>) -> Cmd {
    let mut c = Cmd::new("busybox")
        .args(["udhcpc", "-f", "-i", interface, "-s"])
        .arg(files.hook())
        .arg("-p")
        .arg(files.pid_file())
        .args(["-t", "3", "-T", "2", "-A", "3"])
        .env(DIR_ENV, &files.dir);
    if let Some(h) = hostname {
        c = c.arg("-x").arg(format!("hostname:{h}"));
    }
    c
}

/// What the hook recorded for one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// `bound`, `renew`, `deconfig`, `leasefail`, `nak`.
    pub event: String,
    pub interface: String,
    /// CIDR, for `bound`/`renew`.
    pub address: Option<String>,
    pub router: Option<String>,
    pub dns: Vec<String>,
    pub lease_s: Option<u32>,
    pub server: Option<String>,
    pub at_unix: u64,
}

/// The prefix length of a dotted netmask (None when its ones are not contiguous).
pub fn prefix_of_mask(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// The address, prefix and first router of a `bound`/`renew` environment.
fn lease_of(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(Ipv4Addr, u8, Option<Ipv4Addr>), String> {
    let ip: Ipv4Addr = var("ip")
        .ok_or("no ip in the environment")?
        .parse()
        .map_err(|_| "ip is not an IPv4 address")?;
    let len = match var("mask").and_then(|m| m.parse::<u8>().ok()) {
        Some(l) if l <= 32 => l,
        _ => var("subnet")
            .and_then(|s| s.parse().ok())
            .and_then(prefix_of_mask)
            .ok_or("no usable mask or subnet")?,
    };
    let router = var("router")
        .and_then(|r| r.split_whitespace().next().map(str::to_string))
        .and_then(|r| r.parse().ok());
    Ok((ip, len, router))
}

/// Builds the record of `event` from the environment `var`.
pub fn record(event: &str, var: &dyn Fn(&str) -> Option<String>) -> Lease {
    let bound = matches!(event, "bound" | "renew");
    let lease = bound.then(|| lease_of(var).ok()).flatten();
    Lease {
        event: event.to_string(),
        interface: var("interface").unwrap_or_default(),
        address: lease.map(|(a, l, _)| format!("{a}/{l}")),
        router: lease.and_then(|(_, _, r)| r).map(|r| r.to_string()),
        dns: var("dns")
            .map(|d| d.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        lease_s: var("lease").and_then(|l| l.parse().ok()),
        server: var("serverid"),
        at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// The hook: applies `event` (udhcpc's first argument) from the process environment and
/// records it. Runs in the process udhcpc started (the daemon's namespace).
pub async fn hook(event: &str) -> Result<(), String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let dir = var(DIR_ENV).ok_or(format!("{DIR_ENV} is not set"))?;
    let interface = var("interface").ok_or("no interface in the environment")?;
    crate::command::validate_name("interface", &interface).map_err(|e| e.to_string())?;
    let nl = Netlink::open().map_err(|e| e.to_string())?;
    match event {
        "deconfig" => {
            nl.set_up(&interface, true)
                .await
                .map_err(|e| e.to_string())?;
            nl.clear_ipv4(&interface).await.map_err(|e| e.to_string())?;
        }
        "bound" | "renew" => {
            let (ip, len, router) = lease_of(&var)?;
            nl.apply_lease(&interface, ip, len, router)
                .await
                .map_err(|e| format!("{interface}: {e}"))?;
        }
        // leasefail, nak: nothing to change; recorded below.
        _ => {}
    }
    let rec = record(event, &var);
    let json = serde_json::to_vec_pretty(&rec).map_err(|e| e.to_string())?;
    crate::fsutil::write_atomic(&Path::new(&dir).join("lease.json"), &json, 0o644)
        .map_err(|e| format!("{dir}/lease.json: {e}"))
}

/// Whether `argv0` names the hook (`main` dispatches on it).
pub fn is_hook(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0).file_name() == Some(std::ffi::OsStr::new(HOOK_NAME))
}

/// `main` of the hook: a small runtime, [`hook`], errors to stderr (udhcpc's log). Always 0:
/// udhcpc ignores the script's status anyway.
pub fn hook_main(event: &str) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{HOOK_NAME}: {e}");
            return 0;
        }
    };
    if let Err(e) = rt.block_on(hook(event)) {
        eprintln!("{HOOK_NAME} {event}: {e}");
    }
    0
}

/// A udhcpc of ours left by a daemon that died (its pid file names it, its command line our
/// hook): killed before a new client starts or a rollback puts the prior address back.
pub fn kill_stale(files: &Files) {
    let Some(pid) = std::fs::read_to_string(files.pid_file())
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let hook = files.hook();
    let ours = cmdline
        .split(|b| *b == 0)
        .any(|a| a == hook.as_os_str().as_encoded_bytes());
    if ours {
        crate::qemu::process::signal(pid, libc::SIGKILL);
        for _ in 0..50 {
            if !crate::qemu::process::is_alive(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_file(files.pid_file());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(prefix_of_mask(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_of_mask(Ipv4Addr::new(255, 255, 0, 0)), Some(16));
        assert_eq!(prefix_of_mask(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(prefix_of_mask(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(prefix_of_mask(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn records_a_bound_event() {
        let env = |k: &str| -> Option<String> {
            match k {
                "interface" => Some("eth0".into()),
                "ip" => Some("10.0.0.150".into()),
                "subnet" => Some("255.255.255.0".into()),
                "router" => Some("10.0.0.1 10.0.0.2".into()),
                "dns" => Some("10.0.0.53 10.0.0.54".into()),
                "lease" => Some("3600".into()),
                "serverid" => Some("10.0.0.1".into()),
                _ => None,
            }
        };
        let r = record("bound", &env);
        assert_eq!(r.address.as_deref(), Some("10.0.0.150/24"));
        assert_eq!(r.router.as_deref(), Some("10.0.0.1"));
        assert_eq!(r.dns, ["10.0.0.53", "10.0.0.54"]);
        assert_eq!(r.lease_s, Some(3600));
        let r = record("leasefail", &env);
        assert_eq!(r.address, None);
        // `mask` (bits) wins over `subnet`.
        let env2 = |k: &str| {
            if k == "mask" {
                Some("16".into())
            } else {
                env(k)
            }
        };
        assert_eq!(
            record("renew", &env2).address.as_deref(),
            Some("10.0.0.150/16")
        );
        assert!(is_hook(std::ffi::OsStr::new("/x/y/hostplane-udhcpc-hook")));
        assert!(!is_hook(std::ffi::OsStr::new("hostplane")));
    }

    #[test]
    fn the_command_runs_no_shell() {
        let f = Files { dir: "/d".into() };
        let c = command(&f, "eth0", Some("h1"));
        assert_eq!(c.program(), "busybox");
        let args: Vec<_> = c
            .get_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "udhcpc",
                "-f",
                "-i",
                "eth0",
                "-s",
                "/d/hostplane-udhcpc-hook",
                "-p",
                "/d/udhcpc.pid",
                "-t",
                "3",
                "-T",
                "2",
                "-A",
                "3",
                "-x",
                "hostname:h1"
            ]
        );
    }
}
