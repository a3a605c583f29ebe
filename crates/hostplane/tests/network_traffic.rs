//! Network area, live traffic: three throwaway namespaces — "wan" (the outside world),
//! "host" (where the daemon runs) and "guest" (behind a hostplane bridge) — joined by veth
//! pairs. Masquerade carries the guest's connection out to the wan, a port forward carries a
//! wan connection in to the guest, re-applying the rules (a daemon restart) leaves the nftables
//! ruleset as it was, and the provisioning network is built and torn down as jobs. Nothing
//! here names the host's own network. Needs root, iproute2, nftables, busybox (httpd) and curl.

mod common;
mod netns_util;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::assert_problem;
use netns_util::{NetNs, daemon_in};
use serde_json::{Value, json};

async fn created(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A process in a namespace, killed on drop (also on panic).
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `busybox httpd` in the foreground in `ns`, serving `dir` on `port`.
fn httpd(ns: &NetNs, port: u16, dir: &std::path::Path) -> Bg {
    let c = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "busybox",
            "httpd",
            "-f",
            "-p",
            &port.to_string(),
            "-h",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("busybox (package busybox-static) must be installed");
    std::thread::sleep(Duration::from_millis(300));
    Bg(c)
}

/// `curl -sf URL` from `ns` (3 s timeout): the body, or None. (busybox-static's wget
/// crashes here.)
fn wget(ns: &NetNs, url: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "curl", "-sf", "-m", "3", url])
        .output()
        .expect("curl must be installed");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The whole ruleset as nft prints it (no handles).
fn ruleset(ns: &NetNs) -> String {
    let (ok, out) = ns.nft(&["list", "ruleset"]);
    assert!(ok, "{out}");
    out
}

/// wan 203.0.113.1 —— 203.0.113.2 host (daemon) 10.88.0.1 [hpgbr] —— 10.88.0.2 guest
fn topology(wan: &NetNs, host: &NetNs, guest: &NetNs) {
    host.ip(&[
        "link", "add", "hpw", "type", "veth", "peer", "name", "w0", "netns", &wan.name,
    ]);
    host.ip(&[
        "link",
        "add",
        "hpg",
        "type",
        "veth",
        "peer",
        "name",
        "g0",
        "netns",
        &guest.name,
    ]);
    wan.ip(&["addr", "add", "203.0.113.1/24", "dev", "w0"]);
    wan.ip(&["link", "set", "w0", "up"]);
    host.ip(&["addr", "add", "203.0.113.2/24", "dev", "hpw"]);
    host.ip(&["link", "set", "hpw", "up"]);
    host.ip(&["link", "set", "hpg", "up"]);
    host.ip(&["route", "add", "default", "via", "203.0.113.1"]);
    guest.ip(&["link", "set", "g0", "up"]);
    guest.ip(&["addr", "add", "10.88.0.2/24", "dev", "g0"]);
    guest.ip(&["route", "add", "default", "via", "10.88.0.1"]);
}

