//! Virtual machines (`/api/v1/vms`): QEMU guests hostplane runs itself and drives over QMP.
//!
//! A VM is defined (`POST /vms`, [`VmCreate`]), then started, shut down, modified, cloned,
//! snapshotted, exported. The definition is stored; what runs is a QEMU process whose status
//! comes from QMP events. Paths a definition names (existing images, ISOs, kernels) must lie in
//! the images directory or one of the configured `vms.allowed_paths`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The rule of `hostplane_host::validate_name` (VM, snapshot and template names) as a regular
/// expression, with [`NAME_MAX_LEN`]: starts with a letter or digit, then `A-Za-z0-9_.-`, no
/// `..`. `#[schema(pattern)]` takes only a literal, so the attributes below repeat it; a test
/// checks that they match this constant.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$";
/// Longest VM, snapshot or template name.
pub const NAME_MAX_LEN: usize = 64;
/// Documented upper bounds (422 beyond them). Within them a value can still exceed what this
/// host has (CPUs, memory) or `vms.max_disk_bytes`: 409 `exceeds_host`. The `#[schema]`
/// attributes repeat these numbers (literals only); a test checks them.
pub const MAX_VCPUS: u32 = 1024;
pub const MAX_MEMORY_MIB: u64 = 16 << 20;
pub const MAX_DISK_BYTES: u64 = 4 << 40;

/// A boot order: each device class at most once (`uniqueItems`, which the derive cannot say).
fn boot_array(nullable: bool) -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, SchemaType, Type};
    let ty = if nullable {
        SchemaType::from_iter([Type::Array, Type::Null])
    } else {
        SchemaType::new(Type::Array)
    };
    ArrayBuilder::new()
        .schema_type(ty)
        .items(utoipa::openapi::Ref::from_schema_name("BootDevice"))
        .unique_items(true)
        .max_items(Some(3))
        .description(Some("Boot order, each device class at most once."))
        .build()
}
fn boot_schema() -> utoipa::openapi::schema::Array {
    boot_array(false)
}
fn boot_schema_nullable() -> utoipa::openapi::schema::Array {
    boot_array(true)
}

/// Integer fields also accept a JSON number with a zero fraction (`171.0`): JSON Schema calls
/// it an integer, so clients (and the fuzzer) may send it.
mod whole {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    fn num<E: Error>(v: serde_json::Value, max: u64) -> Result<u64, E> {
        let n = match &v {
            serde_json::Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= max as f64)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        n.filter(|n| *n <= max)
            .ok_or_else(|| E::custom(format!("{v}: expected a whole number 0 .. {max}")))
    }
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        num(serde_json::Value::deserialize(d)?, u64::MAX)
    }
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<serde_json::Value>::deserialize(d)?
            .map(|v| num(v, u64::MAX))
            .transpose()
    }
    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Option::<serde_json::Value>::deserialize(d)?
            .map(|v| num(v, u32::MAX.into()).map(|n| n as u32))
            .transpose()
    }
}

/// Which accelerator QEMU uses. `auto` picks KVM only when the capability probe says it is
/// really usable (hardware virtualization, not PVM); otherwise TCG (software emulation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// QEMU machine type: `pc` (i440FX, ACPI PCI hot-plug on the root bus) or `q35` (PCIe; spare
/// root ports are added for hot-plug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MachineType {
    #[default]
    Pc,
    Q35,
}

/// Firmware: SeaBIOS, or UEFI (OVMF; 503 `ovmf_missing` at start when not installed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    #[default]
    Bios,
    Uefi,
}

/// How a disk is attached to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskBus {
    /// virtio-blk (hot-pluggable).
    #[default]
    Virtio,
    /// AHCI (not hot-pluggable: added at next boot).
    Sata,
    /// virtio-scsi (hot-pluggable when the VM started with a SCSI controller).
    Scsi,
}

/// Image format of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    #[default]
    Qcow2,
    Raw,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

/// Network backend of a NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NicMode {
    /// QEMU user-mode networking (NAT inside QEMU; no host configuration).
    #[default]
    User,
    /// A tap device on a host bridge (`bridge` names it), through qemu-bridge-helper.
    Bridge,
}

