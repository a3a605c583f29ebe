//! Network area, live: every test makes a throwaway network namespace (`netns_util::NetNs`,
//! deleted on drop, also on panic), starts the real daemon inside it (`ip netns exec`) and
//! talks to it over its unix socket. Links, addresses and nftables rules are made and checked
//! only inside that namespace (`ip -n NS`, `ip netns exec NS nft`); the host's network is never
//! named. Needs root, iproute2 and nftables.

mod common;
mod netns_util;

use common::{Daemon, assert_problem};
use netns_util::{NetNs, daemon_in};
use serde_json::{Value, json};

async fn delete(d: &Daemon, path: &str) -> reqwest::Response {
    d.send("DELETE", path, Some(&d.token.clone()), None).await
}

async fn patch(d: &Daemon, path: &str, body: Value) -> reqwest::Response {
    d.send("PATCH", path, Some(&d.token.clone()), Some(body))
        .await
}

async fn created(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn master_of(ns: &NetNs, link: &str) -> Option<String> {
    ns.ip_json(&["link", "show", link])[0]["master"]
        .as_str()
        .map(str::to_string)
}

/// The hostplane table as nft lists it inside the namespace, or None.
fn hostplane_table(ns: &NetNs) -> Option<Value> {
    let (ok, out) = ns.nft(&["-j", "list", "table", "ip", "hostplane"]);
    ok.then(|| serde_json::from_str(&out).unwrap())
}

/// The ruleset without hostplane's table and without handles (which nft renumbers).
fn foreign_ruleset(ns: &NetNs) -> Vec<Value> {
    let (ok, out) = ns.nft(&["-j", "list", "ruleset"]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("metainfo").is_none())
        .filter(|o| {
            let inner = o.as_object().unwrap().values().next().unwrap();
            inner.get("table").or(inner.get("name")) != Some(&json!("hostplane"))
                || inner["family"] != "ip"
        })
        .cloned()
        .collect()
}

fn rules(table: &Value) -> Vec<Value> {
    table["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule").cloned())
        .collect()
}

