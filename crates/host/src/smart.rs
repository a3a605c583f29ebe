//! Drive health and power: `smartctl -j` (SMART) and `hdparm` (power state, standby).
//!
//! Neither works on loop devices (`smartctl`: "Unable to detect device type"; `hdparm -C`:
//! "drive state is: unknown", exit 22), so the parsers are tested on recorded-format samples of
//! smartctl 7.x JSON in `tests/fixtures/smartctl/`.
//!
//! Waking: `smartctl -n standby` and `hdparm -C` (ATA CHECK POWER MODE) are answered by the
//! drive's controller without spinning the platters up; the kernel does not count these
//! pass-through commands in `/sys/block/X/stat`.

use std::time::Duration;

use hostplane_types::disks::{NvmeHealth, PowerState, SmartAttribute, SmartHealth, SmartReport};
use serde_json::Value;

use crate::command::{Cmd, CommandError, validate_path_arg};

/// What one smartctl run gave.
#[derive(Debug, Clone, PartialEq)]
pub enum SmartOutcome {
    Report(Box<SmartReport>),
    /// The drive is in standby/sleep and `-n standby` made smartctl leave it alone.
    Standby,
    /// smartctl cannot talk to this device (loop, virtio, …): its message.
    Unsupported(String),
}

fn u(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// Messages smartctl put in `smartctl.messages`.
fn messages(v: &Value) -> Vec<(String, String)> {
    v["smartctl"]["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["string"].as_str().unwrap_or_default().to_string(),
                        m["severity"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Classifies a `smartctl -j` document.
pub fn classify(v: &Value, disk: &str) -> SmartOutcome {
    let msgs = messages(v);
    if msgs.iter().any(|(s, _)| {
        let s = s.to_ascii_uppercase();
        (s.contains("STANDBY") || s.contains("SLEEP")) && s.contains("MODE")
    }) {
        return SmartOutcome::Standby;
    }
    let has_device_data = v.get("model_name").is_some()
        || v.get("smart_status").is_some()
        || v.get("ata_smart_attributes").is_some()
        || v.get("nvme_smart_health_information_log").is_some();
    if !has_device_data {
        let why = msgs
            .iter()
            .find(|(_, sev)| sev == "error")
            .or(msgs.first())
            .map(|(s, _)| s.clone())
            .unwrap_or_else(|| "smartctl returned no device data".into());
        return SmartOutcome::Unsupported(why);
    }
    SmartOutcome::Report(Box::new(parse_report(v, disk)))
}

/// Parses the device part of a `smartctl -j -a` document (ATA, NVMe or SCSI).
pub fn parse_report(v: &Value, disk: &str) -> SmartReport {
    let s = |k: &str| v[k].as_str().map(str::to_string);
    let mut attributes = Vec::new();
    let mut warnings = Vec::new();
    if let Some(table) = v["ata_smart_attributes"]["table"].as_array() {
        for a in table {
            let when = a["when_failed"]
                .as_str()
                .filter(|w| !w.is_empty())
                .map(str::to_string);
            let attr = SmartAttribute {
                id: u(&a["id"]).unwrap_or(0) as u32,
                name: a["name"].as_str().unwrap_or_default().to_string(),
                value: u(&a["value"]).unwrap_or(0) as u32,
                worst: u(&a["worst"]).unwrap_or(0) as u32,
                threshold: u(&a["thresh"]).unwrap_or(0) as u32,
                raw: u(&a["raw"]["value"]).unwrap_or(0),
                raw_string: a["raw"]["string"].as_str().unwrap_or_default().to_string(),
                prefailure: a["flags"]["prefailure"].as_bool().unwrap_or(false),
                when_failed: when.clone(),
            };
            if let Some(w) = when {
                warnings.push(format!(
                    "attribute {} {} failed {w} (value {}, threshold {})",
                    attr.id, attr.name, attr.value, attr.threshold
                ));
            }
            attributes.push(attr);
        }
    }
    let raw_of = |id: u32| attributes.iter().find(|a| a.id == id).map(|a| a.raw);
    let nvme = v
        .get("nvme_smart_health_information_log")
        .filter(|l| l.is_object())
        .map(|l| NvmeHealth {
            critical_warning: u(&l["critical_warning"]).unwrap_or(0),
            available_spare_percent: u(&l["available_spare"]).unwrap_or(0),
            available_spare_threshold_percent: u(&l["available_spare_threshold"]).unwrap_or(0),
            percentage_used: u(&l["percentage_used"]).unwrap_or(0),
            data_units_read: u(&l["data_units_read"]).unwrap_or(0),
            data_units_written: u(&l["data_units_written"]).unwrap_or(0),
            unsafe_shutdowns: u(&l["unsafe_shutdowns"]).unwrap_or(0),
            media_errors: u(&l["media_errors"]).unwrap_or(0),
            num_err_log_entries: u(&l["num_err_log_entries"]).unwrap_or(0),
        });
    if let Some(n) = &nvme {
        if n.critical_warning != 0 {
            warnings.push(format!(
                "NVMe critical warning 0x{:02x}{}",
                n.critical_warning,
                nvme_warning_text(n.critical_warning)
            ));
        }
        if n.media_errors > 0 {
            warnings.push(format!("{} media errors", n.media_errors));
        }
        if n.available_spare_percent < n.available_spare_threshold_percent {
            warnings.push(format!(
                "available spare {} % below threshold {} %",
                n.available_spare_percent, n.available_spare_threshold_percent
            ));
        }
    }
    let health = v["smart_status"]["passed"].as_bool().map(|p| {
        if p {
            SmartHealth::Passed
        } else {
            SmartHealth::Failed
        }
    });
    if health == Some(SmartHealth::Failed) {
        warnings.insert(0, "SMART overall-health self-assessment: FAILED".into());
    }
    let temperature = v["temperature"]["current"]
        .as_i64()
        .or_else(|| v["nvme_smart_health_information_log"]["temperature"].as_i64());
    SmartReport {
        disk: disk.to_string(),
        protocol: v["device"]["protocol"].as_str().map(str::to_string),
        model: s("model_name").or_else(|| s("scsi_model_name")),
        serial: s("serial_number"),
        firmware: s("firmware_version"),
        capacity: u(&v["user_capacity"]["bytes"]).or_else(|| u(&v["nvme_total_capacity"])),
        health,
        temperature_celsius: temperature,
        power_on_hours: u(&v["power_on_time"]["hours"]),
        power_cycles: u(&v["power_cycle_count"]),
        reallocated_sectors: raw_of(5),
        pending_sectors: raw_of(197),
        offline_uncorrectable: raw_of(198),
        attributes,
        nvme,
        warnings,
        exit_status: v["smartctl"]["exit_status"].as_i64().unwrap_or(0),
    }
}

fn nvme_warning_text(bits: u64) -> String {
    let names = [
        (0x01, "spare below threshold"),
        (0x02, "temperature out of range"),
        (0x04, "reliability degraded"),
        (0x08, "read-only"),
        (0x10, "volatile memory backup failed"),
    ];
    let list: Vec<&str> = names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if list.is_empty() {
        String::new()
    } else {
        format!(": {}", list.join(", "))
    }
}

/// Runs `smartctl -j` on `dev`. `full`: `-a` (all logs) rather than health and attributes.
/// `wake`: without `-n standby`, so a sleeping drive is spun up.
pub async fn smartctl(dev: &str, full: bool, wake: bool) -> Result<SmartOutcome, CommandError> {
    validate_path_arg("device", dev)?;
    let mut cmd = Cmd::new("smartctl").arg("-j");
    cmd = if full {
        cmd.arg("-a")
    } else {
        cmd.args(["-H", "-A"])
    };
    if !wake {
        cmd = cmd.args(["-n", "standby"]);
    }
    // The exit status is a bit mask that is non-zero for failing drives too; the JSON says
    // what happened.
    let out = cmd
        .arg(dev)
        .ok_codes(&(0..=255).collect::<Vec<i32>>())
        .timeout(Duration::from_secs(if wake { 60 } else { 20 }))
        .run()
        .await?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| CommandError::Parse {
        program: "smartctl".into(),
        message: e.to_string(),
    })?;
    Ok(classify(&v, dev))
}

/// Parses `hdparm -C` output (`drive state is:  active/idle`).
pub fn parse_hdparm_state(text: &str) -> PowerState {
    let Some(state) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("drive state is:"))
        .map(|s| s.trim().to_ascii_lowercase())
    else {
        return PowerState::Unknown;
    };
    if state.contains("standby") || state.contains("spindown") {
        PowerState::Standby
    } else if state.contains("sleep") {
        PowerState::Sleeping
    } else if state.contains("active") || state.contains("idle") || state.contains("spinup") {
        PowerState::Active
    } else {
        PowerState::Unknown
    }
}

/// `hdparm -C`: asks the drive without waking it. Unknown when hdparm fails or is missing.
pub async fn power_state(dev: &str) -> PowerState {
    if validate_path_arg("device", dev).is_err() {
        return PowerState::Unknown;
    }
    match Cmd::new("hdparm")
        .args(["-C", dev])
        .timeout(Duration::from_secs(10))
        .run_text()
        .await
    {
        Ok(t) => parse_hdparm_state(&t),
        Err(e) => {
            tracing::debug!(dev, error = %e, "hdparm -C failed");
            PowerState::Unknown
        }
    }
}

/// `hdparm -y`: spin the drive down now.
pub async fn standby(dev: &str) -> Result<(), CommandError> {
    validate_path_arg("device", dev)?;
    Cmd::new("hdparm")
        .args(["-y", dev])
        .timeout(Duration::from_secs(30))
        .run()
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdparm_states() {
        // Recorded on a SATA HDD and (last) on a loop device here.
        assert_eq!(
            parse_hdparm_state("\n/dev/sda:\n drive state is:  active/idle\n"),
            PowerState::Active
        );
        assert_eq!(
            parse_hdparm_state("\n/dev/sdb:\n drive state is:  standby\n"),
            PowerState::Standby
        );
        assert_eq!(
            parse_hdparm_state("\n/dev/sdc:\n drive state is:  sleeping\n"),
            PowerState::Sleeping
        );
        assert_eq!(
            parse_hdparm_state("\n/dev/sdd:\n drive state is:  idle_b\n"),
            PowerState::Active
        );
        assert_eq!(
            parse_hdparm_state("\n/dev/loop0:\n drive state is:  unknown\n"),
            PowerState::Unknown
        );
        assert_eq!(parse_hdparm_state(""), PowerState::Unknown);
    }

    #[test]
    fn nvme_warning_bits() {
        assert_eq!(nvme_warning_text(0), "");
        assert_eq!(
            nvme_warning_text(0x05),
            ": spare below threshold, reliability degraded"
        );
    }
}
