//! The collection layer through a real collection (tokens): limit/offset + X-Total-Count,
//! fields, filter, sort, NDJSON by parameter and by Accept, and 422 for each bad parameter.

mod common;

use common::{Daemon, assert_problem};
use serde_json::{Value, json};

async fn setup() -> Daemon {
    let d = Daemon::start();
    for (name, role) in [
        ("alpha", "viewer"),
        ("beta", "operator"),
        ("gamma", "viewer"),
        ("delta", "admin"),
    ] {
        d.create_token(json!({"name": name, "role": role, "scopes": if role == "viewer" { json!(["jobs:read"]) } else { json!([]) }})).await;
    }
    d
}

async fn list(d: &Daemon, q: &str) -> (u64, Vec<Value>) {
    let r = d.get(&format!("/api/v1/tokens{q}")).await;
    assert_eq!(r.status(), 200, "{q}");
    let total = r.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (total, r.json().await.unwrap())
}

#[tokio::test]
async fn parameters() {
    let d = setup().await;
    // 4 created + the bootstrap token.
    let (total, all) = list(&d, "").await;
    assert_eq!((total, all.len()), (5, 5));
    assert!(
        all.iter()
            .all(|t| t["href"].as_str().unwrap().starts_with("/api/v1/tokens/"))
    );

    let (total, page) = list(&d, "?sort=name&limit=2&offset=1").await;
    assert_eq!(total, 5);
    let names: Vec<&str> = page.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["beta", "bootstrap"]);

    let (_, desc) = list(&d, "?sort=-name&limit=1").await;
    assert_eq!(desc[0]["name"], "gamma");

    let (_, proj) = list(&d, "?fields=name,role&sort=name&limit=1").await;
    let keys: Vec<&String> = proj[0].as_object().unwrap().keys().collect();
    assert_eq!(
        proj[0],
        json!({"href": proj[0]["href"], "name": "alpha", "role": "viewer"}),
        "{keys:?}"
    );

    let (total, viewers) = list(&d, "?filter=role:viewer").await;
    assert_eq!((total, viewers.len()), (2, 2));
    let (total, _) = list(&d, "?filter=!role:viewer").await;
    assert_eq!(total, 3);
    let (total, g) = list(&d, "?filter=name:g*").await;
    assert_eq!((total, g[0]["name"].as_str()), (1, Some("gamma")));
    let (total, _) = list(&d, "?filter=scopes:jobs:read%20role:viewer").await;
    assert_eq!(total, 2);
    let (total, _) = list(&d, "?filter=kind:bootstrap").await;
    assert_eq!(total, 1);

    // An empty parameter is the same as an absent one.
    let (total, same) = list(&d, "?fields=&sort=&filter=").await;
    assert_eq!((total, same.len()), (5, 5));
    assert!(same[0]["created_at"].is_string());

    let (total, none) = list(&d, "?offset=100").await;
    assert_eq!((total, none.len()), (5, 0));
}

#[tokio::test]
async fn ndjson_by_parameter_and_accept_header() {
    let d = setup().await;
    for r in [
        d.get("/api/v1/tokens?ndjson&sort=name&fields=name").await,
        d.client
            .get(d.url("/api/v1/tokens?sort=name&fields=name"))
            .bearer_auth(&d.token)
            .header("accept", "application/x-ndjson")
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.headers()["content-type"], "application/x-ndjson");
        assert_eq!(r.headers()["x-total-count"], "5");
        let text = r.text().await.unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["name"], "alpha");
    }
}

#[tokio::test]
async fn bad_parameters_are_422_with_stable_codes() {
    let d = setup().await;
    for (q, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=-1", "invalid_limit"),
        ("limit=abc", "invalid_limit"),
        ("limit=10001", "invalid_limit"),
        ("offset=-5", "invalid_offset"),
        ("fields=name,nope", "invalid_fields"),
        ("fields=name,,role", "invalid_fields"),
        ("sort=nope", "invalid_sort"),
        ("filter=nope:1", "invalid_filter"),
        ("filter=name:%22open", "invalid_filter"),
        ("filter=!", "invalid_filter"),
    ] {
        let p = assert_problem(d.get(&format!("/api/v1/tokens?{q}")).await, 422, code).await;
        assert!(
            !p["errors"].as_array().unwrap().is_empty(),
            "{q}: names the parameter"
        );
    }
    // Other collections share the layer.
    for c in ["jobs", "users", "audit"] {
        assert_problem(
            d.get(&format!("/api/v1/{c}?sort=nope")).await,
            422,
            "invalid_sort",
        )
        .await;
        let r = d.get(&format!("/api/v1/{c}?limit=1")).await;
        assert_eq!(r.status(), 200, "{c}");
        assert!(r.headers().contains_key("x-total-count"));
    }
}

