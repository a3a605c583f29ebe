//! The stored VM definition ([`VmDef`] in the `vms` table as JSON), its validation and the
//! checks of everything a request may name: resource limits against the host (a fuzzed request
//! must never ask for more memory or CPUs than the host has, or an unbounded disk) and file
//! paths (only inside the images directory or `vms.allowed_paths`).

use std::path::{Path, PathBuf};

use hostplane_types::vms::{
    Accelerator, BootDevice, CloudInit, DiskBus, DiskFormat, Firmware, ForwardProtocol,
    MAX_PORT_FORWARDS, MachineType, NicMode, NicModel, NicPortForward, NicRequest, VmCdrom,
    VmDisk, VmNic,
};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;

pub const MAX_DISKS: usize = 16;
pub const MAX_CDROMS: usize = 2;
pub const MAX_NICS: usize = 8;
pub const MIN_MEMORY_MIB: u64 = 16;
pub const MIN_DISK_BYTES: u64 = 1 << 20;
const MAX_CMDLINE: usize = 4096;
const MAX_CLOUD_INIT: usize = 64 * 1024;

/// Next free device numbers (numbers are never reused within a VM).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NextIndex {
    pub disk: u32,
    pub cdrom: u32,
    pub nic: u32,
}

/// What is stored for a VM (and what a running QEMU was started with: `launched.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmDef {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub machine: MachineType,
    pub firmware: Firmware,
    pub accelerator: Accelerator,
    pub disks: Vec<VmDisk>,
    pub cdroms: Vec<VmCdrom>,
    pub nics: Vec<VmNic>,
    pub boot: Vec<BootDevice>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub autostart: bool,
    pub template: Option<String>,
    #[serde(default)]
    pub next: NextIndex,
}

impl VmDef {
    /// The parts that decide how QEMU is started (`autostart` and bookkeeping excluded): a
    /// running VM whose definition differs here has changes pending for the next boot.
    pub fn boot_relevant_eq(&self, other: &VmDef) -> bool {
        let strip = |d: &VmDef| {
            let mut d = d.clone();
            d.autostart = false;
            d.next = NextIndex::default();
            d.template = None;
            for disk in &mut d.disks {
                disk.size_bytes = 0;
                disk.backing = None;
            }
            d
        };
        strip(self) == strip(other)
    }
}

#[derive(Debug, Clone)]
pub struct VmRecord {
    pub id: String,
    pub name: String,
    pub def: VmDef,
    pub created_at: String,
    pub updated_at: String,
}

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<VmRecord> {
    let def: String = r.get(2)?;
    let def = serde_json::from_str(&def).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(VmRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        def,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

const COLUMNS: &str = "id, name, def, created_at, updated_at";

pub fn load_all(store: &Store) -> ApiResult<Vec<VmRecord>> {
    Ok(store.read(|c| {
        let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM vms ORDER BY name"))?;
        st.query_map([], from_row)?.collect()
    })?)
}

/// By id, or by name.
pub fn load(store: &Store, key: &str) -> ApiResult<Option<VmRecord>> {
    Ok(store.read(|c| {
        c.query_row(
            &format!(
                "SELECT {COLUMNS} FROM vms WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1"
            ),
            [key],
            from_row,
        )
        .optional()
    })?)
}

pub fn find(store: &Store, key: &str) -> ApiResult<VmRecord> {
    load(store, key)?.ok_or_else(|| ApiError::not_found(format!("no VM {key:?}")))
}

fn def_json(def: &VmDef) -> ApiResult<String> {
    serde_json::to_string(def).map_err(ApiError::internal)
}

pub fn insert(store: &Store, rec: &VmRecord) -> ApiResult<()> {
    let def = def_json(&rec.def)?;
    store
        .write(|tx| {
            tx.execute(
                "INSERT INTO vms(id, name, def, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![rec.id, rec.name, def, rec.created_at, rec.updated_at],
            )
        })
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                ApiError::conflict("vm_exists", format!("a VM named {:?} exists", rec.name))
            }
            other => other.into(),
        })?;
    Ok(())
}

