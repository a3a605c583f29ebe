//! The shares hostplane serves: one row per share in the store's `shares` table (protocol,
//! name, the record as JSON). The generated SMB and NFS files are derived from these rows and
//! nothing else.

use hostplane_types::shares::{NfsClientRule, NfsSquash, ShareProtocol};
use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::platform::store::Store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmbOptions {
    pub read_only: bool,
    pub browseable: bool,
    pub guest_ok: bool,
    pub valid_users: Vec<String>,
    pub write_list: Vec<String>,
    pub recycle_bin: bool,
    pub macos: bool,
    pub time_machine: bool,
    pub time_machine_max_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NfsOptions {
    pub export_id: u32,
    pub read_only: bool,
    pub squash: NfsSquash,
    pub clients: Vec<NfsClientRule>,
}

/// What the protocol adds to a share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Options {
    Smb(SmbOptions),
    Nfs(NfsOptions),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareRecord {
    pub name: String,
    pub pool: String,
    pub dataset: String,
    pub subpath: String,
    pub enabled: bool,
    pub comment: String,
    pub options: Options,
    pub created_at: String,
    pub updated_at: String,
}

impl ShareRecord {
    pub fn protocol(&self) -> ShareProtocol {
        match self.options {
            Options::Smb(_) => ShareProtocol::Smb,
            Options::Nfs(_) => ShareProtocol::Nfs,
        }
    }

    pub fn href(&self) -> String {
        super::href(self.protocol(), &self.name)
    }

    /// Whether `other` is the same share (protocol, name without case).
    pub fn same(&self, protocol: ShareProtocol, name: &str) -> bool {
        self.protocol() == protocol && self.name.eq_ignore_ascii_case(name)
    }
}

pub fn load_all(store: &Store) -> rusqlite::Result<Vec<ShareRecord>> {
    let rows: Vec<(String, String)> = store.read(|c| {
        let mut stmt = c.prepare_cached("SELECT name, spec FROM shares ORDER BY protocol, name")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, spec)| match serde_json::from_str(&spec) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(share = name, error = %e, "unreadable share record; ignored");
                None
            }
        })
        .collect())
}

/// Replaces every row with `recs` in one transaction.
pub fn save_all(store: &Store, recs: &[ShareRecord]) -> rusqlite::Result<()> {
    store.write(|tx| {
        tx.execute("DELETE FROM shares", [])?;
        let mut stmt =
            tx.prepare_cached("INSERT INTO shares(protocol, name, spec) VALUES (?1, ?2, ?3)")?;
        for r in recs {
            let spec = serde_json::to_string(r)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            stmt.execute(params![r.protocol().as_str(), r.name, spec])?;
        }
        Ok(())
    })
}

/// Unix accounts hostplane created (and may therefore delete).
pub fn account_created(store: &Store, name: &str) -> rusqlite::Result<bool> {
    store.read(|c| {
        c.query_row(
            "SELECT COUNT(*) FROM share_accounts WHERE name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    })
}

pub fn record_account(store: &Store, name: &str, now: &str) -> rusqlite::Result<()> {
    store.write(|tx| {
        tx.execute(
            "INSERT OR IGNORE INTO share_accounts(name, created_at) VALUES (?1, ?2)",
            params![name, now],
        )
        .map(|_| ())
    })
}

/// How many share users' Unix accounts hostplane created and still has.
pub fn account_count(store: &Store) -> rusqlite::Result<i64> {
    store.read(|c| c.query_row("SELECT COUNT(*) FROM share_accounts", [], |r| r.get(0)))
}

/// The settings key naming the share group hostplane created (empty: none).
pub const GROUP_CREATED: &str = "shares.group_created";

pub fn forget_account(store: &Store, name: &str) -> rusqlite::Result<()> {
    store.write(|tx| {
        tx.execute("DELETE FROM share_accounts WHERE name = ?1", [name])
            .map(|_| ())
    })
}
