//! Links, bridges and addresses: plain functions (no HTTP types) over the store and netlink.
//!
//! Each change: check the request completely → act on the kernel (undoing what was done if a
//! later step fails) → store the record. [`reconcile`] re-creates what the store holds at start.

use std::collections::HashMap;
use std::net::IpAddr;

use hostplane_host::network::{
    self as host, EADDRNOTAVAIL, EBUSY, EEXIST, EINVAL, EOPNOTSUPP, ERANGE, Link, NetError,
    Netlink,
};
use hostplane_types::network::{
    Address, Bridge, BridgeCreate, Interface, InterfaceAddress, InterfaceStats, InterfaceUpdate,
    ManagedBy,
};

use super::model::{
    self, AddressRec, BridgeRec, KIND_ADDRESS, KIND_BRIDGE, KIND_LINK, LinkRec, check_ifname,
};
use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;

pub fn interface_href(name: &str) -> String {
    format!("/api/v1/network/interfaces/{name}")
}
pub fn bridge_href(name: &str) -> String {
    format!("/api/v1/network/bridges/{name}")
}
pub fn address_href(id: &str) -> String {
    format!("/api/v1/network/addresses/{id}")
}

/// A netlink failure as an API error; `what` names the object for the message.
pub fn net_err(what: &str, e: NetError) -> ApiError {
    match &e {
        NetError::NoSuchLink(n) => ApiError::invalid("interface_not_found", format!("no interface named {n:?}")),
        NetError::Kernel { errno: EEXIST, .. } => {
            ApiError::conflict("network_exists", format!("{what} already exists"))
        }
        NetError::Kernel { errno: EBUSY, .. } => {
            ApiError::conflict("network_busy", format!("{what}: {e}"))
        }
        NetError::Kernel { errno: EOPNOTSUPP, .. } => ApiError::NotSupported {
            code: "network_kind_unsupported",
            detail: format!("{what}: this host's kernel does not support it ({e})"),
        },
        NetError::Kernel {
            errno: EINVAL | ERANGE | EADDRNOTAVAIL,
            ..
        } => ApiError::invalid("network_rejected", format!("{what}: {e}")),
        NetError::Kernel { errno: 1, .. } => ApiError::Unavailable {
            code: "network_permission",
            detail: format!("{what}: the daemon may not change the network (needs CAP_NET_ADMIN)"),
        },
        _ => ApiError::internal(format!("{what}: {e}")),
    }
}

fn open() -> ApiResult<Netlink> {
    Netlink::open().map_err(|e| net_err("netlink", e))
}

/// Names of the links hostplane manages, with their descriptions.
fn managed(store: &Store) -> ApiResult<HashMap<String, Option<String>>> {
    let mut m: HashMap<String, Option<String>> = model::load::<BridgeRec>(store, KIND_BRIDGE)?
        .into_iter()
        .map(|b| (b.name, b.description))
        .collect();
    for l in model::load::<LinkRec>(store, KIND_LINK)? {
        m.insert(l.name, l.description);
    }
    for v in super::vnics::names(store)? {
        m.entry(v).or_insert(None);
    }
    Ok(m)
}

fn cidr(a: IpAddr, len: u8) -> String {
    format!("{a}/{len}")
}

