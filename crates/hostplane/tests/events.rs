//! The event stream: SSE with sequence ids, type filters, and `Last-Event-ID` replay of exactly
//! the events a disconnected client missed, also across a daemon restart.

mod common;

use std::time::Duration;

use common::{Daemon, assert_problem};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Like [`read_events`], counting only events whose href starts with `prefix`: the host's own
/// events (loop devices other tests attach appear as disks) may come in between.
async fn read_events_under(
    resp: reqwest::Response,
    n: usize,
    prefix: &str,
) -> Vec<(Option<u64>, String, Value)> {
    let prefix = prefix.to_string();
    read_events_where(resp, n, move |e| {
        e["href"].as_str().is_some_and(|h| h.starts_with(&prefix))
    })
    .await
}

async fn read_events_where(
    resp: reqwest::Response,
    n: usize,
    keep: impl Fn(&Value) -> bool,
) -> Vec<(Option<u64>, String, Value)> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("events arrive in time")
            .expect("stream open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let msg: String = buf.drain(..end + 2).collect();
            let (mut id, mut ty, mut data) = (None, String::new(), None);
            for line in msg.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse().unwrap());
                } else if let Some(v) = line.strip_prefix("event:") {
                    ty = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(v.trim()).unwrap());
                }
            }
            if let Some(data) = data
                && keep(&data)
            {
                out.push((id, ty, data));
            }
        }
    }
    out
}

async fn subscribe(d: &Daemon, query: &str, last: Option<u64>) -> reqwest::Response {
    let mut req = d
        .client
        .get(d.url(&format!("/api/v1/events{query}")))
        .bearer_auth(&d.token);
    if let Some(l) = last {
        req = req.header("Last-Event-ID", l.to_string());
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    r
}

#[tokio::test]
async fn replay_after_disconnect_gives_exactly_the_missed_events() {
    let mut d = Daemon::start();
    let live = subscribe(&d, "?type=resource.*", None).await;
    d.create_token(json!({"name": "first"})).await;
    let got = read_events_under(live, 1, "/api/v1/tokens/").await;
    let (first_seq, ty, data) = &got[0];
    assert_eq!(ty, "resource.created");
    assert_eq!(data["actor"], "admin");
    assert_eq!(data["data"]["name"], "first");
    let first_seq = first_seq.unwrap();
    // Disconnected (the response is dropped); meanwhile three things happen, plus a job whose
    // events the type filter must leave out.
    for name in ["a", "b", "c"] {
        d.create_token(json!({"name": name})).await;
    }
    let r = d.post("/api/v1/system/selftest", json!({})).await;
    d.wait_job(r.headers()["location"].to_str().unwrap()).await;
    let replay = subscribe(&d, "?type=resource.*", Some(first_seq)).await;
    // Then one live event after the replay.
    let d2 = d.client.clone();
    let (url, token) = (d.url("/api/v1/tokens"), d.token.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        d2.post(url)
            .bearer_auth(token)
            .json(&json!({"name": "live"}))
            .send()
            .await
            .unwrap();
    });
    let got = read_events_under(replay, 4, "/api/v1/tokens/").await;
    let names: Vec<&str> = got
        .iter()
        .map(|e| e.2["data"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c", "live"]);
    let seqs: Vec<u64> = got.iter().map(|e| e.0.unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > first_seq,
        "{seqs:?}"
    );

    // Replay survives a restart, and job events carry who caused them.
    d.stop();
    d.spawn();
    let all = subscribe(&d, "?type=job.*", Some(first_seq)).await;
    let got = read_events_under(all, 1, "/api/v1/jobs/").await;
    assert_eq!(got[0].1, "job.created");
    assert_eq!(got[0].2["actor"], "admin");
    assert_eq!(got[0].2["data"]["kind"], "system.selftest");
}

#[tokio::test]
async fn bad_event_parameters_are_422() {
    let d = Daemon::start();
    assert_problem(
        d.get("/api/v1/events?type=a%20b").await,
        422,
        "invalid_filter",
    )
    .await;
    let r = d
        .client
        .get(d.url("/api/v1/events"))
        .bearer_auth(&d.token)
        .header("Last-Event-ID", "x")
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, "invalid_last_event_id").await;
    assert_problem(
        d.send("GET", "/api/v1/events", None, None).await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn websocket_variant_needs_auth_and_carries_events() {
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let d = Daemon::start();
    let url = format!(
        "ws://127.0.0.1:{}/api/v1/events/ws?type=resource.created",
        d.port
    );
    // No credentials: the upgrade is refused like any request.
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", d.token).parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    d.create_token(json!({"name": "over-ws"})).await;
    // The host's own events (loop devices other tests attach) may come first: skip them.
    let ev: Value = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else {
            panic!("expected a text frame, got {msg:?}")
        };
        let ev: Value = serde_json::from_str(&text).unwrap();
        if ev["href"]
            .as_str()
            .is_some_and(|h| h.starts_with("/api/v1/tokens/"))
        {
            break ev;
        }
    };
    assert_eq!(ev["type"], "resource.created");
    assert_eq!(ev["data"]["name"], "over-ws");
    assert!(ev["seq"].as_u64().unwrap() > 0);
    // A plain GET (no upgrade) is a clear 400 problem, not a hang.
    assert_problem(
        d.get("/api/v1/events/ws").await,
        400,
        "websocket_upgrade_required",
    )
    .await;
}
