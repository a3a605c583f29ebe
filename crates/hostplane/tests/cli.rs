//! The CLI end to end: a real daemon (`hostplane serve`) in a temporary data dir, driven by the
//! `hostplane` binary's client commands over HTTP, HTTPS and the unix socket.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hostplane");

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    fn start(http: bool) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("hp-test-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--socket")
            .arg(dir.path().join("s.sock"));
        if http {
            cmd.arg("--http");
        }
        let child = cmd
            .env("HOSTPLANE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let scheme = if http { "http" } else { "https" };
        let d = Daemon {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            dir,
        };
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() || !d.socket().exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "daemon did not start:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("s.sock")
    }

    fn socket_url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn bootstrap_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/bootstrap-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Runs the CLI with a private HOME and no HOSTPLANE_* from the outside.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("XDG_DATA_HOME", self.dir.path().join("xdg"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("HOSTPLANE_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        Run::new(args, child.wait_with_output().unwrap())
    }

    /// The CLI over HTTP(S) with a token (and `--ca` for HTTPS).
    fn with_token(&self, token: &str, args: &[&str]) -> Run {
        let ca = self.dir.path().join("data/tls/cert.pem");
        let ca = ca.to_str().unwrap();
        let mut all = vec!["--url", &self.url, "--token", token];
        if self.url.starts_with("https:") {
            all.extend(["--ca", ca]);
        }
        all.extend(args);
        self.cli(&all, None)
    }

    /// The CLI over the unix socket, without a token (root is admin there).
    fn on_socket(&self, args: &[&str]) -> Run {
        let url = self.socket_url();
        let mut all = vec!["--url", url.as_str()];
        all.extend(args);
        self.cli(&all, None)
    }
}

struct Run {
    what: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn new(args: &[&str], o: Output) -> Run {
        Run {
            what: args.join(" "),
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "`hostplane {}` exited {}\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }

    fn ok(self) -> Run {
        self.expect(0)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`hostplane {}`: not JSON ({e}):\n{}",
                self.what, self.stdout
            )
        })
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn tokens_over_http() {
    let d = Daemon::start(true);
    let admin = d.bootstrap_token();

    let r = d
        .with_token(
            &admin,
            &["token", "create", "--name", "ci", "--role", "viewer"],
        )
        .ok();
    let value = r.stdout.trim().to_string();
    assert!(value.starts_with("hp_"), "{value}");
    assert!(r.stderr.contains("only this once"), "{}", r.stderr);

    let list = d
        .with_token(&admin, &["token", "list", "--json"])
        .ok()
        .json();
    let ci = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .expect("the new token is listed");
    assert_eq!(ci["role"], "viewer");
    let id = ci["id"].as_str().unwrap().to_string();
    let table = d.with_token(&admin, &["token", "list"]).ok().stdout;
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains(&id) && table.contains("bootstrap"),
        "{table}"
    );

    // The new token works, through `whoami` and the raw `api` command.
    let who = d.with_token(&value, &["whoami", "--json"]).ok().json();
    assert_eq!(who["role"], "viewer");
    assert_eq!(who["token_id"], id.as_str());
    let r = d
        .with_token(&value, &["api", "GET", "/api/v1/auth/whoami"])
        .ok();
    assert!(r.stderr.contains("HTTP 200"), "{}", r.stderr);
    assert_eq!(r.json()["method"], "bearer");

    // A viewer may not create users: the problem is rendered on stderr, exit 1.
    let r = d
        .with_token(&value, &["user", "create", "eve", "--role", "admin"])
        .expect(1);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 403"), "{}", r.stderr);

    d.with_token(&admin, &["token", "revoke", &id]).ok();
    let r = d.with_token(&value, &["whoami"]).expect(1);
    assert!(
        r.stderr.contains("(unauthenticated, HTTP 401)"),
        "{}",
        r.stderr
    );
    let r = d.with_token(&admin, &["token", "revoke", &id]).expect(1);
    assert!(r.stderr.contains("(not_found, HTTP 404)"), "{}", r.stderr);
}

#[test]
fn users_over_the_socket() {
    let d = Daemon::start(true);
    let who = d.on_socket(&["whoami", "--json"]).ok().json();
    assert_eq!(who["method"], "unix_socket");
    assert_eq!(who["role"], "admin");

    let r = d
        .on_socket(&["user", "create", "bob", "--role", "operator"])
        .ok();
    assert!(r.stdout.contains("operator"), "{}", r.stdout);
    let r = d
        .on_socket(&["user", "create", "bob", "--role", "viewer"])
        .expect(1);
    assert!(r.stderr.contains("(user_exists, HTTP 409)"), "{}", r.stderr);

    let users = d.on_socket(&["user", "list", "--json"]).ok().json();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"bob") && names.contains(&"admin"),
        "{names:?}"
    );
    let table = d.on_socket(&["user", "list"]).ok().stdout;
    assert!(table.lines().any(|l| l.starts_with("bob ")), "{table}");

    let u = d
        .on_socket(&["user", "set", "bob", "--role", "viewer", "--json"])
        .ok()
        .json();
    assert_eq!(u["role"], "viewer");
    assert_eq!(u["has_password"], false);
    d.on_socket(&["user", "delete", "bob"]).ok();
    let r = d.on_socket(&["user", "show", "bob"]).expect(1);
    assert!(r.stderr.contains("HTTP 404"), "{}", r.stderr);

    // Raw calls: status line on stderr, body on stdout, exit 1 for non-2xx.
    let r = d.on_socket(&["api", "GET", "/api/v1/nope"]).expect(1);
    assert!(r.stderr.contains("HTTP 404"), "{}", r.stderr);
    assert_eq!(r.json()["code"], "not_found");
    d.on_socket(&["api", "GET", "api/v1/auth/whoami"]).expect(1);
}

