//! The audit log writer and reader. The HTTP auth layer records every mutating request here,
//! accepted or refused, with who made it and how it ended.

use std::sync::Arc;

use hostplane_types::audit::AuditEntry;
use rusqlite::params;

use crate::platform::store::Store;
use crate::platform::time;

pub struct Audit {
    store: Arc<Store>,
}

/// One entry before it has an id.
pub struct Record<'a> {
    pub actor: &'a str,
    pub auth_method: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub target: &'a str,
    pub status: u16,
    pub remote: &'a str,
}

impl Audit {
    pub fn new(store: Arc<Store>) -> Audit {
        Audit { store }
    }

    pub fn record(&self, r: Record) {
        let outcome = if r.status < 400 { "success" } else { "failure" };
        let res = self.store.write(|tx| {
            tx.execute(
                "INSERT INTO audit(time, actor, auth_method, method, path, target, status, outcome, remote)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    time::now_string(),
                    r.actor,
                    r.auth_method,
                    r.method,
                    r.path,
                    r.target,
                    r.status,
                    outcome,
                    r.remote
                ],
            )
        });
        if let Err(e) = res {
            // Losing an audit line is bad; failing the user's request for it would be worse.
            tracing::error!(error = %e, path = r.path, "cannot write audit entry");
        }
    }

    /// Newest first.
    pub fn list(&self) -> rusqlite::Result<Vec<AuditEntry>> {
        self.page(0, None).map(|(entries, _)| entries)
    }

    /// One page, newest first, and how many entries there are in all.
    pub fn page(
        &self,
        offset: usize,
        limit: Option<usize>,
    ) -> rusqlite::Result<(Vec<AuditEntry>, usize)> {
        self.store.read(|c| {
            let total: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM audit")?
                .query_row([], |r| r.get(0))?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit ORDER BY id DESC LIMIT ?1 OFFSET ?2"
            ))?;
            let limit = limit.map(|l| l as i64).unwrap_or(-1);
            let entries = stmt
                .query_map([limit, offset as i64], entry_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((entries, total as usize))
        })
    }

    pub fn get(&self, id: i64) -> rusqlite::Result<Option<AuditEntry>> {
        use rusqlite::OptionalExtension;
        self.store.read(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM audit WHERE id = ?1"),
                [id],
                entry_from_row,
            )
            .optional()
        })
    }
}

const COLUMNS: &str = "id, time, actor, auth_method, method, path, target, status, outcome, remote";

fn entry_from_row(r: &rusqlite::Row) -> rusqlite::Result<AuditEntry> {
    let id: i64 = r.get(0)?;
    Ok(AuditEntry {
        id,
        time: r.get(1)?,
        actor: r.get(2)?,
        auth_method: r.get(3)?,
        method: r.get(4)?,
        path: r.get(5)?,
        target: r.get(6)?,
        status: r.get(7)?,
        outcome: r.get(8)?,
        remote: r.get(9)?,
        href: format!("/api/v1/audit/{id}"),
    })
}
