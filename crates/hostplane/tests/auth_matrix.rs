//! Walks every operation of the served OpenAPI document and checks each answer against the
//! access the operation declares (`x-required-role`, `x-required-scope`), for: no credentials,
//! a `share` user, a viewer, an operator, an admin, an admin token scoped to the operation's own
//! scope, and an admin token scoped to another area. Reads are walked like writes.
//!
//! "Allowed" means the auth layer let the request through: any answer but 401/403 (the
//! handler then refuses the dummy path or body with 404/409/415/422...). "Refused" means 401
//! without credentials (403 under the Jidoteki `/admin` prefix, as its spec demands) and 403
//! for a credential that lacks the role or scope.

mod common;

use common::{Daemon, Opts};
use serde_json::{Value, json};

/// Operations whose declared access this test expects by name: a change to them must be made
/// here too, on purpose.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("post", "/api/v1/auth/login", "public"),
    ("post", "/api/v1/auth/logout", "authenticated"),
    ("get", "/api/v1/auth/whoami", "authenticated"),
    // Finding 1: the archive holds the bootstrap token, the appliance key and the database.
    ("get", "/api/v1/admin/backup/download", "admin"),
    ("get", "/api/v1/admin/backup/log", "admin"),
    ("get", "/api/v1/system/backups/{id}/download", "admin"),
    // Finding 2: once set, only an admin may change the admin-API token.
    ("post", "/api/v1/admin/setup", "admin"),
    // Finding 4: consoles type into the guest; screenshots and exports show its data.
    ("get", "/api/v1/vms/{id}/serial", "operator"),
    ("get", "/api/v1/vms/{id}/vnc", "operator"),
    ("get", "/api/v1/vms/{id}/screenshot", "operator"),
    ("get", "/api/v1/vms/{id}/disks/{n}.{format}", "operator"),
    ("get", "/api/v1/vms/{id}.tar.zst", "operator"),
    ("get", "/api/v1/system/debug-bundle", "admin"),
    ("get", "/api/v1/system/logs/archive", "operator"),
    ("get", "/api/v1/audit", "admin"),
    ("get", "/api/v1/users", "admin"),
    ("get", "/api/v1/tokens", "operator"),
    ("get", "/metrics", "viewer"),
];

const ROLES: &[&str] = &["viewer", "operator", "admin"];

fn rank(role: &str) -> usize {
    match role {
        "public" => 0,
        "authenticated" | "viewer" => 1,
        "operator" => 2,
        "admin" => 3,
        other => panic!("unknown declared role {other:?}"),
    }
}

struct Op {
    method: String,
    path: String,
    role: String,
    scope: Option<String>,
}

fn operations(spec: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let role = op["x-required-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} declares no x-required-role"))
                .to_string();
            let scope = op["x-required-scope"].as_str().map(str::to_string);
            ops.push(Op {
                method: method.to_string(),
                path: path.clone(),
                role,
                scope,
            });
        }
    }
    ops
}

/// The path with each parameter replaced by a value that names nothing: authorization comes
/// before any lookup. `{n}` parameters get a number, `{format}` an extension.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut param = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str(match param.as_str() {
                    "n" => "7",
                    "format" => "raw",
                    _ => "matrix-nosuch",
                });
                param.clear();
            }
            _ if in_param => param.push(c),
            _ => out.push(c),
        }
    }
    out
}

fn other_area(scope: &str) -> &'static str {
    if scope.starts_with("jobs") {
        "pools:write"
    } else {
        "jobs:write"
    }
}

/// Removes the Unix account and group the share user of the matrix made, also on panic.
struct ShareAccount {
    user: String,
    group: String,
}

impl Drop for ShareAccount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.user)
            .output();
        let _ = std::process::Command::new("groupdel")
            .arg(&self.group)
            .output();
    }
}

