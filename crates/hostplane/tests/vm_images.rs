//! Images entering hostplane (disk import, existing images, VM archives, Vagrant boxes by
//! upload and URL) against the real daemon and the real qemu-img: images that reference other
//! files are refused, decompression bombs are cut off while streaming, box URLs reach only
//! allowed addresses (every redirect hop checked), and scratch files never stay behind.
//! No guest boots here; only qemu-img is needed. All network traffic stays on loopback.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, Opts, assert_problem};
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img is missing: run scripts/install-qemu (scripts/test does)");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A daemon whose disks may be at most 16 MiB.
fn daemon(extra: &str) -> Daemon {
    Daemon::start_with(Opts {
        config: Some(format!("[vms]\nmax_disk_bytes = 16777216\n{extra}")),
        ..Opts::default()
    })
}

fn images_dir(d: &Daemon) -> PathBuf {
    d.data_dir().join("vms")
}

/// Files left in the scratch dir and half-written templates.
fn leftovers(d: &Daemon) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let tmp = images_dir(d).join(".tmp");
    for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        out.push(e.path());
    }
    for e in std::fs::read_dir(images_dir(d).join("templates"))
        .into_iter()
        .flatten()
        .flatten()
    {
        out.push(e.path());
    }
    out
}

/// Waits (up to 15 s) until no scratch file is left.
async fn assert_no_leftovers(d: &Daemon) {
    let t0 = Instant::now();
    loop {
        let l = leftovers(d);
        if l.is_empty() {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "left behind: {l:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A qcow2 whose guest disk is the "host file" `secret` (an external raw data file), as an
/// attacker would point at /etc/shadow. `qemu-img create` truncates the data file, so the
/// secret is written afterwards.
fn data_file_qcow2(dir: &Path) -> (PathBuf, PathBuf) {
    let secret = dir.join("host-secret");
    let img = dir.join("evil.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        &format!("data_file={},data_file_raw=on", secret.display()),
        img.to_str().unwrap(),
        "1M",
    ]);
    let mut data = b"HOST-SECRET root:$6$hash".to_vec();
    data.resize(MIB, 0);
    std::fs::write(&secret, data).unwrap();
    (img, secret)
}

/// A plain qcow2 with a json: backing file that names the secret.
fn json_backing_qcow2(dir: &Path, secret: &Path) -> PathBuf {
    let img = dir.join("backed.qcow2");
    let backing = format!(
        "json:{{\"driver\":\"raw\",\"file\":{{\"driver\":\"file\",\"filename\":\"{}\"}}}}",
        secret.display()
    );
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        &backing,
        img.to_str().unwrap(),
        "1M",
    ]);
    img
}

fn small_qcow2(dir: &Path, size: &str) -> PathBuf {
    let img = dir.join(format!("small-{size}.qcow2"));
    qemu_img(&["create", "-q", "-f", "qcow2", img.to_str().unwrap(), size]);
    img
}

/// A Vagrant box (tar.gz with metadata.json and box.img) holding `image`.
fn make_box(image: &[u8]) -> Vec<u8> {
    make_box_padded(image, 0)
}

/// The same with `pad` zero bytes after the tar's end (GNU tar pads to 10 KiB records).
fn make_box_padded(image: &[u8], pad: usize) -> Vec<u8> {
    let meta = br#"{"provider": "libvirt", "format": "qcow2", "virtual_size": 1}"#;
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [("metadata.json", &meta[..]), ("box.img", image)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, data).unwrap();
    }
    let mut raw = tar.into_inner().unwrap();
    raw.resize(raw.len() + pad, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap()
}