/// Stores a new definition; returns the record as stored.
pub fn save_def(store: &Store, id: &str, def: &VmDef) -> ApiResult<VmRecord> {
    let json = def_json(def)?;
    let now = crate::platform::time::now_string();
    store.write(|tx| {
        tx.execute(
            "UPDATE vms SET def = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, json, now],
        )
    })?;
    find(store, id)
}

pub fn delete(store: &Store, id: &str) -> ApiResult<()> {
    store.write(|tx| tx.execute("DELETE FROM vms WHERE id = ?1", [id]))?;
    Ok(())
}

/// What the host offers, for the limits checks.
#[derive(Debug, Clone, Copy)]
pub struct HostLimits {
    pub cpus: u32,
    pub memory_mib: u64,
    pub max_disk_bytes: u64,
}

impl HostLimits {
    pub fn probe(max_disk_bytes: u64) -> HostLimits {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map(|kb| kb / 1024)
            .unwrap_or(1024);
        HostLimits {
            cpus,
            memory_mib,
            max_disk_bytes,
        }
    }

    // Outside the documented (schema) range: 422. Inside it but more than this host has or
    // its configuration allows: 409 (the request is valid, this host cannot serve it; the
    // schema cannot know the host).
    pub fn check_vcpus(&self, field: &str, v: u32) -> ApiResult<()> {
        if v == 0 || v > hostplane_types::vms::MAX_VCPUS {
            return Err(ApiError::invalid_field(
                "invalid_vcpus",
                field,
                format!("vcpus is 1 .. {}", hostplane_types::vms::MAX_VCPUS),
            ));
        }
        if v > self.cpus {
            return Err(ApiError::conflict(
                "exceeds_host",
                format!("{field}: this host has {} CPUs", self.cpus),
            ));
        }
        Ok(())
    }

    pub fn check_memory(&self, field: &str, v: u64) -> ApiResult<()> {
        if !(MIN_MEMORY_MIB..=hostplane_types::vms::MAX_MEMORY_MIB).contains(&v) {
            return Err(ApiError::invalid_field(
                "invalid_memory",
                field,
                format!(
                    "memory_mib is {MIN_MEMORY_MIB} .. {}",
                    hostplane_types::vms::MAX_MEMORY_MIB
                ),
            ));
        }
        if v > self.memory_mib {
            return Err(ApiError::conflict(
                "exceeds_host",
                format!("{field}: this host has {} MiB of memory", self.memory_mib),
            ));
        }
        Ok(())
    }

    pub fn check_disk_size(&self, field: &str, v: u64) -> ApiResult<()> {
        if !(MIN_DISK_BYTES..=hostplane_types::vms::MAX_DISK_BYTES).contains(&v) {
            return Err(ApiError::invalid_field(
                "invalid_size",
                field,
                format!(
                    "size_bytes is {MIN_DISK_BYTES} .. {}",
                    hostplane_types::vms::MAX_DISK_BYTES
                ),
            ));
        }
        if v > self.max_disk_bytes {
            return Err(ApiError::conflict(
                "exceeds_host",
                format!(
                    "{field}: more than vms.max_disk_bytes ({})",
                    self.max_disk_bytes
                ),
            ));
        }
        Ok(())
    }
}

pub fn check_name(field: &str, name: &str) -> ApiResult<()> {
    hostplane_host::validate_name("VM", name)
        .map_err(|e| ApiError::invalid_field("invalid_name", field, e.to_string()))?;
    if name == "templates" || name.ends_with(".tar.zst") {
        return Err(ApiError::invalid_field(
            "invalid_name",
            field,
            format!("{name:?} is reserved"),
        ));
    }
    Ok(())
}

/// `52:54:00:xx:xx:xx` or any unicast, locally valid MAC; normalized to lower case.
pub fn check_mac(field: &str, mac: &str) -> ApiResult<String> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    let first = u8::from_str_radix(parts.first().copied().unwrap_or("01"), 16).unwrap_or(1);
    if !ok || first & 1 == 1 {
        return Err(ApiError::invalid_field(
            "invalid_mac",
            field,
            "a unicast MAC address like 52:54:00:12:34:56",
        ));
    }
    Ok(mac.to_ascii_lowercase())
}

