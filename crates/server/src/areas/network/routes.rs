//! Routes (main table) and IP forwarding: plain functions over the store, `ip -j route`
//! (`hostplane_host::network::route`) and `/proc/sys/net` (`…::sysctl`).
//!
//! A route change: check the request → `ip route add|del` → store (undone when the store
//! write fails). Routes hostplane did not add are listed as foreign and never removed. A
//! forwarding change writes the switches and stores what was asked, which [`reconcile`]
//! writes again at start.

use std::net::IpAddr;

use hostplane_host::network::route::{self as host, RouteEntry};
use hostplane_host::network::sysctl::{self, Family};
use hostplane_types::network::{
    Forwarding, ForwardingUpdate, InterfaceForwarding, ManagedBy, Route, RouteCreate,
};

use super::links;
use super::model::{self, ForwardingRec, KIND_FORWARDING, KIND_ROUTE, RouteRec, check_ifname};
use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;

pub fn route_href(id: &str) -> String {
    format!("/api/v1/network/routes/{id}")
}

fn cmd_err(what: &str, e: hostplane_host::command::CommandError) -> ApiError {
    let text = e.to_string();
    if text.contains("File exists") {
        ApiError::conflict("route_exists", format!("{what}: the route exists"))
    } else if text.contains("No such process") || text.contains("Nexthop has invalid gateway")
        || text.contains("Network is unreachable") || text.contains("Invalid argument")
        || text.contains("Cannot find device")
    {
        ApiError::invalid("network_rejected", format!("{what}: {text}"))
    } else {
        ApiError::internal(format!("{what}: {text}"))
    }
}

fn entry_of(r: &RouteRec) -> RouteEntry {
    RouteEntry {
        destination: r.destination,
        prefix_len: r.prefix_len,
        gateway: r.gateway,
        interface: r.interface.clone(),
        metric: r.metric,
        protocol: "static".into(),
        kind: "unicast".into(),
    }
}

/// Every route of the main table, with its owner.
pub async fn routes(store: &Store) -> ApiResult<Vec<Route>> {
    let managed: Vec<String> = model::load::<RouteRec>(store, KIND_ROUTE)?
        .iter()
        .map(RouteRec::id)
        .collect();
    let entries = host::routes().await.map_err(|e| cmd_err("listing routes", e))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let id = model::route_id(e.destination, e.prefix_len, e.metric);
            Route {
                href: route_href(&id),
                managed_by: if managed.contains(&id) {
                    ManagedBy::Hostplane
                } else {
                    ManagedBy::Foreign
                },
                id,
                destination: format!("{}/{}", e.destination, e.prefix_len),
                gateway: e.gateway.map(|g| g.to_string()),
                interface: e.interface,
                metric: e.metric,
                family: if e.destination.is_ipv4() { "inet" } else { "inet6" }.into(),
                protocol: e.protocol,
            }
        })
        .collect())
}

pub async fn route(store: &Store, id: &str) -> ApiResult<Route> {
    routes(store)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no route with id {id:?}")))
}

/// Checks a route request completely; the record it would store.
pub fn check_route(req: &RouteCreate) -> ApiResult<RouteRec> {
    let (ip, len) = model::parse_cidr("destination", &req.destination)?;
    let destination = match ip {
        IpAddr::V4(v4) => IpAddr::V4(model::network_of(v4, len)),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            IpAddr::V6((bits & mask).into())
        }
    };
    let gateway = match &req.gateway {
        Some(g) => {
            let g: IpAddr = g.parse().map_err(|_| {
                ApiError::invalid_field("invalid_address", "gateway", format!("{g:?} is not an IP address"))
            })?;
            if g.is_ipv4() != destination.is_ipv4() {
                return Err(ApiError::invalid_field(
                    "invalid_address",
                    "gateway",
                    "the gateway's family differs from the destination's",
                ));
            }
            Some(g)
        }
        None => None,
    };
    if let Some(i) = &req.interface {
        check_ifname("interface", i)?;
    }
    if gateway.is_none() && req.interface.is_none() {
        return Err(ApiError::invalid_field(
            "invalid_route",
            "gateway",
            "a route needs a gateway, an interface, or both",
        ));
    }
    Ok(RouteRec {
        destination,
        prefix_len: len,
        gateway,
        interface: req.interface.clone(),
        metric: req.metric,
    })
}

