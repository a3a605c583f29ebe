//! `/api/v1/metrics`: the host's and its VMs' metrics history, queried in Prometheus's shape.
//!
//! Request flow: the `start` hook runs the collector every `metrics.interval_secs` (default
//! 10 s): [`collect::Collector::sample`] reads `/proc` and the pools' filesystems (and sets the
//! node_exporter-named values `GET /metrics` shows), [`history::History::record`] writes the
//! sample to `DATA_DIR/metrics.db` and rolls it up, and the sample goes out on the event
//! stream as a live-only `metrics.sample` event (href `/api/v1/metrics/host`). Queries
//! (`GET /metrics/query_range`, `GET /metrics/host`) parse their parameters into a
//! [`RangeQuery`] and call [`range`], which reads [`history::History::query`].

pub mod collect;
pub mod history;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use hostplane_types::metrics::{LiveSample, LiveValue, RangeData, RangeResponse, RangeSeries, SeriesInfo};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::{AnyState, Area, HookFuture};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::Query;
use crate::state::{AppState, Services};
use history::{Clock, History, Matcher, SystemClock};

pub const AREA: Area = Area {
    init: Some(init),
    start: Some(start),
    ..Area::new(
        "metrics",
        "Metrics history: host, pools and VMs sampled every few seconds, rolled up for years, in Prometheus's query shape",
        router,
    )
};

/// Points one query may answer per series (Prometheus's limit).
const MAX_POINTS: i64 = 11_000;

struct MetricsArea {
    history: Option<Arc<History>>,
    clock: Arc<dyn Clock>,
    interval: u64,
    collector: Arc<Mutex<collect::Collector>>,
}

fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    let cfg = &services.config;
    let history = if cfg.metrics.history {
        let path = cfg.data_dir.join("metrics.db");
        Some(Arc::new(History::open(&path).map_err(|e| {
            anyhow::anyhow!("opening the metrics history {}: {e}", path.display())
        })?))
    } else {
        None
    };
    Ok(Some(Arc::new(MetricsArea {
        history,
        clock: Arc::new(SystemClock),
        interval: cfg.metrics.interval_secs,
        collector: Arc::new(Mutex::new(collect::Collector::new(
            cfg.pools.mount_root.clone(),
        ))),
    })))
}

fn start(state: AppState) -> HookFuture {
    Box::pin(async move {
        tokio::spawn(collect_loop(state));
    })
}

/// Samples every interval until the daemon exits; a failed sample is logged and skipped.
async fn collect_loop(state: AppState) {
    let area = state.area::<MetricsArea>();
    let mut tick = tokio::time::interval(Duration::from_secs(area.interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let procs = state.processes.all().await;
        let collector = area.collector.clone();
        let history = area.history.clone();
        let clock = area.clock.clone();
        let res = tokio::task::spawn_blocking(move || -> anyhow::Result<(i64, Vec<_>)> {
            let values = collector
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sample(&procs)?;
            let now = clock.now();
            if let Some(h) = history {
                h.record(now, &values)?;
            }
            Ok((now, values))
        })
        .await;
        match res {
            Ok(Ok((now, values))) => {
                let sample = LiveSample {
                    time: now,
                    values: values
                        .into_iter()
                        .map(|(k, v)| LiveValue {
                            name: k.name,
                            labels: k.labels,
                            value: v,
                        })
                        .collect(),
                };
                state.events.publish_live(
                    "metrics.sample",
                    "/api/v1/metrics/host",
                    "system",
                    serde_json::to_value(sample).unwrap_or_default(),
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics sample failed"),
            Err(e) => tracing::warn!(error = %e, "metrics sample panicked"),
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(query_range))
        .routes(routes!(host))
        .routes(routes!(list_series))
}

/// A range query, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// None: every series (with `host_only`, those that are not per process).
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub max: bool,
    pub host_only: bool,
}

/// Reads the history for `q` at `now`, in Prometheus's shape.
pub fn range(h: &History, now: i64, q: &RangeQuery) -> ApiResult<RangeResponse> {
    let series = h
        .query(now, q.name.as_deref(), &q.matchers, q.start, q.end, q.step)
        .map_err(ApiError::internal)?;
    let result = series
        .into_iter()
        .filter(|s| !q.host_only || !s.key.name.starts_with("process_"))
        .map(|s| {
            let mut metric = s.key.labels.clone();
            metric.insert("__name__".into(), s.key.name.clone());
            RangeSeries {
                metric,
                values: s
                    .points
                    .iter()
                    .map(|(t, avg, max)| (*t as f64, format_value(if q.max { *max } else { *avg })))
                    .collect(),
            }
        })
        .collect();
    Ok(RangeResponse {
        status: "success".into(),
        data: RangeData {
            result_type: "matrix".into(),
            result,
        },
    })
}

/// A sample value as Prometheus writes it (a string; integers without a fraction).
fn format_value(v: f64) -> String {
    let r = (v * 1e6).round() / 1e6;
    format!("{r}")
}

/// A time parameter: unix seconds (fractions allowed) or RFC 3339, as Prometheus takes them.
fn parse_time(field: &'static str, s: &str) -> ApiResult<i64> {
    if let Ok(v) = s.parse::<f64>()
        && v.is_finite()
        && v.abs() < 1e12
    {
        return Ok(v.floor() as i64);
    }
    crate::platform::time::parse(s)
        .map(|t| t.unix_timestamp())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "invalid_time",
                field,
                format!("{s:?} is neither unix seconds nor an RFC 3339 time"),
            )
        })
}

