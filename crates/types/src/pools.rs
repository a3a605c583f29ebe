//! Pools area (`/api/v1/pools`): btrfs, single-disk ext4/xfs and mergerfs (+ snapraid) pools,
//! their datasets and snapshots. See docs/storage.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A size in a request: integer bytes, or a string `<number>[K|M|G|T|P]` with binary units
/// (`"100M"` = 100 MiB, `"1.5G"`; `KiB`/`KB` spellings and lower case are accepted too). Check
/// it with [`Size::bytes`] (the handler answers 422 `invalid_size` for a bad string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// The pattern a size string must match.
pub const SIZE_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?([KMGTPkmgtp](i?[Bb])?)?$";

impl Size {
    /// The size in bytes, or why the string is not a size.
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            Size::Bytes(b) => Ok(*b),
            Size::Text(t) => parse_size(t),
        }
    }
}

impl From<u64> for Size {
    fn from(b: u64) -> Size {
        Size::Bytes(b)
    }
}

/// Parses `"4096"`, `"100M"`, `"1.5G"`, `"2TiB"` (binary units) into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a size: bytes, or a number with K, M, G, T or P (binary units), e.g. \"100M\" or \"1.5G\""
        )
    };
    let t = text.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let unit = unit.to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let int: u64 = int.parse().map_err(|_| bad())?;
    let mult: u64 = 1 << shift;
    let whole = int.checked_mul(mult).ok_or_else(bad)?;
    if frac.is_empty() {
        return Ok(whole);
    }
    if shift == 0 {
        return Err(format!("{text:?}: bytes must be a whole number"));
    }
    // Fraction of the unit, exact in integers (up to 12 digits), rounded down.
    if frac.len() > 12 {
        return Err(bad());
    }
    let f: u128 = frac.parse().map_err(|_| bad())?;
    let part = f * mult as u128 / 10u128.pow(frac.len() as u32);
    whole.checked_add(part as u64).ok_or_else(bad)
}

impl utoipa::PartialSchema for Size {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, SchemaType, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::Integer))
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0))
                    .description(Some("bytes")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::String))
                    .pattern(Some(SIZE_PATTERN))
                    .description(Some(
                        "a number with an optional binary unit K, M, G, T, P (KiB/KB spellings too)",
                    )),
            )
            .description(Some(
                "A size: integer bytes, or a string such as \"100M\" or \"1.5G\" (binary units)",
            ))
            .examples([serde_json::json!("100M"), serde_json::json!(104857600)])
            .into()
    }
}

impl utoipa::ToSchema for Size {}

/// What a pool is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// One btrfs filesystem over one or more disks (raid profiles, subvolume datasets,
    /// snapshots, scrub).
    Btrfs,
    /// One ext4 disk.
    Ext4,
    /// One XFS disk (at least 300 MB).
    Xfs,
    /// mergerfs over member filesystems (one per disk), optionally with snapraid parity.
    Mergerfs,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Btrfs => "btrfs",
            PoolKind::Ext4 => "ext4",
            PoolKind::Xfs => "xfs",
            PoolKind::Mergerfs => "mergerfs",
        }
    }
}

/// btrfs block group profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BtrfsProfile {
    Single,
    Dup,
    Raid0,
    Raid1,
    Raid1c3,
    Raid1c4,
    Raid10,
}

impl BtrfsProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            BtrfsProfile::Single => "single",
            BtrfsProfile::Dup => "dup",
            BtrfsProfile::Raid0 => "raid0",
            BtrfsProfile::Raid1 => "raid1",
            BtrfsProfile::Raid1c3 => "raid1c3",
            BtrfsProfile::Raid1c4 => "raid1c4",
            BtrfsProfile::Raid10 => "raid10",
        }
    }

    /// Devices the profile needs at least.
    pub fn min_devices(self) -> usize {
        match self {
            BtrfsProfile::Single | BtrfsProfile::Dup | BtrfsProfile::Raid0 => 1,
            BtrfsProfile::Raid1 | BtrfsProfile::Raid10 => 2,
            BtrfsProfile::Raid1c3 => 3,
            BtrfsProfile::Raid1c4 => 4,
        }
    }

    /// Parses btrfs' spelling (`RAID1`, `single`, `DUP`).
    pub fn parse(s: &str) -> Option<BtrfsProfile> {
        Some(match s.to_ascii_lowercase().as_str() {
            "single" => BtrfsProfile::Single,
            "dup" => BtrfsProfile::Dup,
            "raid0" => BtrfsProfile::Raid0,
            "raid1" => BtrfsProfile::Raid1,
            "raid1c3" => BtrfsProfile::Raid1c3,
            "raid1c4" => BtrfsProfile::Raid1c4,
            "raid10" => BtrfsProfile::Raid10,
            _ => return None,
        })
    }
}

/// Pool health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolHealth {
    /// Mounted, every member present, no error counters.
    Online,
    /// Mounted, but a member is missing, the filesystem is mounted degraded, or a member's
    /// error counters are not zero.
    Degraded,
    /// Not mounted; every member present.
    Unmounted,
    /// Not mounted, and members are missing.
    Unavailable,
}

