//! Jidoteki sections 9 (TLS), 11 (Storage) and 12 (Backup) against the real daemon, every curl
//! example of the document run with both `?token=` and `?hash=`, with the documented answers;
//! and their native equivalents under `/api/v1/system`: the certificate swapped into the
//! running HTTPS listener (seen with `openssl s_client` before and after), storage settings and
//! the systemd units they generate (checked with `systemd-analyze verify`), and backup →
//! change things → restore → the same state, with corrupt archives refused and nothing touched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Daemon, Opts, assert_problem};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TOKEN: &str = "state-admin-token";

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The Jidoteki HMAC: key = hex(SHA-256(token)), message = METHOD + path.
fn hash_for(token: &str, method: &str, path: &str) -> String {
    let key = sha256_hex(token.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{method}{path}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn with_token(path: &str, token: &str) -> String {
    format!("{path}?token={token}")
}

fn with_hash(method: &str, path: &str, token: &str) -> String {
    format!("{path}?hash={}", hash_for(token, method, path))
}

/// Both documented forms of a request URL: `?token=` and `?hash=`.
fn both(method: &str, path: &str, token: &str) -> [String; 2] {
    [with_token(path, token), with_hash(method, path, token)]
}

async fn setup(d: &Daemon, token: &str) {
    let form = reqwest::multipart::Form::new().text("newtoken", token.to_string());
    let r = d
        .client
        .post(d.url("/api/v1/admin/setup"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn post_form(d: &Daemon, url: &str, form: reqwest::multipart::Form) -> reqwest::Response {
    d.client
        .post(d.url(url))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn get_plain(d: &Daemon, url: &str) -> reqwest::Response {
    d.client.get(d.url(url)).send().await.unwrap()
}

fn file_part(path: &Path) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(std::fs::read(path).unwrap())
        .file_name(path.file_name().unwrap().to_string_lossy().to_string())
}

/// `{"Status":"202 Accepted","Location":...}` with the Location header.
async fn assert_accepted(r: reqwest::Response, location: &str) {
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["location"], location);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"Status": "202 Accepted", "Location": location}),
        "exact body"
    );
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a `localhost` leaf it signed with an RSA key in the document's
/// `BEGIN RSA PRIVATE KEY` form. Returns (leaf.pem, leaf.rsa.key, ca.pem).
fn ca_and_leaf(dir: &Path, cn: &str) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Test Root CA",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            &format!("/CN={cn}"),
        ],
        dir,
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
        ],
        dir,
    );
    openssl(
        &[
            "rsa",
            "-in",
            "leaf.key",
            "-out",
            "leaf.rsa.key",
            "-traditional",
        ],
        dir,
    );
    let key = std::fs::read_to_string(dir.join("leaf.rsa.key")).unwrap();
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{key}");
    (
        dir.join("leaf.pem"),
        dir.join("leaf.rsa.key"),
        dir.join("ca.pem"),
    )
}

/// A self-signed pair: RSA (PKCS#8 key) or EC P-256 (SEC1 key). Returns (cert, key).
fn self_signed(dir: &Path, cn: &str, ec: bool) -> (PathBuf, PathBuf) {
    let (c, k) = (format!("{cn}.pem"), format!("{cn}.key"));
    if ec {
        openssl(
            &["ecparam", "-genkey", "-name", "prime256v1", "-out", &k],
            dir,
        );
        openssl(
            &[
                "req",
                "-x509",
                "-key",
                &k,
                "-out",
                &c,
                "-days",
                "1",
                "-subj",
                &format!("/CN={cn}"),
            ],
            dir,
        );
    } else {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &k,
                "-out",
                &c,
                "-days",
                "1",
                "-subj",
                &format!("/CN={cn}"),
            ],
            dir,
        );
    }
    (dir.join(c), dir.join(k))
}

fn first_cert(pem: &str) -> String {
    let start = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    pem[start..end].to_string()
}

/// The certificate a new TLS connection gets, as PEM.
fn served_certificate(port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    first_cert(&String::from_utf8_lossy(&out.stdout))
}

