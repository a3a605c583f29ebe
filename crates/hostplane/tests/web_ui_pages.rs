//! The web UI's pages in Debian's Chromium against the real daemon (web/test/pages.mjs drives
//! it with playwright-core): every page passes axe and raises no page error; a dataset snapshot
//! taken through the UI; a VM created in the UI's form boots the tiny real QEMU guest
//! (tests/vms.rs's kit, TCG) and its VNC canvas changes and its serial text appears in the
//! consoles (each a lazily loaded chunk); a used console ticket is refused in the browser; a
//! running job is cancelled from the jobs panel; and the event stream, which the daemon ends
//! every few seconds here (`events.max_stream_secs`), is resumed with Last-Event-ID and still
//! delivers. Screenshots of every page go to `$HOSTPLANE_UI_ARTIFACTS/pages` (default
//! `$CARGO_TARGET_DIR/ui-artifacts/pages`).
//!
//! The workload pages (web/test/workloads.mjs) against a daemon with a private dockerd
//! (tests/engine_util): containers, stacks, LXC, workloads, network and host terminal pass axe in
//! light and dark; a container made in the create form runs a typed command in its exec terminal
//! (xterm over the exec WebSocket); the host terminal shows a typed command's output and replays
//! it after a reconnect; the dashboard's charts come from the metrics history and grow with live
//! `metrics.sample` events; an image pushed to a local registry (tests/registry_util) is pulled
//! in the Images tab, the update check runs, unused images are pruned.
//!
//! The Provisioning page (web/test/provisioning.mjs) with the test guest (tests/vms.rs's kit,
//! TCG): recipes (dry run, the step editor), secrets, artifact uploads, a profile, a run
//! started from the VM's page that fails at its provisioner, is fixed and retried to success,
//! and a template registry (a small BoxVault the driver serves) browsed and a box pulled.
//!
//! The Network page (web/test/network.mjs) against a daemon in a throwaway network namespace
//! (tests/netns_util): the driver and its Chromium run in that namespace too (`ip netns exec`),
//! so the browser reaches the daemon's loopback listener there and the host's network is never
//! touched: a bridge and its address, a DHCP server with a static host, and host settings
//! applied and confirmed with the page's Confirm before the countdown ends.
//!
//! The LXC page (web/test/lxc.mjs): a busybox container created in the form, started, its
//! attach console used, stopped and deleted (the daemon in the test's own namespace: LXC's
//! command socket is netns-scoped, as in tests/lxc.rs).

mod common;
mod engine_util;
mod netns_util;
mod registry_util;
mod storage_util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Opts};
use serde_json::json;
use storage_util::Loops;

const MIB: u64 = 1024 * 1024;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The node driver and its Chromium, as one process group: killed on drop (also on panic).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: the process group this test spawned.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Kills the QEMUs of this test's daemon (found by pidfile, checked by command line): QEMU
/// outlives the daemon by design.
struct Qemus(PathBuf);

impl Drop for Qemus {
    fn drop(&mut self) {
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let Ok(pid) = std::fs::read_to_string(e.path().join("qemu.pid")) else {
                continue;
            };
            let Ok(pid) = pid.trim().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(self.0.to_str().unwrap()) {
                // SAFETY: a QEMU of this test's daemon.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn artifacts() -> PathBuf {
    let dir = match std::env::var_os("HOSTPLANE_UI_ARTIFACTS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| repo().join("target").into()),
        )
        .join("ui-artifacts"),
    }
    .join("pages");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn web_deps() {
    let deps = Command::new(repo().join("scripts/web"))
        .arg("deps")
        .status()
        .expect("scripts/web deps (needs npm)");
    assert!(deps.success(), "scripts/web deps failed");
}

/// Runs `web/test/<script>` with `envs` (plus HP_ARTIFACTS) and fails when it does.
async fn run_driver(script: &str, envs: &[(&str, String)], t0: Instant) {
    run_driver_in(None, script, envs, t0).await
}

/// [`run_driver`], the driver and its Chromium inside network namespace `netns` when given
/// (`ip netns exec NS node ...`, as the harness starts a namespaced daemon): the browser then
/// reaches that daemon's loopback listener.
async fn run_driver_in(netns: Option<&str>, script: &str, envs: &[(&str, String)], t0: Instant) {
    let artifacts = artifacts();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "node"]);
            c
        }
        None => Command::new("node"),
    };
    cmd.arg(repo().join("web/test").join(script))
        .current_dir(repo().join("web"))
        .env("HP_ARTIFACTS", &artifacts)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut driver = Driver(cmd.spawn().expect("node is needed"));
    let out = driver.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(420);
    let status = loop {
        if let Some(s) = driver.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the browser driver took over 420 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = reader.join().unwrap();
    println!("{output}");
    eprintln!(
        "web UI {script}: {:.1} s, screenshots in {}",
        t0.elapsed().as_secs_f64(),
        artifacts.display()
    );
    assert!(
        status.success(),
        "the browser driver failed (its output is above)"
    );
}

