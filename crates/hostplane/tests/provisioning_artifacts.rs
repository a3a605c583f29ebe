//! Provisioning artifacts downloaded by URL, against the real daemon and a small HTTP server on
//! loopback: `POST /provisioning/artifacts {name, url, sha256}` is a job with progress whose
//! result is the artifact, stored under its sha256; a wrong sha256 fails the job and keeps
//! nothing; a URL or a redirect to an address outside `[provisioning] url_allow` is refused
//! (the request at once, the redirect before any connection to it). With `[provisioning]
//! artifacts_storage = "<pool>/<dataset>"` the artifacts live in that dataset of a real btrfs
//! pool on a loop device, and the pool and dataset refuse to go away under them.
//! `hostplane provision artifacts fetch` starts the same job from the real CLI and follows it.

mod common;
mod storage_util;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{BIN, Daemon, Opts, assert_problem};
use hostplane_types::jobs::{Job, JobStatus};
use hostplane_types::provisioning::Artifact;
use serde_json::{Value, json};
use sha2::Digest;

/// Path → (status, extra header lines, body).
type Routes = Arc<Mutex<HashMap<String, (u16, String, Vec<u8>)>>>;

/// A one-request-per-connection HTTP/1.1 server on `bind`; its base URL and its hit count.
async fn serve(bind: &str, routes: Routes) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            h2.fetch_add(1, Ordering::SeqCst);
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split(' ').nth(1).unwrap_or("/").to_string();
                let found = routes.lock().unwrap().get(&path).cloned();
                let (status, extra, body) = found.unwrap_or((404, String::new(), Vec::new()));
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    (format!("http://{addr}"), hits)
}

async fn job_of(d: &Daemon, r: reqwest::Response) -> Value {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["kind"], "provisioning.artifact_fetch", "{v}");
    d.wait_job(v["href"].as_str().unwrap()).await
}

/// Everything in the artifact store (files and scratch files).
fn store_files(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.data_dir().join("provisioning/artifacts"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_download_by_url() {
    // 300 KiB, so the download arrives in several pieces.
    let content: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let sha = hex::encode(sha2::Sha256::digest(&content));
    let routes: Routes = Arc::default();
    let (base, _) = serve("127.0.0.1:0", routes.clone()).await;
    // 127.0.0.2 is loopback too, but not in the daemon's url_allow.
    let other_routes: Routes = Arc::default();
    let (other, other_hits) = serve("127.0.0.2:0", other_routes.clone()).await;
    other_routes
        .lock()
        .unwrap()
        .insert("/kit.tar".into(), (200, String::new(), content.clone()));
    {
        let mut r = routes.lock().unwrap();
        r.insert("/kit.tar".into(), (200, String::new(), content.clone()));
        r.insert(
            "/moved".into(),
            (302, "Location: /kit.tar\r\n".into(), Vec::new()),
        );
        r.insert(
            "/away".into(),
            (302, format!("Location: {other}/kit.tar\r\n"), Vec::new()),
        );
    }
    let d = Daemon::start_with(Opts {
        config: Some("[provisioning]\nurl_allow = [\"127.0.0.1\"]\n".into()),
        ..Opts::default()
    });

    // A download through an allowed redirect, with its sha256: a job whose result is the
    // artifact, stored under its hash.
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "kit", "url": format!("{base}/moved"), "sha256": sha}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["progress"], 100, "{job}");
    assert_eq!(job["result"]["sha256"], sha, "{job}");
    assert_eq!(job["result"]["size_bytes"], content.len(), "{job}");
    let a = d.get_json("/api/v1/provisioning/artifacts/kit").await;
    assert_eq!(a["source"], format!("{base}/moved"), "{a}");
    assert_eq!(store_files(&d), vec![sha.clone()]);
    let stored = std::fs::read(d.data_dir().join("provisioning/artifacts").join(&sha)).unwrap();
    assert_eq!(stored, content);

    // Without a sha256 the content's own is kept.
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "kit2", "url": format!("{base}/kit.tar")}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["result"]["sha256"], sha, "{job}");

    // A wrong sha256 fails the job and keeps nothing.
    let before = store_files(&d);
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "bad", "url": format!("{base}/kit.tar"), "sha256": "0".repeat(64)}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "checksum_mismatch", "{job}");
    assert_eq!(
        d.get("/api/v1/provisioning/artifacts/bad").await.status(),
        404
    );
    assert_eq!(store_files(&d), before);

    // A redirect to an address outside url_allow: refused before any connection to it.
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "away", "url": format!("{base}/away")}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "url_not_allowed", "{job}");
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
    assert_eq!(store_files(&d), before);

    // Such a URL given directly is refused by the request; so is a 404, by the job.
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "direct", "url": format!("{other}/kit.tar")}),
        )
        .await;
    assert_problem(r, 422, "url_not_allowed").await;
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "gone", "url": format!("{base}/nothing")}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["error_code"], "download_failed", "{job}");

    // Request checks: a taken name, a bad name, a bad checksum, a non-HTTP URL.
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "kit", "url": format!("{base}/kit.tar")}),
        )
        .await;
    assert_problem(r, 409, "exists").await;
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "Bad Name", "url": format!("{base}/kit.tar")}),
        )
        .await;
    assert_problem(r, 422, "invalid_name").await;
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "x", "url": format!("{base}/kit.tar"), "sha256": "abc"}),
        )
        .await;
    assert_problem(r, 422, "invalid_sha256").await;
    let r = d
        .post(
            "/api/v1/provisioning/artifacts",
            json!({"name": "x", "url": "file:///etc/passwd"}),
        )
        .await;
    assert_problem(r, 422, "url_not_allowed").await;

    // An upload still works on the same path, and still needs ?name=.
    let r = d
        .client
        .post(d.url("/api/v1/provisioning/artifacts?name=up"))
        .bearer_auth(&d.token)
        .header("content-type", "application/octet-stream")
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = d
        .client
        .post(d.url("/api/v1/provisioning/artifacts"))
        .bearer_auth(&d.token)
        .header("content-type", "application/octet-stream")
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, "invalid_name").await;
    assert_eq!(store_files(&d), vec![sha]);
}