/// A duration parameter: seconds (`60`, `1.5`) or Prometheus's `30s`, `5m`, `1h`, `1d`, `1w`.
fn parse_duration(field: &'static str, s: &str) -> ApiResult<i64> {
    let bad = || {
        ApiError::invalid_field(
            "invalid_step",
            field,
            format!("{s:?} is not a duration (seconds, or 30s, 5m, 1h, 1d, 1w)"),
        )
    };
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return Err(bad()),
    };
    let secs = (n * mult).round();
    if !secs.is_finite() || !(1.0..=1e10).contains(&secs) {
        return Err(bad());
    }
    Ok(secs as i64)
}

/// Splits `name{a="b"}` into the name and its matchers; checks the name.
fn parse_metric(s: &str) -> ApiResult<(String, Vec<Matcher>)> {
    let (name, sel) = match s.find('{') {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
    if !ok {
        return Err(ApiError::invalid_field(
            "invalid_metric",
            "metric",
            format!("{s:?} is not a metric name (e.g. cpu_busy_percent or network_receive_bytes_per_second{{device=\"eth0\"}})"),
        ));
    }
    let matchers = match sel {
        Some(sel) => history::parse_matchers(sel)
            .map_err(|e| ApiError::invalid_field("invalid_match", "metric", e))?,
        None => Vec::new(),
    };
    Ok((name.to_string(), matchers))
}

fn history_of(state: &AppState) -> ApiResult<(Arc<History>, i64, u64)> {
    let area = state.area::<MetricsArea>();
    let h = area.history.clone().ok_or_else(|| ApiError::Unavailable {
        code: "metrics_history_disabled",
        detail: "the metrics history is off (metrics.history = false)".into(),
    })?;
    Ok((h, area.clock.now(), area.interval))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RangeParams {
    /// Metric name, optionally with a label selector: `cpu_busy_percent`,
    /// `network_receive_bytes_per_second{device="eth0"}` (docs/metrics.md lists them).
    #[param(max_length = 1024)]
    metric: String,
    /// More label matchers: `{device="eth0"}` or `device=eth0,kind!=vm`.
    #[param(max_length = 1024)]
    r#match: Option<String>,
    /// Start: unix seconds or RFC 3339 (default: an hour before `end`).
    #[param(max_length = 64)]
    start: Option<String>,
    /// End: unix seconds or RFC 3339 (default: now).
    #[param(max_length = 64)]
    end: Option<String>,
    /// Resolution: seconds or `30s`, `5m`, `1h`, `1d` (default: the range / 360, at least the
    /// sample interval).
    #[param(max_length = 32)]
    step: Option<String>,
    /// `avg` (default) or `max`: each point's average or maximum over its step.
    #[param(pattern = "^(avg|max)$")]
    agg: Option<String>,
}

fn parse_agg(s: Option<&str>) -> ApiResult<bool> {
    match s {
        None | Some("avg") => Ok(false),
        Some("max") => Ok(true),
        Some(o) => Err(ApiError::invalid_field(
            "invalid_agg",
            "agg",
            format!("{o:?}: agg is avg or max"),
        )),
    }
}

fn check_range(start: i64, end: i64, step: i64) -> ApiResult<()> {
    if start > end {
        return Err(ApiError::invalid(
            "invalid_range",
            "start is after end",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::invalid_field(
            "too_many_points",
            "step",
            format!("more than {MAX_POINTS} points per series: use a larger step"),
        ));
    }
    Ok(())
}

/// Points of the matching series over a time range, in Prometheus's `query_range` shape
/// (`{status, data: {resultType: "matrix", result: [{metric, values: [[t, "v"], ...]}]}}`).
#[utoipa::path(get, path = "/api/v1/metrics/query_range",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("metrics:read"))),
    tag = "metrics", params(RangeParams),
    responses((status = 200, description = "A matrix of points", body = RangeResponse)))]
async fn query_range(
    State(state): State<AppState>,
    Query(p): Query<RangeParams>,
) -> ApiResult<axum::Json<RangeResponse>> {
    let (h, now, interval) = history_of(&state)?;
    let (name, mut matchers) = parse_metric(&p.metric)?;
    if let Some(m) = &p.r#match {
        matchers.extend(
            history::parse_matchers(m)
                .map_err(|e| ApiError::invalid_field("invalid_match", "match", e))?,
        );
    }
    let end = match &p.end {
        Some(e) => parse_time("end", e)?,
        None => now,
    };
    let start = match &p.start {
        Some(s) => parse_time("start", s)?,
        None => end - 3600,
    };
    let step = match &p.step {
        Some(s) => parse_duration("step", s)?,
        None => ((end - start) / 360).max(interval as i64).max(1),
    };
    check_range(start, end, step)?;
    let q = RangeQuery {
        name: Some(name),
        matchers,
        start,
        end,
        step,
        max: parse_agg(p.agg.as_deref())?,
        host_only: false,
    };
    let h2 = h.clone();
    let r = tokio::task::spawn_blocking(move || range(&h2, now, &q))
        .await
        .map_err(ApiError::internal)??;
    Ok(axum::Json(r))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HostParams {
    /// `hour` (10 s points), `day` (4 min), `week` (30 min), `month` (2 h) or `year` (1 day).
    #[param(pattern = "^(hour|day|week|month|year)$")]
    timeframe: Option<String>,
    /// `avg` (default) or `max`.
    #[param(pattern = "^(avg|max)$")]
    agg: Option<String>,
}

/// (range, step) of a timeframe, in seconds.
pub fn timeframe(s: &str) -> Option<(i64, i64)> {
    Some(match s {
        "hour" => (3600, 10),
        "day" => (86_400, 240),
        "week" => (7 * 86_400, 1800),
        "month" => (31 * 86_400, 7200),
        "year" => (366 * 86_400, 86_400),
        _ => return None,
    })
}

/// Every host series (CPU, memory, load, pressure, network, disks, pools) over a timeframe,
/// in the same shape as `query_range`.
#[utoipa::path(get, path = "/api/v1/metrics/host",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("metrics:read"))),
    tag = "metrics", params(HostParams),
    responses((status = 200, description = "A matrix of the host's series", body = RangeResponse)))]