pub fn random_mac() -> String {
    let mut b = [0u8; 3];
    getrandom::fill(&mut b).expect("the OS random source works");
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

pub fn check_nic(field: &str, n: &NicRequest, index: u32) -> ApiResult<VmNic> {
    let bridge = match (n.mode, &n.bridge) {
        (NicMode::Bridge, Some(b)) => {
            hostplane_host::validate_name("bridge", b).map_err(|e| {
                ApiError::invalid_field("invalid_bridge", format!("{field}.bridge"), e.to_string())
            })?;
            if b.len() > 15 {
                return Err(ApiError::invalid_field(
                    "invalid_bridge",
                    format!("{field}.bridge"),
                    "an interface name has at most 15 characters",
                ));
            }
            Some(b.clone())
        }
        (NicMode::Bridge, None) => {
            return Err(ApiError::invalid_field(
                "invalid_bridge",
                format!("{field}.bridge"),
                "mode bridge needs the bridge name",
            ));
        }
        (NicMode::User, Some(_)) => {
            return Err(ApiError::invalid_field(
                "invalid_bridge",
                format!("{field}.bridge"),
                "bridge is only for mode bridge",
            ));
        }
        (NicMode::User, None) => None,
    };
    let mac = match &n.mac {
        Some(m) => check_mac(&format!("{field}.mac"), m)?,
        None => random_mac(),
    };
    check_port_forwards(field, n.mode, &n.port_forwards)?;
    Ok(VmNic {
        index,
        mode: n.mode,
        bridge,
        mac,
        model: n.model,
        port_forwards: n.port_forwards.clone(),
    })
}

/// A NIC's port forwards: user-mode NICs only, ports 1–65535, each host port once per protocol.
pub fn check_port_forwards(field: &str, mode: NicMode, fwds: &[NicPortForward]) -> ApiResult<()> {
    if fwds.is_empty() {
        return Ok(());
    }
    let f = format!("{field}.port_forwards");
    if mode != NicMode::User {
        return Err(ApiError::invalid_field(
            "invalid_port_forward",
            f,
            "port forwards are for mode user (a bridged guest is reached at its own address)",
        ));
    }
    if fwds.len() > MAX_PORT_FORWARDS {
        return Err(ApiError::invalid_field(
            "invalid_port_forward",
            f,
            format!("at most {MAX_PORT_FORWARDS} port forwards"),
        ));
    }
    for (i, p) in fwds.iter().enumerate() {
        // Not a privileged host port: an operator must not squat one a root service of the
        // host binds later.
        if p.host_port < 1024 || p.guest_port == 0 {
            return Err(ApiError::invalid_field(
                "invalid_port_forward",
                format!("{f}[{i}]"),
                "host_port is 1024–65535, guest_port 1–65535",
            ));
        }
    }
    check_forward_duplicates(&f, fwds.iter())
}

fn proto(p: ForwardProtocol) -> &'static str {
    match p {
        ForwardProtocol::Tcp => "tcp",
        ForwardProtocol::Udp => "udp",
    }
}

/// No host port (per protocol) twice among `fwds` (one NIC's, or all of a VM's).
pub fn check_forward_duplicates<'a>(
    field: &str,
    fwds: impl Iterator<Item = &'a NicPortForward>,
) -> ApiResult<()> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for p in fwds {
        total += 1;
        if !seen.insert((p.protocol, p.host_port)) {
            return Err(ApiError::invalid_field(
                "duplicate_port_forward",
                field,
                format!(
                    "host port {}/{} is forwarded twice",
                    p.host_port,
                    proto(p.protocol)
                ),
            ));
        }
    }
    if total > MAX_PORT_FORWARDS {
        return Err(ApiError::invalid_field(
            "invalid_port_forward",
            field,
            format!("at most {MAX_PORT_FORWARDS} port forwards per VM"),
        ));
    }
    Ok(())
}

