//! Container operations on real engines (dockerd and podman on private sockets, see
//! `engine_util`): live limit changes and the 409 for what needs a recreate, recreate keeping a
//! named volume's data, stats (one-shot and SSE) and top, engine events in the event stream
//! with who caused them (the API, or the `docker` CLI on the same socket), image prune; and
//! against a real registry on loopback (`registry_util`): pulls as jobs with progress, a create
//! that pulls its missing image, and update checks (containers and a compose stack's services)
//! before and after a new image is pushed under the same tag.

mod common;
mod engine_util;
mod registry_util;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, assert_problem};
use engine_util::{Engine, Kind, busybox_rootfs, daemon_for, docker_cli};
use futures_util::StreamExt;
use registry_util::Registry;
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

fn engine_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Docker => "docker",
        Kind::Podman => "podman",
    }
}

async fn import(d: &Daemon, engine: &str, repo: &str, tag: &str, tar: Vec<u8>) -> Value {
    let r = d
        .client
        .post(d.url(&format!(
            "/api/v1/container-engines/{engine}/images/import?repo={repo}&tag={tag}"
        )))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(tar)
        .send()
        .await
        .unwrap();
    ok_json(r, 201).await
}

/// Every event of the daemon's SSE stream, collected in the background.
struct Events(
    Arc<Mutex<Vec<(String, Value)>>>,
    tokio::task::JoinHandle<()>,
);

impl Events {
    async fn subscribe(d: &Daemon) -> Events {
        let resp = d
            .client
            .get(d.url("/api/v1/events?type=container.*"))
            .bearer_auth(&d.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let msg: String = buf.drain(..end + 2).collect();
                    let (mut ty, mut data) = (String::new(), None);
                    for line in msg.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            ty = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data = serde_json::from_str::<Value>(v.trim()).ok();
                        }
                    }
                    if let Some(data) = data {
                        out.lock().unwrap().push((ty, data));
                    }
                }
            }
        });
        Events(seen, task)
    }

    /// Waits for an event of `ty` about container `name` (or id); answers it.
    async fn wait(&self, ty: &str, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((_, e)) =
                self.0.lock().unwrap().iter().find(|(t, e)| {
                    t == ty && (e["data"]["name"] == name || e["data"]["id"] == name)
                })
            {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {ty} event for {name}; saw {:?}",
                self.0.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.1.abort();
    }
}

async fn exec(d: &Daemon, engine: &str, name: &str, cmd: &[&str]) -> Value {
    ok_json(
        send(
            d,
            "POST",
            &format!("/api/v1/containers/{engine}/{name}/exec"),
            Some(json!({"cmd": cmd})),
        )
        .await,
        200,
    )
    .await
}