/// Emulated NIC model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NicModel {
    #[default]
    Virtio,
    E1000,
}

/// A boot device class, in boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BootDevice {
    Disk,
    Cdrom,
    Network,
}

/// How a disk is copied for a clone (ZoneweaverAPI's strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CloneStrategy {
    /// An independent copy of every disk.
    #[default]
    Full,
    /// A qcow2 overlay on a shared, read-only base (the source's disks become overlays on the
    /// same base, so neither side changes the other).
    Thin,
}

/// Run state, from QMP events and the QEMU process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VmStatus {
    /// No QEMU process.
    Stopped,
    /// QEMU is starting (QMP not answered yet).
    Starting,
    Running,
    /// vCPUs stopped (`pause`, or an I/O error).
    Paused,
    /// An ACPI shutdown was requested and the guest has not powered off yet.
    ShuttingDown,
}

/// A disk of a new VM, or one added to a VM. Give `size_bytes` (a new empty image) or `image`
/// (an existing image file, used in place).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskRequest {
    /// Size of a new empty disk, in bytes (1 MiB .. 4 TiB; more than `vms.max_disk_bytes`:
    /// 409 `exceeds_host`).
    #[serde(default, deserialize_with = "whole::opt_u64")]
    #[schema(minimum = 1048576, maximum = 4398046511104_u64)]
    pub size_bytes: Option<u64>,
    /// Path of an existing image in the images directory or an allowed path.
    #[serde(default)]
    pub image: Option<String>,
    /// Format of a new disk (default qcow2); for an existing image, detected when absent.
    #[serde(default)]
    pub format: Option<DiskFormat>,
    #[serde(default)]
    pub bus: Option<DiskBus>,
    /// Where a new disk's file goes (the rule of [`VmCreate::storage`]); default: the VM's
    /// `storage` when creating a VM, `[vms] default_storage` when adding a disk.
    #[serde(default)]
    #[schema(
        pattern = "^(images|[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?/[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?)$",
        max_length = 129
    )]
    pub storage: Option<String>,
}

/// A CD-ROM drive; `iso` empty means an empty tray.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CdromRequest {
    /// Path of an ISO image in the images directory or an allowed path.
    #[serde(default)]
    pub iso: Option<String>,
}

/// Most port forwards one VM may have (all NICs together).
pub const MAX_PORT_FORWARDS: usize = 32;

pub use crate::network::ForwardProtocol;

fn tcp() -> ForwardProtocol {
    ForwardProtocol::Tcp
}

/// A host port forwarded to a port of the guest, on a user-mode NIC (QEMU `hostfwd`).
///
/// The host side is always bound on 127.0.0.1, never on a routable address: QEMU's user-mode
/// stack binds the socket itself, in the daemon's process, so the host firewall (which
/// filters forwarded and bridged traffic) would not stand between the network and a guest
/// port forwarded on `0.0.0.0`. On loopback only the host itself (hostplane's provisioning
/// `ssh` transport, an operator on the host) reaches the guest; publish a guest service on
/// the network with a bridge NIC instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NicPortForward {
    /// Default `tcp`.
    #[serde(default = "tcp")]
    pub protocol: ForwardProtocol,
    /// Port on the host's 127.0.0.1 (1024–65535: no privileged port; unique per protocol
    /// within the VM).
    #[schema(minimum = 1024, maximum = 65535)]
    pub host_port: u16,
    /// Port in the guest (1–65535), on the address QEMU's DHCP gives it (10.0.2.15).
    #[schema(minimum = 1, maximum = 65535)]
    pub guest_port: u16,
}

/// A network interface.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NicRequest {
    #[serde(default)]
    pub mode: NicMode,
    /// Host bridge for `mode: bridge`.
    #[serde(default)]
    pub bridge: Option<String>,
    /// MAC address (`52:54:00:xx:xx:xx` made up when absent).
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub model: NicModel,
    /// Host ports (on 127.0.0.1) forwarded to guest ports; `mode: user` only.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub port_forwards: Vec<NicPortForward>,
}