/// Every link with its addresses, ports and owner.
pub async fn interfaces(store: &Store) -> ApiResult<Vec<Interface>> {
    let nl = open()?;
    let links = nl.links().await.map_err(|e| net_err("listing links", e))?;
    let addrs = nl.addresses().await.map_err(|e| net_err("listing addresses", e))?;
    let managed = managed(store)?;
    let by_index: HashMap<u32, &Link> = links.iter().map(|l| (l.index, l)).collect();
    Ok(links
        .iter()
        .map(|l| Interface {
            href: interface_href(&l.name),
            name: l.name.clone(),
            index: l.index,
            kind: l.kind.clone(),
            state: l.oper_state.clone(),
            up: l.up,
            mtu: l.mtu,
            mac: l.mac.clone(),
            addresses: addrs
                .iter()
                .filter(|a| a.index == l.index)
                .map(|a| InterfaceAddress {
                    id: model::address_id(&l.name, a.address, a.prefix_len),
                    address: cidr(a.address, a.prefix_len),
                })
                .collect(),
            stats: InterfaceStats {
                rx_bytes: l.stats.rx_bytes,
                tx_bytes: l.stats.tx_bytes,
                rx_packets: l.stats.rx_packets,
                tx_packets: l.stats.tx_packets,
                rx_errors: l.stats.rx_errors,
                tx_errors: l.stats.tx_errors,
                rx_dropped: l.stats.rx_dropped,
                tx_dropped: l.stats.tx_dropped,
            },
            master: l
                .controller
                .and_then(|c| by_index.get(&c))
                .map(|m| m.name.clone()),
            ports: links
                .iter()
                .filter(|p| p.controller == Some(l.index))
                .map(|p| p.name.clone())
                .collect(),
            managed_by: if managed.contains_key(&l.name) {
                ManagedBy::Hostplane
            } else {
                ManagedBy::Foreign
            },
            description: managed.get(&l.name).cloned().flatten(),
        })
        .collect())
}

pub async fn interface(store: &Store, name: &str) -> ApiResult<Interface> {
    interfaces(store)
        .await?
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no interface named {name:?}")))
}

