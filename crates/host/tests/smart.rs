//! SMART parsers on saved `smartctl -j` documents (`tests/fixtures/smartctl/`).
//!
//! smartctl cannot run on this machine's loop devices ("Unable to detect device type"), so the
//! ATA and NVMe documents, healthy and failing, are recorded-format samples: written in the
//! exact smartctl 7.x JSON layout (json_format_version 1.0) of real drives of those models,
//! not captured here. `loop-unsupported.json` was captured on this machine.

use hostplane_host::smart::{SmartOutcome, classify};
use hostplane_types::disks::SmartHealth;

fn load(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/tests/fixtures/smartctl/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn report(name: &str, dev: &str) -> hostplane_types::disks::SmartReport {
    match classify(&load(name), dev) {
        SmartOutcome::Report(r) => *r,
        other => panic!("{name}: expected a report, got {other:?}"),
    }
}

#[test]
fn ata_hdd_healthy() {
    let r = report("ata-hdd-healthy.json", "/dev/sda");
    assert_eq!(r.protocol.as_deref(), Some("ATA"));
    assert_eq!(r.model.as_deref(), Some("WDC WD40EFRX-68N32N0"));
    assert_eq!(r.serial.as_deref(), Some("WD-WCC7K4ZJ5R2X"));
    assert_eq!(r.firmware.as_deref(), Some("82.00A82"));
    assert_eq!(r.capacity, Some(4000787030016));
    assert_eq!(r.health, Some(SmartHealth::Passed));
    assert_eq!(r.temperature_celsius, Some(34));
    assert_eq!(r.power_on_hours, Some(25341));
    assert_eq!(r.power_cycles, Some(139));
    assert_eq!(r.reallocated_sectors, Some(0));
    assert_eq!(r.pending_sectors, Some(0));
    assert_eq!(r.attributes.len(), 16);
    let a = r.attributes.iter().find(|a| a.id == 1).unwrap();
    assert_eq!(
        (a.value, a.worst, a.threshold, a.prefailure),
        (200, 200, 51, true)
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.exit_status, 0);
    assert!(r.nvme.is_none());
}

#[test]
fn ata_hdd_failing() {
    let r = report("ata-hdd-failing.json", "/dev/sdc");
    assert_eq!(r.health, Some(SmartHealth::Failed));
    assert_eq!(r.reallocated_sectors, Some(61200));
    assert_eq!(r.pending_sectors, Some(4256));
    assert_eq!(r.offline_uncorrectable, Some(4256));
    assert_eq!(r.temperature_celsius, Some(41));
    let realloc = r.attributes.iter().find(|a| a.id == 5).unwrap();
    assert_eq!(realloc.when_failed.as_deref(), Some("now"));
    let airflow = r.attributes.iter().find(|a| a.id == 190).unwrap();
    assert_eq!(airflow.when_failed.as_deref(), Some("past"));
    assert_eq!(airflow.raw_string, "41 (Min/Max 29/41)");
    assert!(r.warnings[0].contains("FAILED"), "{:?}", r.warnings);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("Reallocated_Sector_Ct failed now"))
    );
    // Bits 3 (DISK FAILING), 4 (prefail attribute at threshold), 6 (error log), 7 (self-test).
    assert_eq!(r.exit_status, 216);
}

#[test]
fn nvme_healthy() {
    let r = report("nvme-healthy.json", "/dev/nvme0");
    assert_eq!(r.protocol.as_deref(), Some("NVMe"));
    assert_eq!(r.model.as_deref(), Some("Samsung SSD 980 PRO 1TB"));
    assert_eq!(r.health, Some(SmartHealth::Passed));
    assert_eq!(r.temperature_celsius, Some(38));
    assert_eq!(r.power_on_hours, Some(5122));
    let n = r.nvme.unwrap();
    assert_eq!(n.percentage_used, 2);
    assert_eq!(n.available_spare_percent, 100);
    assert_eq!(n.media_errors, 0);
    assert_eq!(n.unsafe_shutdowns, 27);
    assert!(r.attributes.is_empty());
    assert!(r.warnings.is_empty());
}

#[test]
fn nvme_failing() {
    let r = report("nvme-failing.json", "/dev/nvme1");
    assert_eq!(r.health, Some(SmartHealth::Failed));
    let n = r.nvme.as_ref().unwrap();
    assert_eq!(n.critical_warning, 5);
    assert_eq!(n.media_errors, 1523);
    assert_eq!(n.percentage_used, 112);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("spare below threshold, reliability degraded")),
        "{:?}",
        r.warnings
    );
    assert!(r.warnings.iter().any(|w| w == "1523 media errors"));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("available spare 4 % below threshold 10 %"))
    );
}

#[test]
fn standby_drive_is_left_alone() {
    assert_eq!(
        classify(&load("ata-ssd-standby.json"), "/dev/sdb"),
        SmartOutcome::Standby
    );
}

#[test]
fn loop_device_is_unsupported() {
    match classify(&load("loop-unsupported.json"), "/dev/loop0") {
        SmartOutcome::Unsupported(why) => {
            assert_eq!(why, "/dev/loop0: Unable to detect device type")
        }
        other => panic!("{other:?}"),
    }
}

/// The real smartctl here, on a loop device the test attaches: it answers "Unable to detect
/// device type", which the classifier must map to Unsupported (not a crash, not a report).
#[tokio::test]
async fn live_smartctl_on_a_loop_device() {
    let dir = tempfile::Builder::new()
        .prefix("hp-test-")
        .tempdir()
        .unwrap();
    let img = dir.path().join("d.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let dev = hostplane_host::Cmd::new("losetup")
        .args(["-f", "--show"])
        .arg(&img)
        .run_text()
        .await
        .expect("losetup (util-linux) is needed")
        .trim()
        .to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.0])
                .status();
        }
    }
    let _guard = Detach(dev.clone());
    let out = hostplane_host::smart::smartctl(&dev, true, false)
        .await
        .expect("smartctl (smartmontools) is needed");
    assert!(
        matches!(out, SmartOutcome::Unsupported(ref w) if w.contains("Unable to detect device type")),
        "{out:?}"
    );
    assert_eq!(
        hostplane_host::smart::power_state(&dev).await,
        hostplane_types::disks::PowerState::Unknown
    );
}
