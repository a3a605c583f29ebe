//! Containers as users of managed bridges (`platform::link_users`), live: the daemon runs in a
//! throwaway network namespace (`netns_util`) and makes a bridge there; an engine network
//! bound to that bridge and a container attached to it make `DELETE` of the bridge 409
//! `bridge_in_use` naming them, and the bridge goes once they are gone.
//!
//! The daemon reaches the engines through their unix sockets, which a network namespace does
//! not fence. dockerd runs inside the test namespace (`nsenter --net`): its network takes the
//! hostplane bridge by `com.docker.network.bridge.name` and a started container's veth really
//! is a port of it. podman runs as usual (its containers on network `none` by default): its
//! network names the bridge (`network_interface`, written into its own config dir in the temp
//! dir) and the container on it is created, never started, so nothing touches the host's
//! network; naming the bridge is what hostplane detects.

mod common;
mod engine_util;
mod netns_util;

use common::{Daemon, Opts, assert_problem};
use engine_util::{Engine, Kind, busybox_rootfs, docker_cli};
use netns_util::NetNs;
use serde_json::json;

fn daemon(ns: &NetNs, name: &str, engine: &Engine) -> Daemon {
    Daemon::start_with(Opts {
        netns: Some(ns.name.clone()),
        config: Some(format!(
            "[containers]\ntimeout_secs = 10\n[[containers.engines]]\nname = \"{name}\"\nsocket = \"{}\"\n",
            engine.socket_url()
        )),
        ..Default::default()
    })
}

async fn import_image(d: &Daemon, engine: &str) {
    let r = d
        .client
        .post(d.url(&format!(
            "/api/v1/container-engines/{engine}/images/import?repo=localhost/hp-bb&tag=t1"
        )))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(busybox_rootfs())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn make_bridge(d: &Daemon, name: &str) {
    let r = d
        .post(
            "/api/v1/network/bridges",
            json!({"name": name, "ports": [], "stp": false}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn delete_bridge(d: &Daemon, name: &str) -> reqwest::Response {
    d.send(
        "DELETE",
        &format!("/api/v1/network/bridges/{name}"),
        Some(&d.token.clone()),
        None,
    )
    .await
}

/// The 409's detail, which names every user.
async fn in_use(d: &Daemon, bridge: &str) -> String {
    let p = assert_problem(delete_bridge(d, bridge).await, 409, "bridge_in_use").await;
    p["detail"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_docker_container_on_a_managed_bridge_keeps_it() {
    let ns = NetNs::new();
    let engine = Engine::start_in(Kind::Docker, Some(&ns.name));
    let sock = engine.socket_url();
    let d = daemon(&ns, "docker", &engine);
    import_image(&d, "docker").await;
    make_bridge(&d, "hpbrd0").await;
    // Nothing on it yet: an engine that does not use the bridge does not hold it.
    make_bridge(&d, "hpbrd1").await;
    assert_eq!(delete_bridge(&d, "hpbrd1").await.status(), 204);

    docker_cli(
        &sock,
        &[
            "network",
            "create",
            "-o",
            "com.docker.network.bridge.name=hpbrd0",
            "hpnet",
        ],
    );
    docker_cli(
        &sock,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "hpnet",
            "localhost/hp-bb:t1",
            "sleep",
            "300",
        ],
    );
    // The container's end of its veth is a port of the hostplane bridge.
    let ports: Vec<String> = ns
        .ip_json(&["link", "show", "master", "hpbrd0"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ports.len(), 1, "{ports:?}");

    let detail = in_use(&d, "hpbrd0").await;
    assert!(
        detail.contains("container docker/web (/api/v1/containers/docker/web)"),
        "{detail}"
    );
    assert!(
        detail.contains("container-network docker/hpnet"),
        "{detail}"
    );
    assert!(ns.links().contains(&"hpbrd0".to_string()));

    // Detached: the network alone still holds the bridge.
    docker_cli(&sock, &["network", "disconnect", "hpnet", "web"]);
    let detail = in_use(&d, "hpbrd0").await;
    assert!(!detail.contains("container docker/web"), "{detail}");
    assert!(
        detail.contains("container-network docker/hpnet"),
        "{detail}"
    );
    docker_cli(&sock, &["rm", "-f", "web"]);
    // dockerd leaves a bridge it did not make when its network goes.
    docker_cli(&sock, &["network", "rm", "hpnet"]);
    let r = delete_bridge(&d, "hpbrd0").await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    assert!(!ns.links().contains(&"hpbrd0".to_string()));
}

#[tokio::test]
async fn a_podman_container_on_a_managed_bridge_keeps_it() {
    let ns = NetNs::new();
    let engine = Engine::start(Kind::Podman);
    let sock = engine.socket_url();
    let d = daemon(&ns, "podman", &engine);
    import_image(&d, "podman").await;
    make_bridge(&d, "hpbrp0").await;

    // podman's compat create takes the bridge name from dockerd's option.
    docker_cli(
        &sock,
        &[
            "network",
            "create",
            "-o",
            "com.docker.network.bridge.name=hpbrp0",
            "hpnet",
        ],
    );
    docker_cli(
        &sock,
        &[
            "create",
            "--name",
            "web",
            "--network",
            "hpnet",
            "localhost/hp-bb:t1",
            "sleep",
            "300",
        ],
    );
    let detail = in_use(&d, "hpbrp0").await;
    assert!(
        detail.contains("container podman/web (/api/v1/containers/podman/web)"),
        "{detail}"
    );
    assert!(
        detail.contains("container-network podman/hpnet"),
        "{detail}"
    );

    docker_cli(&sock, &["network", "disconnect", "hpnet", "web"]);
    let detail = in_use(&d, "hpbrp0").await;
    assert!(!detail.contains("container podman/web"), "{detail}");
    docker_cli(&sock, &["network", "rm", "hpnet"]);
    let r = delete_bridge(&d, "hpbrp0").await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    assert!(!ns.links().contains(&"hpbrp0".to_string()));
}
