//! `GET|PUT /api/v1/network/host` and `/api/v1/network/changes[/{id}[/confirm]]`: the host's
//! management settings, changed with confirm-or-rollback ([`super::changes`]).
//!
//! Request flow: auth (viewer reads; admin + `network:write` changes) → [`check`] turns the
//! body into a [`changes::Request`] (every field validated, 422 before anything is touched)
//! → [`changes::begin`] (409 `change_pending` / `would_disconnect`, prior config persisted,
//! 202 with the change, applied in the background) → `POST .../confirm` over a new connection
//! ([`changes::confirm`]) or the rollback at the deadline.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hostplane_host::network::Netlink;
use hostplane_types::network_host::{
    DhcpClientState, HostMode, HostSettings, HostSettingsUpdate, HostSettingsView, NetworkChange,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::changes::{self, CallerAddr};
use super::links::net_err;
use super::model;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::http::peer::{self, Peer};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_host, put_host))
        .routes(routes!(list_changes))
        .routes(routes!(get_change))
        .routes(routes!(confirm_change))
        .routes(routes!(rollback_change))
}

/// The request's connection: its number, the local and remote addresses.
pub struct Conn {
    pub id: Option<u64>,
    pub caller: CallerAddr,
}

impl<S: Send + Sync> FromRequestParts<S> for Conn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let (id, local) = peer::connection_of(parts);
        let remote = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .and_then(|c| c.0.ip());
        Ok(Conn {
            id,
            caller: CallerAddr {
                local: local.map(|a| a.ip()),
                remote,
            },
        })
    }
}

/// A host name: dot-separated labels of 1–63 of a-z A-Z 0-9 `-` (not at a label's ends),
/// at most 253 bytes.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checks a request completely (422 on the first problem) and parses its addresses.
pub fn check(u: &HostSettingsUpdate) -> ApiResult<changes::Request> {
    model::check_ifname("interface", &u.interface)?;
    let v4 = |field: &str, s: &str| -> ApiResult<Ipv4Addr> {
        s.parse().map_err(|_| {
            ApiError::invalid_field(
                "invalid_address",
                field,
                format!("{s:?} is not an IPv4 address"),
            )
        })
    };
    let (address, gateway) = match u.mode {
        HostMode::Static => {
            let a = u.address.as_deref().ok_or_else(|| {
                ApiError::invalid_field(
                    "address_required",
                    "address",
                    "mode static needs an address (CIDR, e.g. 192.0.2.10/24)",
                )
            })?;
            let (ip, len) = model::parse_cidr("address", a)?;
            let IpAddr::V4(ip) = ip else {
                return Err(ApiError::invalid_field(
                    "invalid_address",
                    "address",
                    "host settings are IPv4 in this version",
                ));
            };
            if len == 0 || ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
                return Err(ApiError::invalid_field(
                    "invalid_address",
                    "address",
                    format!("{a} cannot be a host's address"),
                ));
            }
            let gw = u.gateway.as_deref().map(|g| v4("gateway", g)).transpose()?;
            if gw == Some(ip) {
                return Err(ApiError::invalid_field(
                    "invalid_address",
                    "gateway",
                    "the gateway cannot be the host's own address",
                ));
            }
            (Some((ip, len)), gw)
        }
        HostMode::Dhcp => {
            if u.address.is_some() || u.gateway.is_some() {
                return Err(ApiError::invalid_field(
                    "invalid_host_settings",
                    if u.address.is_some() { "address" } else { "gateway" },
                    "mode dhcp takes no address or gateway",
                ));
            }
            (None, None)
        }
    };
    if u.dns.len() > 3 {
        return Err(ApiError::invalid_field(
            "invalid_dns",
            "dns",
            "at most 3 DNS servers",
        ));
    }
    for d in &u.dns {
        d.parse::<IpAddr>().map_err(|_| {
            ApiError::invalid_field("invalid_dns", "dns", format!("{d:?} is not an IP address"))
        })?;
    }
    if let Some(h) = &u.hostname
        && !valid_hostname(h)
    {
        return Err(ApiError::invalid_field(
            "invalid_hostname",
            "hostname",
            format!("{h:?} is not a host name (labels of a-z 0-9 -, at most 253 bytes)"),
        ));
    }
    if u.ntp.len() > 4 {
        return Err(ApiError::invalid_field("invalid_ntp", "ntp", "at most 4 NTP servers"));
    }
    for n in &u.ntp {
        if n.parse::<IpAddr>().is_err() && !valid_hostname(n) {
            return Err(ApiError::invalid_field(
                "invalid_ntp",
                "ntp",
                format!("{n:?} is neither an address nor a host name"),
            ));
        }
    }
    let timeout_s = u.confirm_timeout_s.unwrap_or(changes::TIMEOUT_DEFAULT_S);
    if !(changes::TIMEOUT_MIN_S..=changes::TIMEOUT_MAX_S).contains(&timeout_s) {
        return Err(ApiError::invalid_field(
            "invalid_confirm_timeout",
            "confirm_timeout_s",
            format!(
                "{}–{} seconds",
                changes::TIMEOUT_MIN_S,
                changes::TIMEOUT_MAX_S
            ),
        ));
    }
    let mut settings = u.settings();
    // Stored in canonical form.
    settings.address = address.map(|(a, l)| format!("{a}/{l}"));
    settings.gateway = gateway.map(|g| g.to_string());
    Ok(changes::Request {
        settings,
        address,
        gateway,
        timeout_s,
        force: u.force,
    })
}

