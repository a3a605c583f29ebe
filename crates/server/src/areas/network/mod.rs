//! `/api/v1/network`: links, bridges, addresses, NAT rules and port forwards.
//!
//! Request flow: auth layer (viewer reads, admin changes) → a handler here (parses, takes the
//! area's change lock for writes, checks [`NetworkState::check_writable`]) → a plain function
//! in [`links`] (netlink through `hostplane_host::network`) or [`firewall`] (one nftables batch
//! through `hostplane_host::network::nft`) → the store ([`model`], table `network_objects`),
//! written only after the kernel accepted the change.
//!
//! hostplane owns only what it created: the bridges, VLANs, bonds and addresses it stored, and
//! the `ip hostplane` nftables table. Everything else is listed as `managed_by: foreign` and
//! never changed. The start hook re-creates what the store holds (docs/network.md).
//!
//! Safety: with `sandbox` on (tests, fuzzing) the daemon changes the network only when it runs
//! in a namespace that `ip netns` named (tests start it with `ip netns exec`); anywhere else every change answers 503 `network_sandboxed` and the start hook does nothing.

mod api;
pub mod dhcp;
pub mod dhcp_client;
pub mod changes;
pub mod firewall;
pub mod host_settings;
pub mod links;
pub mod model;
pub mod provisioning;
pub mod routes;
pub mod vnics;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hostplane_host::network as host;
use hostplane_types::network::{
    Address, AddressCreate, BondCreate, Bridge, BridgeCreate, BridgePortAdd, Interface,
    InterfaceUpdate, NatRule, NatRuleCreate, PortForward, PortForwardCreate, VlanCreate,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::{AnyState, Area, HookFuture};
use crate::error::{ApiError, ApiResult};
use crate::http::answer::created;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::state::{AppState, Services};

pub const AREA: Area = Area {
    init: Some(init),
    start: Some(start),
    shutdown: Some(shutdown),
    ..Area::new(
        "network",
        "Host network: links, bridges, addresses, NAT rules and port forwards (nftables); hostplane changes only what it created",
        router,
    )
};

/// This area's state: one change at a time, and whether changes are allowed here.
pub struct NetworkState {
    lock: tokio::sync::Mutex<()>,
    writable: bool,
    /// The supervised dnsmasq of each DHCP server.
    dhcp: dhcp::Dhcp,
    /// The open host-settings change (confirm-or-rollback).
    host: changes::HostChanges,
    /// The management interface's DHCP client (host settings `mode: dhcp`).
    dhcp_client: dhcp_client::DhcpClient,
}

impl NetworkState {
    /// 503 `network_sandboxed` when this daemon must not change the network it runs in.
    fn check_writable(&self) -> ApiResult<()> {
        if self.writable {
            return Ok(());
        }
        Err(ApiError::Unavailable {
            code: "network_sandboxed",
            detail: "network changes are off: this daemon runs with sandbox on outside a named \
                     network namespace (run it in one with `ip netns exec`)"
                .into(),
        })
    }
}

fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    let writable = !services.config.sandbox() || host::in_named_netns();
    Ok(Some(Arc::new(NetworkState {
        lock: tokio::sync::Mutex::new(()),
        writable,
        dhcp: dhcp::Dhcp::new(services.config.data_dir.join("network/dhcp")),
        host: Default::default(),
        dhcp_client: dhcp_client::DhcpClient::new(
            services.config.data_dir.join("network/dhcp-client"),
        ),
    })))
}

/// Re-creates the stored bridges, links and addresses and re-applies the nftables table.
fn start(state: AppState) -> HookFuture {
    Box::pin(async move {
        if !state.network().writable {
            return;
        }
        // A host change left open by a daemon that died: its prior config comes back first.
        changes::recover(&state).await;
        changes::start_dhcp_client(&state).await;
        let _g = state.network().lock.lock().await;
        // vNICs first: the bridges take them back as ports.
        if let Err(e) = vnics::reconcile(&state.store).await {
            tracing::warn!(error = %e, "network: re-creating vNICs failed");
        }
        if let Err(e) = links::reconcile(&state.store).await {
            tracing::warn!(error = %e, "network: re-creating managed links failed");
        }
        if let Err(e) = routes::reconcile(&state.store).await {
            tracing::warn!(error = %e, "network: re-adding routes and forwarding failed");
        }
        if let Err(e) = firewall::reconcile(&state.store).await {
            tracing::warn!(error = %e, "network: re-applying the nftables table failed");
        }
        if let Err(e) = dhcp::reconcile(&state.network().dhcp, &state.store).await {
            tracing::warn!(error = %e, "network: starting the DHCP servers failed");
        }
    })
}

