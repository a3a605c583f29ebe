//! The store: SQLite in WAL mode, in the data dir, with versioned migrations.
//!
//! One writer connection behind a mutex (SQLite allows one writer anyway) and a few reader
//! connections that WAL lets run beside it. Every write that matters goes through
//! [`Store::write`], which wraps it in an `IMMEDIATE` transaction. Queries are short (indexed,
//! small rows), so they run inline on the async worker rather than paying a thread hop.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use rusqlite_migration::{M, Migrations};

const READERS: usize = 4;

/// Schema history. Append only: never edit a migration that has shipped.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            r#"
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            password_hash TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            role TEXT NOT NULL,
            scopes TEXT NOT NULL DEFAULT '[]',
            secret_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            last_used_at TEXT
        );
        CREATE INDEX tokens_owner ON tokens(owner);
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            progress INTEGER NOT NULL DEFAULT 0,
            target TEXT,
            lock_key TEXT,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            error_code TEXT,
            error_message TEXT,
            result TEXT
        );
        CREATE INDEX jobs_status ON jobs(status);
        CREATE TABLE job_log (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            time TEXT NOT NULL,
            line TEXT NOT NULL,
            PRIMARY KEY (job_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            type TEXT NOT NULL,
            href TEXT NOT NULL,
            actor TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time TEXT NOT NULL,
            actor TEXT NOT NULL,
            auth_method TEXT,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            target TEXT NOT NULL,
            status INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            remote TEXT NOT NULL
        );
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        "#,
        ),
        // VMs (areas::vms): definitions as JSON, and templates.
        M::up(
            r#"
        CREATE TABLE vms (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            def TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE vm_templates (
            name TEXT PRIMARY KEY,
            data TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        "#,
        ),
        // Shares (areas::shares): one row per SMB share or NFS export, and the Unix accounts
        // hostplane created for share users (only those are ever deleted).
        M::up(
            r#"
        CREATE TABLE shares (
            protocol TEXT NOT NULL,
            name TEXT NOT NULL COLLATE NOCASE,
            spec TEXT NOT NULL,
            PRIMARY KEY (protocol, name)
        );
        CREATE TABLE share_accounts (
            name TEXT PRIMARY KEY,
            created_at TEXT NOT NULL
        );
        "#,
        ),
        // Audit bounds (platform::audit): refused anonymous requests are aggregated into one
        // entry with a count; retention deletes by time.
        M::up(
            r#"
        ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE audit ADD COLUMN last_time TEXT;
        CREATE INDEX audit_time ON audit(time);
        "#,
        ),
        // Network (areas::network): what hostplane manages (bridges, addresses, NAT rules, port
        // forwards), one JSON spec per object; the source of truth re-applied at start.
        M::up(
            r#"
        CREATE TABLE network_objects (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (kind, id)
        );
        "#,
        ),
        // Row counts of the growing tables (jobs, audit), kept by triggers, so a collection's
        // `X-Total-Count` is one row read instead of a `COUNT(*)` that walks the whole table
        // (docs/benchmarks.md: `?limit=1` costs the same on 100,000 rows as on 20).
        M::up(
            r#"
        CREATE TABLE row_counts (
            name TEXT PRIMARY KEY,
            n INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO row_counts(name, n) VALUES
            ('jobs', (SELECT COUNT(*) FROM jobs)),
            ('audit', (SELECT COUNT(*) FROM audit));
        CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
            BEGIN UPDATE row_counts SET n = n + 1 WHERE name = 'jobs'; END;
        CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
            BEGIN UPDATE row_counts SET n = n - 1 WHERE name = 'jobs'; END;
        CREATE TRIGGER audit_count_insert AFTER INSERT ON audit
            BEGIN UPDATE row_counts SET n = n + 1 WHERE name = 'audit'; END;
        CREATE TRIGGER audit_count_delete AFTER DELETE ON audit
            BEGIN UPDATE row_counts SET n = n - 1 WHERE name = 'audit'; END;
        "#,
        ),
        // Compose stacks (areas::stacks): the files live in DATA_DIR/stacks/<name>/, the row
        // says which engine runs them and which services the file has.
        M::up(
            r#"
        CREATE TABLE stacks (
            name TEXT PRIMARY KEY,
            engine TEXT NOT NULL,
            services TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        "#,
        ),
        // Secrets (platform::secrets, sealed values) and provisioning (areas::provisioning):
        // recipes, profiles, artifacts (files in DATA_DIR/provisioning/artifacts/<sha256>),
        // runs; specs as JSON.
        M::up(
            r#"
        CREATE TABLE secrets (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            sealed BLOB NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE provisioning_objects (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            data TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (kind, id)
        );
        "#,
        ),
    ])
}

/// The schema version a fully migrated database has (`PRAGMA user_version`).
pub fn schema_version() -> i64 {
    let mut conn = Connection::open_in_memory().expect("in-memory SQLite");
    migrations()
        .to_latest(&mut conn)
        .expect("the migrations apply to an empty database");
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("store migration failed: {0}")]
    Migrate(#[from] rusqlite_migration::Error),
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
}

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Moves on after every write (see [`Store::generation`]).
    generation: AtomicU64,
    /// Listing answers valid at a generation (`platform::answers`).
    answers: crate::platform::answers::Answers,
}

/// Moves the generation on when dropped, which [`Store::write`] arranges to be after its
/// transaction ended (declared before it, dropped after it).
struct Bump<'a>(&'a AtomicU64);

