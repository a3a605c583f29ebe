//! `GET /containers` answers from the engines' listings plus kept inspections
//! (`hostplane_host::containers::cache`), and never stale: changes made behind hostplane's back
//! with the `docker` CLI (rename, start, stop) show in the very next GET, as do changes made
//! through the API; a change the listing does not show (`docker update` of the memory limit)
//! shows once the engine's event for it arrived (well under a second). On dockerd and podman,
//! each started by the test (`engine_util`).

mod common;
mod engine_util;

use std::time::{Duration, Instant};

use common::Daemon;
use engine_util::{Engine, Kind, busybox_rootfs, daemon_for, docker_cli};
use serde_json::Value;

async fn list(d: &Daemon) -> Vec<Value> {
    d.get_json("/api/v1/containers")
        .await
        .as_array()
        .unwrap()
        .clone()
}

async fn find(d: &Daemon, name: &str) -> Option<Value> {
    list(d).await.into_iter().find(|c| c["name"] == name)
}

async fn state(d: &Daemon, name: &str) -> String {
    let c = find(d, name)
        .await
        .unwrap_or_else(|| panic!("{name} not listed"));
    c["state"].as_str().unwrap().to_string()
}

async fn scenario(kind: Kind) {
    let engine = Engine::start(kind);
    let name = match kind {
        Kind::Docker => "docker",
        Kind::Podman => "podman",
    };
    let sock = engine.socket_url();
    let d = daemon_for(&[(name, sock.clone())], 10);
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
    assert_eq!(r.status(), 201);
    for c in ["c1", "c2", "c3"] {
        docker_cli(
            &sock,
            &["create", "--name", c, "localhost/hp-bb:t1", "sleep", "300"],
        );
    }
    // The event follower is connected once the daemon is ready; list twice (the second from
    // the kept inspections).
    let first = list(&d).await;
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(list(&d).await, first);

    docker_cli(&sock, &["rename", "c1", "c1b"]);
    let names: Vec<String> = list(&d)
        .await
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["c1b", "c2", "c3"], "a CLI rename shows at once");

    docker_cli(&sock, &["start", "c2"]);
    assert_eq!(state(&d, "c2").await, "running");
    docker_cli(&sock, &["stop", "-t", "0", "c2"]);
    assert_eq!(state(&d, "c2").await, "exited", "a CLI stop shows at once");

    // Through the API: the answer and the next GET agree.
    let r = d
        .send(
            "POST",
            &format!("/api/v1/containers/{name}/c3/start"),
            Some(&d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(state(&d, "c3").await, "running");
    let r = d
        .send(
            "DELETE",
            &format!("/api/v1/containers/{name}/c3?force=true"),
            Some(&d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert!(find(&d, "c3").await.is_none());

    if kind == Kind::Docker {
        // Not in the listing's view: the engine's `update` event drops the kept inspection.
        assert_eq!(
            find(&d, "c1b").await.unwrap()["limits"]["memory_bytes"],
            Value::Null
        );
        docker_cli(
            &sock,
            &["update", "--memory", "64m", "--memory-swap", "128m", "c1b"],
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let c = find(&d, "c1b").await.unwrap();
            if c["limits"]["memory_bytes"] == 64 << 20 {
                break;
            }
            assert!(Instant::now() < deadline, "the update never showed: {c}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn docker_listing_is_never_stale() {
    scenario(Kind::Docker).await;
}

#[tokio::test]
async fn podman_listing_is_never_stale() {
    scenario(Kind::Podman).await;
}
