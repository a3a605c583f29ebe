//! The audit log writer and reader. The HTTP auth layer records every mutating request here,
//! accepted or refused, with who made it and how it ended.
//!
//! Bounded against floods (docs/limits.md):
//! - every text field is cut to [`MAX_FIELD`] bytes ([`TRUNCATED`] marks a cut);
//! - refused anonymous requests are aggregated: one entry per remote address and status per
//!   [`AGGREGATE_WINDOW`], holding the first request's method and path, a `count` and the
//!   `last_time`; the count is kept in memory and flushed with [`Audit::flush`] (every 5 s
//!   by the daemon's housekeeping, and when the window ends);
//! - retention: entries older than `audit.max_age_days` and all but the newest
//!   `audit.max_rows` are deleted by [`Audit::prune`] (at start and hourly; the row cap also
//!   every [`ROW_CHECK_EVERY`] entries written).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostplane_types::audit::AuditEntry;
use rusqlite::params;

use crate::platform::store::Store;
use crate::platform::time;

/// Longest path, target, remote, actor or method stored, in bytes (the marker included).
pub const MAX_FIELD: usize = 512;
/// Ends a field that was cut.
pub const TRUNCATED: &str = "...[truncated]";
/// Refused anonymous requests from one address with one status within this window share
/// one entry.
pub const AGGREGATE_WINDOW: Duration = Duration::from_secs(60);
/// The row cap is enforced after this many new entries (and at start and hourly).
pub const ROW_CHECK_EVERY: u64 = 1000;
/// The actor of a request without (valid) credentials.
pub const ANONYMOUS: &str = "anonymous";

/// Retention of the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_rows: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(90 * 86_400),
            max_rows: 200_000,
        }
    }
}

/// An aggregated entry whose window is open.
struct Aggregate {
    id: i64,
    opened: Instant,
    /// Requests counted since the last flush.
    unflushed: u64,
    last_time: String,
}

pub struct Audit {
    store: Arc<Store>,
    retention: Retention,
    /// (remote, status) → the open aggregated entry.
    open: Mutex<HashMap<(String, u16), Aggregate>>,
    inserts: AtomicU64,
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

/// `s` cut to at most [`MAX_FIELD`] bytes at a character boundary, with [`TRUNCATED`] at the
/// end when it was cut.
pub fn bounded(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_FIELD {
        return s.into();
    }
    let mut end = MAX_FIELD - TRUNCATED.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATED}", &s[..end]).into()
}

impl Audit {
    pub fn new(store: Arc<Store>, retention: Retention) -> Audit {
        Audit {
            store,
            retention,
            open: Mutex::new(HashMap::new()),
            inserts: AtomicU64::new(0),
        }
    }

