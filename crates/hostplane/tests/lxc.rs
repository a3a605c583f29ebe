//! LXC (`/api/v1/lxc`) against the real `lxc-*` tools: a busybox container is created,
//! started, attached to over the console WebSocket (a command's output read back), frozen and
//! thawed, snapshotted and restored (a file written after the snapshot is gone), cloned and
//! destroyed; a rootfs on a btrfs pool dataset blocks the pool's destruction (409 `in_use`),
//! and a backup into a dataset comes back as a new container after the original is gone; a
//! container made by the `local` template from a busybox rootfs `.tar.xz` in a dataset starts
//! and answers on its console. Bad names are 422 and change nothing. A running container is
//! sampled by the metrics collector (`kind="lxc"` series in `query_range`).
//!
//! The daemon runs in the test's network namespace (the host's), and so does the [`Lxcs`]
//! guard: LXC's command socket is netns-scoped, and an `lxc-destroy` from another netns would
//! delete a running container's rootfs. The guard kills and destroys every container of the
//! daemon's lxcpath before the daemon goes (also on panic); scripts/cleanup-tests does the same
//! for a killed run.

mod common;
mod storage_util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Daemon, Opts, assert_problem};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use storage_util::{Loops, job_done, job_ok};
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1 << 20;

fn tools_present() {
    for (tool, arg) in [
        ("lxc-create", "--version"),
        ("rsync", "--version"),
        ("zstd", "--version"),
        ("xz", "--version"),
        ("busybox", "--help"),
    ] {
        let ok = Command::new(tool).arg(arg).output().is_ok();
        assert!(
            ok,
            "{tool} is missing: install lxc, lxc-templates, busybox-static, rsync, xz-utils and \
             zstd (scripts/test does)"
        );
    }
}

/// The daemon, and the containers of its lxcpath stopped and destroyed before it goes (the
/// daemon's guard kills processes naming its data dir, the LXC monitors, which would leave
/// the containers' init processes running).
struct Lxcs {
    path: PathBuf,
}

impl Lxcs {
    fn names(&self) -> Vec<String> {
        std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("config").is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect()
    }
}

impl Drop for Lxcs {
    fn drop(&mut self) {
        for n in self.names() {
            let p = self.path.to_str().unwrap();
            let _ = Command::new("lxc-unfreeze")
                .args(["-P", p, "-n", &n])
                .output();
            let _ = Command::new("lxc-stop")
                .args(["-P", p, "-n", &n, "-k"])
                .output();
            let _ = Command::new("lxc-destroy")
                .args(["-P", p, "-n", &n, "-s"])
                .output();
        }
    }
}

/// The guard first, then the daemon (fields drop in order).
struct T {
    _lxcs: Lxcs,
    d: Daemon,
}

fn start(config: String, extra_args: Vec<String>) -> T {
    let d = Daemon::start_with(Opts {
        config: Some(config),
        extra_args,
        ..Default::default()
    });
    T {
        _lxcs: Lxcs {
            path: d.data_dir().join("lxc"),
        },
        d,
    }
}

