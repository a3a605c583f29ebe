//! The job engine end to end through the built-in self-test job: 202 + Location, progress,
//! log (plain and followed), wait, lock keys (409), cancel.

mod common;

use common::{Daemon, assert_problem};
use futures_util::StreamExt;
use serde_json::{Value, json};

#[tokio::test]
async fn selftest_job_runs_to_success_with_log_and_result() {
    let d = Daemon::start();
    let r = d.post("/api/v1/system/selftest", json!({})).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["href"], location);
    assert_eq!(job["kind"], "system.selftest");
    assert_eq!(job["created_by"], "admin");
    let done = d.wait_job(&location).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["progress"], 100);
    assert!(done["finished_at"].is_string());
    let steps = done["result"]["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["store", "disk_space", "data_dir_writable", "host_tools"]
    );
    assert!(steps.iter().all(|s| s["ok"] == true));
    // host_tools is ok because the daemon's own tools are there (capabilities agree).
    let caps = d.get_json("/api/v1/system/capabilities").await;
    let own: Vec<&Value> = caps["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["area"] == "system")
        .collect();
    assert!(!own.is_empty(), "{caps}");
    assert!(own.iter().all(|t| t["found"] == true), "{own:?}");
    let log = d.get(&format!("{location}/log")).await;
    assert_eq!(log.headers()["content-type"], "text/plain; charset=utf-8");
    let log = log.text().await.unwrap();
    assert!(log.contains("[1/4] store: ok"), "{log}");
    assert!(log.contains("job finished: success"), "{log}");
}

#[tokio::test]
async fn lock_key_prevents_overlap_and_cancel_ends_the_job() {
    let d = Daemon::start();
    let r = d
        .post("/api/v1/system/selftest", json!({"step_delay_ms": 20000}))
        .await;
    assert_eq!(r.status(), 202);
    let href = r.headers()["location"].to_str().unwrap().to_string();
    let second = d.post("/api/v1/system/selftest", json!({})).await;
    let p = assert_problem(second, 409, "lock_held").await;
    assert!(p["detail"].as_str().unwrap().contains(&href));
    // wait with a short timeout answers the job still running.
    let j = d.get_json(&format!("{href}/wait?timeout=0")).await;
    assert_eq!(j["status"], "running");
    let r = d.send("DELETE", &href, Some(&d.token), None).await;
    assert_eq!(r.status(), 202);
    let j = d.wait_job(&href).await;
    assert_eq!(j["status"], "cancelled");
    assert_eq!(j["error_code"], "cancelled");
    // Cancelling again: it already ended.
    assert_problem(
        d.send("DELETE", &href, Some(&d.token), None).await,
        409,
        "job_finished",
    )
    .await;
    // The lock is free again.
    assert_eq!(
        d.post("/api/v1/system/selftest", json!({})).await.status(),
        202
    );
}

#[tokio::test]
async fn log_follow_streams_until_the_job_ends() {
    let d = Daemon::start();
    let r = d
        .post("/api/v1/system/selftest", json!({"step_delay_ms": 300}))
        .await;
    let href = r.headers()["location"].to_str().unwrap().to_string();
    let resp = d.get(&format!("{href}/log?follow=true")).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut chunks = 0;
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        chunks += 1;
    }
    // The stream ended by itself when the job did, and carried lines as they came.
    assert!(chunks > 1, "lines arrived in {chunks} chunk(s)");
    assert!(text.contains("[4/4] host_tools"), "{text}");
    assert!(text.trim_end().ends_with("job finished: success"), "{text}");
}

#[tokio::test]
async fn bad_job_input_is_422_and_unknown_job_404() {
    let d = Daemon::start();
    assert_problem(
        d.post("/api/v1/system/selftest", json!({"step_delay_ms": 999999}))
            .await,
        422,
        "invalid_step_delay",
    )
    .await;
    assert_problem(
        d.post("/api/v1/system/selftest", json!({"bogus": 1})).await,
        422,
        "invalid_body",
    )
    .await;
    let r = d
        .client
        .post(d.url("/api/v1/system/selftest"))
        .bearer_auth(&d.token)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, "invalid_body").await;
    let r = d
        .client
        .post(d.url("/api/v1/system/selftest"))
        .bearer_auth(&d.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(r, 415, "unsupported_media_type").await;
    assert_problem(d.get("/api/v1/jobs/nope").await, 404, "not_found").await;
    assert_problem(
        d.get("/api/v1/jobs/nope/wait?timeout=1").await,
        404,
        "not_found",
    )
    .await;
    assert_problem(d.get("/api/v1/jobs/nope/log").await, 404, "not_found").await;
    let r = d.post("/api/v1/system/selftest", json!({})).await;
    let href = r.headers()["location"].to_str().unwrap().to_string();
    assert_problem(
        d.get(&format!("{href}/wait?timeout=301")).await,
        422,
        "invalid_timeout",
    )
    .await;
    assert_problem(
        d.get(&format!("{href}/wait?timeout=abc")).await,
        422,
        "invalid_query",
    )
    .await;
}
