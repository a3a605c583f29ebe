//! Host health and live metrics from `/proc` and `statvfs`: no tool runs, nothing is cached.
//!
//! * [`health`] reads `/proc/uptime`, `/proc/loadavg`, `/proc/meminfo`, `/proc/stat` (CPU
//!   count) and `statvfs` of the root and of a given path (the data dir).
//! * [`sample`] reads `/proc/stat`, `/proc/net/dev` and `/proc/diskstats` twice, `interval`
//!   apart, and turns the differences into per-core CPU shares and per-interface and per-disk
//!   rates.
//!
//! The parsers are pure functions over the file text, tested on saved samples below.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hostplane_types::health::{
    CpuUsage, DiskRates, FilesystemUsage, InterfaceRates, LoadAverage, Memory, SystemHealth,
    SystemMetrics,
};

/// Reads the host's health now. `data_dir` is reported as a filesystem next to `/` (once when
/// both are on the same filesystem).
pub fn health(data_dir: &Path) -> io::Result<SystemHealth> {
    let uptime = parse_uptime(&read("/proc/uptime")?)?;
    let load = parse_loadavg(&read("/proc/loadavg")?)?;
    let memory = parse_meminfo(&read("/proc/meminfo")?)?;
    let stat = parse_stat(&read("/proc/stat")?)?;
    let mut filesystems = vec![fs_usage(Path::new("/"))?];
    if let Ok(dev_root) = device_of(Path::new("/"))
        && let Ok(dev_data) = device_of(data_dir)
        && dev_root != dev_data
    {
        filesystems.push(fs_usage(data_dir)?);
    }
    Ok(SystemHealth {
        uptime_secs: uptime,
        cpu_count: stat.cores.len() as u32,
        load,
        memory,
        filesystems,
        checked_at: now_rfc3339(),
    })
}

