//! The web UI against the real daemon: its static files (types, caching, CSP, public), CSRF
//! protection of the session cookie, and Debian's Chromium driven by playwright-core
//! (`web/test/ui.mjs`: login, pages, a pool made, scrubbed and destroyed in the UI on loop disks
//! with its jobs followed in the jobs panel, shares seen live in a second browser context, job
//! cancel, axe WCAG 2 A/AA on every page, no page error, no request to another host).
//!
//! Needs node, npm (`scripts/web deps` installs the driver's packages into a cache outside the
//! clone) and /usr/bin/chromium: the test fails without them. Screenshots are kept in
//! `$HOSTPLANE_UI_ARTIFACTS` (default `/tmp/hostplane-web-ui`).

mod common;
mod storage_util;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Opts};
use serde_json::json;
use storage_util::Loops;

const MIB: u64 = 1024 * 1024;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The browser driver; its process group (node and Chromium) is killed on drop, also on panic.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: signalling the process group our own child leads.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn static_files_are_public_typed_cached_and_under_csp() {
    let d = Daemon::start();
    let r = d.client.get(d.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    let etag = h["etag"].to_str().unwrap().to_string();
    let html = r.text().await.unwrap();
    let js = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("index.html loads a hashed script");
    let r = d.client.get(d.url(js)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    // Revalidation of the page answers 304.
    let r = d
        .client
        .get(d.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = d
        .client
        .get(d.url("/assets/nope-1234.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn session_cookie_is_refused_on_cross_origin_mutations() {
    let d = Daemon::start();
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": "csrfu", "role": "operator", "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = d
        .send(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "csrfu", "password": "s3cret-pass"})),
        )
        .await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    let host = d.base.trim_start_matches("http://").to_string();
    let selftest = |origin: Option<&str>, site: Option<&str>| {
        let mut req = d
            .client
            .post(d.url("/api/v1/system/selftest"))
            .header("cookie", &pair)
            .json(&json!({"step_delay_ms": 0}));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        req.send()
    };
    // Another origin (a page on another port of the same site too): refused.
    for (origin, site) in [
        (Some("http://evil.example"), None),
        (Some("http://127.0.0.1:1"), None),
        (None, Some("same-site")),
        (Some(format!("http://{host}").as_str()), Some("cross-site")),
    ] {
        let r = selftest(origin, site).await.unwrap();
        assert_eq!(r.status(), 403, "origin {origin:?} site {site:?}");
        let p: serde_json::Value = r.json().await.unwrap();
        assert!(p["detail"].as_str().unwrap().contains("CSRF"), "{p}");
    }
    // The UI's own origin, and a client that is not a browser: accepted.
    let own = format!("http://{host}");
    for (origin, site) in [
        (Some(own.as_str()), Some("same-origin")),
        (Some(own.as_str()), None),
        (None, None),
    ] {
        let r = selftest(origin, site).await.unwrap();
        assert_eq!(r.status(), 202, "origin {origin:?} site {site:?}");
        d.wait_job(r.headers()["location"].to_str().unwrap()).await;
    }
    // Reading with the cookie needs no origin check (a GET changes nothing).
    let r = d
        .client
        .get(d.url("/api/v1/auth/whoami"))
        .header("cookie", &pair)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn chromium_drives_the_ui() {
    let t0 = Instant::now();
    let deps = Command::new(repo().join("scripts/web"))
        .arg("deps")
        .status()
        .expect("scripts/web deps (needs npm)");
    assert!(deps.success(), "scripts/web deps failed");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is needed (apt-get install chromium chromium-driver)"
    );
    let loops = Loops::new(2, 256 * MIB);
    let devs: Vec<&str> = loops.devs.iter().map(String::as_str).collect();
    let d = Daemon::start_with(Opts {
        config: Some(loops.config()),
        extra_args: vec!["--disks-allow".into(), Loops::allow(&devs)],
        ..Default::default()
    });
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": "webadmin", "role": "admin", "password": "web-pass-123"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = d
        .post(
            "/api/v1/users",
            json!({"name": "listed-user", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = d
        .create_token(json!({"name": "web-token", "owner": "webadmin"}))
        .await;
    let artifacts =
        std::env::var("HOSTPLANE_UI_ARTIFACTS").unwrap_or_else(|_| "/tmp/hostplane-web-ui".into());
    std::fs::create_dir_all(&artifacts).unwrap();
    let names: Vec<&str> = devs.iter().map(|d| Loops::name(d)).collect();
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("web/test/ui.mjs"))
        .current_dir(repo().join("web"))
        .env("HP_URL", &d.base)
        .env("HP_USER", "webadmin")
        .env("HP_PASS", "web-pass-123")
        .env("HP_TOKEN", &token)
        .env("HP_DISKS", names.join(","))
        .env("HP_LISTED", "listed-user")
        .env("HP_ARTIFACTS", &artifacts)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut driver = Driver(cmd.spawn().expect("node is needed"));
    let out = driver.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(s) = driver.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the browser driver took over 240 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = reader.join().unwrap();
    println!("{output}");
    eprintln!(
        "web UI test: {:.1} s, screenshots in {artifacts}",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "the browser driver failed (its output is above)"
    );
    // What the UI did went through the API: the pool it made and destroyed is gone, its disks
    // are free again.
    assert_eq!(d.get("/api/v1/pools/webpool").await.status(), 404);
    for name in &names {
        let disk = d.get_json(&format!("/api/v1/disks/{name}")).await;
        assert!(disk["pool"].is_null(), "{disk}");
    }
}
