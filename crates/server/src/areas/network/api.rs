//! Handlers of the second slice: routes, forwarding, vNICs, DHCP servers and the provisioning
//! network. Same flow as the handlers in `mod.rs`: parse → writable check and the area's lock
//! ([`changing`]) → a plain function in [`routes`], [`vnics`], [`dhcp`] or [`provisioning`].

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hostplane_types::network::{
    DhcpHost, DhcpLease, DhcpServer, DhcpServerCreate, Forwarding, ForwardingUpdate,
    ProvisioningNetwork, ProvisioningNetworkCreate, Route, RouteCreate, Vnic, VnicCreate,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{NetworkAccess, changing, dhcp, model, provisioning, routes as rt, vnics};
use crate::error::{ApiError, ApiResult};
use crate::http::answer::{accepted, created};
use crate::http::collection::{self, CollectionParams};
use crate::http::caller::Caller;
use crate::http::extract::{Json, Query};
use crate::platform::jobs::{JobFailure, JobSpec};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_routes, create_route))
        .routes(routes!(get_route, delete_route))
        .routes(routes!(get_forwarding, put_forwarding))
        .routes(routes!(list_vnics, create_vnic))
        .routes(routes!(get_vnic, delete_vnic))
        .routes(routes!(list_dhcp, create_dhcp))
        .routes(routes!(get_dhcp, delete_dhcp))
        .routes(routes!(add_dhcp_host))
        .routes(routes!(delete_dhcp_host))
        .routes(routes!(list_leases))
        .routes(routes!(release_lease))
        .routes(routes!(get_provisioning, create_provisioning, delete_provisioning))
}

/// List the routes of the main table (managed and foreign).
#[utoipa::path(get, path = "/api/v1/network/routes",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(CollectionParams),
    responses((status = 200, description = "Routes", body = [Route],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_routes(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(rt::routes(&state.store).await?, &params, &headers)
}

/// Add a route (a gateway, an interface, or both).
#[utoipa::path(post, path = "/api/v1/network/routes",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = RouteCreate,
    responses((status = 201, description = "Created", body = Route)))]
async fn create_route(State(state): State<AppState>, Json(req): Json<RouteCreate>) -> ApiResult<Response> {
    rt::check_route(&req)?;
    let s = &state.store;
    let r = changing(&state, async || rt::add_route(s, &req).await).await?;
    Ok(created(&r.href, &r))
}

/// One route.
#[utoipa::path(get, path = "/api/v1/network/routes/{id}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("id" = String, Path, description = "Route id (opaque)")),
    responses((status = 200, description = "The route", body = Route)))]
async fn get_route(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<axum::Json<Route>> {
    Ok(axum::Json(rt::route(&state.store, &id).await?))
}

/// Remove a route hostplane added (others: 409 `route_foreign`).
#[utoipa::path(delete, path = "/api/v1/network/routes/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("id" = String, Path, description = "Route id (opaque)")),
    responses((status = 204, description = "Deleted")))]
async fn delete_route(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let s = &state.store;
    changing(&state, async || rt::delete_route(s, &id).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// IP forwarding, globally and per interface.
#[utoipa::path(get, path = "/api/v1/network/forwarding",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", responses((status = 200, description = "Forwarding", body = Forwarding)))]
async fn get_forwarding(State(state): State<AppState>) -> ApiResult<axum::Json<Forwarding>> {
    Ok(axum::Json(rt::forwarding(&state.store).await?))
}

/// Turn IPv4/IPv6 forwarding on or off, globally and per interface (absent: unchanged).
#[utoipa::path(put, path = "/api/v1/network/forwarding",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = ForwardingUpdate,
    responses((status = 200, description = "Forwarding now", body = Forwarding)))]
async fn put_forwarding(
    State(state): State<AppState>,
    Json(req): Json<ForwardingUpdate>,
) -> ApiResult<axum::Json<Forwarding>> {
    let s = &state.store;
    let f = changing(&state, async || rt::set_forwarding(s, &req).await).await?;
    Ok(axum::Json(f))
}

