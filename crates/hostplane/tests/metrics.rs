//! The metrics history against the real daemon: a short interval, then `query_range` in
//! Prometheus's shape, `/metrics/host`, live samples on the event stream, node_exporter names
//! on `/metrics`.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Opts, assert_problem};
use serde_json::Value;

fn start() -> Daemon {
    Daemon::start_with(Opts {
        config: Some("[metrics]\ninterval_secs = 1\n".into()),
        ..Default::default()
    })
}

#[tokio::test]
async fn query_range_answers_in_prometheus_shape() {
    let d = start();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let v = d
            .get_json(&format!(
                "/api/v1/metrics/query_range?metric=cpu_busy_percent&start={}&end={}&step=1",
                now - 120,
                now + 1
            ))
            .await;
        let n = v["data"]["result"][0]["values"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        if n >= 3 {
            break v;
        }
        assert!(Instant::now() < deadline, "no CPU points after 30 s: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "matrix");
    let series = &body["data"]["result"][0];
    assert_eq!(series["metric"]["__name__"], "cpu_busy_percent");
    for p in series["values"].as_array().unwrap() {
        let ts = p[0].as_f64().unwrap();
        let v: f64 = p[1].as_str().unwrap().parse().unwrap();
        assert!(ts > 1.6e9, "{p}");
        assert!((0.0..=100.0).contains(&v), "{p}");
    }

    // Memory with a label selector that matches nothing is an empty matrix, not an error.
    let v = d
        .get_json(
            "/api/v1/metrics/query_range?metric=memory_total_bytes&match=%7Bdevice%3D%22nope%22%7D",
        )
        .await;
    assert_eq!(v["data"]["result"], serde_json::json!([]));
    let v = d
        .get_json("/api/v1/metrics/query_range?metric=memory_total_bytes")
        .await;
    let total: f64 = v["data"]["result"][0]["values"][0][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(total > 1e8, "{v}");

    // /metrics/host: every host series, same shape.
    for tf in ["hour", "day", "week", "month", "year"] {
        let v = d
            .get_json(&format!("/api/v1/metrics/host?timeframe={tf}"))
            .await;
        assert_eq!(v["status"], "success");
        let names: Vec<&str> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["metric"]["__name__"].as_str().unwrap())
            .collect();
        for want in ["memory_used_bytes", "load1"] {
            assert!(names.contains(&want), "{tf}: no {want} in {names:?}");
        }
    }

    // Bad input is a 422 with a code.
    let r = d.get("/api/v1/metrics/host?timeframe=decade").await;
    assert_problem(r, 422, "invalid_timeframe").await;
    let r = d
        .get("/api/v1/metrics/query_range?metric=cpu_busy_percent&start=10&end=5")
        .await;
    assert_problem(r, 422, "invalid_range").await;
    let r = d
        .get("/api/v1/metrics/query_range?metric=cpu_busy_percent&start=0&end=100000000&step=1")
        .await;
    assert_problem(r, 422, "too_many_points").await;
    let r = d.get("/api/v1/metrics/query_range?metric=1x").await;
    assert_problem(r, 422, "invalid_metric").await;

    // A viewer may read the history.
    let viewer = d.token_for_role("metricsviewer", "viewer").await;
    let r = d.get_as("/api/v1/metrics/host", &viewer).await;
    assert_eq!(r.status(), 200);

    // node_exporter's names on /metrics.
    let text = d.get("/metrics").await.text().await.unwrap();
    for name in [
        "node_load1 ",
        "node_memory_MemAvailable_bytes ",
        "node_memory_MemTotal_bytes ",
        "node_cpu_seconds_total{",
        "node_network_receive_bytes_total{",
    ] {
        assert!(text.contains(name), "/metrics has no {name}:\n{text}");
    }
}

#[tokio::test]
async fn live_samples_on_the_event_stream() {
    let d = start();
    let mut r = d
        .client
        .get(d.url("/api/v1/events?type=metrics.*"))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while !text.contains("\"memory_used_bytes\"") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no metrics.sample event: {text}");
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, r.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(text.contains("event: metrics.sample"), "{text}");
    let data = text
        .lines()
        .find(|l| l.starts_with("data:") && l.contains("metrics.sample"))
        .unwrap();
    let ev: Value = serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(ev["seq"], 0, "live-only events are not numbered: {ev}");
    assert_eq!(ev["href"], "/api/v1/metrics/host");
    assert!(ev["data"]["values"].as_array().unwrap().len() > 3);
}

#[tokio::test]
async fn cli_metrics_show_draws_a_sparkline() {
    let d = start();
    // Wait for a few CPU points.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = d
            .get_json("/api/v1/metrics/query_range?metric=cpu_busy_percent&step=1")
            .await;
        if v["data"]["result"][0]["values"]
            .as_array()
            .is_some_and(|a| a.len() >= 3)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no CPU points: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let home = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let url = format!("http://127.0.0.1:{}", d.port);
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args([
        "--url", &url, "--token", &d.token, "metrics", "show", "cpu", "--since", "1h",
    ])
    .env("HOME", home.path())
    .env("XDG_CONFIG_HOME", home.path());
    for (k, _) in std::env::vars() {
        if k.starts_with("HOSTPLANE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("cpu_busy_percent"), "{text}");
    assert!(text.contains('%'), "{text}");
    assert!(
        text.chars().any(|c| ('▁'..='█').contains(&c)),
        "no sparkline: {text}"
    );
}
