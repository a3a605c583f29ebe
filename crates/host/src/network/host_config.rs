//! The management interface's live IPv4 configuration over rtnetlink: what it is now
//! ([`Netlink::snapshot`]), setting a static address and default route ([`Netlink::apply_static`]),
//! putting a snapshot back exactly ([`Netlink::restore`]) and the self-check after a change
//! ([`Netlink::check_static`]).
//!
//! Flow of a host settings change (crates/server/src/areas/network/changes.rs): snapshot →
//! persisted → apply → check → (confirm | restore). Only the named interface's IPv4 addresses
//! and the main table's IPv4 default routes are touched; IPv6 and every other link stay.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use serde::{Deserialize, Serialize};

use super::{EEXIST, NetError, Netlink, parse_address};

/// An IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route4 {
    pub destination: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index.
    pub oif: Option<u32>,
}

/// A default route as it is stored in a snapshot (by interface name: indexes change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRoute {
    pub gateway: Ipv4Addr,
    pub interface: String,
}

/// What the management interface has now: enough to put it back exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSnapshot {
    pub interface: String,
    pub up: bool,
    /// IPv4 addresses on the interface (`address`, `prefix_len`).
    pub addresses: Vec<(Ipv4Addr, u8)>,
    /// Every IPv4 default route of the main table (any interface: a change replaces them all).
    pub default_routes: Vec<DefaultRoute>,
}

/// True when `ip` is inside `net/len`.
pub fn in_subnet(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn parse_route4(m: &RouteMessage) -> Option<Route4> {
    if m.header.address_family != AddressFamily::Inet
        || m.header.table != RouteHeader::RT_TABLE_MAIN
    {
        return None;
    }
    let mut r = Route4 {
        destination: Ipv4Addr::UNSPECIFIED,
        prefix_len: m.header.destination_prefix_length,
        gateway: None,
        oif: None,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => r.destination = *d,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => r.gateway = Some(*g),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::Table(t) if *t != u32::from(RouteHeader::RT_TABLE_MAIN) => {
                return None;
            }
            _ => {}
        }
    }
    Some(r)
}

