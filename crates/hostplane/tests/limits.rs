//! Denial-of-service bounds (docs/limits.md): the audit log stays small under an anonymous
//! flood and is pruned by its retention, refused anonymous requests are rate limited per
//! address without locking out a valid credential, TCP connections are capped per address
//! and overall while the unix socket still answers, and idle connections are closed after the
//! header-read timeout.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Daemon, Opts, assert_problem};
use futures_util::StreamExt;
use serde_json::{Value, json};

fn db_bytes(d: &Daemon) -> u64 {
    ["hostplane.sqlite", "hostplane.sqlite-wal"]
        .iter()
        .map(|f| {
            std::fs::metadata(d.data_dir().join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

/// The anonymous entries of the audit log (read over the unix socket as root).
fn anonymous_entries(d: &Daemon) -> Vec<Value> {
    let (status, body) = d.unix_request("GET", "/api/v1/audit");
    assert_eq!(status, 200, "{body}");
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    all.into_iter()
        .filter(|e| e["actor"] == "anonymous")
        .collect()
}

#[tokio::test]
async fn anonymous_flood_with_long_paths_keeps_the_audit_log_small() {
    // A budget above the flood: this test is about what the audit log records.
    let d = Daemon::start_with(Opts {
        config: Some("[auth]\nanonymous_failures_per_minute = 1000000\n".into()),
        ..Default::default()
    });
    let before = db_bytes(&d);
    let long = format!("/api/v1/tokens/{}", "a".repeat(16 * 1024));
    const N: usize = 3000;
    let statuses: Vec<u16> = futures_util::stream::iter(0..N)
        .map(|_| async {
            d.client
                .post(d.url(&long))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 401), "{:?}", &statuses[..10]);

    // Counts are flushed every 5 s; wait until all requests are accounted for.
    let deadline = Instant::now() + Duration::from_secs(60);
    let entries = loop {
        let entries = anonymous_entries(&d);
        let counted: u64 = entries.iter().map(|e| e["count"].as_u64().unwrap()).sum();
        if counted == N as u64 {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "{counted} of {N} requests counted: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // One entry per address and status per minute, not one per request.
    assert!(entries.len() <= 5, "{} anonymous entries", entries.len());
    for e in &entries {
        assert_eq!(e["status"], 401);
        assert_eq!(e["remote"], "127.0.0.1");
        for field in ["path", "target"] {
            let v = e[field].as_str().unwrap();
            assert!(v.len() <= 512, "{field} is {} bytes", v.len());
            assert!(v.ends_with("...[truncated]"), "{v}");
        }
    }
    let grown = db_bytes(&d).saturating_sub(before);
    assert!(
        grown < 2 << 20,
        "the database grew by {grown} bytes for {N} refused requests"
    );
}

#[tokio::test]
async fn anonymous_failures_are_rate_limited_but_a_valid_token_is_not() {
    let d = Daemon::start_with(Opts {
        config: Some("[auth]\nanonymous_failures_per_minute = 20\n".into()),
        ..Default::default()
    });
    for i in 0..20 {
        let r = d.send("GET", "/api/v1/jobs", None, None).await;
        assert_eq!(r.status(), 401, "request {i}");
    }
    let r = d.send("POST", "/api/v1/tokens", None, None).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    assert_problem(r, 429, "rate_limited").await;
    // A wrong credential is a failure too; the Jidoteki routes answer 429 as well.
    assert_problem(
        d.get_as("/api/v1/jobs", "hp_bad").await,
        429,
        "rate_limited",
    )
    .await;
    assert_problem(
        d.send("GET", "/api/v1/admin/version", None, None).await,
        429,
        "rate_limited",
    )
    .await;
    // The admin, from the same address, is not locked out.
    let r = d.get("/api/v1/auth/whoami").await;
    assert_eq!(r.status(), 200);
    let r = d
        .post("/api/v1/tokens", json!({"name": "still-works"}))
        .await;
    assert_eq!(r.status(), 201);
    // Nor is the unix socket.
    let (status, body) = d.unix_request("GET", "/api/v1/auth/whoami");
    assert_eq!(status, 200, "{body}");
    // The refusals are in the audit log, aggregated by status.
    let entries = anonymous_entries(&d);
    assert!(entries.iter().any(|e| e["status"] == 429), "{entries:?}");
}

#[tokio::test]
async fn audit_log_is_pruned_by_age_and_row_cap() {
    let mut d = Daemon::start_with(Opts {
        config: Some("[audit]\nmax_age_days = 30\nmax_rows = 20\n".into()),
        ..Default::default()
    });
    // 30 audited requests by the admin (logout with an API token is refused with 409).
    for _ in 0..30 {
        let r = d
            .send("POST", "/api/v1/auth/logout", Some(&d.token.clone()), None)
            .await;
        assert_eq!(r.status(), 409);
    }
    d.stop();
    // Entries from long ago, as if the daemon had run for years.
    {
        let db = rusqlite::Connection::open(d.data_dir().join("hostplane.sqlite")).unwrap();
        for _ in 0..5 {
            db.execute(
                "INSERT INTO audit(time, actor, method, path, target, status, outcome, remote)
                 VALUES ('2020-01-01T00:00:00.000Z', 'ancient', 'POST', '/old', '/old', 200,
                         'success', '127.0.0.1')",
                [],
            )
            .unwrap();
        }
    }
    d.spawn();
    let log = d.get_json("/api/v1/audit").await;
    let log = log.as_array().unwrap();
    assert!(
        log.iter().all(|e| e["actor"] != "ancient"),
        "entries older than max_age_days remain"
    );
    assert_eq!(log.len(), 20, "max_rows = 20: {} entries", log.len());
    assert!(
        log.iter().all(|e| e["path"] == "/api/v1/auth/logout"),
        "{log:#?}"
    );
}

/// Reads until the peer closes (EOF or reset); false if it is still open after `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn idle_connections_are_capped_and_closed_and_the_unix_socket_still_answers() {
    let d = Daemon::start_with(Opts {
        config: Some(
            "[metrics]\npublic = true\n[connections]\nmax = 50\nmax_per_ip = 20\nheader_read_timeout_secs = 2\nidle_timeout_secs = 60\n"
                .into(),
        ),
        ..Default::default()
    });
    // 100 idle connections from one address; one of them sends half a request head.
    let mut conns: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(("127.0.0.1", d.port)).unwrap())
        .collect();
    conns[0]
        .write_all(b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n")
        .unwrap();

    // The admin still gets answers over the unix socket, which is not counted.
    let (status, body) = d.unix_request("GET", "/api/v1/auth/whoami");
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = d.unix_request("GET", "/metrics");
        assert_eq!(status, 200, "{text}");
        let open = metric(&text, "hostplane_tcp_connections").unwrap_or(0.0);
        assert!(open <= 20.0, "{open} connections open, cap per address 20");
        let refused = metric(
            &text,
            "hostplane_tcp_connections_refused_total{reason=\"per_ip\"}",
        )
        .unwrap_or(0.0);
        if refused >= 50.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{refused} connections refused");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every one of them is closed: over the cap at once, the others after the 2 s
    // header-read timeout (the half request head too).
    for (i, c) in conns.iter_mut().enumerate() {
        assert!(
            closed_within(c, Duration::from_secs(30)),
            "connection {i} still open"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = d.unix_request("GET", "/metrics");
        if metric(&text, "hostplane_tcp_connections") == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "connections not released");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The address is served again.
    let r = d.get("/api/v1/auth/whoami").await;
    assert_eq!(r.status(), 200);
    // An HTTP/1 keep-alive connection is answered, then closed once it idles past the
    // header-read timeout.
    let mut ka = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    ka.write_all(b"GET /api-docs/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    ka.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    ka.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut ka, Duration::from_secs(30)),
        "idle keep-alive connection still open"
    );
}

/// Kills the child on drop (also on panic).
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[test]
fn open_files_soft_limit_is_raised_to_the_hard_limit() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let port = common::free_port();
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args(["serve", "--http", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--socket")
        .arg(dir.path().join("hp.sock"))
        .env("HOSTPLANE_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only getrlimit/setrlimit (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = lim.rlim_max.min(512);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Kill(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.0.try_wait().unwrap().is_none(), "hostplane exited");
        assert!(Instant::now() < deadline, "hostplane did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.0.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums[0], nums[1], "soft and hard differ: {line}");
}
