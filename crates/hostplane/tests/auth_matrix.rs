//! Walks every operation of the served OpenAPI document: without credentials each answers 401
//! (403 under the Jidoteki `/admin` prefix, as its spec demands), and a viewer token on any
//! mutating operation answers 403. Public operations are listed here explicitly; a new public
//! operation must be added on purpose.

mod common;

use common::{Daemon, Opts};
use serde_json::Value;

/// (method, path) callable without credentials.
const PUBLIC: &[(&str, &str)] = &[("post", "/api/v1/auth/login")];
/// Open without credentials only until the admin-API token is set, and only locally.
const PUBLIC_UNTIL_SETUP: &[(&str, &str)] = &[("post", "/api/v1/admin/setup")];
/// Mutating operations any authenticated caller may do (they only touch the caller).
const SELF_SERVICE: &[(&str, &str)] = &[("post", "/api/v1/auth/logout")];

fn operations(spec: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.push((method.to_string(), path.clone()));
            }
        }
    }
    ops
}

fn concrete(path: &str) -> String {
    // Any value will do: authentication comes before the lookup.
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("0190aaaa-0000-7000-8000-000000000000");
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn every_operation_requires_credentials_and_role() {
    // One refused anonymous request per operation: more than the default budget per address.
    let d = Daemon::start_with(Opts {
        config: Some("[auth]\nanonymous_failures_per_minute = 100000\n".into()),
        ..Default::default()
    });
    // Close the until-setup window first so every operation is in its steady state.
    let form = reqwest::multipart::Form::new().text("newtoken", "matrix-admin-token");
    let r = d
        .client
        .post(d.url("/api/v1/admin/setup"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let spec: Value = d
        .client
        .get(d.url("/api-docs/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ops = operations(&spec);
    assert!(ops.len() >= 20, "the spec lists {} operations", ops.len());
    let viewer = d.token_for_role("matrix-viewer", "viewer").await;

    let mut checked_public = 0;
    for (method, path) in &ops {
        let key = (method.as_str(), path.as_str());
        let url = concrete(path);
        let op = &spec["paths"][path][method];
        let declared_public = op["security"].as_array().is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
        });
        let is_public = PUBLIC.contains(&key);
        assert_eq!(
            declared_public,
            is_public || PUBLIC_UNTIL_SETUP.contains(&key),
            "{method} {path}: the spec's security and this test's public list disagree"
        );

        let r = d.send(&method.to_uppercase(), &url, None, None).await;
        let status = r.status().as_u16();
        if is_public {
            checked_public += 1;
            assert!(
                status != 401 && status != 403,
                "{method} {path} is public but answered {status}"
            );
        } else if path.starts_with("/api/v1/admin/") {
            assert_eq!(status, 403, "{method} {path} without credentials");
        } else {
            assert_eq!(status, 401, "{method} {path} without credentials");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }

        if method != "get" && !is_public && !SELF_SERVICE.contains(&key) {
            let r = d
                .send(&method.to_uppercase(), &url, Some(&viewer), None)
                .await;
            assert_eq!(
                r.status().as_u16(),
                403,
                "{method} {path} with a viewer token"
            );
        }
    }
    assert_eq!(
        checked_public,
        PUBLIC.len(),
        "every listed public operation exists"
    );
}