/// List the vNICs hostplane made (veth pairs, macvlans, taps).
#[utoipa::path(get, path = "/api/v1/network/vnics",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(CollectionParams),
    responses((status = 200, description = "vNICs", body = [Vnic],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_vnics(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(vnics::vnics(&state.store).await?, &params, &headers)
}

/// Create a veth pair, a macvlan on a parent or a tap (optionally a port of a managed bridge).
#[utoipa::path(post, path = "/api/v1/network/vnics",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = VnicCreate,
    responses((status = 201, description = "Created", body = Vnic)))]
async fn create_vnic(State(state): State<AppState>, Json(req): Json<VnicCreate>) -> ApiResult<Response> {
    vnics::check(&req)?;
    let s = &state.store;
    let v = changing(&state, async || vnics::create(s, &req).await).await?;
    Ok(created(&v.href, &v))
}

/// One vNIC.
#[utoipa::path(get, path = "/api/v1/network/vnics/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("name" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "vNIC name")),
    responses((status = 200, description = "The vNIC", body = Vnic)))]
async fn get_vnic(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<axum::Json<Vnic>> {
    Ok(axum::Json(vnics::vnic(&state.store, &name).await?))
}

/// Delete a vNIC (a veth's peer goes with it).
#[utoipa::path(delete, path = "/api/v1/network/vnics/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("name" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "vNIC name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_vnic(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    model::check_ifname("name", &name).map_err(|_| ApiError::not_found(format!("no vNIC named {name:?}")))?;
    let s = &state.store;
    changing(&state, async || vnics::delete(s, &name).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the DHCP servers.
#[utoipa::path(get, path = "/api/v1/network/dhcp-servers",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(CollectionParams),
    responses((status = 200, description = "DHCP servers", body = [DhcpServer],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_dhcp(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(dhcp::servers(&state.network().dhcp, &state.store)?, &params, &headers)
}

/// Start a DHCP server (dnsmasq, no DNS) on a managed bridge.
#[utoipa::path(post, path = "/api/v1/network/dhcp-servers",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = DhcpServerCreate,
    responses((status = 201, description = "Created", body = DhcpServer)))]
async fn create_dhcp(State(state): State<AppState>, Json(req): Json<DhcpServerCreate>) -> ApiResult<Response> {
    model::check_ifname("interface", &req.interface)?;
    let (d, s) = (&state.network().dhcp, &state.store);
    let v = changing(&state, async || dhcp::create(d, s, &req).await).await?;
    Ok(created(&v.href, &v))
}

/// One DHCP server, by its interface.
#[utoipa::path(get, path = "/api/v1/network/dhcp-servers/{interface}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("interface" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "The bridge it serves")),
    responses((status = 200, description = "The server", body = DhcpServer)))]
async fn get_dhcp(State(state): State<AppState>, Path(i): Path<String>) -> ApiResult<axum::Json<DhcpServer>> {
    Ok(axum::Json(dhcp::server(&state.network().dhcp, &state.store, &i)?))
}

/// Stop and remove a DHCP server (its leases go with it).
#[utoipa::path(delete, path = "/api/v1/network/dhcp-servers/{interface}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", params(("interface" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "The bridge it serves")),
    responses((status = 204, description = "Deleted")))]
async fn delete_dhcp(State(state): State<AppState>, Path(i): Path<String>) -> ApiResult<StatusCode> {
    let (d, s) = (&state.network().dhcp, &state.store);
    changing(&state, async || dhcp::delete(d, s, &i).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a static host (this MAC always gets this address).
#[utoipa::path(post, path = "/api/v1/network/dhcp-servers/{interface}/hosts",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = DhcpHost,
    params(("interface" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "The bridge it serves")),
    responses((status = 200, description = "The server", body = DhcpServer)))]
async fn add_dhcp_host(
    State(state): State<AppState>,
    Path(i): Path<String>,
    Json(req): Json<DhcpHost>,
) -> ApiResult<axum::Json<DhcpServer>> {
    let (d, s) = (&state.network().dhcp, &state.store);
    let v = changing(&state, async || dhcp::add_host(d, s, &i, &req).await).await?;
    Ok(axum::Json(v))
}

/// Remove a static host.
#[utoipa::path(delete, path = "/api/v1/network/dhcp-servers/{interface}/hosts/{mac}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network",
    params(("interface" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "The bridge it serves"),
        ("mac" = String, Path, description = "The host's MAC")),
    responses((status = 204, description = "Removed")))]
