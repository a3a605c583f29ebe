//! The web UI's pages in Debian's Chromium against the real daemon (web/test/pages.mjs drives
//! it with playwright-core): every page passes axe and raises no page error; a dataset snapshot
//! taken through the UI; a VM created in the UI's form boots the tiny real QEMU guest
//! (tests/vms.rs's kit, TCG) and its VNC canvas changes and its serial text appears in the
//! consoles (each a lazily loaded chunk); a used console ticket is refused in the browser; a
//! running job is cancelled from the jobs panel; and the event stream, which the daemon ends
//! every few seconds here (`events.max_stream_secs`), is resumed with Last-Event-ID and still
//! delivers. Screenshots of every page go to `$HOSTPLANE_UI_ARTIFACTS/pages` (default
//! `$CARGO_TARGET_DIR/ui-artifacts/pages`).

mod common;
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

#[tokio::test]
async fn every_page_consoles_snapshots_and_event_resume_in_chromium() {
    let t0 = Instant::now();
    let deps = Command::new(repo().join("scripts/web"))
        .arg("deps")
        .status()
        .expect("scripts/web deps (needs npm)");
    assert!(deps.success(), "scripts/web deps failed");
    for tool in ["/usr/bin/chromium", "/usr/bin/qemu-system-x86_64"] {
        assert!(Path::new(tool).exists(), "{tool} is needed");
    }
    let kit = guest_kit();
    let loops = Loops::new(1, 256 * MIB);
    let devs: Vec<&str> = loops.devs.iter().map(String::as_str).collect();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "{}[vms]\nallowed_paths = [{:?}]\n[events]\nmax_stream_secs = 5\n",
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

    let artifacts = artifacts();
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("web/test/pages.mjs"))
        .current_dir(repo().join("web"))
        .env("HP_URL", &d.base)
        .env("HP_USER", "pageadmin")
        .env("HP_PASS", "page-pass-123")
        .env("HP_TOKEN", &token)
        .env("HP_KIT", &kit)
        .env("HP_ARTIFACTS", &artifacts)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
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
        "web UI pages test: {:.1} s, screenshots in {}",
        t0.elapsed().as_secs_f64(),
        artifacts.display()
    );
    assert!(
        status.success(),
        "the browser driver failed (its output is above)"
    );

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
