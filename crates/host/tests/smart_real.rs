//! SMART parsers on real captured `smartctl --json` documents (`tests/fixtures/smartctl/real/`).
//!
//! smartctl cannot talk to this machine's loop devices, so these documents were captured on
//! real drives by users of the Scrutiny project (AnalogJ/scrutiny, MIT) and are stored here
//! unmodified (see `tests/fixtures/README.md`). They cover smartctl 7.0 and 7.1, a Windows
//! build, a USB (JMicron) bridge, a failing ATA drive and an NVMe drive with media errors.
//! Every expected value below is read off the fixture.

use hostplane_host::smart::{SmartOutcome, classify};
use hostplane_types::disks::{NvmeHealth, SmartHealth, SmartReport};

fn report(name: &str, dev: &str) -> SmartReport {
    let path = format!(
        "{}/tests/fixtures/smartctl/real/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    match classify(&v, dev) {
        SmartOutcome::Report(r) => *r,
        other => panic!("{name}: expected a report, got {other:?}"),
    }
}

/// "X SSD 850 PRO 128GB" SATA SSD (the vendor name was replaced by "X" in the capture; WWN
/// OUI 9528 is Samsung's), smartctl 7.0 on Windows, healthy. Has no attributes 197/198, so those stay unknown rather than 0.
#[test]
fn real_ata_ssd_healthy() {
    let r = report("smart-ata2.json", "/dev/sda");
    assert_eq!(r.disk, "/dev/sda");
    assert_eq!(r.protocol.as_deref(), Some("ATA"));
    assert_eq!(r.model.as_deref(), Some("X SSD 850 PRO 128GB"));
    assert_eq!(r.serial.as_deref(), Some("S24ZN902000L"));
    assert_eq!(r.firmware.as_deref(), Some("EB6Q"));
    assert_eq!(r.capacity, Some(128035676160));
    assert_eq!(r.health, Some(SmartHealth::Passed));
    assert_eq!(r.temperature_celsius, Some(32));
    assert_eq!(r.power_on_hours, Some(846));
    assert_eq!(r.power_cycles, Some(168));
    assert_eq!(r.reallocated_sectors, Some(0));
    assert_eq!(r.pending_sectors, None);
    assert_eq!(r.offline_uncorrectable, None);
    let ids: Vec<u32> = r.attributes.iter().map(|a| a.id).collect();
    assert_eq!(
        ids,
        [
            5, 9, 12, 177, 179, 181, 182, 183, 187, 190, 195, 199, 235, 241
        ]
    );
    let airflow = r.attributes.iter().find(|a| a.id == 190).unwrap();
    assert_eq!(airflow.name, "Airflow_Temperature_Cel");
    assert_eq!(
        (airflow.value, airflow.worst, airflow.threshold, airflow.raw),
        (68, 61, 0, 32)
    );
    let written = r.attributes.iter().find(|a| a.id == 241).unwrap();
    assert_eq!(written.raw, 1047174917);
    assert_eq!(written.raw_string, "1047174917");
    let wear = r.attributes.iter().find(|a| a.id == 177).unwrap();
    assert_eq!((wear.value, wear.threshold, wear.prefailure), (99, 0, true));
    assert!(r.attributes.iter().all(|a| a.when_failed.is_none()));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert!(r.nvme.is_none());
    assert_eq!(r.exit_status, 0);
}

