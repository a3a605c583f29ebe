//! The host terminal against the real daemon: a shell on a PTY over a WebSocket, resize,
//! reattach with replay, single-use tickets, and who may open one.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, assert_problem};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Term {
    ws: Socket,
    text: String,
}

async fn connect(d: &Daemon, ws_url: &str) -> Result<Term, String> {
    let url = format!("ws://127.0.0.1:{}{ws_url}", d.port);
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => Ok(Term {
            ws,
            text: String::new(),
        }),
        Err(e) => Err(e.to_string()),
    }
}

impl Term {
    /// Reads frames until the terminal text contains `needle`.
    async fn until(&mut self, needle: &str) -> String {
        let limit = Duration::from_secs(20);
        let t0 = Instant::now();
        while !self.text.contains(needle) {
            let left = limit.saturating_sub(t0.elapsed());
            assert!(
                !left.is_zero(),
                "no {needle:?} within {limit:?}; saw:\n{}",
                self.text
            );
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    self.text.push_str(&String::from_utf8_lossy(&b))
                }
                Ok(Some(Ok(Message::Text(t)))) => self.text.push_str(&format!("\n[control {t}]\n")),
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!(
                    "terminal ended ({other:?}) before {needle:?}:\n{}",
                    self.text
                ),
                Err(_) => {}
            }
        }
        self.text.clone()
    }

    async fn type_line(&mut self, line: &str) {
        self.ws
            .send(Message::Binary(format!("{line}\n").into_bytes().into()))
            .await
            .unwrap();
    }
}

async fn open(d: &Daemon, token: &str, body: Value) -> reqwest::Response {
    d.send("POST", "/api/v1/system/terminals", Some(token), Some(body))
        .await
}

