//! Virtual NICs: veth pairs and macvlans over netlink, taps through `ip tuntap` (netlink cannot
//! make a tap). Each change: check the request completely → create the link (and attach it
//! to a managed bridge when asked; the link is deleted again if that fails) → store the record.
//! [`reconcile`] re-creates stored vNICs that are missing at start, before the bridges take
//! their ports back.

use hostplane_host::network::{self as host, NetError, Netlink};
use hostplane_types::network::{ManagedBy, Vnic, VnicCreate, VnicKind};

use super::links::{self, net_err};
use super::model::{self, BridgeRec, KIND_BRIDGE, KIND_VNIC, VnicRec, check_ifname};
use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;

pub fn vnic_href(name: &str) -> String {
    format!("/api/v1/network/vnics/{name}")
}

fn open() -> ApiResult<Netlink> {
    Netlink::open().map_err(|e| net_err("netlink", e))
}

/// Every vNIC hostplane stored, with its state now.
pub async fn vnics(store: &Store) -> ApiResult<Vec<Vnic>> {
    let nl = open()?;
    let links = nl.links().await.map_err(|e| net_err("listing links", e))?;
    Ok(model::load::<VnicRec>(store, KIND_VNIC)?
        .into_iter()
        .map(|r| {
            let l = links.iter().find(|l| l.name == r.name);
            Vnic {
                href: vnic_href(&r.name),
                state: l.map_or("missing".into(), |l| l.oper_state.clone()),
                mac: l.and_then(|l| l.mac.clone()),
                name: r.name,
                kind: r.kind,
                peer: r.peer,
                parent: r.parent,
                managed_by: ManagedBy::Hostplane,
            }
        })
        .collect())
}

pub async fn vnic(store: &Store, name: &str) -> ApiResult<Vnic> {
    vnics(store)
        .await?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no vNIC named {name:?}")))
}

/// Checks the request's fields against its kind.
pub fn check(req: &VnicCreate) -> ApiResult<()> {
    check_ifname("name", &req.name)?;
    let unexpected = |f: &str| {
        ApiError::invalid_field("invalid_vnic", f, format!("{f} is not used by a {:?} vNIC", req.kind))
    };
    match req.kind {
        VnicKind::Veth => {
            let p = req.peer.as_deref().ok_or_else(|| {
                ApiError::invalid_field("invalid_vnic", "peer", "a veth pair needs the peer's name")
            })?;
            check_ifname("peer", p)?;
            if p == req.name {
                return Err(ApiError::invalid_field("invalid_vnic", "peer", "the peer needs its own name"));
            }
            if req.parent.is_some() {
                return Err(unexpected("parent"));
            }
        }
        VnicKind::Macvlan => {
            let p = req.parent.as_deref().ok_or_else(|| {
                ApiError::invalid_field("invalid_vnic", "parent", "a macvlan needs its parent link")
            })?;
            check_ifname("parent", p)?;
            if req.peer.is_some() {
                return Err(unexpected("peer"));
            }
        }
        VnicKind::Tap => {
            if req.peer.is_some() {
                return Err(unexpected("peer"));
            }
            if req.parent.is_some() {
                return Err(unexpected("parent"));
            }
        }
    }
    if let Some(b) = &req.bridge {
        check_ifname("bridge", b)?;
    }
    Ok(())
}

async fn make(nl: &Netlink, r: &VnicRec) -> Result<(), NetError> {
    match r.kind {
        VnicKind::Veth => {
            nl.add_link(host::veth_message(&r.name, r.peer.as_deref().unwrap_or_default()))
                .await?;
            // The peer comes up too: an end that is down carries nothing.
            if let Some(p) = &r.peer {
                nl.set_up(p, true).await?;
            }
            Ok(())
        }
        VnicKind::Macvlan => {
            let parent = nl.index(r.parent.as_deref().unwrap_or_default()).await?;
            nl.add_link(host::macvlan_message(&r.name, parent)).await
        }
        VnicKind::Tap => {
            host::create_tap(&r.name).await?;
            nl.set_up(&r.name, true).await
        }
    }
}

