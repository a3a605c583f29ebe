//! VMs with the real QEMU in TCG mode, booting the tiny guest `scripts/guest-kit` builds
//! (a Debian kernel + busybox initramfs, cached; `HOSTPLANE_GUEST_KIT=<dir>` points at a
//! prebuilt one). The guest prints `HOSTPLANE-GUEST-READY mode=...` on its serial console,
//! `HOSTPLANE-DISK <name> <sectors>` for every (also hot-plugged) disk, and powers off on the
//! ACPI power button.
//!
//! QEMU outlives the daemon by design, so every test holds a [`Vms`] guard that kills each
//! QEMU found by pidfile in the daemon's run directory, also on panic. Boots are slow under
//! TCG (6-20 s): each test does several things per boot.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Opts};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BOOT: Duration = Duration::from_secs(180);

fn qemu_present() {
    for tool in ["qemu-system-x86_64", "qemu-img"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "{tool} is missing: run scripts/install-qemu (scripts/test does)"
        );
    }
}

/// A daemon for VM tests and the guard that kills its QEMUs.
struct Vms {
    d: Daemon,
    kit: PathBuf,
}

impl Vms {
    fn start() -> Vms {
        Self::start_with("")
    }

    /// With more `[vms]` keys.
    fn start_with(vms_keys: &str) -> Vms {
        qemu_present();
        let kit = common::guest_kit();
        let d = Daemon::start_with(Opts {
            config: Some(format!(
                // The box test downloads from a loopback server.
                "[vms]\nallowed_paths = [{:?}]\nurl_allow = [\"127.0.0.1\"]\n{vms_keys}",
                kit.to_str().unwrap()
            )),
            ..Opts::default()
        });
        Vms { d, kit }
    }

    fn run_dir(&self) -> PathBuf {
        self.d.data_dir().join("run/vms")
    }

    fn images_dir(&self) -> PathBuf {
        self.d.data_dir().join("vms")
    }

    /// A private copy of the bootable guest disk in the images directory.
    fn disk_copy(&self, name: &str) -> PathBuf {
        std::fs::create_dir_all(self.images_dir()).unwrap();
        let p = self.images_dir().join(name);
        std::fs::copy(self.kit.join("disk.img"), &p).unwrap();
        p
    }

    fn qemu_pids(&self) -> Vec<i32> {
        let run = self.run_dir();
        let mut pids = Vec::new();
        for e in std::fs::read_dir(&run).into_iter().flatten().flatten() {
            let Ok(pid) = std::fs::read_to_string(e.path().join("qemu.pid")) else {
                continue;
            };
            let Ok(pid) = pid.trim().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(run.to_str().unwrap()) {
                pids.push(pid);
            }
        }
        pids
    }

