//! A container's cgroup and what it used: the CPU time and memory of every process in it (the
//! init pid alone misses its children). The metrics collector reads it each sample.
//!
//! Flow: the containers area finds a running container's init pid once (an inspection) and
//! [`of_pid`] reads that pid's `/proc/<pid>/cgroup` into the directories to read; each sample
//! [`Cgroup::usage`] reads them. cgroup v2 (`cpu.stat` `usage_usec`, `memory.stat` `anon`) and
//! v1 (`cpuacct.usage` in ns, `memory.stat` `total_rss`) both count, v1 first where a v1
//! controller is mounted (a hybrid host's v2 tree has no controllers).

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The directories of one cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    /// cgroup v1 `cpuacct` directory, when that controller is mounted.
    pub cpuacct: Option<PathBuf>,
    /// cgroup v1 `memory` directory, when that controller is mounted.
    pub memory: Option<PathBuf>,
    /// The unified (v2) directory.
    pub unified: Option<PathBuf>,
}

/// What a cgroup used so far (CPU) and uses now (memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub cpu_usec: u64,
    /// Anonymous memory of its processes (what RSS counts, without the page cache).
    pub memory_bytes: u64,
}

/// The cgroup of `pid` (from `/proc/<pid>/cgroup`), or None when it is gone.
pub fn of_pid(pid: u32) -> Option<Cgroup> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    Some(parse(&text, Path::new(ROOT)))
}

/// `/proc/<pid>/cgroup` under the mount root `root`; directories that do not exist are left out.
pub fn parse(text: &str, root: &Path) -> Cgroup {
    let mut cg = Cgroup {
        cpuacct: None,
        memory: None,
        unified: None,
    };
    let under = |base: PathBuf, path: &str| {
        let p = base.join(path.trim_start_matches('/'));
        p.is_dir().then_some(p)
    };
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctl.is_empty() {
            // The unified hierarchy: at the root on a v2 host, below `unified` on a hybrid one.
            let base = if root.join("cgroup.controllers").exists() {
                root.to_path_buf()
            } else {
                root.join("unified")
            };
            cg.unified = under(base, path);
        }
        for c in ctl.split(',') {
            match c {
                "cpuacct" => cg.cpuacct = under(root.join("cpuacct"), path),
                "memory" => cg.memory = under(root.join("memory"), path),
                _ => {}
            }
        }
    }
    cg
}

fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

impl Cgroup {
    /// Its usage now, or None when neither hierarchy answers (the cgroup is gone).
    pub fn usage(&self) -> Option<Usage> {
        let v2 = self.unified.as_deref();
        let cpu_usec = self
            .cpuacct
            .as_deref()
            .and_then(|d| read(d, "cpuacct.usage"))
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(|ns| ns / 1000)
            .or_else(|| stat_field(&read(v2?, "cpu.stat")?, "usage_usec"))?;
        let memory_bytes = self
            .memory
            .as_deref()
            .and_then(|d| read(d, "memory.stat"))
            .and_then(|t| stat_field(&t, "total_rss"))
            .or_else(|| stat_field(&read(v2?, "memory.stat")?, "anon"))
            .unwrap_or(0);
        Some(Usage {
            cpu_usec,
            memory_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_directories_and_usage() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in [
            "cpuacct/docker/abc",
            "memory/docker/abc",
            "unified/docker/abc",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("cpuacct/docker/abc/cpuacct.usage"), "2500000\n").unwrap();
        std::fs::write(
            r.join("memory/docker/abc/memory.stat"),
            "cache 10\nrss 5\ntotal_cache 100\ntotal_rss 4096\n",
        )
        .unwrap();
        let text =
            "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n0::/docker/abc\n";
        let cg = parse(text, r);
        assert_eq!(cg.memory, Some(r.join("memory/docker/abc")));
        assert_eq!(cg.unified, Some(r.join("unified/docker/abc")));
        assert_eq!(
            cg.usage(),
            Some(Usage {
                cpu_usec: 2500,
                memory_bytes: 4096
            })
        );

        // Pure v2: the root has cgroup.controllers.
        let root2 = tempfile::tempdir().unwrap();
        let r2 = root2.path();
        std::fs::write(r2.join("cgroup.controllers"), "cpu memory\n").unwrap();
        std::fs::create_dir_all(r2.join("system.slice/x.scope")).unwrap();
        std::fs::write(
            r2.join("system.slice/x.scope/cpu.stat"),
            "usage_usec 777\nuser_usec 700\n",
        )
        .unwrap();
        std::fs::write(
            r2.join("system.slice/x.scope/memory.stat"),
            "anon 8192\nfile 5\n",
        )
        .unwrap();
        let cg = parse("0::/system.slice/x.scope\n", r2);
        assert_eq!(cg.cpuacct, None);
        assert_eq!(
            cg.usage(),
            Some(Usage {
                cpu_usec: 777,
                memory_bytes: 8192
            })
        );
        // Gone: nothing to read.
        assert_eq!(parse("0::/nope\n", r2).usage(), None);
    }
}
