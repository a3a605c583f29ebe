//! Cross-cutting platform behaviour: the audit log, /metrics (also scraped by a real
//! Prometheus), problem+json for unknown routes and methods, the OpenAPI document (served,
//! committed, in sync), the Swagger UI and the web UI's page at `/`.

mod common;

use common::{Daemon, Opts, assert_problem};
use serde_json::{Value, json};

#[tokio::test]
async fn audit_records_mutations_with_actor_and_outcome() {
    let d = Daemon::start();
    d.create_token(json!({"name": "audited"})).await;
    // A refused anonymous mutation is recorded too.
    let r = d
        .send("POST", "/api/v1/tokens", None, Some(json!({"name": "x"})))
        .await;
    assert_eq!(r.status(), 401);
    // Reads are not.
    d.get("/api/v1/jobs").await;
    let log = d.get_json("/api/v1/audit").await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    let (refused, created) = (&log[0], &log[1]);
    assert_eq!(created["actor"], "admin");
    assert_eq!(created["auth_method"], "bearer");
    assert_eq!(created["method"], "POST");
    assert_eq!(created["status"], 201);
    assert_eq!(created["outcome"], "success");
    assert!(
        created["target"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/tokens/"),
        "{created}"
    );
    assert_eq!(created["remote"], "127.0.0.1");
    assert_eq!(refused["actor"], "anonymous");
    assert_eq!(refused["outcome"], "failure");
    assert_eq!(refused["status"], 401);
    let one = d.get_json(created["href"].as_str().unwrap()).await;
    assert_eq!(&one, created);
    // Admins only.
    let viewer = d.token_for_role("v", "viewer").await;
    assert_problem(d.get_as("/api/v1/audit", &viewer).await, 403, "forbidden").await;
}

#[tokio::test]
async fn metrics_need_auth_unless_public() {
    let d = Daemon::start();
    d.get("/api/v1/jobs").await;
    d.send("GET", "/api/v1/jobs", None, None).await;
    assert_eq!(
        d.client
            .get(d.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let text = d.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(
            "hostplane_http_requests_total{route=\"/api/v1/jobs\",method=\"GET\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("hostplane_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("hostplane_auth_failures_total"), "{text}");
    let public = Daemon::start_with(Opts {
        extra_args: vec!["--metrics-public".into()],
        ..Default::default()
    });
    assert_eq!(
        public
            .client
            .get(public.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let d = Daemon::start();
    assert_problem(d.get("/api/v1/nope").await, 404, "not_found").await;
    assert_problem(
        d.send("PUT", "/api/v1/jobs", Some(&d.token), None).await,
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn openapi_is_served_committed_and_in_sync() {
    let d = Daemon::start();
    let served: Value = d
        .client
        .get(d.url("/api-docs/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
    let printed = std::process::Command::new(common::BIN)
        .arg("openapi")
        .output()
        .unwrap();
    assert!(printed.status.success());
    let printed: Value =
        serde_json::from_slice(&printed.stdout).expect("stdout is only the document");
    assert_eq!(served, printed);
    // A client that accepts gzip gets the stored compressed bytes: the same document.
    let gz = d
        .client
        .get(d.url("/api-docs/openapi.json"))
        .header("Accept-Encoding", "br;q=1, gzip;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "accept-encoding");
    let bytes = gz.bytes().await.unwrap();
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut inflated)
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&inflated).unwrap(), printed);
    // `gzip;q=0` refuses it.
    let plain = d
        .client
        .get(d.url("/api-docs/openapi.json"))
        .header("Accept-Encoding", "gzip;q=0")
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.json::<Value>().await.unwrap(), printed);
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(committed_path).unwrap()).unwrap();
    assert!(
        committed == printed,
        "openapi.json is out of date: run `cargo run -q -- openapi > openapi.json` and commit it"
    );
    // Every operation documents its errors as problem+json and has a 2xx answer.
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2') || k == "101"),
                "{method} {path}"
            );
            assert!(
                responses["422"]["content"]["application/problem+json"].is_object(),
                "{method} {path}"
            );
        }
    }
    // The Swagger UI is vendored: it loads with no network.
    let ui = d.client.get(d.url("/api-docs/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    let html = ui.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the UI must not load anything from the network"
    );
}

fn served_certificate(port: u16) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate was served");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    text[start..end].to_string()
}

#[tokio::test]
async fn tls_certificate_is_replaced_at_run_time_on_sighup() {
    let d = Daemon::start_with(Opts {
        https: true,
        ..Default::default()
    });
    let tls = d.data_dir().join("tls");
    let first = served_certificate(d.port);
    assert_eq!(
        first.trim(),
        std::fs::read_to_string(tls.join("cert.pem"))
            .unwrap()
            .trim()
    );
    // A new pair, made by someone else's tool, put in place of the old one.
    let work = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=reloaded",
        ])
        .arg("-keyout")
        .arg(work.path().join("key.pem"))
        .arg("-out")
        .arg(work.path().join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(work.path().join("key.pem"), tls.join("key.pem")).unwrap();
    std::fs::copy(work.path().join("cert.pem"), tls.join("cert.pem")).unwrap();
    let new = std::fs::read_to_string(tls.join("cert.pem")).unwrap();
    assert_ne!(first.trim(), new.trim());
    d.signal(libc::SIGHUP);
    let mut served = String::new();
    for _ in 0..50 {
        served = served_certificate(d.port);
        if served.trim() == new.trim() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        served.trim(),
        new.trim(),
        "the new certificate is served without a restart"
    );
    // Same process, still answering.
    assert_eq!(d.get_json("/api/v1/auth/whoami").await["user"], "admin");
    // A broken pair is refused and the current one stays.
    std::fs::write(tls.join("cert.pem"), "garbage").unwrap();
    assert!(!d.log().contains("TLS reload failed"), "{}", d.log());
    d.signal(libc::SIGHUP);
    // Processed (not merely not yet seen): the daemon says it refused the pair.
    d.wait_log("TLS reload failed; keeping the old certificate", 10);
    assert_eq!(served_certificate(d.port).trim(), new.trim());
    assert_eq!(d.get_json("/api/v1/auth/whoami").await["user"], "admin");
}

/// Logs on stderr carry colour codes only on a terminal: redirected to a file they are plain.
#[test]
fn redirected_log_has_no_colour_codes() {
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let data = dir.path().join("data");
    let child = std::process::Command::new(common::BIN)
        .args(["serve", "--http", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--socket")
        .arg(dir.path().join("hp.sock"))
        .env("HOSTPLANE_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !data.join("ready.json").exists() {
        assert!(child.0.try_wait().unwrap().is_none(), "daemon exited");
        assert!(std::time::Instant::now() < deadline, "daemon not ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "no log lines: {text:?}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a redirected log: {text:?}"
    );
}

/// `GET /` on the HTTPS and the plain HTTP port, with no credential, is the web UI's page
/// (a person with a browser gets something usable, not a 401); other methods are a 405 problem.
#[tokio::test]
async fn root_serves_the_web_ui_without_credentials() {
    for https in [true, false] {
        let d = Daemon::start_with(Opts {
            https,
            ..Default::default()
        });
        assert!(
            d.base
                .starts_with(if https { "https://" } else { "http://" })
        );
        let r = d.client.get(d.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200, "https={https}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(r.text().await.unwrap().contains("<title>hostplane</title>"));
        assert_problem(
            d.send("POST", "/", Some(&d.token), None).await,
            405,
            "method_not_allowed",
        )
        .await;
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server (killed and reaped on drop, also on panic).
struct Prometheus(std::process::Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/metrics` scraped by a real Prometheus (Debian's package, run directly on a loopback port
/// with its own config and storage) the way docs/auth.md says to: HTTPS verified against the
/// daemon's certificate, a viewer token scoped to `system:read` in a credentials file. The
/// target is up, and hostplane's metrics have values in Prometheus's query API.
#[tokio::test]
async fn metrics_are_scraped_by_a_real_prometheus() {
    let d = Daemon::start_with(Opts {
        https: true,
        ..Default::default()
    });
    let token = d
        .create_token(json!({"name": "prometheus", "role": "viewer", "scopes": ["system:read"]}))
        .await;
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hostplane\n    scheme: https\n    authorization:\n      type: Bearer\n      credentials_file: {}\n    tls_config:\n      ca_file: {}\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            token_file.display(),
            d.data_dir().join("tls/cert.pem").display(),
            d.port
        ),
    )
    .unwrap();
    let port = common::free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Prometheus(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus) is needed: scripts/test installs it"),
    );
    let plain = reqwest::Client::new();
    let query = |q: &'static str| {
        let plain = plain.clone();
        async move {
            let r = plain
                .get(format!(
                    "http://127.0.0.1:{port}/api/v1/query?query={}",
                    percent_encode(q)
                ))
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            let value = v["data"]["result"][0]["value"][1].as_str()?;
            value.parse::<f64>().ok()
        }
    };
    // Each value as soon as Prometheus has it (the first scrape happens within a second or so
    // of its start; a scrape counts in the daemon's metrics from the next one on).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for (q, ok) in [
        (r#"up{job="hostplane"}"#, (|v| v == 1.0) as fn(f64) -> bool),
        (r#"hostplane_uptime_seconds{job="hostplane"}"#, |v| v > 0.0),
        // Prometheus's own scrapes, counted by the daemon and authorised (200).
        (
            r#"hostplane_http_requests_total{job="hostplane",route="/metrics",method="GET",status="200"}"#,
            |v| v >= 1.0,
        ),
    ] {
        loop {
            let v = query(q).await;
            if v.is_some_and(ok) {
                break;
            }
            if std::time::Instant::now() > deadline {
                let targets = match plain
                    .get(format!("http://127.0.0.1:{port}/api/v1/targets"))
                    .send()
                    .await
                {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                panic!(
                    "{q} is {v:?} after 60 s; targets: {targets}\n{}",
                    std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}