/// cloud-init NoCloud settings: written to a seed ISO (volume `cidata`) attached as a CD-ROM.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudInit {
    /// `user-data` (e.g. `#cloud-config ...`), at most 64 KiB.
    pub user_data: String,
    /// `meta-data`; default `instance-id: <vm id>` and `local-hostname: <vm name>`.
    #[serde(default)]
    pub meta_data: Option<String>,
    /// `network-config` (version 1 or 2), optional.
    #[serde(default)]
    pub network_config: Option<String>,
}

/// `POST /api/v1/vms`: define a VM.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmCreate {
    /// Unique name: 1-64 of `A-Za-z0-9_.-`, starting with a letter or digit, without `..`
    /// (`templates` and names ending in `.tar.zst` are reserved).
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub name: String,
    /// Virtual CPUs; default 1. More than the host's CPUs: 409 `exceeds_host`.
    #[serde(default, deserialize_with = "whole::opt_u32")]
    #[schema(minimum = 1, maximum = 1024)]
    pub vcpus: Option<u32>,
    /// Memory in MiB; default 512. More than the host's memory: 409 `exceeds_host`.
    #[serde(default, deserialize_with = "whole::opt_u64")]
    #[schema(minimum = 16, maximum = 16777216)]
    pub memory_mib: Option<u64>,
    #[serde(default)]
    pub machine: Option<MachineType>,
    #[serde(default)]
    pub firmware: Option<Firmware>,
    #[serde(default)]
    pub accelerator: Option<Accelerator>,
    /// At most 16 (a `template` takes one).
    #[serde(default)]
    #[schema(max_items = 16)]
    pub disks: Vec<DiskRequest>,
    /// At most 2 (`cloud_init` takes one).
    #[serde(default)]
    #[schema(max_items = 2)]
    pub cdroms: Vec<CdromRequest>,
    #[serde(default)]
    #[schema(max_items = 8)]
    pub nics: Vec<NicRequest>,
    /// Boot order, each class at most once; default `[disk, cdrom]`.
    #[serde(default)]
    #[schema(schema_with = boot_schema)]
    pub boot: Vec<BootDevice>,
    /// Direct kernel boot: the kernel image (images directory or an allowed path).
    #[serde(default)]
    pub kernel: Option<String>,
    /// Direct kernel boot: the initrd.
    #[serde(default)]
    pub initrd: Option<String>,
    /// Direct kernel boot: the kernel command line.
    #[serde(default)]
    pub cmdline: Option<String>,
    /// Start this VM when hostplane starts.
    #[serde(default)]
    pub autostart: bool,
    /// Attach a NoCloud seed with these settings.
    #[serde(default)]
    pub cloud_init: Option<CloudInit>,
    /// Create the first disk from this template (`GET /vms/templates`).
    #[serde(default)]
    pub template: Option<String>,
    /// How the template's disk is copied; default `full`.
    #[serde(default)]
    pub clone: Option<CloneStrategy>,
    /// Where the new disks' files go: `images` (the images directory) or `<pool>/<dataset>`
    /// (a dataset of a mounted pool, which then refuses to go away while the VM exists: 409
    /// `in_use`). Default `[vms] default_storage`.
    #[serde(default)]
    #[schema(
        pattern = "^(images|[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?/[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?)$",
        max_length = 129
    )]
    pub storage: Option<String>,
}

/// `PATCH /api/v1/vms/{id}`: settings applied at the next boot (and stored at once).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmUpdate {
    /// Virtual CPUs. More than the host's CPUs: 409 `exceeds_host`.
    #[serde(default, deserialize_with = "whole::opt_u32")]
    #[schema(minimum = 1, maximum = 1024)]
    pub vcpus: Option<u32>,
    /// Memory in MiB. More than the host's memory: 409 `exceeds_host`.
    #[serde(default, deserialize_with = "whole::opt_u64")]
    #[schema(minimum = 16, maximum = 16777216)]
    pub memory_mib: Option<u64>,
    #[serde(default)]
    pub autostart: Option<bool>,
    #[serde(default)]
    pub accelerator: Option<Accelerator>,
    /// Boot order, each class at most once.
    #[serde(default)]
    #[schema(schema_with = boot_schema_nullable)]
    pub boot: Option<Vec<BootDevice>>,
    /// Empty string removes the kernel (and direct boot).
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub initrd: Option<String>,
    #[serde(default)]
    pub cmdline: Option<String>,
}

