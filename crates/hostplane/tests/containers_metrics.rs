//! Containers in the metrics history: a running container on a private dockerd
//! (`engine_util`) is sampled through its cgroup, so a busy child of its init counts; its
//! block I/O and its network namespace's traffic are series too. The
//! collector runs every second here (`[metrics] interval_secs = 1`).

mod common;
mod engine_util;

use std::time::{Duration, Instant};

use common::{Daemon, Opts};
use engine_util::{Engine, Kind, busybox_rootfs, docker_cli};
use serde_json::Value;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The newest value of `metric` for container `name`, once it has one.
async fn latest(d: &Daemon, metric: &str, name: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = d
            .get_json(&format!(
                "/api/v1/metrics/query_range?metric={metric}&match=%7Bkind%3D%22container%22%7D&start={}&end={}&step=1",
                now() - 60,
                now() + 1
            ))
            .await;
        let series = v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["metric"]["name"] == name);
        if let Some(p) = series.and_then(|s| s["values"].as_array()?.last().cloned()) {
            return p[1].as_str().unwrap().parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no {metric} for {name} after 30 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_running_containers_cgroup_is_sampled() {
    let engine = Engine::start(Kind::Docker);
    let sock = engine.socket_url();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[metrics]\ninterval_secs = 1\n[containers]\ntimeout_secs = 10\n\
             [[containers.engines]]\nname = \"docker\"\nsocket = \"{sock}\"\n"
        )),
        ..Default::default()
    });
    let r = d
        .client
        .post(d.url("/api/v1/container-engines/docker/images/import?repo=localhost/hp-bb&tag=t1"))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(busybox_rootfs())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The init (sh) waits in `sleep`; a child spins. Only the cgroup sees the child's CPU.
    docker_cli(
        &sock,
        &[
            "run",
            "-d",
            "--name",
            "busy",
            "localhost/hp-bb:t1",
            "sh",
            "-c",
            "while :; do :; done & sleep 300",
        ],
    );
    let mem = latest(&d, "process_memory_rss_bytes", "docker/busy").await;
    assert!(mem > 0.0, "{mem}");
    // CPU needs two samples; the spinning child keeps one core busy (the machine is shared:
    // a loose bound).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cpu = latest(&d, "process_cpu_percent", "docker/busy").await;
        if cpu > 20.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the child's CPU is not counted: {cpu}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Block I/O from its cgroup, traffic from its own network namespace: series too.
    for metric in [
        "process_disk_read_bytes_per_second",
        "process_disk_write_bytes_per_second",
        "process_network_receive_bytes_per_second",
        "process_network_transmit_bytes_per_second",
    ] {
        let v = latest(&d, metric, "docker/busy").await;
        assert!((0.0..1e10).contains(&v), "{metric}: {v}");
    }
    docker_cli(&sock, &["rm", "-f", "busy"]);
}
