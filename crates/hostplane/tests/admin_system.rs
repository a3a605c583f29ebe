//! The Jidoteki admin API's support, administration, services and information endpoints
//! (logs, debug, reboot, services, health, endpoints) and their native equivalents, against
//! the real daemon over HTTPS.
//!
//! Every curl example of reference/jidoteki-admin-api.md for these endpoints is run for real
//! with the `curl` program, in both forms the document gives (`?token=` and `?hash=`), and the
//! documented answer is checked: status, content type, `Filename`, body shape.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use common::{Daemon, Opts, assert_problem};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TOKEN: &str = "admin-system-token";

fn hmac_hash(method: &str, path: &str) -> String {
    let key = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    m.update(format!("{method}{path}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// What `curl` got: status, headers (lower-case names), body.
struct CurlAnswer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl CurlAnswer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Runs the document's example `curl -X METHOD https://[hostname]:8443<path>?<auth>` against
/// the test daemon (`-k`: its certificate is self-signed).
fn curl(d: &Daemon, method: &str, path_and_query: &str) -> CurlAnswer {
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let (hdr, body) = (dir.path().join("h"), dir.path().join("b"));
    let out = Command::new("curl")
        .args(["-sS", "-k", "-X", method])
        .arg(d.url(path_and_query))
        .arg("-D")
        .arg(&hdr)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .output()
        .expect("the curl program (scripts/test installs it)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let mut headers = HashMap::new();
    for line in std::fs::read_to_string(&hdr).unwrap().lines() {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    CurlAnswer {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// Both documented forms of one GET example.
fn curl_both(d: &Daemon, path: &str) -> [CurlAnswer; 2] {
    [
        curl(d, "GET", &format!("{path}?token={TOKEN}")),
        curl(d, "GET", &format!("{path}?hash={}", hmac_hash("GET", path))),
    ]
}

async fn start(config: &str) -> Daemon {
    let d = Daemon::start_with(Opts {
        https: true,
        config: Some(config.to_string()),
        extra_args: vec!["--log".into(), "info".into()],
        ..Opts::default()
    });
    let form = reqwest::multipart::Form::new().text("newtoken", TOKEN);
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

fn untar(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut a = tar::Archive::new(bytes);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        out.insert(name, body);
    }
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn toml_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[tokio::test]
async fn logs_tar_gz_holds_the_daemon_log_and_configured_paths() {
    let extra = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    std::fs::write(extra.path().join("app.log"), "app line 1\napp line 2\n").unwrap();
    std::fs::create_dir(extra.path().join("more")).unwrap();
    std::fs::write(extra.path().join("more/x.log"), "x\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", extra.path().join("more/link")).unwrap();
    let missing = extra.path().join("missing.log");
    let d = start(&format!(
        "[admin]\nlog_paths = [{}, {}]\n",
        toml_str(extra.path()),
        toml_str(&missing)
    ))
    .await;

    for a in curl_both(&d, "/api/v1/admin/logs") {
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.header("content-type"), "application/octet-stream");
        assert_eq!(a.header("filename"), "logs.tar.gz");
        assert_eq!(
            a.header("content-disposition"),
            "attachment; filename=\"logs.tar.gz\""
        );
        let files = untar(&gunzip(&a.body));
        let own = String::from_utf8_lossy(&files["hostplane/hostplane.log"]).into_owned();
        assert!(own.contains("hostplane ready"), "{own}");
        let rel = extra
            .path()
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        assert_eq!(
            files[&format!("paths/{rel}/app.log")],
            b"app line 1\napp line 2\n"
        );
        assert_eq!(files[&format!("paths/{rel}/more/x.log")], b"x\n");
        // Symlinks inside a log dir are not followed.
        assert!(!files.contains_key(&format!("paths/{rel}/more/link")));
        let manifest = String::from_utf8_lossy(&files["MANIFEST.txt"]).into_owned();
        assert!(manifest.contains("missing.log: No such file"), "{manifest}");
        assert!(manifest.contains("not a regular file"), "{manifest}");
    }

    // Native: the same archive as application/gzip.
    let r = d.get("/api/v1/system/logs/archive").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    let files = untar(&gunzip(&r.bytes().await.unwrap()));
    assert!(files.contains_key("hostplane/hostplane.log"));

    // A viewer may not download logs, whichever way it authenticates.
    let viewer = d.token_for_role("logs-viewer", "viewer").await;
    assert_problem(
        d.get_as("/api/v1/system/logs/archive", &viewer).await,
        403,
        "forbidden",
    )
    .await;
    let a = curl(&d, "GET", &format!("/api/v1/admin/logs?token={viewer}"));
    assert_eq!(a.status, 403);
    // Without credentials: 403 under /admin (the spec), 401 natively.
    assert_eq!(curl(&d, "GET", "/api/v1/admin/logs").status, 403);
    assert_eq!(
        curl(&d, "GET", "/api/v1/admin/logs?token=wrong").status,
        403
    );
}

#[tokio::test]
async fn debug_bundle_is_encrypted_to_the_vendor_and_holds_the_facts() {
    let vendor = age::x25519::Identity::generate();
    let extra = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    std::fs::write(extra.path().join("app.log"), "debug me\n").unwrap();
    let d = start(&format!(
        "[admin]\nvendor_recipient = \"{}\"\nlog_paths = [{}]\n",
        vendor.to_public(),
        toml_str(extra.path())
    ))
    .await;
    // A job, so "recent jobs" has something.
    let r = d.post("/api/v1/system/selftest", json!({})).await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    d.wait_job(job["href"].as_str().unwrap()).await;

    for a in curl_both(&d, "/api/v1/admin/debug") {
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.header("content-type"), "application/octet-stream");
        assert_eq!(a.header("filename"), "debug-bundle.tar");
        let outer = untar(&a.body);
        assert_eq!(outer.len(), 1, "{:?}", outer.keys());
        let sealed = &outer["debug.tar.gz.age"];
        // Only the vendor's key opens it.
        let stranger = age::x25519::Identity::generate();
        assert!(age::decrypt(&stranger, sealed).is_err());
        let plain = age::decrypt(&vendor, sealed).unwrap();
        let files = untar(&gunzip(&plain));
        for name in [
            "README.txt",
            "system/uname.txt",
            "system/lsblk.json",
            "system/ip-addr.json",
            "system/mounts.txt",
            "system/capabilities.json",
            "system/process-capabilities.txt",
            "system/health.json",
            "config/effective.txt",
            "config/config.toml",
            "jobs/recent.json",
            "logs/hostplane/hostplane.log",
            "logs/MANIFEST.txt",
        ] {
            assert!(
                files.contains_key(name),
                "{name} missing: {:?}",
                files.keys()
            );
        }
        let text = |n: &str| String::from_utf8_lossy(&files[n]).into_owned();
        assert!(text("system/uname.txt").starts_with("Linux "));
        let lsblk: Value = serde_json::from_slice(&files["system/lsblk.json"]).unwrap();
        assert!(lsblk["blockdevices"].is_array());
        let ip: Value = serde_json::from_slice(&files["system/ip-addr.json"]).unwrap();
        assert!(ip.as_array().unwrap().iter().any(|i| i["ifname"] == "lo"));
        assert!(text("system/mounts.txt").contains(" / "));
        assert!(text("system/process-capabilities.txt").contains("CapEff:"));
        let caps: Value = serde_json::from_slice(&files["system/capabilities.json"]).unwrap();
        assert!(caps["tools"].is_array());
        assert!(text("config/config.toml").contains("vendor_recipient"));
        assert!(text("config/effective.txt").contains("data_dir"));
        let jobs: Value = serde_json::from_slice(&files["jobs/recent.json"]).unwrap();
        assert!(
            jobs.as_array()
                .unwrap()
                .iter()
                .any(|j| j["kind"] == "system.selftest")
        );
        let rel = extra
            .path()
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        assert_eq!(text(&format!("logs/paths/{rel}/app.log")), "debug me\n");
    }

    // Native: the same bundle (admin only).
    let r = d.get("/api/v1/system/debug-bundle").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let op = d.token_for_role("debug-operator", "operator").await;
    assert_problem(
        d.get_as("/api/v1/system/debug-bundle", &op).await,
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn debug_bundle_without_a_vendor_recipient_is_refused_clearly() {
    let d = start("").await;
    for a in curl_both(&d, "/api/v1/admin/debug") {
        assert_eq!(a.status, 400);
        assert_eq!(a.header("content-type"), "application/problem+json");
        let v = a.json();
        assert_eq!(v["code"], "vendor_recipient_missing");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("admin.vendor_recipient")
        );
    }
    assert_problem(
        d.get("/api/v1/system/debug-bundle").await,
        503,
        "vendor_recipient_missing",
    )
    .await;
}

fn wait_for_file(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn reboot_answers_202_and_runs_the_configured_action() {
    let trace_dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let trace = trace_dir.path().join("rebooted");
    let d = start(&format!(
        "[admin]\nreboot_command = [\"touch\", {}]\n",
        toml_str(&trace)
    ))
    .await;

    for (i, form) in ["token", "hash"].iter().enumerate() {
        let q = if *form == "token" {
            format!("token={TOKEN}")
        } else {
            format!("hash={}", hmac_hash("GET", "/api/v1/admin/reboot"))
        };
        let a = curl(&d, "GET", &format!("/api/v1/admin/reboot?{q}"));
        assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.header("content-type"), "application/json");
        assert_eq!(a.json(), json!({"Status": "202 Accepted"}));
        wait_for_file(&trace);
        std::fs::remove_file(&trace).unwrap();
        // The job: backup step first, then the action; it succeeded.
        let jobs: Value = d
            .get_json("/api/v1/jobs?filter=kind:system.reboot&sort=created_at")
            .await;
        let jobs = jobs.as_array().unwrap();
        assert_eq!(jobs.len(), i + 1);
        let job = d.wait_job(jobs[i]["href"].as_str().unwrap()).await;
        assert_eq!(job["status"], "success", "{job}");
        assert_eq!(job["created_by"], "admin-api");
        // The backup it took first is a real one.
        let backup = job["result"]["backup"]["href"].as_str().expect("a backup");
        assert_eq!(d.get_json(backup).await["status"], "success");
        let log = d
            .get(&format!("{}/log", jobs[i]["href"].as_str().unwrap()))
            .await
            .text()
            .await
            .unwrap();
        let backup_at = log.find("backup").expect("a backup step");
        let action_at = log.find("reboot_command").expect("the action");
        assert!(backup_at < action_at, "{log}");
    }

    // Reboot is admin-only although it is a GET.
    let op = d.token_for_role("reboot-operator", "operator").await;
    assert_eq!(
        curl(&d, "GET", &format!("/api/v1/admin/reboot?token={op}")).status,
        403
    );
    assert_eq!(curl(&d, "GET", "/api/v1/admin/reboot").status, 403);
    // It is audited like a mutation.
    let audit: Value = d
        .get_json("/api/v1/audit?filter=path:/api/v1/admin/reboot")
        .await;
    assert!(audit.as_array().unwrap().len() >= 2, "{audit}");

    // Native: POST /system/reboot is a job with Location.
    let r = d.post("/api/v1/system/reboot", json!({})).await;
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let job = d.wait_job(&loc).await;
    assert_eq!(job["status"], "success", "{job}");
    wait_for_file(&trace);
    assert_problem(
        d.send("POST", "/api/v1/system/reboot", Some(&op), Some(json!({})))
            .await,
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn reboot_without_a_command_does_not_reboot_a_sandboxed_daemon() {
    let d = start("").await;
    let a = curl(&d, "GET", &format!("/api/v1/admin/reboot?token={TOKEN}"));
    assert_eq!(a.status, 202);
    let jobs: Value = d.get_json("/api/v1/jobs?filter=kind:system.reboot").await;
    let job = d.wait_job(jobs[0]["href"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error_code"], "reboot_not_configured", "{job}");
    // Likewise the host's services: a sandbox without change_units changes none (the harness
    // never passes the host's DBUS_SYSTEM_BUS_ADDRESS on, and it would not matter).
    for what in ["start", "stop", "restart", "enable", "disable"] {
        assert_problem(
            d.post(&format!("/api/v1/services/ssh/{what}"), json!({}))
                .await,
            503,
            "systemd_not_configured",
        )
        .await;
    }
    // GET /system/capabilities says so.
    let caps = d.get_json("/api/v1/system/capabilities").await;
    let ha = &caps["host_actions"];
    assert_eq!(ha["sandbox"], true, "{caps}");
    assert_eq!(ha["reboot"], "refused", "{caps}");
    assert_eq!(ha["change_units"], false, "{caps}");
    let root = d.data_dir().join("root");
    assert_eq!(ha["system_root"], root.to_str().unwrap(), "{caps}");
}

fn cpu_count() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count() as u64
}

#[tokio::test]
async fn health_has_the_documented_shape_and_live_values() {
    let d = start("").await;
    let size = regex_like_size;
    for a in curl_both(&d, "/api/v1/admin/health") {
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), "application/json");
        let v = a.json();
        let keys = |o: &Value| {
            let mut k: Vec<String> = o.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&v), ["cpu", "disk", "memory"]);
        assert_eq!(keys(&v["disk"]), ["percentage", "total", "used"]);
        assert_eq!(keys(&v["memory"]), ["percentage", "total", "used"]);
        assert_eq!(keys(&v["cpu"]), ["cpu5min", "load", "num"]);
        assert!(size(v["disk"]["used"].as_str().unwrap()), "{v}");
        assert!(size(v["disk"]["total"].as_str().unwrap()), "{v}");
        assert!(v["disk"]["percentage"].as_u64().unwrap() <= 100);
        let mem_total = v["memory"]["total"].as_str().unwrap();
        assert!(mem_total.ends_with('M'), "{v}");
        let meminfo_mib = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .unwrap()
            / 1024;
        assert_eq!(mem_total, format!("{meminfo_mib}M"));
        assert!(v["memory"]["percentage"].as_u64().unwrap() <= 100);
        assert_eq!(v["cpu"]["num"].as_u64().unwrap(), cpu_count());
        let load = v["cpu"]["load"].as_str().unwrap();
        let parts: Vec<f64> = load
            .split(", ")
            .map(|x| f64::from_str(x).unwrap())
            .collect();
        assert_eq!(parts.len(), 3, "{load}");
        assert!(
            load.split(", ")
                .all(|x| x.split_once('.').unwrap().1.len() == 2)
        );
        assert_eq!(
            v["cpu"]["cpu5min"].as_u64().unwrap(),
            parts[1].floor() as u64
        );
    }

    // Native: richer, and live.
    let h = d.get_json("/api/v1/system/health").await;
    assert_eq!(h["cpu_count"].as_u64().unwrap(), cpu_count());
    assert_eq!(h["filesystems"][0]["path"], "/");
    assert!(h["memory"]["total_bytes"].as_u64().unwrap() > 0);
    let t0 = Instant::now();
    let m = d.get_json("/api/v1/system/metrics?interval_ms=300").await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert!(m["interval_ms"].as_u64().unwrap() >= 300);
    assert_eq!(m["cores"].as_array().unwrap().len() as u64, cpu_count());
    assert!(
        m["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "lo")
    );
    assert!(m["cpu"]["busy_percent"].as_f64().unwrap() <= 100.0);
    for bad in ["50", "20000", "x"] {
        let r = d
            .get(&format!("/api/v1/system/metrics?interval_ms={bad}"))
            .await;
        assert_eq!(r.status(), 422, "interval_ms={bad}");
    }
}

/// `3.4G`, `234G`, `512`: df -h style.
fn regex_like_size(s: &str) -> bool {
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], Some(c)),
        _ => (s, None),
    };
    unit.is_none_or(|u| "KMGTPE".contains(u)) && f64::from_str(num).is_ok()
}

/// First-level admin endpoints the daemon serves, from its OpenAPI document.
async fn served_admin_endpoints(d: &Daemon) -> Vec<String> {
    let spec: Value = d
        .client
        .get(d.url("/api-docs/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = spec["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|p| p.strip_prefix("/api/v1/admin/"))
        .map(|r| r.split('/').next().unwrap().to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

const OPTIONAL: &[&str] = &[
    "settings", "certs", "license", "storage", "backup", "cluster",
];

#[tokio::test]
async fn endpoints_lists_what_is_enabled_and_disabled_ones_are_404() {
    // Key absent: every implemented optional endpoint is on.
    let d = start("").await;
    let served = served_admin_endpoints(&d).await;
    for a in curl_both(&d, "/api/v1/admin/endpoints") {
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), "application/json");
        let v = a.json();
        let list: Vec<String> = v["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect();
        let mut sorted = list.clone();
        sorted.sort();
        assert_eq!(list, sorted, "sorted");
        let expected: Vec<String> = served
            .iter()
            .map(|n| format!("/api/v1/admin/{n}"))
            .collect();
        assert_eq!(list, expected);
        for mine in [
            "debug",
            "endpoints",
            "health",
            "logs",
            "reboot",
            "services",
            "settings",
            "setup",
        ] {
            assert!(
                list.contains(&format!("/api/v1/admin/{mine}")),
                "{mine}: {list:?}"
            );
        }
        assert!(!list.contains(&"/api/v1/admin/cluster".to_string()));
    }
    let a = curl(&d, "GET", &format!("/api/v1/admin/cluster?token={TOKEN}"));
    assert_eq!(a.status, 404, "cluster");
    drop(d);

    // All optional endpoints switched off: none listed, each 404 for an authenticated caller
    // (403 without credentials, as for any /admin path).
    let d = start("[admin]\nendpoints = []\n").await;
    let a = curl(&d, "GET", &format!("/api/v1/admin/endpoints?token={TOKEN}"));
    let list = a.json()["endpoints"].as_array().unwrap().clone();
    for name in OPTIONAL {
        assert!(
            !list.contains(&json!(format!("/api/v1/admin/{name}"))),
            "{name}"
        );
        for method in ["GET", "POST"] {
            let path = format!("/api/v1/admin/{name}");
            let a = curl(&d, method, &format!("{path}?token={TOKEN}"));
            assert_eq!(a.status, 404, "{method} {path} disabled");
            let a = curl(
                &d,
                method,
                &format!("{path}?hash={}", hmac_hash(method, &path)),
            );
            assert_eq!(a.status, 404, "{method} {path} disabled (hash)");
            assert_eq!(
                curl(&d, method, &path).status,
                403,
                "{method} {path} anonymous"
            );
        }
    }
    let expected: Vec<Value> = served
        .iter()
        .filter(|n| !OPTIONAL.contains(&n.as_str()))
        .map(|n| json!(format!("/api/v1/admin/{n}")))
        .collect();
    assert_eq!(list, expected);
}

#[tokio::test]
async fn services_without_systemd_answer_503_not_made_up_states() {
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let addr = format!("unix:path={}/no-bus.sock", dir.path().display());
    let d = start(&format!("[services]\ndbus_address = \"{addr}\"\n")).await;
    for a in curl_both(&d, "/api/v1/admin/services") {
        assert_eq!(a.status, 503);
        assert_eq!(a.header("content-type"), "application/problem+json");
        let v = a.json();
        assert_eq!(v["code"], "systemd_unavailable");
        assert!(v["detail"].as_str().unwrap().contains(&addr), "{v}");
    }
    let v = assert_problem(d.get("/api/v1/services").await, 503, "systemd_unavailable").await;
    assert!(v["detail"].as_str().unwrap().contains("PID 1"), "{v}");
    assert_problem(
        d.get("/api/v1/services/ssh").await,
        503,
        "systemd_unavailable",
    )
    .await;
    // A bad name is the caller's fault whatever the host has.
    assert_problem(d.get("/api/v1/services/-bad").await, 422, "invalid_name").await;
    assert_problem(
        d.post("/api/v1/services/a;b/start", json!({})).await,
        422,
        "invalid_name",
    )
    .await;
}
