//! `/api/v1/pools` against real loop devices: btrfs raid1 with subvolume datasets, quotas,
//! snapshots, retention and rollback; a scrub that finds and repairs a corrupted member;
//! device add/replace/remove and profile conversion; single-disk ext4/xfs; mergerfs with
//! snapraid parity; export/import; remount at daemon start; destroy confirmed by name.

mod common;
mod storage_util;

use std::path::{Path, PathBuf};

use common::{Daemon, Opts, assert_problem};
use serde_json::{Value, json};
use storage_util::{Loops, disk, eventually, is_mounted, job_done, job_ok, run};

const MIB: u64 = 1 << 20;

fn xattr(path: &Path, name: &str) -> String {
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the given length.
    let len = unsafe {
        libc::getxattr(
            p.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    assert!(
        len >= 0,
        "getxattr {name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    String::from_utf8_lossy(&buf[..len as usize]).into_owned()
}

fn daemon(loops: &Loops, allow: &[&str]) -> Daemon {
    Daemon::start_with(Opts {
        config: Some(loops.config()),
        extra_args: vec!["--disks-allow".into(), Loops::allow(allow)],
        ..Default::default()
    })
}

fn devs(loops: &Loops) -> Vec<&str> {
    loops.devs.iter().map(String::as_str).collect()
}

async fn pool(d: &Daemon, name: &str) -> Value {
    d.get_json(&format!("/api/v1/pools/{name}")).await
}

fn member_ids(p: &Value) -> Vec<String> {
    p["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["disk"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn btrfs_raid1_pool_with_datasets_snapshots_and_restart() {
    let loops = Loops::new(3, 256 * MIB);
    let (a, b, c) = (
        loops.devs[0].clone(),
        loops.devs[1].clone(),
        loops.devs[2].clone(),
    );
    let mut d = daemon(&loops, &[&a, &b]);

    // Bad requests first.
    let bad = [
        (
            json!({"name": "-x", "kind": "btrfs", "devices": [a]}),
            422,
            "invalid_name",
        ),
        (
            json!({"name": "tank", "kind": "btrfs", "devices": []}),
            422,
            "invalid_devices",
        ),
        (
            json!({"name": "tank", "kind": "btrfs", "devices": [a], "data_profile": "raid1"}),
            422,
            "invalid_profile",
        ),
        (
            json!({"name": "tank", "kind": "btrfs", "devices": [a, b], "metadata_profile": "raid1c3"}),
            422,
            "invalid_profile",
        ),
        (
            json!({"name": "tank", "kind": "ext4", "devices": [a, b]}),
            422,
            "invalid_devices",
        ),
        (
            json!({"name": "tank", "kind": "btrfs", "devices": [a, a]}),
            422,
            "duplicate_disk",
        ),
        (
            json!({"name": "tank", "kind": "btrfs", "devices": ["nope"]}),
            422,
            "unknown_disk",
        ),
        (
            json!({"name": "tank", "kind": "btrfs", "devices": [a, c]}),
            409,
            "disk_not_allowed",
        ),
        (
            json!({"name": "tank", "kind": "zfs", "devices": [a]}),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in bad {
        assert_problem(d.post("/api/v1/pools", body.clone()).await, status, code).await;
    }

    let j = job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "tank", "kind": "btrfs", "devices": [a, b]}),
        )
        .await,
    )
    .await;
    assert_eq!(j["result"]["name"], "tank");
    let p = pool(&d, "tank").await;
    let mp = loops.mount_root().join("tank");
    assert_eq!(p["mountpoint"], mp.to_str().unwrap());
    assert!(is_mounted(&mp));
    assert_eq!(p["mounted"], true);
    assert_eq!(p["health"], "online", "{p}");
    assert_eq!(p["kind"], "btrfs");
    assert_eq!(p["data_profile"], "raid1");
    assert_eq!(p["metadata_profile"], "raid1");
    assert_eq!(p["quotas"], true);
    assert_eq!(p["auto_mount"], true);
    assert!(p["usage"]["size_bytes"].as_u64().unwrap() > 0);
    let members = p["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    for m in members {
        assert_eq!(m["present"], true);
        assert!(m["devid"].is_u64(), "{m}");
        assert_eq!(m["errors"]["corruption"], 0);
    }
    assert_eq!(
        d.get_json("/api/v1/pools").await.as_array().unwrap().len(),
        1
    );
    // The disks know their pool; both are mounted through it.
    let da = disk(&d, &a).await;
    assert_eq!(da["pool"], "tank");
    assert_eq!(da["mountpoints"][0], mp.to_str().unwrap());
    assert_eq!(
        disk(&d, &b).await["mountpoints"][0],
        mp.to_str().unwrap(),
        "btrfs member not in mountinfo"
    );
    assert_problem(
        d.post(
            "/api/v1/pools",
            json!({"name": "tank", "kind": "btrfs", "devices": [c]}),
        )
        .await,
        409,
        "pool_exists",
    )
    .await;
    assert_problem(
        d.post(
            "/api/v1/pools",
            json!({"name": "other", "kind": "btrfs", "devices": [a]}),
        )
        .await,
        409,
        "disk_mounted",
    )
    .await;

    // Datasets: subvolumes with quota and usage.
    assert_problem(
        d.post("/api/v1/pools/tank/datasets", json!({"name": "../x"}))
            .await,
        422,
        "invalid_name",
    )
    .await;
    let r = d
        .post(
            "/api/v1/pools/tank/datasets",
            json!({"name": "docs", "quota": 50 * MIB, "snapshot_retention": 2}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let ds: Value = r.json().await.unwrap();
    assert_eq!(ds["kind"], "subvolume");
    assert_eq!(ds["quota"], 50 * MIB);
    assert_eq!(ds["snapshot_retention"], 2);
    assert!(ds["subvolume_id"].as_u64().unwrap() >= 256);
    assert!(ds["created_at"].as_str().unwrap().starts_with("20"));
    assert_problem(
        d.post("/api/v1/pools/tank/datasets", json!({"name": "docs"}))
            .await,
        409,
        "dataset_exists",
    )
    .await;
    let docs = mp.join("docs");
    std::fs::write(docs.join("a.txt"), "v1").unwrap();
    std::fs::write(docs.join("big"), vec![7u8; 2 * MIB as usize]).unwrap();
    run("sync", &[]);
    let r = d
        .post("/api/v1/pools/tank/datasets", json!({"name": "media"}))
        .await;
    assert_eq!(r.status(), 201);
    let r = d
        .send(
            "PATCH",
            "/api/v1/pools/tank/datasets/media",
            Some(&d.token.clone()),
            Some(json!({"name": "films", "quota": 10 * MIB})),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let films: Value = r.json().await.unwrap();
    assert_eq!(films["name"], "films");
    assert_eq!(films["quota"], 10 * MIB);
    assert!(mp.join("films").is_dir() && !mp.join("media").exists());
    let r = d
        .send(
            "PATCH",
            "/api/v1/pools/tank/datasets/films",
            Some(&d.token.clone()),
            Some(json!({"quota": 0})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["quota"].is_null());
    let list = d.get_json("/api/v1/pools/tank/datasets").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs", "films"]);
    let docs_v = &list[0];
    assert!(
        docs_v["usage"]["referenced"].as_u64().unwrap() >= 2 * MIB,
        "{docs_v}"
    );

    // Snapshots: read-only, retention keeps the newest 2, rollback swaps atomically.
    let snap = |name: &str| {
        let (d, name) = (&d, name.to_string());
        async move {
            let r = d
                .post(
                    "/api/v1/pools/tank/datasets/docs/snapshots",
                    json!({"name": name}),
                )
                .await;
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            r.json::<Value>().await.unwrap()
        }
    };
    let s1 = snap("s1").await;
    assert_eq!(s1["read_only"], true);
    assert!(s1["created_at"].is_string());
    assert_eq!(
        std::fs::read_to_string(mp.join(".snapshots/docs/s1/a.txt")).unwrap(),
        "v1"
    );
    assert!(
        std::fs::write(mp.join(".snapshots/docs/s1/new"), "x").is_err(),
        "snapshot is writable"
    );
    std::fs::write(docs.join("a.txt"), "v2").unwrap();
    // Creation times have second resolution: s2 is made in a later second than the dataset.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    snap("s2").await;
    std::fs::write(docs.join("a.txt"), "v3").unwrap();
    // Default name: a UTC timestamp.
    let r = d
        .post("/api/v1/pools/tank/datasets/docs/snapshots", json!({}))
        .await;
    assert_eq!(r.status(), 201);
    let auto: Value = r.json().await.unwrap();
    assert!(auto["name"].as_str().unwrap().ends_with('Z'), "{auto}");
    let snaps = d
        .get_json("/api/v1/pools/tank/datasets/docs/snapshots")
        .await;
    let names: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["s2", auto["name"].as_str().unwrap()],
        "retention 2 keeps the newest two"
    );
    assert_problem(
        d.get("/api/v1/pools/tank/datasets/docs/snapshots/s1").await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        d.post(
            "/api/v1/pools/tank/datasets/docs/snapshots",
            json!({"name": "s2"}),
        )
        .await,
        409,
        "snapshot_exists",
    )
    .await;
    assert_eq!(
        d.get_json("/api/v1/pools/tank/snapshots")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let held = std::fs::File::open(docs.join("a.txt")).unwrap();
    let r = d
        .post(
            "/api/v1/pools/tank/datasets/docs/snapshots/s2/rollback",
            json!({"keep_current": true}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let after: Value = r.json().await.unwrap();
    assert_eq!(std::fs::read_to_string(docs.join("a.txt")).unwrap(), "v2");
    assert_eq!(after["quota"], 50 * MIB, "quota carried over: {after}");
    assert_ne!(after["subvolume_id"], ds["subvolume_id"]);
    // A rollback keeps the dataset's created_at (docs/conventions.md), in the answer and after.
    assert!(ds["created_at"].is_string(), "{ds}");
    assert_eq!(after["created_at"], ds["created_at"], "{after}");
    assert_eq!(
        d.get_json("/api/v1/pools/tank/datasets/docs").await["created_at"],
        ds["created_at"]
    );
    drop(held);
    let snaps = d
        .get_json("/api/v1/pools/tank/datasets/docs/snapshots")
        .await;
    let kept = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with("pre-rollback-"))
        .expect("previous state kept");
    assert_eq!(kept["read_only"], true);
    assert_eq!(
        std::fs::read_to_string(Path::new(kept["path"].as_str().unwrap()).join("a.txt")).unwrap(),
        "v3"
    );
    // Without keep_current the previous state is gone.
    let r = d
        .post(
            "/api/v1/pools/tank/datasets/docs/snapshots/s2/rollback",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        d.get_json("/api/v1/pools/tank/datasets/docs/snapshots")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(
        !std::fs::read_dir(&mp)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".rollback"))
    );

    let r = d
        .send(
            "DELETE",
            "/api/v1/pools/tank/datasets/docs/snapshots/s2",
            Some(&d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_problem(
        d.send(
            "DELETE",
            "/api/v1/pools/tank/datasets/docs",
            Some(&d.token.clone()),
            None,
        )
        .await,
        409,
        "dataset_has_snapshots",
    )
    .await;
    let r = d
        .send(
            "DELETE",
            "/api/v1/pools/tank/datasets/docs?recursive=true",
            Some(&d.token.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert!(!docs.exists() && !mp.join(".snapshots/docs").exists());

    // Unmount: the disks are then "in a pool" rather than mounted.
    let r = d.post("/api/v1/pools/tank/unmount", json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let p: Value = r.json().await.unwrap();
    assert_eq!(
        (
            p["mounted"].clone(),
            p["health"].clone(),
            p["auto_mount"].clone()
        ),
        (json!(false), json!("unmounted"), json!(false))
    );
    assert!(!is_mounted(&mp));
    let ida = disk(&d, &a).await["id"].as_str().unwrap().to_string();
    assert_problem(
        d.post(&format!("/api/v1/disks/{ida}/wipe"), json!({}))
            .await,
        409,
        "disk_in_pool",
    )
    .await;
    assert_problem(
        d.get("/api/v1/pools/tank/datasets").await,
        409,
        "pool_not_mounted",
    )
    .await;
    let r = d.post("/api/v1/pools/tank/mount", json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(is_mounted(&mp));
    // Mounting it again changes nothing and publishes nothing: the next event of the pool is
    // the unmount's.
    let stream = d
        .client
        .get(d.url("/api/v1/events?type=resource.*"))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let r = d.post("/api/v1/pools/tank/mount", json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(r.json::<Value>().await.unwrap()["mounted"], true);
    let r = d.post("/api/v1/pools/tank/unmount", json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let ev = read_events(stream, |e| e["href"] == "/api/v1/pools/tank").await;
    assert_eq!(
        ev["data"]["mounted"], false,
        "an event for a no-op mount: {ev}"
    );
    let r = d.post("/api/v1/pools/tank/mount", json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(is_mounted(&mp));
    assert_eq!(
        d.get_json("/api/v1/pools/tank/datasets")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A daemon restart (as after a reboot: nothing mounted) mounts the pool again, in the
    // background.
    d.kill9();
    run("umount", &[mp.to_str().unwrap()]);
    d.spawn();
    eventually(20, || async { is_mounted(&mp).then_some(()) }).await;
    assert_eq!(pool(&d, "tank").await["health"], "online");

    // Destroy, confirmed by name.
    assert_problem(
        d.send("DELETE", "/api/v1/pools/tank", Some(&d.token.clone()), None)
            .await,
        422,
        "confirm_mismatch",
    )
    .await;
    assert_problem(
        d.send(
            "DELETE",
            "/api/v1/pools/tank?confirm=tanks",
            Some(&d.token.clone()),
            None,
        )
        .await,
        422,
        "confirm_mismatch",
    )
    .await;
    let op = d.token_for_role("pool-operator", "operator").await;
    assert_problem(
        d.send("DELETE", "/api/v1/pools/tank?confirm=tank", Some(&op), None)
            .await,
        403,
        "forbidden",
    )
    .await;
    let j = job_ok(
        &d,
        d.send(
            "DELETE",
            "/api/v1/pools/tank?confirm=tank",
            Some(&d.token.clone()),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(j["result"]["wiped"].as_array().unwrap().len(), 2);
    assert!(!is_mounted(&mp) && !mp.exists());
    assert_problem(d.get("/api/v1/pools/tank").await, 404, "not_found").await;
    let blk = std::process::Command::new("blkid")
        .args(["-c", "/dev/null", &a, &b])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&blk.stdout).trim().is_empty(),
        "signatures left: {blk:?}"
    );
    assert!(disk(&d, &a).await["pool"].is_null());
}

/// The first event of an SSE stream that `want`s (20 s at most).
async fn read_events(resp: reqwest::Response, want: impl Fn(&Value) -> bool) -> Value {
    use futures_util::StreamExt;
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let msg: String = buf.drain(..end + 2).collect();
            for line in msg.lines() {
                if let Some(v) = line.strip_prefix("data:")
                    && let Ok(ev) = serde_json::from_str::<Value>(v.trim())
                    && want(&ev)
                {
                    return ev;
                }
            }
        }
    }
}

/// The file's first physical extent on `dev`: (byte offset in the image, length).
fn physical_extent(file: &Path, dev: &str) -> u64 {
    let ff = run("filefrag", &["-v", "-b4096", file.to_str().unwrap()]);
    // "   0:        0..    4095:      21520..     25615:   4096:   last,eof"
    let line = ff
        .lines()
        .find(|l| l.trim_start().starts_with("0:"))
        .expect("an extent");
    let fields: Vec<&str> = line.split(':').collect();
    let logical_blocks: u64 = fields[2]
        .trim()
        .split("..")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let logical = logical_blocks * 4096;
    let map = run("btrfs-map-logical", &["-l", &logical.to_string(), dev]);
    // "mirror 1 logical X physical Y device /dev/loopN"
    for l in map.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() >= 8 && w[7] == dev {
            return w[5].parse().unwrap();
        }
    }
    panic!("no mirror of {logical} on {dev}: {map}");
}

#[tokio::test]
async fn scrub_finds_and_repairs_a_corrupted_member() {
    let loops = Loops::new(2, 256 * MIB);
    let (a, b) = (loops.devs[0].clone(), loops.devs[1].clone());
    let d = daemon(&loops, &[&a, &b]);
    job_ok(&d, d.post("/api/v1/pools", json!({"name": "scrubbed", "kind": "btrfs", "devices": [a, b], "data_profile": "raid1", "metadata_profile": "raid1"})).await).await;
    let mp = loops.mount_root().join("scrubbed");
    let file = mp.join("data.bin");
    let content: Vec<u8> = (0..16 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    run("sync", &[]);

    // A clean scrub first.
    let j = job_ok(&d, d.post("/api/v1/pools/scrubbed/scrub", json!({})).await).await;
    assert_eq!(j["result"]["status"], "finished");
    assert_eq!(j["result"]["errors_found"], 0, "{j}");
    assert!(j["result"]["data_bytes_scrubbed"].as_u64().unwrap() >= 2 * 16 * MIB);

    // Overwrite 4 MiB of the file's blocks in member a's image, behind btrfs' back.
    let phys = physical_extent(&file, &a);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut img = std::fs::OpenOptions::new()
            .write(true)
            .open(&loops.images[0])
            .unwrap();
        img.seek(SeekFrom::Start(phys)).unwrap();
        img.write_all(&vec![0xA5u8; 4 * MIB as usize]).unwrap();
        img.sync_all().unwrap();
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();

    let j = job_ok(&d, d.post("/api/v1/pools/scrubbed/scrub", json!({})).await).await;
    let r = &j["result"];
    assert_eq!(r["status"], "finished");
    assert!(r["csum_errors"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["errors_found"], r["csum_errors"]);
    assert_eq!(r["corrected_errors"], r["csum_errors"], "{r}");
    assert_eq!(r["uncorrectable_errors"], 0);
    let log = d
        .get(&format!("{}/log", j["href"].as_str().unwrap()))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("corrected"), "{log}");

    // The member's counters keep what was found, but nothing is wrong now: every error was
    // corrected, so the pool is healthy again.
    let p = pool(&d, "scrubbed").await;
    let ma = p["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == a.as_str())
        .unwrap();
    assert!(ma["errors"]["corruption"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["health"], "online", "{p}");
    assert!(p["health_detail"].is_null(), "{p}");

    // reset-errors zeroes the counters (admin), with an event.
    let ida = disk(&d, &a).await["id"].as_str().unwrap().to_string();
    let stream = d
        .client
        .get(d.url("/api/v1/events?type=resource.*"))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let r = d
        .post(
            &format!("/api/v1/pools/scrubbed/devices/{ida}/reset-errors"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert!(
        p["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["errors"]["corruption"] == 0 && m["errors"]["read_io"] == 0),
        "{p}"
    );
    assert_eq!(p["health"], "online", "{p}");
    let p = pool(&d, "scrubbed").await;
    assert_eq!(
        p["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["errors"]["corruption"].as_u64().unwrap())
            .sum::<u64>(),
        0,
        "{p}"
    );
    let ev = read_events(stream, |e| {
        e["type"] == "resource.updated" && e["data"]["reason"] == "errors_reset"
    })
    .await;
    assert_eq!(ev["href"], "/api/v1/pools/scrubbed");
    assert_eq!(ev["data"]["reason"], "errors_reset", "{ev}");
    assert!(
        ev["data"]["reset"]["errors_before"]["corruption"]
            .as_u64()
            .unwrap()
            > 0,
        "{ev}"
    );
    assert_problem(
        d.post(
            "/api/v1/pools/scrubbed/devices/nope/reset-errors",
            json!({}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // Repaired: a second scrub is clean, and the data reads back intact.
    let j = job_ok(&d, d.post("/api/v1/pools/scrubbed/scrub", json!({})).await).await;
    assert_eq!(j["result"]["errors_found"], 0, "{j}");
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert!(std::fs::read(&file).unwrap() == content);
    let st = d.get_json("/api/v1/pools/scrubbed/scrub").await;
    assert_eq!(st["status"], "finished");
}

/// Both mirrors of a file's blocks corrupted: the scrub cannot repair them, the pool is
/// degraded and says so until a scrub finds nothing uncorrectable (after the file is gone).
#[tokio::test]
async fn uncorrectable_errors_keep_the_pool_degraded_until_a_clean_scrub() {
    let loops = Loops::new(2, 256 * MIB);
    let (a, b) = (loops.devs[0].clone(), loops.devs[1].clone());
    let d = daemon(&loops, &[&a, &b]);
    job_ok(&d, d.post("/api/v1/pools", json!({"name": "bad", "kind": "btrfs", "devices": [a, b], "data_profile": "raid1", "metadata_profile": "raid1"})).await).await;
    let mp = loops.mount_root().join("bad");
    let file = mp.join("data.bin");
    std::fs::write(&file, vec![7u8; 4 * MIB as usize]).unwrap();
    run("sync", &[]);
    let phys = [physical_extent(&file, &a), physical_extent(&file, &b)];
    for (img, at) in loops.images.iter().zip(phys) {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&vec![0x5Au8; MIB as usize]).unwrap();
        f.sync_all().unwrap();
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();

    let j = job_ok(&d, d.post("/api/v1/pools/bad/scrub", json!({})).await).await;
    assert!(
        j["result"]["uncorrectable_errors"].as_u64().unwrap() > 0,
        "{j}"
    );
    let p = pool(&d, "bad").await;
    assert_eq!(p["health"], "degraded", "{p}");
    assert!(
        p["health_detail"]
            .as_str()
            .unwrap()
            .contains("uncorrectable"),
        "{p}"
    );

    // The damaged file goes; the next scrub is clean and the pool healthy.
    std::fs::remove_file(&file).unwrap();
    run("sync", &[]);
    run("btrfs", &["filesystem", "sync", mp.to_str().unwrap()]);
    let j = job_ok(&d, d.post("/api/v1/pools/bad/scrub", json!({})).await).await;
    assert_eq!(j["result"]["uncorrectable_errors"], 0, "{j}");
    let p = pool(&d, "bad").await;
    assert_eq!(p["health"], "online", "{p}");
}

#[tokio::test]
async fn btrfs_devices_add_balance_replace_remove() {
    let loops = Loops::new(4, 512 * MIB);
    let l = devs(&loops);
    let (a, b, c, spare) = (l[0], l[1], l[2], l[3]);
    let d = daemon(&loops, &l);
    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "grow", "kind": "btrfs", "devices": [a]}),
        )
        .await,
    )
    .await;
    let p = pool(&d, "grow").await;
    assert_eq!(
        (p["data_profile"].clone(), p["metadata_profile"].clone()),
        (json!("single"), json!("dup"))
    );
    std::fs::write(
        loops.mount_root().join("grow/f"),
        vec![1u8; 8 * MIB as usize],
    )
    .unwrap();

    assert_problem(
        d.post(
            "/api/v1/pools/grow/balance",
            json!({"data_profile": "raid1"}),
        )
        .await,
        422,
        "invalid_profile",
    )
    .await;
    job_ok(
        &d,
        d.post("/api/v1/pools/grow/devices", json!({"device": b}))
            .await,
    )
    .await;
    assert_eq!(
        pool(&d, "grow").await["members"].as_array().unwrap().len(),
        2
    );
    let j = job_ok(
        &d,
        d.post(
            "/api/v1/pools/grow/balance",
            json!({"data_profile": "raid1", "metadata_profile": "raid1"}),
        )
        .await,
    )
    .await;
    assert_eq!(j["progress"], 100);
    let p = pool(&d, "grow").await;
    assert_eq!(
        (p["data_profile"].clone(), p["metadata_profile"].clone()),
        (json!("raid1"), json!("raid1"))
    );

    job_ok(
        &d,
        d.post("/api/v1/pools/grow/devices", json!({"device": c}))
            .await,
    )
    .await;
    job_ok(
        &d,
        d.post(
            "/api/v1/pools/grow/balance",
            json!({"metadata_profile": "raid1c3"}),
        )
        .await,
    )
    .await;
    assert_eq!(pool(&d, "grow").await["metadata_profile"], "raid1c3");

    // Replace c by the spare.
    let idc = disk(&d, c).await["id"].as_str().unwrap().to_string();
    let ids = disk(&d, spare).await["id"].as_str().unwrap().to_string();
    job_ok(
        &d,
        d.post(
            &format!("/api/v1/pools/grow/devices/{idc}/replace"),
            json!({"device": spare}),
        )
        .await,
    )
    .await;
    let p = pool(&d, "grow").await;
    let ids_now = member_ids(&p);
    assert!(ids_now.contains(&ids) && !ids_now.contains(&idc), "{p}");
    assert!(
        p["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["present"] == true)
    );
    assert!(disk(&d, c).await["pool"].is_null());

    // raid1c3 needs three devices: removing one is refused until the profile changes.
    let r = d
        .send(
            "DELETE",
            &format!("/api/v1/pools/grow/devices/{ids}"),
            Some(&d.token.clone()),
            None,
        )
        .await;
    assert_problem(r, 409, "profile_needs_devices").await;
    job_ok(
        &d,
        d.post(
            "/api/v1/pools/grow/balance",
            json!({"metadata_profile": "raid1"}),
        )
        .await,
    )
    .await;
    job_ok(
        &d,
        d.send(
            "DELETE",
            &format!("/api/v1/pools/grow/devices/{ids}"),
            Some(&d.token.clone()),
            None,
        )
        .await,
    )
    .await;
    let p = pool(&d, "grow").await;
    assert_eq!(p["members"].as_array().unwrap().len(), 2);
    assert_eq!(p["health"], "online", "{p}");
    assert_eq!(
        std::fs::read(loops.mount_root().join("grow/f"))
            .unwrap()
            .len(),
        8 * MIB as usize
    );
    // Someone else's disk is not the pool's to remove.
    assert_problem(
        d.send(
            "DELETE",
            "/api/v1/pools/grow/devices/nope",
            Some(&d.token.clone()),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

/// Bind mounts of a pool dataset (what the NFS shares make under `.nfs-exports`) are the
/// pool's own mounts: device replace and remove go ahead; destroy, which would wipe disks whose
/// filesystem stays mounted there, still refuses.
#[tokio::test]
async fn bind_mounts_of_the_pool_do_not_block_replace_or_remove() {
    // 512 MiB: on 256 MiB members, relocating the metadata chunk can run out of space.
    let loops = Loops::new(4, 512 * MIB);
    let l = devs(&loops);
    let (a, b, c, spare) = (l[0], l[1], l[2], l[3]);
    let d = daemon(&loops, &l);
    job_ok(&d, d.post("/api/v1/pools", json!({"name": "tank", "kind": "btrfs", "devices": [a, b, c], "data_profile": "raid1", "metadata_profile": "raid1"})).await).await;
    let r = d
        .post("/api/v1/pools/tank/datasets", json!({"name": "media"}))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let mp = loops.mount_root().join("tank");
    std::fs::write(mp.join("media/f"), vec![3u8; 4 * MIB as usize]).unwrap();
    // Like the NFS export binds: one under the mount root, one elsewhere (both in the temp
    // dir, so the loops' guard unmounts them, also on panic).
    let binds = [
        loops.mount_root().join(".nfs-exports/1"),
        loops.dir.path().join("elsewhere"),
    ];
    for bdir in &binds {
        std::fs::create_dir_all(bdir).unwrap();
        run(
            "mount",
            &[
                "--bind",
                mp.join("media").to_str().unwrap(),
                bdir.to_str().unwrap(),
            ],
        );
    }
    assert!(
        disk(&d, c).await["mountpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == binds[0].to_str().unwrap()),
        "the bind shows on the member"
    );

    let idc = disk(&d, c).await["id"].as_str().unwrap().to_string();
    let ids = disk(&d, spare).await["id"].as_str().unwrap().to_string();
    job_ok(
        &d,
        d.post(
            &format!("/api/v1/pools/tank/devices/{}/replace", Loops::name(c)),
            json!({"device": spare}),
        )
        .await,
    )
    .await;
    let ids_now = member_ids(&pool(&d, "tank").await);
    assert!(
        ids_now.contains(&ids) && !ids_now.contains(&idc),
        "{ids_now:?}"
    );
    job_ok(
        &d,
        d.send(
            "DELETE",
            &format!("/api/v1/pools/tank/devices/{}", Loops::name(spare)),
            Some(&d.token.clone()),
            None,
        )
        .await,
    )
    .await;
    let p = pool(&d, "tank").await;
    assert_eq!(p["members"].as_array().unwrap().len(), 2, "{p}");
    for bdir in &binds {
        assert_eq!(
            std::fs::read(bdir.join("f")).unwrap().len(),
            4 * MIB as usize
        );
    }

    // Destroy would wipe disks still mounted at the binds.
    assert_problem(
        d.send(
            "DELETE",
            "/api/v1/pools/tank?confirm=tank",
            Some(&d.token.clone()),
            None,
        )
        .await,
        409,
        "disk_mounted",
    )
    .await;
}

async fn patch_ds(d: &Daemon, path: &str, body: Value) -> reqwest::Response {
    d.send("PATCH", path, Some(&d.token.clone()), Some(body))
        .await
}

/// A quota below what a dataset uses is refused (422 `quota_below_usage`, the usage in the
/// detail); a dataset already over its limit (as an older version could leave it) can still
/// have its quota raised and removed; sizes may be strings such as "100M" or "1.5G".
#[tokio::test]
async fn quota_below_usage_is_refused_and_never_wedges() {
    let loops = Loops::new(1, 512 * MIB);
    let a = loops.devs[0].clone();
    let d = daemon(&loops, &[&a]);
    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "qt", "kind": "btrfs", "devices": [a]}),
        )
        .await,
    )
    .await;
    let mp = loops.mount_root().join("qt");
    let r = d
        .post(
            "/api/v1/pools/qt/datasets",
            json!({"name": "media", "quota": "50M"}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(r.json::<Value>().await.unwrap()["quota"], 50 * MIB);
    let url = "/api/v1/pools/qt/datasets/media";
    assert_eq!(patch_ds(&d, url, json!({"quota": 0})).await.status(), 200);
    std::fs::write(mp.join("media/f"), vec![9u8; 24 * MIB as usize]).unwrap();
    run("sync", &[]);

    let body = assert_problem(
        patch_ds(&d, url, json!({"quota": 1})).await,
        422,
        "quota_below_usage",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("MiB") && detail.contains("uses"), "{body}");
    assert_problem(
        patch_ds(&d, url, json!({"quota": "10M"})).await,
        422,
        "quota_below_usage",
    )
    .await;
    assert!(d.get_json(url).await["quota"].is_null());
    assert_problem(
        patch_ds(&d, url, json!({"quota": "12X"})).await,
        422,
        "invalid_size",
    )
    .await;
    let r = patch_ds(&d, url, json!({"quota": "1.5G"})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(r.json::<Value>().await.unwrap()["quota"], 3 * (1u64 << 29));

    // Over its limit behind hostplane's back: raising and removing still work.
    let id = d.get_json(url).await["subvolume_id"].as_u64().unwrap();
    run(
        "btrfs",
        &[
            "qgroup",
            "limit",
            "1M",
            &format!("0/{id}"),
            mp.to_str().unwrap(),
        ],
    );
    let r = patch_ds(&d, url, json!({"quota": "100M"})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(r.json::<Value>().await.unwrap()["quota"], 100 * MIB);
    run(
        "btrfs",
        &[
            "qgroup",
            "limit",
            "1M",
            &format!("0/{id}"),
            mp.to_str().unwrap(),
        ],
    );
    let r = patch_ds(&d, url, json!({"quota": 0})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(r.json::<Value>().await.unwrap()["quota"].is_null());
    std::fs::write(mp.join("media/g"), vec![1u8; MIB as usize]).unwrap();
}

#[tokio::test]
async fn single_disk_mergerfs_and_import() {
    let mut loops = Loops::new(2, 128 * MIB);
    let xfs = loops.attach(512 * MIB);
    let m1 = loops.attach(128 * MIB);
    let m2 = loops.attach(128 * MIB);
    let parity = loops.attach(128 * MIB);
    let foreign = loops.attach(128 * MIB);
    let m3 = loops.attach(128 * MIB);
    let (e4, spare) = (loops.devs[0].clone(), loops.devs[1].clone());
    let d = daemon(&loops, &[&e4, &spare, &xfs, &m1, &m2, &parity, &m3]);
    let root = loops.mount_root();

    // ext4: directories as datasets; no quota, no snapshots, no scrub.
    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "plain", "kind": "ext4", "devices": [e4]}),
        )
        .await,
    )
    .await;
    let p = pool(&d, "plain").await;
    assert_eq!(
        (
            p["mounted"].clone(),
            p["health"].clone(),
            p["quotas"].clone()
        ),
        (json!(true), json!("online"), json!(false))
    );
    let r = d
        .post("/api/v1/pools/plain/datasets", json!({"name": "share"}))
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["kind"], "directory");
    assert!(root.join("plain/share").is_dir());
    let names: Vec<Value> = d
        .get_json("/api/v1/pools/plain/datasets")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].clone())
        .collect();
    assert_eq!(names, [json!("share")], "lost+found is not a dataset");
    assert_problem(
        d.post(
            "/api/v1/pools/plain/datasets",
            json!({"name": "q", "quota": MIB}),
        )
        .await,
        501,
        "quota_unsupported",
    )
    .await;
    assert_problem(
        d.post("/api/v1/pools/plain/datasets/share/snapshots", json!({}))
            .await,
        501,
        "snapshots_unsupported",
    )
    .await;
    assert_problem(
        d.post("/api/v1/pools/plain/scrub", json!({})).await,
        501,
        "unsupported_for_pool_kind",
    )
    .await;

    // xfs.
    assert_problem(
        d.post(
            "/api/v1/pools",
            json!({"name": "x", "kind": "xfs", "devices": [spare]}),
        )
        .await,
        422,
        "device_too_small",
    )
    .await;
    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "fast", "kind": "xfs", "devices": [xfs]}),
        )
        .await,
    )
    .await;
    let p = pool(&d, "fast").await;
    assert_eq!(
        (p["kind"].clone(), p["health"].clone()),
        (json!("xfs"), json!("online"))
    );
    assert!(is_mounted(&root.join("fast")));

    // mergerfs over two ext4 members with snapraid parity.
    job_ok(
        &d,
        d.post("/api/v1/pools", json!({"name": "media", "kind": "mergerfs", "devices": [m1, m2], "parity_devices": [parity], "min_free_space": 8 * MIB})).await,
    )
    .await;
    let p = pool(&d, "media").await;
    assert_eq!(p["health"], "online", "{p}");
    assert_eq!(p["snapraid"], true);
    let members = p["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members.iter().filter(|m| m["role"] == "parity").count(), 1);
    for m in members {
        assert!(
            is_mounted(Path::new(m["mountpoint"].as_str().unwrap())),
            "{m}"
        );
    }
    let r = d
        .post("/api/v1/pools/media/datasets", json!({"name": "films"}))
        .await;
    assert_eq!(r.status(), 201);
    std::fs::write(root.join("media/films/a.mkv"), vec![3u8; MIB as usize]).unwrap();
    let on_member = members.iter().filter(|m| m["role"] == "data").any(|m| {
        PathBuf::from(m["mountpoint"].as_str().unwrap())
            .join("films/a.mkv")
            .exists()
    });
    assert!(on_member, "the file lives on a member");
    let j = job_done(&d, d.post("/api/v1/pools/media/scrub", json!({})).await).await;
    assert_eq!(j["status"], "success", "{j}");

    // Members come and go at run time (mergerfs' control file): a new branch, then out again;
    // a member holding files is refused.
    job_ok(
        &d,
        d.post("/api/v1/pools/media/devices", json!({"device": m3}))
            .await,
    )
    .await;
    let p = pool(&d, "media").await;
    assert_eq!(p["members"].as_array().unwrap().len(), 4);
    let branches = xattr(&root.join("media/.mergerfs"), "user.mergerfs.branches");
    assert_eq!(branches.matches('=').count(), 3, "{branches}");
    let id3 = disk(&d, &m3).await["id"].as_str().unwrap().to_string();
    assert_eq!(disk(&d, &m3).await["pool"], "media");
    job_ok(
        &d,
        d.send(
            "DELETE",
            &format!("/api/v1/pools/media/devices/{id3}"),
            Some(&d.token.clone()),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        pool(&d, "media").await["members"].as_array().unwrap().len(),
        3
    );
    assert!(disk(&d, &m3).await["pool"].is_null());
    let holder = members
        .iter()
        .find(|m| {
            PathBuf::from(m["mountpoint"].as_str().unwrap())
                .join("films/a.mkv")
                .exists()
        })
        .unwrap();
    let r = d
        .send(
            "DELETE",
            &format!(
                "/api/v1/pools/media/devices/{}",
                holder["disk"].as_str().unwrap()
            ),
            Some(&d.token.clone()),
            None,
        )
        .await;
    assert_problem(r, 409, "member_not_empty").await;
    assert!(root.join("media/films/a.mkv").exists());

    // Export keeps the data; import brings the pool back under a new name.
    std::fs::write(root.join("plain/share/keep.txt"), "kept").unwrap();
    let r = d.post("/api/v1/pools/plain/export", json!({})).await;
    assert_eq!(r.status(), 204);
    assert!(!is_mounted(&root.join("plain")));
    run("mkfs.ext4", &["-q", &foreign]);
    let imp = d.get_json("/api/v1/pools/importable").await;
    let mine = imp
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["devices"][0] == e4.as_str())
        .expect("exported fs importable")
        .clone();
    assert_eq!(
        (mine["kind"].clone(), mine["allowed"].clone()),
        (json!("ext4"), json!(true))
    );
    let other = imp
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["devices"][0] == foreign.as_str())
        .expect("foreign fs listed");
    assert_eq!(other["allowed"], false);
    assert_problem(
        d.post(
            "/api/v1/pools/import",
            json!({"name": "theirs", "uuid": other["uuid"]}),
        )
        .await,
        409,
        "disk_not_allowed",
    )
    .await;
    assert_problem(
        d.post(
            "/api/v1/pools/import",
            json!({"name": "again", "uuid": "nope"}),
        )
        .await,
        422,
        "unknown_filesystem",
    )
    .await;
    job_ok(
        &d,
        d.post(
            "/api/v1/pools/import",
            json!({"name": "again", "uuid": mine["uuid"]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(root.join("again/share/keep.txt")).unwrap(),
        "kept"
    );
    assert_eq!(pool(&d, "again").await["health"], "online");

    // Destroy the mergerfs pool: members and parity wiped, mounts gone.
    job_ok(
        &d,
        d.send(
            "DELETE",
            "/api/v1/pools/media?confirm=media",
            Some(&d.token.clone()),
            None,
        )
        .await,
    )
    .await;
    assert!(!is_mounted(&root.join("media")));
    assert!(
        loops
            .our_mounts()
            .iter()
            .all(|m| !m.contains("/.members/media")),
        "{:?}",
        loops.our_mounts()
    );
    assert!(disk(&d, &m1).await["filesystem"].is_null());
}