pub async fn add_route(store: &Store, req: &RouteCreate) -> ApiResult<Route> {
    let rec = check_route(req)?;
    if let Some(i) = &rec.interface {
        links::link_index(i, "interface").await?;
    }
    let what = format!("route {}", req.destination);
    host::add_route(&entry_of(&rec)).await.map_err(|e| cmd_err(&what, e))?;
    if let Err(e) = model::put(store, KIND_ROUTE, &rec.id(), &rec) {
        let _ = host::delete_route(&entry_of(&rec)).await;
        return Err(e);
    }
    route(store, &rec.id()).await
}

/// Deletes a route hostplane added; any other is 409 `route_foreign`.
pub async fn delete_route(store: &Store, id: &str) -> ApiResult<()> {
    let Some(rec) = model::load::<RouteRec>(store, KIND_ROUTE)?
        .into_iter()
        .find(|r| r.id() == id)
    else {
        route(store, id).await?;
        return Err(ApiError::conflict(
            "route_foreign",
            format!("route {id:?} is not managed by hostplane"),
        ));
    };
    let present = host::routes()
        .await
        .map_err(|e| cmd_err("listing routes", e))?
        .iter()
        .any(|e| model::route_id(e.destination, e.prefix_len, e.metric) == id);
    if present {
        host::delete_route(&entry_of(&rec))
            .await
            .map_err(|e| cmd_err(&format!("route {id:?}"), e))?;
    }
    model::remove(store, KIND_ROUTE, id)
}

/// The forwarding switches now, for every link.
pub async fn forwarding(store: &Store) -> ApiResult<Forwarding> {
    let ifs = links::interfaces(store).await?;
    Ok(Forwarding {
        ipv4: sysctl::forwarding(Family::V4, None).unwrap_or(false),
        ipv6: sysctl::forwarding(Family::V6, None).unwrap_or(false),
        interfaces: ifs
            .iter()
            .map(|i| InterfaceForwarding {
                name: i.name.clone(),
                ipv4: sysctl::forwarding(Family::V4, Some(&i.name)),
                ipv6: sysctl::forwarding(Family::V6, Some(&i.name)),
            })
            .collect(),
    })
}

fn write(family: Family, interface: Option<&str>, on: bool) -> ApiResult<()> {
    sysctl::set_forwarding(family, interface, on).map_err(|e| {
        let what = interface.unwrap_or("all interfaces");
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiError::invalid_field(
                "interface_not_found",
                "interfaces",
                format!("no forwarding switch for {what:?} (no such link, or IPv6 is off on it)"),
            )
        } else {
            ApiError::internal(format!("forwarding on {what}: {e}"))
        }
    })
}

fn apply(key: Option<&str>, r: &ForwardingRec) -> ApiResult<()> {
    if let Some(v) = r.ipv4 {
        write(Family::V4, key, v)?;
    }
    if let Some(v) = r.ipv6 {
        write(Family::V6, key, v)?;
        // `all` alone does not change the `default` used by links made later.
        if key.is_none() {
            let _ = sysctl::set_forwarding(Family::V6, Some("default"), v);
        }
    }
    Ok(())
}