async fn upload(
    d: &Daemon,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    d.client
        .post(d.url(path))
        .bearer_auth(&d.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn create_vm(d: &Daemon, body: Value) -> String {
    let r = d.post("/api/v1/vms", body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// The job a 202 answer started, once it ended.
async fn job_of(d: &Daemon, r: reqwest::Response) -> Value {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    d.wait_job(v["href"].as_str().unwrap()).await
}

/// The VM archive of a fresh VM with one 1 MiB qcow2 disk, its disk replaced by `disk`
/// (`disks/disk0.<ext>`).
async fn archive_with_disk(d: &Daemon, vm: &str, ext: &str, disk: &[u8]) -> Vec<u8> {
    let id = create_vm(
        d,
        json!({"name": vm, "memory_mib": 64, "disks": [{"size_bytes": MIB, "format": ext}]}),
    )
    .await;
    let r = d.get(&format!("/api/v1/vms/{id}.tar.zst")).await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let mut manifest = Vec::new();
    let mut tar = tar::Archive::new(zstd::stream::read::Decoder::new(&bytes[..]).unwrap());
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("vm.json") {
            std::io::Read::read_to_end(&mut e, &mut manifest).unwrap();
        }
    }
    assert!(!manifest.is_empty());
    let enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let mut out = tar::Builder::new(enc);
    for (name, data) in [
        ("vm.json".to_string(), &manifest[..]),
        (format!("disks/disk0.{ext}"), disk),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append_data(&mut h, name, data).unwrap();
    }
    out.into_inner().unwrap().finish().unwrap()
}

fn vm_dirs(d: &Daemon) -> usize {
    std::fs::read_dir(images_dir(d))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            e.path().is_dir() && !n.starts_with('.') && n != "templates" && n != "bases"
        })
        .count()
}

/// A loopback HTTP server: `/test.box` serves `data`, `/to/<url>` redirects there (302), any
/// other path 404. Counts connections.
struct Server {
    base: String,
    hits: Arc<AtomicUsize>,
}

async fn serve(bind: &str, data: Vec<u8>) -> Server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            let data = data.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split(' ').nth(1).unwrap_or("/").to_string();
                let head = if path == "/test.box" {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        data.len()
                    )
                } else if let Some(to) = path.strip_prefix("/to/") {
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = s.write_all(head.as_bytes()).await;
                if path == "/test.box" {
                    let _ = s.write_all(&data).await;
                }
            });
        }
    });
    Server {
        base: format!("http://{addr}"),
        hits,
    }
}

/// A daemon (box URLs may reach 127.0.0.1), a VM without disks, and in `work` a qcow2 with an
/// external data file (`evil`) and a qcow2 with a json: backing file, both naming the "host
/// file" `work/host-secret`.
struct Evil {
    d: Daemon,
    work: tempfile::TempDir,
    evil: PathBuf,
    evil_bytes: Vec<u8>,
    backed: Vec<u8>,
    vm: String,
}

async fn evil_setup() -> Evil {
    let d = daemon("url_allow = [\"127.0.0.1\"]\n");
    let work = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let (evil, secret) = data_file_qcow2(work.path());
    let evil_bytes = std::fs::read(&evil).unwrap();
    let backed = std::fs::read(json_backing_qcow2(work.path(), &secret)).unwrap();
    let vm = create_vm(&d, json!({"name": "target", "memory_mib": 64})).await;
    Evil {
        d,
        work,
        evil,
        evil_bytes,
        backed,
        vm,
    }
}

#[tokio::test]
async fn disk_import_refuses_images_referencing_other_files() {
    let Evil {
        d,
        evil_bytes,
        backed,
        vm,
        work: _work,
        ..
    } = evil_setup().await;
    // Disk import (POST /vms/{id}/disks?qcow2): data file and json: backing file.
    for body in [&evil_bytes, &backed] {
        let r = upload(
            &d,
            &format!("/api/v1/vms/{vm}/disks?qcow2"),
            "application/octet-stream",
            body.clone(),
        )
        .await;
        let p = assert_problem(r, 422, "invalid_image").await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("references other files"),
            "{p}"
        );
    }
    let v = d.get_json(&format!("/api/v1/vms/{vm}")).await;
    assert_eq!(v["disks"].as_array().unwrap().len(), 0, "{v}");

    assert_no_leftovers(&d).await;
}

#[tokio::test]
async fn existing_images_referencing_other_files_are_refused() {
    let Evil {
        d,
        evil,
        vm,
        work: _work,
        ..
    } = evil_setup().await;
    // An existing image named in a definition, with its format given or probed.
    let placed = images_dir(&d).join("evil.qcow2");
    std::fs::copy(&evil, &placed).unwrap();
    for disk in [
        json!({"image": placed.to_str().unwrap(), "format": "qcow2"}),
        json!({"image": placed.to_str().unwrap()}),
    ] {
        let r = d
            .post("/api/v1/vms", json!({"name": "y", "disks": [disk]}))
            .await;
        let p = assert_problem(r, 422, "invalid_image").await;
        assert_eq!(p["errors"][0]["field"], "disks[0].image", "{p}");
        let r = d
            .post(&format!("/api/v1/vms/{vm}/disks"), disk.clone())
            .await;
        assert_problem(r, 422, "invalid_image").await;
    }
    std::fs::remove_file(&placed).unwrap();

    let v = d.get_json(&format!("/api/v1/vms/{vm}")).await;
    assert_eq!(v["disks"].as_array().unwrap().len(), 0, "{v}");
}