/// 409 `host_port_in_use` when a forwarded host port cannot be bound on 127.0.0.1 now (another
/// VM or program holds it). Checked before QEMU starts, so the caller gets this rather than
/// QEMU's start failure; QEMU's own refusal (a race) is mapped to the same code.
pub fn check_host_ports<'a>(fwds: impl Iterator<Item = &'a NicPortForward>) -> ApiResult<()> {
    for p in fwds {
        let addr = (std::net::Ipv4Addr::LOCALHOST, p.host_port);
        let res = match p.protocol {
            ForwardProtocol::Tcp => std::net::TcpListener::bind(addr).map(drop),
            ForwardProtocol::Udp => std::net::UdpSocket::bind(addr).map(drop),
        };
        if let Err(e) = res {
            return Err(ApiError::conflict(
                "host_port_in_use",
                format!(
                    "host port 127.0.0.1:{}/{} of a port forward cannot be bound: {e}",
                    p.host_port,
                    proto(p.protocol)
                ),
            ));
        }
    }
    Ok(())
}

pub fn check_cmdline(field: &str, s: &str) -> ApiResult<()> {
    if s.len() > MAX_CMDLINE || s.contains('\0') {
        return Err(ApiError::invalid_field(
            "invalid_cmdline",
            field,
            format!("at most {MAX_CMDLINE} bytes, no NUL"),
        ));
    }
    Ok(())
}

pub fn check_cloud_init(c: &CloudInit) -> ApiResult<()> {
    for (field, v) in [
        ("cloud_init.user_data", Some(&c.user_data)),
        ("cloud_init.meta_data", c.meta_data.as_ref()),
        ("cloud_init.network_config", c.network_config.as_ref()),
    ] {
        if let Some(v) = v
            && (v.len() > MAX_CLOUD_INIT || v.contains('\0'))
        {
            return Err(ApiError::invalid_field(
                "invalid_cloud_init",
                field,
                format!("at most {MAX_CLOUD_INIT} bytes of text"),
            ));
        }
    }
    Ok(())
}

/// Resolves a path a request names: absolute (or relative to the images directory), existing,
/// a regular file, and inside one of `roots` after resolving symlinks.
pub fn resolve_file(
    field: &str,
    s: &str,
    images_dir: &Path,
    roots: &[PathBuf],
) -> ApiResult<PathBuf> {
    if s.is_empty() || s.contains('\0') {
        return Err(ApiError::invalid_field("invalid_path", field, "empty path"));
    }
    let p = Path::new(s);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        images_dir.join(p)
    };
    // A file that does not exist is a missing resource (404, naming the field), like a VM or
    // template that does not exist: the request is well formed, this host lacks the file.
    let canon = std::fs::canonicalize(&p).map_err(|e| {
        let under_a_root = roots.iter().any(|r| p.starts_with(r)) && !s.contains("..");
        if e.kind() == std::io::ErrorKind::NotFound && under_a_root {
            ApiError::not_found(format!("{field}: no file {}", p.display()))
        } else {
            ApiError::invalid_field("invalid_path", field, format!("{}: {e}", p.display()))
        }
    })?;
    let inside = roots.iter().any(|r| {
        std::fs::canonicalize(r)
            .map(|r| canon.starts_with(r))
            .unwrap_or(false)
    });
    if !inside {
        return Err(ApiError::invalid_field(
            "path_not_allowed",
            field,
            format!(
                "{} is outside the images directory and vms.allowed_paths",
                canon.display()
            ),
        ));
    }
    if !canon.is_file() {
        return Err(ApiError::invalid_field(
            "invalid_path",
            field,
            format!("{} is not a regular file", canon.display()),
        ));
    }
    Ok(canon)
}

/// Default boot order.
pub fn default_boot() -> Vec<BootDevice> {
    vec![BootDevice::Disk, BootDevice::Cdrom]
}

pub fn check_boot(field: &str, boot: &[BootDevice]) -> ApiResult<()> {
    for (i, b) in boot.iter().enumerate() {
        if boot[..i].contains(b) {
            return Err(ApiError::invalid_field(
                "invalid_boot",
                field,
                "each boot device class at most once",
            ));
        }
    }
    Ok(())
}

/// A new disk entry for `path`.
pub fn disk_entry(
    index: u32,
    path: &Path,
    format: DiskFormat,
    bus: DiskBus,
    size_bytes: u64,
    backing: Option<String>,
    owned: bool,
) -> VmDisk {
    VmDisk {
        index,
        path: path.to_string_lossy().into_owned(),
        format,
        bus,
        size_bytes,
        backing,
        owned,
        storage: None,
    }
}