    pub fn record(&self, r: Record) {
        let actor = bounded(r.actor);
        let method = bounded(r.method);
        let path = bounded(r.path);
        let target = bounded(r.target);
        let remote = bounded(r.remote);
        let now = time::now_string();
        if r.actor == ANONYMOUS && r.status >= 400 {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let key = (remote.to_string(), r.status);
            if let Some(a) = open.get_mut(&key)
                && a.opened.elapsed() < AGGREGATE_WINDOW
            {
                a.unflushed += 1;
                a.last_time = now;
                return;
            }
            // A new window: the old one's count goes to its row first.
            if let Some(old) = open.remove(&key) {
                self.write_counts(&[(old.id, old.unflushed, old.last_time)]);
            }
            if let Some(id) = self.insert(
                &now, &actor, None, &method, &path, &target, r.status, &remote,
            ) {
                open.insert(
                    key,
                    Aggregate {
                        id,
                        opened: Instant::now(),
                        unflushed: 0,
                        last_time: now,
                    },
                );
            }
            return;
        }
        self.insert(
            &now,
            &actor,
            r.auth_method,
            &method,
            &path,
            &target,
            r.status,
            &remote,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        now: &str,
        actor: &str,
        auth_method: Option<&str>,
        method: &str,
        path: &str,
        target: &str,
        status: u16,
        remote: &str,
    ) -> Option<i64> {
        let outcome = if status < 400 { "success" } else { "failure" };
        let res = self.store.write(|tx| {
            tx.execute(
                "INSERT INTO audit(time, actor, auth_method, method, path, target, status, outcome, remote, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)",
                params![now, actor, auth_method, method, path, target, status, outcome, remote],
            )?;
            Ok(tx.last_insert_rowid())
        });
        match res {
            Ok(id) => {
                if self.inserts.fetch_add(1, Ordering::Relaxed) % ROW_CHECK_EVERY
                    == ROW_CHECK_EVERY - 1
                    && let Err(e) = self.prune_rows()
                {
                    tracing::warn!(error = %e, "cannot prune the audit log");
                }
                Some(id)
            }
            Err(e) => {
                // Losing an audit line is bad; failing the user's request for it would be worse.
                tracing::error!(error = %e, path, "cannot write audit entry");
                None
            }
        }
    }

    fn write_counts(&self, counts: &[(i64, u64, String)]) {
        let counts: Vec<_> = counts.iter().filter(|(_, n, _)| *n > 0).collect();
        if counts.is_empty() {
            return;
        }
        let res = self.store.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE audit SET count = count + ?1, last_time = ?2 WHERE id = ?3",
            )?;
            for (id, n, last) in &counts {
                stmt.execute(params![*n as i64, last, id])?;
            }
            Ok(())
        });
        if let Err(e) = res {
            tracing::error!(error = %e, "cannot write audit counts");
        }
    }

    /// Writes the counts of aggregated entries and closes the windows that ended.
    pub fn flush(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts = Vec::new();
        for a in open.values_mut() {
            if a.unflushed > 0 {
                counts.push((a.id, a.unflushed, a.last_time.clone()));
                a.unflushed = 0;
            }
        }
        open.retain(|_, a| a.opened.elapsed() < AGGREGATE_WINDOW);
        self.write_counts(&counts);
    }

    /// Deletes entries older than the retention age and beyond the row cap; returns how many.
    pub fn prune(&self) -> rusqlite::Result<usize> {
        let cutoff = time::format(time::now() - self.retention.max_age);
        let old = self
            .store
            .write(|tx| tx.execute("DELETE FROM audit WHERE time < ?1", [cutoff]))?;
        Ok(old + self.prune_rows()?)
    }

    /// Keeps the newest `max_rows` entries (ids only grow, so this is one range delete).
    fn prune_rows(&self) -> rusqlite::Result<usize> {
        let max = i64::try_from(self.retention.max_rows).unwrap_or(i64::MAX);
        self.store.write(|tx| {
            tx.execute(
                "DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?1",
                [max],
            )
        })
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
        self.store.read_snapshot(|c| {
            let total = Store::row_count(c, "audit")?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit ORDER BY id DESC LIMIT ?1 OFFSET ?2"
            ))?;
            let limit = limit.map(|l| l as i64).unwrap_or(-1);
            let entries = stmt
                .query_map([limit, offset as i64], entry_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((entries, total))
        })
    }

    /// Up to `n` entries older than entry `before` (newest first): the next chunk of a listing
    /// that streams the whole log without holding it (keyset paging, no `OFFSET` walk).
    pub fn older_than(&self, before: i64, n: usize) -> rusqlite::Result<Vec<AuditEntry>> {
        self.store.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            stmt.query_map([before, n as i64], entry_from_row)?
                .collect()
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

const COLUMNS: &str =
    "id, time, actor, auth_method, method, path, target, status, outcome, remote, count, last_time";

fn entry_from_row(r: &rusqlite::Row) -> rusqlite::Result<AuditEntry> {
    let id: i64 = r.get(0)?;
    let count: i64 = r.get(10)?;
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
        count: count.max(1) as u64,
        last_time: r.get(11)?,
        href: format!("/api/v1/audit/{id}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(retention: Retention) -> (tempfile::TempDir, Audit) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db.sqlite")).unwrap());
        (dir, Audit::new(store, retention))
    }

    fn anon<'a>(path: &'a str, status: u16, remote: &'a str) -> Record<'a> {
        Record {
            actor: ANONYMOUS,
            auth_method: None,
            method: "POST",
            path,
            target: path,
            status,
            remote,
        }
    }

    #[test]
    fn fields_are_bounded_at_char_boundaries() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(5000);
        let b = bounded(&long);
        assert!(b.len() <= MAX_FIELD, "{}", b.len());
        assert!(b.ends_with(TRUNCATED));
        let exact = "a".repeat(MAX_FIELD);
        assert_eq!(bounded(&exact), exact);
    }

    #[test]
    fn anonymous_failures_are_aggregated_per_remote_and_status() {
        let (_d, a) = audit(Retention::default());
        let long = format!("/api/v1/{}", "x".repeat(16 * 1024));
        for _ in 0..500 {
            a.record(anon(&long, 401, "192.0.2.1"));
        }
        a.record(anon("/api/v1/tokens", 429, "192.0.2.1"));
        a.record(anon("/api/v1/tokens", 401, "192.0.2.2"));
        a.flush();
        let log = a.list().unwrap();
        assert_eq!(log.len(), 3, "{log:?}");
        let first = log
            .iter()
            .find(|e| e.remote == "192.0.2.1" && e.status == 401);
        let first = first.unwrap();
        assert_eq!(first.count, 500);
        assert!(first.path.len() <= MAX_FIELD && first.path.ends_with(TRUNCATED));
        assert!(first.last_time.is_some());
        // Authenticated requests and anonymous successes are one entry each.
        for _ in 0..3 {
            a.record(Record {
                actor: "admin",
                auth_method: Some("bearer"),
                method: "POST",
                path: "/api/v1/tokens",
                target: "/api/v1/tokens",
                status: 403,
                remote: "192.0.2.1",
            });
        }
        assert_eq!(a.list().unwrap().len(), 6);
    }

    #[test]
    fn prune_by_age_and_rows() {
        let (_d, a) = audit(Retention {
            max_age: Duration::from_secs(86_400),
            max_rows: 10,
        });
        a.store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO audit(time, actor, method, path, target, status, outcome, remote)
                     VALUES ('2001-01-01T00:00:00.000Z', 'old', 'POST', '/p', '/p', 200, 'success', 'r')",
                    [],
                )
            })
            .unwrap();
        for i in 0..25 {
            a.record(Record {
                actor: "admin",
                auth_method: Some("bearer"),
                method: "POST",
                path: &format!("/p/{i}"),
                target: "/p",
                status: 200,
                remote: "r",
            });
        }
        assert_eq!(a.prune().unwrap(), 16);
        let log = a.list().unwrap();
        assert_eq!(log.len(), 10);
        assert_eq!(log[0].path, "/p/24");
        assert!(log.iter().all(|e| e.actor != "old"));
    }
}
