//! Disks area (`/api/v1/disks`): block devices with stable ids, SMART, power state, live
//! performance, and the destructive jobs (wipe, partition, format). See docs/storage.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a disk's `id` was derived, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiskIdSource {
    /// World Wide Name (`wwn-0x…`) or NVMe EUI/NGUID (`nvme-eui.…`): unique and permanent.
    Wwn,
    /// Bus, model and serial number, as in `/dev/disk/by-id` (`ata-Model_Serial`).
    Serial,
    /// Loop device: `loop-` and 16 hex digits of the FNV-1a hash of the backing file's path,
    /// so the id follows the image, not the loop number.
    BackingFile,
    /// Nothing better: `dev-` and the kernel name (`dev-vda`). Not stable if the kernel
    /// renumbers devices.
    KernelName,
}

/// Power state as the drive reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    /// Spinning / ready (`hdparm -C`: active/idle; NVMe drives are always reported active).
    Active,
    /// Spun down; reading it would spin it up.
    Standby,
    /// Deeper than standby; needs a reset to wake.
    Sleeping,
    /// The device has no power management hostplane can query (loop, zram, virtio), or the
    /// query failed.
    Unknown,
}

/// SMART overall health verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmartHealth {
    Passed,
    Failed,
}

/// A filesystem (or other signature) found on a disk or partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Filesystem {
    /// `ext4`, `xfs`, `btrfs`, `vfat`, `swap`, …
    pub fstype: String,
    /// Filesystem version, when known (`1.0`).
    pub version: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// Where it is mounted (all mount points, bind mounts included).
    pub mountpoints: Vec<String>,
    /// Size in bytes as the mounted filesystem reports it (statvfs); null when not mounted.
    pub size_bytes: Option<u64>,
    /// Bytes used (statvfs); null when not mounted.
    pub used: Option<u64>,
    /// Bytes available to unprivileged users (statvfs); null when not mounted.
    pub available: Option<u64>,
}

/// A partition of a disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Partition {
    /// Kernel name, e.g. `sda1`, `loop3p1`.
    pub name: String,
    pub path: String,
    /// Partition number (1-based).
    pub number: u32,
    /// Start offset in bytes.
    pub start: u64,
    /// Size in bytes.
    pub size_bytes: u64,
    /// GPT partition name, when known.
    pub part_label: Option<String>,
    pub part_uuid: Option<String>,
    /// Partition type GUID (GPT) or code (MBR), when known.
    pub part_type: Option<String>,
    pub filesystem: Option<Filesystem>,
}

/// Live throughput, sampled from `/proc/diskstats` over `interval_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiskPerformance {
    /// Length of the sampling interval.
    pub interval_ms: u64,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub read_iops: f64,
    pub write_iops: f64,
    /// Share of the interval the device was busy (0–100).
    pub utilization_percent: f64,
}

/// A block device (whole disk; partitions are listed inside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Disk {
    pub href: String,
    /// Stable id (see `id_source`). `GET /disks/{id}` also accepts the kernel name (`sda`).
    pub id: String,
    pub id_source: DiskIdSource,
    /// Kernel name, e.g. `sda`, `nvme0n1`, `loop3`.
    pub name: String,
    /// Device node, e.g. `/dev/sda`.
    pub path: String,
    /// `/dev/disk/by-id/…` links (from the udev database; empty without udev).
    pub by_id: Vec<String>,
    /// `disk` or `loop`.
    pub kind: String,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    /// Size in bytes.
    pub size_bytes: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    /// Spinning disk (the kernel reports loop devices as rotational).
    pub rotational: bool,
    pub removable: bool,
    pub read_only: bool,
    /// `sata`, `sas`, `nvme`, `usb`, `virtio`, … when known.
    pub transport: Option<String>,
    /// Backing file of a loop device.
    pub backing_file: Option<String>,
    /// Partition table type (`gpt`, `dos`), when known.
    pub partition_table: Option<String>,
    /// Filesystem on the whole device (no partition table).
    pub filesystem: Option<Filesystem>,
    pub partitions: Vec<Partition>,
    /// Mount points of the disk and its partitions (a btrfs member counts as mounted when
    /// its filesystem is).
    pub mountpoints: Vec<String>,
    /// Name of the hostplane pool that uses this disk.
    pub pool: Option<String>,
    /// The disk holds the root filesystem: destructive operations are always refused.
    pub holds_root: bool,
    /// Mounted, used as swap, or held by another device (md, dm).
    pub in_use: bool,
    /// The device matches `disks.allow`: destructive operations may touch it.
    pub allowed: bool,
    pub power_state: PowerState,
    /// Drive temperature from SMART, when `smartctl` could say without waking the disk.
    pub temperature_celsius: Option<i64>,
    /// SMART overall health, when `smartctl` could say without waking the disk.
    pub smart_health: Option<SmartHealth>,
    /// Present only with `?performance=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<DiskPerformance>,
}

