//! Loop devices for the storage tests: sparse images in a temp dir, attached with
//! `losetup -f --show` (loop numbers are shared machine-wide: only the devices this guard
//! attached are ever touched). On drop, also on panic: every mount under the temp dir is
//! unmounted (deepest first), the loops are wiped, forgotten by btrfs and detached.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog} is needed: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Loops {
    pub dir: tempfile::TempDir,
    pub devs: Vec<String>,
    pub images: Vec<PathBuf>,
}

impl Loops {
    /// `n` loop devices of `size` bytes each.
    pub fn new(n: usize, size: u64) -> Loops {
        // /var/tmp: on the root disk, not a tmpfs (loop images of GiB size are sparse there).
        let dir = tempfile::Builder::new()
            .prefix("hp-storage-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let mut l = Loops {
            dir,
            devs: Vec::new(),
            images: Vec::new(),
        };
        for _ in 0..n {
            l.attach(size);
        }
        l
    }

    /// Attaches one more loop device; returns its path.
    pub fn attach(&mut self, size: u64) -> String {
        let img = self.dir.path().join(format!("d{}.img", self.images.len()));
        std::fs::File::create(&img).unwrap().set_len(size).unwrap();
        let dev = run("losetup", &["-f", "--show", img.to_str().unwrap()])
            .trim()
            .to_string();
        assert!(dev.starts_with("/dev/loop"), "{dev}");
        self.devs.push(dev.clone());
        self.images.push(img);
        dev
    }

    /// Detaches one of our loop devices now.
    pub fn detach(&mut self, dev: &str) {
        let i = self.devs.iter().position(|d| d == dev).expect("our device");
        let _ = Command::new("losetup").args(["-d", dev]).status();
        self.devs.remove(i);
    }

    pub fn name(dev: &str) -> &str {
        dev.trim_start_matches("/dev/")
    }

    /// `--disks-allow` value for these devices.
    pub fn allow(devs: &[&str]) -> String {
        devs.join(",")
    }

    pub fn mount_root(&self) -> PathBuf {
        self.dir.path().join("pools")
    }

    /// Config TOML pointing the pool mount root into the temp dir.
    pub fn config(&self) -> String {
        format!(
            "[pools]\nmount_root = \"{}\"\n",
            self.mount_root().display()
        )
    }

    /// `/sys/block/<name>/stat` counters (reads, read sectors, writes, write sectors).
    pub fn io_counters(dev: &str) -> Vec<u64> {
        let s = std::fs::read_to_string(format!("/sys/block/{}/stat", Self::name(dev))).unwrap();
        s.split_whitespace().map(|x| x.parse().unwrap()).collect()
    }

    /// Mount points under our temp dir, deepest first.
    pub fn our_mounts(&self) -> Vec<String> {
        let root = self.dir.path().to_string_lossy().into_owned();
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| m.replace("\\040", " "))
            .filter(|m| m.starts_with(&root))
            .collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.len()));
        v.dedup();
        v
    }
}

impl Drop for Loops {
    fn drop(&mut self) {
        for _ in 0..3 {
            let mounts = self.our_mounts();
            if mounts.is_empty() {
                break;
            }
            for m in mounts {
                if Command::new("umount")
                    .arg(&m)
                    .status()
                    .map(|s| !s.success())
                    .unwrap_or(true)
                {
                    let _ = Command::new("umount").args(["-l", &m]).status();
                }
            }
        }
        for dev in &self.devs {
            // Only a device still backed by one of our images.
            let backing = std::fs::read_to_string(format!(
                "/sys/block/{}/loop/backing_file",
                Self::name(dev)
            ))
            .unwrap_or_default();
            if !backing
                .trim()
                .starts_with(&*self.dir.path().to_string_lossy())
            {
                continue;
            }
            let _ = Command::new("wipefs").args(["-a", "-q", dev]).output();
            let _ = Command::new("btrfs")
                .args(["device", "scan", "--forget", dev])
                .output();
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
    }
}

/// Waits for a job (by its href) and asserts it succeeded; returns it.
pub async fn job_ok(d: &crate::common::Daemon, r: reqwest::Response) -> Value {
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let job: Value = r.json().await.unwrap();
    let href = job["href"].as_str().unwrap().to_string();
    let j = d.wait_job(&href).await;
    if j["status"] != "success" {
        let log = d.get(&format!("{href}/log")).await.text().await.unwrap();
        panic!("job {href} failed: {j}\nlog:\n{log}");
    }
    j
}

/// Waits for a job and returns it whatever its outcome.
pub async fn job_done(d: &crate::common::Daemon, r: reqwest::Response) -> Value {
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let job: Value = r.json().await.unwrap();
    d.wait_job(job["href"].as_str().unwrap()).await
}

/// The disk with this kernel path from `GET /api/v1/disks`.
pub async fn disk(d: &crate::common::Daemon, dev: &str) -> Value {
    let list = d.get_json("/api/v1/disks").await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x["path"] == dev)
        .cloned()
        .unwrap_or_else(|| panic!("{dev} not listed"))
}

/// Polls `f` until it returns Some, for up to `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met in {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let s = p.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*s))
}