/// qemu-img's format name to ours (None: a format VMs cannot use directly).
pub fn disk_format_of(name: &str) -> Option<DiskFormat> {
    match name {
        "qcow2" => Some(DiskFormat::Qcow2),
        "raw" => Some(DiskFormat::Raw),
        _ => None,
    }
}

pub fn new_def(
    vcpus: u32,
    memory_mib: u64,
    machine: MachineType,
    firmware: Firmware,
    accelerator: Accelerator,
) -> VmDef {
    VmDef {
        vcpus,
        memory_mib,
        machine,
        firmware,
        accelerator,
        disks: Vec::new(),
        cdroms: Vec::new(),
        nics: Vec::new(),
        boot: default_boot(),
        kernel: None,
        initrd: None,
        cmdline: None,
        autostart: false,
        template: None,
        next: NextIndex::default(),
    }
}

/// Default NIC model name for QEMU.
pub fn nic_model_name(m: NicModel) -> &'static str {
    match m {
        NicModel::Virtio => "virtio-net-pci",
        NicModel::E1000 => "e1000",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            check_mac("m", "52:54:00:AB:cd:01").unwrap(),
            "52:54:00:ab:cd:01"
        );
        for bad in [
            "",
            "52:54:00:ab:cd",
            "01:00:5e:00:00:01",
            "zz:54:00:ab:cd:01",
            "52-54-00-ab-cd-01",
        ] {
            assert!(check_mac("m", bad).is_err(), "{bad}");
        }
        let r = random_mac();
        assert!(check_mac("m", &r).is_ok() && r.starts_with("52:54:00:"));
    }

    #[test]
    fn limits_name_the_field() {
        let l = HostLimits {
            cpus: 2,
            memory_mib: 1024,
            max_disk_bytes: 1 << 30,
        };
        // Outside the documented range: 422 naming the field; beyond this host: 409.
        let e = l.check_vcpus("vcpus", 2000).unwrap_err();
        assert!(matches!(e, ApiError::Invalid { field: Some(ref f), .. } if f == "vcpus"));
        let e = l.check_vcpus("vcpus", 3).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::CONFLICT);
        assert!(l.check_vcpus("vcpus", 0).is_err());
        assert!(l.check_vcpus("vcpus", 2).is_ok());
        assert!(l.check_memory("memory_mib", 2048).is_err());
        assert!(l.check_memory("memory_mib", 8).is_err());
        assert!(l.check_disk_size("disks[0].size_bytes", 2 << 30).is_err());
        assert!(l.check_disk_size("disks[0].size_bytes", 1 << 20).is_ok());
    }

    #[test]
    fn paths_stay_inside_the_roots() {
        let d = tempfile::tempdir().unwrap();
        let images = d.path().join("images");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::write(images.join("a.iso"), b"x").unwrap();
        std::fs::write(d.path().join("outside"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("outside"), images.join("link")).unwrap();
        let roots = vec![images.clone()];
        assert!(resolve_file("iso", "a.iso", &images, &roots).is_ok());
        let abs = images.join("a.iso");
        assert!(resolve_file("iso", abs.to_str().unwrap(), &images, &roots).is_ok());
        for bad in [
            "link",
            "../outside",
            "/etc/passwd",
            "/nowhere/x",
            "../missing",
            "",
        ] {
            let e = resolve_file("iso", bad, &images, &roots).unwrap_err();
            assert!(matches!(e, ApiError::Invalid { .. }), "{bad}");
        }
        let e = resolve_file("iso", "missing", &images, &roots).unwrap_err();
        assert!(matches!(e, ApiError::NotFound(_)), "{e:?}");
        assert!(
            resolve_file("iso", ".", &images, &roots).is_err(),
            "a directory"
        );
    }

    #[test]
    fn reserved_names() {
        assert!(check_name("name", "templates").is_err());
        assert!(check_name("name", "web-1").is_ok());
        assert!(check_name("name", "-x").is_err());
    }
}