/// One ATA SMART attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SmartAttribute {
    pub id: u32,
    pub name: String,
    /// Normalized current value.
    pub value: u32,
    pub worst: u32,
    pub threshold: u32,
    /// Raw value as a number.
    pub raw: u64,
    /// Raw value as smartctl prints it (may carry min/max).
    pub raw_string: String,
    /// Pre-failure (vs. old-age) attribute.
    pub prefailure: bool,
    /// `now` or `past` when the value is or was at or below its threshold; null otherwise.
    pub when_failed: Option<String>,
}

/// NVMe SMART / health information log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NvmeHealth {
    pub critical_warning: u64,
    pub available_spare_percent: u64,
    pub available_spare_threshold_percent: u64,
    pub percentage_used: u64,
    pub data_units_read: u64,
    pub data_units_written: u64,
    pub unsafe_shutdowns: u64,
    pub media_errors: u64,
    pub num_err_log_entries: u64,
}

/// What `smartctl -j -a` says about a drive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SmartReport {
    pub disk: String,
    /// `ATA`, `NVMe` or `SCSI`.
    pub protocol: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub capacity: Option<u64>,
    /// Overall health self-assessment; null when the drive did not report it.
    pub health: Option<SmartHealth>,
    pub temperature_celsius: Option<i64>,
    pub power_on_hours: Option<u64>,
    pub power_cycles: Option<u64>,
    /// ATA: reallocated sectors (attribute 5), a common early-failure sign.
    pub reallocated_sectors: Option<u64>,
    /// ATA: pending sectors (attribute 197).
    pub pending_sectors: Option<u64>,
    /// ATA: offline uncorrectable sectors (attribute 198).
    pub offline_uncorrectable: Option<u64>,
    pub attributes: Vec<SmartAttribute>,
    pub nvme: Option<NvmeHealth>,
    /// Attributes at or below threshold now, and other reasons smartctl flagged.
    pub warnings: Vec<String>,
    /// smartctl's exit status (a bit mask; see smartctl(8) "RETURN VALUES").
    pub exit_status: i64,
}

/// Body of `POST /disks/{id}/wipe`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WipeRequest {}

/// GPT partition type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionType {
    /// Linux filesystem (8300).
    #[default]
    Linux,
    /// EFI system partition (ef00).
    Efi,
    /// Linux swap (8200).
    Swap,
}

/// One partition to create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// Size in bytes (rounded down to MiB, at least 1 MiB); absent = the rest of the disk
    /// (only for the last partition).
    #[serde(default)]
    #[schema(minimum = 1048576)]
    pub size_bytes: Option<u64>,
    /// GPT partition name (1–36 of A-Z a-z 0-9 _ . -).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_.-]+$", max_length = 36)]
    pub name: Option<String>,
    #[serde(default)]
    pub r#type: PartitionType,
}

/// Body of `POST /disks/{id}/partition`: a new GPT table replaces whatever is there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionRequest {
    /// Partitions in order (1–16). Absent or empty: one partition over the whole disk.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub partitions: Vec<PartitionSpec>,
}

/// Filesystem types `format` can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FormatType {
    Ext4,
    Xfs,
    Btrfs,
}

impl FormatType {
    pub fn as_str(self) -> &'static str {
        match self {
            FormatType::Ext4 => "ext4",
            FormatType::Xfs => "xfs",
            FormatType::Btrfs => "btrfs",
        }
    }
}

/// Body of `POST /disks/{id}/format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatRequest {
    pub filesystem: FormatType,
    /// Filesystem label: A-Z a-z 0-9 _ . -, not starting with `-`; ext4 at most 16, xfs 12,
    /// btrfs 255 characters.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_.][A-Za-z0-9_.-]*$", max_length = 255)]
    pub label: Option<String>,
    /// Format this partition number (1, 2, …) instead of the whole disk.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub partition: Option<u32>,
}

/// Answer of `POST /disks/{id}/standby` and `/wake`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PowerStateResult {
    pub disk: String,
    pub power_state: PowerState,
}