#[test]
fn selftest_and_jobs() {
    let d = Daemon::start(true);
    let admin = d.bootstrap_token();

    let r = d.with_token(&admin, &["selftest", "--wait"]).ok();
    assert!(r.stdout.contains("Self-test passed"), "{}", r.stdout);
    assert!(r.stdout.contains("data_dir_writable"), "{}", r.stdout);

    let job = d.on_socket(&["selftest", "--wait", "--json"]).ok().json();
    assert_eq!(job["status"], "success");
    assert_eq!(job["result"]["ok"], true);
    let id = job["id"].as_str().unwrap().to_string();

    let jobs = d
        .with_token(&admin, &["jobs", "list", "--json"])
        .ok()
        .json();
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    assert_eq!(jobs[0]["id"], id.as_str(), "newest first");
    let one = d
        .with_token(&admin, &["jobs", "list", "--limit", "1", "--json"])
        .ok()
        .json();
    assert_eq!(one.as_array().unwrap().len(), 1);
    let r = d
        .with_token(&admin, &["jobs", "list", "--filter", "nosuchfield:x"])
        .expect(1);
    assert!(r.stderr.contains("invalid_filter"), "{}", r.stderr);

    let show = d.with_token(&admin, &["jobs", "show", &id]).ok().stdout;
    assert!(
        show.contains("system.selftest") && show.contains("success"),
        "{show}"
    );
    let log = d.with_token(&admin, &["jobs", "log", &id]).ok().stdout;
    assert!(log.contains("[4/4]"), "{log}");
    d.with_token(&admin, &["jobs", "wait", &id]).ok();

    // A slow self-test: wait times out (exit 2), then cancel; wait then reports it (exit 1).
    let slow = d
        .with_token(&admin, &["selftest", "--step-delay", "3000", "--json"])
        .ok()
        .json();
    let slow_id = slow["id"].as_str().unwrap().to_string();
    let r = d
        .with_token(
            &admin,
            &["jobs", "wait", &slow_id, "--timeout", "1", "--json"],
        )
        .expect(2);
    assert_eq!(r.json()["status"], "running");
    d.with_token(&admin, &["jobs", "cancel", &slow_id]).ok();
    let r = d
        .with_token(
            &admin,
            &["jobs", "wait", &slow_id, "--timeout", "30", "--json"],
        )
        .expect(1);
    assert_eq!(r.json()["status"], "cancelled");
    // Following the log of an ended job prints it all and returns.
    let log = d
        .with_token(&admin, &["jobs", "log", &slow_id, "--follow"])
        .ok()
        .stdout;
    assert!(log.contains("cancelled"), "{log}");

    // Follow a running job: the command ends by itself when the job does.
    let job = d
        .on_socket(&["selftest", "--step-delay", "300", "--json"])
        .ok()
        .json();
    let t0 = Instant::now();
    let log = d
        .on_socket(&["jobs", "log", job["id"].as_str().unwrap(), "--follow"])
        .ok()
        .stdout;
    assert!(
        log.contains("[4/4]") && log.contains("job finished"),
        "{log}"
    );
    assert!(t0.elapsed() < Duration::from_secs(20));

    let r = d.with_token(&admin, &["jobs", "wait", "nope"]).expect(1);
    assert!(r.stderr.contains("(not_found, HTTP 404)"), "{}", r.stderr);
}

