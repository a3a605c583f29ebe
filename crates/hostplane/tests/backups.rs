//! Backup and restore hardening against the real daemon: leftovers of interrupted backups are
//! removed at start, restored files get hostplane's modes (never the archive's), crafted
//! entries are refused, backups and restores stream (peak RSS does not grow with the state
//! files), and uploads are capped (413 while streaming, compression bombs refused) leaving
//! nothing behind.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Daemon, Opts, assert_problem};
use serde_json::Value;

const UUID_A: &str = "0193a3b4-0000-7000-8000-000000000001";
const UUID_B: &str = "0193a3b4-0000-7000-8000-000000000002";
const UUID_C: &str = "0193a3b4-0000-7000-8000-000000000003";

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What an upload or a check may leave in the backup dir: nothing of these.
fn temp_names(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Peak resident set (VmHWM) of a process, in bytes.
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

async fn make_backup(d: &Daemon) -> Value {
    let r = d
        .send("POST", "/api/v1/system/backups", Some(&d.token), None)
        .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    job
}

async fn download(d: &Daemon, id: &str) -> Vec<u8> {
    let r = d
        .get(&format!("/api/v1/system/backups/{id}/download"))
        .await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

async fn upload(d: &Daemon, body: Vec<u8>) -> reqwest::Response {
    d.client
        .post(d.url("/api/v1/system/backups/upload"))
        .bearer_auth(&d.token)
        .header("content-type", "application/x-tar")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn restore(d: &Daemon, href: &str) -> Value {
    let r = d
        .send("POST", &format!("{href}/restore"), Some(&d.token), None)
        .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    d.wait_job(job["href"].as_str().unwrap()).await
}

/// A raw HTTP/1.1 request: `head` (request line and headers, without the blank line), then
/// `body` written by another thread that ignores write errors (the daemon may answer and
/// close before reading it all). Returns the status and the body.
fn raw_request(port: u16, head: &str, body: Vec<u8>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "{head}\r\nConnection: close\r\n\r\n").unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for piece in body.chunks(64 << 10) {
            if w.write_all(piece).is_err() {
                return;
            }
        }
    });
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A chunked transfer encoding of `data` (no Content-Length: the cap must trip while reading).
fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.chunks(64 << 10) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn assert_413(status: u16, body: &str) {
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(body.trim()).unwrap_or_else(|_| {
        // A chunked answer: take the JSON object out of it.
        let start = body.find('{').unwrap();
        let end = body.rfind('}').unwrap();
        serde_json::from_str(&body[start..=end]).unwrap()
    });
    assert_eq!(v["code"], "payload_too_large", "{v}");
    assert_eq!(v["status"], 413);
}

// ---------------------------------------------------------------------------------------------
// Finding 1: leftovers

#[tokio::test]
async fn leftovers_of_interrupted_backups_are_removed_at_start() {
    let mut d = Daemon::start();
    make_backup(&d).await;
    d.kill9();
    let dir = d.data_dir().join("backup");
    let before = names(&dir);
    // What a backup, restore or upload killed half-way leaves.
    std::fs::create_dir_all(dir.join(format!(".work-{UUID_A}"))).unwrap();
    std::fs::write(dir.join(format!(".work-{UUID_A}/hostplane.sqlite")), b"x").unwrap();
    std::fs::write(dir.join(format!(".{UUID_A}.tar.partial")), vec![0u8; 4096]).unwrap();
    std::fs::create_dir_all(dir.join(format!(".restore-{UUID_B}/data/keys"))).unwrap();
    std::fs::write(dir.join(format!(".restore-{UUID_B}/data/keys/k")), b"k").unwrap();
    std::fs::create_dir_all(dir.join(format!(".check-{UUID_C}"))).unwrap();
    std::fs::write(dir.join(format!(".upload-{UUID_C}")), b"half").unwrap();
    std::fs::write(dir.join(format!(".import-{UUID_C}.tar")), b"half").unwrap();
    // Not made by the backup code: kept (exact names only).
    let keep = [
        ".work-not-a-uuid".to_string(),
        format!(".{UUID_A}.tar.partial.keep"),
        "notes.txt".to_string(),
    ];
    std::fs::create_dir_all(dir.join(&keep[0])).unwrap();
    std::fs::write(dir.join(&keep[1]), b"k").unwrap();
    std::fs::write(dir.join(&keep[2]), b"k").unwrap();
    // A backup that was running when the daemon died.
    let running = serde_json::json!({
        "id": UUID_A, "href": format!("/api/v1/system/backups/{UUID_A}"), "status": "running",
        "origin": "created", "created_at": "2026-01-01T00:00:00Z", "created_by": "admin",
    });
    std::fs::write(
        dir.join(format!("{UUID_A}.json")),
        serde_json::to_vec(&running).unwrap(),
    )
    .unwrap();

    // On a fresh port (a port just freed may be taken by another test's daemon), and make
    // sure it is this daemon that answers.
    d.port = common::free_port();
    d.base = format!("http://127.0.0.1:{}", d.port);
    d.spawn();
    assert_eq!(d.get_json("/api/v1/auth/whoami").await["user"], "admin");
    let mut want: Vec<String> = before.clone();
    want.extend(keep.iter().cloned());
    want.push(format!("{UUID_A}.json"));
    want.sort();
    assert_eq!(names(&dir), want, "only the leftovers are gone");
    let b = d
        .get_json(&format!("/api/v1/system/backups/{UUID_A}"))
        .await;
    assert_eq!(b["status"], "failed", "{b}");
    let log = std::fs::read_to_string(dir.join("backup.log")).unwrap();
    assert!(log.contains("leftovers of interrupted backups"), "{log}");
}

#[tokio::test]
async fn a_failing_backup_leaves_nothing() {
    let d = Daemon::start();
    // A state file larger than the free space (sparse: it takes no room itself): the backup
    // cannot be written and must fail cleanly, before reading it.
    let avail = {
        let c = std::ffi::CString::new(d.data_dir().to_str().unwrap()).unwrap();
        // SAFETY: statvfs fills the zeroed struct; `c` is a valid C string.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    };
    let keys = d.data_dir().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::File::create(keys.join("huge.bin"))
        .unwrap()
        .set_len(avail + (16 << 30))
        .unwrap();
    let r = d
        .send("POST", "/api/v1/system/backups", Some(&d.token), None)
        .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "backup_failed", "{job}");
    let b = d
        .get_json(&format!(
            "/api/v1/system/backups/{}",
            job["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(b["status"], "failed");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("not enough free space"),
        "{b}"
    );
    let dir = d.data_dir().join("backup");
    let left: Vec<String> = names(&dir)
        .into_iter()
        .filter(|n| n != "backup.log" && !n.ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// ---------------------------------------------------------------------------------------------
// Finding 2: modes and crafted entries

/// Rewrites `archive` entry by entry: every header's mode becomes `mode_for(name)` and its
/// owner 4242; the manifest lists every file with mode 0o6777.
fn with_hostile_modes(archive: &[u8], mode_for: impl Fn(&str) -> u32) -> Vec<u8> {
    let mut ar = tar::Archive::new(archive);
    let mut out = tar::Builder::new(Vec::new());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if name == "manifest.json" {
            let mut m: Value = serde_json::from_slice(&data).unwrap();
            for f in m["files"].as_array_mut().unwrap() {
                f["mode"] = 0o6777.into();
            }
            data = serde_json::to_vec_pretty(&m).unwrap();
        }
        let mut h = e.header().clone();
        h.set_mode(mode_for(&name));
        h.set_uid(4242);
        h.set_gid(4242);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append(&h, data.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}

#[tokio::test]
async fn restore_sets_hostplanes_modes_never_the_archives() {
    let d = Daemon::start_with(Opts {
        https: true,
        ..Default::default()
    });
    let data = d.data_dir().to_path_buf();
    for (p, m) in [
        ("bootstrap-token", 0o600),
        ("keys/appliance.key", 0o600),
        ("tls/key.pem", 0o600),
        ("tls/cert.pem", 0o644),
    ] {
        assert_eq!(mode(&data.join(p)), m, "{p} before");
    }
    let job = make_backup(&d).await;
    let id = job["id"].as_str().unwrap();
    let archive = download(&d, id).await;
    let hostile = with_hostile_modes(&archive, |name| match name {
        "data/bootstrap-token" | "data/keys/appliance.key" => 0o4777,
        "roles/tls-key.pem" => 0o666,
        _ => 0o6777,
    });
    let r = upload(&d, hostile).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let up: Value = r.json().await.unwrap();
    let job = restore(&d, up["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    for (p, m) in [
        ("bootstrap-token", 0o600),
        ("keys/appliance.key", 0o600),
        ("tls/key.pem", 0o600),
        ("tls/cert.pem", 0o644),
    ] {
        let path = data.join(p);
        assert_eq!(mode(&path), m, "{p} after the restore: {:o}", mode(&path));
        let meta = std::fs::metadata(&path).unwrap();
        assert_ne!(meta.uid(), 4242, "{p}: the archive's owner is not used");
    }
    assert_eq!(
        mode(&data.join("keys")) & 0o077,
        0,
        "keys dir stays private"
    );
    // The daemon still works with what was restored.
    assert_eq!(d.get_json("/api/v1/auth/whoami").await["user"], "admin");
}

/// A tar of one hostile entry after a copy of `good`'s entries: `kind`, raw `name`, `link`.
fn with_entry(good: &[u8], kind: tar::EntryType, name: &[u8], link: Option<&str>) -> Vec<u8> {
    let mut ar = tar::Archive::new(good);
    let mut out = tar::Builder::new(Vec::new());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.append(&h, data.as_slice()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(if kind == tar::EntryType::Regular {
        1
    } else {
        0
    });
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    if kind == tar::EntryType::Char {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    h.set_cksum();
    let body: &[u8] = if kind == tar::EntryType::Regular {
        b"x"
    } else {
        b""
    };
    out.append(&h, body).unwrap();
    out.into_inner().unwrap()
}

#[tokio::test]
async fn links_devices_absolute_and_dotdot_entries_are_refused() {
    let d = Daemon::start();
    let job = make_backup(&d).await;
    let good = download(&d, job["id"].as_str().unwrap()).await;
    let dir = d.data_dir().join("backup");
    let before = names(&dir);
    let outside = d.data_dir().join("escaped");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "symlink",
            with_entry(
                &good,
                tar::EntryType::Symlink,
                b"data/keys/evil",
                Some("/etc/passwd"),
            ),
        ),
        (
            "hard link",
            with_entry(
                &good,
                tar::EntryType::Link,
                b"data/keys/evil",
                Some("/etc/passwd"),
            ),
        ),
        (
            "device",
            with_entry(&good, tar::EntryType::Char, b"data/keys/evil", None),
        ),
        (
            "fifo",
            with_entry(&good, tar::EntryType::Fifo, b"data/keys/evil", None),
        ),
        (
            "absolute",
            with_entry(
                &good,
                tar::EntryType::Regular,
                outside.to_str().unwrap().as_bytes(),
                None,
            ),
        ),
        (
            "dot-dot",
            with_entry(&good, tar::EntryType::Regular, b"data/../../escaped", None),
        ),
    ];
    for (what, archive) in cases {
        let r = upload(&d, archive).await;
        assert_problem(r, 422, "invalid_archive").await;
        assert_eq!(names(&dir), before, "{what}: nothing left");
        assert!(!outside.exists(), "{what}");
        assert!(!d.data_dir().join("keys/evil").exists(), "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 3: streaming

#[tokio::test]
async fn backup_and_restore_of_a_large_state_file_do_not_grow_memory() {
    const BIG: u64 = 256 << 20;
    let d = Daemon::start();
    // A state file of 256 MiB (sparse: quick to make, read as zeros).
    let keys = d.data_dir().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let big = keys.join("big.bin");
    std::fs::File::create(&big).unwrap().set_len(BIG).unwrap();
    // Warm up the daemon (a small backup), then measure around the large one.
    let _ = d.get_json("/api/v1/system/backups").await;
    let start = vm_hwm(d.pid());
    let job = make_backup(&d).await;
    let after_backup = vm_hwm(d.pid());
    let id = job["id"].as_str().unwrap();
    let b = d.get_json(&format!("/api/v1/system/backups/{id}")).await;
    assert!(b["size_bytes"].as_u64().unwrap() > BIG, "{b}");
    std::fs::remove_file(&big).unwrap();
    let job = restore(&d, &format!("/api/v1/system/backups/{id}")).await;
    assert_eq!(job["status"], "success", "{job}");
    let after_restore = vm_hwm(d.pid());
    let mib = |n: u64| n as f64 / (1 << 20) as f64;
    // VmHWM is max(the kernel's lazily updated high-water mark, current RSS): when the daemon
    // returns memory (platform::memory trims after start-up) it can read lower than before.
    let (after_backup, after_restore) = (after_backup.max(start), after_restore.max(start));
    eprintln!(
        "VmHWM: start {:.1} MiB, after backup of a 256 MiB file {:.1} MiB (+{:.1}), after restore {:.1} MiB (+{:.1})",
        mib(start),
        mib(after_backup),
        mib(after_backup - start),
        mib(after_restore),
        mib(after_restore - start)
    );
    // The file is never held whole: peak memory grows by far less than its size.
    assert!(
        after_backup - start < BIG / 4,
        "backup: peak RSS grew by {:.1} MiB",
        mib(after_backup - start)
    );
    assert!(
        after_restore - start < BIG / 4,
        "restore: peak RSS grew by {:.1} MiB",
        mib(after_restore - start)
    );
    assert_eq!(std::fs::metadata(&big).unwrap().len(), BIG);
    assert_eq!(mode(&big), 0o600);
}

// ---------------------------------------------------------------------------------------------
// Finding 4: upload caps

const SMALL_CAPS: &str =
    "[admin]\nbackup_upload_max_bytes = 1048576\nbackup_unpacked_max_bytes = 1048576\n";

/// A tar with a manifest and one state file of `size` zero bytes (a bomb once compressed).
fn zero_tar(size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let manifest = br#"{"format":"hostplane-backup","version":1}"#;
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o600);
    h.set_cksum();
    b.append_data(&mut h, "manifest.json", &manifest[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(size as u64);
    h.set_mode(0o600);
    h.set_cksum();
    b.append_data(
        &mut h,
        "data/keys/zeros",
        std::io::repeat(0).take(size as u64),
    )
    .unwrap();
    b.into_inner().unwrap()
}

#[tokio::test]
async fn over_limit_uploads_get_413_and_leave_no_file() {
    let d = Daemon::start_with(Opts {
        config: Some(SMALL_CAPS.into()),
        ..Default::default()
    });
    let dir = d.data_dir().join("backup");
    let two_mib = vec![7u8; 2 << 20];
    let auth = format!("Authorization: Bearer {}", d.token);
    // Announced as too long: refused before a byte is read.
    let (status, body) = raw_request(
        d.port,
        &format!(
            "POST /api/v1/system/backups/upload HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: application/x-tar\r\nContent-Length: {}",
            two_mib.len()
        ),
        two_mib.clone(),
    );
    assert_413(status, &body);
    // Not announced (chunked): cut when the cap passes.
    let (status, body) = raw_request(
        d.port,
        &format!(
            "POST /api/v1/system/backups/upload HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked"
        ),
        chunked(&two_mib),
    );
    assert_413(status, &body);
    // The Jidoteki restore form, both ways.
    let boundary = "XbOuNdArY";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"backup.tar\"\r\nContent-Type: application/x-tar\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&two_mib);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /api/v1/admin/backup/restore HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: multipart/form-data; boundary={boundary}"
    );
    let (status, body) = raw_request(
        d.port,
        &format!("{head}\r\nContent-Length: {}", form.len()),
        form.clone(),
    );
    assert_413(status, &body);
    let (status, body) = raw_request(
        d.port,
        &format!("{head}\r\nTransfer-Encoding: chunked"),
        chunked(&form),
    );
    assert_413(status, &body);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(temp_names(&dir), Vec::<String>::new(), "no upload left");
    let list = d.get_json("/api/v1/system/backups").await;
    assert_eq!(list, serde_json::json!([]));
}

#[tokio::test]
async fn compression_bombs_are_refused_and_leave_nothing() {
    let d = Daemon::start_with(Opts {
        config: Some(SMALL_CAPS.into()),
        ..Default::default()
    });
    let dir = d.data_dir().join("backup");
    // 16 MiB of zeros: a few KiB compressed, 16 times the unpacked cap.
    let tar = zero_tar(16 << 20);
    let zst = zstd::stream::encode_all(tar.as_slice(), 3).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    assert!(zst.len() < 1 << 20 && gz.len() < 1 << 20);
    for (what, body) in [("zstd", zst), ("gzip", gz)] {
        let r = upload(&d, body.clone()).await;
        let v = assert_problem(r, 413, "payload_too_large").await;
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("unpacks to more than"),
            "{what}: {v}"
        );
        assert_eq!(
            temp_names(&dir),
            Vec::<String>::new(),
            "{what}: nothing left"
        );
        // The Jidoteki restore: the same refusal, nothing changed.
        let part = reqwest::multipart::Part::bytes(body).file_name("backup.tar.zst");
        let r = d
            .client
            .post(d.url("/api/v1/admin/backup/restore"))
            .bearer_auth(&d.token)
            .multipart(reqwest::multipart::Form::new().part("archive", part))
            .send()
            .await
            .unwrap();
        assert_problem(r, 413, "payload_too_large").await;
        assert_eq!(
            temp_names(&dir),
            Vec::<String>::new(),
            "{what}: nothing left"
        );
    }
    assert_eq!(
        d.get_json("/api/v1/system/backups").await,
        serde_json::json!([])
    );
}

#[tokio::test]
async fn a_compressed_backup_under_the_caps_is_stored_as_its_tar_and_restores() {
    let d = Daemon::start();
    let job = make_backup(&d).await;
    let plain = download(&d, job["id"].as_str().unwrap()).await;
    let zst = zstd::stream::encode_all(plain.as_slice(), 3).unwrap();
    let r = upload(&d, zst).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let up: Value = r.json().await.unwrap();
    // Stored as the plain tar: the same bytes as the original.
    let stored = download(&d, up["id"].as_str().unwrap()).await;
    assert_eq!(stored, plain);
    let job = restore(&d, up["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(
        temp_names(&d.data_dir().join("backup")),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn over_limit_update_packages_get_413_and_leave_no_file() {
    let keys = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let out = Command::new(BIN)
        .args(["keys", "generate", "--out"])
        .arg(keys.path().join("k"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let vendor_pub = std::fs::read_to_string(keys.path().join("k/vendor.pub")).unwrap();
    let d = Daemon::start_with(Opts {
        config: Some(format!(
            "[admin]\nvendor_public_key = \"{}\"\nappliance_identity = \"{}\"\nupdate_upload_max_bytes = 1048576\n",
            vendor_pub.trim(),
            keys.path().join("k/appliance.key").display()
        )),
        ..Default::default()
    });
    let auth = format!("Authorization: Bearer {}", d.token);
    let two_mib = vec![1u8; 2 << 20];
    // The native route's raw body, announced and not.
    let head = format!(
        "POST /api/v1/system/update HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: application/octet-stream"
    );
    let (status, body) = raw_request(
        d.port,
        &format!("{head}\r\nContent-Length: {}", two_mib.len()),
        two_mib.clone(),
    );
    assert_413(status, &body);
    let (status, body) = raw_request(
        d.port,
        &format!("{head}\r\nTransfer-Encoding: chunked"),
        chunked(&two_mib),
    );
    assert_413(status, &body);
    let boundary = "XbOuNdArY";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"update\"; filename=\"u.enc\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&two_mib);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    for path in ["/api/v1/system/update", "/api/v1/admin/update"] {
        let (status, body) = raw_request(
            d.port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked"
            ),
            chunked(&form),
        );
        assert_413(status, &body);
        let (status, body) = raw_request(
            d.port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}",
                form.len()
            ),
            form.clone(),
        );
        assert_413(status, &body);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tmp = d.data_dir().join("tmp");
    let left: Vec<String> = names(&tmp)
        .into_iter()
        .filter(|n| n.starts_with("update-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The sealed value of secret `name` in the store of `data_dir`, opened with that data dir's
/// `secrets.key` (what the daemon does when a run needs it).
fn open_secret(data_dir: &Path, name: &str) -> String {
    use std::str::FromStr;
    let key = std::fs::read_to_string(data_dir.join("secrets.key")).unwrap();
    let id = age::x25519::Identity::from_str(key.trim()).unwrap();
    let db = rusqlite::Connection::open(data_dir.join("hostplane.sqlite")).unwrap();
    let sealed: Vec<u8> = db
        .query_row("SELECT sealed FROM secrets WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap();
    String::from_utf8(age::decrypt(&id, &sealed).unwrap()).unwrap()
}

/// A backup carries the secret store's key with the store: restored into a fresh data dir on
/// another daemon, the stored secret still opens, the key is 0600, and the running daemon
/// seals new secrets with the restored key (it reloaded it).
#[tokio::test]
async fn secrets_survive_a_restore_into_a_fresh_data_dir() {
    let a = Daemon::start();
    let r = a
        .post(
            "/api/v1/provisioning/secrets",
            serde_json::json!({"name": "guest-pw", "value": "s3cret-b4ckup"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let job = make_backup(&a).await;
    let archive = download(&a, job["id"].as_str().unwrap()).await;
    assert!(
        tar::Archive::new(archive.as_slice())
            .entries()
            .unwrap()
            .any(|e| e.unwrap().path().unwrap().to_str() == Some("data/secrets.key")),
        "the backup holds data/secrets.key"
    );

    let b = Daemon::start();
    let old_key = std::fs::read(b.data_dir().join("secrets.key")).unwrap();
    let r = upload(&b, archive).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let up: Value = r.json().await.unwrap();
    let r = b
        .send(
            "POST",
            &format!("{}/restore", up["href"].as_str().unwrap()),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let href = r.json::<Value>().await.unwrap()["href"]
        .as_str()
        .unwrap()
        .to_string();
    // The restore brings a's tokens: poll with whichever works.
    let mut job = Value::Null;
    for _ in 0..60 {
        for token in [&a.token, &b.token] {
            let r = b.get_as(&format!("{href}/wait?timeout=5"), token).await;
            if r.status() == 200 {
                job = r.json().await.unwrap();
                break;
            }
        }
        if job["status"] == "success" || job["status"] == "failed" {
            break;
        }
    }
    assert_eq!(job["status"], "success", "{job}");

    let key = b.data_dir().join("secrets.key");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        std::fs::read(a.data_dir().join("secrets.key")).unwrap()
    );
    assert_ne!(std::fs::read(&key).unwrap(), old_key);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(open_secret(b.data_dir(), "guest-pw"), "s3cret-b4ckup");
    // The running daemon uses the restored key for what it seals now.
    let r = b
        .send(
            "POST",
            "/api/v1/provisioning/secrets",
            Some(&a.token),
            Some(serde_json::json!({"name": "after", "value": "n3w-value"})),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(open_secret(b.data_dir(), "after"), "n3w-value");
}