/// A disk of a VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmDisk {
    /// Stable number of this disk in the VM (`/vms/{id}/disks/{n}`); never reused.
    pub index: u32,
    pub path: String,
    pub format: DiskFormat,
    pub bus: DiskBus,
    /// Virtual size in bytes (as last seen).
    pub size_bytes: u64,
    /// Backing file of a thin disk.
    #[serde(default)]
    pub backing: Option<String>,
    /// Whether deleting the VM deletes this file (false for images used in place).
    #[serde(default)]
    pub owned: bool,
    /// Where the file is: `images` (the images directory) or `<pool>/<dataset>`; absent for
    /// a file elsewhere (an image used in place under an allowed path). Derived from `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

/// A CD-ROM drive of a VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmCdrom {
    pub index: u32,
    /// The ISO in the tray; none = empty.
    #[serde(default)]
    pub iso: Option<String>,
    /// The NoCloud seed hostplane made for this VM.
    #[serde(default)]
    pub cloud_init: bool,
}

/// A NIC of a VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmNic {
    pub index: u32,
    pub mode: NicMode,
    #[serde(default)]
    pub bridge: Option<String>,
    pub mac: String,
    pub model: NicModel,
    /// Host ports on 127.0.0.1 forwarded to guest ports (`mode: user`).
    #[serde(default)]
    pub port_forwards: Vec<NicPortForward>,
}

/// A virtual machine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Vm {
    pub id: String,
    pub name: String,
    pub href: String,
    pub status: VmStatus,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub machine: MachineType,
    pub firmware: Firmware,
    pub accelerator: Accelerator,
    /// The accelerator the running QEMU uses (`kvm` or `tcg`).
    #[serde(default)]
    pub accelerator_in_use: Option<String>,
    pub disks: Vec<VmDisk>,
    pub cdroms: Vec<VmCdrom>,
    pub nics: Vec<VmNic>,
    pub boot: Vec<BootDevice>,
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub initrd: Option<String>,
    #[serde(default)]
    pub cmdline: Option<String>,
    pub autostart: bool,
    /// The template the first disk came from.
    #[serde(default)]
    pub template: Option<String>,
    /// QEMU's process id while it runs.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The stored definition differs from what the running QEMU was started with: the
    /// difference applies at the next boot.
    pub pending_changes: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// Where a change took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// Hot-plugged (or changed) in the running guest now, and stored.
    Live,
    /// Stored; takes effect when the VM next starts (it is stopped, or QEMU cannot hot-plug it).
    NextBoot,
}

/// Answer to a change of a VM's devices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VmChange {
    pub applied: Applied,
    /// Why it waits for the next boot, when it does.
    #[serde(default)]
    pub reason: Option<String>,
    pub vm: Vm,
}

/// `POST /vms/{id}/shutdown`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownRequest {
    /// Seconds to wait for the guest to power off after the ACPI request before QEMU is
    /// stopped by force (1 .. 3600, default 60).
    #[serde(default, deserialize_with = "whole::opt_u64")]
    #[schema(minimum = 1, maximum = 3600)]
    pub timeout_secs: Option<u64>,
}

/// `POST /vms/{id}/disks/{n}/resize`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    /// New virtual size in bytes (1 MiB .. 4 TiB; more than `vms.max_disk_bytes`: 409
    /// `exceeds_host`); only growing is allowed.
    #[serde(deserialize_with = "whole::u64")]
    #[schema(minimum = 1048576, maximum = 4398046511104_u64)]
    pub size_bytes: u64,
}

