//! `/api/v1/disks` against real loop devices: listing with stable ids, `skipStandby` proven
//! I/O-free by the kernel's counters, `performance`, the refusal rules of the destructive jobs
//! (root disk, allow-list, mounted, pool member), wipe/partition/format, and disk add/remove
//! events from kernel uevents. SMART and hdparm do not work on loop devices: their parsers are
//! tested on saved output in crates/host/tests/smart.rs; here the API must answer 501.

mod common;
mod storage_util;

use std::time::Duration;

use common::{Daemon, Opts, assert_problem};
use futures_util::StreamExt;
use serde_json::{Value, json};
use storage_util::{Loops, disk, job_ok, run};

fn daemon(loops: &Loops, allow: &[&str]) -> Daemon {
    let extra_args = if allow.is_empty() {
        Vec::new()
    } else {
        vec!["--disks-allow".into(), Loops::allow(allow)]
    };
    Daemon::start_with(Opts {
        config: Some(loops.config()),
        extra_args,
        ..Default::default()
    })
}

#[tokio::test]
async fn list_get_performance_and_skip_standby_without_io() {
    let loops = Loops::new(2, 64 << 20);
    let (a, b) = (loops.devs[0].clone(), loops.devs[1].clone());
    run("mkfs.ext4", &["-q", "-L", "listed", &a]);
    let d = daemon(&loops, &[&a]);

    let da = disk(&d, &a).await;
    let db = disk(&d, &b).await;
    // Loops have no serial: the id follows the backing file.
    assert_eq!(da["id_source"], "backing_file");
    assert!(da["id"].as_str().unwrap().starts_with("loop-"), "{da}");
    assert_ne!(da["id"], db["id"]);
    assert_eq!(da["kind"], "loop");
    assert_eq!(da["size_bytes"], 64 << 20);
    assert_eq!(da["logical_sector_size"], 512);
    assert_eq!(da["backing_file"], loops.images[0].to_str().unwrap());
    assert_eq!(da["allowed"], true);
    assert_eq!(db["allowed"], false);
    assert_eq!(da["power_state"], "unknown");
    assert_eq!(da["holds_root"], false);
    // Found by the blkid probe (there is no udev database here).
    assert_eq!(da["filesystem"]["fstype"], "ext4", "{da}");
    assert_eq!(da["filesystem"]["label"], "listed");
    assert!(da.get("performance").is_none());
    let root: Vec<Value> = d
        .get_json("/api/v1/disks")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["holds_root"] == true)
        .cloned()
        .collect();
    assert_eq!(root.len(), 1, "exactly one disk holds /");
    assert!(
        root[0]["mountpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "/")
    );

    // By id and by kernel name.
    let id = da["id"].as_str().unwrap();
    assert_eq!(d.get_json(&format!("/api/v1/disks/{id}")).await["path"], a);
    assert_eq!(
        d.get_json(&format!("/api/v1/disks/{}", Loops::name(&a)))
            .await["id"],
        id
    );
    assert_problem(d.get("/api/v1/disks/no-such-disk").await, 404, "not_found").await;

    // skipStandby: nothing is read from any disk (counters unchanged), so the filesystem of
    // an unmounted loop is unknown without udev. Every daemon's default listing probes every
    // disk, ours too: the tests whose daemons list disks (storage, shares, the fuzz corpus, the
    // auth matrix) are in nextest's `host-storage` group, so none runs while this one counts.
    let before_a = Loops::io_counters(&a);
    let before_b = Loops::io_counters(&b);
    let list = d.get_json("/api/v1/disks?skipStandby=true").await;
    assert_eq!(
        Loops::io_counters(&a),
        before_a,
        "skipStandby read from {a}"
    );
    assert_eq!(
        Loops::io_counters(&b),
        before_b,
        "skipStandby read from {b}"
    );
    let sa = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["path"] == a)
        .unwrap();
    assert_eq!(sa["id"], id);
    assert!(sa["filesystem"].is_null(), "{sa}");
    // The default listing does probe (and may read).
    let _ = d.get_json("/api/v1/disks").await;

    // performance=true: rates sampled over 250 ms; reads during the sample show up.
    // The sample follows the scan: the reader runs until the answer is in.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let a = a.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(&a)
                .unwrap();
            let layout = std::alloc::Layout::from_size_align(1 << 20, 4096).unwrap();
            let buf = unsafe { std::slice::from_raw_parts_mut(std::alloc::alloc(layout), 1 << 20) };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Start(0)).unwrap();
                for _ in 0..8 {
                    f.read_exact(buf).unwrap();
                }
            }
            unsafe { std::alloc::dealloc(buf.as_mut_ptr(), layout) };
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let list = d.get_json("/api/v1/disks?performance=true").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    let pa = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["path"] == a)
        .unwrap();
    let perf = &pa["performance"];
    assert!(perf["interval_ms"].as_u64().unwrap() >= 250, "{perf}");
    assert!(perf["read_bytes_per_sec"].as_f64().unwrap() > 0.0, "{perf}");
    assert!(perf["read_iops"].as_f64().unwrap() > 0.0, "{perf}");
    for k in ["write_bytes_per_sec", "write_iops", "utilization_percent"] {
        assert!(perf[k].is_number(), "{k}: {perf}");
    }

    // Collection parameters work on disks too.
    let r = d
        .get("/api/v1/disks?filter=kind:loop%20allowed:true&fields=id,path")
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v.as_array().unwrap().iter().any(|x| x["path"] == a));
    assert!(v.as_array().unwrap().iter().all(|x| x["path"] != b));

    // SMART and power management do not exist on loop devices.
    assert_problem(
        d.get(&format!("/api/v1/disks/{id}/smart")).await,
        501,
        "smart_unsupported",
    )
    .await;
    assert_problem(
        d.post(&format!("/api/v1/disks/{id}/standby"), json!({}))
            .await,
        501,
        "power_management_unsupported",
    )
    .await;
    assert_problem(
        d.post(&format!("/api/v1/disks/{id}/wake"), json!({})).await,
        501,
        "power_management_unsupported",
    )
    .await;
    let rid = root[0]["id"].as_str().unwrap();
    assert_problem(
        d.post(&format!("/api/v1/disks/{rid}/standby"), json!({}))
            .await,
        409,
        "disk_holds_root",
    )
    .await;
}

