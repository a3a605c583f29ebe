//! The provisioning network (ZoneweaverAPI's isolated network for new machines), built and
//! torn down as one job each.
//!
//! Build: check everything first (names, CIDR, range in the subnet, NAT's way out: the
//! interface of the IPv4 default route) → bridge → address → masquerade out of that interface
//! → IPv4 forwarding on → DHCP server; each step is undone in reverse when a later one fails.
//! The record of what was built is stored last, and the teardown removes exactly that, in
//! reverse order.

use std::net::Ipv4Addr;

use hostplane_host::network::route;
use hostplane_types::network::{
    BridgeCreate, DhcpServerCreate, ForwardingUpdate, NatRuleCreate, NatType, ProvisioningNetwork,
    ProvisioningNetworkCreate,
};

use super::dhcp::{self, Dhcp};
use super::model::{self, KIND_PROVISIONING, ProvisioningRec, check_ifname};
use super::{firewall, links, routes};
use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;

pub const KEY: &str = "provisioning";

pub fn view(r: &ProvisioningRec) -> ProvisioningNetwork {
    ProvisioningNetwork {
        bridge: r.bridge.clone(),
        address: r.address.clone(),
        range_start: r.range_start.to_string(),
        range_end: r.range_end.to_string(),
        nat: r.nat,
        out_interface: r.out_interface.clone(),
    }
}

pub fn get(store: &Store) -> ApiResult<Option<ProvisioningRec>> {
    Ok(model::load::<ProvisioningRec>(store, KIND_PROVISIONING)?
        .into_iter()
        .next())
}

/// Checks the request before the job starts (422/409 answer the POST itself).
pub async fn check(store: &Store, req: &ProvisioningNetworkCreate) -> ApiResult<Option<String>> {
    check_ifname("bridge", &req.bridge)?;
    if get(store)?.is_some() {
        return Err(ApiError::conflict(
            "provisioning_network_exists",
            "a provisioning network exists; delete it first",
        ));
    }
    let (ip, len) = match model::parse_cidr("address", &req.address)? {
        (std::net::IpAddr::V4(v4), l) => (v4, l),
        _ => return Err(ApiError::invalid_field("invalid_cidr", "address", "an IPv4 CIDR")),
    };
    let req_dhcp = dhcp_request(req, ip);
    dhcp::check_server(
        &req_dhcp,
        &[(ip, len)],
        &model::load(store, model::KIND_DHCP)?,
    )?;
    if links::link_index(&req.bridge, "bridge").await.is_ok() {
        return Err(ApiError::conflict(
            "network_exists",
            format!("an interface named {:?} exists", req.bridge),
        ));
    }
    if !req.nat {
        return Ok(None);
    }
    let out = default_interface().await?;
    Ok(Some(out))
}

fn dhcp_request(req: &ProvisioningNetworkCreate, ip: Ipv4Addr) -> DhcpServerCreate {
    DhcpServerCreate {
        interface: req.bridge.clone(),
        range_start: req.range_start.clone(),
        range_end: req.range_end.clone(),
        router: Some(ip.to_string()),
        dns: req.dns.clone(),
        lease_time_s: None,
    }
}

/// The interface of the IPv4 default route (NAT leaves through it).
async fn default_interface() -> ApiResult<String> {
    let rs = route::routes()
        .await
        .map_err(|e| ApiError::internal(format!("listing routes: {e}")))?;
    rs.into_iter()
        .find(|r| r.destination.is_ipv4() && r.prefix_len == 0)
        .and_then(|r| r.interface)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "no_default_route",
                "nat",
                "there is no IPv4 default route to masquerade out of",
            )
        })
}

/// Builds it all; undoes what was done when a step fails.
pub async fn build(
    d: &Dhcp,
    store: &Store,
    req: &ProvisioningNetworkCreate,
    out: Option<String>,
    log: &(dyn Fn(&str) + Send + Sync),
) -> ApiResult<ProvisioningRec> {
    let (ip, _) = model::parse_cidr("address", &req.address)?;
    let ip = match ip {
        std::net::IpAddr::V4(v) => v,
        _ => return Err(ApiError::invalid_field("invalid_cidr", "address", "an IPv4 CIDR")),
    };
    let mut rec = ProvisioningRec {
        bridge: req.bridge.clone(),
        address: req.address.clone(),
        range_start: model::parse_ipv4("range_start", &req.range_start)?,
        range_end: model::parse_ipv4("range_end", &req.range_end)?,
        nat: req.nat,
        nat_id: None,
        out_interface: out.clone(),
    };
    log(&format!("creating bridge {}", req.bridge));
    links::create_bridge(
        store,
        &BridgeCreate {
            name: req.bridge.clone(),
            ports: vec![],
            stp: false,
            forward_delay_s: None,
        },
    )
    .await?;
    let rest = async {
        log(&format!("adding {} to {}", req.address, req.bridge));
        links::add_address(store, &req.bridge, &req.address).await?;
        if let Some(out) = &out {
            log(&format!("masquerading {} out of {out}", req.address));
            let (net, len) = model::parse_ipv4_network("address", &req.address)?;
            let n = firewall::create_nat(
                store,
                &NatRuleCreate {
                    r#type: NatType::Masquerade,
                    source: format!("{net}/{len}"),
                    out_interface: out.clone(),
                },
            )
            .await?;
            rec.nat_id = Some(n.id);
            log("turning IPv4 forwarding on");
            routes::set_forwarding(
                store,
                &ForwardingUpdate {
                    ipv4: Some(true),
                    ipv6: None,
                    interfaces: vec![],
                },
            )
            .await?;
        }
        log(&format!("starting the DHCP server on {}", req.bridge));
        dhcp::create(d, store, &dhcp_request(req, ip)).await?;
        model::put(store, KIND_PROVISIONING, KEY, &rec)
    }
    .await;
    if let Err(e) = rest {
        log(&format!("failed ({e}); undoing"));
        undo(d, store, &rec).await;
        return Err(e);
    }
    Ok(rec)
}

/// Removes what `rec` names (each step tolerates what is gone already).
async fn undo(d: &Dhcp, store: &Store, rec: &ProvisioningRec) {
    let _ = dhcp::delete(d, store, &rec.bridge).await;
    if let Some(id) = &rec.nat_id {
        let _ = firewall::delete_nat(store, id).await;
    }
    let _ = links::delete_bridge(store, &rec.bridge).await;
}

/// Tears the provisioning network down. Forwarding stays on (other networks may route).
pub async fn teardown(
    d: &Dhcp,
    store: &Store,
    log: &(dyn Fn(&str) + Send + Sync),
) -> ApiResult<ProvisioningRec> {
    let rec = get(store)?.ok_or_else(|| ApiError::not_found("no provisioning network"))?;
    log(&format!("removing the DHCP server, NAT rule and bridge {}", rec.bridge));
    match dhcp::delete(d, store, &rec.bridge).await {
        Ok(()) | Err(ApiError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    if let Some(id) = &rec.nat_id {
        match firewall::delete_nat(store, id).await {
            Ok(()) | Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    match links::delete_bridge(store, &rec.bridge).await {
        Ok(()) | Err(ApiError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    model::remove(store, KIND_PROVISIONING, KEY)?;
    Ok(rec)
}
