//! Network area (`/api/v1/network`): links, bridges, addresses, NAT rules and port forwards.
//! hostplane manages what it created (`managed_by: hostplane`) and shows everything else as
//! `foreign`, read-only. See docs/network.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX_LEN: usize = 15;

// The request schemas carry the rules the server checks, so that schema-valid input is refused
// only where the host's state decides. `#[schema(pattern)]` needs a literal, so the schemas copy
// these texts; a server test checks the copies in the OpenAPI document equal them and that
// what a pattern accepts, the server's parser accepts.

/// An IPv4 address as Rust's parser takes it (dotted quad, no leading zeros).
pub const IPV4_PATTERN: &str = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$";
/// An IPv4 address with a prefix length 0–32 (no leading zeros).
pub const IPV4_CIDR_PATTERN: &str = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$";
/// An IPv4 or IPv6 address (IPv6 in its plain colon forms; the parser also takes an embedded
/// IPv4 tail, which the pattern leaves out).
pub const IP_PATTERN: &str = r"^(((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])|(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,7}:|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}|:((:[0-9A-Fa-f]{1,4}){1,7}|:)))$";
/// An IPv4 (prefix 0–32) or IPv6 (prefix 0–128) address in CIDR notation.
pub const CIDR_PATTERN: &str = r"^(((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])|(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,7}:|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}|:((:[0-9A-Fa-f]{1,4}){1,7}|:))/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$";
/// Free text kept by hostplane: no control characters (with maxLength 256).
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";

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
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", max_length = 256)]
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
    /// STP forward delay in seconds, as the kernel has it (a managed bridge that is missing:
    /// the stored value, or none).
    pub forward_delay_s: Option<u32>,
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
    /// STP forward delay in seconds (802.1D's 4–30 s, Linux takes 2–30); absent: the kernel's
    /// default (15 s).
    #[serde(default)]
    #[schema(minimum = 2, maximum = 30)]
    pub forward_delay_s: Option<u8>,
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
    #[schema(
        example = "192.0.2.1/24",
        pattern = r"^(((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])|(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,7}:|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}|:((:[0-9A-Fa-f]{1,4}){1,7}|:))/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$",
        max_length = 43
    )]
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
    #[schema(
        example = "10.10.0.0/24",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$",
        max_length = 18
    )]
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
    #[schema(
        example = "10.10.0.5",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        max_length = 15
    )]
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
    #[schema(
        example = "192.0.2.10",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        max_length = 15
    )]
    pub listen_address: String,
    /// 1–256 ports.
    #[schema(min_items = 1, max_items = 256)]
    pub ports: Vec<ForwardPort>,
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", max_length = 256)]
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
    pub mode: BondMode,
}

/// A bond's mode (the kernel's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum BondMode {
    #[serde(rename = "balance-rr")]
    BalanceRr,
    #[serde(rename = "active-backup")]
    ActiveBackup,
    #[serde(rename = "balance-xor")]
    BalanceXor,
    #[serde(rename = "broadcast")]
    Broadcast,
    #[serde(rename = "802.3ad")]
    Lacp,
    #[serde(rename = "balance-tlb")]
    BalanceTlb,
    #[serde(rename = "balance-alb")]
    BalanceAlb,
}

impl BondMode {
    /// The kernel's (and iproute2's) name.
    pub fn as_str(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Lacp => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }
}

/// A route in the main table (`ip route`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Route {
    pub href: String,
    /// Opaque id (no slashes; today `network~prefix~metric`, do not parse it).
    pub id: String,
    /// Destination CIDR (`0.0.0.0/0` is the default route).
    pub destination: String,
    pub gateway: Option<String>,
    pub interface: Option<String>,
    pub metric: u32,
    /// `inet` or `inet6`.
    pub family: String,
    /// How the kernel got it: `kernel`, `boot`, `static`, `dhcp`, …
    pub protocol: String,
    pub managed_by: ManagedBy,
}

/// Body of `POST /network/routes`: a gateway, an interface, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCreate {
    /// CIDR (host bits are cleared); `0.0.0.0/0` or `::/0` for a default route.
    #[schema(
        example = "10.20.0.0/16",
        pattern = r"^(((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])|(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,7}:|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}|:((:[0-9A-Fa-f]{1,4}){1,7}|:))/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$",
        max_length = 43
    )]
    pub destination: String,
    /// Next hop, same family as the destination.
    #[schema(
        example = "192.0.2.1",
        pattern = r"^(((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])|(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,7}:|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}|:((:[0-9A-Fa-f]{1,4}){1,7}|:)))$",
        max_length = 39
    )]
    pub gateway: Option<String>,
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub interface: Option<String>,
    /// 0–4294967295 (default 0).
    #[serde(default)]
    pub metric: u32,
}