/// `performance=true` does not measure the listing's own probe: the blkid reads of idle,
/// unmounted loops happen before the sample, so idle devices read 0 bytes/s. (Another
/// daemon's listing, from a test running alongside, probes these loops too: one clean sample
/// out of a few is the proof; with the probe inside the window every sample counted it.)
#[tokio::test]
async fn performance_of_idle_disks_is_zero() {
    let loops = Loops::new(2, 64 << 20);
    let (a, b) = (loops.devs[0].clone(), loops.devs[1].clone());
    run("mkfs.ext4", &["-q", "-L", "idle", &a]);
    let d = daemon(&loops, &[&a]);
    let mut seen = Vec::new();
    for _ in 0..8 {
        // Each listing probes both (no udev database here): that reads them.
        let before = (Loops::io_counters(&a)[0], Loops::io_counters(&b)[0]);
        let list = d.get_json("/api/v1/disks?performance=true").await;
        let after = (Loops::io_counters(&a)[0], Loops::io_counters(&b)[0]);
        assert!(
            after.0 > before.0 && after.1 > before.1,
            "the probe read them"
        );
        let perf: Vec<Value> = [&a, &b]
            .iter()
            .map(|dev| {
                list.as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["path"] == dev.as_str())
                    .unwrap()["performance"]
                    .clone()
            })
            .collect();
        if perf.iter().all(|p| {
            p["read_bytes_per_sec"].as_f64() == Some(0.0) && p["read_iops"].as_f64() == Some(0.0)
        }) {
            return;
        }
        seen.push(perf);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("idle loops never read 0 B/s: {seen:?}");
}

