//! The pools hostplane manages, one row per pool in the store's `settings` table
//! (`pool:<name>` → JSON). What is on the disks stays the truth for everything else (members'
//! paths, profiles, usage are read live); the record keeps what the disks cannot say: the
//! pool's name, its members' stable disk ids, whether it should be mounted at start, and
//! per-dataset settings.

use std::collections::BTreeMap;

use hostplane_types::pools::{MemberErrors, MemberRole, PoolKind};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::platform::store::Store;

const PREFIX: &str = "pool:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Stable disk id.
    pub disk: String,
    /// Device path when last seen (a hint; the id decides).
    pub path: String,
    /// UUID of the member's own filesystem (mergerfs members).
    #[serde(default)]
    pub uuid: Option<String>,
    pub role: MemberRole,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSettings {
    #[serde(default)]
    pub snapshot_retention: Option<u32>,
    /// When the dataset was made, kept once a rollback has replaced its subvolume (whose own
    /// creation time is then the snapshot's): `created_at` never changes (docs/conventions.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub name: String,
    pub kind: PoolKind,
    /// Filesystem UUID (btrfs, ext4, xfs).
    #[serde(default)]
    pub uuid: Option<String>,
    pub members: Vec<MemberRecord>,
    pub auto_mount: bool,
    /// mergerfs `minfreespace`.
    #[serde(default)]
    pub min_free_space: Option<u64>,
    /// mergerfs member filesystem type.
    #[serde(default)]
    pub member_fs: Option<String>,
    #[serde(default)]
    pub datasets: BTreeMap<String, DatasetSettings>,
    pub created_at: String,
    /// btrfs: each member's `device stats` counters (by devid) when the last scrub ended
    /// without uncorrectable errors. Health counts only errors beyond these: the kernel's
    /// counters never go down by themselves.
    #[serde(default)]
    pub error_baseline: BTreeMap<u64, MemberErrors>,
    /// Uncorrectable errors found by the last btrfs scrub (0 after a clean one).
    #[serde(default)]
    pub scrub_uncorrectable: u64,
}

impl PoolRecord {
    pub fn href(&self) -> String {
        super::href(&self.name)
    }

    pub fn data_members(&self) -> impl Iterator<Item = &MemberRecord> {
        self.members.iter().filter(|m| m.role == MemberRole::Data)
    }

    pub fn parity_members(&self) -> impl Iterator<Item = &MemberRecord> {
        self.members.iter().filter(|m| m.role == MemberRole::Parity)
    }
}

fn decode(key: &str, value: &str) -> Option<PoolRecord> {
    match serde_json::from_str(value) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(key, error = %e, "unreadable pool record; ignored");
            None
        }
    }
}

pub fn load_all(store: &Store) -> rusqlite::Result<Vec<PoolRecord>> {
    let rows: Vec<(String, String)> = store.read(|c| {
        let mut st =
            c.prepare("SELECT key, value FROM settings WHERE key >= ?1 AND key < ?2 ORDER BY key")?;
        st.query_map(["pool:", "pool;"], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    })?;
    Ok(rows.iter().filter_map(|(k, v)| decode(k, v)).collect())
}

pub fn load(store: &Store, name: &str) -> rusqlite::Result<Option<PoolRecord>> {
    let key = format!("{PREFIX}{name}");
    let v: Option<String> = store.read(|c| {
        c.query_row("SELECT value FROM settings WHERE key = ?1", [&key], |r| {
            r.get(0)
        })
        .optional()
    })?;
    Ok(v.and_then(|v| decode(&key, &v)))
}

pub fn save(store: &Store, rec: &PoolRecord) -> rusqlite::Result<()> {
    let json = serde_json::to_string(rec).expect("pool record serializes");
    store.set_setting(&format!("{PREFIX}{}", rec.name), &json)
}

/// Inserts a new record; false when the name is taken.
pub fn insert(store: &Store, rec: &PoolRecord) -> rusqlite::Result<bool> {
    let json = serde_json::to_string(rec).expect("pool record serializes");
    store.write(|tx| {
        let n = tx.execute(
            "INSERT OR IGNORE INTO settings(key, value) VALUES (?1, ?2)",
            [format!("{PREFIX}{}", rec.name), json],
        )?;
        Ok(n == 1)
    })
}

pub fn delete(store: &Store, name: &str) -> rusqlite::Result<()> {
    store.write(|tx| {
        tx.execute(
            "DELETE FROM settings WHERE key = ?1",
            [format!("{PREFIX}{name}")],
        )?;
        Ok(())
    })
}

/// Applies `f` to the stored record (read-modify-write in one transaction).
pub fn update(
    store: &Store,
    name: &str,
    f: impl FnOnce(&mut PoolRecord),
) -> rusqlite::Result<Option<PoolRecord>> {
    let key = format!("{PREFIX}{name}");
    store.write(|tx| {
        let v: Option<String> = tx
            .query_row("SELECT value FROM settings WHERE key = ?1", [&key], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(mut rec) = v.and_then(|v| decode(&key, &v)) else {
            return Ok(None);
        };
        f(&mut rec);
        let json = serde_json::to_string(&rec).expect("pool record serializes");
        tx.execute(
            "UPDATE settings SET value = ?2 WHERE key = ?1",
            [&key, &json],
        )?;
        Ok(Some(rec))
    })
}
