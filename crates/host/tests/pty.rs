//! `Cmd::spawn_pty` against a real shell: a clean environment, the terminal size and resize,
//! and the process group killed on drop.

use std::time::{Duration, Instant};

use hostplane_host::command::{Cmd, PtyIo};

async fn until(io: &PtyIo, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {needle:?} in {:?}",
            String::from_utf8_lossy(&seen)
        );
        match tokio::time::timeout(left, io.read(&mut buf)).await {
            Ok(Ok(0)) => panic!(
                "EOF before {needle:?}: {:?}",
                String::from_utf8_lossy(&seen)
            ),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => continue,
        }
        let text = String::from_utf8_lossy(&seen).into_owned();
        if text.contains(needle) {
            return text;
        }
    }
}

#[tokio::test]
async fn shell_on_a_pty() {
    let mut child = Cmd::new("/bin/sh")
        .env("TERM", "xterm")
        .env("HOME", "/")
        .env("PATH", "/usr/bin:/bin")
        .spawn_pty(100, 30)
        .unwrap();
    let io = child.io();
    io.write_all(b"stty size; env | sort | tr '\\n' ' '; echo END-$((40+2))\n")
        .await
        .unwrap();
    let out = until(&io, "END-42").await;
    assert!(out.contains("30 100"), "{out}");
    assert!(out.contains("TERM=xterm"), "{out}");
    assert!(
        !out.contains("LC_ALL="),
        "the daemon's environment leaked: {out}"
    );
    io.resize(120, 40).unwrap();
    io.write_all(b"stty size; echo DONE-$((1+1))\n")
        .await
        .unwrap();
    let out = until(&io, "DONE-2").await;
    assert!(out.contains("40 120"), "{out}");
    io.write_all(b"exit 3\n").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

#[tokio::test]
async fn drop_kills_the_session() {
    let child = Cmd::new("/bin/sh").spawn_pty(80, 24).unwrap();
    let pid = child.pid() as i32;
    drop(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if stat.is_empty() || state == Some('Z') {
            break;
        }
        assert!(Instant::now() < deadline, "pid {pid} still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
