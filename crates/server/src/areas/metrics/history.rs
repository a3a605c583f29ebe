//! The metrics history store: SQLite with rollup tiers, no HTTP, the clock a parameter.
//!
//! Its own database file (`DATA_DIR/metrics.db`), not tables in the main store: a write every
//! few seconds must not queue behind (or in front of) the store's single writer, backups of the
//! store need not carry months of samples, and the file can be deleted to start over.
//!
//! Flow: [`History::record`] writes one raw point per series at `now` (tier 0), then
//! [`History::roll`] closes every bucket of each coarser tier that ended since the last call
//! (one `INSERT … SELECT … GROUP BY` per tier from the tier below: averages weighted by the
//! sample count, maxima of maxima) and deletes what aged out of each tier. [`History::query`]
//! picks the coarsest tier whose resolution fits the step and whose retention covers the
//! start, and regroups it to the step.
//!
//! Size per series is bounded by the tiers ([`TIERS`]): raw (one point per sample; 8640 at
//! 10 s) for a day, 10080 × 1 min, 1488 × 30 min, 1464 × 6 h, 261 × 1 week — at most
//! [`max_points_per_series`] rows.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// A source of "now" (unix seconds): the system clock, or a test's.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// One resolution: its bucket width (0: raw samples) and how long it is kept (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Tier {
    pub step: i64,
    pub keep: i64,
}

const DAY: i64 = 86_400;

/// Raw for a day, then 1 min for a week, 30 min for a month, 6 h for a year, 1 week for 5
/// years (Proxmox keeps 1 min, 30 min, 6 h and 1 week, netdata per-second to hourly tiers).
pub const TIERS: [Tier; 5] = [
    Tier { step: 0, keep: DAY },
    Tier { step: 60, keep: 7 * DAY },
    Tier { step: 1800, keep: 31 * DAY },
    Tier { step: 21_600, keep: 366 * DAY },
    Tier { step: 604_800, keep: 5 * 365 * DAY },
];

/// The most rows one series can hold with samples every `interval` seconds.
pub fn max_points_per_series(interval: i64) -> i64 {
    TIERS
        .iter()
        .map(|t| t.keep / if t.step == 0 { interval.max(1) } else { t.step } + 1)
        .sum()
}

/// A series: its name and labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl SeriesKey {
    pub fn new(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// A label matcher of a query: `k="v"` or `k!="v"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub label: String,
    pub value: String,
    pub negate: bool,
}

impl Matcher {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.label).map(String::as_str).unwrap_or("");
        (v == self.value) != self.negate
    }
}

/// Parses `{a="x",b!="y"}` or `a=x,b!=y` (quotes optional).
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, String> {
    let s = s.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(s);
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (label, value, negate) = if let Some((l, v)) = part.split_once("!=") {
            (l, v, true)
        } else if let Some((l, v)) = part.split_once('=') {
            (l, v, false)
        } else {
            return Err(format!("{part:?} is not label=\"value\""));
        };
        let label = label.trim();
        if label.is_empty()
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!("{label:?} is not a label name"));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(value);
        out.push(Matcher {
            label: label.to_string(),
            value: value.to_string(),
            negate,
        });
    }
    Ok(out)
}

/// One series of a query answer: (bucket start, average, maximum) oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    pub key: SeriesKey,
    pub points: Vec<(i64, f64, f64)>,
}

pub struct History {
    conn: Mutex<Connection>,
    /// (name, labels JSON) → series id.
    ids: Mutex<HashMap<(String, String), i64>>,
    /// The 1-minute bucket of the last rollup: nothing closes within a minute.
    rolled_minute: Mutex<Option<i64>>,
}

fn labels_json(l: &BTreeMap<String, String>) -> String {
    serde_json::to_string(l).unwrap_or_else(|_| "{}".into())
}

impl History {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<History> {
        Self::with(Connection::open(path)?)
    }

    /// An in-memory history (tests, benchmarks).
    pub fn in_memory() -> rusqlite::Result<History> {
        Self::with(Connection::open_in_memory()?)
    }