/// Samples CPU, network and disk counters `interval` apart and returns the rates.
pub async fn sample(interval: Duration) -> io::Result<SystemMetrics> {
    let first = Readings::now()?;
    let t0 = Instant::now();
    tokio::time::sleep(interval).await;
    let second = Readings::now()?;
    let elapsed = t0.elapsed();
    let memory = parse_meminfo(&read("/proc/meminfo")?)?;
    let load = parse_loadavg(&read("/proc/loadavg")?)?;
    let whole: Vec<String> = match std::fs::read_dir("/sys/block") {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(rates(&first, &second, elapsed, memory, load, &whole))
}

/// One reading of the counters [`sample`] compares.
#[derive(Debug, Clone)]
pub struct Readings {
    pub stat: CpuStat,
    pub net: Vec<NetDev>,
    pub disks: Vec<DiskStat>,
}

impl Readings {
    pub fn now() -> io::Result<Readings> {
        Ok(Readings {
            stat: parse_stat(&read("/proc/stat")?)?,
            net: parse_net_dev(&read("/proc/net/dev")?)?,
            disks: parse_diskstats(&read("/proc/diskstats")?)?,
        })
    }
}

/// Rates between two readings. Disks are limited to the names in `whole_disks` (the entries
/// of `/sys/block`, which lists no partitions) and to those that saw any I/O ever, so idle
/// loop devices do not crowd the answer.
pub fn rates(
    a: &Readings,
    b: &Readings,
    elapsed: Duration,
    memory: Memory,
    load: LoadAverage,
    whole_disks: &[String],
) -> SystemMetrics {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let per_sec = |x: u64, y: u64| round2(y.saturating_sub(x) as f64 / secs);
    let cpu = cpu_usage("cpu", &a.stat.total, &b.stat.total);
    let before: HashMap<usize, &CpuTicks> = a.stat.cores.iter().map(|(i, t)| (*i, t)).collect();
    let cores = b
        .stat
        .cores
        .iter()
        .filter_map(|(i, t)| {
            before
                .get(i)
                .map(|old| cpu_usage(&format!("cpu{i}"), old, t))
        })
        .collect();
    let net_before: HashMap<&str, &NetDev> = a.net.iter().map(|n| (n.name.as_str(), n)).collect();
    let interfaces = b
        .net
        .iter()
        .filter_map(|n| {
            let o = net_before.get(n.name.as_str())?;
            Some(InterfaceRates {
                name: n.name.clone(),
                rx_bytes_per_sec: per_sec(o.rx_bytes, n.rx_bytes),
                tx_bytes_per_sec: per_sec(o.tx_bytes, n.tx_bytes),
                rx_packets_per_sec: per_sec(o.rx_packets, n.rx_packets),
                tx_packets_per_sec: per_sec(o.tx_packets, n.tx_packets),
                rx_bytes: n.rx_bytes,
                tx_bytes: n.tx_bytes,
                rx_errors: n.rx_errors,
                tx_errors: n.tx_errors,
                rx_dropped: n.rx_dropped,
                tx_dropped: n.tx_dropped,
            })
        })
        .collect();
    let disk_before: HashMap<&str, &DiskStat> =
        a.disks.iter().map(|d| (d.name.as_str(), d)).collect();
    let ms = elapsed.as_millis().max(1) as f64;
    let disks = b
        .disks
        .iter()
        .filter(|d| whole_disks.contains(&d.name))
        .filter(|d| d.reads + d.writes > 0)
        .filter_map(|d| {
            let o = disk_before.get(d.name.as_str())?;
            Some(DiskRates {
                name: d.name.clone(),
                read_bytes_per_sec: per_sec(o.sectors_read * 512, d.sectors_read * 512),
                write_bytes_per_sec: per_sec(o.sectors_written * 512, d.sectors_written * 512),
                reads_per_sec: per_sec(o.reads, d.reads),
                writes_per_sec: per_sec(o.writes, d.writes),
                busy_percent: round2(
                    (d.io_ms.saturating_sub(o.io_ms) as f64 * 100.0 / ms).min(100.0),
                ),
            })
        })
        .collect();
    SystemMetrics {
        interval_ms: elapsed.as_millis() as u64,
        sampled_at: now_rfc3339(),
        cpu,
        cores,
        load,
        memory,
        interfaces,
        disks,
    }
}

fn cpu_usage(name: &str, a: &CpuTicks, b: &CpuTicks) -> CpuUsage {
    let d = |x: u64, y: u64| y.saturating_sub(x) as f64;
    let user = d(a.user + a.nice, b.user + b.nice);
    let system = d(a.system + a.irq + a.softirq, b.system + b.irq + b.softirq);
    let iowait = d(a.iowait, b.iowait);
    let steal = d(a.steal, b.steal);
    let idle = d(a.idle, b.idle);
    let total = d(a.total(), b.total());
    let pct = |x: f64| {
        if total <= 0.0 {
            0.0
        } else {
            round2(x * 100.0 / total)
        }
    };
    CpuUsage {
        name: name.to_string(),
        busy_percent: if total <= 0.0 {
            0.0
        } else {
            round2((total - idle - iowait).max(0.0) * 100.0 / total)
        },
        user_percent: pct(user),
        system_percent: pct(system),
        iowait_percent: pct(iowait),
        steal_percent: pct(steal),
        idle_percent: pct(idle),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn read(path: &str) -> io::Result<String> {
    std::fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected {what} format"),
    )
}

// ---- parsers ----

/// One line of `/proc/pressure/{cpu,memory,io}` (PSI): the share of time stalled.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureLine {
    /// Percent over the last 10 s.
    pub avg10: f64,
    /// Total stall time, microseconds.
    pub total_us: u64,
}

/// A PSI file: `some` always, `full` for memory and io (and cpu on newer kernels).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub some: PressureLine,
    pub full: Option<PressureLine>,
}

/// Parses a PSI file (`some avg10=0.00 avg60=0.00 avg300=0.00 total=0`).
pub fn parse_pressure(s: &str) -> io::Result<Pressure> {
    let mut out = Pressure::default();
    let mut seen = false;
    for line in s.lines() {
        let mut f = line.split_whitespace();
        let kind = f.next();
        let mut p = PressureLine::default();
        for kv in f {
            match kv.split_once('=') {
                Some(("avg10", v)) => p.avg10 = v.parse().map_err(|_| bad("pressure"))?,
                Some(("total", v)) => p.total_us = v.parse().map_err(|_| bad("pressure"))?,
                _ => {}
            }
        }
        match kind {
            Some("some") => {
                out.some = p;
                seen = true;
            }
            Some("full") => out.full = Some(p),
            _ => {}
        }
    }
    if !seen {
        return Err(bad("pressure"));
    }
    Ok(out)
}

