//! Containers, input and output, on real engines (dockerd and podman on private sockets, see
//! `engine_util`): the exec terminal over its WebSocket (ticket, resize, output, exit code, a
//! used ticket refused), files as tar in and out, volumes and networks under the engine, and a
//! volume backup into a real btrfs pool on a loop device → the volume deleted → restored →
//! the data back; a container bind-mounting a pool dataset keeps the pool from being destroyed.

mod common;
mod engine_util;
mod storage_util;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{Daemon, Opts, assert_problem};
use engine_util::{Engine, Kind, busybox_rootfs};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use storage_util::{Loops, job_ok};
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1 << 20;

async fn send(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> reqwest::Response {
    d.send(method, path, Some(&d.token.clone()), body).await
}

async fn ok_json(r: reqwest::Response, status: u16) -> Value {
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(st, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// The files of a tar: name → content.
fn untar(t: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(t);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((name, data));
    }
    out
}

async fn put_tar(d: &Daemon, path: &str, body: Vec<u8>) -> reqwest::Response {
    d.client
        .put(d.url(path))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(body)
        .send()
        .await
        .unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads the terminal until `want` shows up in its output (or 20 s pass); returns the output.
async fn read_until(ws: &mut Ws, out: &mut String, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => out.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(Ok(_))) => {}
            other => panic!("terminal ended before {want:?}: {other:?}; output so far: {out:?}"),
        }
    }
}

/// Reads until the `exit` control message; answers its code.
async fn exit_code(ws: &mut Ws) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "exit" {
                    return v["code"].clone();
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no exit message: {other:?}"),
        }
    }
}