pub async fn create(store: &Store, req: &VnicCreate) -> ApiResult<Vnic> {
    check(req)?;
    let nl = open()?;
    let stored = model::load::<VnicRec>(store, KIND_VNIC)?;
    for (field, n) in [("name", Some(&req.name)), ("peer", req.peer.as_ref())] {
        let Some(n) = n else { continue };
        let taken = nl.link(n).await.map(|l| l.is_some()).unwrap_or(false);
        if taken || stored.iter().any(|v| &v.name == n || v.peer.as_ref() == Some(n)) {
            return Err(ApiError::conflict(
                "network_exists",
                format!("{field}: an interface named {n:?} exists"),
            ));
        }
    }
    if let Some(p) = &req.parent {
        links::link_index(p, "parent").await?;
    }
    if let Some(b) = &req.bridge
        && !model::load::<BridgeRec>(store, KIND_BRIDGE)?.iter().any(|x| &x.name == b)
    {
        return Err(ApiError::invalid_field(
            "bridge_not_managed",
            "bridge",
            format!("no bridge named {b:?} managed by hostplane"),
        ));
    }
    let rec = VnicRec {
        name: req.name.clone(),
        kind: req.kind,
        peer: req.peer.clone(),
        parent: req.parent.clone(),
    };
    make(&nl, &rec)
        .await
        .map_err(|e| net_err(&format!("vNIC {:?}", rec.name), e))?;
    let rest = async {
        model::put(store, KIND_VNIC, &rec.name, &rec)?;
        if let Some(b) = &req.bridge
            && let Err(e) = links::add_port(store, b, &rec.name).await
        {
            model::remove(store, KIND_VNIC, &rec.name)?;
            return Err(e);
        }
        Ok(())
    }
    .await;
    if let Err(e) = rest {
        let _ = nl.delete_link(&rec.name).await;
        return Err(e);
    }
    vnic(store, &rec.name).await
}

/// Deletes a vNIC (a veth's peer goes with it) and drops it from any managed bridge's ports.
pub async fn delete(store: &Store, name: &str) -> ApiResult<()> {
    check_ifname("name", name)?;
    let Some(rec) = model::load::<VnicRec>(store, KIND_VNIC)?
        .into_iter()
        .find(|v| v.name == name)
    else {
        return Err(ApiError::not_found(format!("no vNIC named {name:?}")));
    };
    let nl = open()?;
    match nl.delete_link(&rec.name).await {
        Ok(()) | Err(NetError::NoSuchLink(_)) => {}
        Err(e) => return Err(net_err(&format!("vNIC {name:?}"), e)),
    }
    for mut b in model::load::<BridgeRec>(store, KIND_BRIDGE)? {
        let before = b.ports.len();
        b.ports
            .retain(|p| p != &rec.name && Some(p) != rec.peer.as_ref());
        if b.ports.len() != before {
            model::put(store, KIND_BRIDGE, &b.name.clone(), &b)?;
        }
    }
    model::remove(store, KIND_VNIC, name)
}

/// Names of the links the vNICs own (both ends of a veth pair).
pub fn names(store: &Store) -> ApiResult<Vec<String>> {
    Ok(model::load::<VnicRec>(store, KIND_VNIC)?
        .into_iter()
        .flat_map(|v| std::iter::once(v.name).chain(v.peer))
        .collect())
}

/// Re-creates stored vNICs that are missing; logs what it cannot.
pub async fn reconcile(store: &Store) -> ApiResult<()> {
    let nl = open()?;
    for r in model::load::<VnicRec>(store, KIND_VNIC)? {
        if nl.link(&r.name).await.ok().flatten().is_some() {
            continue;
        }
        if let Err(e) = make(&nl, &r).await {
            tracing::warn!(vnic = %r.name, error = %e, "could not re-create the vNIC");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: VnicKind, peer: Option<&str>, parent: Option<&str>) -> VnicCreate {
        VnicCreate {
            name: "v0".into(),
            kind,
            peer: peer.map(Into::into),
            parent: parent.map(Into::into),
            bridge: None,
        }
    }

    #[test]
    fn fields_fit_the_kind() {
        check(&req(VnicKind::Veth, Some("v0p"), None)).unwrap();
        check(&req(VnicKind::Macvlan, None, Some("eth0"))).unwrap();
        check(&req(VnicKind::Tap, None, None)).unwrap();
        for bad in [
            req(VnicKind::Veth, None, None),
            req(VnicKind::Veth, Some("v0"), None),
            req(VnicKind::Veth, Some("p"), Some("eth0")),
            req(VnicKind::Macvlan, None, None),
            req(VnicKind::Tap, Some("p"), None),
        ] {
            assert_eq!(check(&bad).unwrap_err().code(), "invalid_vnic", "{bad:?}");
        }
        assert_eq!(
            check(&req(VnicKind::Veth, Some("bad/name"), None)).unwrap_err().code(),
            "invalid_interface_name"
        );
    }
}