/// `POST /vms/{id}/clone`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// Name of the new VM (the rule of [`VmCreate::name`]).
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub name: String,
    #[serde(default)]
    pub strategy: CloneStrategy,
    /// Where the clone's disks go (the rule of [`VmCreate::storage`]); default `[vms]
    /// default_storage`. A `thin` clone keeps its disks next to their bases in the images
    /// directory: `images` only.
    #[serde(default)]
    #[schema(
        pattern = "^(images|[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?/[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?)$",
        max_length = 129
    )]
    pub storage: Option<String>,
}

/// `POST /vms/{id}/snapshots`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCreate {
    /// 1-64 of `A-Za-z0-9_.-`, starting with a letter or digit, without `..`.
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub name: String,
}

/// A snapshot (qcow2 internal snapshot present on every qcow2 disk of the VM).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = VmSnapshot)] // `Snapshot` is the storage area's (pools): distinct schema names
pub struct Snapshot {
    pub name: String,
    pub href: String,
    /// Creation time (RFC 3339, UTC).
    pub created_at: String,
    /// Saved guest memory size (live snapshots), in bytes.
    pub vm_state_bytes: u64,
}

/// `POST /vms/{id}/console`: a single-use ticket for a console WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsoleTicket {
    /// The ticket; pass as `?ticket=` instead of any other credential. Valid once.
    pub ticket: String,
    /// Serial console WebSocket URL (path and query) with the ticket.
    pub serial_url: String,
    /// VNC WebSocket URL (path and query) with the ticket.
    pub vnc_url: String,
    /// Expiry (RFC 3339, UTC); about 60 s after creation.
    pub expires_at: String,
}

/// A VM template (a base image, e.g. imported from a Vagrant box).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Template {
    pub name: String,
    pub href: String,
    /// The read-only base image.
    pub path: String,
    pub format: DiskFormat,
    pub size_bytes: u64,
    /// Where it came from (`upload` or the URL).
    pub source: String,
    /// The box's metadata.json, when it came from a Vagrant box.
    #[serde(default)]
    pub metadata: serde_json::Value,
    pub created_at: String,
}

/// `POST /vms/templates` with a JSON body: fetch a Vagrant box (libvirt provider) from a URL.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFromUrl {
    /// Template name: 1-64 of `A-Za-z0-9_.-`, starting with a letter or digit, without `..`.
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub name: String,
    /// `http://` or `https://` URL of the `.box` (at most 2048 characters): a host name (the
    /// last label letters only) or an IPv4 address, an optional port, then printable ASCII.
    #[schema(
        pattern = "^https?://(([A-Za-z0-9-]+\\.)*[A-Za-z]+|((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][!-~]*)?$",
        max_length = 2048
    )]
    pub url: String,
}

/// Block device counters of one disk (QMP `query-blockstats`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlockCounters {
    pub device: String,
    pub rd_bytes: u64,
    pub wr_bytes: u64,
    pub rd_operations: u64,
    pub wr_operations: u64,
}

/// Network counters of one NIC (host side of a tap device; none for user-mode networking).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NetCounters {
    pub nic: String,
    #[serde(default)]
    pub ifname: Option<String>,
    #[serde(default)]
    pub rx_bytes: Option<u64>,
    #[serde(default)]
    pub tx_bytes: Option<u64>,
    #[serde(default)]
    pub rx_packets: Option<u64>,
    #[serde(default)]
    pub tx_packets: Option<u64>,
}

