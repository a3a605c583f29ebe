//! Host settings with confirm-or-rollback, live: the daemon runs in a throwaway namespace
//! ("host") whose veth `hpv0` is wired to a second throwaway namespace ("client", `hpv1`,
//! 192.0.2.2/24). The daemon also listens on 0.0.0.0:PORT inside its namespace, so a client
//! thread that enters the client namespace (`setns`) reaches it over TCP on whatever address
//! hpv0 has: a confirmation "from the new address" is a real new TCP connection to it. The
//! resolver, host name and networkd files go to the daemon's sandbox root (DATA_DIR/root);
//! the kernel host name is never set (sandbox). The host's network is never named.

mod common;
mod netns_util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Daemon, assert_problem};
use netns_util::NetNs;
use serde_json::{Value, json};

const PORT: u16 = 18443;

struct Rig {
    host: NetNs,
    client: NetNs,
}

/// Two namespaces joined by a veth pair: host/hpv0 192.0.2.10/24, client/hpv1 192.0.2.2/24.
fn rig() -> Rig {
    let host = NetNs::new();
    let client = NetNs::new();
    host.ip(&[
        "link", "add", "hpv0", "type", "veth", "peer", "name", "hpv1",
    ]);
    host.ip(&["link", "set", "hpv1", "netns", &client.name]);
    host.ip(&["addr", "add", "192.0.2.10/24", "dev", "hpv0"]);
    host.ip(&["link", "set", "hpv0", "up"]);
    client.ip(&["addr", "add", "192.0.2.2/24", "dev", "hpv1"]);
    client.ip(&["link", "set", "hpv1", "up"]);
    Rig { host, client }
}

fn daemon_in(ns: &NetNs) -> Daemon {
    netns_util::daemon_in_with(ns, &["--listen", &format!("0.0.0.0:{PORT}")])
}

/// One HTTP/1.1 request on a NEW TCP connection made from inside namespace `ns` (a thread
/// that `setns`es into it): (status, body). `Err` when the connection cannot be made.
fn tcp_from(
    ns: &NetNs,
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let ns_path = format!("/run/netns/{}", ns.name);
    let addr = format!("{addr}:{PORT}");
    let (method, path, token) = (method.to_string(), path.to_string(), token.to_string());
    let body = body.map(str::to_string);
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).map_err(|e| e.to_string())?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns on this thread only, with a namespace fd we opened.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        let mut s = std::net::TcpStream::connect_timeout(
            &addr.parse().unwrap(),
            Duration::from_secs(3),
        )
        .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let body = body.unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        let status: u16 = out
            .split(' ')
            .nth(1)
            .and_then(|x| x.parse().ok())
            .ok_or(format!("no status in {out:?}"))?;
        let body = out
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        Ok((status, body))
    })
    .join()
    .unwrap()
}

async fn put_host(d: &Daemon, body: Value) -> reqwest::Response {
    d.send(
        "PUT",
        "/api/v1/network/host",
        Some(&d.token.clone()),
        Some(body),
    )
    .await
}

