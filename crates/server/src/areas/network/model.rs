//! What hostplane manages, as stored (`network_objects`: kind, id, JSON spec), and the checks
//! every request passes before anything is touched: interface names, CIDRs, ports.

use std::net::{IpAddr, Ipv4Addr};

use hostplane_types::network::{ForwardPort, IFNAME_MAX_LEN};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;
use crate::platform::time;

pub const KIND_BRIDGE: &str = "bridge";
pub const KIND_ADDRESS: &str = "address";
pub const KIND_NAT: &str = "nat";
pub const KIND_FORWARD: &str = "forward";
pub const KIND_LINK: &str = "link";
pub const KIND_ROUTE: &str = "route";
pub const KIND_VNIC: &str = "vnic";
pub const KIND_DHCP: &str = "dhcp";
pub const KIND_FORWARDING: &str = "forwarding";
pub const KIND_PROVISIONING: &str = "provisioning";

/// A route hostplane added (main table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteRec {
    /// Network address (host bits cleared).
    pub destination: IpAddr,
    pub prefix_len: u8,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub metric: u32,
}

impl RouteRec {
    pub fn id(&self) -> String {
        route_id(self.destination, self.prefix_len, self.metric)
    }
}

/// A route's opaque id: destination, prefix and metric joined by `~` (what tells routes of the
/// main table apart; the interface may be the kernel's choice).
pub fn route_id(dest: IpAddr, prefix_len: u8, metric: u32) -> String {
    format!("{dest}~{prefix_len}~{metric}")
}

/// A virtual NIC hostplane created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VnicRec {
    pub name: String,
    pub kind: hostplane_types::network::VnicKind,
    #[serde(default)]
    pub peer: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
}

/// A static DHCP host as stored (MAC lower-case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DhcpHostRec {
    pub mac: String,
    pub ip: Ipv4Addr,
    #[serde(default)]
    pub hostname: Option<String>,
}

/// A DHCP server on a managed bridge (keyed by the bridge's name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DhcpRec {
    pub interface: String,
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    /// The subnet's prefix (from the bridge address that holds the range).
    pub prefix_len: u8,
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    pub lease_time_s: u32,
    #[serde(default)]
    pub hosts: Vec<DhcpHostRec>,
}

/// Forwarding switches set through `PUT /network/forwarding` (re-applied at start); key
/// `global` or an interface name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardingRec {
    #[serde(default)]
    pub ipv4: Option<bool>,
    #[serde(default)]
    pub ipv6: Option<bool>,
}

/// What the provisioning-network job built, so the teardown removes exactly that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisioningRec {
    pub bridge: String,
    pub address: String,
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    pub nat: bool,
    #[serde(default)]
    pub nat_id: Option<String>,
    #[serde(default)]
    pub out_interface: Option<String>,
}

/// A bridge hostplane created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeRec {
    pub name: String,
    pub ports: Vec<String>,
    pub stp: bool,
    #[serde(default)]
    pub forward_delay_s: Option<u8>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Administratively down when false (PATCH `up`).
    #[serde(default = "yes")]
    pub up: bool,
    #[serde(default)]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

/// A VLAN or bond hostplane created (only where the kernel has them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkRec {
    pub name: String,
    /// `vlan` or `bond`.
    pub kind: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub vlan_id: Option<u16>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// An address hostplane added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressRec {
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl AddressRec {
    pub fn id(&self) -> String {
        address_id(&self.interface, self.address, self.prefix_len)
    }
}

