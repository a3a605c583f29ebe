//! A container's cgroup and what it used: the CPU time and memory of every process in it (the
//! init pid alone misses its children). The metrics collector reads it each sample.
//!
//! Flow: the containers area finds a running container's init pid once (an inspection) and
//! [`of_pid`] reads that pid's `/proc/<pid>/cgroup` into the directories to read; each sample
//! [`Cgroup::usage`] reads them. cgroup v2 (`cpu.stat` `usage_usec`, `memory.stat` `anon`) and
//! v1 (`cpuacct.usage` in ns, `memory.stat` `total_rss`) both count, v1 first where a v1
//! controller is mounted (a hybrid host's v2 tree has no controllers). Block I/O: v2 `io.stat`
//! (`rbytes`, `wbytes`), v1 `blkio.throttle.io_service_bytes_recursive` (`Read`, `Write`; the
//! throttle counters count on every kernel, the CFQ/BFQ ones only with that scheduler); summed
//! over the devices. It is the I/O that reached a block device (page-cache writes count when
//! they are written back). The LXC and containers areas both hand cgroups to the collector.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The directories of one cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    /// cgroup v1 `cpuacct` directory, when that controller is mounted.
    pub cpuacct: Option<PathBuf>,
    /// cgroup v1 `memory` directory, when that controller is mounted.
    pub memory: Option<PathBuf>,
    /// cgroup v1 `blkio` directory, when that controller is mounted.
    pub blkio: Option<PathBuf>,
    /// The unified (v2) directory.
    pub unified: Option<PathBuf>,
}

/// What a cgroup used so far (CPU) and uses now (memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub cpu_usec: u64,
    /// Anonymous memory of its processes (what RSS counts, without the page cache).
    pub memory_bytes: u64,
    /// Bytes read from and written to block devices so far, when the cgroup counts them.
    pub io: Option<Io>,
}

/// Block I/O totals of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
    pub read_bytes: u64,
    pub write_bytes: u64,
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
        blkio: None,
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
                "blkio" => cg.blkio = under(root.join("blkio"), path),
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
        let io = self
            .blkio
            .as_deref()
            .and_then(|d| read(d, "blkio.throttle.io_service_bytes_recursive"))
            .map(|t| parse_blkio(&t))
            .or_else(|| Some(parse_io_stat(&read(v2?, "io.stat")?)));
        Some(Usage {
            cpu_usec,
            memory_bytes,
            io,
        })
    }
}

/// v1 `blkio.throttle.io_service_bytes*`: `MAJ:MIN Read N` … lines per device, then `Total N`.
pub fn parse_blkio(text: &str) -> Io {
    let mut io = Io {
        read_bytes: 0,
        write_bytes: 0,
    };
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_dev, op, n] = f[..] {
            let n: u64 = n.parse().unwrap_or(0);
            match op {
                "Read" => io.read_bytes += n,
                "Write" => io.write_bytes += n,
                _ => {}
            }
        }
    }
    io
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N …` per device.
pub fn parse_io_stat(text: &str) -> Io {
    let mut io = Io {
        read_bytes: 0,
        write_bytes: 0,
    };
    for kv in text.split_whitespace() {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let n: u64 = v.parse().unwrap_or(0);
        match k {
            "rbytes" => io.read_bytes += n,
            "wbytes" => io.write_bytes += n,
            _ => {}
        }
    }
    io
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
            "blkio/docker/abc",
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
        std::fs::write(
            r.join("blkio/docker/abc/blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\n253:1 Read 100\n253:1 Write 0\nTotal 4708\n",
        )
        .unwrap();
        let text = "4:memory:/docker/abc\n3:blkio:/docker/abc\n2:cpu,cpuacct:/docker/abc\n\
                    1:name=systemd:/x\n0::/docker/abc\n";
        let cg = parse(text, r);
        assert_eq!(cg.memory, Some(r.join("memory/docker/abc")));
        assert_eq!(cg.unified, Some(r.join("unified/docker/abc")));
        assert_eq!(
            cg.usage(),
            Some(Usage {
                cpu_usec: 2500,
                memory_bytes: 4096,
                io: Some(Io {
                    read_bytes: 4196,
                    write_bytes: 512
                }),
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
        std::fs::write(
            r2.join("system.slice/x.scope/io.stat"),
            "8:0 rbytes=1000 wbytes=200 rios=3 wios=1 dbytes=0 dios=0\n\
             253:0 rbytes=24 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        )
        .unwrap();
        let cg = parse("0::/system.slice/x.scope\n", r2);
        assert_eq!(cg.cpuacct, None);
        assert_eq!(
            cg.usage(),
            Some(Usage {
                cpu_usec: 777,
                memory_bytes: 8192,
                io: Some(Io {
                    read_bytes: 1024,
                    write_bytes: 200
                }),
            })
        );
        // Gone: nothing to read.
        assert_eq!(parse("0::/nope\n", r2).usage(), None);
    }
}
