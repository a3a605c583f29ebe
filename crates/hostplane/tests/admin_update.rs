//! Jidoteki sections 3 (updates), 7 (version, changelog, build) and 10 (licence), run for real:
//! keys, packages and licences made with the real vendor CLI (`hostplane keys generate`,
//! `hostplane package build`, `hostplane license issue`), sent to the real daemon the way the
//! document's curl examples do (multipart, `?token=` and `?hash=`), answers compared with the
//! document's. Also the native equivalents under `/api/v1/system`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Daemon, Opts, assert_problem};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const API_TOKEN: &str = "yourtoken-4f9a2c8e71b3";
const HOSTPLANE_VERSION: &str = env!("CARGO_PKG_VERSION");

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The document's HMAC: key = hex(SHA-256(token)), message = METHOD + path.
fn hash_for(method: &str, path: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(sha256_hex(API_TOKEN).as_bytes()).unwrap();
    m.update(format!("{method}{path}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

#[derive(Clone, Copy, Debug)]
enum Auth {
    Token,
    Hash,
}

fn url(d: &Daemon, method: &str, path: &str, auth: Auth) -> String {
    match auth {
        Auth::Token => d.url(&format!("{path}?token={API_TOKEN}")),
        Auth::Hash => d.url(&format!("{path}?hash={}", hash_for(method, path))),
    }
}

fn run_ok(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "hostplane {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Keys made by `hostplane keys generate`, and a work dir for packages.
struct Vendor {
    dir: tempfile::TempDir,
    vendor_pub: String,
    recipient: String,
}

impl Vendor {
    fn new() -> Vendor {
        let dir = tempfile::Builder::new()
            .prefix("hp-test-")
            .tempdir()
            .unwrap();
        let keys = dir.path().join("keys");
        run_ok(&["keys", "generate", "--out", keys.to_str().unwrap()]);
        let read = |n: &str| {
            std::fs::read_to_string(keys.join(n))
                .unwrap()
                .trim()
                .to_string()
        };
        Vendor {
            vendor_pub: read("vendor.pub"),
            recipient: read("appliance.pub"),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn signing_key(&self) -> PathBuf {
        self.path("keys/vendor.key")
    }

    fn appliance_key(&self) -> PathBuf {
        self.path("keys/appliance.key")
    }

    fn config(&self, extra: &str) -> String {
        format!(
            "[admin]\nvendor_public_key = \"{}\"\nappliance_identity = \"{}\"\n{extra}\n",
            self.vendor_pub,
            self.appliance_key().display()
        )
    }

    /// `hostplane package build` with a payload of one file (`app.txt`) and `script`.
    fn package(&self, name: &str, version: &str, min: &str, script: &str) -> PathBuf {
        self.package_with(
            name,
            version,
            min,
            script,
            &self.signing_key(),
            &self.recipient,
        )
    }

    fn package_with(
        &self,
        name: &str,
        version: &str,
        min: &str,
        script: &str,
        signing_key: &Path,
        recipient: &str,
    ) -> PathBuf {
        let work = self.path(&format!("src-{name}"));
        std::fs::create_dir_all(work.join("payload/sub")).unwrap();
        std::fs::write(work.join("payload/app.txt"), format!("app {version}\n")).unwrap();
        std::fs::write(work.join("payload/sub/data.bin"), [1u8, 2, 3]).unwrap();
        std::fs::write(work.join("update.sh"), script).unwrap();
        std::fs::write(work.join("CHANGELOG"), changelog(version)).unwrap();
        let out = self.path(name);
        run_ok(&[
            "package",
            "build",
            "--version",
            version,
            "--min-version",
            min,
            "--changelog",
            work.join("CHANGELOG").to_str().unwrap(),
            "--build-info",
            &format!("{{\"builddate\":\"{}\"}}", build_date(version)),
            "--payload",
            work.join("payload").to_str().unwrap(),
            "--script",
            work.join("update.sh").to_str().unwrap(),
            "--signing-key",
            signing_key.to_str().unwrap(),
            "--recipient",
            recipient,
            "--out",
            out.to_str().unwrap(),
        ]);
        out
    }
}

fn changelog(version: &str) -> String {
    format!("# Changelog\n\n## {version} (2015-08-21)\n\n  * Update app to version {version}\n")
}

fn build_date(version: &str) -> String {
    format!("12345{}", version.replace('.', ""))
}

/// A script that copies the payload's app.txt to `marker` and says so on stdout and stderr.
fn good_script(marker: &Path) -> String {
    format!(
        "#!/bin/sh\nset -e\necho \"installing $HOSTPLANE_UPDATE_VERSION over $HOSTPLANE_INSTALLED_VERSION\"\n\
         cp \"$HOSTPLANE_UPDATE_PAYLOAD/app.txt\" '{}'\ntest -f payload/sub/data.bin\necho 'a warning' >&2\n",
        marker.display()
    )
}

/// Starts a daemon with the vendor's keys and sets the admin API token (initial setup).
async fn daemon(v: &Vendor, extra: &str) -> Daemon {
    let d = Daemon::start_with(Opts {
        config: Some(v.config(extra)),
        ..Default::default()
    });
    let form = reqwest::multipart::Form::new().text("newtoken", API_TOKEN);
    let r = d
        .client
        .post(d.url("/api/v1/admin/setup"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    d
}

/// `curl -X POST .../update?token=… -F update=@FILE`
async fn post_update(d: &Daemon, auth: Auth, file: &Path) -> reqwest::Response {
    let bytes = std::fs::read(file).unwrap();
    post_update_bytes(d, auth, bytes).await
}

async fn post_update_bytes(d: &Daemon, auth: Auth, bytes: Vec<u8>) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(bytes).file_name("software_package-name.enc");
    let form = reqwest::multipart::Form::new().part("update", part);
    d.client
        .post(url(d, "POST", "/api/v1/admin/update", auth))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn get(d: &Daemon, path: &str, auth: Auth) -> reqwest::Response {
    d.client
        .get(url(d, "GET", path, auth))
        .send()
        .await
        .unwrap()
}

async fn get_json(d: &Daemon, path: &str, auth: Auth) -> Value {
    let r = get(d, path, auth).await;
    assert_eq!(r.status(), 200, "GET {path}");
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

/// Polls `GET /update` (as the document suggests) until the update is no longer running.
async fn wait_update(d: &Daemon) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get_json(d, "/api/v1/admin/update", Auth::Hash).await;
        if v["status"] != "running" {
            return v;
        }
        assert!(Instant::now() < deadline, "update still running: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_accepted(r: reqwest::Response) {
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["location"], "/api/v1/admin/update");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"Status":"202 Accepted","Location":"/api/v1/admin/update"}"#
    );
}

/// Applies a package through the compat API and returns the final status.
async fn apply(d: &Daemon, auth: Auth, file: &Path) -> Value {
    assert_accepted(post_update(d, auth, file).await).await;
    wait_update(d).await
}

async fn version(d: &Daemon) -> String {
    get_json(d, "/api/v1/admin/version", Auth::Token).await["version"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every log line is `[unixtime][SYSTEM] message`, with a plausible time.
fn assert_log_format(log: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for line in log.lines() {
        let rest = line.strip_prefix('[').unwrap_or_else(|| panic!("{line:?}"));
        let (t, rest) = rest.split_once(']').unwrap();
        let t: u64 = t.parse().unwrap_or_else(|_| panic!("{line:?}"));
        assert!(t.abs_diff(now) < 600, "{line:?}");
        assert!(rest.starts_with("[SYSTEM] "), "{line:?}");
    }
}

#[test]
fn vendor_cli_keys_refuse_overwrite_and_inspect_packages() {
    let v = Vendor::new();
    use std::os::unix::fs::PermissionsExt;
    for (name, mode) in [
        ("vendor.key", 0o600),
        ("appliance.key", 0o600),
        ("vendor.pub", 0o644),
        ("appliance.pub", 0o644),
    ] {
        let m = std::fs::metadata(v.path("keys").join(name)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, mode, "{name}");
    }
    assert!(v.recipient.starts_with("age1"));
    // Never overwrites keys.
    let out = Command::new(BIN)
        .args(["keys", "generate", "--out"])
        .arg(v.path("keys"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not overwriting"));

    let pkg = v.package("p.enc", "1.2.3", "1.0.0", "#!/bin/sh\ntrue\n");
    let inspected: Value = serde_json::from_str(&run_ok(&[
        "package",
        "inspect",
        "--identity",
        v.appliance_key().to_str().unwrap(),
        "--vendor-key",
        v.path("keys/vendor.pub").to_str().unwrap(),
        pkg.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(inspected["version"], "1.2.3");
    assert_eq!(inspected["min_version"], "1.0.0");
    assert_eq!(
        inspected["build"],
        json!({"builddate": build_date("1.2.3")})
    );
    assert_eq!(inspected["changelog"], changelog("1.2.3"));
    let files: Vec<&String> = inspected["files"].as_object().unwrap().keys().collect();
    assert_eq!(
        files,
        ["payload/app.txt", "payload/sub/data.bin", "update.sh"]
    );
    // The package is encrypted: no plaintext of the manifest or payload in it.
    let raw = std::fs::read(&pkg).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1\n"));
    assert!(!raw.windows(5).any(|w| w == b"1.2.3"));

    // A bad version is refused by the builder.
    let out = Command::new(BIN)
        .args(["package", "build", "--version", "1.0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn fresh_appliance_reports_its_own_version_and_no_update_state() {
    let v = Vendor::new();
    let d = daemon(&v, "").await;
    for auth in [Auth::Token, Auth::Hash] {
        let r = get(&d, "/api/v1/admin/version", auth).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"version": HOSTPLANE_VERSION})
        );
        for path in [
            "/api/v1/admin/changelog",
            "/api/v1/admin/build",
            "/api/v1/admin/update",
            "/api/v1/admin/update/log",
        ] {
            assert_eq!(get(&d, path, auth).await.status(), 404, "{path} {auth:?}");
        }
    }
    let native = d.get_json("/api/v1/system/version").await;
    assert_eq!(
        native,
        json!({"version": HOSTPLANE_VERSION, "source": "hostplane",
               "hostplane_version": HOSTPLANE_VERSION, "changelog": null, "build": null,
               "installed_at": null})
    );
    assert_problem(d.get("/api/v1/system/update").await, 404, "not_found").await;
    let keys = d.get_json("/api/v1/system/keys").await;
    assert_eq!(keys["appliance_recipient"], v.recipient);
    assert_eq!(keys["vendor_public_key"], v.vendor_pub);
    // A wrong hash is refused with 403, as the document says.
    let r = d
        .client
        .get(d.url(&format!(
            "/api/v1/admin/version?hash={}",
            hash_for("GET", "/api/v1/admin/build")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn daemon_creates_its_appliance_identity_at_first_start() {
    let d = Daemon::start();
    let key = d.data_dir().join("keys/appliance.key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let keys = d.get_json("/api/v1/system/keys").await;
    let recipient = keys["appliance_recipient"].as_str().unwrap();
    assert!(recipient.starts_with("age1"), "{keys}");
    assert_eq!(keys["vendor_public_key"], Value::Null);
    // The recipient is the identity's.
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(
        text.contains(&format!("# public key: {recipient}")),
        "{text}"
    );

    // Without a vendor key nothing can be verified: native 503, Jidoteki 400 E1002 (recorded).
    let r = d
        .client
        .post(d.url("/api/v1/system/update"))
        .bearer_auth(&d.token)
        .header("content-type", "application/octet-stream")
        .body(vec![1u8; 100])
        .send()
        .await
        .unwrap();
    assert_problem(r, 503, "update_not_configured").await;
    let form = reqwest::multipart::Form::new().part(
        "update",
        reqwest::multipart::Part::bytes(vec![1u8; 100]).file_name("x.enc"),
    );
    let r = d
        .client
        .post(d.url("/api/v1/admin/update"))
        .bearer_auth(&d.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let p = assert_problem(r, 400, "E1002").await;
    assert!(
        p["detail"].as_str().unwrap().contains("vendor_public_key"),
        "{p}"
    );
    let s = d.get_json("/api/v1/admin/update").await;
    assert_eq!(s["status"], "failed");
    assert_eq!(s["error-code"], "E1002");
}

#[tokio::test]
async fn update_package_applies_and_changes_version_changelog_build() {
    let v = Vendor::new();
    let d = daemon(&v, "").await;
    let marker = v.path("installed-app.txt");

    // Token form.
    let pkg = v.package("v1.enc", "1.0.0", "0.0.1", &good_script(&marker));
    let s = apply(&d, Auth::Token, &pkg).await;
    assert_eq!(s["status"], "success", "{s}");
    assert!(
        s.get("error-code").is_none() && s.get("error-message").is_none(),
        "{s}"
    );
    let log = s["log"].as_str().unwrap();
    assert_log_format(log);
    assert!(log.lines().count() <= 10, "{log}");
    assert!(
        log.ends_with("[SYSTEM] Updating system successful"),
        "{log}"
    );
    // The script ran with the payload extracted.
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "app 1.0.0\n");

    // The full log, plain text.
    let r = get(&d, "/api/v1/admin/update/log", Auth::Hash).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let full = r.text().await.unwrap();
    assert_log_format(&full);
    let first = full.lines().next().unwrap();
    assert!(
        first.ends_with("[SYSTEM] Updating system. Please wait.."),
        "{full}"
    );
    assert!(
        full.contains(&format!(
            "[SYSTEM] update.sh: installing 1.0.0 over {HOSTPLANE_VERSION}\n"
        )),
        "{full}"
    );
    assert!(
        full.contains("[SYSTEM] update.sh (stderr): a warning\n"),
        "{full}"
    );
    assert!(
        full.ends_with("[SYSTEM] Updating system successful\n"),
        "{full}"
    );
    assert!(log.len() <= full.len() && full.trim_end().ends_with(log.lines().last().unwrap()));

    // Version, changelog and build now come from the package (both auth forms).
    for auth in [Auth::Token, Auth::Hash] {
        assert_eq!(
            get_json(&d, "/api/v1/admin/version", auth).await,
            json!({"version": "1.0.0"})
        );
        let r = get(&d, "/api/v1/admin/changelog", auth).await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(r.text().await.unwrap(), changelog("1.0.0"));
        assert_eq!(
            get_json(&d, "/api/v1/admin/build", auth).await,
            json!({"builddate": build_date("1.0.0")})
        );
    }
    let native = d.get_json("/api/v1/system/version").await;
    assert_eq!(native["version"], "1.0.0");
    assert_eq!(native["source"], "update");
    assert_eq!(native["hostplane_version"], HOSTPLANE_VERSION);
    assert!(native["installed_at"].is_string());
    let st = d.get_json("/api/v1/system/update").await;
    assert_eq!(st["status"], "success");
    assert_eq!(st["version"], "1.0.0");
    assert_eq!(st["created_by"], "admin-api");
    let job = d.get_json(st["job"].as_str().unwrap()).await;
    assert_eq!(job["kind"], "system.update");
    assert_eq!(job["status"], "success");
    assert_eq!(job["result"]["previous_version"], HOSTPLANE_VERSION);

    // Hash form; the next version.
    let pkg = v.package("v1.1.enc", "1.1.0", "1.0.0", &good_script(&marker));
    let s = apply(&d, Auth::Hash, &pkg).await;
    assert_eq!(s["status"], "success", "{s}");
    assert_eq!(version(&d).await, "1.1.0");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "app 1.1.0\n");

    // E1001: older, the same, and a package that needs a newer installed version.
    for (name, ver, min, why) in [
        ("old.enc", "1.0.5", "0.0.1", "not newer"),
        ("same.enc", "1.1.0", "0.0.1", "not newer"),
        ("min.enc", "2.0.0", "1.5.0", "at least version 1.5.0"),
    ] {
        let _ = std::fs::remove_file(&marker);
        let pkg = v.package(name, ver, min, &good_script(&marker));
        let s = apply(&d, Auth::Token, &pkg).await;
        assert_eq!(s["status"], "failed", "{name}: {s}");
        assert_eq!(s["error-code"], "E1001", "{name}: {s}");
        assert!(
            s["error-message"].as_str().unwrap().contains(why),
            "{name}: {s}"
        );
        assert!(
            s["log"]
                .as_str()
                .unwrap()
                .lines()
                .last()
                .unwrap()
                .contains("[SYSTEM] Failed updating: "),
            "{s}"
        );
        assert!(!marker.exists(), "{name}: the script must not run");
        assert_eq!(version(&d).await, "1.1.0");
    }
    // The state survives a restart (it lives in the store).
    let mut d = d;
    d.stop();
    d.spawn();
    assert_eq!(version(&d).await, "1.1.0");
    assert_eq!(
        get_json(&d, "/api/v1/admin/build", Auth::Hash).await,
        json!({"builddate": build_date("1.1.0")})
    );
    assert_eq!(
        get_json(&d, "/api/v1/admin/update", Auth::Hash).await["error-code"],
        "E1001"
    );
}

#[tokio::test]
async fn script_error_and_timeout_are_e1000() {
    let v = Vendor::new();
    let d = daemon(&v, "update_timeout_secs = 2").await;
    let pkg = v.package(
        "fail.enc",
        "1.0.0",
        "0.0.1",
        "#!/bin/sh\necho 'step 1 done'\necho 'cannot write /opt/app' >&2\nexit 1\n",
    );
    let s = apply(&d, Auth::Hash, &pkg).await;
    assert_eq!(s["status"], "failed", "{s}");
    assert_eq!(s["error-code"], "E1000");
    assert!(
        s["error-message"]
            .as_str()
            .unwrap()
            .contains("exit status 1"),
        "{s}"
    );
    let log = s["log"].as_str().unwrap();
    assert_log_format(log);
    assert!(log.contains("update.sh: step 1 done"), "{log}");
    assert!(
        log.contains("update.sh (stderr): cannot write /opt/app"),
        "{log}"
    );
    assert_eq!(version(&d).await, HOSTPLANE_VERSION);
    assert_eq!(
        get(&d, "/api/v1/admin/changelog", Auth::Token)
            .await
            .status(),
        404
    );

    // The timeout from [admin] update_timeout_secs kills the script.
    let pkg = v.package("slow.enc", "1.0.0", "0.0.1", "#!/bin/sh\nsleep 30\n");
    let t0 = Instant::now();
    let s = apply(&d, Auth::Token, &pkg).await;
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert_eq!(s["error-code"], "E1000", "{s}");
    assert!(
        s["error-message"]
            .as_str()
            .unwrap()
            .contains("did not finish within 2 s"),
        "{s}"
    );
    // A script without a #! line cannot be executed: also a scripting error.
    let pkg = v.package("noshebang.enc", "1.0.0", "0.0.1", "echo hi\n");
    let s = apply(&d, Auth::Token, &pkg).await;
    assert_eq!(s["error-code"], "E1000", "{s}");
    assert_eq!(version(&d).await, HOSTPLANE_VERSION);
}

#[tokio::test]
async fn tampered_wrong_key_wrong_recipient_and_garbage_are_e1005() {
    let v = Vendor::new();
    let d = daemon(&v, "").await;
    let marker = v.path("must-not-exist");
    let good = v.package("good.enc", "1.0.0", "0.0.1", &good_script(&marker));
    let bytes = std::fs::read(&good).unwrap();

    let other = Vendor::new();
    let wrong_key = v.package_with(
        "wrongkey.enc",
        "1.0.0",
        "0.0.1",
        &good_script(&marker),
        &other.signing_key(),
        &v.recipient,
    );
    let wrong_recipient = v.package_with(
        "wrongrecipient.enc",
        "1.0.0",
        "0.0.1",
        &good_script(&marker),
        &v.signing_key(),
        &other.recipient,
    );
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    for (i, pos) in [bytes.len() / 2, bytes.len() - 3, 30]
        .into_iter()
        .enumerate()
    {
        let mut t = bytes.clone();
        t[pos] ^= 0x01;
        cases.push((
            ["tampered middle", "tampered end", "tampered header"][i],
            t,
            "",
        ));
    }
    cases.push(("truncated", bytes[..bytes.len() - 100].to_vec(), ""));
    cases.push((
        "wrong signing key",
        std::fs::read(&wrong_key).unwrap(),
        "not signed by the vendor",
    ));
    cases.push((
        "wrong recipient",
        std::fs::read(&wrong_recipient).unwrap(),
        "not encrypted to this appliance",
    ));
    cases.push((
        "garbage",
        b"this is not a package".to_vec(),
        "cannot be decrypted",
    ));
    for (name, data, why) in cases {
        assert_accepted(post_update_bytes(&d, Auth::Token, data).await).await;
        let s = wait_update(&d).await;
        assert_eq!(s["status"], "failed", "{name}: {s}");
        assert_eq!(s["error-code"], "E1005", "{name}: {s}");
        assert!(
            s["error-message"].as_str().unwrap().contains(why),
            "{name}: {s}"
        );
        assert!(!marker.exists(), "{name}: the script must not run");
        assert_eq!(version(&d).await, HOSTPLANE_VERSION, "{name}");
    }
    // The untouched package still applies.
    let s = apply(&d, Auth::Hash, &good).await;
    assert_eq!(s["status"], "success", "{s}");
    assert_eq!(version(&d).await, "1.0.0");
}

#[tokio::test]
async fn missing_package_is_e1003() {
    let v = Vendor::new();
    let d = daemon(&v, "").await;
    // A form without the update field.
    let form = reqwest::multipart::Form::new().text("other", "x");
    let r = d
        .client
        .post(url(&d, "POST", "/api/v1/admin/update", Auth::Token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let p = assert_problem(r, 400, "E1003").await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("Missing update package")
    );
    // The status then reads as in the document's error example.
    let s = get_json(&d, "/api/v1/admin/update", Auth::Hash).await;
    let log = s["log"].as_str().unwrap();
    assert_log_format(log);
    assert!(log.ends_with("[SYSTEM] Failed updating: Missing update package"));
    assert_eq!(log.lines().count(), 1, "{log}");
    assert_eq!(
        s,
        json!({"status": "failed", "log": log, "error-message": "Missing update package",
               "error-code": "E1003"})
    );
    // No body at all (curl -X POST without -F), and an empty file.
    let r = d
        .client
        .post(url(&d, "POST", "/api/v1/admin/update", Auth::Hash))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "E1003").await;
    assert_problem(
        post_update_bytes(&d, Auth::Token, Vec::new()).await,
        400,
        "E1003",
    )
    .await;
    // Native: 422 naming the field.
    let r = d
        .client
        .post(d.url("/api/v1/system/update"))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    let p = assert_problem(r, 422, "E1003").await;
    assert_eq!(p["errors"][0]["field"], "update");
}

#[tokio::test]
async fn second_update_while_one_runs_is_e1004() {
    let v = Vendor::new();
    let d = daemon(&v, "").await;
    let slow = v.package(
        "slow.enc",
        "1.0.0",
        "0.0.1",
        "#!/bin/sh\necho started\nsleep 3\necho done\n",
    );
    let other = v.package("other.enc", "1.0.1", "0.0.1", "#!/bin/sh\ntrue\n");
    assert_accepted(post_update(&d, Auth::Token, &slow).await).await;
    let s = get_json(&d, "/api/v1/admin/update", Auth::Token).await;
    assert_eq!(s["status"], "running", "{s}");
    assert!(s.get("error-code").is_none());

    // Jidoteki: 400 E1004, both auth forms; the running update's status is untouched.
    for auth in [Auth::Token, Auth::Hash] {
        let p = assert_problem(post_update(&d, auth, &other).await, 400, "E1004").await;
        assert!(
            p["detail"].as_str().unwrap().contains("already running"),
            "{p}"
        );
    }
    // Native: the shared lock answers 409.
    let r = d
        .client
        .post(d.url("/api/v1/system/update"))
        .bearer_auth(&d.token)
        .header("content-type", "application/octet-stream")
        .body(std::fs::read(&other).unwrap())
        .send()
        .await
        .unwrap();
    assert_problem(r, 409, "lock_held").await;
    assert_eq!(
        get_json(&d, "/api/v1/admin/update", Auth::Token).await["status"],
        "running"
    );
    let s = wait_update(&d).await;
    assert_eq!(s["status"], "success", "{s}");
    assert_eq!(version(&d).await, "1.0.0");
    // Once it is done, the next one is accepted.
    let s = apply(&d, Auth::Token, &other).await;
    assert_eq!(s["status"], "success", "{s}");
    assert_eq!(version(&d).await, "1.0.1");
}

#[tokio::test]
async fn native_update_api_takes_raw_or_multipart_and_needs_admin() {
    let v = Vendor::new();
    let d = daemon(&v, "").await;
    let marker = v.path("m");
    let pkg = v.package("n.enc", "3.0.0", "0.0.1", &good_script(&marker));
    let body = std::fs::read(&pkg).unwrap();

    let operator = d.token_for_role("op", "operator").await;
    let viewer = d.token_for_role("viewer", "viewer").await;
    for t in [&operator, &viewer] {
        let r = d
            .client
            .post(d.url("/api/v1/system/update"))
            .bearer_auth(t)
            .header("content-type", "application/octet-stream")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_problem(r, 403, "forbidden").await;
    }
    assert_eq!(d.get("/api/v1/system/update").await.status(), 404);

    let r = d
        .client
        .post(d.url("/api/v1/system/update"))
        .bearer_auth(&d.token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/api/v1/jobs/"), "{loc}");
    let job = d.wait_job(&loc).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["result"]["version"], "3.0.0");
    // The viewer reads the state.
    let r = d.get_as("/api/v1/system/version", &viewer).await;
    assert_eq!(r.json::<Value>().await.unwrap()["version"], "3.0.0");

    // A failure in the job carries its E-code, natively too.
    let form = reqwest::multipart::Form::new().part(
        "update",
        reqwest::multipart::Part::bytes(std::fs::read(&pkg).unwrap()).file_name("n.enc"),
    );
    let r = d
        .client
        .post(d.url("/api/v1/system/update"))
        .bearer_auth(&d.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let job = d.wait_job(&loc).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error_code"], "E1001");
    let st = d.get_json("/api/v1/system/update").await;
    assert_eq!(st["status"], "failed");
    assert_eq!(st["error_code"], "E1001");
    assert_eq!(st["job"], loc);
}

// ---------------------------------------------------------------------------------------------
// Licence

fn issue_license(v: &Vendor, name: &str, expires: &str, key: &Path) -> PathBuf {
    let out = v.path(name);
    run_ok(&[
        "license",
        "issue",
        "--app",
        "enterprise",
        "--users",
        "20",
        "--expires",
        expires,
        "--name",
        "Enterprise Company",
        "--contact",
        "cto@enterprise",
        "--signing-key",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    out
}

/// `curl -X POST .../license?token=… -F license=@license.asc`
async fn post_license(d: &Daemon, auth: Auth, text: &[u8]) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(text.to_vec()).file_name("license.asc");
    d.client
        .post(url(d, "POST", "/api/v1/admin/license", auth))
        .multipart(reqwest::multipart::Form::new().part("license", part))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn license_round_trip_tamper_and_expiry() {
    let v = Vendor::new();
    let d = daemon(&v, "").await;
    let doc = json!({"app": "enterprise", "users": 20, "expires": "19 January 2038",
                     "name": "Enterprise Company", "contact": "cto@enterprise"});
    for auth in [Auth::Token, Auth::Hash] {
        assert_eq!(get(&d, "/api/v1/admin/license", auth).await.status(), 404);
    }
    assert_problem(d.get("/api/v1/system/license").await, 404, "not_found").await;

    let lic = issue_license(&v, "license.asc", "2038-01-19", &v.signing_key());
    let text = std::fs::read(&lic).unwrap();
    // The vendor CLI verifies it too.
    let shown: Value = serde_json::from_str(&run_ok(&[
        "license",
        "verify",
        "--vendor-key",
        &v.vendor_pub,
        lic.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(shown["expired"], false);

    for auth in [Auth::Token, Auth::Hash] {
        let r = post_license(&d, auth, &text).await;
        assert_eq!(r.status(), 200, "{auth:?}");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.json::<Value>().await.unwrap(), doc);
        assert_eq!(get_json(&d, "/api/v1/admin/license", auth).await, doc);
    }
    let native = d.get_json("/api/v1/system/license").await;
    assert_eq!(native["expires"], "2038-01-19");
    assert_eq!(native["expired"], false);
    assert_eq!(native["users"], 20);
    assert_eq!(native["installed_by"], "admin-api");

    // Tampered, wrong key, not a licence, missing field: 400, the installed one stays.
    let tampered = String::from_utf8(text.clone())
        .unwrap()
        .replace("\"users\":20", "\"users\":2000");
    let other = Vendor::new();
    let foreign = issue_license(&other, "foreign.asc", "2038-01-19", &other.signing_key());
    for (name, body) in [
        ("tampered", tampered.into_bytes()),
        ("wrong key", std::fs::read(&foreign).unwrap()),
        ("garbage", b"hello".to_vec()),
    ] {
        let p = assert_problem(
            post_license(&d, Auth::Token, &body).await,
            400,
            "invalid_license",
        )
        .await;
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{name}");
        assert_eq!(get_json(&d, "/api/v1/admin/license", Auth::Hash).await, doc);
    }
    let r = d
        .client
        .post(url(&d, "POST", "/api/v1/admin/license", Auth::Token))
        .multipart(reqwest::multipart::Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_license").await;
    // Native refusals are 422 naming the field.
    let r = d
        .send(
            "PUT",
            "/api/v1/system/license",
            Some(&d.token.clone()),
            Some(json!({"license": "hello"})),
        )
        .await;
    let p = assert_problem(r, 422, "invalid_license").await;
    assert_eq!(p["errors"][0]["field"], "license");

    // An expired licence is installed and reported as expired.
    let expired = issue_license(&v, "expired.asc", "2020-01-31", &v.signing_key());
    let r = d
        .send(
            "PUT",
            "/api/v1/system/license",
            Some(&d.token.clone()),
            Some(json!({"license": std::fs::read_to_string(&expired).unwrap()})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let native: Value = r.json().await.unwrap();
    assert_eq!(native["expired"], true);
    assert_eq!(native["installed_by"], "admin");
    assert_eq!(
        get_json(&d, "/api/v1/admin/license", Auth::Token).await["expires"],
        "31 January 2020"
    );
    assert_eq!(d.get_json("/api/v1/system/license").await["expired"], true);
    // Viewers and operators cannot install one.
    let op = d.token_for_role("lic-op", "operator").await;
    let r = d
        .send(
            "PUT",
            "/api/v1/system/license",
            Some(&op),
            Some(json!({"license": std::fs::read_to_string(&lic).unwrap()})),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
}

#[tokio::test]
async fn license_endpoint_disabled_by_config_answers_404() {
    let v = Vendor::new();
    let d = daemon(&v, "endpoints = [\"certs\"]").await;
    let lic = issue_license(&v, "license.asc", "2038-01-19", &v.signing_key());
    let text = std::fs::read(&lic).unwrap();
    assert_problem(post_license(&d, Auth::Token, &text).await, 404, "not_found").await;
    assert_eq!(
        get(&d, "/api/v1/admin/license", Auth::Hash).await.status(),
        404
    );
    // The native API is not a Jidoteki optional endpoint: it still works.
    let r = d
        .send(
            "PUT",
            "/api/v1/system/license",
            Some(&d.token.clone()),
            Some(json!({"license": String::from_utf8(text).unwrap()})),
        )
        .await;
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// The document's curl examples, with curl itself (scripts/test installs it), over HTTPS.

struct CurlAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl CurlAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `curl -sS -i -k -X METHOD URL [-F …]`; the answer's status line, headers and body.
fn curl(method: &str, url: &str, form: &[String]) -> CurlAnswer {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "-k", "-X", method, url]);
    for f in form {
        cmd.args(["-F", f]);
    }
    let out = cmd
        .output()
        .expect("curl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // Skip interim answers (100 Continue).
    let mut rest = text.as_str();
    loop {
        let (head, body) = rest.split_once("\r\n\r\n").expect("an HTTP answer");
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        if status == 100 {
            rest = body;
            continue;
        }
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return CurlAnswer {
            status,
            headers,
            body: body.to_string(),
        };
    }
}

#[tokio::test]
async fn the_documents_curl_examples_with_curl() {
    let v = Vendor::new();
    let d = Daemon::start_with(Opts {
        https: true,
        config: Some(v.config("")),
        ..Default::default()
    });
    // Section 1: curl -X POST https://[hostname]:8443/api/v1/admin/setup -F newtoken=[yourtoken]
    let a = curl(
        "POST",
        &d.url("/api/v1/admin/setup"),
        &[format!("newtoken={API_TOKEN}")],
    );
    assert_eq!((a.status, a.body.as_str()), (200, r#"{"Status":"200 OK"}"#));

    let marker = v.path("m");
    let pkg = v.package(
        "software_package-name.enc",
        "1.0.9",
        "0.0.1",
        &good_script(&marker),
    );
    let upload = format!("update=@{}", pkg.display());
    for (i, auth) in [Auth::Hash, Auth::Token].into_iter().enumerate() {
        // Section 7 before the update (both forms).
        let a = curl("GET", &url(&d, "GET", "/api/v1/admin/version", auth), &[]);
        assert_eq!(a.status, 200);
        let expect = if i == 0 { HOSTPLANE_VERSION } else { "1.0.9" };
        assert_eq!(
            serde_json::from_str::<Value>(&a.body).unwrap(),
            json!({"version": expect})
        );
        if i == 0 {
            // Section 3: POST /update -F update=@[software_package-name.enc]
            let a = curl(
                "POST",
                &url(&d, "POST", "/api/v1/admin/update", auth),
                std::slice::from_ref(&upload),
            );
            assert_eq!(a.status, 202);
            assert_eq!(a.header("location"), Some("/api/v1/admin/update"));
            assert_eq!(a.header("content-type"), Some("application/json"));
            assert_eq!(
                a.body,
                r#"{"Status":"202 Accepted","Location":"/api/v1/admin/update"}"#
            );
            // Polled until complete.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let a = curl("GET", &url(&d, "GET", "/api/v1/admin/update", auth), &[]);
                assert_eq!(a.status, 200);
                let s: Value = serde_json::from_str(&a.body).unwrap();
                if s["status"] != "running" {
                    assert_eq!(s["status"], "success", "{s}");
                    assert!(
                        s["log"]
                            .as_str()
                            .unwrap()
                            .ends_with("[SYSTEM] Updating system successful")
                    );
                    break;
                }
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let a = curl("GET", &url(&d, "GET", "/api/v1/admin/update", auth), &[]);
        assert_eq!(a.status, 200, "{auth:?}");
        let a = curl(
            "GET",
            &url(&d, "GET", "/api/v1/admin/update/log", auth),
            &[],
        );
        assert_eq!(a.status, 200);
        assert!(a.header("content-type").unwrap().starts_with("text/plain"));
        assert!(a.body.contains("[SYSTEM] Updating system. Please wait..\n"));
        let a = curl("GET", &url(&d, "GET", "/api/v1/admin/changelog", auth), &[]);
        assert_eq!(
            (a.status, a.body.as_str()),
            (200, changelog("1.0.9").as_str())
        );
        assert!(a.header("content-type").unwrap().starts_with("text/plain"));
        let a = curl("GET", &url(&d, "GET", "/api/v1/admin/build", auth), &[]);
        assert_eq!(a.status, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&a.body).unwrap(),
            json!({"builddate": build_date("1.0.9")})
        );
    }
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "app 1.0.9\n");

    // Section 10: POST /license -F license=@[license.asc], then GET /license.
    let lic = issue_license(&v, "license.asc", "2038-01-19", &v.signing_key());
    let doc = json!({"app": "enterprise", "users": 20, "expires": "19 January 2038",
                     "name": "Enterprise Company", "contact": "cto@enterprise"});
    for auth in [Auth::Hash, Auth::Token] {
        let a = curl(
            "POST",
            &url(&d, "POST", "/api/v1/admin/license", auth),
            &[format!("license=@{}", lic.display())],
        );
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert_eq!(serde_json::from_str::<Value>(&a.body).unwrap(), doc);
        let a = curl("GET", &url(&d, "GET", "/api/v1/admin/license", auth), &[]);
        assert_eq!(a.status, 200);
        assert_eq!(serde_json::from_str::<Value>(&a.body).unwrap(), doc);
    }
    // Section 2: changing the token with the hash form, then the new token works.
    let a = curl(
        "POST",
        &url(&d, "POST", "/api/v1/admin/setup", Auth::Hash),
        &["newtoken=another-token-8c3e1f6a".to_string()],
    );
    assert_eq!((a.status, a.body.as_str()), (200, r#"{"Status":"200 OK"}"#));
    let a = curl(
        "GET",
        &url(&d, "GET", "/api/v1/admin/version", Auth::Token),
        &[],
    );
    assert_eq!(a.status, 403);
    let a = curl(
        "GET",
        &d.url("/api/v1/admin/version?token=another-token-8c3e1f6a"),
        &[],
    );
    assert_eq!(a.status, 200);
}
