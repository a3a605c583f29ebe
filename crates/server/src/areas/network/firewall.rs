//! NAT rules and port forwards: plain functions over the store and hostplane's nftables table.
//!
//! A change builds the complete new rule set (stored records plus or minus one), renders it as
//! one batch ([`nft::batch`]) and applies it (`nft -j -f -`, one transaction that replaces only
//! the `ip hostplane` table); the store is written only when nft accepted it, and the previous
//! batch is put back if the store write fails. With no rules left the table itself is removed.

use std::collections::HashSet;

use hostplane_host::network::nft::{self, Dnat, Masquerade};
use hostplane_types::network::{
    ForwardProtocol, NatRule, NatRuleCreate, NatType, PortForward, PortForwardCreate,
};
use serde_json::json;

use super::model::{self, ForwardRec, KIND_FORWARD, KIND_NAT, NatRec, check_ifname};
use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;

pub fn nat_href(id: &str) -> String {
    format!("/api/v1/network/nat-rules/{id}")
}
pub fn forward_href(id: &str) -> String {
    format!("/api/v1/network/port-forwards/{id}")
}

fn nat_view(r: &NatRec) -> NatRule {
    NatRule {
        href: nat_href(&r.id),
        id: r.id.clone(),
        r#type: NatType::Masquerade,
        source: format!("{}/{}", r.source, r.prefix_len),
        out_interface: r.out_interface.clone(),
    }
}

fn forward_view(r: &ForwardRec) -> PortForward {
    PortForward {
        href: forward_href(&r.id),
        id: r.id.clone(),
        listen_address: r.listen_address.to_string(),
        ports: r.ports.clone(),
        description: r.description.clone(),
    }
}

fn proto(p: ForwardProtocol) -> &'static str {
    match p {
        ForwardProtocol::Tcp => "tcp",
        ForwardProtocol::Udp => "udp",
    }
}

/// The nft batch for these records; the table is removed when there are none.
pub fn render(nat: &[NatRec], fwd: &[ForwardRec]) -> serde_json::Value {
    if nat.is_empty() && fwd.is_empty() {
        // `add` first so the `delete` succeeds whether or not the table exists.
        let t = json!({"family": nft::FAMILY, "name": nft::TABLE});
        return json!({"nftables": [{"add": {"table": t.clone()}}, {"delete": {"table": t}}]});
    }
    let masq: Vec<Masquerade> = nat
        .iter()
        .map(|n| Masquerade {
            id: n.id.clone(),
            source: n.source,
            prefix_len: n.prefix_len,
            out_interface: n.out_interface.clone(),
        })
        .collect();
    let dnat: Vec<Dnat> = fwd
        .iter()
        .flat_map(|f| {
            f.ports.iter().map(move |p| Dnat {
                id: f.id.clone(),
                listen: f.listen_address,
                protocol: proto(p.protocol),
                listen_port: p.listen_port,
                // Checked at create: a valid IPv4 address.
                target: p.target_address.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                target_port: p.target_port.unwrap_or(p.listen_port),
            })
        })
        .collect();
    nft::batch(&masq, &dnat)
}

async fn apply(nat: &[NatRec], fwd: &[ForwardRec]) -> ApiResult<()> {
    nft::apply(&render(nat, fwd)).await.map_err(|e| match e {
        hostplane_host::CommandError::NotFound { .. } => ApiError::Unavailable {
            code: "nft_unavailable",
            detail: "nft (package nftables) is not installed on this host".into(),
        },
        other => ApiError::internal(format!("applying hostplane's nftables table: {other}")),
    })
}

/// Applies `nat`/`fwd`, then runs `store_it`; puts the previous rules back if that fails.
async fn change(
    store: &Store,
    (nat, fwd): (Vec<NatRec>, Vec<ForwardRec>),
    store_it: impl FnOnce() -> ApiResult<()>,
) -> ApiResult<()> {
    apply(&nat, &fwd).await?;
    if let Err(e) = store_it() {
        let (n, f) = current(store)?;
        let _ = apply(&n, &f).await;
        return Err(e);
    }
    Ok(())
}

fn current(store: &Store) -> ApiResult<(Vec<NatRec>, Vec<ForwardRec>)> {
    Ok((
        model::load(store, KIND_NAT)?,
        model::load(store, KIND_FORWARD)?,
    ))
}

/// Re-applies the stored rules (daemon start); nothing at all when none are stored.
pub async fn reconcile(store: &Store) -> ApiResult<()> {
    let (nat, fwd) = current(store)?;
    if nat.is_empty() && fwd.is_empty() {
        return Ok(());
    }
    apply(&nat, &fwd).await
}

