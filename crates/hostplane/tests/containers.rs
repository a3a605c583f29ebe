//! Containers on real engines: dockerd and podman, each started by the test on a private
//! socket in its own temp dir (no network: `--bridge=none`, containers on network `none`),
//! with an image imported through the API from a busybox rootfs tarball made here (nothing
//! from the internet). Guards stop the engines and remove what they made, also on panic.

mod common;
mod engine_util;

use std::time::{Duration, Instant};

use common::{Daemon, assert_problem};
use engine_util::{Engine, Kind, busybox_rootfs, daemon_for, docker_cli};
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

async fn scenario(kind: Kind) {
    let t0 = Instant::now();
    let mut engine = Engine::start(kind);
    let name = match kind {
        Kind::Docker => "docker",
        Kind::Podman => "podman",
    };
    let d = daemon_for(&[(name, engine.socket_url())], 10);

    // The engine as hostplane sees it.
    let engines = d.get_json("/api/v1/container-engines").await;
    let e = &engines.as_array().unwrap()[0];
    assert_eq!(e["name"], name);
    assert_eq!(e["reachable"], true, "{e}");
    assert_eq!(e["driver"], name);
    assert_eq!(e["negotiated_api_version"], "1.41", "{e}");
    assert!(e["server_version"].as_str().is_some_and(|v| !v.is_empty()));

    // The image, imported from a rootfs tarball.
    let r = d
        .client
        .post(d.url(&format!(
            "/api/v1/container-engines/{name}/images/import?repo=localhost/hp-bb&tag=t1"
        )))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(busybox_rootfs())
        .send()
        .await
        .unwrap();
    let image = ok_json(r, 201).await;
    assert_eq!(image["tags"], json!(["localhost/hp-bb:t1"]), "{image}");
    let images = d
        .get_json(&format!("/api/v1/container-engines/{name}/images"))
        .await;
    assert!(
        images
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == image["id"])
    );

    // Bad input: 422 and nothing created.
    for body in [
        json!({"name": "-bad", "image": "localhost/hp-bb:t1"}),
        json!({"name": "a..b", "image": "localhost/hp-bb:t1"}),
        json!({"name": "ok1", "image": "../hp-bb"}),
        json!({"name": "ok1", "image": "-hp-bb"}),
        json!({"name": "ok1", "image": "localhost/hp-bb:t1", "env": {"1X": "y"}}),
        json!({"name": "ok1", "image": "localhost/hp-bb:t1", "volumes": [{"name": "v", "target": "/a/../b"}]}),
        json!({"name": "ok1", "image": "localhost/hp-bb:t1", "limits": {"memory_bytes": 10}}),
    ] {
        let r = send(
            &d,
            "POST",
            &format!("/api/v1/containers/{name}"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status(), 422, "{body}: {}", r.text().await.unwrap());
    }
    // A malformed name in the path names nothing (404); it never reaches the engine.
    let r = send(&d, "GET", &format!("/api/v1/containers/{name}/a..b"), None).await;
    assert_problem(r, 404, "not_found").await;
    // Bind mounts outside pool datasets: admin only.
    let op = d.token_for_role("ctrop", "operator").await;
    let r = d
        .send(
            "POST",
            &format!("/api/v1/containers/{name}"),
            Some(&op),
            Some(json!({"name": "ok1", "image": "localhost/hp-bb:t1",
                        "mounts": [{"source": "/tmp", "target": "/mnt"}]})),
        )
        .await;
    assert_problem(r, 422, "bind_outside_pools").await;
    assert_eq!(
        d.get_json("/api/v1/containers").await,
        json!([]),
        "bad input created something"
    );
    assert_eq!(docker_cli(&engine.socket_url(), &["ps", "-aq"]).trim(), "");

    // Create, start, exec, logs.
    let t_create = Instant::now();
    let c = ok_json(
        send(
            &d,
            "POST",
            &format!("/api/v1/containers/{name}"),
            Some(json!({
                "name": "web1", "image": "localhost/hp-bb:t1",
                "cmd": ["sh", "-c", "echo hello-$GREETING; echo to-stderr >&2; exec sleep 600"],
                "env": {"GREETING": "world"}, "network": "none",
                "labels": {"hp.test": "yes"}, "restart": {"name": "no"},
                "limits": {"memory_bytes": 67108864, "pids": 50},
                "volumes": [{"name": "hp-vol1", "target": "/data"}],
            })),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(c["href"], format!("/api/v1/containers/{name}/web1"));
    assert_eq!(c["state"], "created");
    assert_eq!(c["labels"]["hp.test"], "yes");
    assert_eq!(c["limits"]["memory_bytes"], 67108864);
    assert_eq!(c["limits"]["pids"], 50);
    let c = ok_json(
        send(
            &d,
            "POST",
            &format!("/api/v1/containers/{name}/web1/start"),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(c["state"], "running", "{c}");
    let create_start = t_create.elapsed();

    // The docker CLI on the same socket sees it, with its label.
    let ps = docker_cli(
        &engine.socket_url(),
        &["ps", "--format", "{{.Names}} {{.Label \"hp.test\"}}"],
    );
    assert!(ps.lines().any(|l| l.trim() == "web1 yes"), "{ps}");

    let listed = d
        .get_json("/api/v1/containers?filter=name:web1&fields=engine,name,state")
        .await;
    assert_eq!(
        listed,
        json!([{"href": format!("/api/v1/containers/{name}/web1"), "engine": name, "name": "web1",
                "state": "running"}])
    );

    let t_exec = Instant::now();
    let x = ok_json(
        send(
            &d,
            "POST",
            &format!("/api/v1/containers/{name}/web1/exec"),
            Some(json!({"cmd": ["sh", "-c", "echo out-$A; echo err >&2; exit 7"], "env": {"A": "b"}})),
        )
        .await,
        200,
    )
    .await;
    let exec_time = t_exec.elapsed();
    assert_eq!(x["stdout"], "out-b\n");
    assert_eq!(x["stderr"], "err\n");
    assert_eq!(x["exit_code"], 7);
    // Operators may not exec (admin only).
    let r = d
        .send(
            "POST",
            &format!("/api/v1/containers/{name}/web1/exec"),
            Some(&op),
            Some(json!({"cmd": ["true"]})),
        )
        .await;
    assert_eq!(r.status(), 403);

    // Logs: the line may take a moment to be written.
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let r = send(
            &d,
            "GET",
            &format!("/api/v1/containers/{name}/web1/logs?tail=10"),
            None,
        )
        .await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let t = r.text().await.unwrap();
        if t.contains("hello-world") || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        logs.contains("hello-world") && logs.contains("to-stderr"),
        "{logs:?}"
    );
    let r = send(
        &d,
        "GET",
        &format!("/api/v1/containers/{name}/web1/logs?timestamps=true&tail=1"),
        None,
    )
    .await;
    let t = r.text().await.unwrap();
    assert!(t.starts_with("20"), "a timestamp first: {t:?}");

    // Follow streams: the first chunk arrives while the response stays open.
    let r = send(
        &d,
        "GET",
        &format!("/api/v1/containers/{name}/web1/logs?follow=true"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    use futures_util::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("a followed log sends what is there")
        .unwrap()
        .unwrap();
    assert!(!first.is_empty());
    drop(body);

    // Pause, unpause, stop, delete.
    for (action, state) in [("pause", "paused"), ("unpause", "running")] {
        let c = ok_json(
            send(
                &d,
                "POST",
                &format!("/api/v1/containers/{name}/web1/{action}"),
                None,
            )
            .await,
            200,
        )
        .await;
        assert_eq!(c["state"], state, "{action}: {c}");
    }
    let r = send(
        &d,
        "DELETE",
        &format!("/api/v1/containers/{name}/web1"),
        None,
    )
    .await;
    assert_problem(r, 409, "container_running").await;
    // An action that does not apply to the state (unpause a running container).
    let r = send(
        &d,
        "POST",
        &format!("/api/v1/containers/{name}/web1/unpause"),
        None,
    )
    .await;
    assert_problem(r, 409, "container_state").await;
    let t_stop = Instant::now();
    let c = ok_json(
        send(
            &d,
            "POST",
            &format!("/api/v1/containers/{name}/web1/stop?timeout=1"),
            None,
        )
        .await,
        200,
    )
    .await;
    let stop_time = t_stop.elapsed();
    assert_eq!(c["state"], "exited", "{c}");
    let r = send(
        &d,
        "DELETE",
        &format!("/api/v1/containers/{name}/web1?volumes=true"),
        None,
    )
    .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = send(&d, "GET", &format!("/api/v1/containers/{name}/web1"), None).await;
    assert_problem(r, 404, "not_found").await;
    assert!(
        !docker_cli(
            &engine.socket_url(),
            &["ps", "-a", "--format", "{{.Names}}"]
        )
        .contains("web1")
    );

    // The image goes too.
    let id = image["id"].as_str().unwrap();
    let r = send(
        &d,
        "DELETE",
        &format!("/api/v1/container-engines/{name}/images/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());

    // The engine goes down: 503, promptly, never a hang or a 500.
    engine.stop();
    let t_down = Instant::now();
    for (method, path) in [
        ("GET", format!("/api/v1/containers/{name}/web1")),
        ("POST", format!("/api/v1/containers/{name}/web1/start")),
        ("GET", format!("/api/v1/container-engines/{name}/images")),
    ] {
        let r = send(&d, method, &path, None).await;
        assert_problem(r, 503, "engine_unavailable").await;
    }
    let r = send(&d, "GET", "/api/v1/containers", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-unreachable-engines"], name);
    let e = d
        .get_json(&format!("/api/v1/container-engines/{name}"))
        .await;
    assert_eq!(e["reachable"], false);
    assert!(
        t_down.elapsed() < Duration::from_secs(5),
        "{:?}",
        t_down.elapsed()
    );
    eprintln!(
        "{name}: create+start {create_start:?}, exec {exec_time:?}, stop(1 s grace) {stop_time:?}, \
         whole scenario {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_end_to_end() {
    scenario(Kind::Docker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_end_to_end() {
    scenario(Kind::Podman).await;
}

/// An engine that accepts connections and never answers: 503 within the timeout, not a hang.
#[tokio::test]
async fn silent_and_missing_engines_answer_503() {
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let hold = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming().take(16) {
            conns.push(c);
        }
    });
    let d = daemon_for(
        &[
            ("silent", format!("unix://{}", sock.display())),
            (
                "gone",
                format!("unix://{}", dir.path().join("none.sock").display()),
            ),
        ],
        1,
    );
    for engine in ["silent", "gone"] {
        let t = Instant::now();
        let r = send(&d, "GET", &format!("/api/v1/containers/{engine}/x"), None).await;
        assert_problem(r, 503, "engine_unavailable").await;
        let r = send(
            &d,
            "POST",
            &format!("/api/v1/containers/{engine}"),
            Some(json!({"name": "x", "image": "busybox"})),
        )
        .await;
        assert_problem(r, 503, "engine_unavailable").await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{engine}: {:?}",
            t.elapsed()
        );
    }
    let engines = d.get_json("/api/v1/container-engines").await;
    assert!(
        engines
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["reachable"] == false)
    );
    let r = send(&d, "GET", "/api/v1/containers/nope/x", None).await;
    assert_problem(r, 404, "not_found").await;
    let r = send(&d, "GET", "/api/v1/containers/-x/x", None).await;
    assert_problem(r, 404, "not_found").await;
    drop(d);
    drop(hold);
}