/// Runs the CLI against `d` (a private HOME, stdin from /dev/null) off the async workers, so
/// the test's HTTP server keeps answering: exit code, stdout, stderr.
async fn cli(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let home = d.data_dir().join("cli-home");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--url", &d.base, "--token", &d.token])
        .args(args)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(std::process::Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("HOSTPLANE_") {
            cmd.env_remove(k);
        }
    }
    let o = tokio::task::spawn_blocking(move || cmd.output().expect("run hostplane"))
        .await
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `provision artifacts fetch NAME URL [--sha256] --wait`: the download job followed to its
/// end (exit 0 and the final job with `--json`; exit 1 with the job's error code on stderr for a
/// wrong checksum); without `--wait` the job id; a URL outside url_allow is refused at once.
#[tokio::test(flavor = "multi_thread")]
async fn cli_artifacts_fetch() {
    let content: Vec<u8> = (0..200 * 1024).map(|i| (i % 241) as u8).collect();
    let sha = hex::encode(sha2::Sha256::digest(&content));
    let routes: Routes = Arc::default();
    let (base, _) = serve("127.0.0.1:0", routes.clone()).await;
    routes
        .lock()
        .unwrap()
        .insert("/kit.tar".into(), (200, String::new(), content.clone()));
    let d = Daemon::start_with(Opts {
        config: Some("[provisioning]\nurl_allow = [\"127.0.0.1\"]\n".into()),
        ..Opts::default()
    });
    let url = format!("{base}/kit.tar");

    let (code, out, err) = cli(
        &d,
        &[
            "--json",
            "provision",
            "artifacts",
            "fetch",
            "kit",
            &url,
            "--sha256",
            &sha,
            "--wait",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let job: Job = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(job.kind, "provisioning.artifact_fetch");
    assert_eq!(job.status, JobStatus::Success, "{out}");
    assert_eq!(job.progress, 100);
    let a: Artifact = serde_json::from_value(job.result.clone().unwrap()).unwrap();
    assert_eq!((a.name.as_str(), a.sha256.as_str()), ("kit", sha.as_str()));
    assert_eq!(a.size_bytes, content.len() as u64);
    assert_eq!(a.source, url);
    assert_eq!(
        std::fs::read(d.data_dir().join("provisioning/artifacts").join(&sha)).unwrap(),
        content
    );

    // For people: one line when it is done, and the artifact in the list.
    let (code, out, err) = cli(
        &d,
        &["provision", "artifacts", "fetch", "kit2", &url, "--wait"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Done: download of artifact kit2"), "{out}");
    let (_, out, _) = cli(&d, &["provision", "artifacts", "list"]).await;
    assert!(out.contains("kit2") && out.contains(&sha), "{out}");

    // A wrong checksum: the job fails, exit 1, its code on stderr, nothing kept.
    let (code, out, err) = cli(
        &d,
        &[
            "provision",
            "artifacts",
            "fetch",
            "bad",
            &url,
            "--sha256",
            &"0".repeat(64),
            "--wait",
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("checksum_mismatch"), "{err}");
    assert_eq!(
        d.get("/api/v1/provisioning/artifacts/bad").await.status(),
        404
    );

    // Without --wait: the job's id, and the job runs to its end anyway.
    let (code, out, err) = cli(&d, &["provision", "artifacts", "fetch", "kit3", &url]).await;
    assert_eq!(code, 0, "{out}{err}");
    let id = out
        .split("job ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no job id in {out}"));
    let job = d.wait_job(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "success", "{job}");

    // A loopback address outside url_allow: refused by the request (no job).
    let (code, out, err) = cli(
        &d,
        &[
            "provision",
            "artifacts",
            "fetch",
            "away",
            "http://127.0.0.2:9/x",
        ],
    )
    .await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("url_not_allowed"), "{err}");
}

/// Artifacts kept in a pool dataset: stored there, 503 while the dataset does not exist, and
/// the dataset and pool refuse deletion (409 `in_use` naming each artifact) until the
/// artifacts are gone.
#[tokio::test(flavor = "multi_thread")]
async fn artifacts_on_a_pool_dataset() {
    use storage_util::{Loops, job_ok};
    let loops = Loops::new(1, 512 << 20);
    let dev = loops.devs[0].clone();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "{}[provisioning]\nartifacts_storage = \"tank/kits\"\n",
            loops.config()
        )),
        extra_args: vec!["--disks-allow".into(), Loops::allow(&[&dev])],
        ..Opts::default()
    });
    let upload = |name: &str, body: &'static [u8]| {
        d.client
            .post(d.url(&format!("/api/v1/provisioning/artifacts?name={name}")))
            .bearer_auth(&d.token)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    // No pool yet: the store is unavailable, and nothing is written to the data dir.
    let r = upload("kit", b"kit content").await.unwrap();
    assert_problem(r, 503, "artifacts_storage_unavailable").await;
    assert!(!d.data_dir().join("provisioning/artifacts").exists());

    job_ok(
        &d,
        d.post(
            "/api/v1/pools",
            json!({"name": "tank", "kind": "btrfs", "devices": [dev]}),
        )
        .await,
    )
    .await;
    for ds in ["kits", "other"] {
        let r = d
            .post("/api/v1/pools/tank/datasets", json!({"name": ds}))
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let r = upload("kit", b"kit content").await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let a: Value = r.json().await.unwrap();
    let file = loops
        .mount_root()
        .join("tank/kits/hostplane-artifacts")
        .join(a["sha256"].as_str().unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), b"kit content");
    assert!(!d.data_dir().join("provisioning/artifacts").exists());

    // The dataset and the pool stay while an artifact lives there; another dataset may go.
    for path in [
        "/api/v1/pools/tank/datasets/kits",
        "/api/v1/pools/tank?confirm=tank",
    ] {
        let r = d.send("DELETE", path, Some(&d.token), None).await;
        let p = assert_problem(r, 409, "in_use").await;
        assert_eq!(p["users"][0]["kind"], "artifact", "{p}");
        assert_eq!(p["users"][0]["name"], "kit", "{p}");
    }
    let r = d
        .send(
            "DELETE",
            "/api/v1/pools/tank/datasets/other",
            Some(&d.token),
            None,
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // Once the artifact is deleted (its file too), the pool can be destroyed.
    let r = d
        .send(
            "DELETE",
            "/api/v1/provisioning/artifacts/kit",
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert!(!file.exists());
    job_ok(
        &d,
        d.send(
            "DELETE",
            "/api/v1/pools/tank?confirm=tank",
            Some(&d.token),
            None,
        )
        .await,
    )
    .await;
}
