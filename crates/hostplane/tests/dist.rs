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
