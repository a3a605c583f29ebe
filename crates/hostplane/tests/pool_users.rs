//! Pools and what uses them across areas (`platform::pool_users`): a real btrfs pool on a loop
//! device, a real QEMU (TCG) whose disk lives in one of its datasets, and an SMB share on
//! another. The pool and datasets refuse to go away under them (409 `in_use` naming each
//! user), a running VM also blocks a rename and a rollback, a rename of a dataset moves the
//! share and the stopped VM's disk along, and once the users are gone the pool can be
//! destroyed.
//!
//! The share needs no smbd: hostplane renders its include file, checks it with `testparm` and
//! finds no smbd to reload. QEMU outlives the daemon by design: the [`Qemus`] guard kills each
//! QEMU of this test's daemon (found by pidfile, checked by command line), also on panic.

mod common;
mod storage_util;

use std::path::Path;
use std::process::Command;

use common::{Daemon, Opts, assert_problem};
use serde_json::{Value, json};
use storage_util::{Loops, eventually, is_mounted, job_ok};

const MIB: u64 = 1 << 20;

fn qemu_present() {
    for tool in ["qemu-system-x86_64", "qemu-img", "testparm"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "{tool} is missing: run scripts/install-qemu and install samba (scripts/test does)"
        );
    }
}

/// The daemon, and the QEMUs it started killed before it goes.
struct Qemus {
    d: Daemon,
}

impl Qemus {
    fn pids(&self) -> Vec<i32> {
        let run = self.d.data_dir().join("run/vms");
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
}

impl Drop for Qemus {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: a QEMU this test's daemon started (checked by its command line).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
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

/// 409 `in_use` whose `users` are exactly `want` (kind, name, busy), in any order.
async fn in_use(r: reqwest::Response, want: &[(&str, &str, bool)]) -> Value {
    let p = assert_problem(r, 409, "in_use").await;
    let mut got: Vec<(String, String, bool)> = p["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users: {p}"))
        .iter()
        .map(|u| {
            assert!(u["href"].as_str().unwrap().starts_with("/api/v1/"), "{u}");
            (
                u["kind"].as_str().unwrap().to_string(),
                u["name"].as_str().unwrap().to_string(),
                u["busy"].as_bool().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, bool)> = want
        .iter()
        .map(|(k, n, b)| (k.to_string(), n.to_string(), *b))
        .collect();
    want.sort();
    assert_eq!(got, want, "{p}");
    for (_, n, _) in &want {
        assert!(p["detail"].as_str().unwrap().contains(n.as_str()), "{p}");
    }
    p
}

/// Whether process `pid` has `file` open.
fn has_open(pid: i32, file: &str) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == Path::new(file)))
}