/// `/proc/pressure/<what>` (cpu, memory, io); None when the kernel has no PSI.
pub fn pressure(what: &str) -> Option<Pressure> {
    parse_pressure(&std::fs::read_to_string(format!("/proc/pressure/{what}")).ok()?).ok()
}

/// A process's CPU time and resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStat {
    /// utime + stime, in clock ticks ([`clock_ticks`] per second).
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
}

/// Parses `/proc/<pid>/stat` (the fields after the parenthesised command name).
pub fn parse_process_stat(stat: &str, page_size: u64) -> io::Result<ProcessStat> {
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .ok_or_else(|| bad("stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15, rss (pages) 24.
    let num = |i: usize| -> io::Result<u64> {
        f.get(i - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("stat"))
    };
    Ok(ProcessStat {
        cpu_ticks: num(14)? + num(15)?,
        rss_bytes: num(24)?.saturating_mul(page_size),
    })
}

/// CPU time and RSS of `pid` now.
pub fn process_stat(pid: u32) -> io::Result<ProcessStat> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    parse_process_stat(&read(&format!("/proc/{pid}/stat"))?, page)
}

/// Bytes received and sent by `pid`'s network namespace (every interface but `lo`), or None
/// when it shares the caller's namespace (a VM's QEMU, a `--network host` container: their
/// traffic is the host's, already counted per interface) or is gone.
pub fn netns_traffic(pid: u32) -> Option<(u64, u64)> {
    let own = std::fs::read_link("/proc/self/ns/net").ok()?;
    if std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()? == own {
        return None;
    }
    let devs = parse_net_dev(&read(&format!("/proc/{pid}/net/dev")).ok()?).ok()?;
    Some(traffic_without_lo(&devs))
}

/// Received and sent bytes of every interface but loopback.
pub fn traffic_without_lo(devs: &[NetDev]) -> (u64, u64) {
    devs.iter()
        .filter(|d| d.name != "lo")
        .fold((0, 0), |(rx, tx), d| (rx + d.rx_bytes, tx + d.tx_bytes))
}

/// Clock ticks per second (`USER_HZ`) of `/proc/stat` and `/proc/<pid>/stat`.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

/// The whole disks (`/sys/block`'s entries), as [`rates`] wants them.
pub fn whole_disks() -> Vec<String> {
    match std::fs::read_dir("/sys/block") {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The current memory and load (`/proc/meminfo`, `/proc/loadavg`).
pub fn memory_and_load() -> io::Result<(Memory, LoadAverage)> {
    Ok((
        parse_meminfo(&read("/proc/meminfo")?)?,
        parse_loadavg(&read("/proc/loadavg")?)?,
    ))
}

/// `/proc/uptime`: seconds since boot.
pub fn parse_uptime(s: &str) -> io::Result<f64> {
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("/proc/uptime"))
}

/// `/proc/loadavg`: `0.66 0.28 0.14 2/345 6789`.
pub fn parse_loadavg(s: &str) -> io::Result<LoadAverage> {
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() < 4 {
        return Err(bad("/proc/loadavg"));
    }
    let num = |x: &str| x.parse::<f64>().map_err(|_| bad("/proc/loadavg"));
    let (running, total) = f[3].split_once('/').ok_or_else(|| bad("/proc/loadavg"))?;
    Ok(LoadAverage {
        one: num(f[0])?,
        five: num(f[1])?,
        fifteen: num(f[2])?,
        running: running.parse().map_err(|_| bad("/proc/loadavg"))?,
        total: total.parse().map_err(|_| bad("/proc/loadavg"))?,
    })
}

/// `/proc/meminfo` (values in kB) into bytes.
pub fn parse_meminfo(s: &str) -> io::Result<Memory> {
    let mut kv: HashMap<&str, u64> = HashMap::new();
    for line in s.lines() {
        let Some((k, rest)) = line.split_once(':') else {
            continue;
        };
        if let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse().ok()) {
            kv.insert(k.trim(), v);
        }
    }
    let kib = |k: &str| kv.get(k).copied().map(|v| v * 1024);
    let total = kib("MemTotal").ok_or_else(|| bad("/proc/meminfo"))?;
    let free = kib("MemFree").unwrap_or(0);
    // MemAvailable exists since Linux 3.14; before, free + buffers + cache is the estimate.
    let buffers = kib("Buffers").unwrap_or(0);
    let cached = kib("Cached").unwrap_or(0);
    let available = kib("MemAvailable").unwrap_or(free + buffers + cached);
    let used = total.saturating_sub(available);
    Ok(Memory {
        total_bytes: total,
        free_bytes: free,
        available_bytes: available,
        used_bytes: used,
        buffers_bytes: buffers,
        cached_bytes: cached,
        swap_total_bytes: kib("SwapTotal").unwrap_or(0),
        swap_free_bytes: kib("SwapFree").unwrap_or(0),
        used_percent: if total == 0 {
            0.0
        } else {
            round2(used as f64 * 100.0 / total as f64)
        },
    })
}

/// CPU time counters of one `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTicks {
    /// guest/guest_nice are already counted in user/nice, so they are left out.
    pub fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
}