/// Stops the DHCP servers (their dnsmasq processes).
fn shutdown(state: AppState) -> HookFuture {
    Box::pin(async move {
        state.network().dhcp.stop_all().await;
        state.network().dhcp_client.stop().await;
    })
}

/// 409 `bridge_in_use` when anything attaches to the bridge: another area's objects (the
/// links' registry) or a DHCP server of this area.
async fn check_bridge_unused(state: &AppState, name: &str) -> ApiResult<()> {
    let mut uses = state.link_users.uses(state, name).await?;
    if dhcp::interfaces(&state.store)?.iter().any(|i| i == name) {
        uses.push(crate::platform::link_users::LinkUse {
            kind: "dhcp-server".into(),
            name: name.to_string(),
            href: dhcp::server_href(name),
        });
    }
    crate::platform::link_users::refusal(name, uses)
}

trait NetworkAccess {
    fn network(&self) -> &NetworkState;
}

impl NetworkAccess for AppState {
    fn network(&self) -> &NetworkState {
        self.area::<NetworkState>()
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_interfaces))
        .routes(routes!(get_interface, update_interface, delete_interface))
        .routes(routes!(list_bridges, create_bridge))
        .routes(routes!(get_bridge, delete_bridge))
        .routes(routes!(add_bridge_port))
        .routes(routes!(remove_bridge_port))
        .routes(routes!(list_addresses, create_address))
        .routes(routes!(get_address, delete_address))
        .routes(routes!(list_nat_rules, create_nat_rule))
        .routes(routes!(get_nat_rule, delete_nat_rule))
        .routes(routes!(list_port_forwards, create_port_forward))
        .routes(routes!(get_port_forward, delete_port_forward))
        .routes(routes!(create_vlan))
        .routes(routes!(create_bond))
        .merge(api::router())
        .merge(host_settings::router())
}

/// Runs a change: writable check, then `f` under the area's lock, then the boot files are
/// rendered again from the store (a bridge or its addresses reach them at once, not only at
/// the next confirm or start; unchanged files are not rewritten).
async fn changing<T>(
    state: &AppState,
    f: impl AsyncFnOnce() -> ApiResult<T>,
) -> ApiResult<T> {
    state.network().check_writable()?;
    let _g = state.network().lock.lock().await;
    let r = f().await;
    write_boot_files(state);
    r
}

/// [`changes::render_boot`], a failure logged: the kernel change stands either way, and the
/// next change or start writes the files again.
fn write_boot_files(state: &AppState) {
    if let Err(e) = changes::render_boot(state) {
        tracing::warn!(error = %e, "network: writing the boot files failed");
    }
}

/// List every link: kind, state, MTU, MAC, addresses, statistics, master and ports, owner.
#[utoipa::path(get, path = "/api/v1/network/interfaces",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(CollectionParams),
    responses((status = 200, description = "Links", body = [Interface],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_interfaces(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(links::interfaces(&state.store).await?, &params, &headers)
}

/// One link.
#[utoipa::path(get, path = "/api/v1/network/interfaces/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("name" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "Interface name")),
    responses((status = 200, description = "The link", body = Interface)))]
async fn get_interface(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Interface>> {
    Ok(axum::Json(links::interface(&state.store, &name).await?))
}

/// Change the MTU, state or description of a link hostplane manages (others: 409).
#[utoipa::path(patch, path = "/api/v1/network/interfaces/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = InterfaceUpdate,
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "Interface name")),
    responses((status = 200, description = "The link", body = Interface)))]
async fn update_interface(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<InterfaceUpdate>,
) -> ApiResult<axum::Json<Interface>> {
    model::check_ifname("name", &name)?;
    let s = &state.store;
    let i = changing(&state, async || links::update_interface(s, &name, &req).await).await?;
    Ok(axum::Json(i))
}

/// Delete a link hostplane manages (a bridge, VLAN or bond); others: 409.
#[utoipa::path(delete, path = "/api/v1/network/interfaces/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("name" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "Interface name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_interface(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    model::check_ifname("name", &name)?;
    let s = &state.store;
    changing(&state, async || {
        check_bridge_unused(&state, &name).await?;
        if vnics::names(s)?.contains(&name) {
            return vnics::delete(s, &name).await;
        }
        links::delete_link(s, &name).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List bridges (managed and foreign).
#[utoipa::path(get, path = "/api/v1/network/bridges",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(CollectionParams),
    responses((status = 200, description = "Bridges", body = [Bridge],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_bridges(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(links::bridges(&state.store).await?, &params, &headers)
}

/// Create a bridge (up at once) and attach its ports; no ports makes an etherstub.
#[utoipa::path(post, path = "/api/v1/network/bridges",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = BridgeCreate,
    responses((status = 201, description = "Created", body = Bridge)))]
async fn create_bridge(
    State(state): State<AppState>,
    Json(req): Json<BridgeCreate>,
) -> ApiResult<Response> {
    model::check_ifname("name", &req.name)?;
    let s = &state.store;
    let b = changing(&state, async || links::create_bridge(s, &req).await).await?;
    Ok(created(&b.href, &b))
}

/// One bridge.
#[utoipa::path(get, path = "/api/v1/network/bridges/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("name" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "Bridge name")),
    responses((status = 200, description = "The bridge", body = Bridge)))]
