//! Network area, live: vNICs (veth, macvlan, tap), routes, forwarding and DHCP servers
//! (hostplane's supervised dnsmasq) in throwaway namespaces (`netns_util::NetNs`, deleted on
//! drop). The daemon runs inside one namespace; a DHCP client runs in another ("client"),
//! joined to the daemon's bridge by a veth pair. Needs root, iproute2, dnsmasq-base and
//! busybox (`udhcpc`).

mod common;
mod netns_util;

use std::process::Command;

use common::{Daemon, assert_problem};
use netns_util::{NetNs, daemon_in};
use serde_json::{Value, json};

async fn delete(d: &Daemon, path: &str) -> reqwest::Response {
    d.send("DELETE", path, Some(&d.token.clone()), None).await
}

async fn put(d: &Daemon, path: &str, body: Value) -> reqwest::Response {
    d.send("PUT", path, Some(&d.token.clone()), Some(body))
        .await
}

async fn created(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn ok(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

fn master_of(ns: &NetNs, link: &str) -> Option<String> {
    ns.ip_json(&["link", "show", link])[0]["master"]
        .as_str()
        .map(str::to_string)
}

fn kind_of(ns: &NetNs, link: &str) -> String {
    ns.ip_json(&["-d", "link", "show", link])[0]["linkinfo"]["info_kind"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn vnics_veth_macvlan_tap_lifecycle_and_recreated_at_start() {
    let ns = NetNs::new();
    let mut d = daemon_in(&ns);
    created(
        d.post("/api/v1/network/bridges", json!({"name": "hpbr"}))
            .await,
    )
    .await;

    let v = created(
        d.post(
            "/api/v1/network/vnics",
            json!({"name": "hpve0", "kind": "veth", "peer": "hpve1", "bridge": "hpbr"}),
        )
        .await,
    )
    .await;
    assert_eq!(v["managed_by"], "hostplane");
    assert_eq!(kind_of(&ns, "hpve0"), "veth");
    assert_eq!(master_of(&ns, "hpve0").as_deref(), Some("hpbr"));
    let m = created(
        d.post(
            "/api/v1/network/vnics",
            json!({"name": "hpmv0", "kind": "macvlan", "parent": "hpve1"}),
        )
        .await,
    )
    .await;
    assert_eq!(m["parent"], "hpve1");
    assert_eq!(kind_of(&ns, "hpmv0"), "macvlan");
    created(
        d.post(
            "/api/v1/network/vnics",
            json!({"name": "hptap0", "kind": "tap"}),
        )
        .await,
    )
    .await;
    assert_eq!(kind_of(&ns, "hptap0"), "tun");
    let ifs = d.get_json("/api/v1/network/interfaces").await;
    let owner = |n: &str| {
        ifs.as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == n)
            .map(|i| i["managed_by"].clone())
    };
    assert_eq!(owner("hpve1"), Some(json!("hostplane")));
    assert_eq!(owner("hptap0"), Some(json!("hostplane")));
    assert_eq!(
        d.get_json("/api/v1/network/vnics")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Bad input changes nothing.
    let before = ns.links();
    for (body, status, code) in [
        (
            json!({"name": "hpve0", "kind": "tap"}),
            409,
            "network_exists",
        ),
        (json!({"name": "x", "kind": "veth"}), 422, "invalid_vnic"),
        (
            json!({"name": "a-very-long-name0", "kind": "tap"}),
            422,
            "invalid_interface_name",
        ),
        (
            json!({"name": "bad/name", "kind": "tap"}),
            422,
            "invalid_interface_name",
        ),
        (
            json!({"name": "hpmv1", "kind": "macvlan", "parent": "nope0"}),
            422,
            "interface_not_found",
        ),
        (
            json!({"name": "hpt1", "kind": "tap", "bridge": "nobr"}),
            422,
            "bridge_not_managed",
        ),
    ] {
        let r = d.post("/api/v1/network/vnics", body.clone()).await;
        assert_problem(r, status, code).await;
    }
    assert_eq!(ns.links(), before);

    // Gone behind the daemon's back: back at the next start, the veth again a bridge port.
    ns.ip(&["link", "del", "hptap0"]);
    ns.ip(&["link", "del", "hpmv0"]);
    ns.ip(&["link", "del", "hpve0"]);
    d.stop();
    d.spawn();
    assert_eq!(kind_of(&ns, "hptap0"), "tun");
    assert_eq!(kind_of(&ns, "hpmv0"), "macvlan");
    assert_eq!(master_of(&ns, "hpve0").as_deref(), Some("hpbr"));

    for n in ["hpmv0", "hpve0", "hptap0"] {
        let r = delete(&d, &format!("/api/v1/network/vnics/{n}")).await;
        assert_eq!(r.status(), 204, "{n}");
    }
    let links = ns.links();
    for n in ["hpmv0", "hpve0", "hpve1", "hptap0"] {
        assert!(
            !links.contains(&n.to_string()),
            "{n} still there: {links:?}"
        );
    }
    let b = d.get_json("/api/v1/network/bridges/hpbr").await;
    assert_eq!(b["missing_ports"], json!([]), "{b}");
}

#[tokio::test]
async fn routes_and_forwarding() {
    let ns = NetNs::new();
    let d = daemon_in(&ns);
    ns.ip(&[
        "link", "add", "hprt0", "type", "veth", "peer", "name", "hprt1",
    ]);
    ns.ip(&["link", "set", "hprt0", "up"]);
    ns.ip(&["link", "set", "hprt1", "up"]);
    ns.ip(&["addr", "add", "192.0.2.2/24", "dev", "hprt0"]);

    let r = created(
        d.post(
            "/api/v1/network/routes",
            json!({"destination": "10.60.1.7/16", "gateway": "192.0.2.1", "metric": 5}),
        )
        .await,
    )
    .await;
    let id = r["id"].as_str().unwrap().to_string();
    assert!(!id.contains('/'), "{id}");
    assert_eq!(r["destination"], "10.60.0.0/16");
    assert_eq!(r["interface"], "hprt0");
    assert_eq!(r["managed_by"], "hostplane");
    let shown = ns.ip(&["route", "show", "10.60.0.0/16"]);
    assert!(
        shown.contains("via 192.0.2.1") && shown.contains("metric 5"),
        "{shown}"
    );
    let again = d
        .post(
            "/api/v1/network/routes",
            json!({"destination": "10.60.0.0/16", "gateway": "192.0.2.1", "metric": 5}),
        )
        .await;
    assert_problem(again, 409, "route_exists").await;
    let list = d.get_json("/api/v1/network/routes").await;
    let kernel = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["destination"] == "192.0.2.0/24")
        .unwrap();
    assert_eq!(kernel["managed_by"], "foreign");
    let kid = kernel["id"].as_str().unwrap();
    let r = delete(&d, &format!("/api/v1/network/routes/{kid}")).await;
    assert_problem(r, 409, "route_foreign").await;
    for (body, code) in [
        (
            json!({"destination": "10.0.0.0/33", "interface": "hprt0"}),
            "invalid_cidr",
        ),
        (json!({"destination": "10.0.0.0/8"}), "invalid_route"),
        (
            json!({"destination": "10.0.0.0/8", "gateway": "fe80::1"}),
            "invalid_address",
        ),
    ] {
        assert_problem(d.post("/api/v1/network/routes", body).await, 422, code).await;
    }
    let r = delete(&d, &format!("/api/v1/network/routes/{id}")).await;
    assert_eq!(r.status(), 204);
    assert_eq!(ns.ip(&["route", "show", "10.60.0.0/16"]).trim(), "");

    // Forwarding: the namespace's own switches.
    let sysctl = |k: &str| {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "cat",
                &format!("/proc/sys/net/{k}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let f = ok(put(
        &d,
        "/api/v1/network/forwarding",
        json!({"ipv4": true, "ipv6": true}),
    )
    .await)
    .await;
    assert_eq!(f["ipv4"], true);
    assert_eq!(sysctl("ipv4/ip_forward"), "1");
    assert_eq!(sysctl("ipv6/conf/all/forwarding"), "1");
    let f = ok(put(
        &d,
        "/api/v1/network/forwarding",
        json!({"interfaces": [{"name": "hprt1", "ipv4": false}]}),
    )
    .await)
    .await;
    assert_eq!(sysctl("ipv4/conf/hprt1/forwarding"), "0");
    assert_eq!(sysctl("ipv4/ip_forward"), "1");
    let one = f["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "hprt1")
        .unwrap();
    assert_eq!(one["ipv4"], false);
    let r = put(
        &d,
        "/api/v1/network/forwarding",
        json!({"interfaces": [{"name": "nope0", "ipv4": true}]}),
    )
    .await;
    assert_problem(r, 422, "interface_not_found").await;
    ok(put(
        &d,
        "/api/v1/network/forwarding",
        json!({"ipv4": false, "ipv6": false}),
    )
    .await)
    .await;
    assert_eq!(sysctl("ipv4/ip_forward"), "0");
}

/// Runs `busybox udhcpc` in `ns` on `ifname` and returns the address it was offered and bound.
fn udhcpc(ns: &NetNs, ifname: &str, dir: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("udhcpc.sh");
    let out = dir.join(format!("bound-{ifname}"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip\" > {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_file(&out);
    let st = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "busybox", "udhcpc", "-i", ifname, "-n", "-q",
        ])
        .args(["-t", "8", "-T", "1", "-s"])
        .arg(&script)
        .output()
        .expect("busybox (package busybox-static) must be installed");
    let got = std::fs::read_to_string(&out)
        .ok()
        .map(|s| s.trim().to_string());
    if got.is_none() {
        eprintln!(
            "udhcpc: {}{}",
            String::from_utf8_lossy(&st.stdout),
            String::from_utf8_lossy(&st.stderr)
        );
    }
    got
}

#[tokio::test]
async fn dhcp_server_hands_out_leases_and_static_hosts() {
    assert!(
        std::path::Path::new("/usr/sbin/dnsmasq").exists(),
        "dnsmasq (package dnsmasq-base) must be installed"
    );
    let ns = NetNs::new();
    let client = NetNs::new();
    let d = daemon_in(&ns);
    let tmp = tempfile::tempdir().unwrap();

    // Two client links into the daemon's bridge.
    for (h, c) in [("hpc0", "cl0"), ("hpc1", "cl1")] {
        ns.ip(&[
            "link",
            "add",
            h,
            "type",
            "veth",
            "peer",
            "name",
            c,
            "netns",
            &client.name,
        ]);
        ns.ip(&["link", "set", h, "up"]);
        client.ip(&["link", "set", c, "up"]);
    }
    client.ip(&["link", "set", "cl1", "address", "02:00:00:00:77:01"]);
    created(
        d.post(
            "/api/v1/network/bridges",
            json!({"name": "hpdbr", "ports": ["hpc0", "hpc1"]}),
        )
        .await,
    )
    .await;

    // No address on the bridge yet: the range is in no subnet of it.
    let body = json!({"interface": "hpdbr", "range_start": "10.77.0.100",
        "range_end": "10.77.0.150", "router": "10.77.0.1", "dns": ["10.77.0.1"], "lease_time_s": 600});
    let r = d.post("/api/v1/network/dhcp-servers", body.clone()).await;
    assert_problem(r, 422, "dhcp_range_outside_subnet").await;
    created(
        d.post(
            "/api/v1/network/addresses",
            json!({"interface": "hpdbr", "address": "10.77.0.1/24"}),
        )
        .await,
    )
    .await;
    let s = created(d.post("/api/v1/network/dhcp-servers", body.clone()).await).await;
    assert_eq!(s["href"], "/api/v1/network/dhcp-servers/hpdbr");
    assert_eq!(s["state"], "running", "{s}");

    // Bad input: nothing changes.
    for (b, status, code) in [
        (body.clone(), 409, "dhcp_server_exists"),
        (
            json!({"interface": "hpdbr", "range_start": "10.77.0.10", "range_end": "10.77.1.5"}),
            409,
            "dhcp_server_exists",
        ),
        (
            json!({"interface": "lo", "range_start": "127.0.0.10", "range_end": "127.0.0.20"}),
            422,
            "bridge_not_managed",
        ),
        (
            json!({"interface": "bad..x", "range_start": "10.77.0.10", "range_end": "10.77.0.20"}),
            422,
            "invalid_interface_name",
        ),
    ] {
        assert_problem(
            d.post("/api/v1/network/dhcp-servers", b).await,
            status,
            code,
        )
        .await;
    }
    let hosts = "/api/v1/network/dhcp-servers/hpdbr/hosts";
    for (b, status, code) in [
        (
            json!({"mac": "02:00:00:00:77:09", "ip": "10.78.0.5"}),
            422,
            "dhcp_host_outside_subnet",
        ),
        (
            json!({"mac": "02:00:00:00:77", "ip": "10.77.0.5"}),
            422,
            "invalid_mac",
        ),
        (
            json!({"mac": "02:00:00:00:77:09", "ip": "10.77.0.5", "hostname": "-x"}),
            422,
            "invalid_hostname",
        ),
    ] {
        assert_problem(d.post(hosts, b).await, status, code).await;
    }

    // A static host gets its fixed address; the other client one from the range.
    ok(d.post(
        hosts,
        json!({"mac": "02:00:00:00:77:01", "ip": "10.77.0.42", "hostname": "fixed"}),
    )
    .await)
    .await;
    let r = d
        .post(
            hosts,
            json!({"mac": "02:00:00:00:77:02", "ip": "10.77.0.42"}),
        )
        .await;
    assert_problem(r, 409, "dhcp_host_exists").await;
    // dnsmasq reads the hosts directory by inotify; give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let fixed = udhcpc(&client, "cl1", tmp.path()).expect("cl1 got no lease");
    assert_eq!(fixed, "10.77.0.42");
    let dynamic = udhcpc(&client, "cl0", tmp.path()).expect("cl0 got no lease");
    let last: u8 = dynamic.rsplit('.').next().unwrap().parse().unwrap();
    assert!(
        dynamic.starts_with("10.77.0.") && (100..=150).contains(&last),
        "{dynamic}"
    );

    let leases = d
        .get_json("/api/v1/network/dhcp-servers/hpdbr/leases")
        .await;
    let leases = leases.as_array().unwrap();
    let ips: Vec<&str> = leases.iter().map(|l| l["ip"].as_str().unwrap()).collect();
    assert!(
        ips.contains(&"10.77.0.42") && ips.contains(&dynamic.as_str()),
        "{leases:?}"
    );
    let st = leases.iter().find(|l| l["ip"] == "10.77.0.42").unwrap();
    assert_eq!(st["static"], true);
    assert_eq!(st["mac"], "02:00:00:00:77:01");

    // A bridge with a DHCP server is in use.
    let r = delete(&d, "/api/v1/network/bridges/hpdbr").await;
    let p = assert_problem(r, 409, "bridge_in_use").await;
    assert!(p["detail"].as_str().unwrap().contains("dhcp-server"), "{p}");

    // Release a lease; an unknown one is 404.
    let r = delete(
        &d,
        &format!("/api/v1/network/dhcp-servers/hpdbr/leases/{dynamic}"),
    )
    .await;
    assert_eq!(r.status(), 204);
    let leases = d
        .get_json("/api/v1/network/dhcp-servers/hpdbr/leases")
        .await;
    assert!(
        !leases.to_string().contains(&format!("\"{dynamic}\"")),
        "{leases}"
    );
    let r = delete(&d, "/api/v1/network/dhcp-servers/hpdbr/leases/10.77.0.99").await;
    assert_problem(r, 404, "not_found").await;
    let s = d.get_json("/api/v1/network/dhcp-servers/hpdbr").await;
    assert_eq!(s["state"], "running", "restarted after the release: {s}");

    // Crash: the supervisor starts dnsmasq again.
    let pid = s["pid"].as_u64().unwrap() as i32;
    // SAFETY: a signal to the dnsmasq this test's daemon started (its pid from the API).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut back = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let s = d.get_json("/api/v1/network/dhcp-servers/hpdbr").await;
        if s["state"] == "running" && s["pid"].as_u64() != Some(pid as u64) {
            back = true;
            break;
        }
    }
    assert!(back, "dnsmasq was not restarted");

    let r = delete(
        &d,
        "/api/v1/network/dhcp-servers/hpdbr/hosts/02:00:00:00:77:01",
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = delete(&d, "/api/v1/network/dhcp-servers/hpdbr").await;
    assert_eq!(r.status(), 204);
    assert!(!d.data_dir().join("network/dhcp/hpdbr").exists());
    let r = delete(&d, "/api/v1/network/bridges/hpdbr").await;
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn dhcp_servers_come_back_at_start_and_stop_at_shutdown() {
    let ns = NetNs::new();
    let mut d = daemon_in(&ns);
    created(
        d.post("/api/v1/network/bridges", json!({"name": "hpsbr"}))
            .await,
    )
    .await;
    created(
        d.post(
            "/api/v1/network/addresses",
            json!({"interface": "hpsbr", "address": "10.79.0.1/24"}),
        )
        .await,
    )
    .await;
    let s = created(
        d.post(
            "/api/v1/network/dhcp-servers",
            json!({"interface": "hpsbr", "range_start": "10.79.0.10", "range_end": "10.79.0.20"}),
        )
        .await,
    )
    .await;
    let pid = s["pid"].as_u64().unwrap();
    d.stop();
    assert!(!alive(pid), "dnsmasq {pid} outlived a clean stop");
    d.spawn();
    let s = d.get_json("/api/v1/network/dhcp-servers/hpsbr").await;
    assert_eq!(s["state"], "running", "{s}");
    // A crashed daemon leaves its dnsmasq: the next start replaces it.
    let old = s["pid"].as_u64().unwrap();
    d.kill9();
    d.spawn();
    let s = d.get_json("/api/v1/network/dhcp-servers/hpsbr").await;
    assert_eq!(s["state"], "running", "{s}");
    assert!(!alive(old), "stale dnsmasq {old} kept");
}

/// The process exists and is no zombie (a killed orphan may wait for a reaper a while).
fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}