async fn host(
    State(state): State<AppState>,
    Query(p): Query<HostParams>,
) -> ApiResult<axum::Json<RangeResponse>> {
    let (h, now, interval) = history_of(&state)?;
    let tf = p.timeframe.as_deref().unwrap_or("hour");
    let (span, step) = timeframe(tf).ok_or_else(|| {
        ApiError::invalid_field(
            "invalid_timeframe",
            "timeframe",
            format!("{tf:?}: timeframe is hour, day, week, month or year"),
        )
    })?;
    let q = RangeQuery {
        name: None,
        matchers: Vec::new(),
        start: now - span,
        end: now,
        step: step.max(interval as i64),
        max: parse_agg(p.agg.as_deref())?,
        host_only: true,
    };
    let r = tokio::task::spawn_blocking(move || range(&h, now, &q))
        .await
        .map_err(ApiError::internal)??;
    Ok(axum::Json(r))
}

/// The series the history holds (names and labels).
#[utoipa::path(get, path = "/api/v1/metrics/series",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("metrics:read"))),
    tag = "metrics",
    responses((status = 200, description = "Known series", body = [SeriesInfo])))]
async fn list_series(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<SeriesInfo>>> {
    let (h, _, _) = history_of(&state)?;
    let list = tokio::task::spawn_blocking(move || h.series(None, &[]))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(axum::Json(
        list.into_iter()
            .map(|(_, k)| {
                let mut metric: BTreeMap<String, String> = k.labels;
                metric.insert("__name__".into(), k.name);
                SeriesInfo { metric, last: None }
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use history::SeriesKey;

    #[test]
    fn parameters() {
        assert_eq!(parse_duration("step", "6h").unwrap(), 21_600);
        assert_eq!(parse_duration("step", "90").unwrap(), 90);
        assert!(parse_duration("step", "0").is_err());
        assert!(parse_duration("step", "5y").is_err());
        assert_eq!(parse_time("start", "1700000000.5").unwrap(), 1_700_000_000);
        assert_eq!(
            parse_time("start", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000
        );
        assert!(parse_time("start", "yesterday").is_err());
        let (n, m) = parse_metric("network_receive_bytes_per_second{device=\"eth0\"}").unwrap();
        assert_eq!(n, "network_receive_bytes_per_second");
        assert_eq!(m.len(), 1);
        assert!(parse_metric("1abc").is_err());
        assert!(parse_metric("a b").is_err());
        assert!(check_range(10, 5, 1).is_err());
        assert!(check_range(0, 86_400 * 365, 60).is_err());
        assert_eq!(format_value(100.0), "100");
        assert_eq!(format_value(0.25), "0.25");
    }

    #[test]
    fn prometheus_shape() {
        let h = History::in_memory().unwrap();
        let t0 = 1_700_000_000 - 1_700_000_000 % 3600;
        for i in 0..6 {
            h.record(
                t0 + i * 10,
                &[
                    (SeriesKey::new("cpu_busy_percent", &[]), i as f64),
                    (SeriesKey::new("process_cpu_percent", &[("kind", "vm"), ("name", "a")]), 1.0),
                ],
            )
            .unwrap();
        }
        let q = RangeQuery {
            name: Some("cpu_busy_percent".into()),
            matchers: Vec::new(),
            start: t0,
            end: t0 + 60,
            step: 20,
            max: false,
            host_only: false,
        };
        let r = serde_json::to_value(range(&h, t0 + 60, &q).unwrap()).unwrap();
        assert_eq!(
            r,
            serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {"__name__": "cpu_busy_percent"},
                 "values": [[t0 as f64, "0.5"], [(t0 + 20) as f64, "2.5"], [(t0 + 40) as f64, "4.5"]]}
            ]}})
        );
        let host = RangeQuery {
            name: None,
            host_only: true,
            ..q
        };
        let r = range(&h, t0 + 60, &host).unwrap();
        assert_eq!(r.data.result.len(), 1, "process series are not host series");
    }

    /// Thread CPU time (user + system) so far, seconds.
    fn thread_cpu() -> f64 {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct it is given.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }

    /// `bench/metrics`: collector CPU per sample with 50 VMs, a simulated year's database size,
    /// `query_range` over a year at 6 h. Prints a markdown table.
    #[test]
    #[ignore = "a benchmark: bench/metrics runs it"]
    fn bench() {
        use crate::platform::processes::Monitored;
        let dir = tempfile::Builder::new().prefix("hp-test-").tempdir().unwrap();
        // 1. Collector CPU per sample, 50 simulated VMs (this process's pid under 50 names),
        //    recorded into a real WAL database file.
        let h = History::open(&dir.path().join("collector.db")).unwrap();
        let procs: Vec<Monitored> = (0..50)
            .map(|i| Monitored {
                kind: "vm",
                name: format!("vm-{i:02}"),
                pid: std::process::id(),
                cgroup: None,
            })
            .collect();
        let mut c = collect::Collector::new(dir.path().to_path_buf());
        let t0 = SystemClock.now();
        let _ = c.sample(&procs).unwrap();
        let samples = 60;
        let (cpu0, wall0) = (thread_cpu(), std::time::Instant::now());
        let mut sample_cpu = 0.0;
        let mut nseries = 0;
        for i in 0..samples {
            let a = thread_cpu();
            let vals = c.sample(&procs).unwrap();
            sample_cpu += thread_cpu() - a;
            nseries = vals.len();
            h.record(t0 + 10 * (i + 1), &vals).unwrap();
        }
        let cpu = (thread_cpu() - cpu0) / samples as f64;
        let wall = wall0.elapsed().as_secs_f64() / samples as f64;
        println!("| collector: sample + record, 50 VMs, {nseries} series | {:.2} ms CPU ({:.2} ms reading /proc, {:.2} ms wall) per sample |",
            cpu * 1e3, sample_cpu / samples as f64 * 1e3, wall * 1e3);

        // 2. A simulated year: 5 min samples for the first 358 days, 1 min for the next 6,
        //    10 s for the last day (each tier ends up full, as with 10 s samples throughout).
        let series: Vec<SeriesKey> = (0..8)
            .map(|i| SeriesKey::new("network_receive_bytes_per_second", &[("device", &format!("eth{i}"))]))
            .collect();
        let y = History::open(&dir.path().join("year.db")).unwrap();
        let day = 86_400;
        let start = t0 - 365 * day;
        let mut now = start;
        let w0 = std::time::Instant::now();
        let mut records = 0;
        while now < t0 {
            let step = if now < t0 - 7 * day { 300 } else if now < t0 - day { 60 } else { 10 };
            let vals: Vec<(SeriesKey, f64)> = series
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), ((now / 10) % 1000 + i as i64) as f64))
                .collect();
            y.record(now, &vals).unwrap();
            records += 1;
            now += step;
        }
        y.roll(t0).unwrap();
        let rows: i64 = y.rows_per_tier().unwrap().iter().sum();
        let size = y.size_bytes().unwrap();
        println!("| simulated year, {} series ({records} samples written in {:.0} s) | {rows} rows, {:.1} MiB: {:.0} KiB and {} rows per series, {:.1} bytes per row |",
            series.len(), w0.elapsed().as_secs_f64(), size as f64 / 1048576.0,
            size as f64 / series.len() as f64 / 1024.0, rows / series.len() as i64, size as f64 / rows as f64);

        // 3. query_range over the year at 6 h, one series and all 8.
        let m = history::parse_matchers("device=eth3").unwrap();
        let mut one = Vec::new();
        let mut all = Vec::new();
        for _ in 0..20 {
            let q0 = std::time::Instant::now();
            let r = y.query(t0, Some("network_receive_bytes_per_second"), &m, t0 - 365 * day, t0, 21_600).unwrap();
            one.push(q0.elapsed().as_secs_f64());
            assert!(r[0].points.len() >= 1460, "{}", r[0].points.len());
            let q0 = std::time::Instant::now();
            let r = y.query(t0, Some("network_receive_bytes_per_second"), &[], t0 - 365 * day, t0, 21_600).unwrap();
            all.push(q0.elapsed().as_secs_f64());
            assert_eq!(r.len(), 8);
        }
        one.sort_by(f64::total_cmp);
        all.sort_by(f64::total_cmp);
        println!("| query_range over a year at 6 h (1464 points) | {:.2} ms one series, {:.2} ms all 8 (median of 20) |",
            one[10] * 1e3, all[10] * 1e3);
    }
}