async fn accepted(r: reqwest::Response) -> Value {
    let status = r.status();
    let loc = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    assert_eq!(status, 202, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(loc.as_deref(), v["href"].as_str());
    v
}

/// Polls a change until its state is not `applying` (and not `until_not`), at most `secs`.
async fn wait_state(d: &Daemon, href: &str, leave: &[&str], secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = d.get_json(href).await;
        if !leave.contains(&c["state"].as_str().unwrap()) {
            return c;
        }
        assert!(Instant::now() < deadline, "change stuck: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn default_routes(ns: &NetNs) -> Vec<String> {
    ns.ip_json(&["-4", "route", "show", "default"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["gateway"].as_str().unwrap_or("-"),
                r["dev"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn v4_on_hpv0(ns: &NetNs) -> Vec<String> {
    ns.addresses()
        .into_iter()
        .filter(|a| a.starts_with("192.0.2.") || a.starts_with("198.51.100."))
        .collect()
}

#[tokio::test]
async fn good_static_change_confirmed_from_the_new_address_is_kept() {
    let r = rig();
    r.host.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    let d = daemon_in(&r.host);
    let root = d.data_dir().join("root");
    // Reachable over TCP on the old address from the client namespace.
    let (st, _) = tcp_from(
        &r.client,
        "192.0.2.10",
        "GET",
        "/api/v1/network/host",
        &d.token,
        None,
    )
    .unwrap();
    assert_eq!(st, 200);

    // Over TCP on 192.0.2.10, a change that removes 192.0.2.10 needs force.
    let body = json!({"interface": "hpv0", "mode": "static", "address": "192.0.2.20/24",
        "gateway": "192.0.2.254", "dns": ["192.0.2.53"], "hostname": "hp-test.example",
        "ntp": ["pool.ntp.org"], "confirm_timeout_s": 60});
    let (st, text) = tcp_from(
        &r.client,
        "192.0.2.10",
        "PUT",
        "/api/v1/network/host",
        &d.token,
        Some(&body.to_string()),
    )
    .unwrap();
    assert_eq!(st, 409, "{text}");
    assert!(text.contains("would_disconnect"), "{text}");
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.10/24"]);

    let mut forced = body.clone();
    forced["force"] = json!(true);
    let (st, text) = tcp_from(
        &r.client,
        "192.0.2.10",
        "PUT",
        "/api/v1/network/host",
        &d.token,
        Some(&forced.to_string()),
    )
    .unwrap();
    assert_eq!(st, 202, "{text}");
    let c: Value = serde_json::from_str(&text).unwrap();
    let href = c["href"].as_str().unwrap().to_string();
    assert!(
        matches!(
            c["state"].as_str(),
            Some("applying" | "awaiting_confirmation")
        ),
        "{c}"
    );
    let c = wait_state(&d, &href, &["applying"], 20).await;
    assert_eq!(c["state"], "awaiting_confirmation", "{c}");
    assert!(c["deadline"].is_string());
    assert_eq!(c["confirm_timeout_s"], 60);

    // Applied: the new address, the route, the files in the sandbox root.
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.20/24"]);
    assert_eq!(default_routes(&r.host), ["192.0.2.254 hpv0"]);
    let resolv = std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap();
    assert!(resolv.contains("nameserver 192.0.2.53\n"), "{resolv}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "hp-test.example\n"
    );
    // Boot files only for confirmed changes.
    assert!(
        !root
            .join("etc/systemd/network/10-hostplane-hpv0.network")
            .exists()
    );
    assert_eq!(
        d.get_json("/api/v1/network/host").await["pending_change"],
        href.as_str()
    );

    // A second change while this one is open: 409.
    let r2 = put_host(&d, json!({"interface": "hpv0", "mode": "dhcp"})).await;
    assert_problem(r2, 409, "change_pending").await;

    // A connection that predates the change (the harness's pooled unix connection) cannot confirm.
    let r3 = d.post(&format!("{href}/confirm"), json!({})).await;
    assert_problem(r3, 409, "confirm_needs_new_connection").await;

    // The old address is gone; a new connection to the new one confirms.
    assert!(
        tcp_from(
            &r.client,
            "192.0.2.10",
            "GET",
            "/api/v1/network/host",
            &d.token,
            None
        )
        .is_err()
    );
    let (st, text) = tcp_from(
        &r.client,
        "192.0.2.20",
        "POST",
        &format!("{href}/confirm"),
        &d.token,
        None,
    )
    .unwrap();
    assert_eq!(st, 200, "{text}");
    let c: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(c["state"], "confirmed");

    let h = d.get_json("/api/v1/network/host").await;
    assert_eq!(h["settings"]["address"], "192.0.2.20/24");
    assert_eq!(h["addresses"], json!(["192.0.2.20/24"]));
    assert_eq!(h["gateway"], "192.0.2.254");
    assert!(h["pending_change"].is_null());
    let boot = std::fs::read_to_string(root.join("etc/systemd/network/10-hostplane-hpv0.network"))
        .unwrap();
    assert!(boot.contains("[Match]\nName=hpv0\n\n[Network]\nAddress=192.0.2.20/24\nGateway=192.0.2.254\nDNS=192.0.2.53\nNTP=pool.ntp.org\n"), "{boot}");

    // Kept past what would have been a deadline check, and a second confirm is 409.
    let (st, text) = tcp_from(
        &r.client,
        "192.0.2.20",
        "POST",
        &format!("{href}/confirm"),
        &d.token,
        None,
    )
    .unwrap();
    assert_eq!(st, 409, "{text}");
    assert!(text.contains("change_not_pending"), "{text}");
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.20/24"]);
}

#[tokio::test]
async fn a_gateway_not_on_link_is_rolled_back_by_itself() {
    let r = rig();
    r.host.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    let d = daemon_in(&r.host);
    let root = d.data_dir().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/resolv.conf"), "nameserver 192.0.2.99\n").unwrap();
    let c = accepted(
        put_host(
            &d,
            json!({"interface": "hpv0", "mode": "static", "address": "192.0.2.30/24",
                "gateway": "198.51.100.1", "dns": ["192.0.2.53"], "hostname": "bad.example"}),
        )
        .await,
    )
    .await;
    let c = wait_state(&d, c["href"].as_str().unwrap(), &["applying"], 20).await;
    assert_eq!(c["state"], "rolled_back", "{c}");
    assert!(
        c["reason"].as_str().unwrap().starts_with("apply_failed"),
        "{c}"
    );
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.10/24"]);
    assert_eq!(default_routes(&r.host), ["192.0.2.1 hpv0"]);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap(),
        "nameserver 192.0.2.99\n"
    );
    assert!(!root.join("etc/hostname").exists());
    // Still reachable on the old address; a new change may start.
    let (st, _) = tcp_from(
        &r.client,
        "192.0.2.10",
        "GET",
        "/api/v1/network/host",
        &d.token,
        None,
    )
    .unwrap();
    assert_eq!(st, 200);

    // A link without carrier fails the self-check and rolls back too.
    r.client.ip(&["link", "set", "hpv1", "down"]);
    let c = accepted(
        put_host(
            &d,
            json!({"interface": "hpv0", "mode": "static", "address": "192.0.2.31/24"}),
        )
        .await,
    )
    .await;
    let c = wait_state(&d, c["href"].as_str().unwrap(), &["applying"], 20).await;
    assert_eq!(c["state"], "rolled_back", "{c}");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .starts_with("self_check_failed"),
        "{c}"
    );
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.10/24"]);
}

#[tokio::test]
async fn without_confirmation_it_rolls_back_at_the_deadline() {
    let r = rig();
    let d = daemon_in(&r.host);
    // Bad input: 422, nothing changes.
    for (body, code) in [
        (
            json!({"interface": "hpv0", "mode": "static"}),
            "address_required",
        ),
        (
            json!({"interface": "hpv0", "mode": "static", "address": "300.0.2.1/24"}),
            "invalid_cidr",
        ),
        (
            json!({"interface": "hpv0", "mode": "dhcp", "confirm_timeout_s": 9}),
            "invalid_confirm_timeout",
        ),
        (
            json!({"interface": "hpv0", "mode": "dhcp", "hostname": "a_b"}),
            "invalid_hostname",
        ),
        (
            json!({"interface": "nope0", "mode": "dhcp"}),
            "interface_not_found",
        ),
        (
            json!({"interface": "bad/name", "mode": "dhcp"}),
            "invalid_interface_name",
        ),
    ] {
        assert_problem(put_host(&d, body).await, 422, code).await;
    }
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.10/24"]);
    assert!(
        d.get_json("/api/v1/network/changes")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );

    let c = accepted(
        put_host(&d, json!({"interface": "hpv0", "mode": "static", "address": "192.0.2.40/24", "confirm_timeout_s": 10})).await,
    )
    .await;
    let href = c["href"].as_str().unwrap().to_string();
    let c = wait_state(&d, &href, &["applying"], 20).await;
    assert_eq!(c["state"], "awaiting_confirmation", "{c}");
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.40/24"]);
    let c = wait_state(&d, &href, &["awaiting_confirmation"], 30).await;
    assert_eq!(c["state"], "rolled_back", "{c}");
    assert_eq!(c["reason"], "timeout");
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.10/24"]);
    let (st, _) = tcp_from(
        &r.client,
        "192.0.2.10",
        "GET",
        "/api/v1/network/host",
        &d.token,
        None,
    )
    .unwrap();
    assert_eq!(st, 200);
    // Too late to confirm.
    let (st, text) = tcp_from(
        &r.client,
        "192.0.2.10",
        "POST",
        &format!("{href}/confirm"),
        &d.token,
        None,
    )
    .unwrap();
    assert_eq!(st, 409, "{text}");
    // The timeout is never stored with the settings.
    assert!(d.get_json("/api/v1/network/host").await["settings"].is_null());
}

#[tokio::test]
async fn a_daemon_killed_in_the_window_restores_the_prior_config_at_start() {
    let r = rig();
    r.host.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    let mut d = daemon_in(&r.host);
    let c = accepted(
        put_host(
            &d,
            json!({"interface": "hpv0", "mode": "static", "address": "198.51.100.7/24",
            "gateway": "198.51.100.1", "confirm_timeout_s": 600}),
        )
        .await,
    )
    .await;
    let href = c["href"].as_str().unwrap().to_string();
    let c = wait_state(&d, &href, &["applying"], 20).await;
    assert_eq!(c["state"], "awaiting_confirmation", "{c}");
    assert!(d.data_dir().join("network/pending-change.json").exists());
    d.kill9();
    // Dead daemon, changed host.
    assert_eq!(v4_on_hpv0(&r.host), ["198.51.100.7/24"]);
    d.spawn();
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.10/24"]);
    assert_eq!(default_routes(&r.host), ["192.0.2.1 hpv0"]);
    let c = d.get_json(&href).await;
    assert_eq!(c["state"], "rolled_back", "{c}");
    assert_eq!(c["reason"], "daemon_restarted");
    assert!(!d.data_dir().join("network/pending-change.json").exists());
    let (st, _) = tcp_from(
        &r.client,
        "192.0.2.10",
        "GET",
        "/api/v1/network/host",
        &d.token,
        None,
    )
    .unwrap();
    assert_eq!(st, 200);
}

async fn post_settings(d: &Daemon, json_text: &str) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(json_text.as_bytes().to_vec())
        .file_name("settings.json")
        .mime_str("application/json")
        .unwrap();
    d.client
        .post(d.url("/api/v1/admin/settings"))
        .bearer_auth(&d.token)
        .multipart(reqwest::multipart::Form::new().part("settings", part))
        .send()
        .await
        .unwrap()
}

/// The newest change, once it left `applying`.
async fn newest_change(d: &Daemon) -> Value {
    let list = d.get_json("/api/v1/network/changes").await;
    let href = list[0]["href"].as_str().unwrap().to_string();
    wait_state(d, &href, &["applying"], 20).await
}

/// Jidoteki section 8 with the document's examples (interface and addresses adapted to the
/// rig): STATIC applied, confirmed by the client's next poll over the new address; then DHCP.
#[tokio::test]
async fn jidoteki_settings_examples() {
    let r = rig();
    let d = daemon_in(&r.host);
    let e = d.get_json("/api/v1/admin/endpoints").await;
    assert!(
        e["endpoints"]
            .as_array()
            .unwrap()
            .contains(&json!("/api/v1/admin/settings")),
        "{e}"
    );

    let static_json = r#"{
    "network": {
        "interface": "hpv0",
        "hostname": "test.host",
        "ip_address": "192.0.2.100",
        "netmask": "255.255.255.0",
        "gateway": "192.0.2.1",
        "dns1": "192.0.2.2",
        "dns2": "192.0.2.3",
        "ntpserver": "pool.ntp.org"
    },
    "app": {
        "name": "testapp"
    }
}"#;
    let resp = post_settings(&d, static_json).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["location"], "/api/v1/admin/settings");
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"Status":"202 Accepted","Location":"/api/v1/admin/settings"}"#
    );
    let c = newest_change(&d).await;
    assert_eq!(c["state"], "awaiting_confirmation", "{c}");
    // One update at a time.
    let resp = post_settings(&d, static_json).await;
    assert_eq!(resp.status(), 400);
    // A poll on a connection that predates the change reads, and confirms nothing.
    let g = d.get_json("/api/v1/admin/settings").await;
    assert_eq!(g["network"]["interface"], "");
    // The client's poll from the new address confirms.
    let (st, text) = tcp_from(
        &r.client,
        "192.0.2.100",
        "GET",
        "/api/v1/admin/settings",
        &d.token,
        None,
    )
    .unwrap();
    assert_eq!(st, 200, "{text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    let sent: Value = serde_json::from_str(static_json).unwrap();
    assert_eq!(got, sent);
    assert_eq!(
        d.get_json(c["href"].as_str().unwrap()).await["state"],
        "confirmed"
    );
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.100/24"]);

    let dhcp_json = r#"{
    "network": {
        "interface": "hpv0",
        "hostname": "test.host",
        "ntpserver": "pool.ntp.org"
    },
    "app": {
        "name": "testapp"
    }
}"#;
    assert_eq!(post_settings(&d, dhcp_json).await.status(), 202);
    let c = newest_change(&d).await;
    assert_eq!(c["state"], "awaiting_confirmation", "{c}");
    assert_eq!(c["settings"]["mode"], "dhcp");
    // The static address is gone (a lease would bring one); the local admin confirms over a new
    // unix-socket connection.
    assert!(v4_on_hpv0(&r.host).is_empty());
    let (st, text) = d.unix_request("GET", "/api/v1/admin/settings");
    assert_eq!(st, 200, "{text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    let sent: Value = serde_json::from_str(dhcp_json).unwrap();
    assert_eq!(got, sent);
    let boot = std::fs::read_to_string(
        d.data_dir()
            .join("root/etc/systemd/network/10-hostplane-hpv0.network"),
    )
    .unwrap();
    assert!(boot.contains("DHCP=ipv4\n"), "{boot}");

    // Bad files: 400.
    for bad in [
        "not json",
        r#"{"network": {"interface": "hpv0", "ip_address": "192.0.2.5"}}"#,
        r#"{"network": {"interface": "hpv0", "ip_address": "192.0.2.5", "netmask": "255.0.255.0", "gateway": "192.0.2.1"}}"#,
        r#"{"network": {"interface": "no such", "hostname": "x"}}"#,
    ] {
        assert_eq!(post_settings(&d, bad).await.status(), 400, "{bad}");
    }
}

