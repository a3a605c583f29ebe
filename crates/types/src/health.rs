//! Health and live metrics of the host (`GET /system/health`, `GET /system/metrics`), read from
//! `/proc` and `statvfs` on every request. The Jidoteki `GET /admin/health` answer is derived
//! from [`SystemHealth`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A point-in-time view of the host: load, memory, CPUs, filesystems, uptime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemHealth {
    /// Seconds since boot (`/proc/uptime`).
    pub uptime_secs: f64,
    /// Online CPUs (the `cpuN` lines of `/proc/stat`).
    pub cpu_count: u32,
    pub load: LoadAverage,
    pub memory: Memory,
    /// The root filesystem and the filesystem of the daemon's data dir (once when they are the
    /// same filesystem).
    pub filesystems: Vec<FilesystemUsage>,
    /// When this was read (RFC 3339, UTC).
    pub checked_at: String,
}

/// `/proc/loadavg`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    /// Runnable scheduling entities now.
    pub running: u32,
    /// Scheduling entities that exist.
    pub total: u32,
}

/// `/proc/meminfo`, in bytes. `used_bytes` is `total - available` (what `free` calls used,
/// minus reclaimable cache).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Memory {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
    pub buffers_bytes: u64,
    pub cached_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
    /// `used_bytes` as a percentage of `total_bytes`, 0–100.
    pub used_percent: f64,
}

/// One filesystem as `df` shows it (`statvfs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FilesystemUsage {
    /// The path asked about (`/`, the data dir).
    pub path: String,
    pub total_bytes: u64,
    /// Blocks in use (total − free).
    pub used_bytes: u64,
    /// What an unprivileged writer may still use.
    pub available_bytes: u64,
    /// `used / (used + available)`, rounded up, as `df` computes "Use%".
    pub used_percent: u8,
}

/// Query of `GET /system/metrics`.
/// (Unknown parameters are ignored: `?token=`/`?hash=` authentication travels in the query.)
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Sampling interval in milliseconds, 100 to 4000 (default 1000). The answer comes after
    /// this long.
    #[param(minimum = 100, maximum = 4000)]
    pub interval_ms: Option<u64>,
}

/// Rates measured over an interval: two readings of `/proc/stat`, `/proc/net/dev` and
/// `/proc/diskstats` `interval_ms` apart, plus memory and load at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemMetrics {
    /// The interval actually measured, in milliseconds.
    pub interval_ms: u64,
    /// End of the interval (RFC 3339, UTC).
    pub sampled_at: String,
    /// All CPUs together.
    pub cpu: CpuUsage,
    /// One entry per online CPU.
    pub cores: Vec<CpuUsage>,
    pub load: LoadAverage,
    pub memory: Memory,
    /// Network interfaces (`/proc/net/dev`), loopback included.
    pub interfaces: Vec<InterfaceRates>,
    /// Whole block devices (`/sys/block`), partitions excluded.
    pub disks: Vec<DiskRates>,
}

/// Share of time over the interval, in percent (0–100 each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CpuUsage {
    /// `cpu` for the total, `cpu0`, `cpu1`… for cores.
    pub name: String,
    /// Everything but idle and iowait.
    pub busy_percent: f64,
    /// user + nice.
    pub user_percent: f64,
    /// system + irq + softirq.
    pub system_percent: f64,
    pub iowait_percent: f64,
    pub steal_percent: f64,
    pub idle_percent: f64,
}

/// Per-interface traffic rates, plus the counters at the end of the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InterfaceRates {
    pub name: String,
    pub rx_bytes_per_sec: f64,
    pub tx_bytes_per_sec: f64,
    pub rx_packets_per_sec: f64,
    pub tx_packets_per_sec: f64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// Per-disk I/O rates over the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiskRates {
    /// Kernel name, e.g. `vda`, `loop3`.
    pub name: String,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
    /// Time the device had I/O in flight, as a share of the interval (0–100).
    pub busy_percent: f64,
}