/// Error counters of a pool member (btrfs `device stats`; zero elsewhere).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberErrors {
    pub write_io: u64,
    pub read_io: u64,
    pub flush_io: u64,
    pub corruption: u64,
    pub generation: u64,
}

impl MemberErrors {
    pub fn total(&self) -> u64 {
        self.write_io + self.read_io + self.flush_io + self.corruption + self.generation
    }
}

/// Role of a pool member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Data,
    /// snapraid parity (mergerfs pools).
    Parity,
}

/// A disk that belongs to a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PoolMember {
    /// Stable disk id, as in `/api/v1/disks`.
    pub disk: String,
    pub disk_href: String,
    /// Device path now (null when the disk is missing).
    pub path: Option<String>,
    pub present: bool,
    pub role: MemberRole,
    /// btrfs device id.
    pub devid: Option<u64>,
    /// Size the pool uses on this member, in bytes.
    pub size_bytes: Option<u64>,
    /// Where a mergerfs member filesystem is mounted.
    pub mountpoint: Option<String>,
    pub errors: MemberErrors,
}

/// Space of a mounted pool (statvfs of its mount point).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolUsage {
    /// Size in bytes.
    pub size_bytes: u64,
    pub used: u64,
    pub available: u64,
}

/// A storage pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pool {
    pub href: String,
    pub name: String,
    pub kind: PoolKind,
    /// Filesystem UUID (btrfs, ext4, xfs).
    pub uuid: Option<String>,
    /// `<pools.mount_root>/<name>`.
    pub mountpoint: String,
    pub mounted: bool,
    /// The pool is remounted when the daemon starts (true after create, import and mount;
    /// false after unmount).
    pub auto_mount: bool,
    pub health: PoolHealth,
    /// Why the health is not `online`.
    pub health_detail: Option<String>,
    /// Space, when mounted.
    pub usage: Option<PoolUsage>,
    /// btrfs data profile (when mounted).
    pub data_profile: Option<BtrfsProfile>,
    /// btrfs metadata profile (when mounted).
    pub metadata_profile: Option<BtrfsProfile>,
    /// btrfs quotas (qgroups) are on: datasets report usage and may have a quota.
    pub quotas: bool,
    pub members: Vec<PoolMember>,
    /// snapraid parity is configured (mergerfs).
    pub snapraid: bool,
    pub created_at: String,
}

/// Body of `POST /pools`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePoolRequest {
    /// Pool name: 1–64 of A-Z a-z 0-9 _ . -, starting with a letter or digit, without `..`.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    pub kind: PoolKind,
    /// Disks (id, kernel name or /dev path). Each must be in `disks.allow`, unmounted, not in
    /// a pool and not the root disk. Everything on them is erased. ext4/xfs take exactly one.
    #[schema(min_items = 1)]
    pub devices: Vec<String>,
    /// btrfs data profile. Default: `single` for one disk, `raid1` for more.
    #[serde(default)]
    pub data_profile: Option<BtrfsProfile>,
    /// btrfs metadata profile. Default: `dup` for one disk, `raid1` for more.
    #[serde(default)]
    pub metadata_profile: Option<BtrfsProfile>,
    /// btrfs: turn quotas (qgroups) on so datasets report usage and can have quotas.
    /// Default true.
    #[serde(default)]
    pub quotas: Option<bool>,
    /// mergerfs: filesystem made on each member (`ext4` or `xfs`). Default `ext4`.
    #[serde(default)]
    #[schema(pattern = "^(ext4|xfs)$")]
    pub member_filesystem: Option<String>,
    /// mergerfs: disks that hold snapraid parity (one per parity level, each at least as
    /// large as the largest data disk). Empty: no parity.
    #[serde(default)]
    pub parity_devices: Vec<String>,
    /// mergerfs: `minfreespace` (bytes, or `"100M"`/`"1.5G"`): a branch with less free space
    /// gets no new files. Default 104857600 (100 MiB).
    #[serde(default)]
    pub min_free_space: Option<Size>,
}

/// A filesystem found on disks that no pool uses yet (`GET /pools/importable`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImportablePool {
    /// Filesystem UUID: pass it to `POST /pools/import`.
    pub uuid: String,
    pub kind: PoolKind,
    pub label: Option<String>,
    /// Devices where the filesystem was found.
    pub devices: Vec<String>,
    /// Their disk ids.
    pub disks: Vec<String>,
    /// Every device is in `disks.allow` (import needs that).
    pub allowed: bool,
}

/// Body of `POST /pools/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportPoolRequest {
    /// Name for the pool (the rules of `POST /pools`).
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    /// Filesystem UUID (from `GET /pools/importable`): lower-case, as blkid reports it.
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub uuid: String,
}

/// Body of `POST /pools/{name}/mount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MountRequest {
    /// btrfs: mount with a member missing (`-o degraded`), to replace or remove it.
    #[serde(default)]
    pub degraded: bool,
}

