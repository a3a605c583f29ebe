//! Test harness: starts the real `hostplane` binary on a free loopback port with a temp data
//! dir and talks HTTP to it. The daemon is killed when the guard drops, also on panic.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_hostplane");

#[derive(Default, Clone)]
pub struct Opts {
    pub https: bool,
    /// Extra TOML for the config file.
    pub config: Option<String>,
    pub extra_args: Vec<String>,
}

pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub base: String,
    pub token: String,
    pub socket: PathBuf,
    pub opts: Opts,
    pub client: reqwest::Client,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with(Opts::default())
    }

    pub fn start_with(opts: Opts) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("hp-test-")
            .tempdir()
            .unwrap();
        let mut d = Daemon {
            child: None,
            socket: dir.path().join("hp.sock"),
            dir,
            // Port 0: the daemon binds a free port and reports it in ready.json, so no other
            // process can take it between choosing and binding.
            port: 0,
            base: String::new(),
            token: String::new(),
            opts,
            client: client(),
        };
        d.spawn();
        d.token = std::fs::read_to_string(d.dir.path().join("bootstrap-token"))
            .unwrap()
            .trim()
            .to_string();
        d
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the process (again) on the same port and data dir and waits until it answers.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--socket")
            .arg(&self.socket)
            .args(&self.opts.extra_args)
            .env("HOSTPLANE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !self.opts.https {
            cmd.arg("--http");
        }
        if let Some(cfg) = &self.opts.config {
            let path = self.dir.path().join("config.toml");
            std::fs::write(&path, cfg).unwrap();
            cmd.arg("--config").arg(path);
        }
        let ready = self.dir.path().join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let mut child = cmd.spawn().expect("start hostplane");
        let deadline = Instant::now() + Duration::from_secs(20);
        // Ready means this process wrote ready.json after all its listeners were up: not
        // "something accepted a TCP connection" (a restart may race another test's daemon).
        loop {
            let found = std::fs::read(&ready)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .filter(|v| v["pid"].as_u64() == Some(u64::from(child.id())));
            if let Some(v) = found {
                let addr = v["tcp"][0].as_str().expect("a TCP listener");
                self.port = addr.rsplit(':').next().unwrap().parse().unwrap();
                let scheme = if self.opts.https { "https" } else { "http" };
                self.base = format!("{scheme}://127.0.0.1:{}", self.port);
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).ok();
                panic!("hostplane exited at start ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "hostplane did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Drain stderr so the daemon never blocks on a full pipe.
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stderr.read_to_end(&mut sink);
        });
        self.child = Some(child);
        // Pooled connections to a previous process are dead.
        self.client = client();
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(pid, sig) };
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        c.wait().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(path, &self.token).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.send("POST", path, Some(&self.token.clone()), Some(body))
            .await
    }

    /// Creates a user (no password) with `role` and returns an API token for it.
    pub async fn token_for_role(&self, user: &str, role: &str) -> String {
        let r = self
            .post(
                "/api/v1/users",
                serde_json::json!({"name": user, "role": role}),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        self.create_token(serde_json::json!({"name": format!("{user}-token"), "owner": user}))
            .await
    }

    pub async fn create_token(&self, body: Value) -> String {
        let r = self.post("/api/v1/tokens", body).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        v["value"].as_str().unwrap().to_string()
    }

    /// A raw HTTP/1.1 request over the unix socket; returns (status, body).
    pub fn unix_request(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status: u16 = out.split(' ').nth(1).unwrap().parse().unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// Waits for a job to end (GET /jobs/{id}/wait) and returns it.
    pub async fn wait_job(&self, href: &str) -> Value {
        for _ in 0..30 {
            let j = self.get_json(&format!("{href}/wait?timeout=10")).await;
            if !matches!(j["status"].as_str(), Some("running" | "queued")) {
                return j;
            }
        }
        panic!("job {href} did not finish");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Asserts a problem+json answer with this status and code.
pub async fn assert_problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "expected {status} {code}");
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], status);
    assert!(v["title"].is_string() && v["detail"].is_string() && v["type"].is_string());
    v
}