/// `GET /vms/{id}/metrics`: counters of a running VM.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VmMetrics {
    pub status: VmStatus,
    /// CPU time of the QEMU process (user + system), seconds.
    pub cpu_seconds: f64,
    /// Resident memory of the QEMU process, bytes.
    pub rss_bytes: u64,
    /// Guest memory as configured, bytes.
    pub memory_bytes: u64,
    /// vCPU threads (QMP `query-cpus-fast`).
    pub vcpu_threads: Vec<u32>,
    pub block: Vec<BlockCounters>,
    pub net: Vec<NetCounters>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    /// The literal patterns in the `#[schema]` attributes are [`NAME_PATTERN`].
    #[test]
    fn name_patterns_match_the_constant() {
        for schema in [
            serde_json::to_string(&VmCreate::schema()).unwrap(),
            serde_json::to_string(&CloneRequest::schema()).unwrap(),
            serde_json::to_string(&SnapshotCreate::schema()).unwrap(),
            serde_json::to_string(&TemplateFromUrl::schema()).unwrap(),
        ] {
            let want = serde_json::to_string(NAME_PATTERN).unwrap();
            assert!(schema.contains(&want), "{schema}");
            assert!(
                schema.contains(&format!("\"maxLength\":{NAME_MAX_LEN}")),
                "{schema}"
            );
        }
        let create = serde_json::to_string(&VmCreate::schema()).unwrap();
        assert!(
            create.contains(&format!("\"maximum\":{MAX_VCPUS}")),
            "{create}"
        );
        assert!(
            create.contains(&format!("\"maximum\":{MAX_MEMORY_MIB}")),
            "{create}"
        );
        let v: VmCreate =
            serde_json::from_str(r#"{"name":"a","vcpus":2.0,"memory_mib":64.0}"#).unwrap();
        assert_eq!((v.vcpus, v.memory_mib), (Some(2), Some(64)));
        assert!(serde_json::from_str::<VmCreate>(r#"{"name":"a","vcpus":2.5}"#).is_err());
        assert!(serde_json::from_str::<VmCreate>(r#"{"name":"a","vcpus":5e9}"#).is_err());
        let disk = serde_json::to_string(&ResizeRequest::schema()).unwrap();
        assert!(
            disk.contains(&format!("\"maximum\":{MAX_DISK_BYTES}")),
            "{disk}"
        );
    }
}

/// The API a template registry speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistryKind {
    /// BoxVault: `/api/organization/{org}/box/{box}/metadata`; the token goes in
    /// `x-access-token` (and as a bearer token to the registry's own downloads).
    Boxvault,
    /// Vagrant Cloud (HCP Vagrant) and its clones: `/api/v2/box/{user}/{name}`; the token goes
    /// as a bearer token.
    VagrantCloud,
}

/// A Vagrant box registry templates are pulled from. Its token is a secret: never shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateRegistry {
    pub name: String,
    pub href: String,
    pub kind: RegistryKind,
    /// The registry's base URL (`https://boxvault.example.com`).
    pub url: String,
    /// Whether a token is stored (the token itself is never returned).
    pub has_token: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /template-registries`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRegistryCreate {
    /// 1-64 of `A-Za-z0-9_.-`, starting with a letter or digit, without `..`.
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub name: String,
    pub kind: RegistryKind,
    /// `http://` or `https://` base URL (host name or IPv4 address, optional port and path).
    #[schema(max_length = 2048)]
    pub url: String,
    /// The registry's API token (a BoxVault service account token, a Vagrant Cloud token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub token: Option<String>,
}

/// `PATCH /template-registries/{name}`: what is given changes; `token: ""` removes the token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRegistryUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub token: Option<String>,
}

/// An organisation (BoxVault) or user (Vagrant Cloud) of a registry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryOrganization {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A box of an organisation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryBox {
    pub organization: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// One file of a box version: a provider for an architecture.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryBoxProvider {
    /// `libvirt` is the one hostplane can use.
    pub name: String,
    #[serde(default)]
    pub architecture: Option<String>,
    /// Whether the registry marks this architecture as the provider's default.
    #[serde(default)]
    pub default_architecture: bool,
    pub url: String,
    #[serde(default)]
    pub checksum: Option<String>,
    /// `sha256`, `sha512`, `sha384`, `sha1` or `md5` (as the registry names it).
    #[serde(default)]
    pub checksum_type: Option<String>,
}

/// A version of a box with its providers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryBoxVersion {
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
    pub providers: Vec<RegistryBoxProvider>,
}

/// `POST /template-registries/{name}/pull`: a box version into a new template (a job).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplatePull {
    /// The new template's name (as `TemplateFromUrl.name`).
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub template: String,
    /// Organisation (BoxVault) or user (Vagrant Cloud).
    pub organization: String,
    #[serde(rename = "box")]
    pub box_name: String,
    pub version: String,
    /// Default `libvirt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Default: the provider's default architecture, else `amd64`, else the only one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}
