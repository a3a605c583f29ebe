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
//! `metrics.sample` events.

mod common;
mod engine_util;
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

/// tests/vms.rs's guest kit (kernel, initrd, disk), built once and cached by scripts/guest-kit.
fn guest_kit() -> PathBuf {
    if let Some(d) = std::env::var_os("HOSTPLANE_GUEST_KIT") {
        return PathBuf::from(d);
    }
    let out = Command::new(repo().join("scripts/guest-kit"))
        .output()
        .expect("scripts/guest-kit");
    assert!(
        out.status.success(),
        "scripts/guest-kit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
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
    let artifacts = artifacts();
    let mut cmd = Command::new("node");
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
    let kit = guest_kit();
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