#[tokio::test]
async fn every_page_consoles_snapshots_and_event_resume_in_chromium() {
    let t0 = Instant::now();
    web_deps();
    for tool in ["/usr/bin/chromium", "/usr/bin/qemu-system-x86_64"] {
        assert!(Path::new(tool).exists(), "{tool} is needed");
    }
    let kit = common::guest_kit();
    let loops = Loops::new(1, 256 * MIB);
    let devs: Vec<&str> = loops.devs.iter().map(String::as_str).collect();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "{}[vms]\nallowed_paths = [{:?}]\n[events]\nmax_stream_secs = 5\n[metrics]\ninterval_secs = 1\n",
            loops.config(),
            kit.to_str().unwrap()
        )),
        extra_args: vec!["--disks-allow".into(), Loops::allow(&devs)],
        ..Default::default()
    });
    let _qemus = Qemus(d.data_dir().join("run/vms"));

    // What the UI pages show: a pool with a dataset (snapshots need btrfs), an admin.
    let r = d
        .post(
            "/api/v1/pools",
            json!({"name": "uipool", "kind": "btrfs", "devices": [Loops::name(devs[0])]}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let job = d.wait_job(r.headers()["location"].to_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    let r = d
        .post("/api/v1/pools/uipool/datasets", json!({"name": "docs"}))
        .await;
    assert_eq!(r.status(), 201);
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": "pageadmin", "role": "admin", "password": "page-pass-123"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = d
        .create_token(json!({"name": "pages-token", "owner": "pageadmin"}))
        .await;

    run_driver(
        "pages.mjs",
        &[
            ("HP_URL", d.base.clone()),
            ("HP_USER", "pageadmin".into()),
            ("HP_PASS", "page-pass-123".into()),
            ("HP_TOKEN", token),
            ("HP_KIT", kit.to_str().unwrap().into()),
        ],
        t0,
    )
    .await;

    // What the UI did, seen through the API.
    let snaps = d
        .get_json("/api/v1/pools/uipool/datasets/docs/snapshots")
        .await;
    assert!(
        snaps
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "ui-snap"),
        "{snaps}"
    );
    let vm = d.get_json("/api/v1/vms/uivm").await;
    assert_eq!(vm["accelerator"], "tcg", "{vm}");
    assert_eq!(vm["memory_mib"], 256, "{vm}");
    assert_eq!(vm["nics"][0]["mode"], "user", "{vm}");
    // Stop the guest before the pool goes (the daemon's drop would leave QEMU to the guard).
    let r = d.post("/api/v1/vms/uivm/stop", json!({})).await;
    assert!(r.status().is_success() || r.status() == 409);
}

#[tokio::test]
async fn workload_pages_exec_and_host_terminal_in_chromium() {
    let t0 = Instant::now();
    web_deps();
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is needed"
    );
    let registry = registry_util::Registry::start();
    let engine = engine_util::Engine::start(engine_util::Kind::Docker);
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[metrics]\ninterval_secs = 1\n[containers]\ntimeout_secs = 30\n\
             [[containers.engines]]\nname = \"docker\"\nsocket = \"{}\"\n",
            engine.socket_url()
        )),
        ..Default::default()
    });
    // The test image (busybox, nothing from the internet) and an admin who logs in.
    let r = d
        .client
        .post(d.url("/api/v1/container-engines/docker/images/import?repo=localhost/hp-ui&tag=t1"))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(engine_util::busybox_rootfs())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    // The same image in a local registry (pushed with the docker CLI), gone from the engine: the
    // UI pulls it back.
    let pull = format!("{}/hp/ui-pull:1", registry.host());
    let sock = engine.socket_url();
    engine_util::docker_cli(&sock, &["tag", "localhost/hp-ui:t1", &pull]);
    engine_util::docker_cli(&sock, &["push", &pull]);
    engine_util::docker_cli(&sock, &["rmi", &pull]);
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": "wladmin", "role": "admin", "password": "wl-pass-1234"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = d
        .create_token(json!({"name": "wl-token", "owner": "wladmin"}))
        .await;

    run_driver(
        "workloads.mjs",
        &[
            ("HP_URL", d.base.clone()),
            ("HP_USER", "wladmin".into()),
            ("HP_PASS", "wl-pass-1234".into()),
            ("HP_TOKEN", token),
            ("HP_ENGINE", "docker".into()),
            ("HP_IMAGE", "localhost/hp-ui:t1".into()),
            ("HP_PULL", pull.clone()),
        ],
        t0,
    )
    .await;

    // What the UI made, seen through the API.
    let c = d.get_json("/api/v1/containers/docker/uict").await;
    assert_eq!(c["restart"]["name"], "unless-stopped", "{c}");
    assert_eq!(c["limits"]["memory_bytes"], 64 * 1024 * 1024, "{c}");
    assert!(
        c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["source"] == "uivol" && m["target"] == "/data"),
        "{c}"
    );
    let s = d.get_json("/api/v1/stacks/uistack").await;
    assert_eq!(s["engine"], "docker", "{s}");
    // The engine guard removes the containers; the daemon goes first.
    drop(d);
    drop(engine);
}