/// An address's opaque id: interface, address and prefix joined by `~` (no slashes, so it is
/// one path segment; clients treat it as opaque).
pub fn address_id(interface: &str, address: IpAddr, prefix_len: u8) -> String {
    format!("{interface}~{address}~{prefix_len}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatRec {
    pub id: String,
    /// Network address (host bits cleared).
    pub source: Ipv4Addr,
    pub prefix_len: u8,
    pub out_interface: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardRec {
    pub id: String,
    pub listen_address: Ipv4Addr,
    pub ports: Vec<ForwardPort>,
    #[serde(default)]
    pub description: Option<String>,
}

/// All stored objects of one kind, oldest first.
pub fn load<T: DeserializeOwned>(store: &Store, kind: &str) -> ApiResult<Vec<T>> {
    let specs: Vec<String> = store.read(|c| {
        let mut st = c.prepare(
            "SELECT spec FROM network_objects WHERE kind = ?1 ORDER BY created_at, id",
        )?;
        st.query_map([kind], |r| r.get(0))?.collect()
    })?;
    specs
        .iter()
        .map(|s| serde_json::from_str(s).map_err(ApiError::internal))
        .collect()
}

/// All stored objects of one kind by id.
pub fn load_keyed<T: DeserializeOwned>(
    store: &Store,
    kind: &str,
) -> ApiResult<std::collections::BTreeMap<String, T>> {
    let rows: Vec<(String, String)> = store.read(|c| {
        let mut st = c.prepare("SELECT id, spec FROM network_objects WHERE kind = ?1")?;
        st.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
    })?;
    rows.into_iter()
        .map(|(id, s)| Ok((id, serde_json::from_str(&s).map_err(ApiError::internal)?)))
        .collect()
}

/// Inserts or replaces one object.
pub fn put<T: Serialize>(store: &Store, kind: &str, id: &str, spec: &T) -> ApiResult<()> {
    let spec = serde_json::to_string(spec).map_err(ApiError::internal)?;
    store.write(|tx| {
        tx.execute(
            "INSERT INTO network_objects (kind, id, spec, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (kind, id) DO UPDATE SET spec = excluded.spec",
            rusqlite::params![kind, id, spec, time::now_string()],
        )?;
        Ok(())
    })?;
    Ok(())
}

pub fn remove(store: &Store, kind: &str, id: &str) -> ApiResult<()> {
    store.write(|tx| {
        tx.execute(
            "DELETE FROM network_objects WHERE kind = ?1 AND id = ?2",
            [kind, id],
        )?;
        Ok(())
    })?;
    Ok(())
}

/// A Linux interface name hostplane will name: 1–15 of A-Z a-z 0-9 `_` `.` `-`, starting with a
/// letter or digit, never `..` (so never `.`/`..`, nothing a path or an option could be made of).
pub fn check_ifname(field: &str, name: &str) -> ApiResult<()> {
    let bad = |why: &str| {
        ApiError::invalid_field(
            "invalid_interface_name",
            field,
            format!("{name:?} is not a valid interface name: {why}"),
        )
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > IFNAME_MAX_LEN {
        return Err(bad("longer than 15 bytes"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(bad("must start with a letter or digit"));
    }
    if name.contains("..") {
        return Err(bad("contains `..`"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(bad("only A-Z a-z 0-9 _ . - are allowed"));
    }
    Ok(())
}

/// Parses `ADDRESS/PREFIX` (IPv4 or IPv6) strictly.
pub fn parse_cidr(field: &str, s: &str) -> ApiResult<(IpAddr, u8)> {
    let bad = || {
        ApiError::invalid_field(
            "invalid_cidr",
            field,
            format!("{s:?} is not an address in CIDR notation (e.g. 192.0.2.1/24, 2001:db8::1/64)"),
        )
    };
    let (ip, len) = s.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    // Digits only, no leading zero: `+24`, ` 24` and `024`-style surprises are refused (the
    // schemas' CIDR patterns say the same).
    if len.is_empty()
        || len.len() > 3
        || !len.bytes().all(|b| b.is_ascii_digit())
        || (len.len() > 1 && len.starts_with('0'))
    {
        return Err(bad());
    }
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok((ip, len))
}

/// An IPv4 CIDR, returned as its network (host bits cleared).
pub fn parse_ipv4_network(field: &str, s: &str) -> ApiResult<(Ipv4Addr, u8)> {
    match parse_cidr(field, s)? {
        (IpAddr::V4(ip), len) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Ok((Ipv4Addr::from(u32::from(ip) & mask), len))
        }
        (IpAddr::V6(_), _) => Err(ApiError::invalid_field(
            "ipv6_nat_unsupported",
            field,
            "NAT rules and port forwards are IPv4 only",
        )),
    }
}

/// The network of `ip/len` (host bits cleared).
pub fn network_of(ip: Ipv4Addr, len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & mask_bits(len))
}

pub fn mask_bits(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) }
}

/// A MAC address `aa:bb:cc:dd:ee:ff` (any case), returned lower-case.
pub fn parse_mac(field: &str, s: &str) -> ApiResult<String> {
    let ok = s.len() == 17
        && s.split(':').count() == 6
        && s.split(':').all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(ApiError::invalid_field(
            "invalid_mac",
            field,
            format!("{s:?} is not a MAC address like 02:00:00:aa:bb:cc"),
        ));
    }
    Ok(s.to_ascii_lowercase())
}

/// A host name label: 1–63 of a-z A-Z 0-9 `-`, not starting or ending with `-`.
pub fn check_hostname(field: &str, s: &str) -> ApiResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(ApiError::invalid_field(
            "invalid_hostname",
            field,
            "1–63 of a-z A-Z 0-9 and -, not starting or ending with -",
        ));
    }
    Ok(())
}