    async fn create(&self, body: Value) -> Value {
        let r = self.d.post("/api/v1/vms", body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{v}");
        v
    }

    async fn action(&self, id: &str, what: &str) -> Value {
        let r = self
            .d
            .post(&format!("/api/v1/vms/{id}/{what}"), json!({}))
            .await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{what}: {status} {v}");
        v
    }

    async fn ws(&self, path: &str, bearer: bool) -> Ws {
        let url = format!("ws://127.0.0.1:{}{path}", self.d.port);
        let mut req = url.into_client_request().unwrap();
        if path.contains("/vnc") {
            // What noVNC asks for.
            req.headers_mut()
                .insert("sec-websocket-protocol", "binary".parse().unwrap());
        }
        if bearer {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {}", self.d.token).parse().unwrap(),
            );
        }
        let (ws, resp) = tokio_tungstenite::connect_async(req)
            .await
            .unwrap_or_else(|e| panic!("WebSocket {path}: {e}"));
        Ws {
            ws,
            resp_protocol: resp
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string()),
            text: String::new(),
        }
    }

    /// A serial console session through a fresh single-use ticket.
    async fn serial(&self, id: &str) -> Ws {
        let r = self
            .d
            .post(&format!("/api/v1/vms/{id}/console"), json!({}))
            .await;
        assert_eq!(r.status(), 201);
        let t: Value = r.json().await.unwrap();
        self.ws(t["serial_url"].as_str().unwrap(), false).await
    }

    async fn wait_job(&self, resp: reqwest::Response) -> Value {
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{v}");
        let job = self.d.wait_job(v["href"].as_str().unwrap()).await;
        assert_eq!(job["status"], "success", "{job}");
        job
    }

    async fn status(&self, id: &str) -> Value {
        self.d.get_json(&format!("/api/v1/vms/{id}")).await
    }

    async fn wait_stopped(&self, id: &str) {
        let t0 = Instant::now();
        loop {
            let vm = self.status(id).await;
            if vm["status"] == "stopped" {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "still {vm}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Vms {
    fn drop(&mut self) {
        // Before the daemon and its data dir go: QEMU would outlive both.
        for pid in self.qemu_pids() {
            // SAFETY: a QEMU this test's daemon started (checked by its command line).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

struct Ws {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    resp_protocol: Option<String>,
    /// Console text seen so far.
    text: String,
}

impl Ws {
    /// Reads binary frames until the text contains `needle`; returns everything seen.
    async fn until(&mut self, needle: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        while !self.text.contains(needle) {
            let left = limit.saturating_sub(t0.elapsed());
            assert!(
                !left.is_zero(),
                "no {needle:?} on the console within {limit:?}; saw:\n{}",
                self.text
            );
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    self.text.push_str(&String::from_utf8_lossy(&b))
                }
                Ok(Some(Ok(Message::Text(t)))) => self.text.push_str(&format!("\n[control {t}]\n")),
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!(
                    "console ended ({other:?}) before {needle:?}; saw:\n{}",
                    self.text
                ),
                Err(_) => {}
            }
        }
        self.text.clone()
    }

    async fn first_binary(&mut self) -> Vec<u8> {
        loop {
            match tokio::time::timeout(Duration::from_secs(30), self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => return b.to_vec(),
                Ok(Some(Ok(_))) => {}
                other => panic!("no binary frame: {other:?}"),
            }
        }
    }
}

fn direct_boot(kit: &Path, name: &str, mode: &str) -> Value {
    json!({
        "name": name,
        "memory_mib": 256,
        "accelerator": "tcg",
        "kernel": kit.join("vmlinuz").to_str().unwrap(),
        "initrd": kit.join("initrd.gz").to_str().unwrap(),
        "cmdline": format!("console=ttyS0 quiet panic=-1 mode={mode}"),
    })
}

#[tokio::test]
async fn boot_console_vnc_screenshot_hotplug_restart_and_acpi_shutdown() {
    let mut t = Vms::start();
    let mut def = direct_boot(&t.kit, "tiny", "serve");
    def["disks"] = json!([{"size_bytes": 32 << 20}]);
    def["nics"] = json!([{"mode": "user"}]);
    let vm = t.create(def).await;
    let id = vm["id"].as_str().unwrap().to_string();
    assert_eq!(vm["status"], "stopped");
    assert_eq!(vm["disks"][0]["format"], "qcow2");
    assert!(
        vm["nics"][0]["mac"]
            .as_str()
            .unwrap()
            .starts_with("52:54:00:")
    );

    let started = t.action(&id, "start").await;
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["accelerator_in_use"], "tcg");
    let pid = started["pid"].as_u64().unwrap();

    // Serial console through a ticket: the banner and the first disk.
    let mut serial = t.serial(&id).await;
    serial.until("HOSTPLANE-GUEST-READY mode=serve", BOOT).await;
    serial.until("HOSTPLANE-DISK vda", BOOT).await;

    // Tickets are single-use.
    let r =
        t.d.post(&format!("/api/v1/vms/{id}/console"), json!({}))
            .await;
    let ticket: Value = r.json().await.unwrap();
    let url = ticket["serial_url"].as_str().unwrap().to_string();
    let _first = t.ws(&url, false).await;
    let again = t.d.client.get(t.d.url(&url)).send().await.unwrap();
    assert_eq!(again.status(), 401, "a used ticket is refused");

    // VNC over a WebSocket: the RFB banner comes first, as noVNC expects.
    let mut vnc = t.ws(&format!("/api/v1/vms/{id}/vnc"), true).await;
    assert_eq!(vnc.resp_protocol.as_deref(), Some("binary"));
    let banner = vnc.first_binary().await;
    assert!(banner.starts_with(b"RFB 003.008"), "{banner:?}");
    drop(vnc);

    // Screenshot is a PNG.
    let r = t.d.get(&format!("/api/v1/vms/{id}/screenshot")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().await.unwrap();
    assert!(png.starts_with(&[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']));
    assert_eq!(&png[12..16], b"IHDR");

    // Hot-plug a disk; the guest sees vdb.
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/disks"),
            json!({"size_bytes": 16 << 20}),
        )
        .await;
    let change: Value = r.json().await.unwrap();
    assert_eq!(change["applied"], "live", "{change}");
    assert_eq!(change["vm"]["pending_changes"], false, "{change}");
    serial
        .until("HOSTPLANE-DISK vdb 32768", Duration::from_secs(60))
        .await;
    // A SATA disk cannot be hot-plugged: stored for the next boot, and the API says so.
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/disks"),
            json!({"size_bytes": 16 << 20, "bus": "sata"}),
        )
        .await;
    let change: Value = r.json().await.unwrap();
    assert_eq!(change["applied"], "next_boot", "{change}");
    assert!(change["reason"].as_str().unwrap().contains("SATA"));
    assert_eq!(change["vm"]["pending_changes"], true);

    // Metrics.
    let m = t.d.get_json(&format!("/api/v1/vms/{id}/metrics")).await;
    assert!(m["cpu_seconds"].as_f64().unwrap() > 0.0, "{m}");
    assert!(m["rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(m["vcpu_threads"].as_array().unwrap().len(), 1);
    assert!(
        m["block"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["device"] == "disk0-dev"),
        "{m}"
    );

    // A live snapshot (disks and memory).
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/snapshots"),
            json!({"name": "live1"}),
        )
        .await;
    t.wait_job(r).await;
    let snaps = t.d.get_json(&format!("/api/v1/vms/{id}/snapshots")).await;
    assert_eq!(snaps[0]["name"], "live1", "{snaps}");
    assert!(snaps[0]["vm_state_bytes"].as_u64().unwrap() > 0, "{snaps}");

    // Pause and resume from QMP events.
    assert_eq!(t.action(&id, "pause").await["status"], "paused");
    assert_eq!(t.action(&id, "resume").await["status"], "running");

    // Kill the daemon: the guest keeps running; a new daemon manages it again.
    drop(serial);
    t.d.kill9();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU died with the daemon"
    );
    t.d.spawn();
    let t0 = Instant::now();
    loop {
        let vm = t.status(&id).await;
        if vm["status"] == "running" {
            assert_eq!(vm["pid"].as_u64(), Some(pid), "{vm}");
            assert_eq!(vm["pending_changes"], true, "{vm}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "not re-attached: {vm}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The console works again: type into the guest's shell, read its answer.
    let mut serial = t.serial(&id).await;
    serial
        .ws
        .send(Message::Binary(b"echo hp-$((6*7))\n".to_vec().into()))
        .await
        .unwrap();
    serial.until("hp-42", Duration::from_secs(30)).await;

    // ACPI shutdown: the guest powers off by itself; the stream reports it.
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/shutdown"),
            json!({"timeout_secs": 120}),
        )
        .await;
    let job = t.wait_job(r).await;
    assert_eq!(job["result"]["clean"], true, "{job}");
    serial
        .until("HOSTPLANE-POWEROFF", Duration::from_secs(30))
        .await;
    t.wait_stopped(&id).await;
    assert!(t.qemu_pids().is_empty());

    // Status changes went out on the event stream with the VM's href.
    let href = format!("/api/v1/vms/{id}");
    read_events(
        &t.d,
        &href,
        &[
            "\"status\":\"running\"",
            "\"status\":\"paused\"",
            "\"status\":\"shutting_down\"",
            "\"status\":\"stopped\"",
        ],
    )
    .await;

    // Delete with its disks.
    let r =
        t.d.send("DELETE", &href, Some(&t.d.token.clone()), None)
            .await;
    assert_eq!(r.status(), 204);
    assert!(!t.images_dir().join(&id).exists());
}

/// Replays the event stream from the start until `resource.updated` events for `href` have
/// shown every one of `needles`.
async fn read_events(d: &Daemon, href: &str, needles: &[&str]) -> String {
    let mut r = d
        .get("/api/v1/events?type=resource.updated&last_event_id=0")
        .await;
    let mut text = String::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        match tokio::time::timeout(Duration::from_secs(5), r.chunk()).await {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            _ => break,
        }
        let seen = |n: &str| {
            text.lines()
                .any(|l| l.contains(&format!("\"href\":\"{href}\"")) && l.contains(n))
        };
        if needles.iter().all(|n| seen(n)) {
            return text;
        }
    }
    panic!("no events for {href} with all of {needles:?}: {text}");
}

fn zstd_decode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(data)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

async fn boots_from_disk(t: &Vms, id: &str) {
    t.action(id, "start").await;
    let mut serial = t.serial(id).await;
    serial.until("HOSTPLANE-GUEST-READY mode=disk", BOOT).await;
    t.action(id, "stop").await;
    t.wait_stopped(id).await;
}

#[tokio::test]
async fn export_import_roundtrip_and_full_and_thin_clones_boot() {
    let t = Vms::start();
    let original = std::fs::read(t.kit.join("disk.img")).unwrap();
    let img = t.disk_copy("src.img");
    let vm = t
        .create(
            json!({"name": "src", "memory_mib": 256, "accelerator": "tcg",
            "disks": [{"image": img.to_str().unwrap(), "format": "raw"}]}),
        )
        .await;
    let id = vm["id"].as_str().unwrap().to_string();
    assert_eq!(vm["disks"][0]["owned"], false);

    // Export disk 0 as zstd-compressed raw: it decompresses to the very bytes.
    let r =
        t.d.get(&format!("/api/v1/vms/{id}/disks/0.raw?compress=zstd"))
            .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zstd");
    let compressed = r.bytes().await.unwrap().to_vec();
    assert!(compressed.len() < original.len());
    assert!(zstd_decode(&compressed) == original, "the export differs");

    // Import it back as a new disk of another VM (a job), export that: byte-identical.
    let other = t
        .create(json!({"name": "other", "memory_mib": 64, "accelerator": "tcg"}))
        .await;
    let oid = other["id"].as_str().unwrap().to_string();
    let r =
        t.d.client
            .post(t.d.url(&format!("/api/v1/vms/{oid}/disks?raw&compress=zstd")))
            .bearer_auth(&t.d.token)
            .header("content-type", "application/octet-stream")
            .body(compressed)
            .send()
            .await
            .unwrap();
    let job = t.wait_job(r).await;
    assert_eq!(job["progress"], 100);
    let n = job["result"]["disk"]["index"].as_u64().unwrap();
    let r = t.d.get(&format!("/api/v1/vms/{oid}/disks/{n}.raw")).await;
    assert_eq!(r.status(), 200);
    let back = r.bytes().await.unwrap();
    assert!(
        back.as_ref() == original.as_slice(),
        "import + export is not byte-identical"
    );
    // qcow2 and vhd exports are real images of those formats.
    let r = t.d.get(&format!("/api/v1/vms/{oid}/disks/{n}.qcow2")).await;
    assert!(r.bytes().await.unwrap().starts_with(b"QFI\xfb"));
    let r = t.d.get(&format!("/api/v1/vms/{oid}/disks/{n}.vhd")).await;
    assert_eq!(r.status(), 200);
    let vhd = r.bytes().await.unwrap();
    // A VHD ends with its 512-byte footer ("conectix" cookie); qemu-img reads the same bytes
    // back (the virtual size may be rounded up to the VHD geometry: the rest is zeros).
    assert!(vhd.len() > 512, "{} bytes", vhd.len());
    assert!(
        vhd[vhd.len() - 512..].starts_with(b"conectix"),
        "no VHD footer"
    );
    let work = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    std::fs::write(work.path().join("d.vhd"), &vhd).unwrap();
    let raw = work.path().join("d.raw");
    let out = Command::new("qemu-img")
        .args(["convert", "-f", "vpc", "-O", "raw"])
        .arg(work.path().join("d.vhd"))
        .arg(&raw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = std::fs::read(&raw).unwrap();
    assert!(
        back.len() >= original.len(),
        "{} < {}",
        back.len(),
        original.len()
    );
    assert!(
        back[..original.len()] == original[..] && back[original.len()..].iter().all(|b| *b == 0),
        "the .vhd export does not hold the disk's content"
    );

    // A whole VM as .tar.zst, imported as a new VM.
    let r = t.d.get(&format!("/api/v1/vms/{oid}.tar.zst")).await;
    assert_eq!(r.status(), 200);
    let archive = r.bytes().await.unwrap();
    let r =
        t.d.client
            .post(t.d.url("/api/v1/vms?import&name=imported"))
            .bearer_auth(&t.d.token)
            .header("content-type", "application/zstd")
            .body(archive)
            .send()
            .await
            .unwrap();
    let job = t.wait_job(r).await;
    assert_eq!(job["result"]["name"], "imported");
    assert_eq!(job["result"]["disks"].as_array().unwrap().len(), 1);

    // The source must be stopped to clone; both clones boot from their disk.
    let full =
        t.d.post(
            &format!("/api/v1/vms/{id}/clone"),
            json!({"name": "full", "strategy": "full"}),
        )
        .await;
    let full = t.wait_job(full).await["result"].clone();
    let thin =
        t.d.post(
            &format!("/api/v1/vms/{id}/clone"),
            json!({"name": "thin", "strategy": "thin"}),
        )
        .await;
    let r = thin.status();
    let body: Value = thin.json().await.unwrap();
    assert_eq!(r, 409, "thin needs owned disks: {body}");
    assert_eq!(body["code"], "thin_clone_unsupported");
    // Full clone's disks are owned: thin-clone that one.
    let fid = full["id"].as_str().unwrap().to_string();
    let thin =
        t.d.post(
            &format!("/api/v1/vms/{fid}/clone"),
            json!({"name": "thin", "strategy": "thin"}),
        )
        .await;
    let thin = t.wait_job(thin).await["result"].clone();
    assert!(
        thin["disks"][0]["backing"]
            .as_str()
            .unwrap()
            .contains("/bases/"),
        "{thin}"
    );
    // Offline snapshots of the (qcow2) thin clone: create, list, revert, delete.
    let tid = thin["id"].as_str().unwrap().to_string();
    let r =
        t.d.post(
            &format!("/api/v1/vms/{tid}/snapshots"),
            json!({"name": "s1"}),
        )
        .await;
    t.wait_job(r).await;
    let snaps = t.d.get_json(&format!("/api/v1/vms/{tid}/snapshots")).await;
    assert_eq!(snaps[0]["name"], "s1", "{snaps}");
    assert_eq!(snaps[0]["vm_state_bytes"], 0);
    // Change the disk after the snapshot (offline, with qemu-io), then revert: the disk's
    // content is the snapshot's again.
    let disk = t.d.get_json(&format!("/api/v1/vms/{tid}")).await["disks"][0].clone();
    let disk_path = disk["path"].as_str().expect("the disk's path").to_string();
    let disk_index = disk["index"].as_u64().unwrap();
    let export_raw = |vm: String| {
        let d = &t.d;
        async move {
            let r = d
                .get(&format!("/api/v1/vms/{vm}/disks/{disk_index}.raw"))
                .await;
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().to_vec()
        }
    };
    let at_snapshot = export_raw(tid.clone()).await;
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", "write -P 0xa5 0 65536", &disk_path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed = export_raw(tid.clone()).await;
    assert!(changed[..65536].iter().all(|b| *b == 0xa5), "qemu-io wrote");
    assert!(changed != at_snapshot);
    let r =
        t.d.post(&format!("/api/v1/vms/{tid}/snapshots/s1/revert"), json!({}))
            .await;
    let job = t.wait_job(r).await;
    assert_eq!(job["status"], "success", "{job}");
    assert!(
        export_raw(tid.clone()).await == at_snapshot,
        "revert did not restore the snapshot's content"
    );
    let r =
        t.d.send(
            "DELETE",
            &format!("/api/v1/vms/{tid}/snapshots/s1"),
            Some(&t.d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    // Raw disks cannot be snapshotted.
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/snapshots"),
            json!({"name": "s1"}),
        )
        .await;
    common::assert_problem(r, 409, "snapshot_unsupported").await;
    boots_from_disk(&t, &fid).await;
    boots_from_disk(&t, thin["id"].as_str().unwrap()).await;
    // The thin clone's source also boots from its new overlay.
    let src = t.status(&fid).await;
    assert_eq!(src["disks"][0]["backing"], thin["disks"][0]["backing"]);
}

/// Serves one file at `/box` on 127.0.0.1 (a throwaway HTTP/1.1 responder).
async fn serve_once(data: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let data = data.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    data.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&data).await;
            });
        }
    });
    format!("http://{addr}/test.box")
}

/// A Vagrant box (libvirt provider) of the guest disk: tar.gz with metadata.json and box.img.
fn make_box(t: &Vms) -> Vec<u8> {
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let img = dir.path().join("box.img");
    let out = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(t.kit.join("disk.img"))
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = br#"{"provider": "libvirt", "format": "qcow2", "virtual_size": 1}"#;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(meta.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "metadata.json", &meta[..]).unwrap();
    tar.append_path_with_name(&img, "box.img").unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn vagrant_box_from_url_and_upload_becomes_a_bootable_template() {
    let t = Vms::start();
    let boxed = make_box(&t);
    let url = serve_once(boxed.clone()).await;
    let r =
        t.d.post(
            "/api/v1/vms/templates",
            json!({"name": "tiny-box", "url": url}),
        )
        .await;
    let job = t.wait_job(r).await;
    assert_eq!(job["result"]["format"], "qcow2");
    assert_eq!(job["result"]["metadata"]["provider"], "libvirt");

    // The same box uploaded.
    let r =
        t.d.client
            .post(t.d.url("/api/v1/vms/templates?name=uploaded"))
            .bearer_auth(&t.d.token)
            .header("content-type", "application/octet-stream")
            .body(boxed)
            .send()
            .await
            .unwrap();
    t.wait_job(r).await;
    let list: Value = t.d.get_json("/api/v1/vms/templates").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // A VM from the template (thin), booted from the box's disk.
    let vm = t
        .create(
            json!({"name": "from-box", "memory_mib": 256, "accelerator": "tcg",
            "template": "tiny-box", "clone": "thin"}),
        )
        .await;
    assert_eq!(vm["template"], "tiny-box");
    let id = vm["id"].as_str().unwrap().to_string();
    boots_from_disk(&t, &id).await;
    // In use by a thin disk: the template stays.
    let r =
        t.d.send(
            "DELETE",
            "/api/v1/vms/templates/tiny-box",
            Some(&t.d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 409);
    let r =
        t.d.send(
            "DELETE",
            "/api/v1/vms/templates/uploaded",
            Some(&t.d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn definitions_are_validated_and_limits_enforced() {
    let t = Vms::start();
    let cases = [
        (json!({"name": "x", "vcpus": 100000}), "vcpus"),
        (json!({"name": "x", "memory_mib": 1u64 << 40}), "memory_mib"),
        (
            json!({"name": "x", "disks": [{"size_bytes": 1u64 << 60}]}),
            "disks[0].size_bytes",
        ),
        (json!({"name": "x", "disks": [{}]}), "disks[0]"),
        (
            json!({"name": "x", "disks": [{"image": "/etc/passwd"}]}),
            "disks[0].image",
        ),
        (json!({"name": "x", "kernel": "/etc/hostname"}), "kernel"),
        (json!({"name": "x", "cmdline": "quiet"}), "kernel"),
        (
            json!({"name": "x", "nics": [{"mac": "01:00:5e:00:00:01"}]}),
            "nics[0].mac",
        ),
        (
            json!({"name": "x", "nics": [{"mode": "bridge"}]}),
            "nics[0].bridge",
        ),
        (json!({"name": "x", "boot": ["disk", "disk"]}), "boot"),
        (json!({"name": "-x"}), "name"),
        (json!({"name": "templates"}), "name"),
        (json!({"name": "x", "template": "nope"}), "template"),
    ];
    for (body, field) in cases {
        let r = t.d.post("/api/v1/vms", body.clone()).await;
        let v = common::assert_problem(r, 422, v_code(&body)).await;
        assert_eq!(v["errors"][0]["field"], field, "{body}: {v}");
    }
    let r =
        t.d.post("/api/v1/vms", json!({"name": "x", "bogus": 1}))
            .await;
    assert_eq!(r.status(), 422);

    let vm = t.create(json!({"name": "ok", "memory_mib": 64})).await;
    let id = vm["id"].as_str().unwrap();
    let r = t.d.post("/api/v1/vms", json!({"name": "ok"})).await;
    common::assert_problem(r, 409, "vm_exists").await;
    // By name works as well as by id.
    assert_eq!(t.status("ok").await["id"], id);
    // Not running: consoles and QMP actions are 409.
    let r =
        t.d.post(&format!("/api/v1/vms/{id}/pause"), json!({}))
            .await;
    common::assert_problem(r, 409, "vm_not_running").await;
    let r = t.d.get(&format!("/api/v1/vms/{id}/screenshot")).await;
    common::assert_problem(r, 409, "vm_not_running").await;
    let r = t.d.get("/api/v1/vms/nope").await;
    common::assert_problem(r, 404, "not_found").await;
    // A ticket is bound to its VM and to the console paths.
    let r =
        t.d.post(&format!("/api/v1/vms/{id}/console"), json!({}))
            .await;
    let ticket: Value = r.json().await.unwrap();
    let r =
        t.d.client
            .get(t.d.url(&format!(
                "/api/v1/vms/{id}?ticket={}",
                ticket["ticket"].as_str().unwrap()
            )))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    // cloud-init: a NoCloud seed ISO (volume cidata) attached as a CD-ROM.
    let ci = t
        .create(json!({"name": "ci", "memory_mib": 64,
            "cloud_init": {"user_data": "#cloud-config\nhostname: ci\n"}}))
        .await;
    assert_eq!(ci["cdroms"][0]["cloud_init"], true, "{ci}");
    let iso = std::fs::read(ci["cdroms"][0]["iso"].as_str().unwrap()).unwrap();
    assert_eq!(&iso[32769..32774], b"CD001", "ISO 9660");
    assert!(iso[32808..32840].starts_with(b"cidata"), "volume id");
    assert!(iso.windows(13).any(|w| w == b"#cloud-config"));

    // Patch: limits checked there too.
    let r =
        t.d.send(
            "PATCH",
            &format!("/api/v1/vms/{id}"),
            Some(&t.d.token.clone()),
            Some(json!({"vcpus": 100000})),
        )
        .await;
    common::assert_problem(r, 422, "invalid_vcpus").await;
    let r =
        t.d.send(
            "PATCH",
            &format!("/api/v1/vms/{id}"),
            Some(&t.d.token.clone()),
            Some(json!({"autostart": true, "memory_mib": 128})),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["autostart"], true);
    assert_eq!(v["memory_mib"], 128);

    // Autostart: a daemon start starts it (no disk: SeaBIOS finds nothing to boot, QEMU runs).
    let mut t = t;
    t.d.kill9();
    t.d.spawn();
    let t0 = Instant::now();
    while t.status(id).await["status"] != "running" {
        assert!(t0.elapsed() < Duration::from_secs(30), "not autostarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(t.qemu_pids().len(), 1);
    let r =
        t.d.send(
            "DELETE",
            &format!("/api/v1/vms/{id}"),
            Some(&t.d.token.clone()),
            None,
        )
        .await;
    common::assert_problem(r, 409, "vm_running").await;
    t.action(id, "stop").await;
    t.wait_stopped(id).await;
    // Deleted, keeping its disks (it has none here; the cloud-init VM's seed goes with it).
    let r =
        t.d.send(
            "DELETE",
            &format!("/api/v1/vms/{id}?keep_disks=true"),
            Some(&t.d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = t.d.get(&format!("/api/v1/vms/{id}")).await;
    assert_eq!(r.status(), 404);
}

/// Port forwards of user-mode NICs: validated (422 with stable codes), shown in the answer,
/// rendered as QEMU `hostfwd` rules bound on 127.0.0.1 only, and a host port something else
/// holds is a 409 before QEMU starts. No guest boots (no disk: QEMU idles in SeaBIOS).
#[tokio::test]
async fn port_forwards_are_validated_bound_on_loopback_and_a_taken_port_is_409() {
    let t = Vms::start();
    let fwd = |h: u64, g: u64| json!({"host_port": h, "guest_port": g});
    let cases = [
        (
            json!([{"mode": "user", "port_forwards": [fwd(0, 22)]}]),
            "invalid_port_forward",
            "nics[0].port_forwards[0]",
        ),
        (
            json!([{"mode": "user", "port_forwards": [fwd(22, 22)]}]),
            "invalid_port_forward",
            "nics[0].port_forwards[0]",
        ),
        (
            json!([{"mode": "user", "port_forwards": [fwd(2222, 0)]}]),
            "invalid_port_forward",
            "nics[0].port_forwards[0]",
        ),
        (
            json!([{"mode": "bridge", "bridge": "br0", "port_forwards": [fwd(2222, 22)]}]),
            "invalid_port_forward",
            "nics[0].port_forwards",
        ),
        (
            json!([{"port_forwards": [fwd(2222, 22), fwd(2222, 80)]}]),
            "duplicate_port_forward",
            "nics[0].port_forwards",
        ),
        (
            json!([{"port_forwards": [fwd(2222, 22)]}, {"port_forwards": [fwd(2222, 80)]}]),
            "duplicate_port_forward",
            "nics",
        ),
    ];
    for (nics, code, field) in cases {
        let body = json!({"name": "fw", "memory_mib": 64, "nics": nics});
        let r = t.d.post("/api/v1/vms", body.clone()).await;
        let v = common::assert_problem(r, 422, code).await;
        assert_eq!(v["errors"][0]["field"], field, "{body}: {v}");
    }
    // Out of range for a port: refused by the schema (no code of ours to assert).
    let r =
        t.d.post(
            "/api/v1/vms",
            json!({"name": "fw", "nics": [{"port_forwards": [fwd(70000, 22)]}]}),
        )
        .await;
    assert!(r.status().is_client_error(), "{}", r.status());

    // The same host port for tcp and udp is fine; the answer shows the forwards.
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let port = free();
    let vm = t
        .create(
            json!({"name": "fw", "memory_mib": 64, "nics": [{"port_forwards": [
            {"protocol": "tcp", "host_port": port, "guest_port": 22},
            {"protocol": "udp", "host_port": port, "guest_port": 53}]}]}),
        )
        .await;
    let id = vm["id"].as_str().unwrap().to_string();
    assert_eq!(
        vm["nics"][0]["port_forwards"],
        json!([{"protocol": "tcp", "host_port": port, "guest_port": 22},
               {"protocol": "udp", "host_port": port, "guest_port": 53}]),
        "{vm}"
    );

    // Taken by another program: 409 before QEMU starts.
    let holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let r =
        t.d.post(&format!("/api/v1/vms/{id}/start"), json!({}))
            .await;
    let v = common::assert_problem(r, 409, "host_port_in_use").await;
    assert!(
        v["detail"].as_str().unwrap().contains(&port.to_string()),
        "{v}"
    );
    assert_eq!(t.status(&id).await["status"], "stopped");
    drop(holder);

    // Free again: QEMU listens on 127.0.0.1:port (and on no other address).
    t.action(&id, "start").await;
    let hex = format!(":{port:04X} ");
    let listeners: Vec<String> = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(hex.trim()))
        })
        .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
        .map(str::to_string)
        .collect();
    assert_eq!(listeners.len(), 1, "{listeners:?}");
    assert!(
        listeners[0]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .starts_with("0100007F:"),
        "bound on loopback only: {listeners:?}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    // Hot-plugged NIC with a forward: live through `netdev_add` (QEMU listens at once); a
    // port taken is 409, a port the VM already forwards 422.
    let p2 = free();
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/nics"),
            json!({"port_forwards": [fwd(p2 as u64, 80)]}),
        )
        .await;
    let ch: Value = r.json().await.unwrap();
    assert_eq!(ch["applied"], "live", "{ch}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", p2)).is_ok());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p3 = taken.local_addr().unwrap().port();
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/nics"),
            json!({"port_forwards": [fwd(p3 as u64, 80)]}),
        )
        .await;
    common::assert_problem(r, 409, "host_port_in_use").await;
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/nics"),
            json!({"port_forwards": [fwd(port as u64, 8080)]}),
        )
        .await;
    common::assert_problem(r, 422, "duplicate_port_forward").await;
    drop(taken);
    // A second VM with the same host port: its start is refused while the first runs.
    let other = t
        .create(json!({"name": "fw2", "memory_mib": 64, "nics": [{"port_forwards": [fwd(port as u64, 22)]}]}))
        .await;
    let r =
        t.d.post(
            &format!("/api/v1/vms/{}/start", other["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    common::assert_problem(r, 409, "host_port_in_use").await;
    t.action(&id, "stop").await;
    t.wait_stopped(&id).await;
}

fn v_code(body: &Value) -> &'static str {
    let s = body.to_string();
    if s.contains("vcpus") {
        "invalid_vcpus"
    } else if s.contains("memory_mib") {
        "invalid_memory"
    } else if s.contains("size_bytes") {
        "invalid_size"
    } else if s.contains("\"disks\":[{}]") {
        "invalid_disk"
    } else if s.contains("/etc/passwd") || s.contains("/etc/hostname") {
        "path_not_allowed"
    } else if s.contains("cmdline") {
        "invalid_kernel"
    } else if s.contains("mac") {
        "invalid_mac"
    } else if s.contains("bridge") {
        "invalid_bridge"
    } else if s.contains("boot") {
        "invalid_boot"
    } else if s.contains("template\":\"nope") {
        "unknown_template"
    } else {
        "invalid_name"
    }
}

/// Devices of a stopped VM: disks (create, get one, resize, delete, the max_disk_bytes limit),
/// NICs and CD-ROMs added and removed; all `next_boot` and visible in the definition.
#[tokio::test]
async fn devices_of_a_stopped_vm_are_added_resized_and_removed() {
    let t = Vms::start_with("max_disk_bytes = 67108864\n");
    let vm = t.create(json!({"name": "devs", "memory_mib": 64})).await;
    let id = vm["id"].as_str().unwrap().to_string();
    let tok = t.d.token.clone();

    // A new 16 MiB qcow2 disk; GET of that one disk.
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/disks"),
            json!({"size_bytes": 16u64 << 20}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let ch: Value = r.json().await.unwrap();
    assert_eq!(ch["applied"], "next_boot", "{ch}");
    let disks = ch["vm"]["disks"].as_array().unwrap().clone();
    assert_eq!(disks.len(), 1, "{ch}");
    let n = disks[0]["index"].as_u64().unwrap();
    let path = disks[0]["path"].as_str().unwrap().to_string();
    let one = t.d.get_json(&format!("/api/v1/vms/{id}/disks/{n}")).await;
    assert_eq!(one["index"], n);
    assert_eq!(one["path"], path.as_str());
    assert_eq!(one["size_bytes"], 16u64 << 20, "{one}");
    let virtual_size = |p: &str| {
        let out = Command::new("qemu-img")
            .args(["info", "--output=json", p])
            .output()
            .unwrap();
        assert!(out.status.success());
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["virtual-size"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(virtual_size(&path), 16 << 20);
    common::assert_problem(
        t.d.get(&format!("/api/v1/vms/{id}/disks/99")).await,
        404,
        "not_found",
    )
    .await;

    // max_disk_bytes (64 MiB): on create and on resize; disks only grow.
    common::assert_problem(
        t.d.post(
            &format!("/api/v1/vms/{id}/disks"),
            json!({"size_bytes": 128u64 << 20}),
        )
        .await,
        409,
        "exceeds_host",
    )
    .await;
    let resize_path = format!("/api/v1/vms/{id}/disks/{n}/resize");
    let resize = |size: u64| t.d.post(&resize_path, json!({"size_bytes": size}));
    common::assert_problem(resize(128 << 20).await, 409, "exceeds_host").await;
    common::assert_problem(resize(8 << 20).await, 422, "invalid_size").await;
    let r = resize(32 << 20).await;
    assert_eq!(r.status(), 200);
    let ch: Value = r.json().await.unwrap();
    assert_eq!(ch["vm"]["disks"][0]["size_bytes"], 32u64 << 20, "{ch}");
    assert_eq!(virtual_size(&path), 32 << 20, "the image grew");

    // NICs: add two (one with a MAC), remove the first.
    let mut nic_index = Vec::new();
    for body in [
        json!({"mode": "user"}),
        json!({"mode": "user", "mac": "52:54:00:12:34:56"}),
    ] {
        let r = t.d.post(&format!("/api/v1/vms/{id}/nics"), body).await;
        assert_eq!(r.status(), 200);
        let ch: Value = r.json().await.unwrap();
        assert_eq!(ch["applied"], "next_boot", "{ch}");
        let nics = ch["vm"]["nics"].as_array().unwrap();
        nic_index.push(nics.last().unwrap()["index"].as_u64().unwrap());
    }
    let v = t.status(&id).await;
    assert_eq!(v["nics"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["nics"][1]["mac"], "52:54:00:12:34:56", "{v}");
    let r =
        t.d.send(
            "DELETE",
            &format!("/api/v1/vms/{id}/nics/{}", nic_index[0]),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let v = t.status(&id).await;
    let nics = v["nics"].as_array().unwrap();
    assert_eq!(nics.len(), 1, "{v}");
    assert_eq!(nics[0]["mac"], "52:54:00:12:34:56", "{v}");
    common::assert_problem(
        t.d.send(
            "DELETE",
            &format!("/api/v1/vms/{id}/nics/{}", nic_index[0]),
            Some(&tok),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // CD-ROMs: an empty tray and an ISO in the images directory; remove the ISO drive.
    std::fs::create_dir_all(t.images_dir()).unwrap();
    let iso = t.images_dir().join("media.iso");
    std::fs::write(&iso, vec![0u8; 64 << 10]).unwrap();
    let r =
        t.d.post(&format!("/api/v1/vms/{id}/cdroms"), json!({}))
            .await;
    assert_eq!(r.status(), 200);
    let r =
        t.d.post(
            &format!("/api/v1/vms/{id}/cdroms"),
            json!({"iso": iso.to_str().unwrap()}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let ch: Value = r.json().await.unwrap();
    let cds = ch["vm"]["cdroms"].as_array().unwrap().clone();
    assert_eq!(cds.len(), 2, "{ch}");
    assert!(cds[0]["iso"].is_null() || cds[0]["iso"] == "", "{ch}");
    assert_eq!(cds[1]["iso"], iso.to_str().unwrap(), "{ch}");
    let cd = cds[1]["index"].as_u64().unwrap();
    let r =
        t.d.send(
            "DELETE",
            &format!("/api/v1/vms/{id}/cdroms/{cd}"),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let v = t.status(&id).await;
    assert_eq!(v["cdroms"].as_array().unwrap().len(), 1, "{v}");
    assert!(iso.exists(), "removing the drive leaves the ISO file alone");

    // Delete the disk with its file: gone from the definition and (owned) from the images
    // directory.
    let r =
        t.d.send(
            "DELETE",
            &format!("/api/v1/vms/{id}/disks/{n}?delete_file=true"),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let v = t.status(&id).await;
    assert!(v["disks"].as_array().unwrap().is_empty(), "{v}");
    common::assert_problem(
        t.d.get(&format!("/api/v1/vms/{id}/disks/{n}")).await,
        404,
        "not_found",
    )
    .await;
    assert!(
        !Path::new(&path).exists(),
        "delete_file=true deletes the owned disk file"
    );
}

/// vms.max_running = 1: a second VM does not start while one runs; reset keeps it running in
/// the same QEMU process. (Diskless guests: the firmware alone keeps QEMU running.)
#[tokio::test]
async fn max_running_is_enforced_and_reset_keeps_the_process() {
    let t = Vms::start_with("max_running = 1\n");
    let a = t
        .create(json!({"name": "a", "memory_mib": 64, "accelerator": "tcg"}))
        .await;
    let b = t
        .create(json!({"name": "b", "memory_mib": 64, "accelerator": "tcg"}))
        .await;
    let (a, b) = (
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    );
    let r = t.d.post(&format!("/api/v1/vms/{a}/start"), json!({})).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let pids = t.qemu_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    common::assert_problem(
        t.d.post(&format!("/api/v1/vms/{b}/start"), json!({})).await,
        409,
        "too_many_running",
    )
    .await;
    assert_eq!(t.qemu_pids(), pids, "no second QEMU");

    let r = t.d.post(&format!("/api/v1/vms/{a}/reset"), json!({})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(t.qemu_pids(), pids, "reset is not a restart");
    // Reset of a stopped VM: 409.
    common::assert_problem(
        t.d.post(&format!("/api/v1/vms/{b}/reset"), json!({})).await,
        409,
        "vm_not_running",
    )
    .await;

    // Once a stops, b may start.
    let r = t.d.post(&format!("/api/v1/vms/{a}/stop"), json!({})).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while t.status(&a).await["status"] != "stopped" {
        assert!(std::time::Instant::now() < deadline, "a did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = t.d.post(&format!("/api/v1/vms/{b}/start"), json!({})).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}