async fn terminal(d: &Daemon, ws_url: &str) -> Result<Ws, String> {
    let url = format!("ws://127.0.0.1:{}{ws_url}", d.port);
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

async fn scenario(kind: Kind) {
    let t0 = Instant::now();
    let engine = Engine::start(kind);
    let en = match kind {
        Kind::Docker => "docker",
        Kind::Podman => "podman",
    };
    let loops = Loops::new(1, 256 * MIB);
    let dev = loops.devs[0].clone();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "{}[containers]\ntimeout_secs = 20\n[[containers.engines]]\nname = \"{en}\"\nsocket = \"{}\"\n",
            loops.config(),
            engine.socket_url()
        )),
        extra_args: vec!["--disks-allow".into(), Loops::allow(&[&dev])],
        ..Default::default()
    });
    let r = d
        .client
        .post(d.url(&format!(
            "/api/v1/container-engines/{en}/images/import?repo=localhost/hp-io&tag=t1"
        )))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(busybox_rootfs())
        .send()
        .await
        .unwrap();
    ok_json(r, 201).await;
    let base = format!("/api/v1/containers/{en}");
    ok_json(
        send(
            &d,
            "POST",
            &base,
            Some(
                json!({"name": "io1", "image": "localhost/hp-io:t1", "cmd": ["sleep", "600"],
                "network": "none", "volumes": [{"name": "data1", "target": "/data"}]}),
            ),
        )
        .await,
        201,
    )
    .await;
    ok_json(
        send(&d, "POST", &format!("{base}/io1/start"), None).await,
        200,
    )
    .await;

    // The terminal: a ticket, resize, output, exit code; the ticket works once.
    let t_exec = Instant::now();
    let ticket = ok_json(
        send(
            &d,
            "POST",
            &format!("{base}/io1/exec"),
            Some(json!({"cmd": ["sh"], "tty": true, "env": {"HP_X": "terminal-ok"}})),
        )
        .await,
        201,
    )
    .await;
    let ws_url = ticket["ws_url"].as_str().unwrap().to_string();
    assert!(ws_url.starts_with(&format!("{base}/io1/exec/")), "{ticket}");
    let mut ws = terminal(&d, &ws_url).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "resize", "cols": 101, "rows": 33})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Binary(
        b"echo $HP_X; stty size; exit 3\n".to_vec().into(),
    ))
    .await
    .unwrap();
    let mut out = String::new();
    read_until(&mut ws, &mut out, "33 101").await;
    assert!(out.contains("terminal-ok"), "{out:?}");
    assert_eq!(exit_code(&mut ws).await, json!(3), "{out:?}");
    let exec_secs = t_exec.elapsed().as_secs_f64();
    let again = terminal(&d, &ws_url).await;
    assert!(
        again.as_ref().is_err_and(|e| e.contains("401")),
        "a used ticket opened a terminal: {:?}",
        again.map(|_| ())
    );
    // A terminal is admin-only, like every exec; a stopped container has none.
    let op = d.token_for_role("ioop", "operator").await;
    let r = d
        .send(
            "POST",
            &format!("{base}/io1/exec"),
            Some(&op),
            Some(json!({"cmd": ["sh"], "tty": true})),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;

    // Files: a tar in, the same files out; bad paths and escaping entries refused.
    let t = tar_of(&[
        ("hello.txt", b"hello files\n"),
        ("sub/x.bin", &[0u8, 1, 2, 255]),
    ]);
    let r = put_tar(&d, &format!("{base}/io1/files?path=/tmp"), t).await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = send(
        &d,
        "GET",
        &format!("{base}/io1/files?path=/tmp/hello.txt"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let files = untar(&r.bytes().await.unwrap());
    assert_eq!(
        files,
        vec![("hello.txt".to_string(), b"hello files\n".to_vec())]
    );
    let r = send(&d, "GET", &format!("{base}/io1/files?path=/tmp/sub"), None).await;
    let files = untar(&r.bytes().await.unwrap());
    assert!(
        files.contains(&("sub/x.bin".to_string(), vec![0u8, 1, 2, 255])),
        "{files:?}"
    );
    for path in ["tmp", "/tmp/../etc", "/tmp/./x"] {
        let r = send(&d, "GET", &format!("{base}/io1/files?path={path}"), None).await;
        assert_problem(r, 422, "invalid_path").await;
    }
    let r = send(&d, "GET", &format!("{base}/io1/files?path=/nothere"), None).await;
    assert_problem(r, 404, "not_found").await;
    let mut evil = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.as_old_mut().name[..8].copy_from_slice(b"../evil1");
    h.set_cksum();
    evil.append(&h, &b"x"[..]).unwrap();
    let r = put_tar(
        &d,
        &format!("{base}/io1/files?path=/tmp"),
        evil.into_inner().unwrap(),
    )
    .await;
    assert_problem(r, 422, "invalid_tar").await;
    let r = send(&d, "GET", &format!("{base}/io1/files?path=/evil1"), None).await;
    assert_problem(r, 404, "not_found").await;

    // Data into the volume, through the files API.
    let r = put_tar(
        &d,
        &format!("{base}/io1/files?path=/data"),
        tar_of(&[("keep.txt", b"volume data\n"), ("deep/er.txt", b"deeper\n")]),
    )
    .await;
    assert_eq!(r.status(), 204);

    // Volumes under the engine.
    let vols = format!("/api/v1/container-engines/{en}/volumes");
    let list = d.get_json(&vols).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "data1"),
        "{list}"
    );
    for bad in ["-v", "a..b", "a/b", ""] {
        let r = send(&d, "POST", &vols, Some(json!({"name": bad}))).await;
        assert_eq!(r.status(), 422, "{bad}");
    }
    ok_json(
        send(&d, "POST", &vols, Some(json!({"name": "spare1"}))).await,
        201,
    )
    .await;
    let r = send(&d, "POST", &vols, Some(json!({"name": "spare1"}))).await;
    assert_problem(r, 409, "volume_exists").await;
    let r = send(&d, "DELETE", &format!("{vols}/data1"), None).await;
    assert_problem(r, 409, "volume_in_use").await;
    let r = send(&d, "DELETE", &format!("{vols}/spare1"), None).await;
    assert_eq!(r.status(), 204);

    // A pool with a dataset for backups.
    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "tank", "kind": "btrfs", "devices": [dev]}),
        )
        .await,
    )
    .await;
    for ds in ["backups", "binds"] {
        ok_json(
            d.post("/api/v1/pools/tank/datasets", json!({"name": ds}))
                .await,
            201,
        )
        .await;
    }
    let ds_dir = loops.mount_root().join("tank/backups");

    // Backup: bad targets refused before a job; then the archive in the dataset.
    for (body, status, code) in [
        (json!({"dataset": "tank/nothere"}), 422, "unknown_dataset"),
        (json!({"dataset": "tank"}), 422, "invalid_dataset"),
        (
            json!({"dataset": "tank/backups", "file": "../x.tar.zst"}),
            422,
            "invalid_file",
        ),
    ] {
        let r = send(&d, "POST", &format!("{vols}/data1/backup"), Some(body)).await;
        assert_problem(r, status, code).await;
    }
    let r = send(
        &d,
        "POST",
        &format!("{vols}/nothere/backup"),
        Some(json!({"dataset": "tank/backups"})),
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    let t_backup = Instant::now();
    let job = job_ok(
        &d,
        send(
            &d,
            "POST",
            &format!("{vols}/data1/backup"),
            Some(json!({"dataset": "tank/backups", "file": "data1.tar.zst"})),
        )
        .await,
    )
    .await;
    let backup_secs = t_backup.elapsed().as_secs_f64();
    assert_eq!(job["result"]["file"], "data1.tar.zst", "{job}");
    let archive = ds_dir.join("data1.tar.zst");
    let raw = zstd::decode_all(std::fs::File::open(&archive).unwrap()).unwrap();
    let names: Vec<String> = untar(&raw).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().any(|n| n == "keep.txt"), "{names:?}");
    assert!(names.iter().any(|n| n == "deep/er.txt"), "{names:?}");
    assert!(
        std::fs::read_dir(&ds_dir).unwrap().count() == 1,
        "a partial file was left"
    );
    let r = send(
        &d,
        "POST",
        &format!("{vols}/data1/backup"),
        Some(json!({"dataset": "tank/backups", "file": "data1.tar.zst"})),
    )
    .await;
    assert_problem(r, 409, "file_exists").await;
    // No helper container is left behind.
    let all = d.get_json("/api/v1/containers").await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");

    // An operator binds only inside pool datasets: outside, through a symlink out of the
    // dataset, or with `..`, 422 and nothing created.
    let bind_src = loops.mount_root().join("tank/binds");
    std::os::unix::fs::symlink("/etc", bind_src.join("escape")).unwrap();
    let op = d.token_for_role(&format!("bindop-{en}"), "operator").await;
    let binder = |source: String| {
        json!({"name": "binder", "image": "localhost/hp-io:t1", "cmd": ["sleep", "600"],
            "network": "none", "mounts": [{"source": source, "target": "/srv"}]})
    };
    let before = d.get_json("/api/v1/containers").await;
    for (source, code) in [
        ("/etc".to_string(), "bind_outside_pools"),
        (
            loops.mount_root().display().to_string(),
            "bind_outside_pools",
        ),
        (
            bind_src.join("escape").display().to_string(),
            "bind_outside_pools",
        ),
        (format!("{}/../backups", bind_src.display()), "invalid_path"),
    ] {
        let r = d
            .send("POST", &base, Some(&op), Some(binder(source.clone())))
            .await;
        let p = assert_problem(r, 422, code).await;
        assert!(p.to_string().contains("mounts[0].source"), "{source}: {p}");
    }
    assert_eq!(
        d.get_json("/api/v1/containers").await,
        before,
        "a refused bind created something"
    );
    std::fs::remove_file(bind_src.join("escape")).unwrap();
    // A container an operator makes bind-mounting a dataset: the pool cannot be destroyed
    // under it.
    ok_json(
        d.send(
            "POST",
            &base,
            Some(&op),
            Some(binder(bind_src.display().to_string())),
        )
        .await,
        201,
    )
    .await;
    let p = assert_problem(
        send(&d, "DELETE", "/api/v1/pools/tank?confirm=tank", None).await,
        409,
        "in_use",
    )
    .await;
    let users = p["users"].as_array().unwrap();
    assert!(
        users.iter().any(|u| u["kind"] == "container"
            && u["name"] == format!("{en}/binder")
            && u["dataset"] == "binds"),
        "{p}"
    );
    assert_eq!(
        send(&d, "DELETE", &format!("{base}/binder"), None)
            .await
            .status(),
        204
    );

    // The volume goes away with its container, and comes back from the archive.
    assert_eq!(
        send(&d, "DELETE", &format!("{base}/io1?force=true"), None)
            .await
            .status(),
        204
    );
    assert_eq!(
        send(&d, "DELETE", &format!("{vols}/data1"), None)
            .await
            .status(),
        204
    );
    assert_problem(
        send(&d, "GET", &format!("{vols}/data1"), None).await,
        404,
        "not_found",
    )
    .await;
    let r = send(
        &d,
        "POST",
        &format!("{vols}/data1/restore"),
        Some(json!({"dataset": "tank/backups", "file": "nothere.tar.zst"})),
    )
    .await;
    assert_problem(r, 422, "unknown_file").await;
    let t_restore = Instant::now();
    job_ok(
        &d,
        send(
            &d,
            "POST",
            &format!("{vols}/data1/restore"),
            Some(json!({"dataset": "tank/backups", "file": "data1.tar.zst"})),
        )
        .await,
    )
    .await;
    let restore_secs = t_restore.elapsed().as_secs_f64();
    ok_json(
        send(
            &d,
            "POST",
            &base,
            Some(
                json!({"name": "io2", "image": "localhost/hp-io:t1", "cmd": ["sleep", "600"],
                "network": "none", "volumes": [{"name": "data1", "target": "/data"}]}),
            ),
        )
        .await,
        201,
    )
    .await;
    ok_json(
        send(&d, "POST", &format!("{base}/io2/start"), None).await,
        200,
    )
    .await;
    let res = ok_json(
        send(
            &d,
            "POST",
            &format!("{base}/io2/exec"),
            Some(json!({"cmd": ["cat", "/data/keep.txt", "/data/deep/er.txt"]})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(res["stdout"], "volume data\ndeeper\n", "{res}");
    assert_eq!(res["exit_code"], 0);
    // An archive that is not a volume backup is refused by the job, which changes nothing.
    let mut evil = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.as_old_mut().name[..11].copy_from_slice(b"../../evil2");
    h.set_cksum();
    evil.append(&h, &b"x"[..]).unwrap();
    let bogus = zstd::encode_all(&evil.into_inner().unwrap()[..], 3).unwrap();
    std::fs::write(ds_dir.join("bogus.tar.zst"), bogus).unwrap();
    let r = send(
        &d,
        "POST",
        &format!("{vols}/data1/restore"),
        Some(json!({"dataset": "tank/backups", "file": "bogus.tar.zst"})),
    )
    .await;
    let j = storage_util::job_done(&d, r).await;
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["error_code"], "invalid_archive", "{j}");
    assert_eq!(
        send(&d, "DELETE", &format!("{base}/io2?force=true"), None)
            .await
            .status(),
        204
    );

    // Networks under the engine.
    let nets = format!("/api/v1/container-engines/{en}/networks");
    let list = d.get_json(&nets).await;
    let none = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["predefined"] == true)
        .unwrap_or_else(|| panic!("no predefined network: {list}"))
        .clone();
    let r = send(
        &d,
        "DELETE",
        &format!("{nets}/{}", none["name"].as_str().unwrap()),
        None,
    )
    .await;
    assert_problem(r, 409, "network_predefined").await;
    for bad in [
        json!({"name": "-n"}),
        json!({"name": "host"}),
        json!({"name": "ok", "subnet": "10.0.0.0/40"}),
    ] {
        let r = send(&d, "POST", &nets, Some(bad.clone())).await;
        assert_eq!(r.status(), 422, "{bad}");
    }
    if kind == Kind::Podman {
        // dockerd would make a bridge device on the host for a new network; podman (CNI)
        // only writes its config (below the test's dir) until a container starts on it.
        let n = ok_json(
            send(
                &d,
                "POST",
                &nets,
                Some(json!({"name": "hpnet1", "subnet": "10.89.77.0/24"})),
            )
            .await,
            201,
        )
        .await;
        assert_eq!(n["subnets"], json!(["10.89.77.0/24"]), "{n}");
        ok_json(
            send(
                &d,
                "POST",
                &base,
                Some(
                    json!({"name": "netc", "image": "localhost/hp-io:t1", "cmd": ["true"],
                    "network": "hpnet1"}),
                ),
            )
            .await,
            201,
        )
        .await;
        let r = send(&d, "DELETE", &format!("{nets}/hpnet1"), None).await;
        assert_problem(r, 409, "network_in_use").await;
        assert_eq!(
            send(&d, "DELETE", &format!("{base}/netc"), None)
                .await
                .status(),
            204
        );
        assert_eq!(
            send(&d, "DELETE", &format!("{nets}/hpnet1"), None)
                .await
                .status(),
            204
        );
    }

    eprintln!(
        "{en}: terminal exec {exec_secs:.2} s, backup {backup_secs:.2} s, restore {restore_secs:.2} s, \
         whole scenario {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    drop(d);
    drop(engine);
    drop(loops);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_on_dockerd() {
    scenario(Kind::Docker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_on_podman() {
    scenario(Kind::Podman).await;
}