/// The `cpu` lines of `/proc/stat`: the total and one per online CPU (by index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub total: CpuTicks,
    pub cores: Vec<(usize, CpuTicks)>,
}

pub fn parse_stat(s: &str) -> io::Result<CpuStat> {
    let mut out = CpuStat::default();
    let mut seen_total = false;
    for line in s.lines() {
        let mut f = line.split_whitespace();
        let Some(name) = f.next() else { continue };
        let Some(rest) = name.strip_prefix("cpu") else {
            continue;
        };
        let v: Vec<u64> = f.map(|x| x.parse().unwrap_or(0)).collect();
        if v.len() < 4 {
            return Err(bad("/proc/stat"));
        }
        let g = |i: usize| v.get(i).copied().unwrap_or(0);
        let t = CpuTicks {
            user: g(0),
            nice: g(1),
            system: g(2),
            idle: g(3),
            iowait: g(4),
            irq: g(5),
            softirq: g(6),
            steal: g(7),
        };
        if rest.is_empty() {
            out.total = t;
            seen_total = true;
        } else if let Ok(i) = rest.parse() {
            out.cores.push((i, t));
        }
    }
    if !seen_total {
        return Err(bad("/proc/stat"));
    }
    Ok(out)
}

/// One interface of `/proc/net/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// `/proc/net/dev`: two header lines, then `name: 8 receive fields 8 transmit fields`.
pub fn parse_net_dev(s: &str) -> io::Result<Vec<NetDev>> {
    let mut out = Vec::new();
    for line in s.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if v.len() < 16 {
            return Err(bad("/proc/net/dev"));
        }
        out.push(NetDev {
            name: name.trim().to_string(),
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errors: v[2],
            rx_dropped: v[3],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errors: v[10],
            tx_dropped: v[11],
        });
    }
    Ok(out)
}

/// One line of `/proc/diskstats` (sectors are 512 bytes whatever the device's sector size).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStat {
    pub name: String,
    pub reads: u64,
    pub sectors_read: u64,
    pub writes: u64,
    pub sectors_written: u64,
    /// Milliseconds spent doing I/O (field 10).
    pub io_ms: u64,
}

pub fn parse_diskstats(s: &str) -> io::Result<Vec<DiskStat>> {
    let mut out = Vec::new();
    for line in s.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 14 {
            return Err(bad("/proc/diskstats"));
        }
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        out.push(DiskStat {
            name: f[2].to_string(),
            reads: n(3),
            sectors_read: n(5),
            writes: n(7),
            sectors_written: n(9),
            io_ms: n(12),
        });
    }
    Ok(out)
}

// ---- filesystems ----

fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: statvfs is plain data; all-zero is a valid value and the call fills it in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `df` figures for the filesystem holding `path`.
pub fn fs_usage(path: &Path) -> io::Result<FilesystemUsage> {
    let st = statvfs(path)?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    let (frsize, blocks, bfree, bavail) = (
        st.f_frsize as u64,
        st.f_blocks as u64,
        st.f_bfree as u64,
        st.f_bavail as u64,
    );
    let total = blocks.saturating_mul(frsize);
    let used = blocks.saturating_sub(bfree).saturating_mul(frsize);
    let avail = bavail.saturating_mul(frsize);
    Ok(FilesystemUsage {
        path: path.display().to_string(),
        total_bytes: total,
        used_bytes: used,
        available_bytes: avail,
        used_percent: df_percent(used, avail),
    })
}