/// Bridges: the kernel's (managed or not) and stored ones that are missing now.
pub async fn bridges(store: &Store) -> ApiResult<Vec<Bridge>> {
    let nl = open()?;
    let links = nl.links().await.map_err(|e| net_err("listing links", e))?;
    let recs = model::load::<BridgeRec>(store, KIND_BRIDGE)?;
    let mut out: Vec<Bridge> = links
        .iter()
        .filter(|l| l.kind == "bridge")
        .map(|l| {
            let rec = recs.iter().find(|r| r.name == l.name);
            let ports: Vec<String> = links
                .iter()
                .filter(|p| p.controller == Some(l.index))
                .map(|p| p.name.clone())
                .collect();
            Bridge {
                href: bridge_href(&l.name),
                name: l.name.clone(),
                missing_ports: rec
                    .map(|r| {
                        r.ports
                            .iter()
                            .filter(|p| !links.iter().any(|x| &x.name == *p))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
                ports,
                stp: l.stp.unwrap_or(false),
                forward_delay_s: l.forward_delay_cs.map(|cs| cs.div_ceil(100)),
                state: l.oper_state.clone(),
                mtu: l.mtu,
                managed_by: if rec.is_some() {
                    ManagedBy::Hostplane
                } else {
                    ManagedBy::Foreign
                },
            }
        })
        .collect();
    for r in &recs {
        if !out.iter().any(|b| b.name == r.name) {
            out.push(Bridge {
                href: bridge_href(&r.name),
                name: r.name.clone(),
                ports: Vec::new(),
                stp: r.stp,
                forward_delay_s: r.forward_delay_s.map(u32::from),
                state: "missing".into(),
                mtu: r.mtu.unwrap_or(0),
                managed_by: ManagedBy::Hostplane,
                missing_ports: r.ports.clone(),
            });
        }
    }
    Ok(out)
}

pub async fn bridge(store: &Store, name: &str) -> ApiResult<Bridge> {
    bridges(store)
        .await?
        .into_iter()
        .find(|b| b.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no bridge named {name:?}")))
}

/// Why `port` cannot become a port of a bridge now (checked before anything changes).
fn check_port(links: &[Link], bridge: &str, port: &str, field: &str) -> ApiResult<()> {
    check_ifname(field, port)?;
    let l = links.iter().find(|l| l.name == port).ok_or_else(|| {
        ApiError::invalid_field("interface_not_found", field, format!("no interface named {port:?}"))
    })?;
    if port == bridge || l.kind == "bridge" || l.name == "lo" {
        return Err(ApiError::invalid_field(
            "invalid_port",
            field,
            format!("{port:?} cannot be a bridge port"),
        ));
    }
    if let Some(c) = l.controller {
        let owner = links
            .iter()
            .find(|x| x.index == c)
            .map(|x| x.name.clone())
            .unwrap_or_default();
        if owner != bridge {
            return Err(ApiError::conflict(
                "port_in_use",
                format!("{port:?} is already a port of {owner:?}"),
            ));
        }
    }
    Ok(())
}

/// Creates a bridge with its ports; on any failure the bridge is removed again.
pub async fn create_bridge(store: &Store, req: &BridgeCreate) -> ApiResult<Bridge> {
    check_ifname("name", &req.name)?;
    if req.ports.len() > 64 {
        return Err(ApiError::invalid_field("invalid_port", "ports", "at most 64 ports"));
    }
    if req.forward_delay_s.is_some_and(|s| !(2..=30).contains(&s)) {
        return Err(ApiError::invalid_field(
            "invalid_forward_delay",
            "forward_delay_s",
            "2–30 seconds",
        ));
    }
    let nl = open()?;
    let links = nl.links().await.map_err(|e| net_err("listing links", e))?;
    if links.iter().any(|l| l.name == req.name)
        || model::load::<BridgeRec>(store, KIND_BRIDGE)?
            .iter()
            .any(|b| b.name == req.name)
    {
        return Err(ApiError::conflict(
            "network_exists",
            format!("an interface named {:?} exists", req.name),
        ));
    }
    let mut ports = Vec::new();
    for (i, p) in req.ports.iter().enumerate() {
        check_port(&links, &req.name, p, &format!("ports[{i}]"))?;
        if ports.contains(p) {
            return Err(ApiError::invalid_field(
                "invalid_port",
                format!("ports[{i}]"),
                format!("{p:?} is named twice"),
            ));
        }
        ports.push(p.clone());
    }
    nl.create_bridge(&req.name, req.stp, req.forward_delay_s)
        .await
        .map_err(|e| net_err(&format!("bridge {:?}", req.name), e))?;
    let rec = BridgeRec {
        name: req.name.clone(),
        ports,
        stp: req.stp,
        forward_delay_s: req.forward_delay_s,
        mtu: None,
        up: true,
        description: None,
    };
    let done = async {
        for p in &rec.ports {
            nl.set_controller(p, Some(&rec.name))
                .await
                .map_err(|e| net_err(&format!("port {p:?}"), e))?;
        }
        model::put(store, KIND_BRIDGE, &rec.name, &rec)
    }
    .await;
    if let Err(e) = done {
        // Deleting the bridge releases any port already attached.
        let _ = nl.delete_link(&rec.name).await;
        return Err(e);
    }
    bridge(store, &rec.name).await
}

fn managed_bridge(store: &Store, name: &str) -> ApiResult<BridgeRec> {
    match model::load::<BridgeRec>(store, KIND_BRIDGE)?
        .into_iter()
        .find(|b| b.name == name)
    {
        Some(b) => Ok(b),
        None => Err(ApiError::not_found(format!(
            "no bridge named {name:?} managed by hostplane"
        ))),
    }
}

/// Deletes a managed bridge (its ports are released) and its stored addresses.
pub async fn delete_bridge(store: &Store, name: &str) -> ApiResult<()> {
    check_ifname("name", name)?;
    let rec = managed_bridge(store, name)?;
    let nl = open()?;
    match nl.delete_link(&rec.name).await {
        Ok(()) | Err(NetError::NoSuchLink(_)) => {}
        Err(e) => return Err(net_err(&format!("bridge {name:?}"), e)),
    }
    // The kernel dropped the bridge's addresses with it: so does the store.
    for a in model::load::<AddressRec>(store, KIND_ADDRESS)? {
        if a.interface == rec.name {
            model::remove(store, KIND_ADDRESS, &a.id())?;
        }
    }
    model::remove(store, KIND_BRIDGE, &rec.name)
}

pub async fn add_port(store: &Store, name: &str, port: &str) -> ApiResult<Bridge> {
    check_ifname("name", name)?;
    check_ifname("interface", port)?;
    let mut rec = managed_bridge(store, name)?;
    let nl = open()?;
    let links = nl.links().await.map_err(|e| net_err("listing links", e))?;
    check_port(&links, name, port, "interface")?;
    nl.set_controller(port, Some(name))
        .await
        .map_err(|e| net_err(&format!("port {port:?}"), e))?;
    if !rec.ports.iter().any(|p| p == port) {
        rec.ports.push(port.to_string());
    }
    if let Err(e) = model::put(store, KIND_BRIDGE, name, &rec) {
        let _ = nl.set_controller(port, None).await;
        return Err(e);
    }
    bridge(store, name).await
}

pub async fn remove_port(store: &Store, name: &str, port: &str) -> ApiResult<()> {
    check_ifname("name", name)?;
    check_ifname("port", port)?;
    let mut rec = managed_bridge(store, name)?;
    if !rec.ports.iter().any(|p| p == port) {
        return Err(ApiError::not_found(format!("{port:?} is not a port of {name:?}")));
    }
    let nl = open()?;
    if let Some(l) = nl.link(port).await.map_err(|e| net_err("reading links", e))?
        && l.controller.is_some()
    {
        nl.set_controller(port, None)
            .await
            .map_err(|e| net_err(&format!("port {port:?}"), e))?;
    }
    rec.ports.retain(|p| p != port);
    model::put(store, KIND_BRIDGE, name, &rec)
}

/// PATCH on a managed link: MTU, up/down, description.
pub async fn update_interface(store: &Store, name: &str, req: &InterfaceUpdate) -> ApiResult<Interface> {
    check_ifname("name", name)?;
    if let Some(m) = req.mtu
        && !(68..=65535).contains(&m)
    {
        return Err(ApiError::invalid_field("invalid_mtu", "mtu", "68–65535"));
    }
    if let Some(d) = &req.description {
        model::check_description("description", d)?;
    }
    let bridge = model::load::<BridgeRec>(store, KIND_BRIDGE)?
        .into_iter()
        .find(|b| b.name == name);
    let link = model::load::<LinkRec>(store, KIND_LINK)?
        .into_iter()
        .find(|l| l.name == name);
    if bridge.is_none() && link.is_none() {
        // Exists but foreign, or does not exist at all.
        interface(store, name).await?;
        return Err(ApiError::conflict(
            "interface_foreign",
            format!("{name:?} is not managed by hostplane; it is changed only where it is configured"),
        ));
    }
    let nl = open()?;
    if let Some(m) = req.mtu {
        nl.set_mtu(name, m)
            .await
            .map_err(|e| net_err(&format!("MTU {m} on {name:?}"), e))?;
    }
    if let Some(up) = req.up {
        nl.set_up(name, up)
            .await
            .map_err(|e| net_err(&format!("{name:?}"), e))?;
    }
    let desc = req
        .description
        .as_ref()
        .map(|d| Some(d.clone()).filter(|d| !d.is_empty()));
    if let Some(mut b) = bridge {
        b.mtu = req.mtu.or(b.mtu);
        b.up = req.up.unwrap_or(b.up);
        if let Some(d) = desc {
            b.description = d;
        }
        model::put(store, KIND_BRIDGE, name, &b)?;
    } else if let Some(mut l) = link {
        if let Some(d) = desc {
            l.description = d;
        }
        model::put(store, KIND_LINK, name, &l)?;
    }
    interface(store, name).await
}

/// Every address on every link, with its owner.
pub async fn addresses(store: &Store) -> ApiResult<Vec<Address>> {
    let managed: Vec<String> = model::load::<AddressRec>(store, KIND_ADDRESS)?
        .iter()
        .map(AddressRec::id)
        .collect();
    Ok(interfaces(store)
        .await?
        .into_iter()
        .flat_map(|i| {
            let managed = &managed;
            i.addresses.into_iter().map(move |a| Address {
                href: address_href(&a.id),
                managed_by: if managed.contains(&a.id) {
                    ManagedBy::Hostplane
                } else {
                    ManagedBy::Foreign
                },
                family: if a.address.contains(':') { "inet6" } else { "inet" }.into(),
                id: a.id,
                interface: i.name.clone(),
                address: a.address,
            })
        })
        .collect())
}

pub async fn address(store: &Store, id: &str) -> ApiResult<Address> {
    addresses(store)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no address with id {id:?}")))
}

pub async fn add_address(store: &Store, interface: &str, cidr: &str) -> ApiResult<Address> {
    check_ifname("interface", interface)?;
    let (ip, len) = model::parse_cidr("address", cidr)?;
    let rec = AddressRec {
        interface: interface.to_string(),
        address: ip,
        prefix_len: len,
    };
    let nl = open()?;
    if nl
        .link(interface)
        .await
        .map_err(|e| net_err("reading links", e))?
        .is_none()
    {
        return Err(ApiError::invalid_field(
            "interface_not_found",
            "interface",
            format!("no interface named {interface:?}"),
        ));
    }
    nl.add_address(interface, ip, len)
        .await
        .map_err(|e| net_err(&format!("address {cidr} on {interface:?}"), e))?;
    if let Err(e) = model::put(store, KIND_ADDRESS, &rec.id(), &rec) {
        let _ = nl.delete_address(interface, ip, len).await;
        return Err(e);
    }
    address(store, &rec.id()).await
}

/// Deletes an address hostplane added; any other is 409 (the host's own configuration owns it,
/// and removing it could cut off the admin).
pub async fn delete_address(store: &Store, id: &str) -> ApiResult<()> {
    let rec = model::load::<AddressRec>(store, KIND_ADDRESS)?
        .into_iter()
        .find(|a| a.id() == id);
    let Some(rec) = rec else {
        address(store, id).await?;
        return Err(ApiError::conflict(
            "address_foreign",
            format!("address {id:?} is not managed by hostplane"),
        ));
    };
    let nl = open()?;
    match nl
        .delete_address(&rec.interface, rec.address, rec.prefix_len)
        .await
    {
        Ok(_) | Err(NetError::NoSuchLink(_)) => {}
        Err(e) => return Err(net_err(&format!("address {id:?}"), e)),
    }
    model::remove(store, KIND_ADDRESS, id)
}

/// Creates a VLAN or bond as `msg` describes; where the kernel lacks the driver this is the
/// 501 `network_kind_unsupported` problem.
pub async fn create_link(store: &Store, rec: LinkRec, msg: host::LinkMessage) -> ApiResult<Interface> {
    let nl = open()?;
    if nl
        .link(&rec.name)
        .await
        .map_err(|e| net_err("reading links", e))?
        .is_some()
    {
        return Err(ApiError::conflict(
            "network_exists",
            format!("an interface named {:?} exists", rec.name),
        ));
    }
    nl.add_link(msg)
        .await
        .map_err(|e| net_err(&format!("{} {:?}", rec.kind, rec.name), e))?;
    if let Err(e) = model::put(store, KIND_LINK, &rec.name, &rec) {
        let _ = nl.delete_link(&rec.name).await;
        return Err(e);
    }
    interface(store, &rec.name).await
}

/// Parent index for a VLAN (422 when the parent does not exist).
pub async fn link_index(name: &str, field: &str) -> ApiResult<u32> {
    let nl = open()?;
    match nl.index(name).await {
        Ok(i) => Ok(i),
        Err(NetError::NoSuchLink(_)) => Err(ApiError::invalid_field(
            "interface_not_found",
            field,
            format!("no interface named {name:?}"),
        )),
        Err(e) => Err(net_err("reading links", e)),
    }
}

/// Deletes a managed VLAN or bond link (`DELETE /network/interfaces/{name}`); bridges go
/// through their own route.
pub async fn delete_link(store: &Store, name: &str) -> ApiResult<()> {
    check_ifname("name", name)?;
    if model::load::<BridgeRec>(store, KIND_BRIDGE)?
        .iter()
        .any(|b| b.name == name)
    {
        return delete_bridge(store, name).await;
    }
    let Some(rec) = model::load::<LinkRec>(store, KIND_LINK)?
        .into_iter()
        .find(|l| l.name == name)
    else {
        interface(store, name).await?;
        return Err(ApiError::conflict(
            "interface_foreign",
            format!("{name:?} is not managed by hostplane"),
        ));
    };
    let nl = open()?;
    match nl.delete_link(&rec.name).await {
        Ok(()) | Err(NetError::NoSuchLink(_)) => {}
        Err(e) => return Err(net_err(&format!("{name:?}"), e)),
    }
    model::remove(store, KIND_LINK, name)
}

/// Re-creates the stored bridges (with their ports, MTU and state), VLANs, bonds and addresses
/// that are missing; logs what it cannot, never fails the start.
pub async fn reconcile(store: &Store) -> ApiResult<()> {
    let nl = open()?;
    for b in model::load::<BridgeRec>(store, KIND_BRIDGE)? {
        let exists = nl.link(&b.name).await.ok().flatten().is_some();
        if !exists && let Err(e) = nl
            .create_bridge(&b.name, b.stp, b.forward_delay_s)
            .await {
            tracing::warn!(bridge = %b.name, error = %e, "could not re-create the bridge");
            continue;
        }
        for p in &b.ports {
            match nl.link(p).await {
                Ok(Some(l)) if l.controller.is_none() => {
                    if let Err(e) = nl.set_controller(p, Some(&b.name)).await {
                        tracing::warn!(bridge = %b.name, port = %p, error = %e, "could not attach the port");
                    }
                }
                Ok(Some(_)) => {}
                _ => tracing::warn!(bridge = %b.name, port = %p, "stored port is missing"),
            }
        }
        if let Some(m) = b.mtu {
            let _ = nl.set_mtu(&b.name, m).await;
        }
        if !b.up {
            let _ = nl.set_up(&b.name, false).await;
        }
    }
    for l in model::load::<LinkRec>(store, KIND_LINK)? {
        if nl.link(&l.name).await.ok().flatten().is_some() {
            continue;
        }
        let msg = match (l.kind.as_str(), &l.parent, l.vlan_id, &l.mode) {
            ("vlan", Some(p), Some(id), _) => match nl.index(p).await {
                Ok(i) => host::vlan_message(&l.name, i, id),
                Err(e) => {
                    tracing::warn!(link = %l.name, error = %e, "VLAN parent missing");
                    continue;
                }
            },
            ("bond", _, _, Some(m)) => match host::bond_mode(m) {
                Some(m) => host::bond_message(&l.name, m),
                None => continue,
            },
            _ => continue,
        };
        if let Err(e) = nl.add_link(msg).await {
            tracing::warn!(link = %l.name, error = %e, "could not re-create the link");
        }
    }
    for a in model::load::<AddressRec>(store, KIND_ADDRESS)? {
        match nl.add_address(&a.interface, a.address, a.prefix_len).await {
            Ok(()) | Err(NetError::Kernel { errno: EEXIST, .. }) => {}
            Err(e) => tracing::warn!(address = %a.id(), error = %e, "could not re-add the address"),
        }
    }
    Ok(())
}