#[tokio::test]
async fn every_operation_answers_as_it_declares() {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag = format!("{:x}", (std::process::id() ^ t) & 0xffffff);
    let share = ShareAccount {
        user: format!("hpm{tag}s"),
        group: format!("hpm{tag}g"),
    };
    // One refused anonymous request per operation: more than the default budget per address.
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[auth]\nanonymous_failures_per_minute = 100000\n[shares]\ngroup = \"{}\"\n",
            share.group
        )),
        ..Default::default()
    });
    // Close the until-setup window first so every operation is in its steady state.
    let form = reqwest::multipart::Form::new().text("newtoken", "matrix-admin-token-5f2a9c7e1d");
    let r = d
        .client
        .post(d.url("/api/v1/admin/setup"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

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
    assert!(ops.len() >= 150, "the spec lists {} operations", ops.len());
    for (method, path, role) in EXPECTED {
        let op = ops
            .iter()
            .find(|o| o.method == *method && o.path == *path)
            .unwrap_or_else(|| panic!("{method} {path} is not in the document"));
        assert_eq!(op.role, *role, "{method} {path} declares {}", op.role);
    }

    let mut tokens = Vec::new();
    for role in ROLES {
        tokens.push((
            *role,
            d.token_for_role(&format!("matrix-{role}"), role).await,
        ));
    }

    // The share row: a share user gets no credential for the API at all.
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": share.user, "role": "share", "password": "Share-pass-1234"}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = d
        .send(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": share.user, "password": "Share-pass-1234"})),
        )
        .await;
    assert_eq!(r.status(), 403, "a share user logs in");
    let r = d
        .post(
            "/api/v1/tokens",
            json!({"name": "share", "owner": share.user}),
        )
        .await;
    assert_eq!(r.status(), 403, "a token for a share user");

    let mut checked = 0;
    let mut failures = Vec::new();
    for op in &ops {
        let url = concrete(&op.path);
        let method = op.method.to_uppercase();
        let jidoteki = op.path.starts_with("/api/v1/admin/");
        let label = format!("{} {}", op.method, op.path);

        // No credentials.
        let status = d.send(&method, &url, None, None).await.status().as_u16();
        if op.role == "public" {
            if status == 401 || status == 403 {
                failures.push(format!("{label}: public but answered {status}"));
            }
        } else {
            let want = if jidoteki { 403 } else { 401 };
            if status != want {
                failures.push(format!(
                    "{label}: {status} without credentials, want {want}"
                ));
            }
        }

        // Each role.
        for (role, token) in &tokens {
            let status = d
                .send(&method, &url, Some(token), None)
                .await
                .status()
                .as_u16();
            let allowed = rank(role) >= rank(&op.role);
            let refused = status == 401 || status == 403;
            if allowed == refused {
                failures.push(format!(
                    "{label}: {role} got {status} (declared {})",
                    op.role
                ));
            }
        }

        // Scoped admin tokens: its own scope lets it through, another area's does not.
        if let Some(scope) = &op.scope {
            let own = d
                .create_token(json!({"name": "own", "scopes": [scope]}))
                .await;
            let status = d
                .send(&method, &url, Some(&own), None)
                .await
                .status()
                .as_u16();
            if status == 401 || status == 403 {
                failures.push(format!("{label}: a token scoped to {scope} got {status}"));
            }
            let other = d
                .create_token(json!({"name": "other", "scopes": [other_area(scope)]}))
                .await;
            let status = d
                .send(&method, &url, Some(&other), None)
                .await
                .status()
                .as_u16();
            if status != 403 {
                failures.push(format!(
                    "{label}: a token scoped to {} got {status}, want 403",
                    other_area(scope)
                ));
            }
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, ops.len());
}

/// Finding 5: a scoped token cannot mint a token with more scopes (or none: all areas).
#[tokio::test]
async fn a_scoped_token_cannot_widen_its_scopes() {
    let d = Daemon::start();
    let tw = d
        .create_token(json!({"name": "tw", "role": "operator", "scopes": ["tokens:write"]}))
        .await;
    for scopes in [
        json!(["*"]),
        json!(["vms:write"]),
        json!(["tokens:write", "system:read"]),
    ] {
        let r = d
            .send(
                "POST",
                "/api/v1/tokens",
                Some(&tw),
                Some(json!({"name": "wider", "scopes": scopes})),
            )
            .await;
        assert_eq!(r.status(), 403, "scopes {scopes}");
    }
    // Asking for none passes on the creator's own scopes, not "all areas".
    let r = d
        .send(
            "POST",
            "/api/v1/tokens",
            Some(&tw),
            Some(json!({"name": "same"})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token"]["scopes"], json!(["tokens:write"]), "{v}");
    let child = v["value"].as_str().unwrap();
    let r = d.get_as("/api/v1/vms", child).await;
    assert_eq!(r.status(), 403, "the child token reads another area");
}

/// The event stream shows a subscriber only what it may read: viewers see no token or user
/// events, and a token scoped to one area sees only that area.
#[tokio::test]
async fn the_event_stream_respects_roles_and_scopes() {
    use futures_util::StreamExt;
    let d = Daemon::start();
    let viewer = d.token_for_role("ev-viewer", "viewer").await;
    let jobs_only = d
        .create_token(json!({"name": "jobs-only", "role": "admin", "scopes": ["events:read", "jobs:read", "system:read"]}))
        .await;
    let admin = d.token.clone();
    let open = |token: String| {
        let client = d.client.clone();
        let url = d.url("/api/v1/events?last_event_id=0");
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    // Something of each: a token (tokens), a user (users), a self-test job (jobs → system).
    d.create_token(json!({"name": "ev-made"})).await;
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": "ev-user", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = d.post("/api/v1/system/selftest", json!({})).await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    d.wait_job(job["href"].as_str().unwrap()).await;
    // A marker everyone may see, to know the replay is complete.
    let r = d.post("/api/v1/system/selftest", json!({})).await;
    let marker: Value = r.json().await.unwrap();
    d.wait_job(marker["href"].as_str().unwrap()).await;

    let collect = |resp: reqwest::Response| async move {
        let mut body = resp.bytes_stream();
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    };
    let admin_sees = collect(open(admin).await).await;
    let viewer_sees = collect(open(viewer).await).await;
    let jobs_sees = collect(open(jobs_only).await).await;
    assert!(admin_sees.contains("/api/v1/tokens/"), "{admin_sees}");
    assert!(admin_sees.contains("/api/v1/users/ev-user"), "{admin_sees}");
    assert!(!viewer_sees.contains("/api/v1/tokens/"), "{viewer_sees}");
    assert!(!viewer_sees.contains("/api/v1/users/"), "{viewer_sees}");
    assert!(viewer_sees.contains("system.selftest"), "{viewer_sees}");
    // An admin token scoped to events, jobs and system: the self-test (target
    // /api/v1/system/health), no token or user.
    assert!(jobs_sees.contains("system.selftest"), "{jobs_sees}");
    assert!(!jobs_sees.contains("/api/v1/tokens/"), "{jobs_sees}");
    assert!(!jobs_sees.contains("/api/v1/users/"), "{jobs_sees}");
}

/// `/metrics` follows the same rules: a credential is needed, and a token scoped to another
/// area does not read it.
#[tokio::test]
async fn metrics_need_a_viewer_with_system_read() {
    let d = Daemon::start();
    let r = d.send("GET", "/metrics", None, None).await;
    assert_eq!(r.status(), 401);
    let viewer = d.token_for_role("m-viewer", "viewer").await;
    let r = d.get_as("/metrics", &viewer).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("hostplane_uptime_seconds"));
    let vms = d
        .create_token(json!({"name": "vms", "scopes": ["vms:read"]}))
        .await;
    let r = d.get_as("/metrics", &vms).await;
    assert_eq!(r.status(), 403);
}

/// Finding 2: once the admin-API token is set only an admin may change it (it authenticates
/// as admin), and guessing it through `?token=`/`?hash=` is rate limited like logins.
#[tokio::test]
async fn the_admin_api_token_is_admin_only_and_guessing_it_is_slow() {
    let d = Daemon::start_with(Opts {
        config: Some("[auth]\nlogin_attempts_per_minute = 3\n".into()),
        ..Default::default()
    });
    let setup = |token: Option<String>, newtoken: &str| {
        let form = reqwest::multipart::Form::new().text("newtoken", newtoken.to_string());
        let mut req = d.client.post(d.url("/api/v1/admin/setup")).multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let real = "first-admin-token-8f3c2a91e5";
    assert_eq!(setup(None, real).await.unwrap().status(), 200);
    let operator = d.token_for_role("setup-operator", "operator").await;
    let r = setup(Some(operator), "operator-token-71c9e2b4d8a6")
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "an operator replaced the admin-API token");
    let version = |token: &str| {
        d.client
            .get(d.url(&format!("/api/v1/admin/version?token={token}")))
            .send()
    };
    assert_eq!(version(real).await.unwrap().status(), 200);
    // Three wrong guesses use the budget; the next is 429, and while blocked even the right
    // token is not tried.
    for i in 0..3 {
        let r = version(&format!("guess-{i}")).await.unwrap();
        assert_eq!(r.status(), 403, "guess {i}");
    }
    let r = version("guess-4").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(version(real).await.unwrap().status(), 429);
    let r = d
        .client
        .get(d.url("/api/v1/admin/version?hash=00ff"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Bearer tokens are not affected.
    assert_eq!(d.get("/api/v1/admin/version").await.status(), 200);
}