/// The view of `GET /network/host`.
pub async fn view(state: &AppState) -> ApiResult<HostSettingsView> {
    let settings = changes::confirmed_settings(state)?;
    let nl = Netlink::open().map_err(|e| net_err("netlink", e))?;
    let (mut addresses, mut gateway) = (Vec::new(), None);
    if let Some(s) = &settings
        && let Ok(snap) = nl.snapshot(&s.interface).await
    {
            addresses = snap
                .addresses
                .iter()
                .map(|(a, l)| format!("{a}/{l}"))
                .collect();
            gateway = snap
                .default_routes
                .iter()
                .find(|r| r.interface == s.interface)
                .map(|r| r.gateway.to_string());
    }
    Ok(HostSettingsView {
        settings,
        addresses,
        gateway,
        pending_change: state
            .network()
            .host
            .open_id()
            .map(|id| format!("/api/v1/network/changes/{id}")),
        dhcp_client: dhcp_client_state(state),
    })
}

/// The DHCP client's state: running or not, and its last recorded event.
fn dhcp_client_state(state: &AppState) -> Option<DhcpClientState> {
    let c = &state.network().dhcp_client;
    let running = c.running();
    let lease = c.lease();
    if running.is_none() && lease.is_none() {
        return None;
    }
    let interface = running
        .as_ref()
        .map(|r| r.0.clone())
        .or_else(|| lease.as_ref().map(|l| l.interface.clone()))
        .unwrap_or_default();
    Some(DhcpClientState {
        interface,
        running: running.is_some(),
        event: lease.as_ref().map(|l| l.event.clone()),
        address: lease.as_ref().and_then(|l| l.address.clone()),
        router: lease.as_ref().and_then(|l| l.router.clone()),
        dns: lease.as_ref().map(|l| l.dns.clone()).unwrap_or_default(),
        lease_s: lease.and_then(|l| l.lease_s),
    })
}

use super::NetworkAccess;

/// `202` with `Location` and the change.
pub fn accepted(c: &NetworkChange) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, c.href.clone())],
        axum::Json(c),
    )
        .into_response()
}

/// The host's management settings (as last confirmed), its IPv4 addresses and gateway now,
/// and the open change if there is one.
#[utoipa::path(get, path = "/api/v1/network/host",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network",
    responses((status = 200, description = "Host settings", body = HostSettingsView)))]
async fn get_host(State(state): State<AppState>) -> ApiResult<axum::Json<HostSettingsView>> {
    Ok(axum::Json(view(&state).await?))
}

/// Change the host's management settings. Answers 202 with the change at once; it applies,
/// checks itself and then rolls back unless confirmed within `confirm_timeout_s` (10–600,
/// default 60) with `POST /network/changes/{id}/confirm` over a new connection.
#[utoipa::path(put, path = "/api/v1/network/host",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = HostSettingsUpdate,
    responses((status = 202, description = "The change, applying", body = NetworkChange,
        headers(("Location" = String, description = "/api/v1/network/changes/{id}")))))]
async fn put_host(
    State(state): State<AppState>,
    Caller(p): Caller,
    conn: Conn,
    Json(req): Json<HostSettingsUpdate>,
) -> ApiResult<Response> {
    let req = check(&req)?;
    let c = changes::begin(&state, &p.user, req, conn.caller, "network").await?;
    Ok(accepted(&c))
}