async fn get_bridge(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Bridge>> {
    Ok(axum::Json(links::bridge(&state.store, &name).await?))
}

/// Delete a bridge hostplane manages; its ports are released, its addresses go with it.
#[utoipa::path(delete, path = "/api/v1/network/bridges/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("name" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "Bridge name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_bridge(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    model::check_ifname("name", &name)?;
    let s = &state.store;
    changing(&state, async || {
        check_bridge_unused(&state, &name).await?;
        links::delete_bridge(s, &name).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Attach a link to a managed bridge.
#[utoipa::path(post, path = "/api/v1/network/bridges/{name}/ports",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = BridgePortAdd,
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "Bridge name")),
    responses((status = 200, description = "The bridge", body = Bridge)))]
async fn add_bridge_port(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<BridgePortAdd>,
) -> ApiResult<axum::Json<Bridge>> {
    model::check_ifname("name", &name)?;
    model::check_ifname("interface", &req.interface)?;
    let s = &state.store;
    let b = changing(&state, async || links::add_port(s, &name, &req.interface).await).await?;
    Ok(axum::Json(b))
}

/// Release a port from a managed bridge.
#[utoipa::path(delete, path = "/api/v1/network/bridges/{name}/ports/{port}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network",
    params(("name" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "Bridge name"),
        ("port" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "Port (interface) name")),
    responses((status = 204, description = "Released")))]
async fn remove_bridge_port(
    State(state): State<AppState>,
    Path((name, port)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    model::check_ifname("name", &name)?;
    model::check_ifname("port", &port)?;
    let s = &state.store;
    changing(&state, async || links::remove_port(s, &name, &port).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List every address on every link (managed and foreign).
#[utoipa::path(get, path = "/api/v1/network/addresses",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(CollectionParams),
    responses((status = 200, description = "Addresses", body = [Address],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_addresses(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(links::addresses(&state.store).await?, &params, &headers)
}

/// Add an address (CIDR) to a link.
#[utoipa::path(post, path = "/api/v1/network/addresses",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = AddressCreate,
    responses((status = 201, description = "Created", body = Address)))]
async fn create_address(
    State(state): State<AppState>,
    Json(req): Json<AddressCreate>,
) -> ApiResult<Response> {
    model::check_ifname("interface", &req.interface)?;
    model::parse_cidr("address", &req.address)?;
    let s = &state.store;
    let a = changing(&state, async || {
        links::add_address(s, &req.interface, &req.address).await
    })
    .await?;
    Ok(created(&a.href, &a))
}

/// One address.
#[utoipa::path(get, path = "/api/v1/network/addresses/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("id" = String, Path, description = "Address id (opaque)")),
    responses((status = 200, description = "The address", body = Address)))]
async fn get_address(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Address>> {
    Ok(axum::Json(links::address(&state.store, &id).await?))
}

/// Remove an address hostplane added (others: 409 `address_foreign`).
#[utoipa::path(delete, path = "/api/v1/network/addresses/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("id" = String, Path, description = "Address id (opaque)")),
    responses((status = 204, description = "Deleted")))]