pub fn parse_ipv4(field: &str, s: &str) -> ApiResult<Ipv4Addr> {
    s.parse().map_err(|_| {
        ApiError::invalid_field(
            "invalid_address",
            field,
            format!("{s:?} is not an IPv4 address"),
        )
    })
}

/// Free text kept by hostplane: at most 256 characters, no control characters.
pub fn check_description(field: &str, s: &str) -> ApiResult<()> {
    if s.chars().count() > 256 || s.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "invalid_description",
            field,
            "at most 256 characters, no control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["br0", "hp-br.1", "a", "eth0_x", "123456789012345"] {
            check_ifname("name", ok).unwrap();
        }
        for bad in [
            "",
            "..",
            ".",
            "a..b",
            "-br",
            ".br",
            "1234567890123456",
            "br/0",
            "br 0",
            "br:0",
            "bré",
            "br\n",
        ] {
            let e = check_ifname("name", bad).unwrap_err();
            assert_eq!(e.code(), "invalid_interface_name", "{bad:?}");
        }
    }

    /// The schemas' pattern (a literal copy of `NAME_PATTERN`) with maxLength 15 accepts exactly
    /// what [`check_ifname`] accepts.
    #[test]
    fn schema_pattern_matches_check_ifname() {
        let re = regex::Regex::new(hostplane_types::NAME_PATTERN).unwrap();
        let alphabet = ['a', 'Z', '0', '_', '.', '-', ':', ' ', '/', 'é', '\n'];
        let mut words = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..4 {
            last = last
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            words.extend(last.iter().cloned());
        }
        words.extend(["a".repeat(15), "a".repeat(16)]);
        for w in &words {
            let schema_ok = re.is_match(w) && w.len() <= IFNAME_MAX_LEN;
            assert_eq!(schema_ok, check_ifname("x", w).is_ok(), "{w:?}");
        }
        let doc: serde_json::Value = serde_json::from_str(&crate::openapi_json()).unwrap();
        for (schema, field) in [
            ("BridgeCreate", "name"),
            ("BridgePortAdd", "interface"),
            ("AddressCreate", "interface"),
            ("NatRuleCreate", "out_interface"),
            ("VlanCreate", "name"),
            ("VlanCreate", "parent"),
            ("BondCreate", "name"),
        ] {
            let f = &doc["components"]["schemas"][schema]["properties"][field];
            assert_eq!(f["pattern"], hostplane_types::NAME_PATTERN, "{schema}.{field}");
            assert_eq!(f["maxLength"], 15, "{schema}.{field}");
        }
    }

    /// The address patterns of the request schemas: their copies in the document equal the
    /// constants, and what a pattern accepts the server's parser accepts (random strings over
    /// the characters addresses are made of, plus the edge cases).
    #[test]
    fn address_patterns_accept_only_what_the_server_parses() {
        use hostplane_types::network::{CIDR_PATTERN, IP_PATTERN, IPV4_CIDR_PATTERN, IPV4_PATTERN, TEXT_PATTERN};
        let doc: serde_json::Value = serde_json::from_str(&crate::openapi_json()).unwrap();
        for (schema, field, pattern) in [
            ("AddressCreate", "address", CIDR_PATTERN),
            ("RouteCreate", "destination", CIDR_PATTERN),
            ("RouteCreate", "gateway", IP_PATTERN),
            ("NatRuleCreate", "source", IPV4_CIDR_PATTERN),
            ("PortForwardCreate", "listen_address", IPV4_PATTERN),
            ("ForwardPort", "target_address", IPV4_PATTERN),
            ("DhcpServerCreate", "range_start", IPV4_PATTERN),
            ("DhcpHost", "ip", IPV4_PATTERN),
            ("ProvisioningNetworkCreate", "address", IPV4_CIDR_PATTERN),
            ("HostSettingsUpdate", "address", IPV4_CIDR_PATTERN),
            ("HostSettingsUpdate", "gateway", IPV4_PATTERN),
            ("PortForwardCreate", "description", TEXT_PATTERN),
            ("InterfaceUpdate", "description", TEXT_PATTERN),
        ] {
            let f = &doc["components"]["schemas"][schema]["properties"][field];
            assert_eq!(f["pattern"], pattern, "{schema}.{field}");
        }
        let v4 = regex::Regex::new(IPV4_PATTERN).unwrap();
        let v4c = regex::Regex::new(IPV4_CIDR_PATTERN).unwrap();
        let ip = regex::Regex::new(IP_PATTERN).unwrap();
        let cidr = regex::Regex::new(CIDR_PATTERN).unwrap();
        let text = regex::Regex::new(TEXT_PATTERN).unwrap();
        // A small xorshift: deterministic, no dependency.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Random near-addresses: dotted quads and colon groups of valid and invalid parts,
        // sometimes with a prefix, so the patterns match often enough to be tested.
        let pick = |next: &mut dyn FnMut() -> u64, from: &[&'static str]| from[(next() % from.len() as u64) as usize];
        let mut seen = [0usize; 4];
        for _ in 0..100_000 {
            let mut w = String::new();
            if next() % 2 == 0 {
                let parts = 3 + next() % 3;
                for i in 0..parts {
                    if i > 0 {
                        w.push('.');
                    }
                    w.push_str(pick(&mut next, &["0", "1", "9", "10", "99", "255", "256", "01", "a", ""]));
                }
            } else {
                let groups = 1 + next() % 9;
                let gap = next() % (groups + 2);
                for i in 0..groups {
                    w.push_str(if i == gap { "::" } else if i > 0 { ":" } else { "" });
                    w.push_str(pick(&mut next, &["0", "1", "ff", "ffff", "1ffff", "a", "g", ""]));
                }
                if gap == groups {
                    w.push_str("::");
                }
            }
            if next() % 2 == 0 {
                w.push('/');
                w.push_str(pick(&mut next, &["0", "9", "24", "32", "33", "64", "128", "129", "024", ""]));
            }
            if v4.is_match(&w) {
                seen[0] += 1;
                assert!(w.parse::<Ipv4Addr>().is_ok(), "{w}");
            }
            if ip.is_match(&w) {
                seen[1] += 1;
                assert!(w.parse::<IpAddr>().is_ok(), "{w}");
            }
            if cidr.is_match(&w) {
                seen[2] += 1;
                parse_cidr("a", &w).unwrap();
            }
            if v4c.is_match(&w) {
                seen[3] += 1;
                assert!(parse_cidr("a", &w).unwrap().0.is_ipv4(), "{w}");
            }
        }
        assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
        for ok in ["0.0.0.0", "255.255.255.255", "10.0.0.1"] {
            assert!(v4.is_match(ok) && ip.is_match(ok), "{ok}");
        }
        for ok in ["::", "::1", "1::", "fe80::1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8"] {
            assert!(ip.is_match(ok), "{ok}");
            ok.parse::<IpAddr>().unwrap();
            assert!(cidr.is_match(&format!("{ok}/128")) && !cidr.is_match(&format!("{ok}/129")));
        }
        for bad in ["256.0.0.1", "01.2.3.4", "1.2.3", "1:2:3:4:5:6:7:8:9", "1::2::3", ":1", "1.2.3.4 "] {
            assert!(!ip.is_match(bad), "{bad}");
        }
        for (ok, bad) in [("10.0.0.0/0", "10.0.0.0/33"), ("10.0.0.0/32", "10.0.0.0/024")] {
            assert!(v4c.is_match(ok) && !v4c.is_match(bad), "{ok} {bad}");
        }
        for s in ["", "web server", "ünïcode"] {
            assert!(text.is_match(s) && check_description("d", s).is_ok());
        }
        for s in ["a\nb", "\u{7f}", "\u{9f}", "\t"] {
            assert!(!text.is_match(s) && check_description("d", s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("a", "10.0.0.1/24").unwrap(),
            ("10.0.0.1".parse().unwrap(), 24)
        );
        assert_eq!(
            parse_cidr("a", "2001:db8::1/64").unwrap(),
            ("2001:db8::1".parse().unwrap(), 64)
        );
        for bad in [
            "10.0.0.1", "10.0.0.1/33", "10.0.0/24", "x/24", "10.0.0.1/+4", "10.0.0.1/", "::1/129",
            "10.0.0.1/24/1", "10.0.0.1/ 24", "10.0.0.1/0024", "10.0.0.1/024", "::1/00",
        ] {
            assert_eq!(parse_cidr("a", bad).unwrap_err().code(), "invalid_cidr", "{bad}");
        }
        assert_eq!(
            parse_ipv4_network("s", "10.1.2.3/16").unwrap(),
            (Ipv4Addr::new(10, 1, 0, 0), 16)
        );
        assert_eq!(
            parse_ipv4_network("s", "0.0.0.0/0").unwrap(),
            (Ipv4Addr::UNSPECIFIED, 0)
        );
        assert_eq!(
            parse_ipv4_network("s", "fd00::/8").unwrap_err().code(),
            "ipv6_nat_unsupported"
        );
    }

    #[test]
    fn macs_hostnames_networks() {
        assert_eq!(parse_mac("m", "02:AA:00:00:00:01").unwrap(), "02:aa:00:00:00:01");
        for bad in ["", "02:aa:00:00:00", "02-aa-00-00-00-01", "02:aa:00:00:00:0g", "02:aa:00:00:00:001"] {
            assert_eq!(parse_mac("m", bad).unwrap_err().code(), "invalid_mac", "{bad}");
        }
        check_hostname("h", "client-1").unwrap();
        for bad in ["", "-a", "a-", "a.b", "a b", &"a".repeat(64)] {
            assert!(check_hostname("h", bad).is_err(), "{bad}");
        }
        assert_eq!(network_of(Ipv4Addr::new(10, 1, 2, 3), 24), Ipv4Addr::new(10, 1, 2, 0));
        assert_eq!(network_of(Ipv4Addr::new(10, 1, 2, 3), 0), Ipv4Addr::UNSPECIFIED);
        assert!(!route_id("10.0.0.0".parse().unwrap(), 8, 0).contains('/'));
    }

    #[test]
    fn address_ids_have_no_slash() {
        let id = address_id("br0", "2001:db8::1".parse().unwrap(), 64);
        assert!(!id.contains('/'));
        assert_eq!(id, "br0~2001:db8::1~64");
    }
}