/// Host network changes, newest first (the last 50).
#[utoipa::path(get, path = "/api/v1/network/changes",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(CollectionParams),
    responses((status = 200, description = "Changes", body = [NetworkChange],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_changes(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(changes::list(&state)?, &params, &headers)
}

/// One change: `applying`, `awaiting_confirmation` (with its `deadline`), `confirmed`,
/// `rolled_back` or `failed` (with a `reason`).
#[utoipa::path(get, path = "/api/v1/network/changes/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("id" = String, Path, description = "Change id")),
    responses((status = 200, description = "The change", body = NetworkChange)))]
async fn get_change(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<NetworkChange>> {
    Ok(axum::Json(changes::get(&state, &id)?))
}

/// Keep a change awaiting confirmation. Must arrive over a connection opened after the
/// change applied (409 `confirm_needs_new_connection` otherwise).
#[utoipa::path(post, path = "/api/v1/network/changes/{id}/confirm",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("id" = String, Path, description = "Change id")),
    responses((status = 200, description = "Confirmed", body = NetworkChange)))]
async fn confirm_change(
    State(state): State<AppState>,
    Path(id): Path<String>,
    conn: Conn,
) -> ApiResult<axum::Json<NetworkChange>> {
    Ok(axum::Json(changes::confirm(&state, &id, conn.id).await?))
}

/// Give up on a change awaiting confirmation: the prior settings are put back now (state
/// `rolled_back`, reason `cancelled`) instead of at the deadline.
#[utoipa::path(post, path = "/api/v1/network/changes/{id}/rollback",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("id" = String, Path, description = "Change id")),
    responses((status = 200, description = "Rolled back", body = NetworkChange)))]
async fn rollback_change(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<NetworkChange>> {
    Ok(axum::Json(changes::cancel(&state, &id).await?))
}

/// A Jidoteki `settings.json`'s `network` object as native settings (for the admin area).
pub fn settings_for(u: &HostSettingsUpdate) -> ApiResult<changes::Request> {
    check(u)
}

/// The settings last confirmed, or None.
pub fn confirmed(state: &AppState) -> ApiResult<Option<HostSettings>> {
    changes::confirmed_settings(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(v: serde_json::Value) -> HostSettingsUpdate {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn checks() {
        let ok = check(&upd(serde_json::json!({"interface": "eth0", "mode": "static",
            "address": "192.0.2.10/24", "gateway": "192.0.2.1", "dns": ["192.0.2.2"],
            "hostname": "test.host", "ntp": ["pool.ntp.org"]})))
        .unwrap();
        assert_eq!(ok.timeout_s, 60);
        assert_eq!(ok.address, Some(("192.0.2.10".parse().unwrap(), 24)));
        let code = |v: serde_json::Value| check(&upd(v)).unwrap_err().code();
        assert_eq!(
            code(serde_json::json!({"interface": "eth0", "mode": "static"})),
            "address_required"
        );
        assert_eq!(
            code(serde_json::json!({"interface": "eth0", "mode": "static", "address": "192.0.2.10"})),
            "invalid_cidr"
        );
        assert_eq!(
            code(serde_json::json!({"interface": "eth0", "mode": "dhcp", "address": "192.0.2.10/24"})),
            "invalid_host_settings"
        );
        assert_eq!(
            code(serde_json::json!({"interface": "eth0", "mode": "dhcp", "confirm_timeout_s": 5})),
            "invalid_confirm_timeout"
        );
        assert_eq!(
            code(serde_json::json!({"interface": "eth0", "mode": "dhcp", "confirm_timeout_s": 601})),
            "invalid_confirm_timeout"
        );
        assert_eq!(
            code(serde_json::json!({"interface": "eth0", "mode": "dhcp", "hostname": "-bad"})),
            "invalid_hostname"
        );
        assert_eq!(
            code(serde_json::json!({"interface": "eth0", "mode": "dhcp", "dns": ["x"]})),
            "invalid_dns"
        );
        assert_eq!(
            code(serde_json::json!({"interface": "eth0/x", "mode": "dhcp"})),
            "invalid_interface_name"
        );
        assert_eq!(
            code(serde_json::json!({"interface": "eth0", "mode": "static", "address": "192.0.2.10/24", "gateway": "x"})),
            "invalid_address"
        );
    }

    #[test]
    fn hostnames() {
        for ok in ["a", "test.host", "a-b.c1", &"a".repeat(63)] {
            assert!(valid_hostname(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a_b", &"a".repeat(64), "a b", "é"] {
            assert!(!valid_hostname(bad), "{bad}");
        }
    }
}
