//! A VM gets its address from hostplane's DHCP server on a managed bridge, live: the daemon
//! runs in a throwaway network namespace (`netns_util::NetNs`, deleted on drop), builds a
//! bridge with an address and a DHCP server there, and boots the tiny guest of
//! `scripts/guest-kit` (QEMU in TCG mode) with a NIC in bridge mode; the NIC's tap is made by
//! hostplane's own bridge helper inside the namespace. The guest runs busybox `udhcpc` on its
//! serial console (a WebSocket over the daemon's unix socket: the namespace fences its TCP
//! port). Needs root, iproute2, dnsmasq-base, QEMU and the guest kit.

mod common;
mod netns_util;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Opts};
use futures_util::{SinkExt, StreamExt};
use netns_util::NetNs;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn created(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

type Console = tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>;

/// The VM's serial console over the daemon's unix socket, through a single-use ticket.
async fn console(d: &Daemon, id: &str) -> Console {
    let t = created(
        d.post(&format!("/api/v1/vms/{id}/console"), json!({}))
            .await,
    )
    .await;
    let url = format!("ws://localhost{}", t["serial_url"].as_str().unwrap());
    let sock = tokio::net::UnixStream::connect(&d.socket).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(url.into_client_request().unwrap(), sock)
        .await
        .expect("serial console WebSocket");
    ws
}

/// Reads the console until `needle` appears; everything seen.
async fn until(ws: &mut Console, seen: &mut String, needle: &str, limit: Duration) {
    let t0 = Instant::now();
    while !seen.contains(needle) {
        let left = limit.saturating_sub(t0.elapsed());
        assert!(
            !left.is_zero(),
            "no {needle:?} on the console within {limit:?}; saw:\n{seen}"
        );
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => seen.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(other) => panic!("console ended ({other:?}); saw:\n{seen}"),
        }
    }
}

#[tokio::test]
async fn vm_on_a_managed_bridge_gets_a_lease_from_hostplanes_dhcp_server() {
    assert!(
        Path::new("/usr/sbin/dnsmasq").exists(),
        "dnsmasq (package dnsmasq-base) must be installed"
    );
    assert!(
        Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "qemu-system-x86_64 is missing: run scripts/install-qemu"
    );
    let kit = common::guest_kit();
    let ns = NetNs::new();
    let d = Daemon::start_with(Opts {
        netns: Some(ns.name.clone()),
        config: Some(format!(
            "[vms]\nallowed_paths = [{:?}]\n",
            kit.to_str().unwrap()
        )),
        ..Opts::default()
    });
    // QEMU and dnsmasq name the daemon's data dir: the daemon's guard kills them, also on panic.

    created(
        d.post(
            "/api/v1/network/bridges",
            json!({"name": "hpvbr", "ports": []}),
        )
        .await,
    )
    .await;
    created(
        d.post(
            "/api/v1/network/addresses",
            json!({"interface": "hpvbr", "address": "10.79.0.1/24"}),
        )
        .await,
    )
    .await;
    let s = created(
        d.post(
            "/api/v1/network/dhcp-servers",
            json!({"interface": "hpvbr", "range_start": "10.79.0.100",
                "range_end": "10.79.0.150", "router": "10.79.0.1", "lease_time_s": 600}),
        )
        .await,
    )
    .await;
    assert_eq!(s["state"], "running", "{s}");

    let mac = "52:54:00:79:00:42";
    let vm = created(
        d.post(
            "/api/v1/vms",
            json!({
                "name": "dhcpvm",
                "memory_mib": 256,
                "accelerator": "tcg",
                "kernel": kit.join("vmlinuz").to_str().unwrap(),
                "initrd": kit.join("initrd.gz").to_str().unwrap(),
                "cmdline": "console=ttyS0 quiet panic=-1 mode=serve",
                "nics": [{"mode": "bridge", "bridge": "hpvbr", "mac": mac}],
            }),
        )
        .await,
    )
    .await;
    let id = vm["id"].as_str().unwrap().to_string();
    let r = d.post(&format!("/api/v1/vms/{id}/start"), json!({})).await;
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_success(), "start: {status} {body}");

    // The tap hostplane's bridge helper made is a port of the bridge, in the namespace.
    let t0 = Instant::now();
    let _tap = loop {
        let ports: Vec<String> = ns
            .ip_json(&["link", "show", "master", "hpvbr"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        if let Some(t) = ports.into_iter().find(|p| p.starts_with("hptap")) {
            break t;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no tap on hpvbr: {}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Boot, then ask for a lease from the guest's shell.
    let mut ws = console(&d, &id).await;
    let mut seen = String::new();
    until(
        &mut ws,
        &mut seen,
        "HOSTPLANE-GUEST-READY",
        Duration::from_secs(180),
    )
    .await;
    // busybox udhcpc with a tiny event script that binds the leased address (the guest has no
    // default script). Markers are printed with shell arithmetic, so the echo of the typed
    // line never matches them.
    let cmd = "printf '%s\\n' '#!/bin/sh' '[ \"$1\" = bound ] && ip addr add \"$ip/$mask\" dev \"$interface\"' 'exit 0' >/tmp/hp.sh; \
        chmod +x /tmp/hp.sh; ip link set eth0 up; \
        udhcpc -i eth0 -n -q -t 10 -T 2 -s /tmp/hp.sh && echo LEASE-$((40+2))\n";
    // The shell may still be starting: say it again until it answers.
    let t0 = Instant::now();
    loop {
        ws.send(Message::Binary(cmd.as_bytes().to_vec().into()))
            .await
            .unwrap();
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            until(&mut ws, &mut seen, "LEASE-42", Duration::from_secs(60)),
        )
        .await;
        if r.is_ok() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "no lease; console:\n{seen}"
        );
    }

    // The lease is listed with the VM's MAC, an address of the range.
    let t0 = Instant::now();
    let lease = loop {
        let leases = d
            .get_json("/api/v1/network/dhcp-servers/hpvbr/leases")
            .await;
        if let Some(l) = leases.as_array().unwrap().iter().find(|l| l["mac"] == mac) {
            break l.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no lease for {mac}: {leases}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ip = lease["ip"].as_str().unwrap().to_string();
    let last: u8 = ip.strip_prefix("10.79.0.").unwrap().parse().unwrap();
    assert!((100..=150).contains(&last), "{lease}");
    assert_eq!(lease["static"], false);

    // The guest has the leased address (its event script bound it) and reaches the bridge.
    let cmd = format!(
        "ip -4 addr show eth0 | grep -q 'inet {ip}/24' && echo HAS-$((1+1)); \
         ping -c 1 -W 5 10.79.0.1 >/dev/null && echo PING-$((2+2))\n"
    );
    ws.send(Message::Binary(cmd.into_bytes().into()))
        .await
        .unwrap();
    until(&mut ws, &mut seen, "HAS-2", Duration::from_secs(60)).await;
    until(&mut ws, &mut seen, "PING-4", Duration::from_secs(60)).await;
    // And the host side sees the guest at that address on the bridge.
    let neigh = ns.ip(&["neigh", "show", "dev", "hpvbr"]);
    assert!(neigh.contains(&ip) && neigh.contains(mac), "{neigh}");

    // The bridge is in use by the VM: not deleted.
    let r = d
        .send(
            "DELETE",
            "/api/v1/network/bridges/hpvbr",
            Some(&d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 409);
}
