//! `/api/v1/container-engines/{engine}/networks`: an engine's networks (list, create a bridge
//! network, get, delete). The engines' own networks (`none`, `host`, `bridge`, `podman`) are
//! listed but never deleted (409 `network_predefined`); a network a container is attached to
//! is 409 `network_in_use`. Names are checked before the engine is asked.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hostplane_host::containers::networks::PREDEFINED_NETWORKS;
use hostplane_host::containers::{Engine, EngineError};
use hostplane_types::container_io::{ContainerNetwork, NetworkCreate};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    ContainersState, engine_and_name, engine_error, model, publish_object, refuse_existing,
};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_networks, create_network))
        .routes(routes!(get_network, delete_network))
}

fn target<'a>(
    state: &'a AppState,
    engine: &str,
    name: &str,
) -> ApiResult<&'a std::sync::Arc<Engine>> {
    engine_and_name(state, engine, "network", name)
}

/// Checks a create request: name, labels, and a subnet in CIDR form.
pub fn check_create(req: &NetworkCreate) -> ApiResult<()> {
    model::check_name("name", &req.name)?;
    if PREDEFINED_NETWORKS.contains(&req.name.as_str()) {
        return Err(ApiError::invalid_field(
            "invalid_name",
            "name",
            format!("{:?} is one of the engines' own networks", req.name),
        ));
    }
    model::check_labels(&req.labels)?;
    if let Some(s) = &req.subnet {
        let ok = s.split_once('/').is_some_and(|(ip, len)| {
            let max = match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(_)) => 32,
                Ok(std::net::IpAddr::V6(_)) => 128,
                Err(_) => return false,
            };
            len.parse::<u8>().is_ok_and(|l| l <= max && !len.starts_with('+'))
        });
        if !ok {
            return Err(ApiError::invalid_field(
                "invalid_subnet",
                "subnet",
                format!("{s:?} is not a subnet in CIDR form (10.89.7.0/24)"),
            ));
        }
    }
    Ok(())
}

/// List an engine's networks.
#[utoipa::path(get, path = "/api/v1/container-engines/{engine}/networks",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"), CollectionParams),
    responses((status = 200, description = "Networks", body = [ContainerNetwork],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_networks(
    State(state): State<AppState>,
    Path(engine): Path<String>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?;
    let list = e.list_networks().await.map_err(engine_error)?;
    collection::respond(list, &params, &headers)
}

/// Create a bridge network.
#[utoipa::path(post, path = "/api/v1/container-engines/{engine}/networks",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name")),
    request_body = NetworkCreate,
    responses((status = 201, description = "Created", body = ContainerNetwork)))]
async fn create_network(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(engine): Path<String>,
    Json(req): Json<NetworkCreate>,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?;
    check_create(&req)?;
    refuse_existing(
        e.inspect_network(&req.name).await,
        "network_exists",
        format!("network {:?} on engine {engine:?}", req.name),
    )?;
    let n = e.create_network(&req).await.map_err(engine_error)?;
    publish(&state, "resource.created", &n, &p.user);
    Ok(crate::http::answer::created(&n.href, &n))
}

fn publish(state: &AppState, kind: &str, n: &ContainerNetwork, actor: &str) {
    publish_object(state, kind, &n.href, actor, n);
}

/// One network.
#[utoipa::path(get, path = "/api/v1/container-engines/{engine}/networks/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("containers:read"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Network name")),
    responses((status = 200, description = "The network", body = ContainerNetwork)))]
async fn get_network(
    State(state): State<AppState>,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<ContainerNetwork>> {
    let e = target(&state, &engine, &name)?;
    Ok(axum::Json(e.inspect_network(&name).await.map_err(engine_error)?))
}

/// Delete a network (not one of the engine's own; not one a container is attached to).
#[utoipa::path(delete, path = "/api/v1/container-engines/{engine}/networks/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Network name")),
    responses((status = 204, description = "Deleted")))]