#[test]
fn login_and_logout() {
    let d = Daemon::start(true);
    let r = d.cli(
        &[
            "--url",
            &d.socket_url(),
            "user",
            "create",
            "alice",
            "--role",
            "operator",
            "--password-stdin",
        ],
        Some("correct-horse\n"),
    );
    r.ok();

    let r = d.cli(
        &[
            "--url",
            &d.url,
            "login",
            "--user",
            "alice",
            "--password-stdin",
        ],
        Some("wrong-password\n"),
    );
    let r = r.expect(1);
    assert!(r.stderr.contains("HTTP 401"), "{}", r.stderr);

    d.cli(
        &[
            "--url",
            &d.url,
            "login",
            "--user",
            "alice",
            "--password-stdin",
        ],
        Some("correct-horse\n"),
    )
    .ok();
    let file = d.home().join(".config/hostplane/cli.toml");
    assert_eq!(mode(&file), 0o600);
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains(&d.url) && saved.contains("hp_"), "{saved}");

    // Later commands use the saved URL and session.
    let who = d.cli(&["whoami", "--json"], None).ok().json();
    assert_eq!(who["user"], "alice");
    assert_eq!(who["role"], "operator");
    // The saved token is not sent to another URL: on the socket, root is admin.
    let who = d.on_socket(&["whoami", "--json"]).ok().json();
    assert_eq!(who["user"], "root");

    d.cli(&["logout"], None).ok();
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(!saved.contains("hp_"), "{saved}");
    assert_eq!(mode(&file), 0o600);
    let r = d.cli(&["whoami"], None).expect(1);
    assert!(r.stderr.contains("HTTP 401"), "{}", r.stderr);
    d.cli(&["logout"], None).expect(1);
}

#[test]
fn https_with_ca_or_insecure() {
    let d = Daemon::start(false);
    let admin = d.bootstrap_token();
    let who = d.with_token(&admin, &["whoami", "--json"]).ok().json();
    assert_eq!(who["user"], "admin");
    let r = d
        .cli(
            &[
                "--url",
                &d.url,
                "--insecure",
                "--token",
                &admin,
                "jobs",
                "list",
            ],
            None,
        )
        .ok();
    assert!(r.stdout.starts_with("ID "), "{}", r.stdout);
    // The self-signed certificate is refused without either.
    let r = d
        .cli(&["--url", &d.url, "--token", &admin, "whoami"], None)
        .expect(1);
    assert!(r.stderr.contains("--insecure"), "{}", r.stderr);
}