    fn with(conn: Connection) -> rusqlite::Result<History> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS series (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                labels TEXT NOT NULL,
                UNIQUE (name, labels)
             );
             -- (tier, ts, series): rollups and pruning are ranges of time.
             CREATE TABLE IF NOT EXISTS points (
                tier INTEGER NOT NULL,
                ts INTEGER NOT NULL,
                series INTEGER NOT NULL,
                avg REAL NOT NULL,
                max REAL NOT NULL,
                n INTEGER NOT NULL,
                PRIMARY KEY (tier, ts, series)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS rolled (
                tier INTEGER PRIMARY KEY,
                until INTEGER NOT NULL
             );",
        )?;
        Ok(History {
            conn: Mutex::new(conn),
            ids: Mutex::new(HashMap::new()),
            rolled_minute: Mutex::new(None),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn series_id(&self, tx: &Connection, key: &SeriesKey) -> rusqlite::Result<i64> {
        let lj = labels_json(&key.labels);
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = ids.get(&(key.name.clone(), lj.clone())) {
            return Ok(*id);
        }
        tx.execute(
            "INSERT OR IGNORE INTO series(name, labels) VALUES (?1, ?2)",
            params![key.name, lj],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM series WHERE name = ?1 AND labels = ?2",
            params![key.name, lj],
            |r| r.get(0),
        )?;
        ids.insert((key.name.clone(), lj), id);
        Ok(id)
    }

    /// Records one sample of each series at `now`, then rolls up and prunes.
    pub fn record(&self, now: i64, values: &[(SeriesKey, f64)]) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO points(tier, ts, series, avg, max, n) VALUES (0, ?1, ?2, ?3, ?3, 1)",
            )?;
            for (key, v) in values {
                if !v.is_finite() {
                    continue;
                }
                let id = self.series_id(&tx, key)?;
                ins.execute(params![now, id, v])?;
            }
        }
        let minute = now.div_euclid(TIERS[1].step);
        let mut rolled = self.rolled_minute.lock().unwrap_or_else(|p| p.into_inner());
        if *rolled != Some(minute) {
            self.roll_in(&tx, now)?;
            *rolled = Some(minute);
        }
        tx.commit()
    }

    /// Closes the buckets that ended by `now` in each tier and prunes every tier.
    pub fn roll(&self, now: i64) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        self.roll_in(&tx, now)?;
        tx.commit()
    }

    fn roll_in(&self, tx: &Connection, now: i64) -> rusqlite::Result<()> {
        for (k, tier) in TIERS.iter().enumerate().skip(1) {
            let until = now - now.rem_euclid(tier.step);
            let done: Option<i64> = tx
                .query_row("SELECT until FROM rolled WHERE tier = ?1", [k as i64], |r| {
                    r.get(0)
                })
                .optional()?;
            // First run: start from the oldest point below, so nothing recorded is skipped.
            let from = match done {
                Some(d) => d,
                None => tx
                    .query_row(
                        "SELECT MIN(ts) FROM points WHERE tier = ?1",
                        [k as i64 - 1],
                        |r| r.get::<_, Option<i64>>(0),
                    )?
                    .map(|t| t - t.rem_euclid(tier.step))
                    .unwrap_or(until),
            };
            if until > from {
                tx.execute(
                    "INSERT OR REPLACE INTO points(tier, ts, series, avg, max, n)
                     SELECT ?1, ts - (ts % ?2) AS b, series, SUM(avg * n) / SUM(n), MAX(max), SUM(n)
                     FROM points WHERE tier = ?3 AND ts >= ?4 AND ts < ?5
                     GROUP BY b, series",
                    params![k as i64, tier.step, k as i64 - 1, from, until],
                )?;
            }
            if done != Some(until.max(from)) {
                tx.execute(
                    "INSERT OR REPLACE INTO rolled(tier, until) VALUES (?1, ?2)",
                    params![k as i64, until.max(from)],
                )?;
            }
        }
        for (k, tier) in TIERS.iter().enumerate() {
            tx.execute(
                "DELETE FROM points WHERE tier = ?1 AND ts < ?2",
                params![k as i64, now - tier.keep],
            )?;
        }
        // Series with no point left (a VM deleted long ago) go, at most once per 6 h bucket.
        if now.rem_euclid(TIERS[3].step) < TIERS[3].step / 360 + 60 {
            let n = tx.execute(
                "DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series FROM points)",
                [],
            )?;
            if n > 0 {
                self.ids.lock().unwrap_or_else(|p| p.into_inner()).clear();
            }
        }
        Ok(())
    }

    /// The tier a query over `[start, end]` at `step` reads at `now`.
    pub fn pick_tier(now: i64, start: i64, step: i64) -> usize {
        let covering: Vec<usize> = (0..TIERS.len())
            .filter(|&k| start >= now - TIERS[k].keep)
            .collect();
        if covering.is_empty() {
            return TIERS.len() - 1;
        }
        covering
            .iter()
            .copied()
            .filter(|&k| TIERS[k].step <= step)
            .max()
            .unwrap_or(covering[0])
    }

    /// Known series named `name` matching `matchers` (all series when `name` is None).
    pub fn series(
        &self,
        name: Option<&str>,
        matchers: &[Matcher],
    ) -> rusqlite::Result<Vec<(i64, SeriesKey)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id, name, labels FROM series ORDER BY name, labels")?;
        let rows = stmt
            .query_map([], |r| {
                let labels: String = r.get(2)?;
                Ok((
                    r.get::<_, i64>(0)?,
                    SeriesKey {
                        name: r.get(1)?,
                        labels: serde_json::from_str(&labels).unwrap_or_default(),
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter(|(_, k)| name.is_none_or(|n| k.name == n))
            .filter(|(_, k)| matchers.iter().all(|m| m.matches(&k.labels)))
            .collect())
    }

    /// Points of the matching series in `[start, end]`, regrouped to `step` seconds.
    pub fn query(
        &self,
        now: i64,
        name: Option<&str>,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        step: i64,
    ) -> rusqlite::Result<Vec<SeriesPoints>> {
        let step = step.max(1);
        let series = self.series(name, matchers)?;
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let tier = Self::pick_tier(now, start, step);
        let conn = self.conn();
        // The chosen tier up to where it is rolled up, then each finer tier for the newer
        // part, so the last (still open) buckets of a coarse tier are not missing.
        let mut rolled: HashMap<usize, i64> = HashMap::new();
        {
            let mut st = conn.prepare_cached("SELECT tier, until FROM rolled")?;
            for row in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
                let (k, u) = row?;
                rolled.insert(k as usize, u);
            }
        }
        let mut segments = Vec::new();
        let mut from = start;
        for k in (0..=tier).rev() {
            let until = if k == 0 { i64::MAX } else { rolled.get(&k).copied().unwrap_or(from) };
            if until > from {
                segments.push((k, from, end.min(until.saturating_sub(1))));
            }
            from = from.max(until);
            if from > end {
                break;
            }
        }
        let mut stmt = conn.prepare_cached(
            "SELECT series, ts - (ts % ?1) AS b, SUM(avg * n), SUM(n), MAX(max)
             FROM points WHERE tier = ?2 AND ts >= ?3 AND ts <= ?4
             GROUP BY series, b",
        )?;
        // (series, bucket) → (weighted sum, count, max)
        let mut acc: BTreeMap<(i64, i64), (f64, i64, f64)> = BTreeMap::new();
        for (k, lo, hi) in segments {
            let rows = stmt.query_map(params![step, k as i64, lo, hi], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, f64>(4)?,
                ))
            })?;
            for row in rows {
                let (id, b, sum, n, max) = row?;
                let e = acc.entry((id, b)).or_insert((0.0, 0, f64::NEG_INFINITY));
                e.0 += sum;
                e.1 += n;
                e.2 = e.2.max(max);
            }
        }
        let mut by_id: HashMap<i64, Vec<(i64, f64, f64)>> = HashMap::new();
        for ((id, b), (sum, n, max)) in acc {
            by_id
                .entry(id)
                .or_default()
                .push((b, sum / n.max(1) as f64, max));
        }
        Ok(series
            .into_iter()
            .filter_map(|(id, key)| {
                by_id
                    .remove(&id)
                    .map(|points| SeriesPoints { key, points })
            })
            .collect())
    }

    /// Rows per tier (tests, benchmarks).
    pub fn rows_per_tier(&self) -> rusqlite::Result<Vec<i64>> {
        let conn = self.conn();
        (0..TIERS.len())
            .map(|k| {
                conn.query_row(
                    "SELECT COUNT(*) FROM points WHERE tier = ?1",
                    [k as i64],
                    |r| r.get(0),
                )
            })
            .collect()
    }

    /// The database's size in bytes (pages in use after a checkpoint).
    pub fn size_bytes(&self) -> rusqlite::Result<i64> {
        let conn = self.conn();
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((pages - free) * size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test clock: `now` is whatever the test says.
    struct FakeClock(std::sync::atomic::AtomicI64);

    impl Clock for FakeClock {
        fn now(&self) -> i64 {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    const T0: i64 = 1_700_000_000 - 1_700_000_000 % 604_800;

    fn cpu() -> SeriesKey {
        SeriesKey::new("cpu_busy_percent", &[])
    }

    #[test]
    fn rollups_keep_average_and_maximum() {
        let h = History::in_memory().unwrap();
        let clock = FakeClock(T0.into());
        // Two minutes of 10 s samples: 0..5 then 10..15 (x10), with one spike.
        for i in 0..12 {
            let now = T0 + i * 10;
            clock.0.store(now, std::sync::atomic::Ordering::Relaxed);
            let v = if i < 6 { i as f64 } else { (i * 10) as f64 };
            h.record(clock.now(), &[(cpu(), v)]).unwrap();
        }
        h.roll(T0 + 120).unwrap();
        let q = h.query(T0 + 120, Some("cpu_busy_percent"), &[], T0, T0 + 119, 60).unwrap();
        // The 1-minute tier answers a 60 s step.
        assert_eq!(q[0].points, vec![(T0, 2.5, 5.0), (T0 + 60, 85.0, 110.0)]);
        // The 1-minute tier holds the same numbers.
        let rows = h.rows_per_tier().unwrap();
        assert_eq!(rows[0], 12);
        assert_eq!(rows[1], 2);
        // Day-old data: only the rollups answer, and they agree.
        let later = T0 + 2 * DAY;
        h.roll(later).unwrap();
        let q = h.query(later, Some("cpu_busy_percent"), &[], T0, T0 + 119, 60).unwrap();
        assert_eq!(q[0].points, vec![(T0, 2.5, 5.0), (T0 + 60, 85.0, 110.0)]);
        assert_eq!(h.rows_per_tier().unwrap()[0], 0, "raw points older than a day pruned");
        // The 30 min bucket: weighted average of all 12 samples, the maximum of all.
        let q = h.query(later, Some("cpu_busy_percent"), &[], T0, T0 + 1799, 1800).unwrap();
        assert_eq!(q[0].points, vec![(T0, 43.75, 110.0)]);
    }

    #[test]
    fn matchers_and_tiers() {
        assert_eq!(
            parse_matchers("{device=\"eth0\",kind!=\"x\"}").unwrap(),
            vec![
                Matcher { label: "device".into(), value: "eth0".into(), negate: false },
                Matcher { label: "kind".into(), value: "x".into(), negate: true },
            ]
        );
        assert_eq!(parse_matchers("device=eth0").unwrap().len(), 1);
        assert!(parse_matchers("device").is_err());
        assert!(parse_matchers("a b=1").is_err());
        let now = T0 + 400 * DAY;
        assert_eq!(History::pick_tier(now, now - 3600, 10), 0);
        assert_eq!(History::pick_tier(now, now - 3600, 60), 1);
        assert_eq!(History::pick_tier(now, now - 3 * DAY, 10), 1);
        assert_eq!(History::pick_tier(now, now - 20 * DAY, 60), 2);
        assert_eq!(History::pick_tier(now, now - 365 * DAY, 21_600), 3);
        assert_eq!(History::pick_tier(now, now - 365 * DAY, 86_400), 3);
        assert_eq!(History::pick_tier(now, now - 3 * 365 * DAY, 3600), 4);
    }

    /// A month of samples (10 s for the last day), with the clock pushed forward, prunes each
    /// tier to its bound and keeps the database within the documented size per series.
    #[test]
    fn a_simulated_month_stays_bounded() {
        let h = History::in_memory().unwrap();
        let series: Vec<SeriesKey> = (0..4)
            .map(|i| SeriesKey::new("network_receive_bytes_per_second", &[("device", &format!("eth{i}"))]))
            .collect();
        let interval = 10;
        let end = T0 + 31 * DAY;
        let mut now = T0;
        while now < end {
            // 1 min samples until the last day, then 10 s: every tier ends as full as with
            // 10 s samples throughout, in a fifth of the writes.
            let every = if now < end - DAY { 60 } else { interval };
            let vals: Vec<(SeriesKey, f64)> = series
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), ((now / interval) % 100 + i as i64) as f64))
                .collect();
            h.record(now, &vals).unwrap();
            now += every;
        }
        h.roll(end).unwrap();
        let rows = h.rows_per_tier().unwrap();
        let n = series.len() as i64;
        assert!(rows[0] <= n * (DAY / interval + 1), "{rows:?}");
        assert!(rows[0] >= n * (DAY / interval - 1), "{rows:?}");
        assert!(rows[1] <= n * (7 * DAY / 60 + 1), "{rows:?}");
        assert!(rows[2] <= n * (31 * DAY / 1800 + 1), "{rows:?}");
        assert_eq!(rows[3], n * (31 * 4), "{rows:?}");
        let total: i64 = rows.iter().sum();
        assert!(total <= n * max_points_per_series(interval));
        // docs/metrics.md: at most 64 bytes per row on disk (measured ~40).
        let size = h.size_bytes().unwrap();
        let bound = n * max_points_per_series(interval) * 64 + 256 * 1024;
        assert!(size <= bound, "{size} bytes > {bound}");
        // A month at 6 h resolution answers 124 points per series.
        let q = h
            .query(end, Some("network_receive_bytes_per_second"), &parse_matchers("device=eth1").unwrap(), T0, end, 21_600)
            .unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].points.len(), 124);
        assert!((45.0..56.0).contains(&q[0].points[5].1), "{:?}", q[0].points[5]);
        assert!((95.0..=100.0).contains(&q[0].points[5].2), "{:?}", q[0].points[5]);
    }
}
