//! The services area against a real systemd: a booted container (tests/nspawn_util: a cached
//! Debian rootfs in `systemd-nspawn`, its system bus bound out to a temp dir), and the daemon
//! pointed at that bus (`[services] dbus_address`). Every change made through the API is
//! checked from inside the container with `systemctl`. The container is powered off and
//! every mount and directory removed when the guard drops, also on panic.
//!
//! Needs root, `systemd-nspawn` (systemd-container), `debootstrap` and `dbus-daemon`
//! (scripts/test installs them) and, for the first run on a machine, a Debian mirror
//! (`HOSTPLANE_DEBIAN_MIRROR`, default deb.debian.org).

mod common;
mod nspawn_util;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Opts, assert_problem};
use hmac::{Hmac, KeyInit, Mac};
use nspawn_util::{Container, need};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TOKEN: &str = "services-admin-token";

fn hmac_hash(method: &str, path: &str) -> String {
    let key = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    m.update(format!("{method}{path}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

async fn action(d: &Daemon, unit: &str, what: &str) -> Value {
    let r = d
        .post(&format!("/api/v1/services/{unit}/{what}"), json!({}))
        .await;
    assert_eq!(
        r.status(),
        202,
        "{what} {unit}: {}",
        r.text().await.unwrap()
    );
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    d.wait_job(&loc).await
}

const DEMO: &str = "[Unit]\nDescription=hostplane demo service\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n";
const BROKEN: &str =
    "[Unit]\nDescription=hostplane broken service\n[Service]\nType=oneshot\nExecStart=/bin/false\n";

#[tokio::test]
async fn services_are_driven_on_a_real_systemd_in_nspawn() {
    let t0 = Instant::now();
    let c = Container::boot(&[("hp-demo.service", DEMO), ("hp-broken.service", BROKEN)]);
    eprintln!("container booted in {:?}", t0.elapsed());
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[services]\ndbus_address = \"{}\"\nchange_units = true\n[admin]\nservices = [\"hp-demo\", \"dbus\", \"no-such-unit\"]\n",
            c.address()
        )),
        ..Opts::default()
    });
    let form = reqwest::multipart::Form::new().text("newtoken", TOKEN);
    let r = d
        .client
        .post(d.url("/api/v1/admin/setup"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The list: loaded units and installed unit files.
    let r = d.get("/api/v1/services").await;
    assert_eq!(r.status(), 200);
    let total: usize = r.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), total);
    let find = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed"))
    };
    let dbus = find("dbus.service");
    assert_eq!(dbus["active_state"], "active");
    assert_eq!(dbus["sub_state"], "running");
    assert_eq!(dbus["href"], "/api/v1/services/dbus.service");
    let demo = find("hp-demo.service");
    assert_eq!(demo["active_state"], "inactive");
    assert_eq!(demo["unit_file_state"], "disabled");
    let filtered: Value = d
        .get_json("/api/v1/services?filter=name:hp-demo.service&fields=name,active_state")
        .await;
    assert_eq!(filtered.as_array().unwrap().len(), 1, "{filtered}");

    // One unit; a missing one is 404.
    let one = d.get_json("/api/v1/services/hp-demo").await;
    assert_eq!(one["name"], "hp-demo.service");
    assert_eq!(one["description"], "hostplane demo service");
    assert_problem(
        d.get("/api/v1/services/no-such-unit").await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        d.post("/api/v1/services/no-such-unit/start", json!({}))
            .await,
        404,
        "not_found",
    )
    .await;

    // enable → the symlink exists inside.
    let r = d.post("/api/v1/services/hp-demo/enable", json!({})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["unit_file_state"], "enabled");
    assert_eq!(c.systemctl(&["is-enabled", "hp-demo.service"]), "enabled");

    // start → a job that waits for systemd's result.
    let job = action(&d, "hp-demo", "start").await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["result"]["result"], "done");
    assert_eq!(job["result"]["service"]["active_state"], "active");
    assert_eq!(c.systemctl(&["is-active", "hp-demo.service"]), "active");
    let pid1 = d.get_json("/api/v1/services/hp-demo.service").await["main_pid"]
        .as_u64()
        .expect("a main pid while running");

    // The Jidoteki view, in both documented forms.
    for q in [
        format!("token={TOKEN}"),
        format!("hash={}", hmac_hash("GET", "/api/v1/admin/services")),
    ] {
        let r = d
            .client
            .get(d.url(&format!("/api/v1/admin/services?{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"services": [
                {"hp-demo": "running"}, {"dbus": "running"}, {"no-such-unit": "not running"}
            ]})
        );
    }

    // restart → a new main process.
    let job = action(&d, "hp-demo.service", "restart").await;
    assert_eq!(job["status"], "success", "{job}");
    let pid2 = job["result"]["service"]["main_pid"].as_u64().unwrap();
    assert_ne!(pid1, pid2);
    assert_eq!(c.systemctl(&["is-active", "hp-demo.service"]), "active");

    // stop.
    let job = action(&d, "hp-demo", "stop").await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(c.systemctl(&["is-active", "hp-demo.service"]), "inactive");
    let r = d
        .client
        .get(d.url(&format!("/api/v1/admin/services?token={TOKEN}")))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["services"][0], json!({"hp-demo": "not running"}));

    // disable.
    let r = d.post("/api/v1/services/hp-demo/disable", json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(c.systemctl(&["is-enabled", "hp-demo.service"]), "disabled");

    // A unit that fails to start fails the job, with systemd's result and the unit's state.
    let job = action(&d, "hp-broken", "start").await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "unit_job_failed");
    assert_eq!(job["result"]["result"], "failed");
    assert_eq!(job["result"]["service"]["active_state"], "failed");
    assert_eq!(c.systemctl(&["is-failed", "hp-broken.service"]), "failed");

    // Actions need operator.
    let viewer = d.token_for_role("svc-viewer", "viewer").await;
    for what in ["start", "stop", "restart", "enable", "disable"] {
        let r = d
            .send(
                "POST",
                &format!("/api/v1/services/hp-demo/{what}"),
                Some(&viewer),
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status(), 403, "{what} as viewer");
    }
    assert_eq!(
        d.get_as("/api/v1/services/hp-demo", &viewer).await.status(),
        200
    );
    assert_eq!(c.systemctl(&["is-active", "hp-demo.service"]), "inactive");
}

/// A plain D-Bus daemon with no systemd on it; killed on drop.
struct PlainBus(Child);

impl Drop for PlainBus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_bus_without_systemd_is_503_with_the_reason() {
    need("dbus-daemon");
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("bus.sock");
    let address = format!("unix:path={}", sock.display());
    let _bus = PlainBus(
        Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "dbus-daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[services]\ndbus_address = \"{address}\"\nchange_units = true\n"
        )),
        ..Opts::default()
    });
    let v = assert_problem(d.get("/api/v1/services").await, 503, "systemd_unavailable").await;
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("systemd is not reachable"), "{detail}");
    assert!(detail.contains(&address), "{detail}");
    assert_problem(
        d.post("/api/v1/services/ssh/start", json!({})).await,
        503,
        "systemd_unavailable",
    )
    .await;
}