#[tokio::test]
async fn masquerade_and_port_forward_carry_traffic_and_reapply_is_a_no_op() {
    let (wan, host, guest) = (NetNs::new(), NetNs::new(), NetNs::new());
    topology(&wan, &host, &guest);
    let mut d = daemon_in(&host);
    created(
        d.post(
            "/api/v1/network/bridges",
            json!({"name": "hpgbr", "ports": ["hpg"]}),
        )
        .await,
    )
    .await;
    created(
        d.post(
            "/api/v1/network/addresses",
            json!({"interface": "hpgbr", "address": "10.88.0.1/24"}),
        )
        .await,
    )
    .await;
    let r = d
        .send(
            "PUT",
            "/api/v1/network/forwarding",
            Some(&d.token.clone()),
            Some(json!({"ipv4": true})),
        )
        .await;
    assert_eq!(r.status(), 200);

    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("f"), "from-wan\n").unwrap();
    let _wan_httpd = httpd(&wan, 8080, www.path());
    let gwww = tempfile::tempdir().unwrap();
    std::fs::write(gwww.path().join("f"), "from-guest\n").unwrap();
    let _guest_httpd = httpd(&guest, 80, gwww.path());

    // Without masquerade the wan cannot answer the guest (it has no route back).
    assert_eq!(wget(&guest, "http://203.0.113.1:8080/f"), None);
    created(
        d.post(
            "/api/v1/network/nat-rules",
            json!({"type": "masquerade", "source": "10.88.0.0/24", "out_interface": "hpw"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        wget(&guest, "http://203.0.113.1:8080/f").as_deref(),
        Some("from-wan\n")
    );

    // A port forward on the host's wan address reaches the guest's web server.
    assert_eq!(wget(&wan, "http://203.0.113.2:8081/f"), None);
    created(
        d.post(
            "/api/v1/network/port-forwards",
            json!({"listen_address": "203.0.113.2", "ports": [
                {"protocol": "tcp", "listen_port": 8081, "target_address": "10.88.0.2", "target_port": 80}]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        wget(&wan, "http://203.0.113.2:8081/f").as_deref(),
        Some("from-guest\n")
    );

    // The same port again: 409 and the ruleset is unchanged.
    let before = ruleset(&host);
    let r = d
        .post(
            "/api/v1/network/port-forwards",
            json!({"listen_address": "203.0.113.2", "ports": [
                {"protocol": "tcp", "listen_port": 8081, "target_address": "10.88.0.9"}]}),
        )
        .await;
    assert_problem(r, 409, "port_forward_conflict").await;
    let r = d
        .post(
            "/api/v1/network/nat-rules",
            json!({"type": "masquerade", "source": "10.88.0.0/33", "out_interface": "hpw"}),
        )
        .await;
    assert_problem(r, 422, "invalid_cidr").await;
    assert_eq!(ruleset(&host), before);

    // Re-applying (the start hook after a restart) changes nothing, and traffic still flows.
    d.stop();
    d.spawn();
    assert_eq!(ruleset(&host), before);
    assert_eq!(
        wget(&wan, "http://203.0.113.2:8081/f").as_deref(),
        Some("from-guest\n")
    );
    assert_eq!(
        wget(&guest, "http://203.0.113.1:8080/f").as_deref(),
        Some("from-wan\n")
    );
}

#[tokio::test]
async fn provisioning_network_is_built_and_torn_down_as_jobs() {
    let (wan, host, guest) = (NetNs::new(), NetNs::new(), NetNs::new());
    topology(&wan, &host, &guest);
    let d = daemon_in(&host);
    let r = d
        .post(
            "/api/v1/network/provisioning-network",
            json!({"bridge": "hpprov", "address": "10.99.0.1/24",
                "range_start": "10.99.0.100", "range_end": "10.99.0.200", "nat": true}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["result"]["out_interface"], "hpw");
    assert!(host.links().contains(&"hpprov".to_string()));
    assert!(host.addresses().contains(&"10.99.0.1/24".to_string()));
    let nat = d.get_json("/api/v1/network/nat-rules").await;
    assert!(nat.to_string().contains("10.99.0.0/24"), "{nat}");
    let s = d.get_json("/api/v1/network/dhcp-servers/hpprov").await;
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["router"], "10.99.0.1");
    let p = d.get_json("/api/v1/network/provisioning-network").await;
    assert_eq!(p["bridge"], "hpprov");

    // A second one, or one with a bad range: refused before any job.
    let r = d
        .post(
            "/api/v1/network/provisioning-network",
            json!({"bridge": "hpprov2", "address": "10.98.0.1/24",
                "range_start": "10.98.0.100", "range_end": "10.98.0.200"}),
        )
        .await;
    assert_problem(r, 409, "provisioning_network_exists").await;

    let r = d
        .send(
            "DELETE",
            "/api/v1/network/provisioning-network",
            Some(&d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    assert!(!host.links().contains(&"hpprov".to_string()));
    assert_eq!(d.get_json("/api/v1/network/nat-rules").await, json!([]));
    assert_eq!(d.get_json("/api/v1/network/dhcp-servers").await, json!([]));
    let r = d.get("/api/v1/network/provisioning-network").await;
    assert_problem(r, 404, "not_found").await;
    let r = d
        .post(
            "/api/v1/network/provisioning-network",
            json!({"bridge": "hpprov", "address": "10.99.0.1/24",
                "range_start": "10.98.0.100", "range_end": "10.99.0.200"}),
        )
        .await;
    assert_problem(r, 422, "dhcp_range_outside_subnet").await;
    assert!(!host.links().contains(&"hpprov".to_string()));
}