struct CliRun {
    what: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl CliRun {
    fn expect(self, code: i32) -> CliRun {
        assert_eq!(
            self.code, code,
            "`hostplane {}` exited {}\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("`hostplane {}`: {e}:\n{}", self.what, self.stdout))
    }
}

/// The CLI against `d` over its unix socket (every request its own connection), stdin from
/// /dev/null (no terminal: `set` prints how to confirm), a private HOME.
fn cli(d: &Daemon, args: &[&str]) -> CliRun {
    let home = d.data_dir().join("cli-home");
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args(["--url", &format!("unix://{}", d.socket.display())])
        .args(args)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(std::process::Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("HOSTPLANE_") {
            cmd.env_remove(k);
        }
    }
    let o = cmd.output().expect("run hostplane");
    CliRun {
        what: args.join(" "),
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A KEY's value in a KEY VALUE table.
fn field(table: &str, key: &str) -> String {
    table
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .filter(|r| r.starts_with(' '))
                .map(|r| r.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in\n{table}"))
}

/// `hostplane net host`: set (no terminal: applied, the hint printed), status with the
/// countdown, rollback, set --keep (confirmed over a new connection), show, changes.
#[tokio::test]
async fn cli_net_host_set_status_rollback_keep() {
    let r = rig();
    let d = daemon_in(&r.host);
    let show = cli(&d, &["--json", "net", "host", "show"]).expect(0).json();
    assert!(show["settings"].is_null(), "{show}");

    let set = cli(
        &d,
        &[
            "net",
            "host",
            "set",
            "-i",
            "hpv0",
            "--mode",
            "static",
            "--address",
            "192.0.2.50/24",
            "--dns",
            "192.0.2.53",
            "--confirm-timeout",
            "120",
        ],
    )
    .expect(0);
    assert_eq!(field(&set.stdout, "STATE"), "awaiting_confirmation");
    let left: u64 = field(&set.stdout, "ROLLS-BACK-IN")
        .trim_end_matches(" s")
        .parse()
        .unwrap();
    assert!((100..=120).contains(&left), "{}", set.stdout);
    assert!(
        set.stderr.contains("hostplane net host confirm"),
        "{}",
        set.stderr
    );
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.50/24"]);
    let id = field(&set.stdout, "ID");

    let st = cli(&d, &["net", "host", "status"]).expect(0);
    assert_eq!(field(&st.stdout, "ID"), id);
    assert_eq!(field(&st.stdout, "STATE"), "awaiting_confirmation");
    assert!(field(&st.stdout, "ROLLS-BACK-IN").ends_with(" s"));
    let show = cli(&d, &["net", "host", "show"]).expect(0);
    assert_eq!(field(&show.stdout, "PENDING-CHANGE"), id);
    // A second set while this one is open is refused.
    let again = cli(&d, &["net", "host", "set", "-i", "hpv0", "--mode", "dhcp"]).expect(1);
    assert!(again.stderr.contains("change_pending"), "{}", again.stderr);

    let rb = cli(&d, &["--json", "net", "host", "rollback"])
        .expect(0)
        .json();
    assert_eq!(rb["state"], "rolled_back", "{rb}");
    assert_eq!(rb["reason"], "cancelled");
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.10/24"]);
    // Nothing open: confirm and rollback say so.
    let none = cli(&d, &["net", "host", "confirm"]).expect(1);
    assert!(
        none.stderr.contains("no network change is open"),
        "{}",
        none.stderr
    );
    let late = cli(&d, &["net", "host", "rollback", &id]).expect(1);
    assert!(
        late.stderr.contains("change_not_pending"),
        "{}",
        late.stderr
    );

    let kept = cli(
        &d,
        &[
            "--json",
            "net",
            "host",
            "set",
            "-i",
            "hpv0",
            "--mode",
            "static",
            "--address",
            "192.0.2.51/24",
            "--keep",
        ],
    )
    .expect(0)
    .json();
    assert_eq!(kept["state"], "confirmed", "{kept}");
    assert_eq!(v4_on_hpv0(&r.host), ["192.0.2.51/24"]);
    let show = cli(&d, &["net", "host", "show"]).expect(0);
    assert_eq!(field(&show.stdout, "ADDRESS"), "192.0.2.51/24");
    assert_eq!(field(&show.stdout, "ADDRESSES-NOW"), "192.0.2.51/24");
    assert_eq!(field(&show.stdout, "PENDING-CHANGE"), "-");
    let st = cli(&d, &["net", "host", "status"]).expect(0);
    assert_eq!(field(&st.stdout, "STATE"), "confirmed");

    // A bad request: the daemon's 422, exit 1, nothing changed.
    let bad = cli(
        &d,
        &[
            "net",
            "host",
            "set",
            "-i",
            "hpv0",
            "--mode",
            "static",
            "--address",
            "300.1.1.1/24",
        ],
    )
    .expect(1);
    assert!(bad.stderr.contains("invalid_cidr"), "{}", bad.stderr);
    let list = cli(&d, &["--json", "net", "host", "changes"])
        .expect(0)
        .json();
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["confirmed", "rolled_back"]);
}

fn lease_addrs(ns: &NetNs) -> Vec<String> {
    ns.addresses()
        .into_iter()
        .filter(|a| a.starts_with("10.77.0."))
        .collect()
}

/// Polls until `f` holds (at most `secs`).
async fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Host settings `mode: dhcp` at runtime: a second daemon in a "server" namespace serves DHCP
/// (hostplane's dnsmasq on a managed bridge); the daemon under test switches hpv0 from static
/// to DHCP, its supervised udhcpc takes a lease. Rollback: the static address is back and the
/// client is gone; confirm (from the leased address, a new TCP connection): the lease is kept;
/// a static change after it stops the client.
#[tokio::test]
async fn dhcp_mode_takes_a_lease_at_runtime_and_rollback_restores_static() {
    let host = NetNs::new();
    let srv = NetNs::new();
    host.ip(&[
        "link", "add", "hpv0", "type", "veth", "peer", "name", "hpv1",
    ]);
    host.ip(&["link", "set", "hpv1", "netns", &srv.name]);
    host.ip(&["addr", "add", "10.77.0.5/24", "dev", "hpv0"]);
    host.ip(&["link", "set", "hpv0", "up"]);
    srv.ip(&["link", "set", "hpv1", "up"]);
    let server = netns_util::daemon_in(&srv);
    let d = daemon_in(&host);
    for (path, body) in [
        (
            "/api/v1/network/bridges",
            json!({"name": "hpsbr", "ports": ["hpv1"]}),
        ),
        (
            "/api/v1/network/addresses",
            json!({"interface": "hpsbr", "address": "10.77.0.1/24"}),
        ),
        (
            "/api/v1/network/dhcp-servers",
            json!({"interface": "hpsbr", "range_start": "10.77.0.100", "range_end": "10.77.0.150",
                "router": "10.77.0.1", "lease_time_s": 600}),
        ),
    ] {
        let resp = server.post(path, body).await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    let mac = host.ip_json(&["link", "show", "hpv0"])[0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let leased = |ns: &NetNs| lease_addrs(ns).into_iter().find(|a| a != "10.77.0.5/24");

    // 1. To DHCP, then rolled back by request: static again, client gone.
    let c = accepted(
        put_host(
            &d,
            json!({"interface": "hpv0", "mode": "dhcp", "confirm_timeout_s": 120}),
        )
        .await,
    )
    .await;
    let href = c["href"].as_str().unwrap().to_string();
    let c = wait_state(&d, &href, &["applying"], 20).await;
    assert_eq!(c["state"], "awaiting_confirmation", "{c}");
    until(30, "a lease on hpv0", || leased(&host).is_some()).await;
    let addr = leased(&host).unwrap();
    assert!(addr.ends_with("/24"), "{addr}");
    assert_eq!(lease_addrs(&host), std::slice::from_ref(&addr));
    let view = d.get_json("/api/v1/network/host").await;
    assert_eq!(view["dhcp_client"]["running"], true, "{view}");
    assert_eq!(view["dhcp_client"]["address"], addr.as_str(), "{view}");
    assert_eq!(view["dhcp_client"]["router"], "10.77.0.1", "{view}");
    let leases = server
        .get_json("/api/v1/network/dhcp-servers/hpsbr/leases")
        .await;
    assert!(
        leases.as_array().unwrap().iter().any(
            |l| l["mac"] == mac.as_str() && format!("{}/24", l["ip"].as_str().unwrap()) == addr
        ),
        "{leases}"
    );
    let client_pid = std::fs::read_to_string(d.data_dir().join("network/dhcp-client/udhcpc.pid"))
        .unwrap()
        .trim()
        .parse::<i32>()
        .unwrap();
    let rb = d.post(&format!("{href}/rollback"), json!({})).await;
    assert_eq!(rb.status(), 200);
    let rb: Value = rb.json().await.unwrap();
    assert_eq!(rb["state"], "rolled_back", "{rb}");
    assert_eq!(lease_addrs(&host), ["10.77.0.5/24"]);
    // SAFETY: signal 0 only asks whether the pid exists.
    assert!(
        unsafe { libc::kill(client_pid, 0) } != 0,
        "udhcpc still runs"
    );
    assert_eq!(
        d.get_json("/api/v1/network/host").await["dhcp_client"]["running"],
        false
    );
    // No late lease event brings the leased address back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lease_addrs(&host), ["10.77.0.5/24"]);

    // 2. To DHCP, confirmed from the leased address over a new TCP connection: kept.
    let c = accepted(
        put_host(
            &d,
            json!({"interface": "hpv0", "mode": "dhcp", "confirm_timeout_s": 120}),
        )
        .await,
    )
    .await;
    let href = c["href"].as_str().unwrap().to_string();
    let c = wait_state(&d, &href, &["applying"], 20).await;
    assert_eq!(c["state"], "awaiting_confirmation", "{c}");
    until(30, "a lease on hpv0", || leased(&host).is_some()).await;
    let addr = leased(&host).unwrap();
    let ip = addr.split('/').next().unwrap().to_string();
    let (st, text) = tcp_from(
        &srv,
        &ip,
        "POST",
        &format!("{href}/confirm"),
        &d.token,
        None,
    )
    .unwrap();
    assert_eq!(st, 200, "{text}");
    let h = d.get_json("/api/v1/network/host").await;
    assert_eq!(h["settings"]["mode"], "dhcp", "{h}");
    assert_eq!(h["addresses"], json!([addr.clone()]), "{h}");
    assert_eq!(h["gateway"], "10.77.0.1", "{h}");
    assert_eq!(h["dhcp_client"]["running"], true, "{h}");
    let boot = std::fs::read_to_string(
        d.data_dir()
            .join("root/etc/systemd/network/10-hostplane-hpv0.network"),
    )
    .unwrap();
    assert!(boot.contains("DHCP=ipv4\n"), "{boot}");

    // 3. Back to static (confirmed over a new unix connection): the client stops.
    let c = accepted(
        put_host(
            &d,
            json!({"interface": "hpv0", "mode": "static", "address": "10.77.0.6/24"}),
        )
        .await,
    )
    .await;
    let href = c["href"].as_str().unwrap().to_string();
    let c = wait_state(&d, &href, &["applying"], 20).await;
    assert_eq!(c["state"], "awaiting_confirmation", "{c}");
    let (st, text) = d.unix_request("POST", &format!("{href}/confirm"));
    assert_eq!(st, 200, "{text}");
    assert_eq!(lease_addrs(&host), ["10.77.0.6/24"]);
    assert_eq!(
        d.get_json("/api/v1/network/host").await["dhcp_client"]["running"],
        false
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lease_addrs(&host), ["10.77.0.6/24"]);
}