/// Polls `url` (unauthenticated: it carries ?token= or ?hash=) until `done` says so.
async fn poll_json(d: &Daemon, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = get_plain(d, url).await;
        if r.status() == 200 {
            last = r.json().await.unwrap();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never got there; last answer {last}");
}

fn https() -> Opts {
    Opts {
        https: true,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 9. TLS

#[tokio::test]
async fn certs_replace_the_served_certificate_without_a_restart() {
    let d = Daemon::start_with(https());
    setup(&d, TOKEN).await;
    let pki = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let (leaf, leaf_key, ca) = ca_and_leaf(pki.path(), "localhost");
    let original = served_certificate(d.port);
    assert_eq!(
        original.trim(),
        std::fs::read_to_string(d.data_dir().join("tls/cert.pem"))
            .unwrap()
            .trim()
    );

    // No update yet.
    for url in both("GET", "/api/v1/admin/certs", TOKEN) {
        assert_eq!(get_plain(&d, &url).await.status(), 404);
    }

    // A mismatched key is refused with 400; the served certificate stays.
    let (_, other_key) = self_signed(pki.path(), "other", false);
    let form = reqwest::multipart::Form::new()
        .part("public", file_part(&leaf))
        .part("private", file_part(&other_key))
        .part("ca", file_part(&ca));
    let r = post_form(&d, &with_token("/api/v1/admin/certs", TOKEN), form).await;
    let p = assert_problem(r, 400, "key_mismatch").await;
    assert!(p["detail"].as_str().unwrap().contains("private"), "{p}");
    // Garbage, a missing key, a wrong CA: 400 too.
    let form = reqwest::multipart::Form::new()
        .text("public", "not a certificate")
        .part("private", file_part(&leaf_key));
    assert_eq!(
        post_form(&d, &with_token("/api/v1/admin/certs", TOKEN), form)
            .await
            .status(),
        400
    );
    let form = reqwest::multipart::Form::new().part("public", file_part(&leaf));
    assert_eq!(
        post_form(&d, &with_token("/api/v1/admin/certs", TOKEN), form)
            .await
            .status(),
        400
    );
    let (wrong_ca, _) = self_signed(pki.path(), "Wrong CA", false);
    let form = reqwest::multipart::Form::new()
        .part("public", file_part(&leaf))
        .part("private", file_part(&leaf_key))
        .part("ca", file_part(&wrong_ca));
    assert_problem(
        post_form(&d, &with_token("/api/v1/admin/certs", TOKEN), form).await,
        400,
        "invalid_chain",
    )
    .await;
    assert_eq!(served_certificate(d.port).trim(), original.trim());
    assert_eq!(
        get_plain(&d, &with_token("/api/v1/admin/certs", TOKEN))
            .await
            .status(),
        404,
        "a refused upload starts no update"
    );

    // The document's example, hash form: public + RSA private + ca.
    let form = reqwest::multipart::Form::new()
        .part("public", file_part(&leaf))
        .part("private", file_part(&leaf_key))
        .part("ca", file_part(&ca));
    let r = post_form(&d, &with_hash("POST", "/api/v1/admin/certs", TOKEN), form).await;
    assert_accepted(r, "/api/v1/admin/certs").await;
    for url in both("GET", "/api/v1/admin/certs", TOKEN) {
        let st = poll_json(&d, &url, |v| v["status"] != "running").await;
        assert_eq!(st["status"], "success", "{st}");
        assert_eq!(
            st.as_object().unwrap().len(),
            2,
            "status and log only: {st}"
        );
        let log = st["log"].as_str().unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert!(!lines.is_empty() && lines.len() <= 10, "{log}");
        assert!(
            lines[0].ends_with("][SYSTEM] Validating and adding TLS certificates"),
            "{log}"
        );
        for l in &lines {
            let unix = l.strip_prefix('[').unwrap().split(']').next().unwrap();
            assert!(unix.parse::<u64>().unwrap() > 1_600_000_000, "{l}");
            assert!(l.contains("][SYSTEM] "), "{l}");
        }
    }
    // Same process, new certificate for new connections.
    let leaf_pem = std::fs::read_to_string(&leaf).unwrap();
    assert_eq!(
        served_certificate(d.port).trim(),
        first_cert(&leaf_pem).trim()
    );
    assert_eq!(d.get_json("/api/v1/auth/whoami").await["user"], "admin");
    // Installed with the chain, key 0600.
    let installed = std::fs::read_to_string(d.data_dir().join("tls/cert.pem")).unwrap();
    assert_eq!(installed.matches("BEGIN CERTIFICATE").count(), 2);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.data_dir().join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The native view of the same thing.
    let c = d.get_json("/api/v1/system/certificate").await;
    assert_eq!(c["listener"], "https");
    assert_eq!(c["subject"], "CN=localhost");
    assert_eq!(c["issuer"], "CN=Test Root CA");
    assert_eq!(c["key_type"], "RSA 2048");
    assert_eq!(c["dns_names"], json!(["localhost"]));
    assert_eq!(c["ip_addresses"], json!(["127.0.0.1"]));
    assert_eq!(c["chain"][0]["subject"], "CN=Test Root CA");
    assert_eq!(c["self_signed"], false);
    assert!(
        c["last_update"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/jobs/")
    );

    // Native: an EC pair by JSON, a job, swapped in the same way.
    let (ec_cert, ec_key) = self_signed(pki.path(), "ec-host", true);
    let body = json!({
        "certificate": std::fs::read_to_string(&ec_cert).unwrap(),
        "private_key": std::fs::read_to_string(&ec_key).unwrap(),
    });
    let viewer = d.token_for_role("certviewer", "viewer").await;
    let operator = d.token_for_role("certoperator", "operator").await;
    assert_problem(
        d.send(
            "PUT",
            "/api/v1/system/certificate",
            Some(&operator),
            Some(body.clone()),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        d.get_as("/api/v1/system/certificate", &viewer)
            .await
            .status(),
        200
    );
    let r = d
        .send(
            "PUT",
            "/api/v1/system/certificate",
            Some(&d.token.clone()),
            Some(body),
        )
        .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["result"]["key_type"], "ECDSA P-256");
    let ec_pem = std::fs::read_to_string(&ec_cert).unwrap();
    assert_eq!(
        served_certificate(d.port).trim(),
        first_cert(&ec_pem).trim()
    );
    // Invalid native input is 422 naming the field.
    let r = d
        .send(
            "PUT",
            "/api/v1/system/certificate",
            Some(&d.token.clone()),
            Some(json!({"certificate": ec_pem, "private_key": std::fs::read_to_string(&leaf_key).unwrap()})),
        )
        .await;
    let p = assert_problem(r, 422, "key_mismatch").await;
    assert_eq!(p["errors"][0]["field"], "private_key");
    assert_eq!(
        served_certificate(d.port).trim(),
        first_cert(&ec_pem).trim()
    );
}

#[tokio::test]
async fn certs_with_plain_http_are_stored_and_say_so() {
    let d = Daemon::start();
    setup(&d, TOKEN).await;
    assert_eq!(d.get("/api/v1/system/certificate").await.status(), 404);
    let pki = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let (cert, key) = self_signed(pki.path(), "plain", false);
    let form = reqwest::multipart::Form::new()
        .part("public", file_part(&cert))
        .part("private", file_part(&key));
    let r = post_form(&d, &with_token("/api/v1/admin/certs", TOKEN), form).await;
    assert_accepted(r, "/api/v1/admin/certs").await;
    let st = poll_json(&d, &with_token("/api/v1/admin/certs", TOKEN), |v| {
        v["status"] != "running"
    })
    .await;
    assert_eq!(st["status"], "success");
    assert!(st["log"].as_str().unwrap().contains("plain HTTP"), "{st}");
    let c = d.get_json("/api/v1/system/certificate").await;
    assert_eq!(c["listener"], "http");
    assert_eq!(c["subject"], "CN=plain");
    assert_eq!(c["self_signed"], true);
    assert_eq!(
        first_cert(&std::fs::read_to_string(d.data_dir().join("tls/cert.pem")).unwrap()),
        first_cert(&std::fs::read_to_string(&cert).unwrap())
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Storage

fn unit_dir(d: &Daemon) -> PathBuf {
    // Not root with the default data dir: generated files go to DATA_DIR/root.
    d.data_dir().join("root/etc/systemd/system")
}

fn verify_units(files: &[PathBuf]) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(files)
        .output()
        .expect("systemd-analyze is installed");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn post_settings(d: &Daemon, url: &str, settings: &Value) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(serde_json::to_vec_pretty(settings).unwrap())
        .file_name("settings.json")
        .mime_str("application/json")
        .unwrap();
    post_form(
        d,
        url,
        reqwest::multipart::Form::new().part("settings", part),
    )
    .await
}

#[tokio::test]
async fn storage_examples_round_trip_and_generate_boot_units() {
    let d = Daemon::start();
    setup(&d, TOKEN).await;
    let options = json!(["local", "nfs", "aoe", "iscsi", "nbd"]);
    for url in both("GET", "/api/v1/admin/storage", TOKEN) {
        let r = get_plain(&d, &url).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, json!({"storage": {"type": "local"}, "options": options}));
    }
    let examples = [
        json!({"storage": {"type": "nfs", "mount_options": "noacl,sync", "ip": "192.168.1.100", "share": "/nfs/storage"}}),
        json!({"storage": {"type": "aoe", "device": "e0.1"}}),
        json!({"storage": {"type": "iscsi", "target": "iqn.2016-01.com.example:storage.lun1", "ip": "192.168.1.100", "username": "user", "password": "pass"}}),
        json!({"storage": {"type": "nbd", "export_name": "otherexport", "ip": "192.168.1.100", "port": "1043"}}),
        json!({"storage": {"type": "local"}}),
    ];
    let mount = unit_dir(&d).join("srv-hostplane.mount");
    let attach = unit_dir(&d).join("hostplane-storage-attach.service");
    let wants = unit_dir(&d).join("remote-fs.target.wants");
    let modules = d
        .data_dir()
        .join("root/etc/modules-load.d/hostplane-storage.conf");
    for (i, ex) in examples.iter().enumerate() {
        let [tok, hash] = both("POST", "/api/v1/admin/storage", TOKEN);
        let url = if i % 2 == 0 { tok } else { hash };
        assert_accepted(post_settings(&d, &url, ex).await, "/api/v1/admin/storage").await;
        let [tok, hash] = both("GET", "/api/v1/admin/storage", TOKEN);
        let url = if i % 2 == 0 { hash } else { tok };
        let v: Value = get_plain(&d, &url).await.json().await.unwrap();
        let mut expect = ex["storage"].clone();
        // The CHAP secret is never shown.
        expect.as_object_mut().unwrap().remove("password");
        assert_eq!(
            v,
            json!({"storage": expect, "options": options}),
            "example {i}"
        );

        let kind = ex["storage"]["type"].as_str().unwrap();
        let unit = std::fs::read_to_string(&mount).unwrap_or_default();
        match kind {
            "nfs" => {
                assert!(unit.contains("What=192.168.1.100:/nfs/storage\nWhere=/srv/hostplane\nType=nfs\nOptions=noacl,sync,_netdev\n"), "{unit}");
                assert!(!attach.exists() && !modules.exists());
            }
            "aoe" => {
                assert!(
                    unit.contains("What=/dev/etherd/e0.1\nWhere=/srv/hostplane\n"),
                    "{unit}"
                );
                assert_eq!(
                    std::fs::read_to_string(&modules).unwrap().lines().nth(1),
                    Some("aoe")
                );
            }
            "iscsi" => {
                let a = std::fs::read_to_string(&attach).unwrap();
                let node = "-m node -T iqn.2016-01.com.example:storage.lun1 -p 192.168.1.100:3260";
                assert!(a.contains(&format!("{node} --login\n")), "{a}");
                assert!(
                    a.contains(&format!(
                        "{node} -o update -n node.session.auth.username -v user\n"
                    )),
                    "{a}"
                );
                assert!(
                    a.contains(&format!(
                        "{node} -o update -n node.session.auth.password -v pass\n"
                    )),
                    "{a}"
                );
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&attach).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "the unit holds the CHAP secret");
                assert!(
                    unit.contains("Requires=hostplane-storage-attach.service\n"),
                    "{unit}"
                );
                assert!(unit.contains("What=/dev/disk/by-path/ip-192.168.1.100:3260-iscsi-iqn.2016-01.com.example:storage.lun1-lun-0\n"), "{unit}");
                assert!(!modules.exists());
            }
            "nbd" => {
                let a = std::fs::read_to_string(&attach).unwrap();
                assert!(
                    a.contains("nbd-client 192.168.1.100 1043 /dev/nbd0 -N otherexport\n"),
                    "{a}"
                );
                assert!(unit.contains("What=/dev/nbd0\n"), "{unit}");
                assert_eq!(
                    std::fs::read_to_string(&modules).unwrap().lines().nth(1),
                    Some("nbd")
                );
            }
            _ => {
                assert!(!mount.exists() && !attach.exists() && !modules.exists());
                assert_eq!(std::fs::read_dir(&wants).map(|r| r.count()).unwrap_or(0), 0);
            }
        }
        if kind != "local" {
            assert!(unit.starts_with("# Generated by hostplane"), "{unit}");
            assert_eq!(
                std::fs::read_link(wants.join("srv-hostplane.mount")).unwrap(),
                Path::new("/etc/systemd/system/srv-hostplane.mount")
            );
            let mut files = vec![mount.clone()];
            if attach.exists() {
                files.push(attach.clone());
            }
            verify_units(&files);
        }
    }

    // Invalid settings: 400, nothing changes.
    let before: Value = get_plain(&d, &with_token("/api/v1/admin/storage", TOKEN))
        .await
        .json()
        .await
        .unwrap();
    for bad in [
        json!({"storage": {"type": "nfs", "ip": "192.168.1.100", "share": "relative/path"}}),
        json!({"storage": {"type": "nfs", "ip": "-o evil", "share": "/x"}}),
        json!({"storage": {"type": "iscsi", "target": "not-an-iqn", "ip": "192.168.1.100"}}),
        json!({"storage": {"type": "nbd", "export_name": "x", "ip": "192.168.1.100", "port": "99999"}}),
        json!({"storage": {"type": "zfs"}}),
        json!({"type": "local"}),
    ] {
        let r = post_settings(&d, &with_token("/api/v1/admin/storage", TOKEN), &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = post_form(
        &d,
        &with_token("/api/v1/admin/storage", TOKEN),
        reqwest::multipart::Form::new().text("other", "x"),
    )
    .await;
    assert_eq!(r.status(), 400);
    let after: Value = get_plain(&d, &with_token("/api/v1/admin/storage", TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before, after);

    // Native: ETag / If-Match, 422 naming the field.
    let r = d.get("/api/v1/system/storage").await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["settings"], json!({"type": "local"}));
    assert_eq!(v["mount_point"], "/srv/hostplane");
    assert_eq!(v["updated_by"], "admin-api");
    let put = |if_match: Option<String>, body: Value| {
        let mut req = d
            .client
            .put(d.url("/api/v1/system/storage"))
            .bearer_auth(&d.token)
            .json(&body);
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        req.send()
    };
    let nfs = json!({"type": "nfs", "ip": "10.0.0.5", "share": "/export/app"});
    let r = put(Some(etag.clone()), nfs.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let new_etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["settings"], nfs);
    assert_eq!(v["updated_by"], "admin");
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().ends_with("/srv-hostplane.mount"))
    );
    let r = put(Some(etag), json!({"type": "local"})).await.unwrap();
    assert_problem(r, 412, "precondition_failed").await;
    let r = put(None, json!({"type": "nfs", "ip": "10.0.0.5", "share": "x"}))
        .await
        .unwrap();
    let p = assert_problem(r, 422, "invalid_storage").await;
    assert_eq!(p["errors"][0]["field"], "share");
    let r = put(None, json!({"type": "aoe", "device": "e0.1", "extra": 1}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let operator = d.token_for_role("storageop", "operator").await;
    let r = d
        .send(
            "PUT",
            "/api/v1/system/storage",
            Some(&operator),
            Some(json!({"type": "local"})),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
}

#[tokio::test]
async fn storage_options_come_from_config_and_disabled_endpoints_are_404() {
    let d = Daemon::start_with(Opts {
        config: Some(
            "[admin]\nstorage_options = [\"local\", \"nfs\"]\nendpoints = [\"storage\"]\n".into(),
        ),
        ..Default::default()
    });
    setup(&d, TOKEN).await;
    let v: Value = get_plain(&d, &with_token("/api/v1/admin/storage", TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["options"], json!(["local", "nfs"]));
    let r = post_settings(
        &d,
        &with_token("/api/v1/admin/storage", TOKEN),
        &json!({"storage": {"type": "aoe", "device": "e0.1"}}),
    )
    .await;
    let p = assert_problem(r, 400, "invalid_storage").await;
    assert!(p["detail"].as_str().unwrap().contains("not offered"), "{p}");
    // certs and backup are not enabled here.
    for path in [
        "/api/v1/admin/certs",
        "/api/v1/admin/backup",
        "/api/v1/admin/backup/log",
        "/api/v1/admin/backup/download",
    ] {
        assert_eq!(
            get_plain(&d, &with_token(path, TOKEN)).await.status(),
            404,
            "{path}"
        );
    }
    let e: Value = get_plain(&d, &with_token("/api/v1/admin/endpoints", TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let list: Vec<&str> = e["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(list.contains(&"/api/v1/admin/storage"), "{list:?}");
    assert!(
        !list.contains(&"/api/v1/admin/certs") && !list.contains(&"/api/v1/admin/backup"),
        "{list:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 12. Backup

/// What "the state" is, as the API shows it.
async fn snapshot(d: &Daemon, bearer: &str) -> Value {
    let users: Value = d
        .get_as("/api/v1/users", bearer)
        .await
        .json()
        .await
        .unwrap();
    let tokens: Value = d
        .get_as(
            "/api/v1/tokens?fields=id,name,kind,owner,role,scopes,expires_at,created_at&sort=id",
            bearer,
        )
        .await
        .json()
        .await
        .unwrap();
    let storage: Value = d
        .get_as("/api/v1/system/storage", bearer)
        .await
        .json()
        .await
        .unwrap();
    let cert: Value = d
        .get_as("/api/v1/system/certificate", bearer)
        .await
        .json()
        .await
        .unwrap();
    json!({
        "users": users,
        "tokens": tokens,
        "storage": storage["settings"],
        "storage_files": storage["files"],
        "cert": cert["sha256"],
    })
}

fn tar_list(path: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tf").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn restore_form(d: &Daemon, url: &str, archive: Vec<u8>) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(archive).file_name("backup.tar");
    post_form(
        d,
        url,
        reqwest::multipart::Form::new().part("archive", part),
    )
    .await
}

#[tokio::test]
async fn backup_change_restore_gives_the_same_state_and_corrupt_archives_change_nothing() {
    let d = Daemon::start_with(Opts {
        https: true,
        // A config file, so the backup carries one.
        config: Some("[admin]\nbackup_keep = 3\n".into()),
        ..Default::default()
    });
    setup(&d, TOKEN).await;
    let work = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    // Some state: a user with a token, storage settings.
    let alice = d.token_for_role("alice", "operator").await;
    let r = post_settings(
        &d,
        &with_token("/api/v1/admin/storage", TOKEN),
        &json!({"storage": {"type": "nfs", "mount_options": "noacl,sync", "ip": "192.168.1.100", "share": "/nfs/storage"}}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let bearer = d.token.clone();
    let before = snapshot(&d, &bearer).await;
    let cert_before = served_certificate(d.port);

    // Nothing yet.
    for path in [
        "/api/v1/admin/backup",
        "/api/v1/admin/backup/log",
        "/api/v1/admin/backup/download",
    ] {
        for url in both("GET", path, TOKEN) {
            assert_eq!(get_plain(&d, &url).await.status(), 404, "{url}");
        }
    }
    let r = post_form(
        &d,
        &with_token("/api/v1/admin/backup", TOKEN),
        reqwest::multipart::Form::new().text("action", "BACKUP"),
    )
    .await;
    assert_eq!(r.status(), 400);

    // START, token form; poll with both forms.
    let r = post_form(
        &d,
        &with_token("/api/v1/admin/backup", TOKEN),
        reqwest::multipart::Form::new().text("action", "START"),
    )
    .await;
    assert_accepted(r, "/api/v1/admin/backup").await;
    let mut status = Value::Null;
    for url in both("GET", "/api/v1/admin/backup", TOKEN) {
        status = poll_json(&d, &url, |v| v["status"] != "running").await;
        assert_eq!(status["status"], "success", "{status}");
        assert_eq!(status.as_object().unwrap().len(), 3, "{status}");
    }
    let filesize = status["filesize"].as_str().unwrap();
    assert!(
        filesize.ends_with('K') || filesize.ends_with('M'),
        "{filesize}"
    );
    assert!(filesize[..filesize.len() - 1].contains('.'), "{filesize}");
    let sha = status["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);

    // Download, both forms: the archive the status describes.
    let mut archive = Vec::new();
    for url in both("GET", "/api/v1/admin/backup/download", TOKEN) {
        let r = get_plain(&d, &url).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/octet-stream");
        assert_eq!(r.headers()["filename"], "backup.tar");
        archive = r.bytes().await.unwrap().to_vec();
        assert_eq!(sha256_hex(&archive), sha);
    }
    let tar = work.path().join("backup.tar");
    std::fs::write(&tar, &archive).unwrap();
    let names = tar_list(&tar);
    for want in [
        "manifest.json",
        "store/hostplane.sqlite",
        "roles/tls-cert.pem",
        "roles/tls-key.pem",
        "roles/config.toml",
        "data/bootstrap-token",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    for url in both("GET", "/api/v1/admin/backup/log", TOKEN) {
        let r = get_plain(&d, &url).await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let log = r.text().await.unwrap();
        assert!(log.contains("][SYSTEM] Starting backup\n"), "{log}");
        assert!(log.contains("Created file: "), "{log}");
        assert!(
            log.contains(&format!(" - size: {filesize} - hash: {sha}\n")),
            "{log}"
        );
        assert!(log.contains("][SYSTEM] Backup complete\n"), "{log}");
    }

    // Change things: users, tokens, the admin-API token, the certificate, storage.
    let r = d
        .send("DELETE", "/api/v1/users/alice", Some(&bearer), None)
        .await;
    assert!(r.status().is_success());
    let bob = d.token_for_role("bob", "admin").await;
    let form = reqwest::multipart::Form::new().text("newtoken", "second-token-7d2f9a");
    assert_eq!(
        post_form(&d, &with_token("/api/v1/admin/setup", TOKEN), form)
            .await
            .status(),
        200
    );
    let (cert2, key2) = self_signed(work.path(), "changed", false);
    let form = reqwest::multipart::Form::new()
        .part("public", file_part(&cert2))
        .part("private", file_part(&key2));
    let r = post_form(
        &d,
        &with_token("/api/v1/admin/certs", "second-token-7d2f9a"),
        form,
    )
    .await;
    assert_eq!(r.status(), 202);
    poll_json(
        &d,
        &with_token("/api/v1/admin/certs", "second-token-7d2f9a"),
        |v| v["status"] == "success",
    )
    .await;
    let r = post_settings(
        &d,
        &with_token("/api/v1/admin/storage", "second-token-7d2f9a"),
        &json!({"storage": {"type": "aoe", "device": "e0.1"}}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let changed = snapshot(&d, &bearer).await;
    assert_ne!(changed, before);
    let cert_changed = served_certificate(d.port);
    assert_ne!(cert_changed.trim(), cert_before.trim());
    assert_eq!(
        get_plain(&d, &with_token("/api/v1/admin/storage", TOKEN))
            .await
            .status(),
        403
    );
    assert_eq!(d.get_as("/api/v1/auth/whoami", &alice).await.status(), 401);

    // Corrupt archives are refused (400) and change nothing.
    let mut flipped = archive.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let truncated = archive[..archive.len() / 3].to_vec();
    // An extra file the manifest does not list.
    let extra_dir = work.path().join("extra");
    std::fs::create_dir_all(extra_dir.join("data/keys")).unwrap();
    std::fs::write(extra_dir.join("data/keys/evil"), "x").unwrap();
    let with_extra = work.path().join("extra.tar");
    std::fs::write(&with_extra, &archive).unwrap();
    let st = Command::new("tar")
        .arg("--append")
        .arg("-f")
        .arg(&with_extra)
        .arg("-C")
        .arg(&extra_dir)
        .arg("data/keys/evil")
        .status()
        .unwrap();
    assert!(st.success());
    for (what, bad) in [
        ("flipped byte", flipped),
        ("truncated", truncated),
        ("not a tar", b"hello".to_vec()),
        ("unlisted file", std::fs::read(&with_extra).unwrap()),
    ] {
        for url in both(
            "POST",
            "/api/v1/admin/backup/restore",
            "second-token-7d2f9a",
        ) {
            let r = restore_form(&d, &url, bad.clone()).await;
            assert_eq!(r.status(), 400, "{what}");
        }
    }
    let r = post_form(
        &d,
        &with_token("/api/v1/admin/backup/restore", "second-token-7d2f9a"),
        reqwest::multipart::Form::new().text("other", "x"),
    )
    .await;
    assert_eq!(r.status(), 400, "missing archive");
    assert_eq!(snapshot(&d, &bearer).await, changed);
    assert_eq!(served_certificate(d.port).trim(), cert_changed.trim());
    assert_eq!(d.get_as("/api/v1/auth/whoami", &bob).await.status(), 200);

    // Restore the good one (hash form): synchronous, 200.
    let r = restore_form(
        &d,
        &with_hash(
            "POST",
            "/api/v1/admin/backup/restore",
            "second-token-7d2f9a",
        ),
        archive.clone(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"Status": "200 OK"})
    );
    assert_eq!(
        snapshot(&d, &bearer).await,
        before,
        "the same state as at the backup"
    );
    assert_eq!(served_certificate(d.port).trim(), cert_before.trim());
    assert_eq!(d.get_as("/api/v1/auth/whoami", &alice).await.status(), 200);
    assert_eq!(d.get_as("/api/v1/auth/whoami", &bob).await.status(), 401);
    assert_eq!(
        get_plain(&d, &with_token("/api/v1/admin/storage", TOKEN))
            .await
            .status(),
        200
    );
    assert_eq!(
        get_plain(
            &d,
            &with_token("/api/v1/admin/storage", "second-token-7d2f9a")
        )
        .await
        .status(),
        403
    );
    let unit = std::fs::read_to_string(unit_dir(&d).join("srv-hostplane.mount")).unwrap();
    assert!(
        unit.contains("What=192.168.1.100:/nfs/storage\n"),
        "units regenerated: {unit}"
    );
    // History is not rewritten: the audit log still has what happened after the backup.
    let audit: Value = d
        .get_as("/api/v1/audit", &bearer)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/api/v1/admin/certs"),
        "{audit}"
    );
    let log = get_plain(&d, &with_token("/api/v1/admin/backup/log", TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("][SYSTEM] Restore complete\n"), "{log}");
    // The same daemon process all along.
    assert_eq!(d.get_json("/api/v1/auth/whoami").await["user"], "admin");
}

#[tokio::test]
async fn native_backups_collection_upload_restore_delete_and_stop() {
    let d = Daemon::start_with(Opts {
        config: Some("[admin]\nbackup_keep = 2\n".into()),
        ..Default::default()
    });
    setup(&d, TOKEN).await;
    let bearer = d.token.clone();
    let viewer = d.token_for_role("backupviewer", "viewer").await;
    let operator = d.token_for_role("backupop", "operator").await;
    assert_problem(
        d.send("POST", "/api/v1/system/backups", Some(&operator), None)
            .await,
        403,
        "forbidden",
    )
    .await;
    let r = d
        .send("POST", "/api/v1/system/backups", Some(&bearer), None)
        .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["kind"], "system.backup");
    let b = d.get_json(&format!("/api/v1/system/backups/{id}")).await;
    assert_eq!(b["status"], "success");
    assert_eq!(b["origin"], "created");
    assert_eq!(b["job"], format!("/api/v1/jobs/{id}"));
    // Backups hold every secret of the appliance: not even their list is for viewers.
    assert_problem(
        d.get_as("/api/v1/system/backups", &viewer).await,
        403,
        "forbidden",
    )
    .await;
    let list = d.get("/api/v1/system/backups").await;
    assert_eq!(list.headers()["x-total-count"], "1");
    // Download: admin only.
    let url = format!("/api/v1/system/backups/{id}/download");
    assert_problem(d.get_as(&url, &viewer).await, 403, "forbidden").await;
    let r = d.get(&url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let archive = r.bytes().await.unwrap().to_vec();
    assert_eq!(sha256_hex(&archive), b["sha256"].as_str().unwrap());

    // Upload: checked, stored as a backup.
    let upload = |body: Vec<u8>| {
        d.client
            .post(d.url("/api/v1/system/backups/upload"))
            .bearer_auth(&bearer)
            .header("content-type", "application/x-tar")
            .body(body)
            .send()
    };
    let r = upload(b"not a backup".to_vec()).await.unwrap();
    assert_problem(r, 422, "invalid_archive").await;
    let r = upload(archive.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let up: Value = r.json().await.unwrap();
    assert_eq!(up["origin"], "uploaded");
    assert_eq!(up["sha256"], b["sha256"]);

    // Change, then restore by id: a job.
    d.token_for_role("carol", "viewer").await;
    let r = d
        .send(
            "POST",
            &format!("{}/restore", up["href"].as_str().unwrap()),
            Some(&bearer),
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job = d.wait_job(job["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["kind"], "system.restore");
    assert_eq!(job["result"]["storage_reapplied"], true);
    assert_eq!(d.get("/api/v1/users/carol").await.status(), 404);
    assert_eq!(d.get("/api/v1/users/backupviewer").await.status(), 200);

    // Retention: backup_keep = 2.
    for _ in 0..2 {
        let r = d
            .send("POST", "/api/v1/system/backups", Some(&bearer), None)
            .await;
        assert_eq!(r.status(), 202);
        let job: Value = r.json().await.unwrap();
        assert_eq!(
            d.wait_job(job["href"].as_str().unwrap()).await["status"],
            "success"
        );
    }
    let all: Value = d.get_json("/api/v1/system/backups").await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        d.get(&format!("/api/v1/system/backups/{id}"))
            .await
            .status(),
        404
    );

    // Jidoteki STOP deletes the newest backup made here.
    let newest = all[0]["id"].as_str().unwrap().to_string();
    let r = post_form(
        &d,
        &with_hash("POST", "/api/v1/admin/backup", TOKEN),
        reqwest::multipart::Form::new().text("action", "STOP"),
    )
    .await;
    assert_accepted(r, "/api/v1/admin/backup").await;
    assert_eq!(
        d.get(&format!("/api/v1/system/backups/{newest}"))
            .await
            .status(),
        404
    );
    let log = get_plain(&d, &with_token("/api/v1/admin/backup/log", TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        log.contains(&format!("][SYSTEM] Deleting backup archive {newest}\n")),
        "{log}"
    );

    // Native delete.
    let rest: Value = d.get_json("/api/v1/system/backups").await;
    for b in rest.as_array().unwrap() {
        let r = d
            .send("DELETE", b["href"].as_str().unwrap(), Some(&bearer), None)
            .await;
        assert_eq!(r.status(), 204);
    }
    assert_eq!(d.get_json("/api/v1/system/backups").await, json!([]));
    assert_eq!(
        get_plain(&d, &with_token("/api/v1/admin/backup", TOKEN))
            .await
            .status(),
        404
    );
    assert_eq!(
        d.get("/api/v1/system/backups/not-an-id").await.status(),
        404
    );
}

#[tokio::test]
async fn stop_cancels_a_running_backup_and_leaves_nothing_behind() {
    let d = Daemon::start();
    setup(&d, TOKEN).await;
    // Enough state that the backup runs for a moment.
    let keys = d.data_dir().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let big: Vec<u8> = (0..(96u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(keys.join("big.bin"), big).unwrap();
    let r = post_form(
        &d,
        &with_token("/api/v1/admin/backup", TOKEN),
        reqwest::multipart::Form::new().text("action", "START"),
    )
    .await;
    assert_accepted(r, "/api/v1/admin/backup").await;
    let st: Value = get_plain(&d, &with_token("/api/v1/admin/backup", TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(st, json!({"status": "running"}));
    // A second START while one runs: 400 (only one backup at a time).
    let r = post_form(
        &d,
        &with_token("/api/v1/admin/backup", TOKEN),
        reqwest::multipart::Form::new().text("action", "START"),
    )
    .await;
    assert_problem(r, 400, "lock_held").await;
    let r = post_form(
        &d,
        &with_token("/api/v1/admin/backup", TOKEN),
        reqwest::multipart::Form::new().text("action", "STOP"),
    )
    .await;
    assert_accepted(r, "/api/v1/admin/backup").await;
    assert_eq!(
        get_plain(&d, &with_token("/api/v1/admin/backup", TOKEN))
            .await
            .status(),
        404
    );
    let jobs: Value = d.get_json("/api/v1/jobs?filter=kind:system.backup").await;
    assert_eq!(jobs[0]["status"], "cancelled", "{jobs}");
    // The stopped backup's files are gone (the blocking copy may finish its step first).
    let dir = d.data_dir().join("backup");
    let mut left = Vec::new();
    for _ in 0..100 {
        left = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n != "backup.log")
            .collect();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "{left:?}");
    let log = get_plain(&d, &with_token("/api/v1/admin/backup/log", TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("][SYSTEM] Stopping backup\n"), "{log}");
    assert!(log.contains("][SYSTEM] Deleting backup archive "), "{log}");
}
