//! One sample of the host and its VMs: what the collector records each interval, and the
//! node_exporter-named gauges and counters it sets for `GET /metrics`.
//!
//! Flow: [`Collector::sample`] reads `/proc/stat`, `/proc/net/dev`, `/proc/diskstats`,
//! `/proc/meminfo`, `/proc/loadavg`, `/proc/pressure/*` (when the kernel has PSI), statvfs of
//! each mounted pool under `pools.mount_root`, and `/proc/<pid>/stat` of every process the
//! `platform::processes` registry lists (its cgroup's usage when it has one: CPU, memory, block
//! I/O; and the traffic of its network namespace when it has its own: containers, not VMs);
//! rates are the difference to the previous sample.
//! No HTTP, no database: the area records what this returns.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hostplane_host::health::{self, Readings};

use super::history::SeriesKey;
use crate::platform::processes::Monitored;

/// Network devices whose series are not kept: loopback, and the per-guest/per-container
/// links that come and go with every VM and container start (their traffic shows on the
/// bridge they are attached to).
fn skip_interface(name: &str) -> bool {
    name == "lo"
        || ["veth", "tap", "vnet", "fwpr", "fwln", "fwbr"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// Block devices whose series are not kept: loop and RAM devices (test images, snaps).
fn skip_disk(name: &str) -> bool {
    ["loop", "ram", "zram", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

pub struct Collector {
    pools_root: PathBuf,
    prev: Option<(Readings, Instant)>,
    prev_procs: HashMap<(String, String, u32), ProcPrev>,
    ticks: f64,
}

/// A process's counters at the previous sample.
struct ProcPrev {
    cpu_usec: u64,
    /// Block I/O read, written (its cgroup's).
    io: Option<(u64, u64)>,
    /// Received, sent (its own network namespace's).
    net: Option<(u64, u64)>,
    at: Instant,
}

/// Bytes per second from two counter readings (a counter that went back, e.g. an interface
/// that was recreated, gives 0).
fn per_sec(now: u64, prev: u64, secs: f64) -> f64 {
    (now.saturating_sub(prev) as f64 / secs).round()
}

fn key(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
    SeriesKey::new(name, labels)
}

/// Mounted filesystems directly under `root` (each a pool's mount point).
fn mounted_pools(root: &Path) -> Vec<(String, PathBuf)> {
    let Ok(root_dev) = std::fs::metadata(root).map(|m| m.dev()) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.dev() != root_dev))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}

impl Collector {
    pub fn new(pools_root: PathBuf) -> Collector {
        Collector {
            pools_root,
            prev: None,
            prev_procs: HashMap::new(),
            ticks: health::clock_ticks() as f64,
        }
    }

    /// Reads everything now; rates need a previous sample (the first sample has none).
    pub fn sample(&mut self, procs: &[Monitored]) -> std::io::Result<Vec<(SeriesKey, f64)>> {
        let now = Instant::now();
        let mut out = Vec::with_capacity(64 + procs.len() * 6);
        let readings = Readings::now()?;
        let (memory, load) = health::memory_and_load()?;
        out.push((key("memory_total_bytes", &[]), memory.total_bytes as f64));
        out.push((key("memory_available_bytes", &[]), memory.available_bytes as f64));
        out.push((key("memory_used_bytes", &[]), memory.used_bytes as f64));
        out.push((
            key("swap_used_bytes", &[]),
            memory.swap_total_bytes.saturating_sub(memory.swap_free_bytes) as f64,
        ));
        out.push((key("load1", &[]), load.one));
        out.push((key("load5", &[]), load.five));
        out.push((key("load15", &[]), load.fifteen));
        export::memory_and_load(&memory, &load);
        for what in ["cpu", "memory", "io"] {
            if let Some(p) = health::pressure(what) {
                out.push((
                    key(&format!("pressure_{what}_some_percent"), &[]),
                    p.some.avg10,
                ));
                if let Some(full) = p.full.filter(|_| what != "cpu") {
                    out.push((key(&format!("pressure_{what}_full_percent"), &[]), full.avg10));
                }
                export::pressure(what, &p);
            }
        }
        for (pool, path) in mounted_pools(&self.pools_root) {
            if let Ok(u) = health::fs_usage(&path) {
                out.push((key("pool_size_bytes", &[("pool", &pool)]), u.total_bytes as f64));
                out.push((key("pool_used_bytes", &[("pool", &pool)]), u.used_bytes as f64));
                export::filesystem(&path, &u);
            }
        }
        export::counters(&readings, self.ticks);
        if let Some((prev, at)) = &self.prev {
            let whole = health::whole_disks();
            let r = health::rates(prev, &readings, now - *at, memory, load, &whole);
            out.push((key("cpu_busy_percent", &[]), r.cpu.busy_percent));
            out.push((key("cpu_iowait_percent", &[]), r.cpu.iowait_percent));
            for i in r.interfaces.iter().filter(|i| !skip_interface(&i.name)) {
                let l = [("device", i.name.as_str())];
                out.push((key("network_receive_bytes_per_second", &l), i.rx_bytes_per_sec));
                out.push((key("network_transmit_bytes_per_second", &l), i.tx_bytes_per_sec));
            }
            for d in r.disks.iter().filter(|d| !skip_disk(&d.name)) {
                let l = [("device", d.name.as_str())];
                out.push((key("disk_read_bytes_per_second", &l), d.read_bytes_per_sec));
                out.push((key("disk_write_bytes_per_second", &l), d.write_bytes_per_sec));
                out.push((key("disk_busy_percent", &l), d.busy_percent));
            }
        }
        self.prev = Some((readings, now));

        let mut seen = HashMap::with_capacity(procs.len());
        for p in procs {
            // CPU in µs and resident memory: of the whole cgroup when there is one.
            let from_cgroup = p.cgroup.as_ref().and_then(|c| c.usage());
            let (cpu_usec, rss, io) = match from_cgroup {
                Some(u) => (
                    u.cpu_usec,
                    u.memory_bytes,
                    u.io.map(|io| (io.read_bytes, io.write_bytes)),
                ),
                None => match health::process_stat(p.pid) {
                    Ok(st) => (
                        (st.cpu_ticks as f64 / self.ticks * 1e6) as u64,
                        st.rss_bytes,
                        None,
                    ),
                    Err(_) => continue,
                },
            };
            let net = health::netns_traffic(p.pid);
            let l = [("kind", p.kind), ("name", p.name.as_str())];
            out.push((key("process_memory_rss_bytes", &l), rss as f64));
            let id = (p.kind.to_string(), p.name.clone(), p.pid);
            if let Some(prev) = self.prev_procs.get(&id) {
                let secs = (now - prev.at).as_secs_f64().max(1e-3);
                let pct = cpu_usec.saturating_sub(prev.cpu_usec) as f64 / 1e6 / secs * 100.0;
                out.push((key("process_cpu_percent", &l), (pct * 100.0).round() / 100.0));
                if let (Some((r, w)), Some((pr, pw))) = (io, prev.io) {
                    out.push((
                        key("process_disk_read_bytes_per_second", &l),
                        per_sec(r, pr, secs),
                    ));
                    out.push((
                        key("process_disk_write_bytes_per_second", &l),
                        per_sec(w, pw, secs),
                    ));
                }
                if let (Some((rx, tx)), Some((prx, ptx))) = (net, prev.net) {
                    out.push((
                        key("process_network_receive_bytes_per_second", &l),
                        per_sec(rx, prx, secs),
                    ));
                    out.push((
                        key("process_network_transmit_bytes_per_second", &l),
                        per_sec(tx, ptx, secs),
                    ));
                }
            }
            seen.insert(
                id,
                ProcPrev {
                    cpu_usec,
                    io,
                    net,
                    at: now,
                },
            );
        }
        self.prev_procs = seen;
        Ok(out)
    }
}

/// The same readings under node_exporter's names, for `GET /metrics`.
mod export {
    use hostplane_host::health::{Pressure, Readings};
    use hostplane_types::health::{FilesystemUsage, LoadAverage, Memory};

    pub fn memory_and_load(m: &Memory, l: &LoadAverage) {
        metrics::gauge!("node_memory_MemTotal_bytes").set(m.total_bytes as f64);
        metrics::gauge!("node_memory_MemFree_bytes").set(m.free_bytes as f64);
        metrics::gauge!("node_memory_MemAvailable_bytes").set(m.available_bytes as f64);
        metrics::gauge!("node_memory_Buffers_bytes").set(m.buffers_bytes as f64);
        metrics::gauge!("node_memory_Cached_bytes").set(m.cached_bytes as f64);
        metrics::gauge!("node_memory_SwapTotal_bytes").set(m.swap_total_bytes as f64);
        metrics::gauge!("node_memory_SwapFree_bytes").set(m.swap_free_bytes as f64);
        metrics::gauge!("node_load1").set(l.one);
        metrics::gauge!("node_load5").set(l.five);
        metrics::gauge!("node_load15").set(l.fifteen);
    }

    pub fn pressure(what: &'static str, p: &Pressure) {
        let secs = |us: u64| us as f64 / 1e6;
        match what {
            "cpu" => {
                metrics::gauge!("node_pressure_cpu_waiting_seconds_total").set(secs(p.some.total_us))
            }
            "memory" => {
                metrics::gauge!("node_pressure_memory_waiting_seconds_total")
                    .set(secs(p.some.total_us));
                if let Some(f) = p.full {
                    metrics::gauge!("node_pressure_memory_stalled_seconds_total")
                        .set(secs(f.total_us));
                }
            }
            _ => {
                metrics::gauge!("node_pressure_io_waiting_seconds_total").set(secs(p.some.total_us));
                if let Some(f) = p.full {
                    metrics::gauge!("node_pressure_io_stalled_seconds_total").set(secs(f.total_us));
                }
            }
        }
    }

    pub fn filesystem(path: &std::path::Path, u: &FilesystemUsage) {
        let mp = path.display().to_string();
        metrics::gauge!("node_filesystem_size_bytes", "mountpoint" => mp.clone())
            .set(u.total_bytes as f64);
        metrics::gauge!("node_filesystem_avail_bytes", "mountpoint" => mp)
            .set(u.available_bytes as f64);
    }

    pub fn counters(r: &Readings, ticks: f64) {
        for (cpu, t) in &r.stat.cores {
            for (mode, v) in [
                ("user", t.user),
                ("nice", t.nice),
                ("system", t.system),
                ("idle", t.idle),
                ("iowait", t.iowait),
                ("irq", t.irq),
                ("softirq", t.softirq),
                ("steal", t.steal),
            ] {
                metrics::gauge!("node_cpu_seconds_total", "cpu" => cpu.to_string(), "mode" => mode)
                    .set(v as f64 / ticks);
            }
        }
        for n in &r.net {
            metrics::counter!("node_network_receive_bytes_total", "device" => n.name.clone())
                .absolute(n.rx_bytes);
            metrics::counter!("node_network_transmit_bytes_total", "device" => n.name.clone())
                .absolute(n.tx_bytes);
        }
        for d in r.disks.iter().filter(|d| d.reads + d.writes > 0) {
            if super::skip_disk(&d.name) {
                continue;
            }
            metrics::counter!("node_disk_read_bytes_total", "device" => d.name.clone())
                .absolute(d.sectors_read * 512);
            metrics::counter!("node_disk_written_bytes_total", "device" => d.name.clone())
                .absolute(d.sectors_written * 512);
            metrics::gauge!("node_disk_io_time_seconds_total", "device" => d.name.clone())
                .set(d.io_ms as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::processes::Cgroup;

    /// A cgroup's counters become per-second rates at the second sample: CPU, block I/O;
    /// memory at once. A process in the collector's own network namespace gets no traffic
    /// series (its traffic is the host's).
    #[test]
    fn cgroup_counters_become_rates() {
        let dir = tempfile::tempdir().unwrap();
        let cg_dir = dir.path().join("lxc.payload.c1");
        std::fs::create_dir(&cg_dir).unwrap();
        let write = |cpu: u64, r: u64, w: u64| {
            std::fs::write(cg_dir.join("cpu.stat"), format!("usage_usec {cpu}\n")).unwrap();
            std::fs::write(cg_dir.join("memory.stat"), "anon 4096000\nfile 9\n").unwrap();
            std::fs::write(
                cg_dir.join("io.stat"),
                format!("8:0 rbytes={r} wbytes={w} rios=1 wios=1 dbytes=0 dios=0\n"),
            )
            .unwrap();
        };
        let procs = [Monitored {
            kind: "lxc",
            name: "c1".into(),
            pid: std::process::id(),
            cgroup: Some(Cgroup {
                cpuacct: None,
                memory: None,
                blkio: None,
                unified: Some(cg_dir.clone()),
            }),
        }];
        let mut c = Collector::new(dir.path().join("pools"));
        write(1_000_000, 0, 0);
        let first = c.sample(&procs).unwrap();
        let get = |s: &[(SeriesKey, f64)], name: &str| {
            s.iter()
                .find(|(k, _)| k == &key(name, &[("kind", "lxc"), ("name", "c1")]))
                .map(|(_, v)| *v)
        };
        assert_eq!(get(&first, "process_memory_rss_bytes"), Some(4096000.0));
        assert_eq!(get(&first, "process_disk_read_bytes_per_second"), None);
        std::thread::sleep(std::time::Duration::from_millis(200));
        write(1_100_000, 1 << 20, 1 << 10);
        let second = c.sample(&procs).unwrap();
        let cpu = get(&second, "process_cpu_percent").unwrap();
        assert!(cpu > 5.0 && cpu <= 50.0, "0.1 s of CPU in ~0.2 s: {cpu}");
        let read = get(&second, "process_disk_read_bytes_per_second").unwrap();
        let written = get(&second, "process_disk_write_bytes_per_second").unwrap();
        assert!(read > 1e6 && read <= 5.3e6, "{read}");
        assert!(written > 1e3 && written <= 5.2e3, "{written}");
        assert_eq!(get(&second, "process_network_receive_bytes_per_second"), None);
    }
}