#[tokio::test]
async fn shell_resize_reattach_and_tickets() {
    let d = Daemon::start();
    let r = open(
        &d,
        &d.token,
        json!({"cols": 80, "rows": 24, "shell": "/bin/sh"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    let id = t["id"].as_str().unwrap().to_string();
    let ws_url = t["ws_url"].as_str().unwrap().to_string();
    assert!(ws_url.contains(t["ticket"].as_str().unwrap()));

    let mut term = connect(&d, &ws_url).await.unwrap();
    // A clean environment: only what the daemon sets.
    term.type_line("stty size; env | sort | tr '\\n' ' '; echo; echo ENV-$((20+1))")
        .await;
    let out = term.until("ENV-21").await;
    assert!(out.contains("24 80"), "{out}");
    assert!(out.contains("TERM=xterm-256color"), "{out}");
    assert!(
        !out.contains("RUST_LOG") && !out.contains("LC_ALL="),
        "{out}"
    );
    assert!(
        !out.contains("HOSTPLANE"),
        "the daemon's environment leaked: {out}"
    );

    term.ws
        .send(Message::Text(
            json!({"type": "resize", "cols": 132, "rows": 43})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    term.type_line("stty size; echo SIZE-$((6*7))").await;
    let out = term.until("SIZE-42").await;
    assert!(out.contains("43 132"), "{out}");

    // The ticket was used: a second connection with it is refused.
    assert!(connect(&d, &ws_url).await.is_err(), "a ticket worked twice");

    // The session lists, attached.
    let list = d.get_json("/api/v1/system/terminals").await;
    let s = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap();
    assert_eq!(s["attached"], true);
    assert_eq!(
        (s["cols"].as_u64(), s["rows"].as_u64()),
        (Some(132), Some(43))
    );

    // Drop the connection; the shell lives on and replays its output to the next client.
    term.type_line("echo BEFORE-DROP-$((100+23))").await;
    term.until("BEFORE-DROP-123").await;
    drop(term);
    let r = d
        .send(
            "POST",
            &format!("/api/v1/system/terminals/{id}/ticket"),
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(r.status(), 201);
    let t2: Value = r.json().await.unwrap();
    let mut again = connect(&d, t2["ws_url"].as_str().unwrap()).await.unwrap();
    again.until("BEFORE-DROP-123").await;
    again.type_line("echo AFTER-$((2+2))").await;
    again.until("AFTER-4").await;

    // exit ends it: the client gets the exit code, the session is gone, the end is audited.
    again.type_line("exit 7").await;
    let out = again.until("\"type\":\"exit\"").await;
    assert!(out.contains("\"code\":7"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = d.get(&format!("/api/v1/system/terminals/{id}")).await;
        if r.status() == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the session outlived its shell");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let audit = d.get_json("/api/v1/audit?limit=1000").await;
        let text = audit.to_string();
        if text.contains(&format!(
            "/api/v1/system/terminals/{id} ended: exited (exit code 7)"
        )) {
            assert!(
                !text.contains("SIZE-42") && !text.contains("stty"),
                "keystrokes in the audit log"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no audited end: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn delete_ends_a_session_and_limits() {
    let d = Daemon::start();
    let r = open(&d, &d.token, json!({"shell": "/bin/sh"})).await;
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    let id = t["id"].as_str().unwrap();
    let mut term = connect(&d, t["ws_url"].as_str().unwrap()).await.unwrap();
    term.type_line("echo UP-$((1+1))").await;
    term.until("UP-2").await;
    let r = d
        .send(
            "DELETE",
            &format!("/api/v1/system/terminals/{id}"),
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let out = term.until("\"type\":\"exit\"").await;
    assert!(out.contains("\"reason\":\"deleted\""), "{out}");

    // Not on the allow-list, a bad size.
    let r = open(&d, &d.token, json!({"shell": "/usr/bin/python3"})).await;
    assert_problem(r, 422, "shell_not_allowed").await;
    let r = open(&d, &d.token, json!({"cols": 0, "rows": 24})).await;
    assert_problem(r, 422, "invalid_terminal_size").await;
}

#[tokio::test]
async fn a_detached_session_ends_after_its_grace_period() {
    let d = Daemon::start_with(common::Opts {
        config: Some("[terminal]\ndetach_grace_secs = 2\n".into()),
        ..Default::default()
    });
    let r = open(&d, &d.token, json!({"shell": "/bin/sh"})).await;
    let t: Value = r.json().await.unwrap();
    let id = t["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while d
        .get(&format!("/api/v1/system/terminals/{id}"))
        .await
        .status()
        != 404
    {
        assert!(
            Instant::now() < deadline,
            "a never-attached session lived on"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn only_admins_with_the_terminal_scope() {
    let d = Daemon::start();
    for role in ["viewer", "operator"] {
        let tok = d.token_for_role(&format!("term{role}"), role).await;
        let r = open(&d, &tok, json!({})).await;
        assert_problem(r, 403, "forbidden").await;
        let r = d.get_as("/api/v1/system/terminals", &tok).await;
        assert_eq!(r.status(), 403, "{role} listed terminals");
    }
    // An admin token scoped to everything else (`*`, `system`) cannot; `terminal` can.
    for scopes in [json!(["*"]), json!(["system", "vms"])] {
        let tok = d
            .create_token(
                json!({"name": format!("t{}", scopes.to_string().len()), "scopes": scopes}),
            )
            .await;
        let r = open(&d, &tok, json!({})).await;
        assert_problem(r, 403, "forbidden").await;
    }
    let tok = d
        .create_token(json!({"name": "term-only", "scopes": ["terminal"]}))
        .await;
    let r = open(&d, &tok, json!({"shell": "/bin/sh"})).await;
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    let mut term = connect(&d, t["ws_url"].as_str().unwrap()).await.unwrap();
    term.type_line("echo SCOPED-$((3*3))").await;
    term.until("SCOPED-9").await;
    // A ticket is bound to its path: it opens no other session's socket.
    let r = open(&d, &d.token, json!({"shell": "/bin/sh"})).await;
    let other: Value = r.json().await.unwrap();
    let wrong = format!(
        "/api/v1/system/terminals/{}/ws?ticket={}",
        t["id"].as_str().unwrap(),
        other["ticket"].as_str().unwrap()
    );
    assert!(connect(&d, &wrong).await.is_err());
    assert!(
        connect(&d, other["ws_url"].as_str().unwrap())
            .await
            .is_err(),
        "the refused use consumed the ticket"
    );
}

/// Runs the CLI against `d` with `stdin` piped in; (exit code, stdout, stderr).
fn cli(d: &Daemon, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let home = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let url = format!("http://127.0.0.1:{}", d.port);
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args(["--url", &url, "--token", &d.token])
        .args(args)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("HOSTPLANE_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cli_terminal_from_a_pipe() {
    let d = Daemon::start();
    let (code, out, err) = cli(
        &d,
        &["terminal", "--shell", "/bin/sh"],
        "echo CLI-$((5*5)); stty size\nexit 3\n",
    );
    assert!(out.contains("CLI-25"), "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("24 80"),
        "not a tty on stdout: 80x24 expected: {out}"
    );
    assert_eq!(code, 3, "the shell's exit code; stderr: {err}");
    // The session is gone once the shell exited.
    let list = d.get_json("/api/v1/system/terminals").await;
    assert_eq!(list, json!([]));
}
