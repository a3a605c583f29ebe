//! Host network adapter: links and addresses over rtnetlink, hostplane's nftables table through
//! `nft -j` ([`nft`]).
//!
//! Everything here acts on the network namespace the calling process is in: the daemon under
//! test runs inside a throwaway namespace (`ip netns exec`), so nothing here can reach the
//! host's own links from a test. Each call opens its own netlink socket ([`Netlink::open`]);
//! its connection task is aborted when the value drops. Kernel errors keep their errno
//! ([`NetError::Kernel`]) so the area maps "exists", "not supported" and "invalid" to 4xx/501.

pub mod dhcp_client;
pub mod dnsmasq;
pub mod host_config;
pub mod networkd;
pub mod nft;
pub mod route;
pub mod sysctl;

use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
pub use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::link::MacVlanMode;
use rtnetlink::packet_route::link::{
    BondMode, BridgeStpState, InfoData, LinkAttribute, LinkFlags, LinkInfo, State,
};
use rtnetlink::{Handle, LinkBond, LinkBridge, LinkMacVlan, LinkUnspec, LinkVeth, LinkVlan};

/// Why a netlink call failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel refused with this errno (positive, e.g. 17 EEXIST, 95 EOPNOTSUPP).
    #[error("the kernel refused: {message} (errno {errno})")]
    Kernel { errno: i32, message: String },
    #[error("no link named {0:?}")]
    NoSuchLink(String),
    #[error("netlink: {0}")]
    Other(String),
}

pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;
pub const ERANGE: i32 = 34;
pub const EOPNOTSUPP: i32 = 95;
pub const EADDRNOTAVAIL: i32 = 99;
pub const EBUSY: i32 = 16;

impl NetError {
    /// The errno the kernel answered, if it answered one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl From<rtnetlink::Error> for NetError {
    fn from(e: rtnetlink::Error) -> Self {
        match e {
            rtnetlink::Error::NetlinkError(m) => {
                let errno = -m.raw_code();
                NetError::Kernel {
                    errno,
                    message: std::io::Error::from_raw_os_error(errno).to_string(),
                }
            }
            other => NetError::Other(other.to_string()),
        }
    }
}

/// Traffic counters (the kernel's 64-bit statistics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkStats {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// One link as the kernel reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, … or `device` when the link has no kind.
    pub kind: String,
    pub up: bool,
    pub oper_state: String,
    pub mtu: u32,
    pub mac: Option<String>,
    /// Index of the bridge/bond this link is a port of.
    pub controller: Option<u32>,
    pub stats: LinkStats,
    pub alias: Option<String>,
    /// Bridge only: STP on.
    pub stp: Option<bool>,
    /// Bridge only: the STP forward delay in centiseconds (the kernel's clock_t, USER_HZ 100).
    pub forward_delay_cs: Option<u32>,
}

/// One address as the kernel reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkAddress {
    pub index: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// A netlink connection in the caller's network namespace.