async fn delete_network(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((engine, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let e = target(&state, &engine, &name)?;
    let n = e.inspect_network(&name).await.map_err(engine_error)?;
    if n.predefined {
        return Err(ApiError::conflict(
            "network_predefined",
            format!("network {name:?} is one of the engine's own and cannot be deleted"),
        ));
    }
    // Both engines refuse a network with containers; podman 4.3 says so with a 500.
    let used = e
        .list_containers()
        .await
        .map_err(engine_error)?
        .into_iter()
        .filter(|c| c.networks.iter().any(|x| *x == n.name || *x == n.id))
        .map(|c| c.name)
        .collect::<Vec<_>>();
    if !used.is_empty() {
        return Err(ApiError::conflict(
            "network_in_use",
            format!("network {name:?} has containers attached: {}", used.join(", ")),
        ));
    }
    e.remove_network(&name).await.map_err(|err| match err {
        EngineError::Conflict(m) => ApiError::conflict("network_in_use", m),
        other => engine_error(other),
    })?;
    publish(&state, "resource.deleted", &n, &p.user);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Registers the containers with the links' users (a managed bridge is not deleted under them).
pub fn register(services: &crate::state::Services) {
    services
        .link_users
        .register(std::sync::Arc::new(ContainersOnLinks));
}

/// The containers' answer to the links' registry: every engine is asked (concurrently, each
/// under its deadline) for its networks bound to the link (a bridge network whose bridge is
/// the link, a macvlan/ipvlan network whose parent is) and the containers, running or not,
/// attached to them. Both count: deleting the bridge would break the network as well. An
/// engine that does not answer is left out (logged), as for the pools' registry.
struct ContainersOnLinks;

impl crate::platform::link_users::LinkUser for ContainersOnLinks {
    fn uses<'a>(
        &'a self,
        state: &'a AppState,
        link: &'a str,
    ) -> crate::platform::link_users::Uses<'a> {
        Box::pin(async move {
            let engines = state.engines().all();
            let answers =
                futures_util::future::join_all(engines.iter().map(|e| e.on_link(link))).await;
            let mut out = Vec::new();
            for (e, a) in engines.iter().zip(answers) {
                match a {
                    Ok(on) => out.extend(link_uses(e.name(), &on)),
                    Err(err) => tracing::warn!(engine = e.name(), link, error = %err,
                        "engine not asked whether it uses the link"),
                }
            }
            Ok(out)
        })
    }
}

/// One engine's answer as the registry's entries.
fn link_uses(
    engine: &str,
    on: &hostplane_host::containers::networks::OnLink,
) -> Vec<crate::platform::link_users::LinkUse> {
    let containers = on
        .containers
        .iter()
        .map(|c| crate::platform::link_users::LinkUse {
            kind: "container".into(),
            name: format!("{engine}/{c}"),
            href: hostplane_host::containers::convert::container_href(engine, c),
        });
    let networks = on
        .networks
        .iter()
        .map(|n| crate::platform::link_users::LinkUse {
            kind: "container-network".into(),
            name: format!("{engine}/{n}"),
            href: format!("{}/container-engines/{engine}/networks/{n}", hostplane_types::API_BASE),
        });
    containers.chain(networks).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, subnet: Option<&str>) -> NetworkCreate {
        NetworkCreate {
            name: name.into(),
            internal: false,
            subnet: subnet.map(str::to_string),
            labels: Default::default(),
        }
    }

    #[test]
    fn create_requests_are_checked() {
        assert!(check_create(&req("backend", Some("10.89.7.0/24"))).is_ok());
        assert!(check_create(&req("backend", Some("fd00::/64"))).is_ok());
        for (n, s) in [
            ("-x", None),
            ("a..b", None),
            ("host", None),
            ("ok", Some("10.0.0.0")),
            ("ok", Some("10.0.0.0/33")),
            ("ok", Some("nonsense/8")),
        ] {
            assert!(check_create(&req(n, s)).is_err(), "{n} {s:?}");
        }
    }
}
