//! systemd-networkd files for what must exist at boot: the management interface's
//! configuration (static address or DHCP client, DNS, NTP) and hostplane's bridges with their
//! ports and addresses.
//!
//! Flow: the network area calls [`render`] with the confirmed host settings and the stored
//! bridges, then [`write_dir`], which writes each file atomically (temp file, fsync, rename)
//! and removes the hostplane files that are no longer wanted. hostplane owns exactly the files
//! named `NN-hostplane-*.network|.netdev` in that directory; every other file there is left
//! alone. The `10-`/`20-` prefixes sort before a distribution's usual `50-`…`99-` files, so
//! networkd uses hostplane's file for these links (it takes the first `.network` that matches).

use std::io;
use std::path::Path;

use hostplane_types::network_host::{HostMode, HostSettings};

/// A bridge hostplane made, as the boot files need it.
#[derive(Debug, Clone, PartialEq)]
pub struct BootBridge {
    pub name: String,
    pub stp: bool,
    /// Seconds; None leaves networkd's (the kernel's) default.
    pub forward_delay_s: Option<u8>,
    pub mtu: Option<u32>,
    pub ports: Vec<String>,
    /// CIDRs hostplane added on the bridge.
    pub addresses: Vec<String>,
}

/// One rendered file: its name in the directory and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct BootFile {
    pub name: String,
    pub text: String,
}

const HEADER: &str = "# Written by hostplane. Do not edit: hostplane rewrites or removes every \
NN-hostplane-* file\n# here after each network change and at start (docs/network.md).\n";

/// Whether `name` is a file hostplane owns in the networkd directory.
pub fn is_owned(name: &str) -> bool {
    let Some((prefix, rest)) = name.split_once('-') else {
        return false;
    };
    prefix.len() == 2
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && rest.starts_with("hostplane-")
        && (name.ends_with(".network") || name.ends_with(".netdev"))
}