pub struct Netlink {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn mac_string(bytes: &[u8]) -> Option<String> {
    // Links without a hardware address (lo, tun) report none or all zeros.
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

fn state_string(s: &State) -> String {
    match s {
        State::Up => "up".into(),
        State::Down => "down".into(),
        State::LowerLayerDown => "lowerlayerdown".into(),
        State::Dormant => "dormant".into(),
        State::Testing => "testing".into(),
        State::NotPresent => "notpresent".into(),
        State::Unknown => "unknown".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Reads one link message into a [`Link`].
pub fn parse_link(msg: &LinkMessage) -> Link {
    let mut l = Link {
        index: msg.header.index,
        name: String::new(),
        kind: "device".into(),
        up: msg.header.flags.contains(LinkFlags::Up),
        oper_state: "unknown".into(),
        mtu: 0,
        mac: None,
        controller: None,
        stats: LinkStats::default(),
        alias: None,
        stp: None,
        forward_delay_cs: None,
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Mtu(m) => l.mtu = *m,
            LinkAttribute::Address(b) => l.mac = mac_string(b),
            LinkAttribute::Controller(c) => l.controller = Some(*c),
            LinkAttribute::OperState(s) => l.oper_state = state_string(s),
            LinkAttribute::IfAlias(s) => l.alias = Some(s.clone()),
            LinkAttribute::Stats64(s) => {
                l.stats = LinkStats {
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_errors: s.rx_errors,
                    tx_errors: s.tx_errors,
                    rx_dropped: s.rx_dropped,
                    tx_dropped: s.tx_dropped,
                }
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => l.kind = k.to_string(),
                        LinkInfo::Data(InfoData::Bridge(b)) => {
                            use rtnetlink::packet_route::link::InfoBridge;
                            for o in b {
                                match o {
                                    InfoBridge::StpState(s) => {
                                        l.stp = Some(*s != BridgeStpState::Disabled)
                                    }
                                    InfoBridge::ForwardDelay(cs) => l.forward_delay_cs = Some(*cs),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    l
}

/// Reads one address message; `None` for one without an address attribute.
pub fn parse_address(msg: &AddressMessage) -> Option<LinkAddress> {
    // IFA_LOCAL is the interface's own address on point-to-point links, IFA_ADDRESS the peer;
    // elsewhere both are the same.
    let mut addr = None;
    for a in &msg.attributes {
        match a {
            AddressAttribute::Local(ip) => addr = Some(*ip),
            AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
            _ => {}
        }
    }
    Some(LinkAddress {
        index: msg.header.index,
        address: addr?,
        prefix_len: msg.header.prefix_len,
    })
}

/// The bond mode for its name as `ip link` writes it.
pub fn bond_mode(name: &str) -> Option<BondMode> {
    Some(match name {
        "balance-rr" => BondMode::BalanceRr,
        "active-backup" => BondMode::ActiveBackup,
        "balance-xor" => BondMode::BalanceXor,
        "broadcast" => BondMode::Broadcast,
        "802.3ad" => BondMode::Ieee8023Ad,
        "balance-tlb" => BondMode::BalanceTlb,
        "balance-alb" => BondMode::BalanceAlb,
        _ => return None,
    })
}

/// The link message `ip link add NAME type bridge stp_state 0|1` sends (up at once).
/// The link message `ip link add NAME type bridge stp_state 0|1 [forward_delay CS]` sends; the
/// forward delay in seconds (the kernel takes centiseconds).
pub fn bridge_message(name: &str, stp: bool, forward_delay_s: Option<u8>) -> LinkMessage {
    let b = LinkBridge::new(name).stp_state(if stp {
        BridgeStpState::KernelStp
    } else {
        BridgeStpState::Disabled
    });
    match forward_delay_s {
        Some(s) => b.forward_delay(u32::from(s) * 100).build(),
        None => b.build(),
    }
}

/// The link message `ip link add NAME link PARENT type vlan id ID` sends.
pub fn vlan_message(name: &str, parent_index: u32, vlan_id: u16) -> LinkMessage {
    LinkVlan::new(name, parent_index, vlan_id).build()
}

/// The link message `ip link add NAME type bond mode MODE` sends.
pub fn bond_message(name: &str, mode: BondMode) -> LinkMessage {
    LinkBond::new(name).mode(mode).build()
}

/// The link message `ip link add NAME type veth peer name PEER` sends.
pub fn veth_message(name: &str, peer: &str) -> LinkMessage {
    LinkVeth::new(name, peer).up().build()
}

/// The link message `ip link add NAME link PARENT type macvlan mode bridge` sends.
pub fn macvlan_message(name: &str, parent_index: u32) -> LinkMessage {
    LinkMacVlan::new(name, parent_index, MacVlanMode::Bridge)
        .up()
        .build()
}

/// Creates a persistent tap device (`ip tuntap add dev NAME mode tap`): a tap is made with an
/// ioctl on /dev/net/tun, which netlink cannot do.
pub async fn create_tap(name: &str) -> Result<(), NetError> {
    let out = crate::command::Cmd::new("ip")
        .args(["tuntap", "add", "dev", name, "mode", "tap"])
        .timeout(std::time::Duration::from_secs(10))
        .run()
        .await;
    match out {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            if text.contains("File exists") || text.contains("Device or resource busy") {
                Err(NetError::Kernel {
                    errno: EEXIST,
                    message: text,
                })
            } else {
                Err(NetError::Other(text))
            }
        }
    }
}

impl Netlink {
    /// Opens a netlink socket in this process's network namespace.
    pub fn open() -> Result<Netlink, NetError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| NetError::Other(e.to_string()))?;
        let task = tokio::spawn(conn);
        Ok(Netlink { handle, task })
    }

    pub async fn links(&self) -> Result<Vec<Link>, NetError> {
        let msgs: Vec<LinkMessage> = self.handle.link().get().execute().try_collect().await?;
        Ok(msgs.iter().map(parse_link).collect())
    }

    /// The link named `name`, or `None`.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        let r: Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_collect()
            .await;
        match r {
            Ok(m) => Ok(m.first().map(parse_link)),
            Err(e) => match NetError::from(e) {
                NetError::Kernel { errno: ENODEV, .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn index_of(&self, name: &str) -> Result<u32, NetError> {
        self.link(name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| NetError::NoSuchLink(name.to_string()))
    }

    pub async fn addresses(&self) -> Result<Vec<LinkAddress>, NetError> {
        let msgs: Vec<AddressMessage> = self.handle.address().get().execute().try_collect().await?;
        Ok(msgs.iter().filter_map(parse_address).collect())
    }

    /// Sends a prepared "new link" message (create only: EEXIST when the name is taken).
    pub async fn add_link(&self, msg: LinkMessage) -> Result<(), NetError> {
        self.handle.link().add(msg).execute().await?;
        Ok(())
    }

    pub async fn create_bridge(
        &self,
        name: &str,
        stp: bool,
        forward_delay_s: Option<u8>,
    ) -> Result<(), NetError> {
        self.add_link(bridge_message(name, stp, forward_delay_s))
            .await
    }

    pub async fn delete_link(&self, name: &str) -> Result<(), NetError> {
        let index = self.index_of(name).await?;
        self.handle.link().del(index).execute().await?;
        Ok(())
    }

    /// Makes `port` a port of `controller` (`ip link set PORT master BR`), or of nothing.
    pub async fn set_controller(
        &self,
        port: &str,
        controller: Option<&str>,
    ) -> Result<(), NetError> {
        let index = self.index_of(port).await?;
        let b = LinkUnspec::new_with_index(index);
        let msg = match controller {
            Some(c) => b.controller(self.index_of(c).await?).build(),
            None => b.nocontroller().build(),
        };
        self.handle.link().set(msg).execute().await?;
        Ok(())
    }

    pub async fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), NetError> {
        let index = self.index_of(name).await?;
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.handle.link().set(msg).execute().await?;
        Ok(())
    }

    pub async fn set_up(&self, name: &str, up: bool) -> Result<(), NetError> {
        let index = self.index_of(name).await?;
        let b = LinkUnspec::new_with_index(index);
        let msg = if up { b.up() } else { b.down() }.build();
        self.handle.link().set(msg).execute().await?;
        Ok(())
    }

    pub async fn add_address(
        &self,
        name: &str,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetError> {
        let index = self.index_of(name).await?;
        self.handle
            .address()
            .add(index, address, prefix_len)
            .execute()
            .await?;
        Ok(())
    }

    /// Removes `address/prefix_len` from link `name`; `Ok(false)` when it is not there.
    pub async fn delete_address(
        &self,
        name: &str,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<bool, NetError> {
        let index = self.index_of(name).await?;
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await?;
        for m in msgs {
            if let Some(a) = parse_address(&m)
                && a.index == index
                && a.address == address
                && a.prefix_len == prefix_len
            {
                self.handle.address().del(m).execute().await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The link index of `name` (for VLAN parents).
    pub async fn index(&self, name: &str) -> Result<u32, NetError> {
        self.index_of(name).await
    }
}

/// Whether this process runs in a network namespace that `ip netns` named (one bound under
/// `/run/netns`): a namespace made on purpose, never the host's own. (PID 1's namespace cannot
/// be the reference: `/proc/1/ns/net` may be unreadable even for root.)
pub fn in_named_netns() -> bool {
    in_named_netns_under(std::path::Path::new("/run/netns"))
}

fn in_named_netns_under(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &std::path::Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let Some(me) = id(std::path::Path::new("/proc/self/ns/net")) else {
        return false;
    };
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| id(&e.path()) == Some(me))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_message_names_the_kind_and_stp() {
        let m = bridge_message("br-t", true, Some(4));
        let l = parse_link(&m);
        assert_eq!(l.name, "br-t");
        assert_eq!(l.kind, "bridge");
        assert_eq!(l.stp, Some(true));
        assert_eq!(l.forward_delay_cs, Some(400));
        assert!(l.up);
        let plain = parse_link(&bridge_message("b", false, None));
        assert_eq!(plain.stp, Some(false));
        assert_eq!(
            plain.forward_delay_cs, None,
            "the kernel's default is left alone"
        );
    }

    #[test]
    fn a_plain_directory_names_no_namespace() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x"), "").unwrap();
        assert!(!in_named_netns_under(d.path()));
    }

    #[test]
    fn macs_and_modes() {
        assert_eq!(mac_string(&[0; 6]), None);
        assert_eq!(
            mac_string(&[0x02, 0, 0, 0xab, 0xcd, 0xef]).as_deref(),
            Some("02:00:00:ab:cd:ef")
        );
        assert_eq!(bond_mode("802.3ad"), Some(BondMode::Ieee8023Ad));
        assert_eq!(bond_mode("x"), None);
    }

    #[test]
    fn vlan_message_carries_parent_and_id() {
        let m = vlan_message("v100", 7, 100);
        let l = parse_link(&m);
        assert_eq!(l.kind, "vlan");
        assert!(m.attributes.contains(&LinkAttribute::Link(7)));
    }
}

#[cfg(test)]
mod netlink_capture_tests;
