//! IP forwarding switches under `/proc/sys/net`, which belong to the caller's network
//! namespace (a daemon in a test namespace reads and writes that namespace's switches only).

use std::path::PathBuf;

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

fn path(family: Family, interface: Option<&str>) -> PathBuf {
    let base = PathBuf::from("/proc/sys/net");
    match (family, interface) {
        (Family::V4, None) => base.join("ipv4/ip_forward"),
        (Family::V6, None) => base.join("ipv6/conf/all/forwarding"),
        (Family::V4, Some(i)) => base.join("ipv4/conf").join(i).join("forwarding"),
        (Family::V6, Some(i)) => base.join("ipv6/conf").join(i).join("forwarding"),
    }
}

/// Whether forwarding is on (globally, or on `interface`); `None` when the switch does not
/// exist (no such link, IPv6 disabled). `interface` must be a checked interface name.
pub fn forwarding(family: Family, interface: Option<&str>) -> Option<bool> {
    let s = std::fs::read_to_string(path(family, interface)).ok()?;
    Some(s.trim() != "0")
}

/// Turns forwarding on or off. Writing `net.ipv4.ip_forward` also sets every interface's
/// IPv4 switch (the kernel does that); IPv6 `all` likewise.
pub fn set_forwarding(family: Family, interface: Option<&str>, on: bool) -> std::io::Result<()> {
    std::fs::write(path(family, interface), if on { "1\n" } else { "0\n" })
}
