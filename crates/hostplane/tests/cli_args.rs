//! The command line that scripts rely on: bad flags and bad config exit non-zero with a clear
//! message; `serve --help` documents every setting.

mod common;

use std::process::Command;

#[test]
fn serve_help_documents_every_setting() {
    let out = Command::new(common::BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for key in [
        "--data-dir",
        "--listen",
        "--http",
        "--socket",
        "--config",
        "HOSTPLANE_LISTEN",
        "query_token",
        "query_hash",
        "session_ttl_secs",
        "login_attempts_per_minute",
        "anonymous_failures_per_minute",
        "[audit]",
        "max_age_days",
        "max_rows",
        "[connections]",
        "max_per_ip",
        "header_read_timeout_secs",
        "idle_timeout_secs",
        "replay_window",
        "[disks]",
        "allow",
        "[metrics]",
        "public",
        "[tls]",
        "[log]",
    ] {
        assert!(help.contains(key), "serve --help lacks {key}");
    }
}

#[test]
fn bad_flags_and_config_fail_clearly() {
    let out = Command::new(common::BIN)
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-address"));

    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[events]\nreplay_window = 5\n").unwrap();
    let out = Command::new(common::BIN)
        .args(["serve", "--http", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("events.replay_window"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(&cfg, "lisen = []\n").unwrap();
    let out = Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));

    let out = Command::new(common::BIN)
        .args(["serve", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));

    // A port already taken is a clean failure, not a hang.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = Command::new(common::BIN)
        .args([
            "serve",
            "--http",
            "--no-socket",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("cannot listen on 127.0.0.1:{port}"))
    );
}

#[test]
fn openapi_command_prints_only_json() {
    let out = Command::new(common::BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["paths"]["/api/v1/jobs"].is_object());
}