/// The files for `host` (None: hostplane never had host settings confirmed) and `bridges`,
/// sorted by name.
pub fn render(host: Option<&HostSettings>, bridges: &[BootBridge]) -> Vec<BootFile> {
    let mut out = Vec::new();
    if let Some(h) = host {
        let mut t = format!("{HEADER}\n[Match]\nName={}\n\n[Network]\n", h.interface);
        match h.mode {
            HostMode::Dhcp => t.push_str("DHCP=ipv4\n"),
            HostMode::Static => {
                if let Some(a) = &h.address {
                    t.push_str(&format!("Address={a}\n"));
                }
                if let Some(g) = &h.gateway {
                    t.push_str(&format!("Gateway={g}\n"));
                }
            }
        }
        for d in &h.dns {
            t.push_str(&format!("DNS={d}\n"));
        }
        for n in &h.ntp {
            t.push_str(&format!("NTP={n}\n"));
        }
        out.push(BootFile {
            name: format!("10-hostplane-{}.network", h.interface),
            text: t,
        });
    }
    for b in bridges {
        let mut netdev = format!("{HEADER}\n[NetDev]\nName={}\nKind=bridge\n", b.name);
        if let Some(m) = b.mtu {
            netdev.push_str(&format!("MTUBytes={m}\n"));
        }
        netdev.push_str(&format!(
            "\n[Bridge]\nSTP={}\n",
            if b.stp { "yes" } else { "no" }
        ));
        if let Some(s) = b.forward_delay_s {
            netdev.push_str(&format!("ForwardDelaySec={s}\n"));
        }
        out.push(BootFile {
            name: format!("20-hostplane-{}.netdev", b.name),
            text: netdev,
        });
        let mut network = format!(
            "{HEADER}\n[Match]\nName={}\n\n[Network]\nConfigureWithoutCarrier=yes\nLinkLocalAddressing=no\n",
            b.name
        );
        for a in &b.addresses {
            network.push_str(&format!("Address={a}\n"));
        }
        out.push(BootFile {
            name: format!("20-hostplane-{}.network", b.name),
            text: network,
        });
        for p in &b.ports {
            out.push(BootFile {
                name: format!("21-hostplane-{}-port-{p}.network", b.name),
                text: format!(
                    "{HEADER}\n[Match]\nName={p}\n\n[Network]\nBridge={}\n",
                    b.name
                ),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Writes `files` into `dir` (created if missing) atomically, one by one, then removes the
/// hostplane-owned files not in `files`. Files hostplane does not own are never touched.
/// Returns the names removed.
pub fn write_dir(dir: &Path, files: &[BootFile]) -> io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    for f in files {
        let path = dir.join(&f.name);
        // Unchanged files are not rewritten (no needless mtime change for networkd).
        if std::fs::read_to_string(&path).ok().as_deref() == Some(f.text.as_str()) {
            continue;
        }
        crate::fsutil::write_atomic(&path, f.text.as_bytes(), 0o644)?;
    }
    let mut removed = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if is_owned(&name) && !files.iter().any(|f| f.name == name) {
            std::fs::remove_file(e.path())?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_host() -> HostSettings {
        HostSettings {
            interface: "eth0".into(),
            mode: HostMode::Static,
            address: Some("192.0.2.10/24".into()),
            gateway: Some("192.0.2.1".into()),
            dns: vec!["192.0.2.2".into(), "192.0.2.3".into()],
            hostname: Some("test.host".into()),
            ntp: vec!["pool.ntp.org".into()],
        }
    }

    #[test]
    fn static_management_interface() {
        let f = render(Some(&static_host()), &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "10-hostplane-eth0.network");
        assert_eq!(
            f[0].text,
            format!(
                "{HEADER}\n[Match]\nName=eth0\n\n[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.2\nDNS=192.0.2.3\nNTP=pool.ntp.org\n"
            )
        );
    }

    #[test]
    fn dhcp_management_interface() {
        let h = HostSettings {
            mode: HostMode::Dhcp,
            address: None,
            gateway: None,
            dns: vec![],
            ..static_host()
        };
        let f = render(Some(&h), &[]);
        assert_eq!(
            f[0].text,
            format!("{HEADER}\n[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\nNTP=pool.ntp.org\n")
        );
    }

    #[test]
    fn bridges_with_ports_and_addresses() {
        let b = BootBridge {
            name: "br0".into(),
            stp: true,
            forward_delay_s: Some(4),
            mtu: Some(9000),
            ports: vec!["eth1".into()],
            addresses: vec!["10.0.0.1/24".into()],
        };
        let f = render(None, &[b]);
        let names: Vec<&str> = f.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "20-hostplane-br0.netdev",
                "20-hostplane-br0.network",
                "21-hostplane-br0-port-eth1.network"
            ]
        );
        assert_eq!(
            f[0].text,
            format!(
                "{HEADER}\n[NetDev]\nName=br0\nKind=bridge\nMTUBytes=9000\n\n[Bridge]\nSTP=yes\nForwardDelaySec=4\n"
            )
        );
        assert_eq!(
            f[1].text,
            format!(
                "{HEADER}\n[Match]\nName=br0\n\n[Network]\nConfigureWithoutCarrier=yes\nLinkLocalAddressing=no\nAddress=10.0.0.1/24\n"
            )
        );
        assert_eq!(
            f[2].text,
            format!("{HEADER}\n[Match]\nName=eth1\n\n[Network]\nBridge=br0\n")
        );
    }

    #[test]
    fn ownership_by_name() {
        assert!(is_owned("10-hostplane-eth0.network"));
        assert!(is_owned("20-hostplane-br0.netdev"));
        assert!(!is_owned("50-dhcp.network"));
        assert!(!is_owned("10-hostplane-eth0.link"));
        assert!(!is_owned("hostplane-eth0.network"));
        assert!(!is_owned("100-hostplane-x.network"));
    }

    #[test]
    fn write_dir_replaces_own_files_and_leaves_others() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("50-foreign.network"), "x").unwrap();
        std::fs::write(d.path().join("20-hostplane-old.netdev"), "x").unwrap();
        let files = render(Some(&static_host()), &[]);
        let removed = write_dir(d.path(), &files).unwrap();
        assert_eq!(removed, ["20-hostplane-old.netdev"]);
        assert_eq!(
            std::fs::read_to_string(d.path().join("10-hostplane-eth0.network")).unwrap(),
            files[0].text
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("50-foreign.network")).unwrap(),
            "x"
        );
        // Nothing left but the two files (no temp files).
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
        assert!(write_dir(d.path(), &files).unwrap().is_empty());
    }
}