impl Netlink {
    /// The main table's IPv4 routes.
    pub async fn routes4(&self) -> Result<Vec<Route4>, NetError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<RouteMessage> = self.handle.route().get(msg).execute().try_collect().await?;
        Ok(msgs.iter().filter_map(parse_route4).collect())
    }

    /// IPv4 addresses of link `index`.
    async fn ipv4_on(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8, AddressMessage)>, NetError> {
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match parse_address(&m) {
                Some(a) if a.index == index => match a.address {
                    IpAddr::V4(v4) => Some((v4, a.prefix_len, m)),
                    IpAddr::V6(_) => None,
                },
                _ => None,
            })
            .collect())
    }

    /// The interface's state, IPv4 addresses and the IPv4 default routes now.
    pub async fn snapshot(&self, interface: &str) -> Result<LinkSnapshot, NetError> {
        let link = self
            .link(interface)
            .await?
            .ok_or_else(|| NetError::NoSuchLink(interface.to_string()))?;
        let addresses = self
            .ipv4_on(link.index)
            .await?
            .into_iter()
            .map(|(a, l, _)| (a, l))
            .collect();
        let links = self.links().await?;
        let name_of = |i: u32| links.iter().find(|l| l.index == i).map(|l| l.name.clone());
        let default_routes = self
            .routes4()
            .await?
            .into_iter()
            .filter(|r| r.prefix_len == 0)
            .filter_map(|r| {
                Some(DefaultRoute {
                    gateway: r.gateway?,
                    interface: name_of(r.oif?)?,
                })
            })
            .collect();
        Ok(LinkSnapshot {
            interface: interface.to_string(),
            up: link.up,
            addresses,
            default_routes,
        })
    }

    async fn del_default_routes(&self) -> Result<(), NetError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<RouteMessage> = self.handle.route().get(msg).execute().try_collect().await?;
        for m in msgs {
            if parse_route4(&m).is_some_and(|r| r.prefix_len == 0) {
                self.handle.route().del(m).execute().await?;
            }
        }
        Ok(())
    }

    async fn add_default_route(&self, gateway: Ipv4Addr, interface: &str) -> Result<(), NetError> {
        let index = self.index_of(interface).await?;
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        match self.handle.route().add(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) => match NetError::from(e) {
                NetError::Kernel { errno: EEXIST, .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Makes `want` the interface's only IPv4 addresses. The others go first: removing a
    /// primary address takes the secondaries of its network with it (unless the host sets
    /// `promote_secondaries`), so an address added before would vanish with the old one.
    async fn set_ipv4(&self, interface: &str, want: &[(Ipv4Addr, u8)]) -> Result<(), NetError> {
        let index = self.index_of(interface).await?;
        for (a, l, m) in self.ipv4_on(index).await? {
            if !want.contains(&(a, l)) {
                match self.handle.address().del(m).execute().await {
                    Ok(()) => {}
                    // Already gone with its primary.
                    Err(e) => match NetError::from(e) {
                        NetError::Kernel {
                            errno: super::EADDRNOTAVAIL,
                            ..
                        } => {}
                        other => return Err(other),
                    },
                }
            }
        }
        for (a, l) in want {
            match self
                .handle
                .address()
                .add(index, IpAddr::V4(*a), *l)
                .execute()
                .await
            {
                Ok(()) => {}
                Err(e) => match NetError::from(e) {
                    NetError::Kernel { errno: EEXIST, .. } => {}
                    other => return Err(other),
                },
            }
        }
        Ok(())
    }

    /// Link up, `address/prefix_len` its only IPv4 address, and (when given) the only IPv4
    /// default route via `gateway` on it. A gateway that is not on-link fails here (ENETUNREACH).
    pub async fn apply_static(
        &self,
        interface: &str,
        address: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), NetError> {
        self.set_up(interface, true).await?;
        self.set_ipv4(interface, &[(address, prefix_len)]).await?;
        self.del_default_routes().await?;
        if let Some(gw) = gateway {
            self.add_default_route(gw, interface).await?;
        }
        Ok(())
    }

    /// DHCP: link up, its static IPv4 addresses and the default routes on it removed (a lease
    /// brings them back).
    pub async fn clear_ipv4(&self, interface: &str) -> Result<(), NetError> {
        self.set_up(interface, true).await?;
        self.set_ipv4(interface, &[]).await?;
        self.del_default_routes().await
    }

    /// Adds an address and default route a DHCP lease gave (no other address is removed).
    pub async fn apply_lease(
        &self,
        interface: &str,
        address: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), NetError> {
        self.set_ipv4(interface, &[(address, prefix_len)]).await?;
        if let Some(gw) = gateway {
            self.del_default_routes().await?;
            self.add_default_route(gw, interface).await?;
        }
        Ok(())
    }

    /// Puts a snapshot back: the link state, exactly its IPv4 addresses, exactly its default
    /// routes (routes last: removing an address drops the routes through it).
    pub async fn restore(&self, s: &LinkSnapshot) -> Result<(), NetError> {
        self.set_up(&s.interface, true).await?;
        self.set_ipv4(&s.interface, &s.addresses).await?;
        self.del_default_routes().await?;
        for r in &s.default_routes {
            self.add_default_route(r.gateway, &r.interface).await?;
        }
        if !s.up {
            self.set_up(&s.interface, false).await?;
        }
        Ok(())
    }

    /// The self-check after a static change: the link is up (administratively, and not
    /// without carrier), the address is there, the default route is there. `Err` says what
    /// is missing.
    pub async fn check_static(
        &self,
        interface: &str,
        address: Option<(Ipv4Addr, u8)>,
        gateway: Option<Ipv4Addr>,
    ) -> Result<Result<(), String>, NetError> {
        let Some(link) = self.link(interface).await? else {
            return Ok(Err(format!("the link {interface} is gone")));
        };
        if !link.up {
            return Ok(Err(format!("the link {interface} is down")));
        }
        if matches!(
            link.oper_state.as_str(),
            "down" | "lowerlayerdown" | "notpresent"
        ) {
            return Ok(Err(format!(
                "the link {interface} has no carrier (state {})",
                link.oper_state
            )));
        }
        if let Some((a, l)) = address {
            let have = self.ipv4_on(link.index).await?;
            if !have.iter().any(|(x, y, _)| (*x, *y) == (a, l)) {
                return Ok(Err(format!("the address {a}/{l} is not on {interface}")));
            }
        }
        if let Some(gw) = gateway {
            let ok =
                self.routes4().await?.iter().any(|r| {
                    r.prefix_len == 0 && r.gateway == Some(gw) && r.oif == Some(link.index)
                });
            if !ok {
                return Ok(Err(format!("no default route via {gw} on {interface}")));
            }
        }
        Ok(Ok(()))
    }

    /// Every IPv4 address on every link with its link name.
    pub async fn all_ipv4(&self) -> Result<Vec<(String, Ipv4Addr, u8)>, NetError> {
        let links = self.links().await?;
        Ok(self
            .addresses()
            .await?
            .into_iter()
            .filter_map(|a| {
                let name = links.iter().find(|l| l.index == a.index)?.name.clone();
                match a.address {
                    IpAddr::V4(v4) => Some((name, v4, a.prefix_len)),
                    IpAddr::V6(_) => None,
                }
            })
            .collect())
    }
}

/// Writes the host name the kernel reports (`sethostname(2)`); only a daemon told to
/// (`[network] set_hostname`) calls it: a test daemon shares the host's UTS namespace.
pub fn set_kernel_hostname(name: &str) -> std::io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let r = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The kernel's host name now.
pub fn kernel_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(in_subnet(ip("10.0.0.7"), ip("10.0.0.1"), 24));
        assert!(!in_subnet(ip("10.0.1.7"), ip("10.0.0.1"), 24));
        assert!(in_subnet(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_subnet(ip("10.0.0.1"), ip("10.0.0.1"), 32));
    }

    #[test]
    fn default_route_message_parses_back() {
        let m = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway("192.0.2.1".parse().unwrap())
            .output_interface(3)
            .build();
        let r = parse_route4(&m).unwrap();
        assert_eq!(r.prefix_len, 0);
        assert_eq!(r.gateway, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(r.oif, Some(3));
    }
}