/// Sets the switches asked for and stores them (re-applied at start).
pub async fn set_forwarding(store: &Store, req: &ForwardingUpdate) -> ApiResult<Forwarding> {
    if req.interfaces.len() > 64 {
        return Err(ApiError::invalid_field("invalid_forwarding", "interfaces", "at most 64 entries"));
    }
    for (n, i) in req.interfaces.iter().enumerate() {
        check_ifname(&format!("interfaces[{n}].name"), &i.name)?;
        if i.name == "all" || i.name == "default" {
            return Err(ApiError::invalid_field(
                "invalid_interface_name",
                format!("interfaces[{n}].name"),
                "use the global switches",
            ));
        }
        links::link_index(&i.name, &format!("interfaces[{n}].name")).await?;
    }
    // Global first: writing ip_forward resets every link's IPv4 switch.
    let global = ForwardingRec {
        ipv4: req.ipv4,
        ipv6: req.ipv6,
    };
    apply(None, &global)?;
    let mut stored = model::load_keyed::<ForwardingRec>(store, KIND_FORWARDING)?;
    if global.ipv4.is_some() || global.ipv6.is_some() {
        let mut g = stored.remove("global").unwrap_or(ForwardingRec { ipv4: None, ipv6: None });
        g.ipv4 = global.ipv4.or(g.ipv4);
        g.ipv6 = global.ipv6.or(g.ipv6);
        model::put(store, KIND_FORWARDING, "global", &g)?;
        if global.ipv4.is_some() {
            // The kernel reset every per-link IPv4 switch: those stored go back on top.
            for (k, r) in &stored {
                if let Some(v) = r.ipv4 {
                    let _ = sysctl::set_forwarding(Family::V4, Some(k), v);
                }
            }
        }
    }
    for i in &req.interfaces {
        let r = ForwardingRec {
            ipv4: i.ipv4,
            ipv6: i.ipv6,
        };
        apply(Some(&i.name), &r)?;
        let mut s = stored.remove(&i.name).unwrap_or(ForwardingRec { ipv4: None, ipv6: None });
        s.ipv4 = r.ipv4.or(s.ipv4);
        s.ipv6 = r.ipv6.or(s.ipv6);
        model::put(store, KIND_FORWARDING, &i.name, &s)?;
    }
    forwarding(store).await
}

/// Re-adds stored routes and re-writes stored forwarding switches; logs what fails.
pub async fn reconcile(store: &Store) -> ApiResult<()> {
    let fwd = model::load_keyed::<ForwardingRec>(store, KIND_FORWARDING)?;
    if let Some(g) = fwd.get("global")
        && let Err(e) = apply(None, g)
    {
        tracing::warn!(error = %e, "could not set forwarding");
    }
    for (k, r) in fwd.iter().filter(|(k, _)| k.as_str() != "global") {
        if let Err(e) = apply(Some(k), r) {
            tracing::warn!(interface = %k, error = %e, "could not set forwarding");
        }
    }
    let present: Vec<String> = host::routes()
        .await
        .map_err(|e| cmd_err("listing routes", e))?
        .iter()
        .map(|e| model::route_id(e.destination, e.prefix_len, e.metric))
        .collect();
    for r in model::load::<RouteRec>(store, KIND_ROUTE)? {
        if !present.contains(&r.id())
            && let Err(e) = host::add_route(&entry_of(&r)).await
        {
            tracing::warn!(route = %r.id(), error = %e, "could not re-add the route");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(d: &str, g: Option<&str>, i: Option<&str>) -> RouteCreate {
        RouteCreate {
            destination: d.into(),
            gateway: g.map(Into::into),
            interface: i.map(Into::into),
            metric: 0,
        }
    }

    #[test]
    fn route_checks() {
        let r = check_route(&req("10.1.2.3/16", Some("192.0.2.1"), None)).unwrap();
        assert_eq!(r.destination, "10.1.0.0".parse::<IpAddr>().unwrap());
        assert!(!r.id().contains('/'));
        let r = check_route(&req("2001:db8::1/32", None, Some("br0"))).unwrap();
        assert_eq!(r.destination, "2001:db8::".parse::<IpAddr>().unwrap());
        assert_eq!(check_route(&req("10.0.0.0/8", None, None)).unwrap_err().code(), "invalid_route");
        assert_eq!(
            check_route(&req("10.0.0.0/8", Some("fe80::1"), None)).unwrap_err().code(),
            "invalid_address"
        );
        assert_eq!(check_route(&req("10.0.0.0/33", None, Some("a"))).unwrap_err().code(), "invalid_cidr");
        assert_eq!(
            check_route(&req("10.0.0.0/8", None, Some("a/b"))).unwrap_err().code(),
            "invalid_interface_name"
        );
    }
}