/// `df`'s Use%: used / (used + available), rounded up.
pub fn df_percent(used: u64, avail: u64) -> u8 {
    let denom = used as u128 + avail as u128;
    if denom == 0 {
        return 0;
    }
    (((used as u128) * 100).div_ceil(denom)).min(100) as u8
}

fn device_of(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.dev())
}

/// Human size as `df -h` prints it: powers of 1024, one decimal below 10, rounded up
/// (`3.4G`, `234G`, `512`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut v = bytes as f64;
    let mut unit = 0;
    v /= 1024.0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        let tenths = (v * 10.0).ceil() / 10.0;
        if tenths >= 10.0 {
            return format!("10{}", UNITS[unit]);
        }
        format!("{tenths:.1}{}", UNITS[unit])
    } else {
        let whole = v.ceil();
        if whole >= 1024.0 && unit < UNITS.len() - 1 {
            return format!("1.0{}", UNITS[unit + 1]);
        }
        format!("{whole:.0}{}", UNITS[unit])
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {

    #[test]
    fn pressure_and_process_stat() {
        let p = super::parse_pressure(
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=12345\nfull avg10=0.25 avg60=0.00 avg300=0.00 total=678\n",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(p.some.total_us, 12345);
        assert_eq!(p.full.unwrap().total_us, 678);
        assert!(super::parse_pressure("").is_err());
        let stat = "4242 (qemu-system-x86 (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 99 1234567 1000 18446744073709551615";
        let ps = super::parse_process_stat(stat, 4096).unwrap();
        assert_eq!(ps.cpu_ticks, 300);
        assert_eq!(ps.rss_bytes, 1000 * 4096);
    }

    /// A container's namespace: loopback left out, the rest summed; the caller's own
    /// namespace is not a container's (None).
    #[test]
    fn netns_traffic_leaves_out_lo_and_the_own_namespace() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n  eth1: 24 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0\n";
        let devs = super::parse_net_dev(text).unwrap();
        assert_eq!(super::traffic_without_lo(&devs), (1024, 206));
        assert_eq!(super::netns_traffic(std::process::id()), None);
    }

    use super::*;

    // Saved from a 2-vCPU Debian 12 Firecracker VM (kernel 6.18).
    const LOADAVG: &str = "0.66 0.28 0.14 3/412 77310\n";
    const UPTIME: &str = "5012.34 9311.02\n";
    const MEMINFO: &str = "MemTotal:       24634512 kB\nMemFree:        18120448 kB\nMemAvailable:   22093508 kB\nBuffers:          141756 kB\nCached:          3900464 kB\nSwapCached:            0 kB\nActive:          2551228 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n";
    const STAT_A: &str = "cpu  10000 50 4000 80000 1000 0 200 30 0 0\ncpu0 5000 25 2000 40000 500 0 100 15 0 0\ncpu1 5000 25 2000 40000 500 0 100 15 0 0\nintr 123456 0 0\nctxt 99999\nbtime 1764000000\nprocesses 7777\nprocs_running 2\nprocs_blocked 0\nsoftirq 1 2 3\n";
    const STAT_B: &str = "cpu  10100 50 4050 80150 1000 0 200 30 0 0\ncpu0 5100 25 2050 40050 500 0 100 15 0 0\ncpu1 5000 25 2000 40100 500 0 100 15 0 0\n";
    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 1073741824  200000    0    0    0     0          0         0 1073741824  200000    0    0    0     0       0          0\n  eth0: 987654321  654321    1    2    0     0          0         0 123456789  123456    3    4    0     0       0          0\n";
    const DISKSTATS: &str = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n 254       0 vda 61234 12345 4567890 23456 34567 45678 5678901 67890 0 43210 91346 0 0 0 0 1234 5678\n 254       1 vda1 60000 12000 4500000 23000 34000 45000 5600000 67000 0 43000 90000 0 0 0 0 0 0\n";

    #[test]
    fn loadavg_and_uptime() {
        let l = parse_loadavg(LOADAVG).unwrap();
        assert_eq!((l.one, l.five, l.fifteen), (0.66, 0.28, 0.14));
        assert_eq!((l.running, l.total), (3, 412));
        assert_eq!(parse_uptime(UPTIME).unwrap(), 5012.34);
        assert!(parse_loadavg("garbage").is_err());
    }

    #[test]
    fn meminfo_in_bytes() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.total_bytes, 24634512 * 1024);
        assert_eq!(m.available_bytes, 22093508 * 1024);
        assert_eq!(m.used_bytes, (24634512 - 22093508) * 1024);
        assert_eq!(m.used_percent, 10.31);
        assert_eq!(m.swap_total_bytes, 0);
        // Without MemAvailable (Linux < 3.14): free + buffers + cached.
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        assert_eq!(parse_meminfo(old).unwrap().available_bytes, 400 * 1024);
        assert!(parse_meminfo("nothing").is_err());
    }

    #[test]
    fn stat_counts_cores_and_rates() {
        let a = parse_stat(STAT_A).unwrap();
        assert_eq!(a.cores.len(), 2);
        assert_eq!(a.total.user, 10000);
        assert_eq!(a.total.steal, 30);
        let b = parse_stat(STAT_B).unwrap();
        // Over the interval: user +100, system +50, idle +150.
        let u = cpu_usage("cpu", &a.total, &b.total);
        assert_eq!(u.busy_percent, 50.0);
        assert_eq!(u.idle_percent, 50.0);
        let c1 = cpu_usage("cpu1", &a.cores[1].1, &b.cores[1].1);
        assert_eq!(c1.busy_percent, 0.0);
        assert_eq!(c1.idle_percent, 100.0);
    }

    #[test]
    fn net_dev_and_diskstats() {
        let n = parse_net_dev(NET_DEV).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[1].name, "eth0");
        assert_eq!(n[1].rx_bytes, 987654321);
        assert_eq!(n[1].tx_packets, 123456);
        assert_eq!(n[1].tx_dropped, 4);
        let d = parse_diskstats(DISKSTATS).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[1].name, "vda");
        assert_eq!(d[1].sectors_written, 5678901);
        assert_eq!(d[1].io_ms, 43210);
    }

    #[test]
    fn rates_between_readings() {
        let a = Readings {
            stat: parse_stat(STAT_A).unwrap(),
            net: parse_net_dev(NET_DEV).unwrap(),
            disks: parse_diskstats(DISKSTATS).unwrap(),
        };
        let mut b = a.clone();
        b.stat = parse_stat(STAT_B).unwrap();
        b.net[1].rx_bytes += 2000;
        b.disks[1].sectors_read += 8;
        b.disks[1].reads += 2;
        b.disks[1].io_ms += 500;
        let m = rates(
            &a,
            &b,
            Duration::from_secs(2),
            parse_meminfo(MEMINFO).unwrap(),
            parse_loadavg(LOADAVG).unwrap(),
            &["vda".into(), "loop0".into()],
        );
        assert_eq!(m.interval_ms, 2000);
        assert_eq!(m.cores.len(), 2);
        assert_eq!(m.cpu.busy_percent, 50.0);
        let eth0 = m.interfaces.iter().find(|i| i.name == "eth0").unwrap();
        assert_eq!(eth0.rx_bytes_per_sec, 1000.0);
        // Only whole disks that ever did I/O: vda (vda1 is a partition, loop0 is idle).
        assert_eq!(m.disks.len(), 1);
        assert_eq!(m.disks[0].read_bytes_per_sec, 2048.0);
        assert_eq!(m.disks[0].reads_per_sec, 1.0);
        assert_eq!(m.disks[0].busy_percent, 25.0);
    }

    #[test]
    fn human_sizes_like_df() {
        assert_eq!(human_size(512), "512");
        assert_eq!(human_size(3_650_722_201), "3.4G");
        assert_eq!(human_size(251_000_000_000), "234G");
        assert_eq!(human_size(1024 * 1024), "1.0M");
        assert_eq!(human_size(1_048_575_999), "1000M");
        assert_eq!(human_size(10 * 1024 - 1), "10K");
    }

    #[test]
    fn df_percent_rounds_up() {
        assert_eq!(df_percent(0, 100), 0);
        assert_eq!(df_percent(1, 1000), 1);
        assert_eq!(df_percent(50, 50), 50);
        assert_eq!(df_percent(10, 0), 100);
        assert_eq!(df_percent(0, 0), 0);
    }

    #[test]
    fn live_health_reads_this_host() {
        let h = health(Path::new("/tmp")).unwrap();
        assert!(h.cpu_count >= 1);
        assert!(h.memory.total_bytes > 0);
        assert_eq!(h.filesystems[0].path, "/");
        assert!(h.filesystems[0].total_bytes > 0);
    }
}
