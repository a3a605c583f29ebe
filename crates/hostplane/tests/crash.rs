//! Crash safety: `kill -9` during a job; after restart the job reads `interrupted`, the store
//! passes `PRAGMA integrity_check`, and nothing else is lost.

mod common;

use common::Daemon;
use serde_json::{Value, json};

#[tokio::test]
async fn kill_9_mid_job_leaves_it_interrupted_and_the_store_sound() {
    let mut d = Daemon::start();
    let token = d.create_token(json!({"name": "survivor"})).await;
    let r = d
        .post("/api/v1/users", json!({"name": "bob", "role": "viewer"}))
        .await;
    assert_eq!(r.status(), 201);
    let r = d
        .post("/api/v1/system/selftest", json!({"step_delay_ms": 30000}))
        .await;
    let href = r.headers()["location"].to_str().unwrap().to_string();
    // Let it reach its first step (it must, or the log check below means nothing), then crash.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while d.get_json(&href).await["progress"].as_u64().unwrap() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the self-test never finished its first step"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before: Value = d.get_json(&href).await;
    assert_eq!(before["status"], "running");
    assert!(before["progress"].as_u64().unwrap() > 0, "{before}");
    let events_before = d.get_json("/api/v1/audit?limit=1").await;
    d.kill9();

    // The store as the crash left it is sound.
    {
        let db = rusqlite::Connection::open(d.data_dir().join("hostplane.sqlite")).unwrap();
        let ok: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    d.spawn();
    let job = d.get_json(&href).await;
    assert_eq!(job["status"], "interrupted", "{job}");
    assert_eq!(job["error_code"], "interrupted");
    assert!(job["finished_at"].is_string());
    let log = d.get(&format!("{href}/log")).await.text().await.unwrap();
    assert!(
        log.contains("[1/4] store: ok"),
        "the log written before the crash is kept: {log}"
    );
    // Nothing else was lost: tokens, users, audit.
    assert_eq!(d.get_as("/api/v1/auth/whoami", &token).await.status(), 200);
    assert_eq!(d.get_json("/api/v1/users/bob").await["role"], "viewer");
    let audit_after = d.get_json("/api/v1/audit").await;
    assert!(
        audit_after
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == events_before[0]["id"])
    );
    // The lock died with the process: a new self-test can start.
    assert_eq!(
        d.post("/api/v1/system/selftest", json!({})).await.status(),
        202
    );
    let db = rusqlite::Connection::open(d.data_dir().join("hostplane.sqlite")).unwrap();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}
