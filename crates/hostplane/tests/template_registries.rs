//! Template registries against the real daemon and a small registry server on loopback that
//! speaks Vagrant Cloud's API shape (`/api/v2/...`) and BoxVault's (`/api/organization/...`):
//! browse, pull a box (a qcow2 made with qemu-img) into a template with its checksum verified,
//! a wrong checksum fails the job and leaves nothing, a redirect to a host outside
//! `[vms] url_allow` is refused, and the registry token never shows in GET answers, job logs,
//! the audit log or the store.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Daemon, Opts, assert_problem};
use serde_json::{Value, json};
use sha2::Digest;

const TOKEN: &str = "hpt-registry-secret-5f3c9a";

/// Routes: path → (status, extra headers, body). Records each request's path and headers.
/// Status, extra header lines, body.
type Answer = (u16, String, Vec<u8>);

#[derive(Clone, Default)]
struct Routes(Arc<Mutex<HashMap<String, Answer>>>);

struct Registry {
    base: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    hits: Arc<AtomicUsize>,
}

async fn serve(bind: &str, routes: Routes) -> Registry {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (s2, h2) = (seen.clone(), hits.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            h2.fetch_add(1, Ordering::SeqCst);
            let (routes, seen) = (routes.clone(), s2.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split(' ').nth(1).unwrap_or("/").to_string();
                seen.lock()
                    .unwrap()
                    .push((path.clone(), req.to_ascii_lowercase()));
                let found = routes.0.lock().unwrap().get(&path).cloned();
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
    Registry {
        base: format!("http://{addr}"),
        seen,
        hits,
    }
}

fn json_route(r: &Routes, path: &str, v: Value) {
    r.0.lock().unwrap().insert(
        path.into(),
        (
            200,
            "Content-Type: application/json\r\n".into(),
            v.to_string().into_bytes(),
        ),
    );
}

/// A libvirt Vagrant box (tar.gz: metadata.json, box.img) of a fresh 2 MiB qcow2.
fn make_box(dir: &std::path::Path) -> Vec<u8> {
    let img = dir.join("box.qcow2");
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", img.to_str().unwrap(), "2M"])
        .output()
        .expect("qemu-img is missing: run scripts/install-qemu (scripts/test does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = std::fs::read(&img).unwrap();
    let meta = br#"{"provider": "libvirt", "format": "qcow2", "virtual_size": 1}"#;
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [("metadata.json", &meta[..]), ("box.img", &image[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, data).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

fn provider(url: &str, kind: &str, sum: &str) -> Value {
    json!({"name": "libvirt", "url": url, "checksum_type": kind, "checksum": sum,
           "architecture": "amd64", "default_architecture": true})
}

async fn job_of(d: &Daemon, r: reqwest::Response) -> Value {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    d.wait_job(v["href"].as_str().unwrap()).await
}

fn scratch_and_templates(d: &Daemon) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for sub in [".tmp", "templates"] {
        for e in std::fs::read_dir(d.data_dir().join("vms").join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(e.path());
        }
    }
    out
}

/// Every file under `dir` holding `needle` (the store, its WAL, logs …).
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if let Ok(b) = std::fs::read(&p)
            && b.windows(needle.len()).any(|w| w == needle)
        {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn vagrant_cloud_and_boxvault_pulls_checksums_redirects_and_the_secret_token() {
    let work = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let boxed = make_box(work.path());
    let sha256 = hex::encode(sha2::Sha256::digest(&boxed));
    let sha512 = hex::encode(sha2::Sha512::digest(&boxed));
    let routes = Routes::default();
    let reg = serve("127.0.0.1:0", routes.clone()).await;
    // 127.0.0.2 is loopback too, but not in the daemon's url_allow.
    let other = serve("127.0.0.2:0", Routes::default()).await;
    let b = &reg.base;
    routes.0.lock().unwrap().insert(
        "/files/tiny.box".into(),
        (200, String::new(), boxed.clone()),
    );
    let redirect = format!("Location: {}/files/tiny.box\r\n", other.base);
    routes
        .0
        .lock()
        .unwrap()
        .insert("/files/away.box".into(), (302, redirect, Vec::new()));
    // Vagrant Cloud's shape.
    json_route(
        &routes,
        "/api/v2/user/acme",
        json!({"username": "acme",
        "boxes": [{"name": "tiny", "short_description": "a tiny box"}]}),
    );
    json_route(
        &routes,
        "/api/v2/box/acme/tiny",
        json!({"tag": "acme/tiny", "versions": [
            {"version": "1.0.0", "providers": [provider(&format!("{b}/files/tiny.box"), "sha256", &sha256)]},
            {"version": "1.0.1", "providers": [provider(&format!("{b}/files/tiny.box"), "sha256", &"0".repeat(64))]},
            {"version": "1.0.2", "providers": [provider(&format!("{b}/files/away.box"), "sha256", &sha256)]},
        ]}),
    );
    // BoxVault's shape.
    json_route(
        &routes,
        "/api/organization",
        json!([{"name": "STARTcloud", "description": "d"}]),
    );
    json_route(
        &routes,
        "/api/organization/STARTcloud/box",
        json!([{"name": "tiny", "description": "t"}]),
    );
    json_route(
        &routes,
        "/api/organization/STARTcloud/box/tiny/metadata",
        json!({"name": "tiny",
        "versions": [{"version": "0.0.9", "providers": [provider(&format!("{b}/files/tiny.box"), "SHA512", &sha512)]}]}),
    );

    let d = Daemon::start_with(Opts {
        config: Some("[vms]\nmax_disk_bytes = 16777216\nurl_allow = [\"127.0.0.1\"]\n".into()),
        ..Opts::default()
    });

    // Add: the token is kept, never shown.
    let r = d
        .post(
            "/api/v1/template-registries",
            json!({"name": "vc", "kind": "vagrant_cloud", "url": b, "token": TOKEN}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created = r.text().await.unwrap();
    assert!(!created.contains(TOKEN), "{created}");
    let got = d.get_json("/api/v1/template-registries/vc").await;
    assert_eq!(got["has_token"], true, "{got}");
    assert_eq!(got["kind"], "vagrant_cloud");
    let list = d
        .get("/api/v1/template-registries")
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains("\"vc\"") && !list.contains(TOKEN), "{list}");
    let secret = d.data_dir().join("secrets/template-registries/vc");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // Bad input and duplicates.
    let r = d
        .post(
            "/api/v1/template-registries",
            json!({"name": "vc", "kind": "vagrant_cloud", "url": b}),
        )
        .await;
    assert_problem(r, 409, "registry_exists").await;
    let r = d
        .post(
            "/api/v1/template-registries",
            json!({"name": "x", "kind": "boxvault", "url": "http://10.0.0.1/"}),
        )
        .await;
    assert_problem(r, 422, "url_not_allowed").await;

    // Browse.
    let boxes = d
        .get_json("/api/v1/template-registries/vc/organizations/acme/boxes")
        .await;
    assert_eq!(boxes[0]["name"], "tiny", "{boxes}");
    let versions = d
        .get_json("/api/v1/template-registries/vc/organizations/acme/boxes/tiny/versions")
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 3, "{versions}");
    assert_eq!(versions[0]["providers"][0]["checksum"], sha256.as_str());
    let r = d.get("/api/v1/template-registries/vc/organizations").await;
    assert_problem(r, 501, "registry_cannot_list").await;
    let r = d
        .get("/api/v1/template-registries/vc/organizations/acme/boxes/nope/versions")
        .await;
    assert_problem(r, 404, "not_found").await;

    // Pull → a template; the token went to the registry with each request.
    let pull = |tpl: &str, version: &str| json!({"template": tpl, "organization": "acme", "box": "tiny", "version": version});
    let r = d
        .post(
            "/api/v1/template-registries/vc/pull",
            pull("tiny-vc", "1.0.0"),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["kind"], "vms.template_pull");
    let t = d.get_json("/api/v1/vms/templates/tiny-vc").await;
    assert_eq!(t["format"], "qcow2", "{t}");
    assert_eq!(t["size_bytes"], 2 << 20);
    assert!(
        t["source"]
            .as_str()
            .unwrap()
            .starts_with("registry:vc/acme/tiny@1.0.0"),
        "{t}"
    );
    let log = d
        .get(&format!("{}/log", job["href"].as_str().unwrap()))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("sha256 checksum verified"), "{log}");
    let bearer = format!("authorization: bearer {}", TOKEN.to_ascii_lowercase());
    for (path, req) in reg.seen.lock().unwrap().iter() {
        assert!(req.contains(&bearer), "no token on {path}");
    }

    // A wrong checksum fails the job and leaves nothing behind.
    let before = scratch_and_templates(&d);
    let r = d
        .post(
            "/api/v1/template-registries/vc/pull",
            pull("bad-sum", "1.0.1"),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "checksum_mismatch", "{job}");
    assert_eq!(d.get("/api/v1/vms/templates/bad-sum").await.status(), 404);
    assert_eq!(scratch_and_templates(&d), before);

    // A redirect to a host outside url_allow is refused before any connection to it.
    let r = d
        .post("/api/v1/template-registries/vc/pull", pull("away", "1.0.2"))
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "url_not_allowed", "{job}");
    assert_eq!(other.hits.load(Ordering::SeqCst), 0);
    assert_eq!(scratch_and_templates(&d), before);

    // Unknown version, existing template name.
    let r = d
        .post("/api/v1/template-registries/vc/pull", pull("v9", "9.9.9"))
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = d
        .post(
            "/api/v1/template-registries/vc/pull",
            pull("tiny-vc", "1.0.0"),
        )
        .await;
    assert_problem(r, 409, "template_exists").await;

    // BoxVault: organisations, boxes, a sha512 pull; its token goes as x-access-token.
    let r = d
        .post(
            "/api/v1/template-registries",
            json!({"name": "bv", "kind": "boxvault", "url": format!("{b}/"), "token": TOKEN}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let orgs = d
        .get_json("/api/v1/template-registries/bv/organizations")
        .await;
    assert_eq!(orgs[0]["name"], "STARTcloud", "{orgs}");
    let boxes = d
        .get_json("/api/v1/template-registries/bv/organizations/STARTcloud/boxes")
        .await;
    assert_eq!(boxes[0]["name"], "tiny", "{boxes}");
    let r = d
        .post(
            "/api/v1/template-registries/bv/pull",
            json!({"template": "tiny-bv", "organization": "STARTcloud", "box": "tiny",
                   "version": "0.0.9", "architecture": "amd64"}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "success", "{job}");
    let log = d
        .get(&format!("{}/log", job["href"].as_str().unwrap()))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("sha512 checksum verified"), "{log}");
    let x_token = format!("x-access-token: {}", TOKEN.to_ascii_lowercase());
    assert!(
        reg.seen
            .lock()
            .unwrap()
            .iter()
            .any(|(p, req)| p == "/api/organization" && req.contains(&x_token))
    );

    // Token rotation and removal; deleting removes the secret file.
    let r = d
        .send(
            "PATCH",
            "/api/v1/template-registries/bv",
            Some(&d.token),
            Some(json!({"token": ""})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        d.get_json("/api/v1/template-registries/bv").await["has_token"],
        false
    );
    let r = d
        .send(
            "DELETE",
            "/api/v1/template-registries/vc",
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert!(!secret.exists());

    // The token is nowhere a reader could see it: audit, events' store, jobs, logs, database.
    let audit = d
        .get("/api/v1/audit?limit=1000")
        .await
        .text()
        .await
        .unwrap();
    assert!(!audit.contains(TOKEN));
    assert!(audit.contains("/api/v1/template-registries"), "audited");
    let jobs = d.get("/api/v1/jobs").await.text().await.unwrap();
    assert!(!jobs.contains(TOKEN));
    assert!(!d.log().contains(TOKEN));
    let leaks = files_containing(d.data_dir(), TOKEN.as_bytes());
    assert!(leaks.is_empty(), "token stored in {leaks:?}");
}
