//! The QEMU command line, built from a resolved [`Launch`] (never through a shell).
//!
//! Devices are given in JSON syntax (`-blockdev {...}`, `-device {...}`), so file names need no
//! escaping at all; the few `key=value` options left (`-chardev`, `-netdev`, `-drive
//! if=pflash`) escape commas by doubling them, as QEMU's option parser wants.
//!
//! Naming: disk `n` is block node `disk<n>` with device id `disk<n>-dev`; CD-ROM `n` is node
//! `cd<n>` / device `cd<n>-dev`; NIC `n` is netdev `net<n>` / device `net<n>-dev`. The same names
//! are used for hot-plug, so the server can address any device by its index.

use std::path::PathBuf;

use serde_json::{Value, json};

/// Accelerator actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    Virtio,
    Sata,
    Scsi,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchDisk {
    pub index: u32,
    pub path: PathBuf,
    /// `qcow2` or `raw`.
    pub format: &'static str,
    pub bus: Bus,
    pub bootindex: Option<u32>,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchCdrom {
    pub index: u32,
    pub iso: Option<PathBuf>,
    pub bootindex: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicBackend {
    User,
    /// A tap on a host bridge, made by the bridge helper at `helper`
    /// ([`super::bridge_helper`]).
    Bridge {
        bridge: String,
        helper: std::path::PathBuf,
    },
}

/// A user-mode NIC's host port forward: `127.0.0.1:host_port` → the guest's `guest_port`.
/// Always on loopback (see `hostplane_types::vms::NicPortForward`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostForward {
    pub udp: bool,
    pub host_port: u16,
    pub guest_port: u16,
}

impl HostForward {
    /// QEMU's `hostfwd` rule: `tcp:127.0.0.1:H-:G` (guest address left to QEMU: its DHCP
    /// address, 10.0.2.15).
    pub fn rule(&self) -> String {
        format!(
            "{}:127.0.0.1:{}-:{}",
            if self.udp { "udp" } else { "tcp" },
            self.host_port,
            self.guest_port
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchNic {
    pub index: u32,
    /// Port forwards (user-mode backend only; ignored for a bridge).
    pub host_forwards: Vec<HostForward>,
    pub backend: NicBackend,
    pub mac: String,
    /// `virtio-net-pci` or `e1000`.
    pub model: &'static str,
    pub bootindex: Option<u32>,
    /// Option ROM for network boot; empty = none (no iPXE installed, or no network boot).
    pub romfile: String,
}

/// UEFI firmware: the shared read-only code and this VM's own variable store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uefi {
    pub code: PathBuf,
    pub vars: PathBuf,
}

/// Everything QEMU needs to start one VM, paths resolved and validated by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Shown in `ps` and `query-name`.
    pub name: String,
    pub accel: Accel,
    /// `pc` or `q35`.
    pub machine: &'static str,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub uefi: Option<Uefi>,
    pub disks: Vec<LaunchDisk>,
    pub cdroms: Vec<LaunchCdrom>,
    pub nics: Vec<LaunchNic>,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
    pub qmp_socket: PathBuf,
    pub serial_socket: PathBuf,
    /// The guest agent's virtio-serial port (`org.qemu.guest_agent.0`) on the host side.
    pub qga_socket: PathBuf,
    pub vnc_socket: PathBuf,
    pub pidfile: PathBuf,
    /// Spare PCIe root ports for hot-plug (q35 only; `pc` hot-plugs on its root bus).
    pub hotplug_ports: u32,
}

/// Doubles commas for QEMU's `key=value,...` option syntax.
pub fn opt_escape(s: &str) -> String {
    s.replace(',', ",,")
}

fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn disk_node(index: u32) -> String {
    format!("disk{index}")
}
pub fn disk_dev(index: u32) -> String {
    format!("disk{index}-dev")
}
pub fn cd_node(index: u32) -> String {
    format!("cd{index}")
}
pub fn cd_dev(index: u32) -> String {
    format!("cd{index}-dev")
}
pub fn net_id(index: u32) -> String {
    format!("net{index}")
}
pub fn net_dev(index: u32) -> String {
    format!("net{index}-dev")
}

/// The `blockdev-add` arguments (and `-blockdev` JSON) of a disk.
pub fn disk_blockdev(d: &LaunchDisk) -> Value {
    json!({
        "driver": d.format,
        "node-name": disk_node(d.index),
        "read-only": d.read_only,
        "discard": "unmap",
        "file": {"driver": "file", "filename": path_str(&d.path), "read-only": d.read_only},
    })
}

/// The `device_add` arguments (and `-device` JSON) of a disk; `bus` is the PCIe root port on
/// q35 hot-plug, else None.
pub fn disk_device(d: &LaunchDisk, bus: Option<&str>) -> Value {
    let mut v = match d.bus {
        Bus::Virtio => json!({"driver": "virtio-blk-pci"}),
        Bus::Sata => json!({"driver": "ide-hd", "bus": format!("sata0.{}", sata_port(d.index))}),
        Bus::Scsi => json!({"driver": "scsi-hd", "bus": "scsi0.0"}),
    };
    v["drive"] = json!(disk_node(d.index));
    v["id"] = json!(disk_dev(d.index));
    if let Some(b) = d.bootindex {
        v["bootindex"] = json!(b);
    }
    if let (Some(bus), Bus::Virtio) = (bus, d.bus) {
        v["bus"] = json!(bus);
    }
    v
}

/// AHCI has 6 ports; disks take them from the front, CD-ROMs from the back.
fn sata_port(index: u32) -> u32 {
    index % 4
}

fn cd_port(index: u32) -> u32 {
    4 + index % 2
}

/// The `-netdev` value of a NIC.
pub fn netdev_arg(n: &LaunchNic) -> String {
    match &n.backend {
        NicBackend::User => {
            let mut s = format!("user,id={}", net_id(n.index));
            for f in &n.host_forwards {
                s.push_str(",hostfwd=");
                s.push_str(&f.rule());
            }
            s
        }
        NicBackend::Bridge { bridge, helper } => format!(
            "bridge,id={},br={},helper={}",
            net_id(n.index),
            opt_escape(bridge),
            opt_escape(&path_str(helper))
        ),
    }
}

/// The `netdev_add` arguments of a NIC.
pub fn netdev_qmp(n: &LaunchNic) -> Value {
    match &n.backend {
        NicBackend::User if n.host_forwards.is_empty() => {
            json!({"type": "user", "id": net_id(n.index)})
        }
        NicBackend::User => json!({
            "type": "user",
            "id": net_id(n.index),
            "hostfwd": n.host_forwards.iter().map(|f| json!({"str": f.rule()})).collect::<Vec<_>>(),
        }),
        NicBackend::Bridge { bridge, helper } => {
            json!({"type": "bridge", "id": net_id(n.index), "br": bridge, "helper": path_str(helper)})
        }
    }
}

pub fn nic_device(n: &LaunchNic, bus: Option<&str>) -> Value {
    let mut v = json!({
        "driver": n.model,
        "netdev": net_id(n.index),
        "id": net_dev(n.index),
        "mac": n.mac,
        "romfile": n.romfile,
    });
    if let Some(b) = n.bootindex {
        v["bootindex"] = json!(b);
    }
    if let Some(bus) = bus {
        v["bus"] = json!(bus);
    }
    v
}

/// The hot-plug root port `i` of a q35 VM.
pub fn hotplug_port(i: u32) -> String {
    format!("hp{i}")
}

/// The full argv (without the program name).
pub fn argv(l: &Launch) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&["-nodefaults", "-no-user-config"]);
    push(&[
        "-name",
        &format!("guest={},debug-threads=on", opt_escape(&l.name)),
    ]);
    push(&[
        "-machine",
        &format!("{},accel={}", l.machine, l.accel.as_str()),
    ]);
    if l.accel == Accel::Kvm {
        push(&["-cpu", "host"]);
    }
    push(&["-m", &format!("{}M", l.memory_mib)]);
    push(&["-smp", &l.vcpus.to_string()]);
    push(&["-display", "none"]);
    push(&["-device", r#"{"driver":"VGA","id":"video0"}"#]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp,path={},server=on,wait=off",
            opt_escape(&path_str(&l.qmp_socket))
        ),
    ]);
    push(&["-mon", "chardev=qmp,mode=control"]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=serial0,path={},server=on,wait=off",
            opt_escape(&path_str(&l.serial_socket))
        ),
    ]);
    push(&["-serial", "chardev:serial0"]);
    push(&[
        "-vnc",
        &format!("unix:{}", opt_escape(&path_str(&l.vnc_socket))),
    ]);
    push(&["-pidfile", &path_str(&l.pidfile)]);
    if let Some(u) = &l.uefi {
        push(&[
            "-drive",
            &format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                opt_escape(&path_str(&u.code))
            ),
        ]);
        push(&[
            "-drive",
            &format!(
                "if=pflash,format=raw,unit=1,file={}",
                opt_escape(&path_str(&u.vars))
            ),
        ]);
    }
    if l.machine == "q35" {
        for i in 0..l.hotplug_ports {
            let port = json!({
                "driver": "pcie-root-port",
                "id": hotplug_port(i),
                "chassis": i + 1,
                "slot": i + 1,
                "bus": "pcie.0",
            });
            push(&["-device", &port.to_string()]);
        }
    }
    let needs_sata = l.disks.iter().any(|d| d.bus == Bus::Sata) || !l.cdroms.is_empty();
    if needs_sata {
        push(&["-device", r#"{"driver":"ahci","id":"sata0"}"#]);
    }
    if l.disks.iter().any(|d| d.bus == Bus::Scsi) {
        push(&["-device", r#"{"driver":"virtio-scsi-pci","id":"scsi0"}"#]);
    }
    for d in &l.disks {
        push(&["-blockdev", &disk_blockdev(d).to_string()]);
        push(&["-device", &disk_device(d, None).to_string()]);
    }
    for c in &l.cdroms {
        let mut dev = json!({
            "driver": "ide-cd",
            "id": cd_dev(c.index),
            "bus": format!("sata0.{}", cd_port(c.index)),
        });
        if let Some(iso) = &c.iso {
            let node = json!({
                "driver": "raw",
                "node-name": cd_node(c.index),
                "read-only": true,
                "file": {"driver": "file", "filename": path_str(iso), "read-only": true},
            });
            push(&["-blockdev", &node.to_string()]);
            dev["drive"] = json!(cd_node(c.index));
        }
        if let Some(b) = c.bootindex {
            dev["bootindex"] = json!(b);
        }
        push(&["-device", &dev.to_string()]);
    }
    for n in &l.nics {
        push(&["-netdev", &netdev_arg(n)]);
        push(&["-device", &nic_device(n, None).to_string()]);
    }
    // The guest agent's channel: always there (one virtio-serial controller), used when the
    // guest runs qemu-ga. Last, so the other devices keep their slots.
    push(&[
        "-chardev",
        &format!(
            "socket,id=qga0,path={},server=on,wait=off",
            opt_escape(&path_str(&l.qga_socket))
        ),
    ]);
    push(&["-device", r#"{"driver":"virtio-serial-pci","id":"vser0"}"#]);
    push(&[
        "-device",
        r#"{"driver":"virtserialport","bus":"vser0.0","chardev":"qga0","name":"org.qemu.guest_agent.0"}"#,
    ]);
    if let Some(k) = &l.kernel {
        push(&["-kernel", &path_str(k)]);
        if let Some(i) = &l.initrd {
            push(&["-initrd", &path_str(i)]);
        }
        if let Some(c) = &l.cmdline {
            push(&["-append", c]);
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Launch {
        Launch {
            name: "web,1".into(),
            accel: Accel::Tcg,
            machine: "pc",
            vcpus: 2,
            memory_mib: 256,
            uefi: None,
            disks: vec![LaunchDisk {
                index: 0,
                path: "/var/lib/hostplane/vms/a b,c/disk0.qcow2".into(),
                format: "qcow2",
                bus: Bus::Virtio,
                bootindex: Some(1),
                read_only: false,
            }],
            cdroms: vec![],
            nics: vec![LaunchNic {
                host_forwards: Vec::new(),
                index: 0,
                backend: NicBackend::User,
                mac: "52:54:00:12:34:56".into(),
                model: "virtio-net-pci",
                bootindex: None,
                romfile: String::new(),
            }],
            kernel: None,
            initrd: None,
            cmdline: None,
            qmp_socket: "/run/hp/vm1/qmp.sock".into(),
            serial_socket: "/run/hp/vm1/serial.sock".into(),
            qga_socket: "/run/hp/vm1/qga.sock".into(),
            vnc_socket: "/run/hp/vm1/vnc.sock".into(),
            pidfile: "/run/hp/vm1/qemu.pid".into(),
            hotplug_ports: 4,
        }
    }

    fn after<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
        argv.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn basic_pc_tcg() {
        let a = argv(&base());
        assert_eq!(&a[..2], ["-nodefaults", "-no-user-config"]);
        assert_eq!(after(&a, "-name"), ["guest=web,,1,debug-threads=on"]);
        assert_eq!(after(&a, "-machine"), ["pc,accel=tcg"]);
        assert!(
            after(&a, "-cpu").is_empty(),
            "TCG keeps the default CPU model"
        );
        assert_eq!(after(&a, "-m"), ["256M"]);
        assert_eq!(after(&a, "-smp"), ["2"]);
        assert_eq!(
            after(&a, "-chardev"),
            [
                "socket,id=qmp,path=/run/hp/vm1/qmp.sock,server=on,wait=off",
                "socket,id=serial0,path=/run/hp/vm1/serial.sock,server=on,wait=off",
                "socket,id=qga0,path=/run/hp/vm1/qga.sock,server=on,wait=off"
            ]
        );
        assert_eq!(after(&a, "-vnc"), ["unix:/run/hp/vm1/vnc.sock"]);
        assert_eq!(after(&a, "-pidfile"), ["/run/hp/vm1/qemu.pid"]);
        // No SATA controller without SATA disks or CD-ROMs, no root ports on pc.
        let devices = after(&a, "-device");
        assert!(!devices.iter().any(|d| d.contains("ahci")));
        assert!(!devices.iter().any(|d| d.contains("pcie-root-port")));
        // The path with a comma and a space is passed verbatim inside JSON.
        let bd: Value = serde_json::from_str(after(&a, "-blockdev")[0]).unwrap();
        assert_eq!(
            bd["file"]["filename"],
            "/var/lib/hostplane/vms/a b,c/disk0.qcow2"
        );
        assert_eq!(bd["driver"], "qcow2");
        assert_eq!(bd["node-name"], "disk0");
        let disk: Value = serde_json::from_str(devices[1]).unwrap();
        assert_eq!(
            disk,
            json!({"driver": "virtio-blk-pci", "drive": "disk0", "id": "disk0-dev", "bootindex": 1})
        );
        assert_eq!(after(&a, "-netdev"), ["user,id=net0"]);
        let nic: Value = serde_json::from_str(devices[2]).unwrap();
        assert_eq!(nic["driver"], "virtio-net-pci");
        assert_eq!(nic["mac"], "52:54:00:12:34:56");
        assert!(after(&a, "-kernel").is_empty());
        // The guest agent's port, last.
        let port: Value = serde_json::from_str(devices[devices.len() - 1]).unwrap();
        assert_eq!(port["name"], "org.qemu.guest_agent.0");
        assert_eq!(port["chardev"], "qga0");
    }

    #[test]
    fn q35_kvm_uefi_sata_scsi_cdrom_kernel() {
        let mut l = base();
        l.machine = "q35";
        l.accel = Accel::Kvm;
        l.uefi = Some(Uefi {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            vars: "/var/lib/hostplane/vms/x/OVMF_VARS.fd".into(),
        });
        l.disks.push(LaunchDisk {
            index: 1,
            path: "/i/d1.raw".into(),
            format: "raw",
            bus: Bus::Sata,
            bootindex: None,
            read_only: false,
        });
        l.disks.push(LaunchDisk {
            index: 2,
            path: "/i/d2.raw".into(),
            format: "raw",
            bus: Bus::Scsi,
            bootindex: None,
            read_only: true,
        });
        l.cdroms.push(LaunchCdrom {
            index: 0,
            iso: Some("/i/seed.iso".into()),
            bootindex: Some(2),
        });
        l.cdroms.push(LaunchCdrom {
            index: 1,
            iso: None,
            bootindex: None,
        });
        l.kernel = Some("/k/vmlinuz".into());
        l.initrd = Some("/k/initrd.gz".into());
        l.cmdline = Some("console=ttyS0 mode=serve".into());
        let a = argv(&l);
        assert_eq!(after(&a, "-machine"), ["q35,accel=kvm"]);
        assert_eq!(after(&a, "-cpu"), ["host"]);
        assert_eq!(
            after(&a, "-drive"),
            [
                "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
                "if=pflash,format=raw,unit=1,file=/var/lib/hostplane/vms/x/OVMF_VARS.fd"
            ]
        );
        let devices: Vec<Value> = after(&a, "-device")
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let ports = devices
            .iter()
            .filter(|d| d["driver"] == "pcie-root-port")
            .count();
        assert_eq!(ports, 4);
        assert!(devices.iter().any(|d| d["driver"] == "ahci"));
        assert!(devices.iter().any(|d| d["driver"] == "virtio-scsi-pci"));
        let sata = devices.iter().find(|d| d["id"] == "disk1-dev").unwrap();
        assert_eq!(sata["driver"], "ide-hd");
        assert_eq!(sata["bus"], "sata0.1");
        let scsi = devices.iter().find(|d| d["id"] == "disk2-dev").unwrap();
        assert_eq!(scsi["driver"], "scsi-hd");
        let cd0 = devices.iter().find(|d| d["id"] == "cd0-dev").unwrap();
        assert_eq!(cd0["drive"], "cd0");
        assert_eq!(cd0["bootindex"], 2);
        let cd1 = devices.iter().find(|d| d["id"] == "cd1-dev").unwrap();
        assert!(cd1.get("drive").is_none(), "an empty tray has no medium");
        let ro: Value = serde_json::from_str(after(&a, "-blockdev")[2]).unwrap();
        assert_eq!(ro["read-only"], true);
        assert_eq!(after(&a, "-kernel"), ["/k/vmlinuz"]);
        assert_eq!(after(&a, "-initrd"), ["/k/initrd.gz"]);
        assert_eq!(after(&a, "-append"), ["console=ttyS0 mode=serve"]);
    }

    /// Port forwards become `hostfwd` rules bound on loopback, on the command line and in
    /// `netdev_add`.
    #[test]
    fn user_nic_port_forwards_on_loopback() {
        let mut n = base().nics[0].clone();
        n.host_forwards = vec![
            HostForward {
                udp: false,
                host_port: 2222,
                guest_port: 22,
            },
            HostForward {
                udp: true,
                host_port: 5353,
                guest_port: 53,
            },
        ];
        assert_eq!(
            netdev_arg(&n),
            "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53"
        );
        assert_eq!(
            netdev_qmp(&n),
            json!({"type": "user", "id": "net0", "hostfwd": [
                {"str": "tcp:127.0.0.1:2222-:22"}, {"str": "udp:127.0.0.1:5353-:53"}]})
        );
        let mut l = base();
        l.nics = vec![n];
        assert_eq!(
            after(&argv(&l), "-netdev"),
            ["user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53"]
        );
    }

    #[test]
    fn bridge_nic_and_hotplug_args() {
        let n = LaunchNic {
            host_forwards: Vec::new(),
            index: 3,
            backend: NicBackend::Bridge {
                bridge: "br0".into(),
                helper: "/run/hostplane-bridge-helper".into(),
            },
            mac: "52:54:00:00:00:03".into(),
            model: "e1000",
            bootindex: Some(3),
            romfile: String::new(),
        };
        assert_eq!(
            netdev_arg(&n),
            "bridge,id=net3,br=br0,helper=/run/hostplane-bridge-helper"
        );
        assert_eq!(
            netdev_qmp(&n),
            json!({"type": "bridge", "id": "net3", "br": "br0", "helper": "/run/hostplane-bridge-helper"})
        );
        let d = nic_device(&n, Some("hp1"));
        assert_eq!(d["bus"], "hp1");
        assert_eq!(d["id"], "net3-dev");
        assert_eq!(d["bootindex"], 3);
        let disk = LaunchDisk {
            index: 7,
            path: "/x.qcow2".into(),
            format: "qcow2",
            bus: Bus::Virtio,
            bootindex: None,
            read_only: false,
        };
        assert_eq!(disk_device(&disk, Some("hp0"))["bus"], "hp0");
        assert_eq!(disk_device(&disk, None).get("bus"), None);
        assert_eq!(opt_escape("a,b,,c"), "a,,b,,,,c");
    }
}
