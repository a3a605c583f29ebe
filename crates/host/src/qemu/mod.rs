//! QEMU, driven directly (no libvirt): the command line ([`argv`]), the long-lived process
//! ([`process`]), the QMP client ([`qmp`]), the guest agent client ([`qga`]), disk images ([`img`]), the cloud-init seed ISO
//! ([`seed`]) and the PPM-to-PNG fallback for screenshots on old QEMU ([`png`]). No HTTP here; the `vms` area composes these.

pub mod argv;
pub mod bridge_helper;
pub mod img;
pub mod png;
pub mod process;
pub mod qga;
pub mod qmp;
pub mod seed;

/// Where OVMF (UEFI) lives on Debian: (code, vars template), 4M variant first.
pub fn ovmf_files() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    [
        (
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ),
        (
            "/usr/share/OVMF/OVMF_CODE.fd",
            "/usr/share/OVMF/OVMF_VARS.fd",
        ),
    ]
    .into_iter()
    .map(|(c, v)| (std::path::PathBuf::from(c), std::path::PathBuf::from(v)))
    .find(|(c, v)| c.exists() && v.exists())
}

/// The iPXE option ROM QEMU needs for network boot from a NIC model, when installed.
pub fn nic_rom(model: &str) -> Option<&'static str> {
    let rom = match model {
        "virtio-net-pci" => "efi-virtio.rom",
        "e1000" => "efi-e1000.rom",
        _ => return None,
    };
    ["/usr/share/qemu", "/usr/lib/ipxe/qemu"]
        .iter()
        .any(|d| std::path::Path::new(d).join(rom).exists())
        .then_some(rom)
}
