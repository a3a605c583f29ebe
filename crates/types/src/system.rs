//! System area: what this host can do (`GET /system/capabilities`) and the self-test job
//! (`POST /system/selftest`). The probe itself lives in `hostplane-host::capabilities`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod backup;
pub mod certificate;
pub mod license;
pub mod storage;
pub mod update;

/// What this host has: kernel, init system, cgroup layout, usable virtualization and the
/// external tools each hostplane area relies on. Probed live on every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Capabilities {
    /// Host name (`uname -n`).
    pub hostname: String,
    /// Kernel release (`uname -r`), e.g. `6.1.0-18-amd64`.
    pub kernel: String,
    /// Machine architecture (`uname -m`), e.g. `x86_64`.
    pub arch: String,
    /// `PRETTY_NAME` from `/etc/os-release`, when present.
    pub os: Option<String>,
    /// Whether the daemon runs with effective UID 0.
    pub is_root: bool,
    /// Init system: `systemd` when PID 1 is systemd and `/run/systemd/system` exists,
    /// otherwise the command name of PID 1 (or `unknown` when unreadable).
    pub init: String,
    /// cgroup layout: `v2` (unified), `hybrid` (v1 controllers plus a cgroup2 mount at
    /// `/sys/fs/cgroup/unified`), `v1`, or `none` when nothing is mounted at `/sys/fs/cgroup`.
    pub cgroup: String,
    /// Hardware virtualization for VMs.
    pub virtualization: Virtualization,
    /// External programs hostplane uses, found or not.
    pub tools: Vec<Tool>,
    /// When this probe ran (RFC 3339, UTC).
    pub probed_at: String,
    /// How this daemon is allowed to act on the host (its settings, not probed).
    #[serde(default)]
    pub host_actions: HostActions,
}

/// What the daemon's settings let it do to the host it runs on: the top-level `sandbox`
/// setting and `[services] change_units` (docs/testing.md, `hostplane serve --help`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostActions {
    /// `sandbox` is on: generated system files go under `system_root` (not `/`), the host is
    /// never rebooted without `admin.reboot_command`, and units are changed only with
    /// `services.change_units = true`. Tests and fuzzing run this way.
    pub sandbox: bool,
    /// Where generated system files (mount units, share configs) go.
    pub system_root: String,
    /// `POST /system/reboot` acts: `command` (`admin.reboot_command`), `systemd` (the host's
    /// systemd, else `reboot`), or `refused` (sandbox without a command).
    pub reboot: String,
    /// Service start/stop/restart/enable/disable reach systemd (`services.change_units`).
    pub change_units: bool,
}

/// Whether QEMU can use KVM here. `/dev/kvm` alone is not trusted: a nested PVM host has the
/// device but cannot run ordinary guest kernels at speed, so VMs must use TCG there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Virtualization {
    /// `/dev/kvm` exists.
    pub kvm_device: bool,
    /// Hardware virtualization CPU flags present in `/proc/cpuinfo` (`vmx`, `svm`), if any.
    pub cpu_flags: Vec<String>,
    /// The PVM (pagetable-based nested KVM) module is loaded (`/sys/module/kvm_pvm` exists).
    pub pvm: bool,
    /// KVM acceleration is usable: device present, `vmx` or `svm` present, and not PVM.
    pub kvm_usable: bool,
    /// Human explanation of the decision.
    pub reason: String,
}

/// One external program hostplane runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tool {
    /// Program name, e.g. `lsblk`.
    pub name: String,
    /// The hostplane area that needs it: `disks`, `pools`, `shares`, `containers`, `vms`,
    /// `network`, `services` or `system`.
    pub area: String,
    /// Absolute path of the program, when found.
    pub path: Option<String>,
    /// Whether the program was found on the daemon's `PATH` (or in `/usr/sbin`, `/sbin`).
    pub found: bool,
    /// First line of the program's version output, when it could be obtained.
    pub version: Option<String>,
}

/// Body of `POST /system/selftest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelftestRequest {
    /// Pause between steps, in milliseconds (at most 60000). Useful to watch the job's
    /// progress and to test cancellation.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 60000)]
    pub step_delay_ms: Option<u64>,
}

/// One step of the self-test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SelftestStep {
    /// Step name, e.g. `store`, `disk_free`, `command_runner`.
    pub name: String,
    /// Whether the step passed.
    pub ok: bool,
    /// What was checked and what was seen.
    pub detail: String,
}

/// Result of the self-test job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SelftestResult {
    /// Steps in the order they ran.
    pub steps: Vec<SelftestStep>,
    /// `true` when every step passed.
    pub ok: bool,
}