#[tokio::test]
async fn images_used_in_place_are_checked_again_before_export_and_clone() {
    let Evil { d, work, evil, .. } = evil_setup().await;
    // An image used in place that is replaced after it was accepted: export and full clone
    // (which read it with qemu-img) check it again.
    let inplace = images_dir(&d).join("inplace.qcow2");
    std::fs::copy(small_qcow2(work.path(), "1M"), &inplace).unwrap();
    let iv = create_vm(
        &d,
        json!({"name": "inplace", "memory_mib": 64,
            "disks": [{"image": inplace.to_str().unwrap(), "format": "qcow2"}]}),
    )
    .await;
    assert_eq!(
        d.get(&format!("/api/v1/vms/{iv}/disks/0.raw"))
            .await
            .status(),
        200
    );
    std::fs::copy(&evil, &inplace).unwrap();
    for path in [
        format!("/api/v1/vms/{iv}/disks/0.raw"),
        format!("/api/v1/vms/{iv}/disks/0.qcow2"),
        format!("/api/v1/vms/{iv}.tar.zst"),
    ] {
        let r = d.get(&path).await;
        assert_problem(r, 422, "invalid_image").await;
    }
    let r = d
        .post(
            &format!("/api/v1/vms/{iv}/clone"),
            json!({"name": "copy", "strategy": "full"}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error_message"]
            .as_str()
            .unwrap()
            .contains("references other files"),
        "{job}"
    );
    assert_eq!(d.get("/api/v1/vms/copy").await.status(), 404);
}

#[tokio::test]
async fn archive_import_refuses_images_referencing_other_files() {
    let Evil {
        d,
        evil_bytes,
        work: _work,
        ..
    } = evil_setup().await;
    // VM archive import (POST /vms?import).
    let archive = archive_with_disk(&d, "arch", "qcow2", &evil_bytes).await;
    let before = vm_dirs(&d);
    let r = upload(
        &d,
        "/api/v1/vms?import&name=imp",
        "application/zstd",
        archive,
    )
    .await;
    assert_problem(r, 422, "invalid_image").await;
    assert_eq!(vm_dirs(&d), before);
    assert_eq!(d.get("/api/v1/vms/imp").await.status(), 404);

    assert_no_leftovers(&d).await;
}

#[tokio::test]
async fn box_upload_refuses_images_referencing_other_files() {
    let Evil {
        d,
        evil_bytes,
        work: _work,
        ..
    } = evil_setup().await;
    // Vagrant box upload.
    let boxed = make_box(&evil_bytes);
    let r = upload(
        &d,
        "/api/v1/vms/templates?name=evil",
        "application/octet-stream",
        boxed,
    )
    .await;
    assert_problem(r, 422, "invalid_image").await;

    let list = d.get_json("/api/v1/vms/templates").await;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    assert_no_leftovers(&d).await;
}

#[tokio::test]
async fn box_url_refuses_images_referencing_other_files() {
    let Evil {
        d,
        evil_bytes,
        work: _work,
        ..
    } = evil_setup().await;
    let boxed = make_box(&evil_bytes);
    // Vagrant box from a URL: the download is a job; it fails with the same code.
    let srv = serve("127.0.0.1:0", boxed).await;
    let r = d
        .post(
            "/api/v1/vms/templates",
            json!({"name": "evil-url", "url": format!("{}/test.box", srv.base)}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "invalid_image", "{job}");
    let list = d.get_json("/api/v1/vms/templates").await;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    assert_no_leftovers(&d).await;
}

#[tokio::test]
async fn decompression_bombs_and_oversized_images_are_refused_and_leave_nothing() {
    let d = daemon("max_upload_bytes = 8388608\n");
    let zeros = vec![0u8; 64 * MIB];
    let vm = create_vm(&d, json!({"name": "target", "memory_mib": 64})).await;

    // A gzip box whose box.img unpacks to 64 MiB (max_disk_bytes 16 MiB).
    let bomb = make_box(&zeros);
    assert!(bomb.len() < MIB, "{}", bomb.len());
    let r = upload(
        &d,
        "/api/v1/vms/templates?name=bomb",
        "application/octet-stream",
        bomb,
    )
    .await;
    assert_problem(r, 413, "payload_too_large").await;
    assert_no_leftovers(&d).await;

    // A zstd VM archive whose disk unpacks to 64 MiB.
    let archive = archive_with_disk(&d, "arch", "raw", &zeros).await;
    assert!(archive.len() < MIB, "{}", archive.len());
    let before = vm_dirs(&d);
    let r = upload(&d, "/api/v1/vms?import", "application/zstd", archive).await;
    assert_problem(r, 413, "payload_too_large").await;
    assert_eq!(vm_dirs(&d), before);
    assert_no_leftovers(&d).await;

    // A zstd disk import that decompresses to 64 MiB.
    let small = zstd::bulk::compress(&zeros, 3).unwrap();
    let r = upload(
        &d,
        &format!("/api/v1/vms/{vm}/disks?raw&compress=zstd"),
        "application/octet-stream",
        small,
    )
    .await;
    assert_problem(r, 413, "payload_too_large").await;
    assert_no_leftovers(&d).await;

    // An upload announcing more than max_upload_bytes (8 MiB) is refused before it is read.
    // Raw HTTP: the client stops sending after 2 MiB and reads the answer.
    for path in [
        format!("/api/v1/vms/{vm}/disks?raw"),
        "/api/v1/vms?import".to_string(),
        "/api/v1/vms/templates?name=huge".to_string(),
    ] {
        let head = raw_post_head(&d, &path, 9 * MIB, 2 * MIB);
        assert!(head.starts_with("HTTP/1.1 413"), "{path}: {head}");
        assert!(head.contains("payload_too_large"), "{path}: {head}");
    }
    assert_no_leftovers(&d).await;

    // A small qcow2 whose virtual size (1 GiB) exceeds max_disk_bytes: disk import, box.
    let work = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let big = std::fs::read(small_qcow2(work.path(), "1G")).unwrap();
    let r = upload(
        &d,
        &format!("/api/v1/vms/{vm}/disks?qcow2"),
        "application/octet-stream",
        big.clone(),
    )
    .await;
    assert_problem(r, 409, "exceeds_host").await;
    let r = upload(
        &d,
        "/api/v1/vms/templates?name=big",
        "application/octet-stream",
        make_box(&big),
    )
    .await;
    assert_problem(r, 409, "exceeds_host").await;
    assert_no_leftovers(&d).await;
    let v = d.get_json(&format!("/api/v1/vms/{vm}")).await;
    assert_eq!(v["disks"].as_array().unwrap().len(), 0, "{v}");

    // A sound small image still imports, also as a box with end padding the unpacker does not
    // need to read (the whole answer arrives).
    let ok = std::fs::read(small_qcow2(work.path(), "2M")).unwrap();
    let r = upload(
        &d,
        "/api/v1/vms/templates?name=padded",
        "application/octet-stream",
        make_box_padded(&ok, 4 * MIB),
    )
    .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "success", "{job}");
    let r = upload(
        &d,
        &format!("/api/v1/vms/{vm}/disks?qcow2"),
        "application/octet-stream",
        ok,
    )
    .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_no_leftovers_but_templates(&d);
}

/// POSTs a body announced as `len` bytes of which only `send` are sent (from another thread),
/// and returns what the daemon answered (head and body).
fn raw_post_head(d: &Daemon, path: &str, len: usize, send: usize) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n",
        d.token
    );
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(&vec![0u8; send]);
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("\r\n\r\n{") || !out.ends_with(b"}") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends the head and `part` bytes of a `len`-byte body, waits until the daemon wrote a scratch
/// file, then drops the connection.
async fn abort_upload(d: &Daemon, path: &str, len: usize, part: &[u8]) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n",
        d.token
    )
    .unwrap();
    s.write_all(part).unwrap();
    s.flush().unwrap();
    let t0 = Instant::now();
    while leftovers(d).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the daemon wrote nothing of {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(s);
}

