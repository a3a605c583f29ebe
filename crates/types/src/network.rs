//! Network area (`/api/v1/network`): links, bridges, addresses, NAT rules and port forwards.
//! hostplane manages what it created (`managed_by: hostplane`) and shows everything else as
//! `foreign`, read-only. See docs/network.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX_LEN: usize = 15;

/// Who owns a link or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ManagedBy {
    /// Created by hostplane and kept in its store; re-created at daemon start.
    Hostplane,
    /// Anything else (the host's network service, another tool, the kernel): read-only here.
    Foreign,
}

/// Traffic counters of a link (the kernel's 64-bit statistics).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InterfaceStats {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// An address on a link, as it appears in `interfaces[].addresses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InterfaceAddress {
    /// Opaque id: `/api/v1/network/addresses/{id}`.
    pub id: String,
    /// CIDR, e.g. `192.0.2.1/24` or `2001:db8::1/64`.
    pub address: String,
}

/// A network link (`ip link`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Interface {
    pub href: String,
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// `bridge`, `veth`, `macvlan`, `tun`, `vlan`, … or `device` for a link with no kind
    /// (a physical NIC, `lo`).
    pub kind: String,
    /// Operational state: `up`, `down`, `lowerlayerdown`, `dormant`, `unknown`, …
    pub state: String,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mtu: u32,
    /// Hardware address, `aa:bb:cc:dd:ee:ff`; absent for links without one.
    pub mac: Option<String>,
    pub addresses: Vec<InterfaceAddress>,
    pub stats: InterfaceStats,
    /// The bridge (or bond) this link is a port of.
    pub master: Option<String>,
    /// The ports of this link when it is a bridge or bond.
    pub ports: Vec<String>,
    pub managed_by: ManagedBy,
    /// Free text kept by hostplane (managed links only).
    pub description: Option<String>,
}

/// Body of `PATCH /network/interfaces/{name}` (hostplane-managed links only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterfaceUpdate {
    /// 68–65535.
    #[schema(minimum = 68, maximum = 65535)]
    pub mtu: Option<u32>,
    pub up: Option<bool>,
    /// At most 256 characters, no control characters; empty clears it.
    #[schema(max_length = 256)]
    pub description: Option<String>,
}

/// A Linux bridge (a bridge with no ports is ZoneweaverAPI's etherstub).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Bridge {
    pub href: String,
    pub name: String,
    pub ports: Vec<String>,
    /// Spanning tree protocol on.
    pub stp: bool,
    /// Operational state of the bridge link (`up`, `down`, …).
    pub state: String,
    pub mtu: u32,
    pub managed_by: ManagedBy,
    /// Ports stored for a managed bridge that do not exist now (attached again when they
    /// reappear and the daemon starts).
    pub missing_ports: Vec<String>,
}

/// Body of `POST /network/bridges`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgeCreate {
    /// 1–15 of A-Z a-z 0-9 _ . -, starting with a letter or digit, never `..`.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub name: String,
    /// Existing links to attach (none: an etherstub).
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub stp: bool,
}

/// Body of `POST /network/bridges/{name}/ports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgePortAdd {
    /// An existing link that is no other link's port.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub interface: String,
}

/// An IP address on a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    pub href: String,
    /// Opaque id (no slashes).
    pub id: String,
    pub interface: String,
    /// CIDR.
    pub address: String,
    /// `inet` or `inet6`.
    pub family: String,
    pub managed_by: ManagedBy,
}

/// Body of `POST /network/addresses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressCreate {
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub interface: String,
    /// CIDR, e.g. `192.0.2.1/24` or `2001:db8::1/64`.
    #[schema(example = "192.0.2.1/24")]
    pub address: String,
}

/// Kind of NAT rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NatType {
    /// Source NAT to the out-interface's address.
    Masquerade,
}

/// A NAT rule in hostplane's nftables table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NatRule {
    pub href: String,
    pub id: String,
    #[serde(rename = "type")]
    pub r#type: NatType,
    /// IPv4 network whose traffic is translated (CIDR).
    pub source: String,
    /// Link the traffic leaves through.
    pub out_interface: String,
}

/// Body of `POST /network/nat-rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NatRuleCreate {
    #[serde(rename = "type")]
    pub r#type: NatType,
    /// IPv4 CIDR, e.g. `10.10.0.0/24`.
    #[schema(example = "10.10.0.0/24")]
    pub source: String,
    /// The link traffic leaves through (need not exist yet).
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub out_interface: String,
}

/// Transport protocol of a forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForwardProtocol {
    Tcp,
    Udp,
}

/// One forwarded port (Incus's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardPort {
    pub protocol: ForwardProtocol,
    #[schema(minimum = 1, maximum = 65535)]
    pub listen_port: u16,
    /// IPv4 address traffic is sent to.
    pub target_address: String,
    /// Absent: the listen port.
    #[schema(minimum = 1, maximum = 65535)]
    pub target_port: Option<u16>,
}

/// A port forward (DNAT) in hostplane's nftables table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PortForward {
    pub href: String,
    pub id: String,
    /// IPv4 address the ports are reached on.
    pub listen_address: String,
    pub ports: Vec<ForwardPort>,
    pub description: Option<String>,
}

/// Body of `POST /network/port-forwards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortForwardCreate {
    #[schema(example = "192.0.2.10")]
    pub listen_address: String,
    /// 1–256 ports.
    pub ports: Vec<ForwardPort>,
    #[schema(max_length = 256)]
    pub description: Option<String>,
}

/// Body of `POST /network/vlans`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VlanCreate {
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub name: String,
    /// The link the VLAN rides on.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub parent: String,
    /// 1–4094.
    #[schema(minimum = 1, maximum = 4094)]
    pub vlan_id: u16,
}

/// Body of `POST /network/bonds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BondCreate {
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub name: String,
    /// `balance-rr`, `active-backup`, `balance-xor`, `broadcast`, `802.3ad`, `balance-tlb`,
    /// `balance-alb`.
    pub mode: String,
}
