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