async fn scenario(kind: Kind) {
    let t0 = Instant::now();
    let engine = Engine::start(kind);
    let name = engine_name(kind);
    let d = daemon_for(&[(name, engine.socket_url())], 10);
    let events = Events::subscribe(&d).await;
    import(&d, name, "localhost/hp-bb", "t1", busybox_rootfs()).await;
    let base = format!("/api/v1/containers/{name}");

    // A container with a named volume and a memory limit, running.
    let c = ok_json(
        send(
            &d,
            "POST",
            &base,
            Some(json!({
                "name": "ops1", "image": "localhost/hp-bb:t1",
                "cmd": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"], "network": "none",
                "volumes": [{"name": "hp-ops-data", "target": "/data"}],
                "limits": {"memory_bytes": 64 << 20}
            })),
        )
        .await,
        201,
    )
    .await;
    let old_id = c["id"].as_str().unwrap().to_string();
    ok_json(
        send(&d, "POST", &format!("{base}/ops1/start"), None).await,
        200,
    )
    .await;

    // PATCH: limits live (podman 4.3 through its own API: it has no compat update).
    let c = ok_json(
        send(
            &d,
            "PATCH",
            &format!("{base}/ops1"),
            Some(json!({"limits": {"memory_bytes": 128 << 20, "cpus": 0.5, "pids": 100}})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(c["limits"]["memory_bytes"], 128 << 20, "{c}");
    assert_eq!(c["limits"]["cpus"], 0.5, "{c}");
    assert_eq!(c["limits"]["pids"], 100, "{c}");
    assert_eq!(c["state"], "running");
    // The kernel applies it: the container's cgroup (v1 or v2) on the host says so.
    let id = c["id"].as_str().unwrap();
    let cgroup_files = [
        format!("/sys/fs/cgroup/memory/libpod_parent/libpod-{id}/memory.limit_in_bytes"),
        format!("/sys/fs/cgroup/libpod_parent/libpod-{id}/memory.max"),
        format!("/sys/fs/cgroup/memory/docker/{id}/memory.limit_in_bytes"),
        format!("/sys/fs/cgroup/docker/{id}/memory.max"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.max"),
    ];
    let applied = cgroup_files
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_else(|| panic!("no memory cgroup file of {id} among {cgroup_files:?}"));
    assert_eq!(applied.trim(), (128u64 << 20).to_string());
    // The restart policy: live on dockerd; podman 4.3 cannot, so a recreate is required.
    let r = send(
        &d,
        "PATCH",
        &format!("{base}/ops1"),
        Some(json!({"restart": {"name": "unless-stopped"}})),
    )
    .await;
    let restart = match kind {
        Kind::Docker => {
            let c = ok_json(r, 200).await;
            assert_eq!(c["restart"]["name"], "unless-stopped", "{c}");
            assert_eq!(
                c["limits"]["pids"], 100,
                "the policy change reset a limit: {c}"
            );
            "unless-stopped"
        }
        Kind::Podman => {
            assert_problem(r, 409, "recreate_required").await;
            "no"
        }
    };
    // What only a recreate can change: 409 naming the fields, nothing changed.
    let r = send(
        &d,
        "PATCH",
        &format!("{base}/ops1"),
        Some(json!({"image": "localhost/other:1", "env": {"A": "b"}, "limits": {"pids": 5}})),
    )
    .await;
    let p = assert_problem(r, 409, "recreate_required").await;
    assert!(p["detail"].as_str().unwrap().contains("image, env"), "{p}");
    let r = send(
        &d,
        "PATCH",
        &format!("{base}/ops1"),
        Some(json!({"limits": {"memory_bytes": 10}})),
    )
    .await;
    assert_eq!(r.status(), 422);
    let c = d.get_json(&format!("{base}/ops1")).await;
    if kind == Kind::Docker {
        assert_eq!(
            c["limits"]["pids"], 100,
            "a refused PATCH changed something: {c}"
        );
    }

    // Stats: one sample, then the SSE stream; top.
    // One sample: the memory limit as the engine reports it.
    let s = d.get_json(&format!("{base}/ops1/stats")).await;
    assert_eq!(s["name"], "ops1");
    // podman 4.3 keeps reporting the create-time limit after a live update (docs/containers.md).
    let reported: u64 = if kind == Kind::Docker {
        128 << 20
    } else {
        64 << 20
    };
    assert_eq!(s["memory_limit_bytes"], reported, "{s}");
    assert!(s["memory_usage_bytes"].as_u64().unwrap() > 0, "{s}");
    assert!(s["pids"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["cpu_percent"].is_number(), "{s}");
    let resp = d
        .client
        .get(d.url(&format!("{base}/ops1/stats?stream=true")))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut samples = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while samples < 2 {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("stats arrive")
            .expect("stream open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        samples = buf.matches("event: stats").count();
    }
    drop(stream);
    let top = ok_json(
        send(&d, "GET", &format!("{base}/ops1/top"), None).await,
        200,
    )
    .await;
    assert!(
        top["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.to_string().contains("sleep")),
        "{top}"
    );

    // Recreate keeps the name, the configuration and the named volume's data.
    let w = exec(&d, name, "ops1", &["sh", "-c", "echo kept > /data/f"]).await;
    assert_eq!(w["exit_code"], 0, "{w}");
    let job = ok_json(
        send(
            &d,
            "POST",
            &format!("{base}/ops1/recreate"),
            Some(json!({})),
        )
        .await,
        202,
    )
    .await;
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    let c = &job["result"];
    assert_eq!(c["name"], "ops1");
    assert_ne!(c["id"], old_id.as_str());
    assert_eq!(c["state"], "running", "{c}");
    assert_eq!(c["limits"]["memory_bytes"], reported, "{c}");
    assert_eq!(c["restart"]["name"], restart, "{c}");
    let r = exec(&d, name, "ops1", &["cat", "/data/f"]).await;
    assert_eq!(r["stdout"], "kept\n", "{r}");
    let all = d.get_json("/api/v1/containers").await;
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "the old container stayed: {all}"
    );

    // Events: what the API did carries its user; what the docker CLI did says the engine.
    let created = events.wait("container.create", "ops1").await;
    assert_eq!(created["data"]["origin"], "hostplane", "{created}");
    assert!(!created["actor"].as_str().unwrap().starts_with("engine:"));
    events.wait("container.start", "ops1").await;
    let died = events.wait("container.die", "ops1").await; // the recreate stopped it
    assert_eq!(died["actor"], created["actor"], "{died}");
    // The old container, renamed aside, is destroyed by the recreate.
    let destroyed = events.wait("container.destroy", &old_id).await;
    assert_eq!(destroyed["actor"], created["actor"], "{destroyed}");
    let sock = engine.socket_url();
    docker_cli(
        &sock,
        &[
            "create",
            "--name",
            "cli1",
            "--network",
            "none",
            "localhost/hp-bb:t1",
            "true",
        ],
    );
    docker_cli(&sock, &["start", "cli1"]);
    let made = events.wait("container.create", "cli1").await;
    assert_eq!(made["actor"], format!("engine:{name}"), "{made}");
    assert_eq!(made["data"]["origin"], "engine");
    events.wait("container.start", "cli1").await;
    events.wait("container.die", "cli1").await;
    docker_cli(&sock, &["rm", "cli1"]);
    let gone = events.wait("container.destroy", "cli1").await;
    assert_eq!(gone["data"]["origin"], "engine", "{gone}");
    assert_eq!(gone["href"], format!("{base}/cli1"));

    // Prune: an unused image goes, one in use stays.
    import(&d, name, "localhost/hp-unused", "t1", busybox_rootfs()).await;
    let r = ok_json(
        send(
            &d,
            "POST",
            &format!("/api/v1/container-engines/{name}/images/prune"),
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(!r["deleted"].as_array().unwrap().is_empty(), "{r}");
    let images = d
        .get_json(&format!("/api/v1/container-engines/{name}/images"))
        .await;
    let tags = images.to_string();
    assert!(!tags.contains("hp-unused"), "{tags}");
    assert!(tags.contains("localhost/hp-bb:t1"), "{tags}");

    let r = send(&d, "DELETE", &format!("{base}/ops1?force=true"), None).await;
    assert_eq!(r.status(), 204);
    eprintln!("{name}: {:.1} s", t0.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_on_dockerd() {
    scenario(Kind::Docker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_on_podman() {
    scenario(Kind::Podman).await;
}

/// The busybox rootfs with one more file: another image (another digest) of the same content.
fn changed_rootfs() -> Vec<u8> {
    let src = busybox_rootfs();
    let mut ar = tar::Archive::new(&src[..]);
    let mut b = tar::Builder::new(Vec::new());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        if h.entry_type() == tar::EntryType::Symlink {
            let target = e.link_name().unwrap().unwrap().into_owned();
            let path = e.path().unwrap().into_owned();
            b.append_link(&mut h, path, target).unwrap();
        } else {
            let path = e.path().unwrap().into_owned();
            b.append_data(&mut h, path, &mut e).unwrap();
        }
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(3);
    b.append_data(&mut h, "etc/version", &b"v2\n"[..]).unwrap();
    b.into_inner().unwrap()
}

async fn wait_success(d: &Daemon, job: Value) -> Value {
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    job
}

async fn update_status(d: &Daemon, engine: &str, name: &str) -> Value {
    let all = d.get_json("/api/v1/container-updates").await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["engine"] == engine && s["name"] == name)
        .unwrap_or_else(|| panic!("no status for {engine}/{name}: {all}"))
        .clone()
}

async fn stack_status(d: &Daemon, name: &str) -> Value {
    let all = d.get_json("/api/v1/container-updates").await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "stack" && s["name"] == name)
        .unwrap_or_else(|| panic!("no status for stack {name}: {all}"))
        .clone()
}

fn service(stack: &Value, name: &str) -> Value {
    stack["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("no service {name}: {stack}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_and_update_checks_against_a_local_registry() {
    let t0 = Instant::now();
    let registry = Registry::start();
    // podman reads its registries.conf from the environment it starts with.
    // SAFETY: set before any thread of this test process reads the environment.
    unsafe { std::env::set_var("CONTAINERS_REGISTRIES_CONF", registry.registries_conf()) };
    let docker = Engine::start(Kind::Docker);
    let podman = Engine::start(Kind::Podman);
    let d = daemon_for(
        &[
            ("docker", docker.socket_url()),
            ("podman", podman.socket_url()),
        ],
        10,
    );
    let sock = docker.socket_url();
    let reference = format!("{}/hp/bb:1", registry.host());

    // Push v1 with the docker CLI (the engine speaks plain HTTP to loopback registries).
    import(&d, "docker", "localhost/hp-bb", "t1", busybox_rootfs()).await;
    docker_cli(&sock, &["tag", "localhost/hp-bb:t1", &reference]);
    docker_cli(&sock, &["push", &reference]);

    // A pull through the API is a job with progress and a log; on podman the image is new.
    let job = ok_json(
        d.post(
            "/api/v1/container-engines/podman/images/pull",
            json!({"image": reference}),
        )
        .await,
        202,
    )
    .await;
    let job = wait_success(&d, job).await;
    let pulled = job.clone();
    assert_eq!(job["progress"], 100, "{job}");
    assert!(
        job["result"]["tags"].to_string().contains("hp/bb:1"),
        "{job}"
    );
    let log = d
        .get(&format!("{}/log", job["href"].as_str().unwrap()))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("pulling") && log.lines().count() > 2, "{log}");
    let r = d
        .post(
            "/api/v1/container-engines/docker/images/pull",
            json!({"image": "../x"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    // A pull of a tag the registry lacks fails as a job.
    let job = ok_json(
        d.post(
            "/api/v1/container-engines/docker/images/pull",
            json!({"image": format!("{}/hp/none:1", registry.host())}),
        )
        .await,
        202,
    )
    .await;
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");

    // Create on podman with an image it lacks: 202, a job that pulls, then creates.
    let pulled_id = pulled["result"]["id"].as_str().unwrap().to_string();
    let r = send(
        &d,
        "DELETE",
        &format!("/api/v1/container-engines/podman/images/{pulled_id}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let body =
        json!({"name": "u1", "image": reference, "cmd": ["sleep", "600"], "network": "none"});
    let job = ok_json(d.post("/api/v1/containers/podman", body.clone()).await, 202).await;
    let job = wait_success(&d, job).await;
    assert_eq!(job["kind"], "containers.create");
    assert_eq!(job["result"]["name"], "u1", "{job}");
    // On docker the image is there: created at once.
    ok_json(d.post("/api/v1/containers/docker", body).await, 201).await;
    // A container of a local import: no registry digest.
    ok_json(
        d.post(
            "/api/v1/containers/docker",
            json!({"name": "local1", "image": "localhost/hp-bb:t1", "cmd": ["true"], "network": "none"}),
        )
        .await,
        201,
    )
    .await;

    // A stack on podman: service `app` runs the registry's image (its tag from the `.env`:
    // resolved as `up` reads the file), `side` a local import (no registry digest).
    engine_util::need("docker-compose");
    import(&d, "podman", "localhost/hp-bb", "t1", busybox_rootfs()).await;
    let compose = format!(
        "services:\n  app:\n    image: {}/hp/bb:${{TAG}}\n    command: sleep 600\n    \
         network_mode: none\n  side:\n    image: localhost/hp-bb:t1\n    command: sleep 600\n    \
         network_mode: none\n",
        registry.host()
    );
    ok_json(
        d.post(
            "/api/v1/stacks",
            json!({"name": "st1", "engine": "podman", "compose": compose, "env": "TAG=1\n"}),
        )
        .await,
        201,
    )
    .await;
    let job = ok_json(d.post("/api/v1/stacks/st1/up", json!({})).await, 202).await;
    wait_success(&d, job).await;

    // Nothing new yet.
    let job = ok_json(
        d.post("/api/v1/container-updates/check", json!({})).await,
        202,
    )
    .await;
    let job = wait_success(&d, job).await;
    // u1 twice, local1, and the stack's two containers.
    assert_eq!(job["result"]["checked"], 5, "{job}");
    assert_eq!(job["result"]["stacks_checked"], 1, "{job}");
    assert_eq!(job["result"]["stack_updates_available"], 0, "{job}");
    let st = stack_status(&d, "st1").await;
    assert_eq!(st["engine"], "podman", "{st}");
    assert_eq!(st["href"], "/api/v1/stacks/st1", "{st}");
    assert_eq!(st["update_available"], "unknown", "{st}");
    assert_eq!(st["updated_services"], json!([]), "{st}");
    assert_eq!(service(&st, "app")["update_available"], false, "{st}");
    assert_eq!(service(&st, "app")["image"], reference, "{st}");
    let side = service(&st, "side");
    assert_eq!(side["update_available"], "unknown", "{st}");
    assert!(
        side["reason"].as_str().unwrap().contains("local image"),
        "{st}"
    );
    for engine in ["docker", "podman"] {
        let s = update_status(&d, engine, "u1").await;
        assert_eq!(s["update_available"], false, "{s}");
        assert_eq!(s["local_digest"], s["registry_digest"], "{s}");
    }
    let s = update_status(&d, "docker", "local1").await;
    assert_eq!(s["update_available"], "unknown", "{s}");

    // v2 under the same tag: both see an update.
    import(&d, "docker", "localhost/hp-bb", "t2", changed_rootfs()).await;
    docker_cli(&sock, &["tag", "localhost/hp-bb:t2", &reference]);
    docker_cli(&sock, &["push", &reference]);
    let job = ok_json(
        d.post("/api/v1/container-updates/check", json!({})).await,
        202,
    )
    .await;
    let job = wait_success(&d, job).await;
    // u1 on both engines and the stack's `app` container.
    assert_eq!(job["result"]["updates_available"], 3, "{job}");
    assert_eq!(job["result"]["stack_updates_available"], 1, "{job}");
    for engine in ["docker", "podman"] {
        let s = update_status(&d, engine, "u1").await;
        assert_eq!(s["update_available"], true, "{s}");
        assert_ne!(s["local_digest"], s["registry_digest"], "{s}");
    }
    let st = stack_status(&d, "st1").await;
    assert_eq!(st["update_available"], true, "{st}");
    assert_eq!(st["updated_services"], json!(["app"]), "{st}");
    let app = service(&st, "app");
    assert_ne!(app["local_digest"], app["registry_digest"], "{st}");
    // A recreate with pull brings the new image; then no update.
    let job = ok_json(
        d.post(
            "/api/v1/containers/podman/u1/recreate",
            json!({"pull": true}),
        )
        .await,
        202,
    )
    .await;
    wait_success(&d, job).await;
    let job = ok_json(
        d.post("/api/v1/container-updates/check", json!({})).await,
        202,
    )
    .await;
    wait_success(&d, job).await;
    let s = update_status(&d, "podman", "u1").await;
    assert_eq!(s["update_available"], false, "{s}");
    // podman now has the new image under the tag, but the stack's `app` container still runs
    // the old one: the stack still has an update (until `up` recreates it).
    let st = stack_status(&d, "st1").await;
    assert_eq!(st["updated_services"], json!(["app"]), "{st}");
    let job = ok_json(d.post("/api/v1/stacks/st1/down", json!({})).await, 202).await;
    wait_success(&d, job).await;
    eprintln!("registry test: {:.1} s", t0.elapsed().as_secs_f64());
}
