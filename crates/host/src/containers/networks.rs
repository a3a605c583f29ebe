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
