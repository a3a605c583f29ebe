//! One start order across kinds, followed after a daemon restart: a Docker container (private
//! dockerd, image imported through the API) and a VM (the tiny QEMU guest of
//! `scripts/guest-kit`, TCG) come up in order; a container whose bind mount source is gone and
//! a container that does not exist are skipped and reported (job log, event), not retried.
//! `GET /workloads` lists both kinds. Guards: the engine (its containers), the daemon (its
//! QEMU, which names the data dir).

mod common;
mod engine_util;

use std::time::{Duration, Instant};

use common::{Daemon, Opts, assert_problem};
use engine_util::{Engine, Kind, busybox_rootfs};
use serde_json::{Value, json};

async fn ok_json(r: reqwest::Response, status: u16) -> Value {
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(st, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn put(d: &Daemon, path: &str, body: Value) -> reqwest::Response {
    d.send("PUT", path, Some(&d.token.clone()), Some(body))
        .await
}

#[tokio::test]
async fn autostart_order_across_a_container_and_a_vm_after_a_restart() {
    for tool in ["qemu-system-x86_64", "qemu-img"] {
        engine_util::need(tool);
    }
    let kit = common::guest_kit();
    let engine = Engine::start(Kind::Docker);
    let scratch = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let mut d = Daemon::start_with(Opts {
        config: Some(format!(
            "[vms]\nallowed_paths = [{:?}]\n[containers]\ntimeout_secs = 10\n\
             [[containers.engines]]\nname = \"docker\"\nsocket = \"{}\"\n",
            kit.to_str().unwrap(),
            engine.socket_url()
        )),
        ..Opts::default()
    });

    // A container (created, not started), one whose bind source will be gone, and a VM.
    let r = d
        .client
        .post(d.url("/api/v1/container-engines/docker/images/import?repo=localhost/hp-auto&tag=t1"))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(busybox_rootfs())
        .send()
        .await
        .unwrap();
    ok_json(r, 201).await;
    let c = |name: &str| {
        json!({"name": name, "image": "localhost/hp-auto:t1", "cmd": ["sleep", "3600"],
            "network": "none"})
    };
    ok_json(d.post("/api/v1/containers/docker", c("auto1")).await, 201).await;
    let gone = scratch.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let mut with_bind = c("nomount1");
    with_bind["mounts"] = json!([{"source": gone.to_str().unwrap(), "target": "/data"}]);
    ok_json(d.post("/api/v1/containers/docker", with_bind).await, 201).await;
    std::fs::remove_dir(&gone).unwrap();
    let vm = ok_json(
        d.post(
            "/api/v1/vms",
            json!({
                "name": "autovm",
                "memory_mib": 256,
                "accelerator": "tcg",
                "kernel": kit.join("vmlinuz").to_str().unwrap(),
                "initrd": kit.join("initrd.gz").to_str().unwrap(),
                "cmdline": "console=ttyS0 quiet panic=-1 mode=serve",
            }),
        )
        .await,
        201,
    )
    .await;

    // The workloads, both kinds.
    let w = d.get_json("/api/v1/workloads").await;
    let find = |w: &Value, kind: &str, id: &str| -> Value {
        w.as_array()
            .unwrap()
            .iter()
            .find(|x| x["kind"] == kind && x["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {id} in {w}"))
    };
    let c1 = find(&w, "container", "docker/auto1");
    assert_eq!(c1["engine"], "docker");
    assert_eq!(c1["running"], false);
    let v1 = find(&w, "vm", "autovm");
    assert_eq!(v1["state"], "stopped");
    assert_eq!(v1["href"], vm["href"]);
    let only_vms = d
        .get_json("/api/v1/workloads?filter=kind:vm&fields=kind,name")
        .await;
    assert_eq!(
        only_vms,
        json!([{"kind": "vm", "name": "autovm", "href": vm["href"]}])
    );

    // The order: bad ones are refused and change nothing.
    assert_eq!(d.get_json("/api/v1/autostart").await, json!({"items": []}));
    for (body, code) in [
        (
            json!({"items": [{"kind": "bogus", "name": "x"}]}),
            "unknown_kind",
        ),
        (
            json!({"items": [{"kind": "container", "name": "auto1"}]}),
            "invalid_autostart",
        ),
        (
            json!({"items": [{"kind": "vm", "name": "-x"}]}),
            "invalid_autostart",
        ),
        (
            json!({"items": [{"kind": "vm", "name": "a"}, {"kind": "vm", "name": "a"}]}),
            "invalid_autostart",
        ),
        (
            json!({"items": [{"kind": "vm", "name": "a", "wait": {"seconds": 99999}}]}),
            "invalid_autostart",
        ),
    ] {
        assert_problem(put(&d, "/api/v1/autostart", body).await, 422, code).await;
    }
    let r = put(
        &d,
        "/api/v1/autostart",
        json!({"items": [{"kind": "vm", "name": "a", "wait": "soon"}]}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(d.get_json("/api/v1/autostart").await, json!({"items": []}));
    let order = json!({"items": [
        {"kind": "container", "name": "docker/nomount1", "wait": "running"},
        {"kind": "container", "name": "docker/auto1", "wait": "running", "timeout_secs": 60},
        {"kind": "container", "name": "docker/absent1"},
        {"kind": "vm", "name": "autovm", "wait": "running", "timeout_secs": 120},
    ]});
    let saved = ok_json(put(&d, "/api/v1/autostart", order.clone()).await, 200).await;
    assert_eq!(saved["items"].as_array().unwrap().len(), 4);
    assert_eq!(saved["items"][2]["wait"], json!({"seconds": 0}));

    // Restart: the order is followed in the background after the daemon is ready.
    d.stop();
    let t = Instant::now();
    d.spawn();
    let ready_secs = t.elapsed().as_secs_f64();
    let mut job = Value::Null;
    for _ in 0..100 {
        let jobs = d
            .get_json("/api/v1/jobs?filter=kind:workloads.autostart")
            .await;
        if let Some(j) = jobs.as_array().unwrap().first() {
            job = j.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!job.is_null(), "no autostart job after the restart");
    let done = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(done["status"], "success", "{done}");
    let items = done["result"]["items"].as_array().unwrap();
    let outcome: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcome,
        [
            ("docker/nomount1", "skipped"),
            ("docker/auto1", "started"),
            ("docker/absent1", "skipped"),
            ("autovm", "started"),
        ],
        "{done}"
    );
    assert!(
        items[0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{done}"
    );
    // In order: the VM's start was asked for after the container ran.
    let ts = |v: &Value| v.as_str().unwrap().to_string();
    let c_done = ts(&items[1]["done_at"]);
    let vm_started = ts(&items[3]["started_at"]);
    assert!(ts(&items[1]["started_at"]) <= c_done);
    assert!(c_done <= vm_started, "{done}");

    // The job's log says what was skipped and why; events too.
    let log = d
        .get(&format!("{}/log", job["href"].as_str().unwrap()))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("docker/nomount1: skipped"), "{log}");
    assert!(log.contains("docker/absent1: skipped"), "{log}");
    let client = d.client.clone();
    let mut resp = client
        .get(d.url("/api/v1/events?type=resource.updated&last_event_id=0"))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(seen.contains("docker/nomount1") && seen.contains("docker/absent1"))
        && Instant::now() < deadline
    {
        match tokio::time::timeout(Duration::from_secs(2), resp.chunk()).await {
            Ok(Ok(Some(c))) => seen.push_str(&String::from_utf8_lossy(&c)),
            _ => break,
        }
    }
    assert!(
        seen.contains("/api/v1/autostart") && seen.contains("docker/absent1"),
        "{seen}"
    );

    // Both run now.
    let w = d.get_json("/api/v1/workloads").await;
    assert_eq!(find(&w, "container", "docker/auto1")["running"], true);
    assert_eq!(find(&w, "container", "docker/nomount1")["running"], false);
    let v = find(&w, "vm", "autovm");
    assert_eq!(v["running"], true, "{v}");
    eprintln!(
        "ready after restart in {ready_secs:.2} s; container done {c_done}, VM start {vm_started}"
    );
    let r = d
        .post(&format!("{}/stop", vm["href"].as_str().unwrap()), json!({}))
        .await;
    assert!(r.status().is_success());
}