/// IP forwarding, globally and per interface (`/proc/sys/net/*/forwarding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Forwarding {
    pub ipv4: bool,
    pub ipv6: bool,
    /// Per interface, for every link.
    pub interfaces: Vec<InterfaceForwarding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterfaceForwarding {
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub name: String,
    pub ipv4: Option<bool>,
    pub ipv6: Option<bool>,
}

/// Body of `PUT /network/forwarding`: what is absent stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardingUpdate {
    pub ipv4: Option<bool>,
    pub ipv6: Option<bool>,
    /// At most 64 entries.
    #[serde(default)]
    pub interfaces: Vec<InterfaceForwarding>,
}

/// Kind of virtual NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VnicKind {
    /// A veth pair: `name` and `peer`.
    Veth,
    /// A macvlan on `parent` (bridge mode).
    Macvlan,
    /// A persistent tap device.
    Tap,
}

/// A virtual NIC hostplane created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Vnic {
    pub href: String,
    pub name: String,
    pub kind: VnicKind,
    /// veth: the other end.
    pub peer: Option<String>,
    /// macvlan: the link it rides on.
    pub parent: Option<String>,
    /// Operational state, or `missing` when the stored link does not exist now.
    pub state: String,
    pub mac: Option<String>,
    pub managed_by: ManagedBy,
}

/// Body of `POST /network/vnics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VnicCreate {
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub name: String,
    pub kind: VnicKind,
    /// veth only: the peer's name.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub peer: Option<String>,
    /// macvlan only: the parent link.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub parent: Option<String>,
    /// Optional managed bridge to attach `name` to at once.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub bridge: Option<String>,
}

/// A DHCP server (dnsmasq) on a managed bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DhcpServer {
    pub href: String,
    pub interface: String,
    pub range_start: String,
    pub range_end: String,
    pub router: Option<String>,
    pub dns: Vec<String>,
    pub lease_time_s: u32,
    pub hosts: Vec<DhcpHost>,
    /// `running`, `starting` (restarting after a crash) or `stopped`.
    pub state: String,
    pub pid: Option<u32>,
}

/// Body of `POST /network/dhcp-servers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DhcpServerCreate {
    /// A bridge hostplane manages, with an IPv4 address whose subnet holds the range.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub interface: String,
    #[schema(
        example = "10.77.0.100",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        max_length = 15
    )]
    pub range_start: String,
    #[schema(
        example = "10.77.0.200",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        max_length = 15
    )]
    pub range_end: String,
    /// Default gateway handed out (inside the subnet).
    #[schema(
        example = "10.77.0.1",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        max_length = 15
    )]
    pub router: Option<String>,
    /// DNS servers handed out (IPv4, at most 8).
    #[serde(default)]
    #[schema(max_items = 8)]
    pub dns: Vec<String>,
    /// 120–31536000 s (default 3600).
    #[schema(minimum = 120, maximum = 31536000)]
    pub lease_time_s: Option<u32>,
}

/// A static DHCP host: this MAC always gets this address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DhcpHost {
    /// `aa:bb:cc:dd:ee:ff`.
    #[schema(pattern = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", max_length = 17)]
    pub mac: String,
    /// Inside the server's subnet.
    #[schema(
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        max_length = 15
    )]
    pub ip: String,
    /// 1–63 of a-z A-Z 0-9 `-`, not starting or ending with `-`.
    #[schema(
        pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        max_length = 63
    )]
    pub hostname: Option<String>,
}

/// A lease as dnsmasq recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DhcpLease {
    pub mac: String,
    pub ip: String,
    pub hostname: Option<String>,
    /// Unix time the lease ends (0: never).
    pub expires_unix: u64,
    pub client_id: Option<String>,
    /// The MAC is one of the server's static hosts.
    #[serde(rename = "static")]
    pub is_static: bool,
}

/// The provisioning network (ZoneweaverAPI's): a bridge with an address, NAT out of the
/// default route's interface, forwarding on, and a DHCP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProvisioningNetwork {
    pub bridge: String,
    pub address: String,
    pub range_start: String,
    pub range_end: String,
    pub nat: bool,
    /// The interface NAT leaves through (the default route's when it was built).
    pub out_interface: Option<String>,
}

/// Body of `POST /network/provisioning-network`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningNetworkCreate {
    /// A new bridge's name.
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub bridge: String,
    /// The bridge's IPv4 address, CIDR.
    #[schema(
        example = "10.99.0.1/24",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$",
        max_length = 18
    )]
    pub address: String,
    #[schema(
        example = "10.99.0.100",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        max_length = 15
    )]
    pub range_start: String,
    #[schema(
        example = "10.99.0.200",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        max_length = 15
    )]
    pub range_end: String,
    #[serde(default = "yes")]
    pub nat: bool,
    /// DNS servers handed out (default: none).
    #[serde(default)]
    #[schema(max_items = 8)]
    pub dns: Vec<String>,
}

fn yes() -> bool {
    true
}