pub fn nat_rules(store: &Store) -> ApiResult<Vec<NatRule>> {
    Ok(model::load::<NatRec>(store, KIND_NAT)?
        .iter()
        .map(nat_view)
        .collect())
}

pub fn nat_rule(store: &Store, id: &str) -> ApiResult<NatRule> {
    nat_rules(store)?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no NAT rule {id:?}")))
}

pub async fn create_nat(store: &Store, req: &NatRuleCreate) -> ApiResult<NatRule> {
    let (source, prefix_len) = model::parse_ipv4_network("source", &req.source)?;
    check_ifname("out_interface", &req.out_interface)?;
    let (mut nat, fwd) = current(store)?;
    if nat
        .iter()
        .any(|n| n.source == source && n.prefix_len == prefix_len && n.out_interface == req.out_interface)
    {
        return Err(ApiError::conflict(
            "nat_rule_exists",
            "the same masquerade rule exists",
        ));
    }
    let rec = NatRec {
        id: uuid::Uuid::now_v7().simple().to_string(),
        source,
        prefix_len,
        out_interface: req.out_interface.clone(),
    };
    nat.push(rec.clone());
    change(store, (nat, fwd), || model::put(store, KIND_NAT, &rec.id, &rec)).await?;
    Ok(nat_view(&rec))
}

pub async fn delete_nat(store: &Store, id: &str) -> ApiResult<()> {
    let (mut nat, fwd) = current(store)?;
    let before = nat.len();
    nat.retain(|n| n.id != id);
    if nat.len() == before {
        return Err(ApiError::not_found(format!("no NAT rule {id:?}")));
    }
    change(store, (nat, fwd), || model::remove(store, KIND_NAT, id)).await
}

pub fn port_forwards(store: &Store) -> ApiResult<Vec<PortForward>> {
    Ok(model::load::<ForwardRec>(store, KIND_FORWARD)?
        .iter()
        .map(forward_view)
        .collect())
}

pub fn port_forward(store: &Store, id: &str) -> ApiResult<PortForward> {
    port_forwards(store)?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no port forward {id:?}")))
}

pub async fn create_forward(store: &Store, req: &PortForwardCreate) -> ApiResult<PortForward> {
    let listen = model::parse_ipv4("listen_address", &req.listen_address)?;
    if req.ports.is_empty() || req.ports.len() > 256 {
        return Err(ApiError::invalid_field("invalid_ports", "ports", "1–256 ports"));
    }
    if let Some(d) = &req.description {
        model::check_description("description", d)?;
    }
    let mut seen = HashSet::new();
    for (i, p) in req.ports.iter().enumerate() {
        model::parse_ipv4(&format!("ports[{i}].target_address"), &p.target_address)?;
        if p.listen_port == 0 || p.target_port == Some(0) {
            return Err(ApiError::invalid_field(
                "invalid_ports",
                format!("ports[{i}]"),
                "ports are 1–65535",
            ));
        }
        if !seen.insert((p.protocol, p.listen_port)) {
            return Err(ApiError::invalid_field(
                "invalid_ports",
                format!("ports[{i}].listen_port"),
                format!("{}/{} is named twice", proto(p.protocol), p.listen_port),
            ));
        }
    }
    let (nat, mut fwd) = current(store)?;
    for f in fwd.iter().filter(|f| f.listen_address == listen) {
        for p in &f.ports {
            if seen.contains(&(p.protocol, p.listen_port)) {
                return Err(ApiError::conflict(
                    "port_forward_conflict",
                    format!(
                        "{listen}:{}/{} is already forwarded by {}",
                        p.listen_port,
                        proto(p.protocol),
                        f.id
                    ),
                ));
            }
        }
    }
    let rec = ForwardRec {
        id: uuid::Uuid::now_v7().simple().to_string(),
        listen_address: listen,
        ports: req.ports.clone(),
        description: req.description.clone().filter(|d| !d.is_empty()),
    };
    fwd.push(rec.clone());
    change(store, (nat, fwd), || model::put(store, KIND_FORWARD, &rec.id, &rec)).await?;
    Ok(forward_view(&rec))
}

pub async fn delete_forward(store: &Store, id: &str) -> ApiResult<()> {
    let (nat, mut fwd) = current(store)?;
    let before = fwd.len();
    fwd.retain(|f| f.id != id);
    if fwd.len() == before {
        return Err(ApiError::not_found(format!("no port forward {id:?}")));
    }
    change(store, (nat, fwd), || model::remove(store, KIND_FORWARD, id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_rule_set_removes_the_table() {
        let b = render(&[], &[]);
        assert_eq!(b["nftables"][1]["delete"]["table"]["name"], nft::TABLE);
    }
}
