//! The shipped systemd unit (`dist/systemd/hostplane.service`) passes `systemd-analyze verify`
//! with this build's binary in `ExecStart`, and keeps the settings the daemon relies on.

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
