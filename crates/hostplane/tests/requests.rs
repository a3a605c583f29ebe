//! The edges of a request every operation shares: unknown query parameters are refused (a typo
//! must not silently drop what the caller meant), an operation whose body is all optional
//! takes no body, and body errors name their field.

mod common;

use common::{Daemon, assert_problem};
use serde_json::json;

#[tokio::test]
async fn unknown_query_parameters_are_refused_naming_the_known_ones() {
    let d = Daemon::start();
    // The typo that used to drop the standby protection silently.
    let v = assert_problem(
        d.get("/api/v1/disks?skip_standby=true").await,
        422,
        "invalid_query",
    )
    .await;
    assert_eq!(v["errors"][0]["field"], "skip_standby", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("skipStandby"), "{v}");
    assert_problem(d.get("/api/v1/jobs?foo=1").await, 422, "invalid_query").await;
    // Documented parameters and the credential parameters are fine.
    assert_eq!(d.get("/api/v1/jobs?limit=1&fields=id").await.status(), 200);
    let r = d
        .client
        .get(d.url(&format!("/api/v1/jobs?limit=1&token={}", d.token)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Anonymous callers learn nothing about parameters: authentication comes first.
    let r = d.send("GET", "/api/v1/jobs?foo=1", None, None).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn an_all_optional_body_may_be_left_out_and_errors_name_the_field() {
    let d = Daemon::start();
    // No body, no content type: read as {}.
    let r = d
        .client
        .post(d.url("/api/v1/system/selftest"))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // A required field missing from no body at all is named.
    let r = d
        .client
        .post(d.url("/api/v1/tokens"))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    let v = assert_problem(r, 422, "invalid_body").await;
    assert_eq!(v["errors"][0]["field"], "name", "{v}");
    // An unknown field is named too.
    let v = assert_problem(
        d.post("/api/v1/tokens", json!({"name": "x", "nmae": 1}))
            .await,
        422,
        "invalid_body",
    )
    .await;
    assert_eq!(v["errors"][0]["field"], "nmae", "{v}");
    // A body without a JSON content type is still 415.
    let r = d
        .client
        .post(d.url("/api/v1/system/selftest"))
        .bearer_auth(&d.token)
        .body("{}")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

#[tokio::test]
async fn fields_project_single_items_too() {
    let d = Daemon::start();
    let r = d.post("/api/v1/system/selftest", json!({})).await;
    assert_eq!(r.status(), 202);
    let job: serde_json::Value = r.json().await.unwrap();
    let href = job["href"].as_str().unwrap().to_string();
    let v = d.get_json(&format!("{href}?fields=status,kind")).await;
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["href", "kind", "status"], "{v}");
    assert_problem(
        d.get(&format!("{href}?fields=nosuch")).await,
        422,
        "invalid_query",
    )
    .await;
    // Without fields the whole item comes back.
    let whole = d.get_json(&href).await;
    assert!(whole["created_at"].is_string(), "{whole}");
}