async fn delete_dhcp_host(
    State(state): State<AppState>,
    Path((i, mac)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (d, s) = (&state.network().dhcp, &state.store);
    changing(&state, async || dhcp::delete_host(d, s, &i, &mac).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The server's leases (dnsmasq's lease file).
#[utoipa::path(get, path = "/api/v1/network/dhcp-servers/{interface}/leases",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", params(("interface" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "The bridge it serves"), CollectionParams),
    responses((status = 200, description = "Leases", body = [DhcpLease],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_leases(
    State(state): State<AppState>,
    Path(i): Path<String>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(dhcp::leases(&state.network().dhcp, &state.store, &i)?, &params, &headers)
}

/// Release the lease of a MAC or an address.
#[utoipa::path(delete, path = "/api/v1/network/dhcp-servers/{interface}/leases/{key}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network",
    params(("interface" = String, Path, pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15, description = "The bridge it serves"),
        ("key" = String, Path, description = "The lease's MAC or IPv4 address")),
    responses((status = 204, description = "Released")))]
async fn release_lease(
    State(state): State<AppState>,
    Path((i, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (d, s) = (&state.network().dhcp, &state.store);
    changing(&state, async || dhcp::release(d, s, &i, &key).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The provisioning network, when one was built.
#[utoipa::path(get, path = "/api/v1/network/provisioning-network",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("network:read"))),
    tag = "network", responses((status = 200, description = "It", body = ProvisioningNetwork)))]
async fn get_provisioning(State(state): State<AppState>) -> ApiResult<axum::Json<ProvisioningNetwork>> {
    let r = provisioning::get(&state.store)?.ok_or_else(|| ApiError::not_found("no provisioning network"))?;
    Ok(axum::Json(provisioning::view(&r)))
}

fn failure(e: ApiError) -> JobFailure {
    JobFailure::new(e.code(), e.to_string())
}

/// Build the provisioning network (bridge, address, NAT out of the default route, forwarding,
/// DHCP) as one job.
#[utoipa::path(post, path = "/api/v1/network/provisioning-network",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network", request_body = ProvisioningNetworkCreate,
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn create_provisioning(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<ProvisioningNetworkCreate>,
) -> ApiResult<Response> {
    state.network().check_writable()?;
    let out = {
        let _g = state.network().lock.lock().await;
        provisioning::check(&state.store, &req).await?
    };
    let st = state.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "network.provisioning",
            target: Some("/api/v1/network/provisioning-network".into()),
            lock_key: Some("network/provisioning".into()),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _g = st.network().lock.lock().await;
            let log = |l: &str| ctx.log(l);
            let r = provisioning::build(&st.network().dhcp, &st.store, &req, out, &log).await;
            super::write_boot_files(&st);
            let r = r.map_err(failure)?;
            Ok(provisioning::view(&r))
        },
    )?;
    Ok(accepted(&job))
}

/// Tear the provisioning network down (DHCP, NAT rule, bridge) as one job.
#[utoipa::path(delete, path = "/api/v1/network/provisioning-network",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("network:write"))),
    tag = "network",
    responses((status = 202, description = "Started; follow the job", body = hostplane_types::jobs::Job)))]
async fn delete_provisioning(State(state): State<AppState>, Caller(p): Caller) -> ApiResult<Response> {
    state.network().check_writable()?;
    provisioning::get(&state.store)?.ok_or_else(|| ApiError::not_found("no provisioning network"))?;
    let st = state.clone();
    let job = state.jobs.spawn(
        JobSpec {
            kind: "network.provisioning_teardown",
            target: Some("/api/v1/network/provisioning-network".into()),
            lock_key: Some("network/provisioning".into()),
            actor: p.user.clone(),
        },
        move |ctx| async move {
            let _g = st.network().lock.lock().await;
            let log = |l: &str| ctx.log(l);
            let r = provisioning::teardown(&st.network().dhcp, &st.store, &log).await;
            super::write_boot_files(&st);
            let r = r.map_err(failure)?;
            Ok(provisioning::view(&r))
        },
    )?;
    Ok(accepted(&job))
}