async fn delete_address(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let s = &state.store;
    changing(&state, async || links::delete_address(s, &id).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List NAT rules.
#[utoipa::path(get, path = "/api/v1/network/nat-rules",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(CollectionParams),
    responses((status = 200, description = "NAT rules", body = [NatRule],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_nat_rules(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(firewall::nat_rules(&state.store)?, &params, &headers)
}

/// Add a masquerade rule (source network out of an interface) to hostplane's table.
#[utoipa::path(post, path = "/api/v1/network/nat-rules",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = NatRuleCreate,
    responses((status = 201, description = "Created", body = NatRule)))]
async fn create_nat_rule(
    State(state): State<AppState>,
    Json(req): Json<NatRuleCreate>,
) -> ApiResult<Response> {
    model::parse_ipv4_network("source", &req.source)?;
    model::check_ifname("out_interface", &req.out_interface)?;
    let s = &state.store;
    let r = changing(&state, async || firewall::create_nat(s, &req).await).await?;
    Ok(created(&r.href, &r))
}

/// One NAT rule.
#[utoipa::path(get, path = "/api/v1/network/nat-rules/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, description = "The rule", body = NatRule)))]
async fn get_nat_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<NatRule>> {
    Ok(axum::Json(firewall::nat_rule(&state.store, &id)?))
}

/// Remove a NAT rule.
#[utoipa::path(delete, path = "/api/v1/network/nat-rules/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("id" = String, Path, description = "Rule id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_nat_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let s = &state.store;
    changing(&state, async || firewall::delete_nat(s, &id).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List port forwards.
#[utoipa::path(get, path = "/api/v1/network/port-forwards",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(CollectionParams),
    responses((status = 200, description = "Port forwards", body = [PortForward],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_port_forwards(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(firewall::port_forwards(&state.store)?, &params, &headers)
}

/// Forward ports of a listen address to targets (DNAT), applied with the other rules as one
/// nftables batch.
#[utoipa::path(post, path = "/api/v1/network/port-forwards",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = PortForwardCreate,
    responses((status = 201, description = "Created", body = PortForward)))]
async fn create_port_forward(
    State(state): State<AppState>,
    Json(req): Json<PortForwardCreate>,
) -> ApiResult<Response> {
    model::parse_ipv4("listen_address", &req.listen_address)?;
    let s = &state.store;
    let f = changing(&state, async || firewall::create_forward(s, &req).await).await?;
    Ok(created(&f.href, &f))
}

/// One port forward.
#[utoipa::path(get, path = "/api/v1/network/port-forwards/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("id" = String, Path, description = "Forward id")),
    responses((status = 200, description = "The port forward", body = PortForward)))]
async fn get_port_forward(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PortForward>> {
    Ok(axum::Json(firewall::port_forward(&state.store, &id)?))
}

/// Remove a port forward.
#[utoipa::path(delete, path = "/api/v1/network/port-forwards/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("id" = String, Path, description = "Forward id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_port_forward(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let s = &state.store;
    changing(&state, async || firewall::delete_forward(s, &id).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an 802.1Q VLAN link on a parent; 501 `network_kind_unsupported` where the kernel has
/// no 8021q support.
#[utoipa::path(post, path = "/api/v1/network/vlans",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = VlanCreate,
    responses((status = 201, description = "Created", body = Interface),
        (status = 501, description = "The kernel lacks the driver (`network_kind_unsupported`)",
            body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn create_vlan(
    State(state): State<AppState>,
    Json(req): Json<VlanCreate>,
) -> ApiResult<Response> {
    model::check_ifname("name", &req.name)?;
    model::check_ifname("parent", &req.parent)?;
    if !(1..=4094).contains(&req.vlan_id) {
        return Err(ApiError::invalid_field("invalid_vlan_id", "vlan_id", "1–4094"));
    }
    let s = &state.store;
    let i = changing(&state, async || {
        let parent = links::link_index(&req.parent, "parent").await?;
        let rec = model::LinkRec {
            name: req.name.clone(),
            kind: "vlan".into(),
            parent: Some(req.parent.clone()),
            vlan_id: Some(req.vlan_id),
            mode: None,
            description: None,
        };
        let msg = host::vlan_message(&req.name, parent, req.vlan_id);
        links::create_link(s, rec, msg).await
    })
    .await?;
    Ok(created(&i.href, &i))
}

/// Create a bond link; 501 `network_kind_unsupported` where the kernel has no bonding driver.
#[utoipa::path(post, path = "/api/v1/network/bonds",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = BondCreate,
    responses((status = 201, description = "Created", body = Interface),
        (status = 501, description = "The kernel lacks the driver (`network_kind_unsupported`)",
            body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn create_bond(
    State(state): State<AppState>,
    Json(req): Json<BondCreate>,
) -> ApiResult<Response> {
    model::check_ifname("name", &req.name)?;
    // The schema's enum and the kernel's names are the same list.
    let mode = host::bond_mode(req.mode.as_str()).ok_or_else(|| {
        ApiError::invalid_field("invalid_bond_mode", "mode", "not a bond mode")
    })?;
    let s = &state.store;
    let i = changing(&state, async || {
        let rec = model::LinkRec {
            name: req.name.clone(),
            kind: "bond".into(),
            parent: None,
            vlan_id: None,
            mode: Some(req.mode.as_str().to_string()),
            description: None,
        };
        links::create_link(s, rec, host::bond_message(&req.name, mode)).await
    })
    .await?;
    Ok(created(&i.href, &i))
}