#[tokio::test]
async fn provisioning_pages_in_chromium() {
    let t0 = Instant::now();
    web_deps();
    for tool in ["/usr/bin/chromium", "/usr/bin/qemu-system-x86_64"] {
        assert!(Path::new(tool).exists(), "{tool} is needed");
    }
    let kit = common::guest_kit();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[vms]\nallowed_paths = [{:?}]\nurl_allow = [\"127.0.0.1\"]\n",
            kit.to_str().unwrap()
        )),
        ..Default::default()
    });
    let _qemus = Qemus(d.data_dir().join("run/vms"));
    // The test guest (stopped: the run boots it), as tests/provisioning.rs makes it.
    let vm = d
        .post(
            "/api/v1/vms",
            json!({"name": "provvm", "memory_mib": 256, "accelerator": "tcg",
                "kernel": kit.join("vmlinuz").to_str().unwrap(),
                "initrd": kit.join("initrd.gz").to_str().unwrap(),
                "cmdline": "console=ttyS0 quiet panic=-1 mode=login",
                "nics": [{"mode": "user"}]}),
        )
        .await;
    assert_eq!(vm.status(), 201);
    let vm: serde_json::Value = vm.json().await.unwrap();
    // The guest's real login (`mode=login`) takes the kit's test-only root password, which
    // the driver stores as the profile's secret.
    let password = std::fs::read_to_string(kit.join("root-password"))
        .expect("the kit's root-password")
        .trim()
        .to_string();
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": "provadmin", "role": "admin", "password": "prov-pass-123"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = d
        .create_token(json!({"name": "prov-token", "owner": "provadmin"}))
        .await;

    run_driver(
        "provisioning.mjs",
        &[
            ("HP_URL", d.base.clone()),
            ("HP_USER", "provadmin".into()),
            ("HP_PASS", "prov-pass-123".into()),
            ("HP_TOKEN", token),
            ("HP_VM", vm["id"].as_str().unwrap().into()),
            ("HP_GUEST_PASSWORD", password.clone()),
        ],
        t0,
    )
    .await;

    // What the UI made, seen through the API (the secret's value is nowhere in an answer).
    let runs = d
        .get("/api/v1/provisioning/runs")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        runs.contains("\"success\"") && !runs.contains(&password),
        "{runs}"
    );
    let p = d.get_json("/api/v1/provisioning/profiles/ui-profile").await;
    assert_eq!(p["recipe"], "test-guest", "{p}");
    // Edited in the UI: the credential it was made with is kept.
    assert_eq!(p["credential"]["secret"], "ui-pw", "{p}");
    // The box pulled from the driver's BoxVault is a template.
    let t = d.get_json("/api/v1/vms/templates/ui-tiny").await;
    assert_eq!(t["name"], "ui-tiny", "{t}");
    let r = d
        .post(
            &format!("/api/v1/vms/{}/stop", vm["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert!(r.status().is_success() || r.status() == 409);
}

#[tokio::test]
async fn network_dhcp_and_host_settings_confirm_in_chromium() {
    let t0 = Instant::now();
    web_deps();
    for tool in ["/usr/bin/chromium", "/usr/sbin/dnsmasq"] {
        assert!(Path::new(tool).exists(), "{tool} is needed");
    }
    // The daemon's namespace ("host"): hpv0 192.0.2.10/24 wired to a client namespace (carrier
    // for the host settings' self-check), and hpc0 whose peer is there too (the bridge's port).
    let host = netns_util::NetNs::new();
    let client = netns_util::NetNs::new();
    for (h, c) in [("hpv0", "hpv1"), ("hpc0", "cl0")] {
        host.ip(&[
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
        host.ip(&["link", "set", h, "up"]);
        client.ip(&["link", "set", c, "up"]);
    }
    host.ip(&["addr", "add", "192.0.2.10/24", "dev", "hpv0"]);
    client.ip(&["addr", "add", "192.0.2.2/24", "dev", "hpv1"]);
    let d = netns_util::daemon_in(&host);
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": "netadmin", "role": "admin", "password": "net-pass-1234"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = d
        .create_token(json!({"name": "net-token", "owner": "netadmin"}))
        .await;

    // The browser runs in the daemon's namespace and uses its loopback listener.
    run_driver_in(
        Some(&host.name),
        "network.mjs",
        &[
            ("HP_URL", format!("http://127.0.0.1:{}", d.port)),
            ("HP_USER", "netadmin".into()),
            ("HP_PASS", "net-pass-1234".into()),
            ("HP_TOKEN", token),
            ("HP_PORT", "hpc0".into()),
            ("HP_HOSTIF", "hpv0".into()),
        ],
        t0,
    )
    .await;

    // What the UI did, seen through the API and in the namespace.
    let s = d.get_json("/api/v1/network/dhcp-servers/hpubr").await;
    assert_eq!(s["hosts"][0]["mac"], "02:00:00:00:77:01", "{s}");
    let h = d.get_json("/api/v1/network/host").await;
    assert_eq!(h["settings"]["address"], "192.0.2.20/24", "{h}");
    assert!(h["pending_change"].is_null(), "{h}");
    let changes = d.get_json("/api/v1/network/changes").await;
    assert_eq!(changes[0]["state"], "confirmed", "{changes}");
    assert!(host.addresses().contains(&"192.0.2.20/24".to_string()));
    // The daemon (and its dnsmasq) go before the namespaces.
    drop(d);
}

/// Stops and destroys the containers of a daemon's lxcpath before the daemon goes (also on
/// panic), as tests/lxc.rs's guard does (scripts/cleanup-tests covers a killed run).
struct Lxcs(PathBuf);

impl Drop for Lxcs {
    fn drop(&mut self) {
        let p = self.0.to_str().unwrap();
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            if !e.path().join("config").is_file() {
                continue;
            }
            let n = e.file_name().to_string_lossy().into_owned();
            for (tool, extra) in [
                ("lxc-unfreeze", None),
                ("lxc-stop", Some("-k")),
                ("lxc-destroy", Some("-s")),
            ] {
                let mut c = Command::new(tool);
                c.args(["-P", p, "-n", &n]);
                if let Some(x) = extra {
                    c.arg(x);
                }
                let _ = c.output();
            }
        }
    }
}

#[tokio::test]
async fn lxc_create_start_console_stop_in_chromium() {
    let t0 = Instant::now();
    web_deps();
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is needed"
    );
    for tool in ["lxc-create", "busybox"] {
        assert!(
            Command::new(tool).arg("--help").output().is_ok(),
            "{tool} is missing (packages lxc, lxc-templates, busybox-static)"
        );
    }
    // LXC's command socket is netns-scoped: the daemon (and the browser) stay in the test's own
    // namespace, as in tests/lxc.rs. The guard (declared after the daemon) drops before it.
    let d = Daemon::start();
    let _lxcs = Lxcs(d.data_dir().join("lxc"));
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": "lxcadmin", "role": "admin", "password": "lxc-pass-1234"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = d
        .create_token(json!({"name": "lxc-token", "owner": "lxcadmin"}))
        .await;
    run_driver(
        "lxc.mjs",
        &[
            ("HP_URL", d.base.clone()),
            ("HP_USER", "lxcadmin".into()),
            ("HP_PASS", "lxc-pass-1234".into()),
            ("HP_TOKEN", token),
        ],
        t0,
    )
    .await;
    let list = d.get_json("/api/v1/lxc").await;
    assert_eq!(list, json!([]), "{list}");
}
