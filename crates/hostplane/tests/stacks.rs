//! Compose stacks on real engines: a private dockerd and a private podman service (no network:
//! `--bridge=none`, services on `network_mode: none`), an image imported through the API from a
//! busybox rootfs tarball, and Debian's `docker-compose` run by the daemon. A stack of two
//! services comes up (two containers with the project label), restarts, shows its logs, goes
//! down (containers gone) and is deleted; malformed or forbidden compose files are 422 and
//! store nothing.

mod common;
mod engine_util;

use std::time::Instant;

use common::{Daemon, assert_problem};
use engine_util::{Engine, Kind, busybox_rootfs, daemon_for, docker_cli, need};
use serde_json::{Value, json};

async fn send(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> reqwest::Response {
    d.send(method, path, Some(&d.token.clone()), body).await
}

async fn ok_json(r: reqwest::Response, status: u16) -> Value {
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(st, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

const IMAGE: &str = "localhost/hp-stack:t1";

fn compose_file() -> String {
    format!(
        "version: \"3\"\nservices:\n  alpha:\n    image: {IMAGE}\n    command: sleep 3600\n    \
         network_mode: none\n  beta:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \
         \"echo hello-from-$$GREETING; exec sleep 3600\"]\n    environment:\n      GREETING: \
         ${{WHO}}\n    network_mode: none\n"
    )
}

/// Runs a stack action and waits for its job; returns the job.
async fn action(d: &Daemon, stack: &str, what: &str) -> Value {
    let r = send(d, "POST", &format!("/api/v1/stacks/{stack}/{what}"), None).await;
    let job = ok_json(r, 202).await;
    assert_eq!(job["kind"], format!("stacks.{what}"));
    let done = d.wait_job(job["href"].as_str().unwrap()).await;
    if done["status"] != "success" {
        let log = d
            .get(&format!("{}/log", job["href"].as_str().unwrap()))
            .await
            .text()
            .await
            .unwrap();
        panic!("{what}: {done}\n{log}");
    }
    done
}

fn labelled(engine: &Engine, stack: &str) -> Vec<String> {
    let out = docker_cli(
        &engine.socket_url(),
        &[
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={stack}"),
            "--format",
            "{{.Names}} {{.State}}",
        ],
    );
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

async fn scenario(kind: Kind) {
    need("docker-compose");
    let t0 = Instant::now();
    let engine = Engine::start(kind);
    let name = match kind {
        Kind::Docker => "docker",
        Kind::Podman => "podman",
    };
    let d = daemon_for(&[(name, engine.socket_url())], 10);

    let r = d
        .client
        .post(d.url(&format!(
            "/api/v1/container-engines/{name}/images/import?repo=localhost/hp-stack&tag=t1"
        )))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(busybox_rootfs())
        .send()
        .await
        .unwrap();
    ok_json(r, 201).await;

    // Malformed or forbidden files: 422 with the line, and nothing stored.
    let operator = d.token_for_role("stackop", "operator").await;
    let bad: Vec<(&str, String, &str, Option<&str>)> = vec![
        (
            "syntax",
            "services:\n  a:\n    image: x\n   oops: [\n".into(),
            "invalid_compose",
            Some("line "),
        ),
        (
            "no image",
            "services:\n  a:\n    command: sleep 1\n".into(),
            "invalid_compose",
            Some("line 2"),
        ),
        (
            "build",
            format!("services:\n  a:\n    image: {IMAGE}\n    build: .\n"),
            "invalid_compose",
            Some("line 4"),
        ),
        (
            "bad service name",
            format!("services:\n  -a:\n    image: {IMAGE}\n"),
            "invalid_compose",
            Some("line 2"),
        ),
        (
            "compose's own check",
            format!("services:\n  a:\n    image: {IMAGE}\n    command: {{x: 1}}\n"),
            "invalid_compose",
            None,
        ),
        (
            "privileged",
            format!("services:\n  a:\n    image: {IMAGE}\n    privileged: true\n"),
            "compose_not_allowed",
            Some("line 4"),
        ),
        (
            "bind outside pools",
            format!("services:\n  a:\n    image: {IMAGE}\n    volumes:\n      - /etc:/host-etc\n"),
            "compose_not_allowed",
            Some("line 4"),
        ),
    ];
    for (what, text, code, line) in bad {
        let r = d
            .send(
                "POST",
                "/api/v1/stacks",
                Some(&operator),
                Some(json!({"name": "bad", "engine": name, "compose": text})),
            )
            .await;
        let p = assert_problem(r, 422, code).await;
        if let Some(l) = line {
            assert!(p["detail"].as_str().unwrap().contains(l), "{what}: {p}");
        }
    }
    for body in [
        json!({"name": "Bad", "engine": name, "compose": compose_file()}),
        json!({"name": "-x", "engine": name, "compose": compose_file()}),
        json!({"name": "ok", "engine": "nope", "compose": compose_file()}),
        json!({"name": "ok", "engine": name, "compose": compose_file(), "env": "1X=2\n"}),
    ] {
        let r = send(&d, "POST", "/api/v1/stacks", Some(body)).await;
        assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
    }
    let list = d.get_json("/api/v1/stacks").await;
    assert_eq!(list, json!([]), "nothing stored");
    let stacks_dir = d.data_dir().join("stacks");
    let left: Vec<_> = std::fs::read_dir(&stacks_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "files left: {left:?}");
    // An admin may bind host paths.
    let r = send(
        &d,
        "POST",
        "/api/v1/stacks",
        Some(json!({"name": "adminbind", "engine": name,
            "compose": format!("services:\n  a:\n    image: {IMAGE}\n    network_mode: none\n    volumes:\n      - /etc:/host-etc:ro\n")})),
    )
    .await;
    ok_json(r, 201).await;
    assert_eq!(
        send(&d, "DELETE", "/api/v1/stacks/adminbind", None)
            .await
            .status(),
        204
    );

    // The stack: stored, then up.
    let r = d
        .send(
            "POST",
            "/api/v1/stacks",
            Some(&operator),
            Some(
                json!({"name": "web1", "engine": name, "compose": compose_file(),
                "env": "WHO=stacks\n"}),
            ),
        )
        .await;
    let s = ok_json(r, 201).await;
    assert_eq!(s["services"], json!(["alpha", "beta"]));
    assert_eq!(s["status"], "down");
    assert_eq!(s["has_env"], true);
    let files = d.get_json("/api/v1/stacks/web1/files").await;
    assert_eq!(files["compose"], compose_file());
    assert_eq!(files["env"], "WHO=stacks\n");
    let r = send(
        &d,
        "POST",
        "/api/v1/stacks",
        Some(json!({"name": "web1", "engine": name, "compose": compose_file()})),
    )
    .await;
    assert_problem(r, 409, "stack_exists").await;

    let t_up = Instant::now();
    let job = action(&d, "web1", "up").await;
    let up_secs = t_up.elapsed().as_secs_f64();
    assert_eq!(
        job["result"]["containers"].as_array().unwrap().len(),
        2,
        "{job}"
    );
    let ps = labelled(&engine, "web1");
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert!(ps.iter().all(|l| l.ends_with(" running")), "{ps:?}");
    let s = d.get_json("/api/v1/stacks/web1").await;
    assert_eq!(s["status"], "running", "{s}");
    let cs = s["containers"].as_array().unwrap();
    assert_eq!(cs.len(), 2);
    assert!(
        cs.iter()
            .all(|c| c["stack"] == "web1" && c["state"] == "running")
    );
    // The containers area sees them with their stack too.
    let all = d.get_json("/api/v1/containers").await;
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["stack"] == "web1")
            .count(),
        2
    );

    // Logs of every service, the .env interpolated.
    let mut logs = String::new();
    for _ in 0..50 {
        let r = send(&d, "GET", "/api/v1/stacks/web1/logs?tail=20", None).await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        logs = r.text().await.unwrap();
        if logs.contains("hello-from-stacks") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(logs.contains("hello-from-stacks"), "{logs}");
    assert!(logs.contains("beta"), "{logs}");

    // Restart: the same containers, started again.
    let before: Value = d.get_json("/api/v1/stacks/web1").await;
    let started = |s: &Value| -> Vec<String> {
        let mut v: Vec<String> = s["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c["id"], c["started_at"]))
            .collect();
        v.sort();
        v
    };
    action(&d, "web1", "restart").await;
    let after = d.get_json("/api/v1/stacks/web1").await;
    assert_eq!(after["status"], "running", "{after}");
    let (b, a) = (started(&before), started(&after));
    for (x, y) in b.iter().zip(&a) {
        let (xid, _) = x.split_once(' ').unwrap();
        let (yid, _) = y.split_once(' ').unwrap();
        assert_eq!(xid, yid, "restart keeps the containers");
        assert_ne!(x, y, "restart starts them again");
    }

    // Delete while up: refused; down removes the containers; then delete.
    let r = send(&d, "DELETE", "/api/v1/stacks/web1", None).await;
    assert_problem(r, 409, "stack_not_down").await;
    action(&d, "web1", "down").await;
    assert!(labelled(&engine, "web1").is_empty());
    let s = d.get_json("/api/v1/stacks/web1").await;
    assert_eq!(s["status"], "down");
    // A replaced file is checked like a new one; a bad one changes nothing.
    let r = send(
        &d,
        "PUT",
        "/api/v1/stacks/web1/files",
        Some(json!({"compose": "services: [\n"})),
    )
    .await;
    assert_problem(r, 422, "invalid_compose").await;
    assert_eq!(
        d.get_json("/api/v1/stacks/web1/files").await["compose"],
        compose_file()
    );
    assert_eq!(
        send(&d, "DELETE", "/api/v1/stacks/web1", None)
            .await
            .status(),
        204
    );
    assert_eq!(d.get_json("/api/v1/stacks").await, json!([]));
    assert!(!stacks_dir.join("web1").exists());
    eprintln!(
        "{kind:?}: up {up_secs:.2} s, whole scenario {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn stack_up_restart_logs_down_on_dockerd() {
    scenario(Kind::Docker).await;
}

#[tokio::test]
async fn stack_up_restart_logs_down_on_podman() {
    scenario(Kind::Podman).await;
}