/// Hitachi HDS721050DLE630 behind a USB JMicron bridge (`device.type` "usbjmicron"),
/// smartctl 7.1 on Linux: overall health FAILED, Reallocated_Sector_Ct failing now.
#[test]
fn real_ata_hdd_failing_behind_usb_bridge() {
    let r = report("smart-fail2.json", "/dev/sdc");
    assert_eq!(r.disk, "/dev/sdc");
    assert_eq!(r.protocol.as_deref(), Some("ATA"));
    assert_eq!(r.model.as_deref(), Some("Hitachi HDS721050DLE630"));
    assert_eq!(r.serial.as_deref(), Some("MSK423Y20S3HBC"));
    assert_eq!(r.firmware.as_deref(), Some("MS1OA650"));
    assert_eq!(r.capacity, Some(500107862016));
    assert_eq!(r.health, Some(SmartHealth::Failed));
    assert_eq!(r.temperature_celsius, Some(25));
    assert_eq!(r.power_on_hours, Some(65592));
    assert_eq!(r.power_cycles, Some(86));
    assert_eq!(r.reallocated_sectors, Some(1975));
    assert_eq!(r.pending_sectors, Some(8));
    assert_eq!(r.offline_uncorrectable, Some(0));
    assert_eq!(r.attributes.len(), 17);

    let realloc = r.attributes.iter().find(|a| a.id == 5).unwrap();
    assert_eq!(realloc.name, "Reallocated_Sector_Ct");
    assert_eq!(
        (
            realloc.value,
            realloc.worst,
            realloc.threshold,
            realloc.raw,
            realloc.prefailure
        ),
        (1, 1, 5, 1975, true)
    );
    assert_eq!(realloc.when_failed.as_deref(), Some("now"));
    // Only attribute 5 has a when_failed in this document.
    let failed: Vec<u32> = r
        .attributes
        .iter()
        .filter(|a| a.when_failed.is_some())
        .map(|a| a.id)
        .collect();
    assert_eq!(failed, [5]);

    // Temperature attribute: raw number packs min/max; the string is what smartctl prints.
    let temp = r.attributes.iter().find(|a| a.id == 194).unwrap();
    assert_eq!(temp.raw, 167504969753);
    assert_eq!(temp.raw_string, "25 (Min/Max 19/39)");
    let spin_up = r.attributes.iter().find(|a| a.id == 3).unwrap();
    assert_eq!(spin_up.raw_string, "180 (Average 187)");

    assert_eq!(
        r.warnings,
        [
            "SMART overall-health self-assessment: FAILED",
            "attribute 5 Reallocated_Sector_Ct failed now (value 1, threshold 5)",
        ]
    );
    assert!(r.nvme.is_none());
    // 216 = bits 3 (DISK FAILING), 4 (prefail attribute at threshold), 6 (error log has
    // errors: 56 here), 7 (self-test log has errors: 3 read failures here).
    assert_eq!(r.exit_status, 216);
    assert_eq!(r.exit_status, (1 << 3) | (1 << 4) | (1 << 6) | (1 << 7));
}

/// Intel SSDPEKNW010T8 NVMe, smartctl 7.1, healthy. The capture has no
/// `nvme_total_capacity`; the capacity comes from `user_capacity`.
#[test]
fn real_nvme_healthy() {
    let r = report("smart-nvme.json", "/dev/nvme0");
    assert_eq!(r.protocol.as_deref(), Some("NVMe"));
    assert_eq!(r.model.as_deref(), Some("INTEL SSDPEKNW010T8"));
    assert_eq!(r.serial.as_deref(), Some("BTNH93710FS91P0B"));
    assert_eq!(r.firmware.as_deref(), Some("002C"));
    assert_eq!(r.capacity, Some(1024209543168));
    assert_eq!(r.health, Some(SmartHealth::Passed));
    assert_eq!(r.temperature_celsius, Some(36));
    assert_eq!(r.power_on_hours, Some(2401));
    assert_eq!(r.power_cycles, Some(266));
    assert_eq!(
        r.nvme,
        Some(NvmeHealth {
            critical_warning: 0,
            available_spare_percent: 100,
            available_spare_threshold_percent: 10,
            percentage_used: 0,
            data_units_read: 9511859,
            data_units_written: 7773431,
            unsafe_shutdowns: 43,
            media_errors: 0,
            num_err_log_entries: 0,
        })
    );
    assert!(r.attributes.is_empty());
    assert_eq!(r.reallocated_sectors, None);
    assert_eq!(r.pending_sectors, None);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.exit_status, 0);
}

/// Samsung SSD 970 EVO 500GB NVMe, smartctl 7.0 (`-x`): the drive still reports PASSED,
/// but it has logged 7 media errors, which must surface as a warning.
#[test]
fn real_nvme_with_media_errors() {
    let r = report("smart-nvme-failed.json", "/dev/nvme0");
    assert_eq!(r.protocol.as_deref(), Some("NVMe"));
    assert_eq!(r.model.as_deref(), Some("Samsung SSD 970 EVO 500GB"));
    assert_eq!(r.serial.as_deref(), Some("S466NX0M776250H"));
    assert_eq!(r.firmware.as_deref(), Some("2B2QEXE7"));
    assert_eq!(r.capacity, Some(500107862016));
    assert_eq!(r.health, Some(SmartHealth::Passed));
    assert_eq!(r.temperature_celsius, Some(35));
    assert_eq!(r.power_on_hours, Some(12798));
    assert_eq!(r.power_cycles, Some(25));
    assert_eq!(
        r.nvme,
        Some(NvmeHealth {
            critical_warning: 0,
            available_spare_percent: 99,
            available_spare_threshold_percent: 10,
            percentage_used: 3,
            data_units_read: 17176794,
            data_units_written: 65602088,
            unsafe_shutdowns: 10,
            media_errors: 7,
            num_err_log_entries: 62,
        })
    );
    assert!(r.attributes.is_empty());
    assert_eq!(r.warnings, ["7 media errors"]);
    assert_eq!(r.exit_status, 0);
}