async fn send(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> reqwest::Response {
    d.send(method, path, Some(&d.token), body).await
}

async fn ok_json(r: reqwest::Response, status: u16) -> Value {
    let s = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(s, status, "{v}");
    v
}

async fn act(d: &Daemon, name: &str, action: &str) -> Value {
    ok_json(
        d.post(&format!("/api/v1/lxc/{name}/{action}"), json!({}))
            .await,
        200,
    )
    .await
}

/// Creates a busybox container through the API (a job) and returns it.
async fn create(d: &Daemon, body: Value) -> Value {
    let j = job_ok(d, d.post("/api/v1/lxc", body).await).await;
    j["result"].clone()
}

/// An attach console session: sends `input`, reads until `want` shows up, then sends `exit` and
/// waits for the `exit` control message.
async fn console_roundtrip(d: &Daemon, name: &str, input: &str, want: &str) -> (String, Value) {
    let r = d
        .post(&format!("/api/v1/lxc/{name}/console"), json!({}))
        .await;
    let t = ok_json(r, 201).await;
    let url = format!(
        "ws://127.0.0.1:{}{}&cols=100&rows=30",
        d.port,
        t["url"].as_str().unwrap()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "resize", "cols": 120, "rows": 40})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut out = String::new();
    let mut exit = Value::Null;
    let mut sent_input = false;
    let mut sent_exit = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("console: no exit in 30 s; output so far: {out:?}"));
        match msg {
            Some(Ok(Message::Binary(b))) => {
                let text = String::from_utf8_lossy(&b);
                // busybox ash asks the terminal where the cursor is; answer as a terminal does.
                if text.contains("\x1b[6n") {
                    ws.send(Message::Binary(b"\x1b[1;1R".to_vec().into()))
                        .await
                        .unwrap();
                }
                out.push_str(&text);
            }
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "exit" {
                    exit = v;
                }
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("console: {e}"),
        }
        // Input typed before the shell is up may be flushed by it: wait for its prompt.
        if !sent_input && out.contains("# ") {
            ws.send(Message::Binary(input.as_bytes().to_vec().into()))
                .await
                .unwrap();
            sent_input = true;
        }
        if !sent_exit && out.contains(want) {
            ws.send(Message::Binary(b"exit\n".to_vec().into()))
                .await
                .unwrap();
            sent_exit = true;
        }
    }
    (out, exit)
}

/// A root filesystem for LXC's `local` template, as a `.tar.xz`: the static busybox as
/// `/sbin/init` and `/bin/sh`, an inittab that keeps init busy, and a marker file.
fn busybox_rootfs_xz() -> Vec<u8> {
    let bb = std::fs::read("/bin/busybox").expect("busybox-static");
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, d: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())
            .unwrap();
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, p: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, p, data).unwrap();
    };
    for d in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run",
    ] {
        dir(&mut b, d);
    }
    file(&mut b, "bin/busybox", &bb, 0o755);
    for (link, applets) in [
        ("../bin/busybox", &["init"][..]),
        (
            "busybox",
            &["sh", "cat", "echo", "sleep", "ls", "mount"][..],
        ),
    ] {
        for a in applets {
            let path = if *a == "init" {
                "sbin/init".to_string()
            } else {
                format!("bin/{a}")
            };
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, path, link).unwrap();
        }
    }
    file(&mut b, "etc/inittab", b"::respawn:/bin/sleep 3600\n", 0o644);
    file(&mut b, "etc/hp-local", b"from-the-archive\n", 0o644);
    let tar = b.into_inner().unwrap();
    let mut xz = Command::new("xz")
        .args(["-c", "-0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("xz");
    let mut stdin = xz.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&tar).unwrap();
    });
    let out = xz.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[tokio::test]
