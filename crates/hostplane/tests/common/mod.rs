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
    /// Extra environment variables of the daemon.
    pub env: Vec<(String, String)>,
    /// Run the daemon inside this network namespace (`ip netns exec NS hostplane serve ...`);
    /// the test then talks to it over its unix socket, which the namespace does not fence.
    pub netns: Option<String>,
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
    /// Everything the daemon wrote to stderr (its log at `warn`), over all its starts.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client that sends every request over the daemon's unix socket (`http://localhost/...`).
fn unix_client(socket: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .unix_socket(socket.to_path_buf())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
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
            stderr: Default::default(),
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
        let mut cmd = match &self.opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str(), BIN]);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--socket")
            .arg(&self.socket)
            // Explicit: never the host's own system files, reboot or units (docs/testing.md).
            .arg("--sandbox")
            .args(&self.opts.extra_args)
            .env("HOSTPLANE_LOG", "warn")
            // The host's bus is never the test daemon's: a test that needs one makes it and
            // names it in `[services] dbus_address`.
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
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
                if self.opts.netns.is_some() {
                    // The TCP listener is on the namespace's loopback, out of reach here.
                    self.base = "http://localhost".into();
                }
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
        // Drain stderr so the daemon never blocks on a full pipe; keep it for `log()`.
        let mut stderr = child.stderr.take().unwrap();
        let keep = self.stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                keep.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        self.child = Some(child);
        // Pooled connections to a previous process are dead.
        self.client = match self.opts.netns {
            Some(_) => unix_client(&self.socket),
            None => client(),
        };
    }

    /// What the daemon logged to stderr so far (level `warn` and above).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits up to `secs` for `needle` in the daemon's log; panics with the log otherwise.
    pub fn wait_log(&self, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the daemon never logged {needle:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
    /// Kills the daemon and what it started: its descendants (job commands run in their own
    /// process groups, so killing the daemon's group is not enough) and processes that name its
    /// data dir (QEMU guests, which outlive a daemon by design). Also on panic.
    fn drop(&mut self) {
        let mut pids = match &self.child {
            Some(c) => descendants(c.id() as i32),
            None => Vec::new(),
        };
        self.kill9();
        pids.extend(naming_dir(self.dir.path()));
        for pid in pids {
            // SAFETY: a signal to a process this daemon started (checked just above).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Every process whose /proc/PID/stat parent chain leads to `root` (not `root` itself).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parent: Vec<(i32, i32)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parent.push((pid, ppid));
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out.remove(0);
    out
}

/// Processes with an argument that is `dir`, a path below it, or a value naming it
/// (`file=DIR/x`, `--config=DIR/x`), other than this test process.
pub fn naming_dir(dir: &Path) -> Vec<i32> {
    let d = dir.to_string_lossy().into_owned();
    let below = format!("{d}/");
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let names = cmd.split(|b| *b == 0).any(|a| {
            let a = String::from_utf8_lossy(a);
            a == d
                || a.starts_with(&below)
                || [b'=', b',', b':'].iter().any(|sep| {
                    let sep = *sep as char;
                    a.contains(&format!("{sep}{below}")) || a.ends_with(&format!("{sep}{d}"))
                })
        });
        if names {
            out.push(pid);
        }
    }
    out
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

/// The tiny test guest's directory (vmlinuz, initrd.gz, disk.img, root-password): built or
/// reused by `scripts/guest-kit`, or `$HOSTPLANE_GUEST_KIT` when set.
pub fn guest_kit() -> PathBuf {
    if let Some(d) = std::env::var_os("HOSTPLANE_GUEST_KIT") {
        return PathBuf::from(d);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/guest-kit");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/guest-kit could not build the test guest (needs apt-get download access once): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    for f in ["vmlinuz", "initrd.gz", "disk.img"] {
        assert!(dir.join(f).is_file(), "{} has no {f}", dir.display());
    }
    dir
}