#[tokio::test]
async fn bridge_with_veth_port_lifecycle() {
    let ns = NetNs::new();
    ns.ip(&[
        "link", "add", "hpv0", "type", "veth", "peer", "name", "hpv1",
    ]);
    let d = daemon_in(&ns);

    let b = created(
        d.post(
            "/api/v1/network/bridges",
            json!({"name": "hpbr0", "ports": ["hpv0"], "stp": false}),
        )
        .await,
    )
    .await;
    assert_eq!(b["href"], "/api/v1/network/bridges/hpbr0");
    assert_eq!(b["forward_delay_s"], 15, "the kernel's default: {b}");
    assert_eq!(b["ports"], json!(["hpv0"]));
    assert_eq!(b["managed_by"], "hostplane");
    assert_eq!(master_of(&ns, "hpv0").as_deref(), Some("hpbr0"));

    let list = d.get_json("/api/v1/network/bridges").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "hpbr0")
    );
    let ifs = d.get_json("/api/v1/network/interfaces").await;
    let find = |n: &str| {
        ifs.as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} not listed: {ifs}"))
    };
    assert_eq!(find("hpbr0")["kind"], "bridge");
    assert_eq!(find("hpbr0")["managed_by"], "hostplane");
    assert_eq!(find("hpbr0")["ports"], json!(["hpv0"]));
    assert_eq!(find("hpv0")["master"], "hpbr0");
    assert_eq!(find("hpv0")["kind"], "veth");
    assert_eq!(find("lo")["managed_by"], "foreign");
    assert!(find("hpv1")["mac"].as_str().unwrap().contains(':'));

    // PATCH a managed link: MTU and description; a foreign one: 409.
    let r = patch(
        &d,
        "/api/v1/network/interfaces/hpbr0",
        json!({"mtu": 1400, "description": "lab bridge"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(ns.ip_json(&["link", "show", "hpbr0"])[0]["mtu"], 1400);
    let i = d.get_json("/api/v1/network/interfaces/hpbr0").await;
    assert_eq!(i["description"], "lab bridge");
    let r = patch(&d, "/api/v1/network/interfaces/lo", json!({"mtu": 1400})).await;
    assert_problem(r, 409, "interface_foreign").await;
    let r = patch(&d, "/api/v1/network/interfaces/hpbr0", json!({"mtu": 20})).await;
    assert_problem(r, 422, "invalid_mtu").await;

    // Ports: release and attach again.
    let r = delete(&d, "/api/v1/network/bridges/hpbr0/ports/hpv0").await;
    assert_eq!(r.status(), 204);
    assert_eq!(master_of(&ns, "hpv0"), None);
    let r = d
        .post(
            "/api/v1/network/bridges/hpbr0/ports",
            json!({"interface": "hpv0"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(master_of(&ns, "hpv0").as_deref(), Some("hpbr0"));

    // A port of another bridge is refused; so is a foreign bridge's deletion.
    ns.ip(&["link", "add", "forbr", "type", "bridge"]);
    let r = d
        .post(
            "/api/v1/network/bridges",
            json!({"name": "hpbr9", "ports": ["hpv0"]}),
        )
        .await;
    assert_problem(r, 409, "port_in_use").await;
    let r = delete(&d, "/api/v1/network/bridges/forbr").await;
    assert_problem(r, 404, "not_found").await;
    let r = d
        .post("/api/v1/network/bridges", json!({"name": "forbr"}))
        .await;
    assert_problem(r, 409, "network_exists").await;

    let r = delete(&d, "/api/v1/network/bridges/hpbr0").await;
    assert_eq!(r.status(), 204);
    assert!(!ns.links().contains(&"hpbr0".to_string()));
    assert!(ns.links().contains(&"hpv0".to_string()), "the port stays");
    assert!(
        ns.links().contains(&"forbr".to_string()),
        "foreign bridge untouched"
    );
    let r = d.get("/api/v1/network/bridges/hpbr0").await;
    assert_problem(r, 404, "not_found").await;
}

#[tokio::test]
async fn addresses_add_and_delete_are_visible_in_ip() {
    let ns = NetNs::new();
    let d = daemon_in(&ns);
    created(
        d.post("/api/v1/network/bridges", json!({"name": "hpbr1"}))
            .await,
    )
    .await;

    let a = created(
        d.post(
            "/api/v1/network/addresses",
            json!({"interface": "hpbr1", "address": "10.77.0.1/24"}),
        )
        .await,
    )
    .await;
    let id = a["id"].as_str().unwrap().to_string();
    assert!(!id.contains('/'), "{id}");
    assert_eq!(a["managed_by"], "hostplane");
    assert_eq!(a["address"], "10.77.0.1/24");
    assert!(ns.addresses().contains(&"10.77.0.1/24".to_string()));
    let v6 = created(
        d.post(
            "/api/v1/network/addresses",
            json!({"interface": "hpbr1", "address": "fd00:77::1/64"}),
        )
        .await,
    )
    .await;
    assert_eq!(v6["family"], "inet6");
    assert!(ns.addresses().contains(&"fd00:77::1/64".to_string()));

    // Adding it again: 409.
    let r = d
        .post(
            "/api/v1/network/addresses",
            json!({"interface": "hpbr1", "address": "10.77.0.1/24"}),
        )
        .await;
    assert_problem(r, 409, "network_exists").await;

    // The loopback's address is listed, foreign, and cannot be deleted here.
    let all = d.get_json("/api/v1/network/addresses").await;
    let lo = all
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["address"] == "127.0.0.1/8")
        .expect("lo's address")
        .clone();
    assert_eq!(lo["managed_by"], "foreign");
    let r = delete(&d, lo["href"].as_str().unwrap()).await;
    assert_problem(r, 409, "address_foreign").await;
    assert!(ns.addresses().contains(&"127.0.0.1/8".to_string()));

    let r = delete(&d, a["href"].as_str().unwrap()).await;
    assert_eq!(r.status(), 204);
    assert!(!ns.addresses().contains(&"10.77.0.1/24".to_string()));
    let r = d.get(a["href"].as_str().unwrap()).await;
    assert_problem(r, 404, "not_found").await;
    let r = delete(&d, v6["href"].as_str().unwrap()).await;
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn nat_and_port_forward_live_in_hostplanes_table_only() {
    let ns = NetNs::new();
    // Someone else's table, which must stay exactly as it is.
    for cmd in [
        vec!["add", "table", "inet", "foreign"],
        vec![
            "add", "chain", "inet", "foreign", "c", "{", "type", "filter", "hook", "input",
            "priority", "0", ";", "}",
        ],
        vec![
            "add", "rule", "inet", "foreign", "c", "tcp", "dport", "9", "accept",
        ],
    ] {
        let (ok, out) = ns.nft(&cmd);
        assert!(ok, "nft {cmd:?}: {out}");
    }
    let before = foreign_ruleset(&ns);
    assert!(!before.is_empty());
    let d = daemon_in(&ns);
    assert!(
        hostplane_table(&ns).is_none(),
        "nothing before a rule exists"
    );

    let nat = created(
        d.post(
            "/api/v1/network/nat-rules",
            json!({"type": "masquerade", "source": "10.77.0.9/24", "out_interface": "hpwan"}),
        )
        .await,
    )
    .await;
    assert_eq!(nat["source"], "10.77.0.0/24", "host bits cleared");
    let fwd = created(
        d.post(
            "/api/v1/network/port-forwards",
            json!({"listen_address": "192.0.2.10", "ports": [
                {"protocol": "tcp", "listen_port": 8080, "target_address": "10.77.0.2", "target_port": 80},
                {"protocol": "udp", "listen_port": 5353, "target_address": "10.77.0.2"}]}),
        )
        .await,
    )
    .await;

    let table = hostplane_table(&ns).expect("hostplane's table");
    let rs = rules(&table);
    let text = serde_json::to_string(&rs).unwrap();
    let masq: Vec<&Value> = rs.iter().filter(|r| r["comment"] == nat["id"]).collect();
    assert_eq!(masq.len(), 1, "{text}");
    assert_eq!(masq[0]["chain"], "postrouting");
    assert!(masq[0]["expr"].to_string().contains("masquerade"), "{text}");
    assert!(masq[0]["expr"].to_string().contains("hpwan"), "{text}");
    let dnat: Vec<&Value> = rs.iter().filter(|r| r["comment"] == fwd["id"]).collect();
    // two ports, each in prerouting and output
    assert_eq!(dnat.len(), 4, "{text}");
    assert!(
        text.contains("\"port\":80") && text.contains("\"port\":5353"),
        "{text}"
    );
    assert!(
        text.contains("192.0.2.10") && text.contains("10.77.0.2"),
        "{text}"
    );
    assert_eq!(
        foreign_ruleset(&ns),
        before,
        "the rest of the ruleset is untouched"
    );

    // The same listen port again: 409, and nothing changed.
    let r = d
        .post(
            "/api/v1/network/port-forwards",
            json!({"listen_address": "192.0.2.10", "ports": [
                {"protocol": "tcp", "listen_port": 8080, "target_address": "10.77.0.3"}]}),
        )
        .await;
    assert_problem(r, 409, "port_forward_conflict").await;
    assert_eq!(rules(&hostplane_table(&ns).unwrap()).len(), rs.len());
    let list = d.get_json("/api/v1/network/port-forwards").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let r = delete(&d, nat["href"].as_str().unwrap()).await;
    assert_eq!(r.status(), 204);
    let rs = rules(&hostplane_table(&ns).unwrap());
    assert!(rs.iter().all(|r| r["comment"] != nat["id"]));
    assert_eq!(rs.len(), 4);
    let r = delete(&d, fwd["href"].as_str().unwrap()).await;
    assert_eq!(r.status(), 204);
    assert!(
        hostplane_table(&ns).is_none(),
        "table removed with its last rule"
    );
    assert_eq!(
        foreign_ruleset(&ns),
        before,
        "the rest of the ruleset is untouched"
    );
    let r = delete(&d, fwd["href"].as_str().unwrap()).await;
    assert_problem(r, 404, "not_found").await;
}

#[tokio::test]
async fn restart_recreates_the_managed_bridge_address_and_rules() {
    let ns = NetNs::new();
    ns.ip(&[
        "link", "add", "hpv2", "type", "veth", "peer", "name", "hpv3",
    ]);
    let mut d = daemon_in(&ns);
    created(
        d.post(
            "/api/v1/network/bridges",
            json!({"name": "hpbr2", "ports": ["hpv2"], "stp": true}),
        )
        .await,
    )
    .await;
    created(
        d.post(
            "/api/v1/network/addresses",
            json!({"interface": "hpbr2", "address": "10.78.0.1/24"}),
        )
        .await,
    )
    .await;
    let nat = created(
        d.post(
            "/api/v1/network/nat-rules",
            json!({"type": "masquerade", "source": "10.78.0.0/24", "out_interface": "hpv3"}),
        )
        .await,
    )
    .await;
    let rules_before = rules(&hostplane_table(&ns).unwrap()).len();

    // The daemon stops; the runtime objects vanish (as after a reboot).
    d.stop();
    ns.ip(&["link", "del", "hpbr2"]);
    let (ok, out) = ns.nft(&["delete", "table", "ip", "hostplane"]);
    assert!(ok, "{out}");
    assert!(!ns.links().contains(&"hpbr2".to_string()));

    d.spawn();
    assert!(
        ns.links().contains(&"hpbr2".to_string()),
        "bridge re-created"
    );
    assert_eq!(master_of(&ns, "hpv2").as_deref(), Some("hpbr2"));
    assert!(ns.addresses().contains(&"10.78.0.1/24".to_string()));
    let rs = rules(&hostplane_table(&ns).expect("table re-applied"));
    assert_eq!(rs.len(), rules_before);
    assert!(rs.iter().any(|r| r["comment"] == nat["id"]));
    let b = d.get_json("/api/v1/network/bridges/hpbr2").await;
    assert_eq!(b["stp"], true);
    assert_eq!(b["managed_by"], "hostplane");

    // A second start with everything present changes nothing (idempotent).
    d.stop();
    d.spawn();
    assert_eq!(rules(&hostplane_table(&ns).unwrap()).len(), rules_before);
    assert_eq!(master_of(&ns, "hpv2").as_deref(), Some("hpbr2"));
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let ns = NetNs::new();
    ns.ip(&[
        "link", "add", "hpv4", "type", "veth", "peer", "name", "hpv5",
    ]);
    let d = daemon_in(&ns);
    let links = ns.links();
    let addrs = ns.addresses();

    for name in [
        "a..b",
        "..",
        "0123456789abcdef",
        "br/0",
        "-br",
        ".br",
        "br 0",
        "",
        "br$x",
    ] {
        let r = d
            .post("/api/v1/network/bridges", json!({"name": name}))
            .await;
        assert_problem(r, 422, "invalid_interface_name").await;
    }
    let r = d
        .post(
            "/api/v1/network/bridges",
            json!({"name": "hpbr3", "ports": ["hpv4", "nosuch"]}),
        )
        .await;
    assert_problem(r, 422, "interface_not_found").await;
    let r = d
        .post(
            "/api/v1/network/bridges",
            json!({"name": "hpbr3", "ports": ["../etc"]}),
        )
        .await;
    assert_problem(r, 422, "invalid_interface_name").await;
    let r = d
        .post(
            "/api/v1/network/bridges",
            json!({"name": "hpbr3", "bogus": 1}),
        )
        .await;
    assert_eq!(r.status(), 422);
    for cidr in [
        "10.0.0.1/33",
        "nonsense",
        "10.0.0.1",
        "10.0.0.256/24",
        "::1/129",
        "10.0.0.1/-1",
    ] {
        let r = d
            .post(
                "/api/v1/network/addresses",
                json!({"interface": "hpv4", "address": cidr}),
            )
            .await;
        assert_problem(r, 422, "invalid_cidr").await;
    }
    let r = d
        .post(
            "/api/v1/network/addresses",
            json!({"interface": "nosuch0", "address": "10.0.0.1/24"}),
        )
        .await;
    assert_problem(r, 422, "interface_not_found").await;
    let r = d
        .post(
            "/api/v1/network/nat-rules",
            json!({"type": "masquerade", "source": "10.0.0.0/99", "out_interface": "hpv4"}),
        )
        .await;
    assert_problem(r, 422, "invalid_cidr").await;
    let r = d
        .post(
            "/api/v1/network/nat-rules",
            json!({"type": "masquerade", "source": "10.0.0.0/8", "out_interface": "a..b"}),
        )
        .await;
    assert_problem(r, 422, "invalid_interface_name").await;
    let r = d
        .post(
            "/api/v1/network/port-forwards",
            json!({"listen_address": "192.0.2.1", "ports": [
                {"protocol": "tcp", "listen_port": 80, "target_address": "10.0.0.2"},
                {"protocol": "tcp", "listen_port": 80, "target_address": "10.0.0.3"}]}),
        )
        .await;
    assert_problem(r, 422, "invalid_ports").await;
    let r = d
        .post(
            "/api/v1/network/port-forwards",
            json!({"listen_address": "not-an-ip", "ports": [
                {"protocol": "tcp", "listen_port": 80, "target_address": "10.0.0.2"}]}),
        )
        .await;
    assert_problem(r, 422, "invalid_address").await;
    let r = delete(&d, "/api/v1/network/bridges/a..b").await;
    assert_problem(r, 422, "invalid_interface_name").await;

    // VLANs and bonds: 501 where the kernel lacks 8021q/bonding (as here), never a 500.
    for (path, body) in [
        (
            "/api/v1/network/vlans",
            json!({"name": "hpv4.100", "parent": "hpv4", "vlan_id": 100}),
        ),
        (
            "/api/v1/network/bonds",
            json!({"name": "hpbond0", "mode": "active-backup"}),
        ),
    ] {
        let r = d.post(path, body).await;
        if r.status() == 501 {
            let p = assert_problem(r, 501, "network_kind_unsupported").await;
            assert!(p["detail"].as_str().unwrap().contains("kernel"), "{p}");
        } else {
            // A kernel with the driver: created and managed; remove it again.
            let v = created(r).await;
            let r = delete(&d, v["href"].as_str().unwrap()).await;
            assert_eq!(r.status(), 204);
        }
    }

    assert_eq!(ns.links(), links, "no link changed");
    assert_eq!(ns.addresses(), addrs, "no address changed");
    assert!(hostplane_table(&ns).is_none(), "no nftables table made");
    assert_eq!(
        d.get_json("/api/v1/network/bridges").await,
        json!([]),
        "nothing stored"
    );
}

/// A sandboxed daemon in the host's namespace (every other test daemon, fuzzing) reads the
/// network but changes nothing: 503 `network_sandboxed`.
#[tokio::test]
async fn sandboxed_daemon_in_host_namespace_refuses_changes() {
    let d = Daemon::start();
    let r = d.get("/api/v1/network/interfaces").await;
    assert_eq!(r.status(), 200);
    let r = d
        .post("/api/v1/network/bridges", json!({"name": "hpsandbox0"}))
        .await;
    assert_problem(r, 503, "network_sandboxed").await;
    let r = d
        .post(
            "/api/v1/network/nat-rules",
            json!({"type": "masquerade", "source": "10.0.0.0/8", "out_interface": "x"}),
        )
        .await;
    assert_problem(r, 503, "network_sandboxed").await;
    let ifs = d.get_json("/api/v1/network/interfaces").await;
    assert!(
        ifs.as_array()
            .unwrap()
            .iter()
            .all(|i| i["name"] != "hpsandbox0")
    );
}

/// Bridges reach the boot files when they change, not only at the next confirm or start:
/// create → `20-hostplane-<br>.netdev|.network` appear (with the address once added), a port
/// → its `21-…-port-…` file, delete → all gone; a foreign file in the directory stays.
#[tokio::test]
async fn bridge_changes_render_boot_files_at_once() {
    let ns = NetNs::new();
    let d = daemon_in(&ns);
    ns.ip(&[
        "link", "add", "hpbv0", "type", "veth", "peer", "name", "hpbv1",
    ]);
    let dir = d.data_dir().join("root/etc/systemd/network");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("50-foreign.network"), "[Match]\nName=x\n").unwrap();
    let names = || {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    // The STP forward delay: checked, given to the kernel, shown, and in the boot file.
    for bad in [1, 31] {
        let r = d
            .post(
                "/api/v1/network/bridges",
                json!({"name": "hpbbr", "stp": true, "forward_delay_s": bad}),
            )
            .await;
        assert_problem(r, 422, "invalid_forward_delay").await;
    }
    let b = created(
        d.post(
            "/api/v1/network/bridges",
            json!({"name": "hpbbr", "ports": [], "stp": true, "forward_delay_s": 4}),
        )
        .await,
    )
    .await;
    assert_eq!(b["forward_delay_s"], 4, "{b}");
    let details = ns.ip(&["-d", "link", "show", "hpbbr"]);
    assert!(details.contains("forward_delay 400 "), "{details}");
    assert_eq!(
        names(),
        [
            "20-hostplane-hpbbr.netdev",
            "20-hostplane-hpbbr.network",
            "50-foreign.network"
        ]
    );
    let netdev = std::fs::read_to_string(dir.join("20-hostplane-hpbbr.netdev")).unwrap();
    assert!(netdev.contains("Name=hpbbr\nKind=bridge\n"), "{netdev}");
    assert!(netdev.contains("STP=yes\nForwardDelaySec=4\n"), "{netdev}");
    created(
        d.post(
            "/api/v1/network/addresses",
            json!({"interface": "hpbbr", "address": "10.66.0.1/24"}),
        )
        .await,
    )
    .await;
    let network = std::fs::read_to_string(dir.join("20-hostplane-hpbbr.network")).unwrap();
    assert!(network.contains("Address=10.66.0.1/24\n"), "{network}");
    let r = d
        .post(
            "/api/v1/network/bridges/hpbbr/ports",
            json!({"interface": "hpbv0"}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let port = std::fs::read_to_string(dir.join("21-hostplane-hpbbr-port-hpbv0.network")).unwrap();
    assert!(
        port.contains("Name=hpbv0\n") && port.contains("Bridge=hpbbr\n"),
        "{port}"
    );
    // Written atomically: no temp file is left beside them.
    assert!(names().iter().all(|n| !n.contains(".tmp")), "{:?}", names());

    let r = delete(&d, "/api/v1/network/bridges/hpbbr").await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert_eq!(names(), ["50-foreign.network"]);
}