async fn busybox_lifecycle_console_snapshot_clone() {
    tools_present();
    let t = start(String::new(), Vec::new());
    let d = &t.d;
    let lxcpath = d.data_dir().join("lxc");

    // Bad names: 422 and nothing made.
    for bad in ["-rf", "a..b", "../x", "a/b", &"x".repeat(65)] {
        let p = assert_problem(
            d.post("/api/v1/lxc", json!({"name": bad, "template": "busybox"}))
                .await,
            422,
            "invalid_name",
        )
        .await;
        assert_eq!(p["errors"][0]["field"], "name", "{p}");
    }
    for body in [
        json!({"name": "ok1", "template": "local"}),
        json!({"name": "ok1", "template": "busybox", "rootfs_archive": "tank/a/b.tar.xz"}),
        json!({"name": "ok1", "template": "busybox", "mounts": [{"source": "/srv/../etc", "target": "mnt"}]}),
        json!({"name": "ok1", "template": "busybox", "limits": {"memory_bytes": 1}}),
        json!({"name": "ok1", "template": "busybox", "storage": "nopool/ds"}),
    ] {
        let r = d.post("/api/v1/lxc", body.clone()).await;
        assert_eq!(r.status(), 422, "{body}: {}", r.text().await.unwrap());
    }
    assert!(
        !lxcpath.exists() || std::fs::read_dir(&lxcpath).unwrap().count() == 0,
        "a refused create left files"
    );
    assert_eq!(d.get_json("/api/v1/lxc").await, json!([]));

    // Create with limits and autostart, then start.
    let c = create(
        d,
        json!({"name": "bb1", "template": "busybox", "autostart": true,
               "limits": {"memory_bytes": 64 * MIB, "cpus": 0.5}}),
    )
    .await;
    assert_eq!(c["name"], "bb1");
    assert_eq!(c["state"], "stopped", "{c}");
    assert_eq!(c["storage"], "lxcpath", "{c}");
    assert_eq!(c["autostart"], true);
    assert_eq!(c["limits"]["memory_bytes"], 64 * MIB);
    let config = std::fs::read_to_string(lxcpath.join("bb1/config")).unwrap();
    assert!(config.contains("lxc.net.0.type = empty"), "{config}");
    assert!(
        config.contains("lxc.apparmor.profile = unconfined"),
        "{config}"
    );
    assert!(config.contains("lxc.start.auto = 1"), "{config}");
    // The host's own lxc-ls sees it.
    let ls = Command::new("lxc-ls")
        .args(["-P", lxcpath.to_str().unwrap(), "-1"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ls.stdout).trim(), "bb1");
    // The same name again: 409.
    assert_problem(
        d.post("/api/v1/lxc", json!({"name": "bb1", "template": "busybox"}))
            .await,
        409,
        "lxc_exists",
    )
    .await;

    let c = act(d, "bb1", "start").await;
    assert_eq!(c["state"], "running", "{c}");
    assert!(c["pid"].as_u64().is_some(), "{c}");
    let list = d.get_json("/api/v1/lxc").await;
    assert_eq!(list[0]["state"], "running", "{list}");
    assert!(list[0]["memory_bytes"].as_u64().unwrap() > 0, "{list}");

    // Attach: a command's output comes back, and the shell's exit code.
    let (out, exit) = console_roundtrip(d, "bb1", "echo hello-$((40+2))\n", "hello-42").await;
    assert!(out.contains("hello-42"), "{out:?}");
    assert_eq!(exit["code"], 0, "{exit} {out:?}");
    // A ticket is single-use.
    let r = d.post("/api/v1/lxc/bb1/console", json!({})).await;
    let tk = ok_json(r, 201).await;
    let url = tk["url"].as_str().unwrap().to_string();
    let _ = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}{url}", d.port)).await;
    let again = d.client.get(d.url(&url)).send().await.unwrap();
    assert_eq!(again.status(), 401, "a used ticket is refused");

    // Freeze and thaw.
    assert_eq!(act(d, "bb1", "freeze").await["state"], "frozen");
    assert_problem(
        d.post("/api/v1/lxc/bb1/snapshots", json!({})).await,
        409,
        "lxc_running",
    )
    .await;
    assert_eq!(act(d, "bb1", "unfreeze").await["state"], "running");
    // Already running: unfreeze and start change nothing.
    assert_eq!(act(d, "bb1", "unfreeze").await["state"], "running");
    assert_eq!(act(d, "bb1", "start").await["state"], "running");

    // A running one is not deleted without force.
    assert_problem(
        send(d, "DELETE", "/api/v1/lxc/bb1", None).await,
        409,
        "lxc_running",
    )
    .await;
    let c = ok_json(
        d.post("/api/v1/lxc/bb1/stop?timeout=2", json!({})).await,
        200,
    )
    .await;
    assert_eq!(c["state"], "stopped", "{c}");
    assert_problem(
        d.post("/api/v1/lxc/bb1/freeze", json!({})).await,
        409,
        "lxc_state",
    )
    .await;

    // PATCH: autostart off, a mount (admin: any directory), limits.
    let shared = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let c = ok_json(
        send(
            d,
            "PATCH",
            "/api/v1/lxc/bb1",
            Some(json!({"autostart": false, "limits": {"memory_bytes": 32 * MIB},
                        "mounts": [{"source": shared.path().to_str().unwrap(), "target": "mnt/shared", "read_only": true}]})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(c["autostart"], false, "{c}");
    assert_eq!(c["limits"]["memory_bytes"], 32 * MIB);
    assert_eq!(c["mounts"][0]["target"], "mnt/shared", "{c}");
    let p = assert_problem(
        send(
            d,
            "PATCH",
            "/api/v1/lxc/bb1",
            Some(json!({"mounts": [{"source": "/nonexistent-hp", "target": "mnt"}]})),
        )
        .await,
        422,
        "invalid_mount",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "mounts[0].source", "{p}");
    // The mount works: the container sees the host's file.
    std::fs::write(shared.path().join("from-host"), "hi").unwrap();
    act(d, "bb1", "start").await;
    let (out, _) = console_roundtrip(
        d,
        "bb1",
        "cat /mnt/shared/from-host; echo :done\n",
        "hi:done",
    )
    .await;
    assert!(out.contains("hi:done"), "{out:?}");
    act(d, "bb1", "kill").await;

    // Snapshot, a file written afterwards, restore: the file is gone.
    let j = job_ok(d, d.post("/api/v1/lxc/bb1/snapshots", json!({})).await).await;
    assert_eq!(j["result"]["name"], "snap0", "{j}");
    let snaps = d.get_json("/api/v1/lxc/bb1/snapshots").await;
    assert_eq!(snaps[0]["name"], "snap0", "{snaps}");
    let rootfs = PathBuf::from(c["rootfs"].as_str().unwrap());
    let later = rootfs.join("root/written-after-snapshot");
    std::fs::write(&later, "x").unwrap();
    job_ok(
        d,
        d.post("/api/v1/lxc/bb1/snapshots/snap0/restore", json!({}))
            .await,
    )
    .await;
    assert!(
        !later.exists(),
        "the file written after the snapshot is still there"
    );
    assert!(rootfs.join("bin/busybox").exists() || rootfs.join("bin").exists());
    assert_problem(
        d.post("/api/v1/lxc/bb1/snapshots/snap9/restore", json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        send(d, "DELETE", "/api/v1/lxc/bb1/snapshots/snap0", None)
            .await
            .status(),
        204
    );
    assert_eq!(d.get_json("/api/v1/lxc/bb1/snapshots").await, json!([]));

    // Clone: bad name 422; then a copy that starts on its own.
    assert_problem(
        d.post("/api/v1/lxc/bb1/clone", json!({"name": "-x"})).await,
        422,
        "invalid_name",
    )
    .await;
    let j = job_ok(
        d,
        d.post("/api/v1/lxc/bb1/clone", json!({"name": "bb2"}))
            .await,
    )
    .await;
    assert_eq!(j["result"]["name"], "bb2", "{j}");
    assert_eq!(act(d, "bb2", "start").await["state"], "running");

    // Delete: a running one with force; the stopped one plainly.
    assert_eq!(
        send(d, "DELETE", "/api/v1/lxc/bb2?force=true", None)
            .await
            .status(),
        204
    );
    assert_eq!(
        send(d, "DELETE", "/api/v1/lxc/bb1", None).await.status(),
        204
    );
    assert!(!lxcpath.join("bb1").exists() && !lxcpath.join("bb2").exists());
    assert_eq!(d.get_json("/api/v1/lxc").await, json!([]));
    assert_eq!(d.get("/api/v1/lxc/bb1").await.status(), 404);
}

#[tokio::test]
async fn rootfs_and_backup_on_a_btrfs_pool() {
    tools_present();
    let loops = Loops::new(1, 512 * MIB);
    let dev = loops.devs[0].clone();
    let t = start(
        loops.config(),
        vec!["--disks-allow".into(), Loops::allow(&[&dev])],
    );
    let d = &t.d;
    job_ok(
        d,
        d.post(
            "/api/v1/pools",
            json!({"name": "tank", "kind": "btrfs", "devices": [dev]}),
        )
        .await,
    )
    .await;
    for ds in ["ct", "backups"] {
        ok_json(
            d.post("/api/v1/pools/tank/datasets", json!({"name": ds}))
                .await,
            201,
        )
        .await;
    }
    let root = loops.mount_root().join("tank");

    // A storage that is not there: 422 before anything is made.
    let p = assert_problem(
        d.post(
            "/api/v1/lxc",
            json!({"name": "web", "template": "busybox", "storage": "tank/nothere"}),
        )
        .await,
        422,
        "unknown_storage",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "storage", "{p}");

    // The rootfs is a btrfs subvolume in the dataset.
    let c = create(
        d,
        json!({"name": "web", "template": "busybox", "storage": "tank/ct", "start": true}),
    )
    .await;
    assert_eq!(c["storage"], "tank/ct", "{c}");
    assert_eq!(c["state"], "running", "{c}");
    let rootfs = root.join("ct/web");
    assert_eq!(Path::new(c["rootfs"].as_str().unwrap()), rootfs);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&rootfs).unwrap().ino(),
        256,
        "not a subvolume"
    );

    // The pool and the dataset know: 409 in_use naming the container.
    for (method, path) in [
        ("DELETE", "/api/v1/pools/tank?confirm=tank"),
        ("DELETE", "/api/v1/pools/tank/datasets/ct"),
    ] {
        let p = assert_problem(send(d, method, path, None).await, 409, "in_use").await;
        assert_eq!(p["users"][0]["kind"], "lxc", "{p}");
        assert_eq!(p["users"][0]["name"], "web", "{p}");
    }
    // A non-admin may mount only inside pool datasets.
    let op = d.token_for_role("lxcop", "operator").await;
    let p = assert_problem(
        d.send(
            "PATCH",
            "/api/v1/lxc/web",
            Some(&op),
            Some(json!({"mounts": [{"source": "/tmp", "target": "mnt/tmp"}]})),
        )
        .await,
        422,
        "mount_outside_pools",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "mounts[0].source", "{p}");
    let shared = root.join("backups");
    let c = ok_json(
        d.send(
            "PATCH",
            "/api/v1/lxc/web",
            Some(&op),
            Some(json!({"mounts": [{"source": shared.to_str().unwrap(), "target": "mnt/b"}]})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(c["mounts"][0]["source"], shared.to_str().unwrap(), "{c}");

    // Backup of a stopped container into a dataset; a running one is refused.
    assert_problem(
        d.post("/api/v1/lxc/web/backup", json!({"storage": "tank/backups"}))
            .await,
        409,
        "lxc_running",
    )
    .await;
    std::fs::write(rootfs.join("root/marker"), "before-backup").unwrap();
    act(d, "web", "stop?timeout=1").await;
    let j = job_ok(
        d,
        d.post(
            "/api/v1/lxc/web/backup",
            json!({"storage": "tank/backups", "file": "web.tar.zst"}),
        )
        .await,
    )
    .await;
    let archive = root.join("backups/web.tar.zst");
    assert_eq!(j["result"]["path"], archive.to_str().unwrap(), "{j}");
    assert!(j["result"]["size_bytes"].as_u64().unwrap() > 0);
    assert_problem(
        d.post(
            "/api/v1/lxc/web/backup",
            json!({"storage": "tank/backups", "file": "web.tar.zst"}),
        )
        .await,
        409,
        "backup_exists",
    )
    .await;

    // Destroy; the subvolume goes with it, and the pool no longer counts it.
    assert_eq!(
        send(d, "DELETE", "/api/v1/lxc/web", None).await.status(),
        204
    );
    assert!(!rootfs.exists(), "the rootfs subvolume is still there");

    // Restore as a new container (rootfs in the lxcpath): the marker is back, and it runs.
    assert_problem(
        d.post(
            "/api/v1/lxc/web2/restore",
            json!({"storage": "tank/backups", "file": "../x.tar.zst"}),
        )
        .await,
        422,
        "invalid_file",
    )
    .await;
    let j = job_ok(
        d,
        d.post(
            "/api/v1/lxc/web2/restore",
            json!({"storage": "tank/backups", "file": "web.tar.zst"}),
        )
        .await,
    )
    .await;
    let c = &j["result"];
    assert_eq!(c["name"], "web2", "{c}");
    assert_eq!(c["storage"], "lxcpath", "{c}");
    let r2 = PathBuf::from(c["rootfs"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(r2.join("root/marker")).unwrap(),
        "before-backup"
    );
    let config = std::fs::read_to_string(d.data_dir().join("lxc/web2/config")).unwrap();
    assert!(config.contains("lxc.uts.name = \"web2\""), "{config}");
    // The mount on tank/backups came along: web2 uses the pool.
    let p = assert_problem(
        send(d, "DELETE", "/api/v1/pools/tank?confirm=tank", None).await,
        409,
        "in_use",
    )
    .await;
    assert_eq!(p["users"][0]["name"], "web2", "{p}");
    let (out, exit) = {
        act(d, "web2", "start").await;
        console_roundtrip(
            d,
            "web2",
            "cat /root/marker; echo :end\n",
            "before-backup:end",
        )
        .await
    };
    assert!(out.contains("before-backup:end"), "{out:?}");
    assert_eq!(exit["code"], 0);
    assert_eq!(
        send(d, "DELETE", "/api/v1/lxc/web2?force=true", None)
            .await
            .status(),
        204
    );
    // The `local` template: a container from a rootfs .tar.xz in a dataset (no internet).
    let archive = root.join("backups/bb-rootfs.tar.xz");
    std::fs::write(&archive, busybox_rootfs_xz()).unwrap();
    let t_local = std::time::Instant::now();
    let c = create(
        d,
        json!({"name": "loc1", "template": "local",
               "rootfs_archive": "tank/backups/bb-rootfs.tar.xz", "start": true}),
    )
    .await;
    assert_eq!(c["name"], "loc1", "{c}");
    assert_eq!(c["state"], "running", "{c}");
    let r = PathBuf::from(c["rootfs"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(r.join("etc/hp-local")).unwrap(),
        "from-the-archive\n"
    );
    // `$((6*7))` is computed by the shell: its answer is not in the echoed input.
    let (out, exit) = console_roundtrip(
        d,
        "loc1",
        "cat /etc/hp-local; echo $((6*7))-done\n",
        "42-done",
    )
    .await;
    assert!(out.contains("from-the-archive\r"), "{out:?}");
    assert_eq!(exit["code"], 0);
    assert_eq!(
        send(d, "DELETE", "/api/v1/lxc/loc1?force=true", None)
            .await
            .status(),
        204
    );
    eprintln!(
        "local template: create+start+console+destroy {:.1} s",
        t_local.elapsed().as_secs_f64()
    );
    // An archive outside the pools, or missing: 422.
    for a in ["tank/backups/none.tar.xz", "tank/backups/../x.tar.xz"] {
        let r = d
            .post(
                "/api/v1/lxc",
                json!({"name": "loc2", "template": "local", "rootfs_archive": a}),
            )
            .await;
        assert_eq!(r.status(), 422, "{a}: {}", r.text().await.unwrap());
    }

    // Nothing uses the pool now.
    let j = job_done(
        d,
        send(d, "DELETE", "/api/v1/pools/tank?confirm=tank", None).await,
    )
    .await;
    assert_eq!(j["status"], "success", "{j}");
}

/// The newest point of `metric` for LXC container `name` in the last minute of the history,
/// waiting up to 30 s for one.
async fn latest_lxc_point(d: &Daemon, metric: &str, name: &str) -> f64 {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = d
            .get_json(&format!(
                "/api/v1/metrics/query_range?metric={metric}&match=%7Bkind%3D%22lxc%22%7D&start={}&end={}&step=1",
                now() - 60,
                now() + 1
            ))
            .await;
        assert_eq!(v["status"], "success", "{v}");
        let point = v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["metric"]["name"] == name)
            .and_then(|s| s["values"].as_array()?.last().cloned());
        if let Some(p) = point {
            return p[1].as_str().unwrap().parse().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {metric} for LXC container {name} after 30 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The metrics collector samples a running LXC container through its cgroup and network
/// namespace (`[metrics] interval_secs = 1` here): memory, CPU (a busy loop in an attached
/// shell counts), block I/O and traffic series labelled `kind="lxc"`, `name`; a killed
/// container is no longer sampled.
#[tokio::test]
async fn a_running_container_is_in_the_metrics_history() {
    tools_present();
    let t = start("[metrics]\ninterval_secs = 1\n".into(), Vec::new());
    let d = &t.d;
    create(d, json!({"name": "met1", "template": "busybox"})).await;
    let c = act(d, "met1", "start").await;
    assert_eq!(c["state"], "running", "{c}");

    let mem = latest_lxc_point(d, "process_memory_rss_bytes", "met1").await;
    assert!(
        mem > 0.0 && mem < 1e9,
        "memory of a busybox container: {mem}"
    );
    // The rates need two samples of the container.
    let cpu = latest_lxc_point(d, "process_cpu_percent", "met1").await;
    assert!((0.0..=400.0).contains(&cpu), "{cpu}");
    // A busy loop in an attached shell (lxc-attach joins the container's cgroup) shows as the
    // container's CPU.
    let (out, _) = console_roundtrip(
        d,
        "met1",
        "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; echo spun-$((1+1))\n",
        "spun-2",
    )
    .await;
    assert!(out.contains("spun-2"), "{out:?}");
    let mut busiest = 0.0f64;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while busiest <= 5.0 && std::time::Instant::now() < deadline {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let v = d
            .get_json(&format!(
                "/api/v1/metrics/query_range?metric=process_cpu_percent&match=%7Bkind%3D%22lxc%22,name%3D%22met1%22%7D&start={}&end={}&step=1",
                now - 60,
                now + 1
            ))
            .await;
        busiest = v["data"]["result"][0]["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p[1].as_str()?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("LXC container met1: memory {mem} B, busiest CPU sample {busiest} %");
    assert!(
        busiest > 5.0,
        "the busy loop's CPU is not counted: {busiest}"
    );
    for metric in [
        "process_disk_read_bytes_per_second",
        "process_disk_write_bytes_per_second",
        // Its own network namespace (only `lo` here: no bridge), so 0, but a series.
        "process_network_receive_bytes_per_second",
        "process_network_transmit_bytes_per_second",
    ] {
        let v = latest_lxc_point(d, metric, "met1").await;
        assert!((0.0..1e10).contains(&v), "{metric}: {v}");
    }
    // The series list names it too.
    let series = d.get_json("/api/v1/metrics/series").await.to_string();
    assert!(series.contains("met1"), "{series}");

    // Killed: no new points (the newest one ages).
    act(d, "met1", "kill").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v = d
        .get_json(&format!(
            "/api/v1/metrics/query_range?metric=process_memory_rss_bytes&match=%7Bkind%3D%22lxc%22%7D&start={}&end={}&step=1",
            now - 1,
            now + 1
        ))
        .await;
    assert_eq!(
        v["data"]["result"],
        json!([]),
        "still sampled after stop: {v}"
    );
}
