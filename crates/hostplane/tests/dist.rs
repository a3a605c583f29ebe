//! What ships beside the code: the systemd unit (`dist/systemd/hostplane.service`) passes
//! `systemd-analyze verify` with this build's binary in `ExecStart` and keeps the settings the
//! daemon relies on; the completions and man pages the Debian package carries cover the command
//! tree; the README links to nothing outside the repository. (The package itself: tests/deb.rs.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hostplane");

#[test]
fn systemd_unit_verifies_and_keeps_guests_alive() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dist/systemd/hostplane.service"
    ))
    .unwrap();
    // Stopping the daemon must not kill the QEMU guests it started (docs/vms.md).
    assert!(text.lines().any(|l| l.trim() == "KillMode=process"));
    assert!(text.contains("ExecStart=/usr/bin/hostplane serve\n"));
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let unit = dir.path().join("hostplane.service");
    std::fs::write(&unit, text.replace("/usr/bin/hostplane", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (package systemd) is needed");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README links to nothing outside the repository: every Markdown link is a file of the
/// checkout, and URLs name only the local daemon (a reader may have no network, and a path
/// outside the checkout does not exist for them).
#[test]
fn readme_links_stay_inside_the_repository() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut links = 0;
    for part in readme.split("](").skip(1) {
        let target = part.split(')').next().unwrap();
        let file = target.split('#').next().unwrap();
        assert!(
            !target.contains("://") && !file.starts_with('/') && !file.contains(".."),
            "README links outside the repository: {target}"
        );
        assert!(
            root.join(file).exists(),
            "README links to a missing file: {file}"
        );
        links += 1;
    }
    assert!(links > 5, "no links found: the check would check nothing");
    for word in readme.split(|c: char| c.is_whitespace() || "`()<>\"'".contains(c)) {
        if let Some((_, rest)) = word.split_once("://") {
            let host = rest.split(['/', ':']).next().unwrap();
            assert!(
                ["127.0.0.1", "localhost", "host", "HOST"].contains(&host),
                "README names a remote address: {word}"
            );
        }
        assert!(
            !word.starts_with("../"),
            "README names a path outside the repository: {word}"
        );
    }
}

/// What the Debian package ships besides the binary is generated from the command tree: a
/// completion script per shell, and a man page per subcommand (the daemon's with its config
/// file keys and environment variables).
#[test]
fn completions_and_man_pages_cover_the_command_tree() {
    for (shell, marker) in [
        ("bash", "_hostplane()"),
        ("zsh", "#compdef hostplane"),
        ("fish", "complete -c hostplane"),
    ] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "completions {shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains(marker),
            "completions {shell}: {marker} missing"
        );
        assert!(
            text.contains("serve") && text.contains("data-dir"),
            "{shell}"
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let out = dir.path().join("man");
    let status = Command::new(BIN)
        .args(["man", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    // One page per subcommand the top-level help lists (and per nested one).
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 8, "{commands:?}");
    for c in &commands {
        let page = out.join(format!("hostplane-{c}.1"));
        assert!(page.exists(), "no man page for {c}");
    }
    assert!(out.join("hostplane.1").exists());
    assert!(out.join("hostplane-jobs-list.1").exists());
    let serve = std::fs::read_to_string(out.join("hostplane-serve.1")).unwrap();
    for needle in ["CONFIGURATION FILE", "HOSTPLANE_CONFIG", "replay_window"] {
        assert!(serve.contains(needle), "hostplane-serve.1 lacks {needle}");
    }
}