#[tokio::test]
async fn aborted_uploads_and_stale_scratch_files_are_removed() {
    let mut d = Daemon::start();
    let vm = create_vm(&d, json!({"name": "target", "memory_mib": 64})).await;

    // A box whose box.img (40 MiB) is cut off after 4 MiB.
    let mut part = Vec::new();
    let mut h = tar::Header::new_gnu();
    h.set_path("box.img").unwrap();
    h.set_size(40 * MIB as u64);
    h.set_mode(0o644);
    h.set_cksum();
    part.extend_from_slice(h.as_bytes());
    part.extend(std::iter::repeat_n(7u8, 4 * MIB));
    abort_upload(&d, "/api/v1/vms/templates?name=cut", 41 * MIB, &part).await;
    assert_no_leftovers(&d).await;
    // A raw disk import cut off the same way.
    abort_upload(
        &d,
        &format!("/api/v1/vms/{vm}/disks?raw"),
        40 * MIB,
        &vec![1u8; 4 * MIB],
    )
    .await;
    assert_no_leftovers(&d).await;
    let v = d.get_json(&format!("/api/v1/vms/{vm}")).await;
    assert_eq!(v["disks"].as_array().unwrap().len(), 0, "{v}");
    let list = d.get_json("/api/v1/vms/templates").await;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");

    // What a crash leaves behind is gone after the next start.
    d.kill9();
    let tmp = images_dir(&d).join(".tmp");
    std::fs::create_dir_all(tmp.join("import-stale")).unwrap();
    std::fs::write(tmp.join("import-stale/disk0.raw"), vec![0u8; MIB]).unwrap();
    std::fs::write(tmp.join("box-stale.img"), vec![0u8; MIB]).unwrap();
    std::fs::create_dir_all(images_dir(&d).join("templates")).unwrap();
    std::fs::write(images_dir(&d).join("templates/.old.partial"), b"x").unwrap();
    assert_eq!(leftovers(&d).len(), 3);
    d.spawn();
    // The port is bound before the state is built; once a request is served, the sweep ran.
    d.get_json("/api/v1/vms").await;
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
}