/// Body of `POST /pools/{name}/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDeviceRequest {
    /// Disk id, kernel name or /dev path (same rules as pool creation).
    #[schema(min_length = 1)]
    pub device: String,
}

/// Body of `POST /pools/{name}/devices/{disk}/replace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceDeviceRequest {
    /// The new disk (id, kernel name or /dev path), at least as large as the old one.
    #[schema(min_length = 1)]
    pub device: String,
}

/// Body of `POST /pools/{name}/balance`: rebalance, converting profiles when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceRequest {
    #[serde(default)]
    pub data_profile: Option<BtrfsProfile>,
    #[serde(default)]
    pub metadata_profile: Option<BtrfsProfile>,
}

/// Result of a scrub job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScrubResult {
    /// `finished`, `aborted`, `interrupted`.
    pub status: String,
    pub duration_secs: u64,
    pub data_bytes_scrubbed: u64,
    pub tree_bytes_scrubbed: u64,
    pub read_errors: u64,
    pub csum_errors: u64,
    pub verify_errors: u64,
    pub super_errors: u64,
    /// Errors found (read + csum + verify + super).
    pub errors_found: u64,
    /// Errors repaired from a good copy.
    pub corrected_errors: u64,
    /// Errors with no good copy left (data lost).
    pub uncorrectable_errors: u64,
    pub unverified_errors: u64,
}

/// Per-dataset usage from btrfs quota groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatasetUsage {
    /// Bytes the dataset references (shared with snapshots included).
    pub referenced: u64,
    /// Bytes only this dataset holds (freed if it is deleted).
    pub exclusive: u64,
}

/// A dataset: a btrfs subvolume, or a directory on ext4/xfs/mergerfs pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Dataset {
    pub href: String,
    pub pool: String,
    pub name: String,
    pub path: String,
    /// `subvolume` or `directory`.
    pub kind: String,
    pub subvolume_id: Option<u64>,
    pub created_at: Option<String>,
    /// From quota groups; null when quotas are off or not supported.
    pub usage: Option<DatasetUsage>,
    /// Limit on referenced bytes; null = none.
    pub quota: Option<u64>,
    /// Keep this many newest snapshots; older ones are deleted when a snapshot is taken.
    /// null = keep all.
    pub snapshot_retention: Option<u32>,
    pub snapshots: u32,
}

/// Body of `POST /pools/{pool}/datasets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatasetRequest {
    /// 1–64 of A-Z a-z 0-9 _ . -, starting with a letter or digit, without `..`; not
    /// `lost+found`.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: String,
    /// Quota (max referenced): bytes, or `"100M"`/`"1.5G"` (btrfs only). Not below what the
    /// dataset uses (422 `quota_below_usage`).
    #[serde(default)]
    pub quota: Option<Size>,
    /// Snapshots to keep (1–10000); absent = all.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub snapshot_retention: Option<u32>,
}

/// Body of `PATCH /pools/{pool}/datasets/{dataset}`: only the fields given change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDatasetRequest {
    /// New name (renames the dataset and its snapshot folder); the rules of the name at
    /// creation.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: Option<String>,
    /// Quota (max referenced): bytes, or `"100M"`/`"1.5G"`; 0 removes it (btrfs only). Not
    /// below what the dataset uses (422 `quota_below_usage`); raising or removing always works.
    #[serde(default)]
    pub quota: Option<Size>,
    /// Snapshots to keep (0–10000); 0 = keep all.
    #[serde(default)]
    #[schema(maximum = 10000)]
    pub snapshot_retention: Option<u32>,
}

/// A read-only snapshot of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub href: String,
    pub pool: String,
    pub dataset: String,
    pub name: String,
    pub path: String,
    pub subvolume_id: Option<u64>,
    pub created_at: Option<String>,
    pub read_only: bool,
    pub usage: Option<DatasetUsage>,
}

/// Body of `POST .../snapshots`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    /// Snapshot name (1–64 of A-Z a-z 0-9 _ . -, starting with a letter or digit, without
    /// `..`); default the UTC time, `YYYYMMDDTHHMMSSZ`.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 64)]
    pub name: Option<String>,
}

/// Body of `POST .../snapshots/{snapshot}/rollback`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Keep the dataset's current state as a read-only snapshot named
    /// `pre-rollback-YYYYMMDDTHHMMSSZ` instead of deleting it. Default false.
    #[serde(default)]
    pub keep_current: bool,
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn sizes_in_bytes_and_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("1kb"), Ok(1024));
        assert_eq!(parse_size("0.5K"), Ok(512));
        for bad in [
            "",
            "M",
            "1.5",
            "12X",
            "-1M",
            "1..5G",
            ".5G",
            "1.G",
            "1 000",
            "99999999999P",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        let s: Size = serde_json::from_str("\"1.5G\"").unwrap();
        assert_eq!(s.bytes(), Ok(3 << 29));
        let s: Size = serde_json::from_str("7").unwrap();
        assert_eq!(s.bytes(), Ok(7));
        assert!(serde_json::from_str::<Size>("-7").is_err());
    }
}