/// Jobs and the audit log grow without bound: a page reads one chunk and a row count kept by
/// triggers, and a whole listing streams by key. 1,000 rows written into the store while the
/// daemon is stopped (more than three stream chunks), then read back every way.
#[tokio::test]
async fn large_tables_page_and_stream_in_order() {
    let mut d = Daemon::start();
    d.stop();
    {
        let db = rusqlite::Connection::open(d.data_dir().join("hostplane.sqlite")).unwrap();
        let tx = db.unchecked_transaction().unwrap();
        for i in 0..1000 {
            tx.execute(
                "INSERT INTO jobs(id, kind, status, progress, created_by, created_at)
                 VALUES (?1, 'test.bulk', 'success', 100, 'admin', '2026-12-01T00:00:00Z')",
                [format!("00000000-bulk-{i:06}")],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO audit(time, actor, method, path, target, status, outcome, remote)
                 VALUES ('2026-12-01T00:00:00Z', 'admin', 'POST', '/x', '/x', 200, 'ok', '127.0.0.1')",
                [],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    d.spawn();

    let get = |q: &'static str| {
        let d = &d;
        async move {
            let r = d.get(q).await;
            assert_eq!(r.status(), 200, "{q}");
            let total: usize = r.headers()["x-total-count"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            (total, ct, r.text().await.unwrap())
        }
    };

    // The count the triggers keep matches the rows (the daemon's own jobs included).
    let (total, _, body) = get("/api/v1/jobs?limit=1").await;
    assert!(total >= 1000, "{total}");
    let one: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(one.len(), 1);

    // No limit: one JSON array, streamed, every job once, newest (largest id) first.
    let (t2, ct, body) = get("/api/v1/jobs").await;
    assert_eq!((t2, ct.as_str()), (total, "application/json"));
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(all.len(), total);
    let ids: Vec<&str> = all.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "ids strictly descending"
    );

    // NDJSON with offset, limit and fields, across chunk boundaries.
    let (_, ct, body) = get("/api/v1/jobs?ndjson&offset=5&limit=600&fields=id,status").await;
    assert_eq!(ct, "application/x-ndjson");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 600);
    assert_eq!(lines[0]["id"].as_str(), Some(ids[5]));
    assert_eq!(lines[599]["id"].as_str(), Some(ids[604]));
    assert_eq!(
        lines[10],
        json!({"href": lines[10]["href"], "id": ids[15], "status": "success"})
    );

    // The same through the general path (a filter needs every item) agrees.
    let (ft, _, body) = get("/api/v1/jobs?filter=kind:test.bulk&limit=3&fields=id").await;
    assert_eq!(ft, 1000);
    let f: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(f.len(), 3);

    // The audit log streams the same way.
    let (at, _, body) = get("/api/v1/audit?ndjson").await;
    assert!(at >= 1000, "{at}");
    let audit: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(audit.len(), at);
    let aids: Vec<i64> = audit.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(aids.windows(2).all(|w| w[0] > w[1]));

    // A job made through the API after the bulk rows is counted too (the insert trigger).
    let r = d.get("/api/v1/jobs?limit=1").await;
    let before: usize = r.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let r = d
        .send(
            "POST",
            "/api/v1/system/selftest",
            Some(&d.token.clone()),
            Some(json!({})),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let r = d.get("/api/v1/jobs?limit=1").await;
    let after: usize = r.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, before + 1);

    // `fields` without `result` leaves the result JSON unread; with it, the result is there.
    let newest = r.json::<Vec<Value>>().await.unwrap();
    let job = d
        .wait_job(&format!(
            "/api/v1/jobs/{}",
            newest[0]["id"].as_str().unwrap()
        ))
        .await;
    assert!(job["result"].is_object(), "{job}");
    let (_, _, body) = get("/api/v1/jobs?limit=1&fields=id,result").await;
    let with: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(with[0]["result"], job["result"]);
    let (_, _, body) = get("/api/v1/jobs?limit=1&fields=id,status").await;
    let without: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(without[0]["status"], "success");
    assert!(without[0].get("result").is_none(), "{}", without[0]);
}