#[tokio::test]
async fn destructive_jobs_follow_the_refusal_rules() {
    let loops = Loops::new(3, 64 << 20);
    let (a, b, c) = (
        loops.devs[0].clone(),
        loops.devs[1].clone(),
        loops.devs[2].clone(),
    );
    let d = daemon(&loops, &[&a, &b]);

    // Outside disks.allow.
    let idc = disk(&d, &c).await["id"].as_str().unwrap().to_string();
    assert_problem(
        d.post(&format!("/api/v1/disks/{idc}/wipe"), json!({}))
            .await,
        409,
        "disk_not_allowed",
    )
    .await;
    assert_problem(
        d.post(
            &format!("/api/v1/disks/{idc}/format"),
            json!({"filesystem": "ext4"}),
        )
        .await,
        409,
        "disk_not_allowed",
    )
    .await;
    // The root disk, whatever the allow-list says.
    let list = d.get_json("/api/v1/disks").await;
    let root = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["holds_root"] == true)
        .unwrap();
    let rid = root["id"].as_str().unwrap();
    for op in ["wipe", "partition"] {
        assert_problem(
            d.post(&format!("/api/v1/disks/{rid}/{op}"), json!({}))
                .await,
            409,
            "disk_holds_root",
        )
        .await;
    }
    // Operators may not destroy data; bad input is 422.
    let op = d.token_for_role("disk-operator", "operator").await;
    let ida = disk(&d, &a).await["id"].as_str().unwrap().to_string();
    assert_problem(
        d.send(
            "POST",
            &format!("/api/v1/disks/{ida}/wipe"),
            Some(&op),
            Some(json!({})),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        d.post(
            &format!("/api/v1/disks/{ida}/format"),
            json!({"filesystem": "ext4", "label": "-bad"}),
        )
        .await,
        422,
        "invalid_label",
    )
    .await;
    assert_problem(
        d.post(
            &format!("/api/v1/disks/{ida}/format"),
            json!({"filesystem": "xfs"}),
        )
        .await,
        422,
        "device_too_small",
    )
    .await;
    assert_problem(
        d.post(
            &format!("/api/v1/disks/{ida}/format"),
            json!({"filesystem": "ext4", "partition": 3}),
        )
        .await,
        422,
        "invalid_partition",
    )
    .await;
    assert_problem(
        d.post(
            &format!("/api/v1/disks/{ida}/format"),
            json!({"filesystem": "ntfs"}),
        )
        .await,
        422,
        "invalid_body",
    )
    .await;

    // Format the whole disk.
    let j = job_ok(
        &d,
        d.post(
            &format!("/api/v1/disks/{ida}/format"),
            json!({"filesystem": "ext4", "label": "first"}),
        )
        .await,
    )
    .await;
    assert_eq!(j["result"]["filesystem"], "ext4");
    assert!(j["result"]["uuid"].is_string(), "{j}");
    let da = disk(&d, &a).await;
    assert_eq!(da["filesystem"]["fstype"], "ext4");
    assert_eq!(da["filesystem"]["label"], "first");

    // Mounted: refused, and the listing shows the mount and usage.
    let mnt = loops.dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    run("mount", &[&a, mnt.to_str().unwrap()]);
    let da = disk(&d, &a).await;
    assert_eq!(da["mountpoints"][0], mnt.to_str().unwrap());
    assert_eq!(da["in_use"], true);
    assert!(da["filesystem"]["size_bytes"].as_u64().unwrap() > 0, "{da}");
    assert_problem(
        d.post(&format!("/api/v1/disks/{ida}/wipe"), json!({}))
            .await,
        409,
        "disk_mounted",
    )
    .await;
    run("umount", &[mnt.to_str().unwrap()]);

    // Partition: two GPT partitions, the first named.
    let idb = disk(&d, &b).await["id"].as_str().unwrap().to_string();
    assert_problem(
        d.post(
            &format!("/api/v1/disks/{idb}/partition"),
            json!({"partitions": [{}, {"size_bytes": 1048576}]}),
        )
        .await,
        422,
        "invalid_size",
    )
    .await;
    assert_problem(
        d.post(
            &format!("/api/v1/disks/{idb}/partition"),
            json!({"partitions": [{"size_bytes": 1u64 << 40}]}),
        )
        .await,
        422,
        "invalid_size",
    )
    .await;
    job_ok(
        &d,
        d.post(
            &format!("/api/v1/disks/{idb}/partition"),
            json!({"partitions": [{"size_bytes": 16u64 << 20, "name": "data1"}, {"type": "linux"}]}),
        )
        .await,
    )
    .await;
    let db = disk(&d, &b).await;
    let parts = db["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{db}");
    assert_eq!(parts[0]["number"], 1);
    assert_eq!(parts[0]["size_bytes"], 16 << 20);
    assert_eq!(parts[0]["start"], 1 << 20);
    assert_eq!(parts[0]["part_label"], "data1");
    assert_eq!(db["partition_table"], "gpt");
    for p in [1, 2] {
        assert!(
            kernel_partition(&b, p).exists(),
            "the kernel does not know partition {p} of {b}"
        );
    }
    // Format partition 2.
    job_ok(
        &d,
        d.post(
            &format!("/api/v1/disks/{idb}/format"),
            json!({"filesystem": "ext4", "label": "p2", "partition": 2}),
        )
        .await,
    )
    .await;
    let db = disk(&d, &b).await;
    assert_eq!(db["partitions"][1]["filesystem"]["fstype"], "ext4", "{db}");
    assert_eq!(db["partitions"][1]["filesystem"]["label"], "p2");
    assert!(db["filesystem"].is_null());
    // Wipe: signatures and partitions gone.
    let j = job_ok(
        &d,
        d.post(&format!("/api/v1/disks/{idb}/wipe"), json!({}))
            .await,
    )
    .await;
    assert_eq!(j["result"]["wiped"].as_array().unwrap().len(), 3, "{j}");
    let db = disk(&d, &b).await;
    assert!(db["partitions"].as_array().unwrap().is_empty(), "{db}");
    assert!(db["partition_table"].is_null(), "{db}");
    // And the kernel forgot them (sysfs, not /dev: without udev stale nodes may stay).
    for p in [1, 2] {
        let part = kernel_partition(&b, p);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while part.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} still exists after the wipe",
                part.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `/sys/block/loopN/loopNpP`: the kernel's view of partition `p` of a loop device.
fn kernel_partition(dev: &str, p: u32) -> std::path::PathBuf {
    let name = Loops::name(dev);
    std::path::PathBuf::from(format!("/sys/block/{name}/{name}p{p}"))
}

async fn read_events(resp: reqwest::Response, want: impl Fn(&Value) -> bool) -> Value {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
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
                if let Some(v) = line.strip_prefix("data:") {
                    let ev: Value = serde_json::from_str(v.trim()).unwrap();
                    if want(&ev) {
                        return ev;
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn loop_attach_and_detach_are_disk_events() {
    let mut loops = Loops::new(0, 0);
    let d = daemon(&loops, &[]);
    // The uevent listener is subscribed before the daemon writes ready.json: no wait needed.
    let sub = || async {
        let r = d
            .client
            .get(d.url("/api/v1/events?type=resource.*"))
            .bearer_auth(&d.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r
    };
    let stream = sub().await;
    let dev = loops.attach(32 << 20);
    let name = Loops::name(&dev).to_string();
    let ev = read_events(stream, |e| {
        e["type"] == "resource.created" && e["data"]["name"] == name.as_str()
    })
    .await;
    let href = ev["href"].as_str().unwrap().to_string();
    assert!(href.starts_with("/api/v1/disks/loop-"), "{ev}");
    assert_eq!(ev["data"]["path"], dev);
    assert_eq!(ev["actor"], "system");
    // The href answers, and the event's data is the disk in the shape that GET shows.
    let got = d.get_json(&href).await;
    assert_eq!(got["path"], dev);
    for k in ["id", "href", "name", "path", "size_bytes", "id_source"] {
        assert_eq!(ev["data"][k], got[k], "{k}: {ev}");
    }

    let stream = sub().await;
    loops.detach(&dev);
    let ev = read_events(stream, |e| {
        e["type"] == "resource.deleted" && e["data"]["name"] == name.as_str()
    })
    .await;
    assert_eq!(ev["href"], href);
    assert_eq!(ev["data"]["href"], href, "{ev}");
    assert_eq!(ev["data"]["size_bytes"], got["size_bytes"], "{ev}");
    assert_problem(d.get(&href).await, 404, "not_found").await;
}