#[tokio::test]
async fn box_urls_reach_only_allowed_addresses() {
    let work = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let good = std::fs::read(small_qcow2(work.path(), "2M")).unwrap();
    let boxed = make_box(&good);
    let srv = serve("127.0.0.1:0", boxed.clone()).await;
    // 127.0.0.2 is loopback too, but not in the allow-list below.
    let other = serve("127.0.0.2:0", boxed).await;

    // Without an allow-list no loopback (or other non-public) URL is fetched at all.
    let d = daemon("");
    for url in [
        format!("{}/test.box", srv.base),
        format!("{}/test.box", srv.base.replace("127.0.0.1", "localhost")),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://10.0.0.1/x.box".to_string(),
    ] {
        let r = d
            .post("/api/v1/vms/templates", json!({"name": "t", "url": url}))
            .await;
        let p = assert_problem(r, 422, "url_not_allowed").await;
        assert_eq!(p["errors"][0]["field"], "url", "{p}");
    }
    assert_eq!(srv.hits.load(Ordering::SeqCst), 0);
    drop(d);

    // Allowed: 127.0.0.1 only. A redirect to a non-allowed address is refused before any
    // connection to it; a redirect loop ends; a redirect within the allowed server works.
    let d = daemon("url_allow = [\"127.0.0.1/32\"]\n");
    let to_other = format!("{}/to/{}/test.box", srv.base, other.base);
    let r = d
        .post(
            "/api/v1/vms/templates",
            json!({"name": "t1", "url": to_other}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "url_not_allowed", "{job}");
    assert_eq!(other.hits.load(Ordering::SeqCst), 0);

    let mut looping = format!("{}/test.box", srv.base);
    for _ in 0..8 {
        looping = format!("{}/to/{looping}", srv.base);
    }
    let r = d
        .post(
            "/api/v1/vms/templates",
            json!({"name": "t2", "url": looping}),
        )
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "download_failed", "{job}");

    let hop = format!("{}/to//test.box", srv.base);
    let r = d
        .post("/api/v1/vms/templates", json!({"name": "t3", "url": hop}))
        .await;
    let job = job_of(&d, r).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["result"]["format"], "qcow2");
    assert_eq!(job["result"]["size_bytes"], 2 * MIB);
    assert_no_leftovers_but_templates(&d);
}

fn assert_no_leftovers_but_templates(d: &Daemon) {
    let tmp: Vec<_> = std::fs::read_dir(images_dir(d).join(".tmp"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}
