//! A Debian rootfs (debootstrap, built once and cached in /var/tmp) booted with
//! `systemd-nspawn` on a throw-away overlay, its system bus bound out to a temp dir; commands
//! run inside it through `nsenter`. The container is powered off and every mount and directory
//! removed when the guard drops, also on panic. Used by tests/services.rs (the services area
//! against a real systemd) and tests/deb.rs (the Debian package installed and purged).
//!
//! Needs root, `systemd-nspawn` (systemd-container) and `debootstrap` (scripts/test installs
//! them) and, for the first run on a machine, a Debian mirror (`HOSTPLANE_DEBIAN_MIRROR`,
//! default deb.debian.org).
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROOTFS: &str = "/var/tmp/hostplane-nspawn-bookworm";
const MARKER: &str = ".hostplane-rootfs-complete";

pub fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
    assert!(found, "{tool} is missing: scripts/test installs it (apt)");
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cached rootfs, built on first use (minbase + systemd + dbus, ~75 s, ~240 MB).
pub fn ensure_rootfs() -> PathBuf {
    let root = PathBuf::from(ROOTFS);
    if root.join(MARKER).exists() {
        return root;
    }
    need("debootstrap");
    // One builder at a time (other test processes may want it too).
    let lock = std::fs::File::create(format!("{ROOTFS}.lock")).unwrap();
    // SAFETY: flock on a file we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    if root.join(MARKER).exists() {
        return root;
    }
    let tmp = PathBuf::from(format!("{ROOTFS}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mirror = std::env::var("HOSTPLANE_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    run(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus",
            "bookworm",
        ])
        .arg(&tmp)
        .arg(&mirror));
    std::fs::write(
        tmp.join(MARKER),
        "debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm\n",
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&tmp, &root).unwrap();
    root
}

/// A booted systemd container; powered off and cleaned up on drop.
pub struct Container {
    dir: tempfile::TempDir,
    nspawn: Option<Child>,
    leader: u32,
    mounts: Vec<PathBuf>,
}

impl Container {
    pub fn boot(units: &[(&str, &str)]) -> Container {
        need("systemd-nspawn");
        let rootfs = ensure_rootfs();
        let dir = tempfile::Builder::new()
            .prefix("hp-test-")
            .tempdir()
            .unwrap();
        let mut c = Container {
            dir,
            nspawn: None,
            leader: 0,
            mounts: Vec::new(),
        };
        let t = c.dir.path().join("t");
        let merged = c.dir.path().join("merged");
        let dbus = c.dir.path().join("dbus");
        for d in [&t, &merged, &dbus] {
            std::fs::create_dir(d).unwrap();
        }
        // upper/work on a tmpfs: an overlay cannot have its upper dir on another overlay.
        run(Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&t));
        c.mounts.push(t.clone());
        std::fs::create_dir(t.join("upper")).unwrap();
        std::fs::create_dir(t.join("work")).unwrap();
        run(Command::new("mount")
            .args(["-t", "overlay", "hp-ovl", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                rootfs.display(),
                t.join("upper").display(),
                t.join("work").display()
            ))
            .arg(&merged));
        c.mounts.push(merged.clone());
        for (name, body) in units {
            std::fs::write(merged.join("etc/systemd/system").join(name), body).unwrap();
        }
        let log = std::fs::File::create(c.dir.path().join("nspawn.log")).unwrap();
        let machine = format!("hp-svc-{}", std::process::id());
        let child = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&merged)
            .args([
                "-M",
                &machine,
                "--private-network",
                "--register=no",
                "--keep-unit",
            ])
            .args(["--console=passive"])
            .arg(format!("--bind={}:/run/dbus", dbus.display()))
            .arg("-b")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("systemd-nspawn");
        let pid = child.id();
        c.nspawn = Some(child);
        // Ready when the container's PID 1 answers on its bus and the boot is over.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = Command::new("busctl")
                .arg(format!("--address={}", c.address()))
                .args([
                    "get-property",
                    "org.freedesktop.systemd1",
                    "/org/freedesktop/systemd1",
                    "org.freedesktop.systemd1.Manager",
                    "SystemState",
                ])
                .output()
                .expect("busctl");
            let s = String::from_utf8_lossy(&out.stdout);
            if s.contains("running") || s.contains("degraded") {
                break;
            }
            if let Some(Some(status)) = c.nspawn.as_mut().map(|ch| ch.try_wait().unwrap()) {
                panic!(
                    "systemd-nspawn exited ({status}): {}",
                    std::fs::read_to_string(c.dir.path().join("nspawn.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "the container did not boot: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
        c.leader = children.split_whitespace().next().unwrap().parse().unwrap();
        c
    }

    pub fn address(&self) -> String {
        format!(
            "unix:path={}",
            self.dir.path().join("dbus/system_bus_socket").display()
        )
    }

    /// `systemctl ARGS` inside the container; stdout, trimmed (non-zero exits are answers
    /// here: `is-active` of a stopped unit exits 3).
    pub fn systemctl(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "systemctl"])
            .args(args)
            .output()
            .expect("nsenter");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The container's root directory as the host sees it (files put here appear inside).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("merged")
    }

    /// The container's PID 1, as the host numbers it.
    pub fn leader(&self) -> u32 {
        self.leader
    }

    /// `ARGV` inside the container (all its namespaces), with a plain root environment: the
    /// test's own PATH names host directories (and dpkg refuses a PATH without the sbin dirs).
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("/usr/bin/nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "--"])
            .args(argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .env("HOME", "/root")
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// [`Container::exec`] that must succeed; its stdout.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?} in the container: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            // SIGTERM: nspawn asks the container's systemd to power off cleanly.
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if child.try_wait().ok().flatten().is_none() {
                // SAFETY: the process group we created for it.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
            }
        }
        for m in self.mounts.iter().rev() {
            let ok = Command::new("umount")
                .arg(m)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
    }
}
