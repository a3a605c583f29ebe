//! An engine's networks: list, create (bridge), delete.

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptions;
use hostplane_types::container_io::{ContainerNetwork, NetworkCreate};

use super::{Engine, EngineError, EngineResult};

/// The networks both engines make themselves; never deleted.
pub const PREDEFINED_NETWORKS: &[&str] = &["none", "host", "bridge", "podman", "default"];

fn network_of(engine: &str, n: bollard::models::Network) -> ContainerNetwork {
    let name = n.name.unwrap_or_default();
    ContainerNetwork {
        href: format!(
            "{}/container-engines/{engine}/networks/{name}",
            hostplane_types::API_BASE
        ),
        engine: engine.to_string(),
        id: n.id.unwrap_or_default(),
        driver: n.driver.unwrap_or_default(),
        internal: n.internal.unwrap_or(false),
        subnets: n
            .ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.subnet)
            .collect(),
        created_at: n.created,
        labels: n.labels.unwrap_or_default().into_iter().collect(),
        predefined: PREDEFINED_NETWORKS.contains(&name.as_str()),
        name,
    }
}

impl Engine {
    pub async fn list_networks(&self) -> EngineResult<Vec<ContainerNetwork>> {
        let docker = self.client().await?;
        let list = self
            .bounded(docker.list_networks(None::<ListNetworksOptions>))
            .await?;
        let mut out: Vec<ContainerNetwork> = list
            .into_iter()
            .map(|n| network_of(self.name(), n))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One network by name (listing filtered here: podman 4.3's inspect answers another shape).
    pub async fn inspect_network(&self, name: &str) -> EngineResult<ContainerNetwork> {
        self.list_networks()
            .await?
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| EngineError::NotFound(format!("no network named {name:?}")))
    }

    /// Creates a bridge network; answers it as listed.
    pub async fn create_network(&self, req: &NetworkCreate) -> EngineResult<ContainerNetwork> {
        let docker = self.client().await?;
        let body = NetworkCreateRequest {
            name: req.name.clone(),
            driver: Some("bridge".into()),
            internal: Some(req.internal),
            labels: Some(req.labels.clone().into_iter().collect()),
            ipam: req.subnet.as_ref().map(|s| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(s.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.bounded(docker.create_network(body)).await?;
        self.inspect_network(&req.name).await
    }

    /// Deletes a network; one a container is attached to is [`EngineError::Conflict`].
    pub async fn remove_network(&self, name: &str) -> EngineResult<()> {
        let docker = self.client().await?;
        match self.bounded(docker.remove_network(name)).await {
            Err(EngineError::Failed(m))
                if m.contains("being used")
                    || m.contains("in use")
                    || m.contains("active endpoints") =>
            {
                Err(EngineError::Conflict(m))
            }
            other => other,
        }
    }
}

/// What of one engine is bound to a host link (a bridge hostplane manages): the engine's
/// networks on it and the containers (running or not) attached to those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnLink {
    pub networks: Vec<String>,
    /// Container names (without the leading `/`).
    pub containers: Vec<String>,
}

/// Whether a network of `driver` with driver `options` is bound to host link `link`:
/// dockerd's bridge driver names its bridge in `com.docker.network.bridge.name`, macvlan and
/// ipvlan networks their parent link in `parent`.
pub fn bound_to(
    driver: &str,
    options: &std::collections::HashMap<String, String>,
    link: &str,
) -> bool {
    let key = match driver {
        "bridge" => "com.docker.network.bridge.name",
        "macvlan" | "ipvlan" => "parent",
        _ => return false,
    };
    options.get(key).is_some_and(|v| v == link)
}

/// podman's own listing (`/libpod/networks/json`): its compat listing leaves the bridge name
/// and a macvlan parent out, its own has both as `network_interface`.
#[derive(serde::Deserialize)]
struct LibpodNetwork {
    name: String,
    #[serde(default)]
    network_interface: Option<String>,
}

impl Engine {
    /// The engine's networks bound to host link `link` and the containers attached to them
    /// (one network listing, podman's own listing when the engine is podman, one container
    /// listing: no inspection per container).
    pub async fn on_link(&self, link: &str) -> EngineResult<OnLink> {
        let docker = self.client().await?;
        let list = self
            .bounded(docker.list_networks(None::<ListNetworksOptions>))
            .await?;
        let mut networks: Vec<String> = list
            .into_iter()
            .filter(|n| {
                bound_to(
                    n.driver.as_deref().unwrap_or_default(),
                    n.options.as_ref().unwrap_or(&Default::default()),
                    link,
                )
            })
            .filter_map(|n| n.name)
            .collect();
        // dockerd answers this path with an error: only podman's answer counts.
        if let Ok(Ok((200, body))) = tokio::time::timeout(
            self.timeout(),
            super::update::raw_get(self.socket(), "/v4.0.0/libpod/networks/json"),
        )
        .await
            && let Ok(own) = serde_json::from_str::<Vec<LibpodNetwork>>(&body)
        {
            for n in own {
                if n.network_interface.as_deref() == Some(link) && !networks.contains(&n.name) {
                    networks.push(n.name);
                }
            }
        }
        if networks.is_empty() {
            return Ok(OnLink::default());
        }
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let summaries = self.bounded(docker.list_containers(Some(opts))).await?;
        let mut containers: Vec<String> = summaries
            .into_iter()
            // The attached networks, not `HostConfig.NetworkMode`: dockerd keeps the mode
            // after a disconnect, and the container then no longer has an endpoint there.
            .filter(|s| {
                s.network_settings
                    .as_ref()
                    .and_then(|n| n.networks.as_ref())
                    .is_some_and(|m| m.keys().any(|k| networks.contains(k)))
            })
            .map(|s| {
                s.names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .or(s.id)
                    .unwrap_or_default()
            })
            .collect();
        networks.sort();
        containers.sort();
        Ok(OnLink {
            networks,
            containers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_and_parents_bind_networks_to_links() {
        let o =
            |k: &str, v: &str| std::collections::HashMap::from([(k.to_string(), v.to_string())]);
        assert!(bound_to(
            "bridge",
            &o("com.docker.network.bridge.name", "br0"),
            "br0"
        ));
        assert!(!bound_to(
            "bridge",
            &o("com.docker.network.bridge.name", "br1"),
            "br0"
        ));
        assert!(bound_to("macvlan", &o("parent", "br0"), "br0"));
        assert!(bound_to("ipvlan", &o("parent", "br0"), "br0"));
        assert!(!bound_to("bridge", &o("parent", "br0"), "br0"));
        assert!(!bound_to("overlay", &o("parent", "br0"), "br0"));
    }
}