async fn status(d: &Daemon, id: &str) -> String {
    d.get_json(&format!("/api/v1/vms/{id}")).await["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn stop(t: &Qemus, id: &str) {
    ok_json(
        send(
            &t.d,
            "POST",
            &format!("/api/v1/vms/{id}/stop"),
            Some(json!({})),
        )
        .await,
        200,
    )
    .await;
    eventually(30, || async {
        (status(&t.d, id).await == "stopped").then_some(())
    })
    .await;
}

#[tokio::test]
async fn vm_disk_and_share_on_pool_datasets() {
    qemu_present();
    let kit = common::guest_kit();
    let loops = Loops::new(1, 512 * MIB);
    let dev = loops.devs[0].clone();
    // smbd's configuration for testparm; no smbd runs.
    let smb = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let include = smb.path().join("hostplane-shares.conf");
    std::fs::write(&include, "").unwrap();
    let smb_conf = smb.path().join("smb.conf");
    std::fs::write(
        &smb_conf,
        format!(
            "[global]\n  server role = standalone server\n  include = {}\n",
            include.display()
        ),
    )
    .unwrap();
    let config = format!(
        "{}[vms]\nallowed_paths = [{:?}]\n[shares]\nunix_accounts = false\ngroup = \"root\"\n\
         smb_config = {:?}\nsmb_include = {:?}\nnfs_backend = \"off\"\n",
        loops.config(),
        kit.to_str().unwrap(),
        smb_conf.to_str().unwrap(),
        include.to_str().unwrap(),
    );
    let t = Qemus {
        d: Daemon::start_with(Opts {
            config: Some(config),
            extra_args: vec!["--disks-allow".into(), Loops::allow(&[&dev])],
            ..Default::default()
        }),
    };
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
    for ds in ["vms", "media"] {
        ok_json(
            d.post("/api/v1/pools/tank/datasets", json!({"name": ds}))
                .await,
            201,
        )
        .await;
    }
    let root = loops.mount_root().join("tank");

    // A storage that is not there, or not a storage: refused before any file is made.
    let vm_body = |storage: &str| {
        json!({
            "name": "onpool", "memory_mib": 128, "accelerator": "tcg",
            "kernel": kit.join("vmlinuz").to_str().unwrap(),
            "initrd": kit.join("initrd.gz").to_str().unwrap(),
            "cmdline": "console=ttyS0 quiet panic=-1 mode=serve",
            "storage": storage,
            "disks": [{"size_bytes": 64 * MIB}],
        })
    };
    for (storage, code) in [
        ("tank/nothere", "unknown_storage"),
        ("nopool/vms", "unknown_storage"),
    ] {
        let p = assert_problem(d.post("/api/v1/vms", vm_body(storage)).await, 422, code).await;
        assert_eq!(p["errors"][0]["field"], "storage", "{p}");
    }
    let p = assert_problem(
        d.post("/api/v1/vms", vm_body("tank")).await,
        422,
        "invalid_storage",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "storage", "{p}");
    assert_eq!(
        std::fs::read_dir(root.join("vms")).unwrap().count(),
        0,
        "a refused VM left files"
    );

    // The VM's disk is made in the dataset, and QEMU runs on it.
    let vm = ok_json(d.post("/api/v1/vms", vm_body("tank/vms")).await, 201).await;
    let id = vm["id"].as_str().unwrap().to_string();
    let disk = vm["disks"][0]["path"].as_str().unwrap().to_string();
    assert_eq!(vm["disks"][0]["storage"], "tank/vms", "{vm}");
    assert!(
        Path::new(&disk).starts_with(root.join("vms").join(&id)),
        "{disk}"
    );
    assert!(Path::new(&disk).is_file());
    let started = ok_json(
        send(
            d,
            "POST",
            &format!("/api/v1/vms/{id}/start"),
            Some(json!({})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(started["status"], "running", "{started}");
    let pid = started["pid"].as_i64().unwrap() as i32;
    assert!(has_open(pid, &disk), "QEMU does not hold {disk}");

    // An SMB share on the other dataset.
    ok_json(
        d.post(
            "/api/v1/shares/smb",
            json!({"name": "media", "pool": "tank", "dataset": "media"}),
        )
        .await,
        201,
    )
    .await;

    // Nothing makes the pool or a used dataset go away; the running VM also blocks moving.
    let vm_busy = [("vm", "onpool", true)];
    for (method, path, body) in [
        ("POST", "/api/v1/pools/tank/unmount", Some(json!({}))),
        ("POST", "/api/v1/pools/tank/export", Some(json!({}))),
        ("DELETE", "/api/v1/pools/tank?confirm=tank", None),
    ] {
        in_use(
            send(d, method, path, body).await,
            &[("vm", "onpool", true), ("share", "smb/media", false)],
        )
        .await;
    }
    in_use(
        send(d, "DELETE", "/api/v1/pools/tank/datasets/vms", None).await,
        &vm_busy,
    )
    .await;
    in_use(
        send(
            d,
            "PATCH",
            "/api/v1/pools/tank/datasets/vms",
            Some(json!({"name": "machines"})),
        )
        .await,
        &vm_busy,
    )
    .await;
    ok_json(
        d.post(
            "/api/v1/pools/tank/datasets/vms/snapshots",
            json!({"name": "before"}),
        )
        .await,
        201,
    )
    .await;
    in_use(
        d.post(
            "/api/v1/pools/tank/datasets/vms/snapshots/before/rollback",
            json!({}),
        )
        .await,
        &vm_busy,
    )
    .await;
    let p = in_use(
        send(d, "DELETE", "/api/v1/pools/tank/datasets/media", None).await,
        &[("share", "smb/media", false)],
    )
    .await;
    assert_eq!(p["users"][0]["href"], "/api/v1/shares/smb/media");
    assert_eq!(p["users"][0]["dataset"], "media");
    assert_eq!(status(d, &id).await, "running");
    assert!(is_mounted(&root));

    // Stopped, the VM follows a rename of its dataset, and its disk still blocks a destroy.
    stop(&t, &id).await;
    ok_json(
        send(
            d,
            "PATCH",
            "/api/v1/pools/tank/datasets/vms",
            Some(json!({"name": "machines"})),
        )
        .await,
        200,
    )
    .await;
    let vm = d.get_json(&format!("/api/v1/vms/{id}")).await;
    let moved = vm["disks"][0]["path"].as_str().unwrap().to_string();
    assert_eq!(vm["disks"][0]["storage"], "tank/machines", "{vm}");
    assert!(
        Path::new(&moved).starts_with(root.join("machines").join(&id)),
        "{moved}"
    );
    assert!(Path::new(&moved).is_file());
    in_use(
        send(d, "DELETE", "/api/v1/pools/tank?confirm=tank", None).await,
        &[("vm", "onpool", false), ("share", "smb/media", false)],
    )
    .await;
    // It boots from the new place.
    let started = ok_json(
        send(
            d,
            "POST",
            &format!("/api/v1/vms/{id}/start"),
            Some(json!({})),
        )
        .await,
        200,
    )
    .await;
    assert!(has_open(started["pid"].as_i64().unwrap() as i32, &moved));
    stop(&t, &id).await;

    // The share follows a rename of its dataset.
    ok_json(
        send(
            d,
            "PATCH",
            "/api/v1/pools/tank/datasets/media",
            Some(json!({"name": "films"})),
        )
        .await,
        200,
    )
    .await;
    let share = d.get_json("/api/v1/shares/smb/media").await;
    assert_eq!(share["dataset"], "films", "{share}");
    assert!(
        std::fs::read_to_string(&include)
            .unwrap()
            .contains(root.join("films").to_str().unwrap()),
        "the SMB file still points at the old dataset"
    );

    // A full clone can go to a dataset; a thin one stays with its bases in the images directory.
    assert_problem(
        d.post(
            &format!("/api/v1/vms/{id}/clone"),
            json!({"name": "thin", "strategy": "thin"}),
        )
        .await,
        409,
        "thin_clone_unsupported",
    )
    .await;
    let j = job_ok(
        d,
        d.post(
            &format!("/api/v1/vms/{id}/clone"),
            json!({"name": "copy", "strategy": "full", "storage": "tank/films"}),
        )
        .await,
    )
    .await;
    let copy = j["result"]["id"].as_str().unwrap().to_string();
    assert_eq!(j["result"]["disks"][0]["storage"], "tank/films", "{j}");
    let p = in_use(
        send(d, "DELETE", "/api/v1/pools/tank/datasets/films", None).await,
        &[("vm", "copy", false), ("share", "smb/media", false)],
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("films"), "{p}");
    assert_eq!(
        send(d, "DELETE", &format!("/api/v1/vms/{copy}"), None)
            .await
            .status(),
        204
    );
    assert!(!root.join("films").join(&copy).exists());

    // Users gone: the pool goes.
    assert_eq!(
        send(d, "DELETE", "/api/v1/shares/smb/media", None)
            .await
            .status(),
        204
    );
    in_use(
        send(d, "POST", "/api/v1/pools/tank/unmount", Some(json!({}))).await,
        &[("vm", "onpool", false)],
    )
    .await;
    assert_eq!(
        send(d, "DELETE", &format!("/api/v1/vms/{id}"), None)
            .await
            .status(),
        204
    );
    assert!(
        !root.join("machines").join(&id).exists(),
        "the VM's folder stays"
    );
    job_ok(
        d,
        send(d, "DELETE", "/api/v1/pools/tank?confirm=tank", None).await,
    )
    .await;
    assert!(!is_mounted(&root));
}
