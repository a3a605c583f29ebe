//! `hostplane registries ...` end to end: the real CLI as a client of a real daemon, with a
//! small registry server on loopback answering BoxVault's organisation list: add, list, show
//! (`--json` parsed back into the shared type; the token never shown), browse, rm (refused
//! without `--yes` when stdin is not a terminal).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};

use common::{BIN, Daemon, Opts};
use hostplane_types::vms::TemplateRegistry;

/// Runs the CLI against `d` with its token, stdin from /dev/null, a private HOME.
fn cli(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let home = d.data_dir().join("cli-home");
    let mut cmd = Command::new(BIN);
    cmd.args(["--url", &d.base, "--token", &d.token]);
    if d.base.starts_with("https:") {
        cmd.arg("--ca").arg(d.data_dir().join("tls/cert.pem"));
    }
    cmd.args(args)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("HOSTPLANE_") {
            cmd.env_remove(k);
        }
    }
    let o: Output = cmd.output().expect("run hostplane");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn parse<T: serde::de::DeserializeOwned>(out: &str) -> T {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not the expected JSON ({e}):\n{out}"))
}

fn ok(r: (i32, String, String)) -> String {
    assert_eq!(r.0, 0, "stdout:\n{}\nstderr:\n{}", r.1, r.2);
    r.1
}

/// Answers every request with BoxVault's organisation list (one organisation).
fn registry() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let body = r#"[{"name": "STARTcloud", "description": "boxes"}]"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn registries_add_list_show_browse_rm() {
    let url = registry();
    let d = Daemon::start_with(Opts {
        config: Some("[vms]\nurl_allow = [\"127.0.0.1\"]\n".into()),
        ..Opts::default()
    });
    let added: TemplateRegistry = parse(&ok(cli(
        &d,
        &[
            "registries",
            "add",
            "vault",
            "--kind",
            "boxvault",
            &url,
            "--json",
        ],
    )));
    assert_eq!(added.name, "vault");
    assert!(!added.has_token);
    let list = ok(cli(&d, &["registries", "list"]));
    assert!(
        list.contains("vault") && list.contains("boxvault"),
        "{list}"
    );
    let shown: TemplateRegistry = parse(&ok(cli(&d, &["registry", "show", "vault", "--json"])));
    assert_eq!(shown.url, url);
    let browse = ok(cli(&d, &["registries", "browse", "vault"]));
    assert!(browse.contains("STARTcloud"), "{browse}");
    // A bad ORG/BOX@VERSION is refused by the CLI.
    let r = cli(
        &d,
        &["registries", "pull", "vault", "nobox", "--template", "t"],
    );
    assert_ne!(r.0, 0);
    assert!(r.2.contains("ORG/BOX@VERSION"), "{}", r.2);
    // rm asks first; without a terminal it needs --yes.
    let r = cli(&d, &["registries", "rm", "vault"]);
    assert_ne!(r.0, 0);
    assert!(r.2.contains("--yes"), "{}", r.2);
    ok(cli(&d, &["registries", "rm", "vault", "--yes"]));
    let list = ok(cli(&d, &["registries", "list", "--json"]));
    assert_eq!(list.trim(), "[]");
}