impl Drop for Bump<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // NORMAL in WAL mode is durable against a process crash (kill -9); only power loss can
    // drop the last transactions, and never corrupts.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Query-planner stability: without it SQLite (3.46+) reads the bound LIMIT/OFFSET (and
    // STAT4-relevant values) while planning, marks those parameters, and re-prepares the cached
    // statement every time one is bound again. That was 22 % of the server CPU of
    // `GET /jobs?limit=1` (docs/benchmarks.md); the plans do not need the values.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut writer = Connection::open(path).map_err(open_err)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        configure(&writer).map_err(open_err)?;
        migrations().to_latest(&mut writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_err)?;
            configure(&conn).map_err(open_err)?;
            readers.push(Mutex::new(conn));
        }
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            answers: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A number that changes after every write this store commits (and after a replace): read
    /// it before reading rows, and an answer built from them is current as long as the number
    /// is the same (`platform::answers`). Only this process writes the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Listing answers kept until the next write.
    pub fn answers(&self) -> &crate::platform::answers::Answers {
        &self.answers
    }

    /// The row count of a table the `row_counts` triggers keep (`jobs`, `audit`), read on `c`.
    pub fn row_count(c: &Connection, table: &str) -> rusqlite::Result<usize> {
        let n: i64 = c
            .prepare_cached("SELECT n FROM row_counts WHERE name = ?1")?
            .query_row([table], |r| r.get(0))?;
        Ok(n.max(0) as usize)
    }

    /// Runs a read on one of the reader connections (they see committed data only).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        // Take the first free reader, starting at a rotating index; block on one if all busy.
        for i in 0..self.readers.len() {
            if let Ok(conn) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return f(&conn);
            }
        }
        let conn = self.readers[start % self.readers.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    /// Like [`Store::read`], but `f`'s statements share one read transaction: they see one
    /// snapshot (a page and its total agree even while a job is written) and take the WAL
    /// read lock once instead of once per statement.
    pub fn read_snapshot<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.read(|c| {
            if !c.is_autocommit() {
                // A transaction an earlier failure left open: end it first.
                c.execute_batch("ROLLBACK")?;
            }
            c.prepare_cached("BEGIN DEFERRED")?.execute([])?;
            let out = f(c);
            // COMMIT of a read-only transaction only releases the lock; try it even after an
            // error so the connection never stays inside a transaction.
            let end = c.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
            let out = out?;
            end?;
            Ok(out)
        })
    }

    /// Runs `f` in one `IMMEDIATE` transaction: all of it commits, or none of it.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // After the commit or the rollback (when `out` is dropped), still under the writer
        // lock: a reader that saw the old generation cannot have read the new rows' absence
        // as current (platform::answers).
        let _bump = Bump(&self.generation);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// `PRAGMA integrity_check`: "ok" when the database is sound.
    pub fn integrity_check(&self) -> rusqlite::Result<String> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
    }

    /// SQLite online backup of the whole database into the new file `dest`. Runs under the
    /// writer lock, so the copy is one consistent state; readers are not blocked.
    pub fn backup_to(&self, dest: &Path) -> rusqlite::Result<()> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut dst = Connection::open(dest)?;
        let backup = rusqlite::backup::Backup::new(&conn, &mut dst)?;
        backup.run_to_completion(4096, std::time::Duration::ZERO, None)?;
        drop(backup);
        // A self-contained file: no WAL beside it.
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        Ok(())
    }

    /// Checks that `path` is a sound hostplane database this version can use: integrity,
    /// a schema no newer than ours, the core tables. Returns its schema version.
    pub fn check_candidate(path: &Path) -> Result<i64, String> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("not an SQLite database: {e}"))?;
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| format!("not an SQLite database: {e}"))?;
        if integrity != "ok" {
            return Err(format!("the database is damaged: {integrity}"));
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        let ours = schema_version();
        if version < 1 || version > ours {
            return Err(format!(
                "schema version {version} is not one this hostplane reads (1 .. {ours})"
            ));
        }
        for table in ["users", "tokens", "settings"] {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .map_err(|e| e.to_string())?;
            if n != 1 {
                return Err(format!("the table {table} is missing"));
            }
        }
        Ok(version)
    }

    /// Replaces the whole database with the one in `src` (checked with [`Self::check_candidate`];
    /// it is migrated in place first), except the tables in `keep`, whose live rows are carried
    /// over. All of it happens under the writer lock in one SQLite backup transaction, so no
    /// write interleaves and readers see the old state or the new one, never a mix.
    pub fn replace_with(&self, src: &Path, keep: &[&str]) -> Result<(), StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let _bump = Bump(&self.generation);
        let mut staged = Connection::open(src)?;
        configure(&staged)?;
        migrations().to_latest(&mut staged)?;
        staged.execute("ATTACH DATABASE ?1 AS live", [self.path.to_string_lossy()])?;
        {
            let tx = staged.transaction()?;
            // Child tables first when deleting, parents first when copying.
            for t in keep.iter().rev() {
                tx.execute(&format!("DELETE FROM main.\"{t}\""), [])?;
            }
            for t in keep {
                tx.execute(
                    &format!("INSERT INTO main.\"{t}\" SELECT * FROM live.\"{t}\""),
                    [],
                )?;
            }
            tx.commit()?;
        }
        staged.execute("DETACH DATABASE live", [])?;
        let backup = rusqlite::backup::Backup::new(&staged, &mut conn)?;
        backup.run_to_completion(4096, std::time::Duration::ZERO, None)?;
        Ok(())
    }

    pub fn get_setting(&self, key: &str) -> rusqlite::Result<Option<String>> {
        use rusqlite::OptionalExtension;
        self.read(|c| {
            c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    pub fn set_setting(&self, key: &str, value: &str) -> rusqlite::Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    /// A cached paging statement keeps its plan when LIMIT/OFFSET are bound again (QPSG);
    /// without it SQLite re-prepares it on every execution.
    #[test]
    fn cached_paging_statements_are_not_reprepared() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let reprepares = store
            .read(|c| {
                for (limit, offset) in [(1i64, 0i64), (20, 0), (1, 5), (256, 0)] {
                    let mut stmt = c.prepare_cached(
                        "SELECT id FROM jobs ORDER BY id DESC LIMIT ?1 OFFSET ?2",
                    )?;
                    stmt.query_map([limit, offset], |r| r.get::<_, String>(0))?
                        .for_each(drop);
                }
                let stmt =
                    c.prepare_cached("SELECT id FROM jobs ORDER BY id DESC LIMIT ?1 OFFSET ?2")?;
                Ok(stmt.get_status(rusqlite::StatementStatus::RePrepare))
            })
            .unwrap();
        assert_eq!(reprepares, 0);
    }

    #[test]
    fn open_write_read_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        store.set_setting("k", "v1").unwrap();
        store.set_setting("k", "v2").unwrap();
        assert_eq!(store.get_setting("k").unwrap().as_deref(), Some("v2"));
        assert_eq!(store.integrity_check().unwrap(), "ok");
        // Reopening runs no migration twice.
        drop(store);
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        assert_eq!(store.get_setting("k").unwrap().as_deref(), Some("v2"));
    }

    #[test]
    fn backup_then_replace_keeps_history_tables() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        store.set_setting("k", "at-backup").unwrap();
        let copy = dir.path().join("copy.sqlite");
        store.backup_to(&copy).unwrap();
        assert_eq!(Store::check_candidate(&copy).unwrap(), schema_version());
        store.set_setting("k", "later").unwrap();
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO audit(time, actor, method, path, target, status, outcome, remote)
                     VALUES ('t', 'a', 'POST', '/p', '/p', 200, 'ok', 'r')",
                    [],
                )
            })
            .unwrap();
        store.replace_with(&copy, &["audit"]).unwrap();
        assert_eq!(
            store.get_setting("k").unwrap().as_deref(),
            Some("at-backup")
        );
        let audit: i64 = store
            .read(|c| c.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(audit, 1, "history survives the restore");
        assert_eq!(store.integrity_check().unwrap(), "ok");
        // Not a database at all.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not sqlite").unwrap();
        assert!(Store::check_candidate(&junk).is_err());
    }

    #[test]
    fn failed_write_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let r: rusqlite::Result<()> = store.write(|tx| {
            tx.execute("INSERT INTO settings VALUES ('a', '1')", [])?;
            tx.execute("INSERT INTO nonexistent VALUES (1)", [])?;
            Ok(())
        });
        assert!(r.is_err());
        assert_eq!(store.get_setting("a").unwrap(), None);
    }

    /// The statements of a snapshot read see one state: a write committed between them is not
    /// seen (a plain read would see it in its second statement), and a failed snapshot read
    /// leaves no transaction open.
    #[test]
    fn snapshot_read_sees_one_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        store.set_setting("k", "before").unwrap();
        let get = |c: &Connection| -> rusqlite::Result<String> {
            c.query_row("SELECT value FROM settings WHERE key = 'k'", [], |r| {
                r.get(0)
            })
        };
        let (first, second) = store
            .read_snapshot(|c| {
                let first = get(c)?;
                store.set_setting("k", "after").unwrap();
                Ok((first, get(c)?))
            })
            .unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("before", "before"));
        let seen = store
            .read(|c| {
                let first = get(c)?;
                store.set_setting("k", "later").unwrap();
                Ok((first, get(c)?))
            })
            .unwrap();
        assert_eq!(seen, ("after".to_string(), "later".to_string()));
        let failed: rusqlite::Result<()> =
            store.read_snapshot(|c| c.execute_batch("SELECT * FROM nonexistent"));
        assert!(failed.is_err());
        for _ in 0..8 {
            assert!(store.read(|c| Ok(c.is_autocommit())).unwrap());
        }
    }
}
