//! Engine models ↔ API types. Pure functions (unit-tested without an engine).
//!
//! Enums are compared through their wire text (`to_string()`), so a value one engine sends and
//! bollard's enum lacks still reads as `unknown`/`other` where the model allows it.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, ImageSummary,
    Mount, MountType, NetworkingConfig, PortBinding, RestartPolicyNameEnum,
};
use hostplane_types::API_BASE;
use hostplane_types::containers::{
    Container, ContainerCreate, ContainerImage, ContainerLimits, ContainerMount, ContainerState,
    MountKind, PortMapping, PortProtocol, RestartPolicy, RestartPolicyName,
};

/// The label a compose project puts on its containers.
pub const STACK_LABEL: &str = "com.docker.compose.project";

pub fn container_href(engine: &str, name: &str) -> String {
    format!("{API_BASE}/containers/{engine}/{name}")
}

fn state_of(s: &str) -> ContainerState {
    match s {
        "created" | "configured" | "initialized" => ContainerState::Created,
        "running" => ContainerState::Running,
        "paused" => ContainerState::Paused,
        "restarting" => ContainerState::Restarting,
        "removing" => ContainerState::Removing,
        "exited" | "stopped" => ContainerState::Exited,
        "dead" => ContainerState::Dead,
        "stopping" => ContainerState::Stopping,
        _ => ContainerState::Unknown,
    }
}

fn restart_of(name: Option<RestartPolicyNameEnum>, retries: Option<i64>) -> RestartPolicy {
    let name = match name.map(|n| n.to_string()).as_deref() {
        Some("always") => RestartPolicyName::Always,
        Some("unless-stopped") => RestartPolicyName::UnlessStopped,
        Some("on-failure") => RestartPolicyName::OnFailure,
        _ => RestartPolicyName::No,
    };
    RestartPolicy {
        name,
        max_retries: retries.unwrap_or(0).clamp(0, u32::MAX as i64) as u32,
    }
}

fn limits_of(h: &HostConfig) -> ContainerLimits {
    let cpus = match (h.nano_cpus, h.cpu_quota, h.cpu_period) {
        (Some(n), _, _) if n > 0 => Some(n as f64 / 1e9),
        (_, Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
        _ => None,
    };
    ContainerLimits {
        memory_bytes: h.memory.filter(|m| *m > 0).map(|m| m as u64),
        cpus,
        pids: h.pids_limit.filter(|p| *p > 0),
    }
}

fn ports_of(map: Option<&HashMap<String, Option<Vec<PortBinding>>>>) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for (key, bindings) in map.into_iter().flatten() {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let Ok(container_port) = port.parse::<u16>() else {
            continue;
        };
        let protocol = if proto == "udp" {
            PortProtocol::Udp
        } else {
            PortProtocol::Tcp
        };
        let bs = bindings.as_deref().unwrap_or_default();
        if bs.is_empty() {
            out.push(PortMapping {
                container_port,
                protocol,
                host_port: None,
                host_ip: None,
            });
        }
        for b in bs {
            out.push(PortMapping {
                container_port,
                protocol,
                host_port: b.host_port.as_deref().and_then(|p| p.parse().ok()),
                host_ip: b.host_ip.clone().filter(|ip| !ip.is_empty()),
            });
        }
    }
    out.sort_by(|a, b| {
        (a.container_port, a.host_port, &a.host_ip).cmp(&(
            b.container_port,
            b.host_port,
            &b.host_ip,
        ))
    });
    out
}

/// An inspected container as the API shows it.
pub fn container_of(engine: &str, c: ContainerInspectResponse) -> Container {
    let name = c
        .name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string();
    let config = c.config.unwrap_or_default();
    let host = c.host_config.unwrap_or_default();
    let state = c.state.unwrap_or_default();
    let labels: BTreeMap<String, String> = config.labels.unwrap_or_default().into_iter().collect();
    let mounts = c
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let kind = match m.typ.map(|t| t.to_string()).as_deref() {
                Some("bind") => MountKind::Bind,
                Some("volume") => MountKind::Volume,
                Some("tmpfs") => MountKind::Tmpfs,
                _ => MountKind::Other,
            };
            let source = match kind {
                MountKind::Volume => m.name.or(m.source),
                _ => m.source,
            };
            ContainerMount {
                kind,
                source: source.unwrap_or_default(),
                target: m.destination.unwrap_or_default(),
                read_only: m.rw == Some(false),
            }
        })
        .collect();
    let mut networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    if networks.is_empty()
        && let Some(mode) = host.network_mode.clone().filter(|m| !m.is_empty())
    {
        networks.push(mode);
    }
    networks.sort();
    // Published ports from the runtime view when running, else from the configuration.
    let runtime_ports = c.network_settings.as_ref().and_then(|n| n.ports.as_ref());
    let ports = match runtime_ports {
        Some(p) if !p.is_empty() => ports_of(Some(p)),
        _ => ports_of(host.port_bindings.as_ref()),
    };
    let not_zero = |t: Option<String>| t.filter(|s| !s.starts_with("0001-01-01"));
    Container {
        href: container_href(engine, &name),
        engine: engine.to_string(),
        id: c.id.unwrap_or_default(),
        stack: labels.get(STACK_LABEL).cloned(),
        name,
        image: config.image.unwrap_or_default(),
        image_id: c.image.unwrap_or_default(),
        state: state_of(&state.status.map(|s| s.to_string()).unwrap_or_default()),
        exit_code: state.exit_code.unwrap_or(0),
        created_at: c.created.map(|d| d.to_string()).unwrap_or_default(),
        started_at: not_zero(state.started_at),
        finished_at: not_zero(state.finished_at),
        cmd: config.cmd.unwrap_or_default(),
        ports,
        mounts,
        labels,
        restart: restart_of(
            host.restart_policy.as_ref().and_then(|r| r.name),
            host.restart_policy
                .as_ref()
                .and_then(|r| r.maximum_retry_count),
        ),
        limits: limits_of(&host),
        networks,
    }
}

pub fn image_of(engine: &str, i: ImageSummary) -> ContainerImage {
    let created_at = time::OffsetDateTime::from_unix_timestamp(i.created)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let tags: Vec<String> = i
        .repo_tags
        .into_iter()
        .filter(|t| t != "<none>:<none>")
        .collect();
    ContainerImage {
        href: format!("{API_BASE}/container-engines/{engine}/images/{}", i.id),
        engine: engine.to_string(),
        id: i.id,
        tags,
        digests: i
            .repo_digests
            .into_iter()
            .filter(|d| d != "<none>@<none>")
            .collect(),
        size: i.size,
        created_at,
    }
}

/// The engine's create body for a validated request.
pub fn create_body(req: &ContainerCreate) -> ContainerCreateBody {
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    for p in &req.ports {
        let proto = match p.protocol {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
        };
        let key = format!("{}/{proto}", p.container_port);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        if let Some(hp) = p.host_port {
            port_bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port: Some(if hp == 0 {
                        String::new()
                    } else {
                        hp.to_string()
                    }),
                });
        }
    }
    let mut mounts: Vec<Mount> = req
        .mounts
        .iter()
        .map(|m| Mount {
            target: Some(m.target.clone()),
            source: Some(m.source.clone()),
            typ: Some(MountType::BIND),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();
    mounts.extend(req.volumes.iter().map(|v| Mount {
        target: Some(v.target.clone()),
        source: Some(v.name.clone()),
        typ: Some(MountType::VOLUME),
        read_only: Some(v.read_only),
        ..Default::default()
    }));
    let restart_name = match req.restart.name {
        RestartPolicyName::No => RestartPolicyNameEnum::NO,
        RestartPolicyName::Always => RestartPolicyNameEnum::ALWAYS,
        RestartPolicyName::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
        RestartPolicyName::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
    };
    let host_config = HostConfig {
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        mounts: (!mounts.is_empty()).then_some(mounts),
        restart_policy: Some(bollard::models::RestartPolicy {
            name: Some(restart_name),
            maximum_retry_count: (req.restart.name == RestartPolicyName::OnFailure)
                .then_some(req.restart.max_retries as i64),
        }),
        memory: req.limits.memory_bytes.map(|m| m as i64),
        nano_cpus: req.limits.cpus.map(|c| (c * 1e9).round() as i64),
        pids_limit: req.limits.pids,
        network_mode: req.network.clone(),
        ..Default::default()
    };
    let networking_config = req
        .network
        .as_ref()
        .filter(|n| !matches!(n.as_str(), "none" | "host" | "bridge" | "default"))
        .map(|n| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n.clone(), EndpointSettings::default())])),
        });
    ContainerCreateBody {
        image: Some(req.image.clone()),
        cmd: req.cmd.clone(),
        env: (!req.env.is_empty())
            .then(|| req.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: (!req.labels.is_empty()).then(|| {
            req.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inspected_container_reads_back_what_was_created() {
        let json = serde_json::json!({
            "Id": "abc", "Name": "/web", "Image": "sha256:1", "Created": "2026-12-06T21:00:00Z",
            "State": {"Status": "running", "ExitCode": 0, "StartedAt": "2026-12-06T21:00:01Z",
                      "FinishedAt": "0001-01-01T00:00:00Z"},
            "Config": {"Image": "localhost/bb:1", "Cmd": ["sleep", "9"],
                       "Labels": {"com.docker.compose.project": "s1"}},
            "HostConfig": {"Memory": 67108864, "NanoCpus": 500000000, "PidsLimit": 50,
                           "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                           "NetworkMode": "none",
                           "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}},
            "Mounts": [{"Type": "volume", "Name": "data", "Source": "/var/lib/x",
                        "Destination": "/data", "RW": true}],
            "NetworkSettings": {"Networks": {}, "Ports": {}}
        });
        let c: ContainerInspectResponse = serde_json::from_value(json).unwrap();
        let c = container_of("docker", c);
        assert_eq!(c.name, "web");
        assert_eq!(c.href, "/api/v1/containers/docker/web");
        assert_eq!(c.state, ContainerState::Running);
        assert_eq!(c.finished_at, None);
        assert_eq!(c.stack.as_deref(), Some("s1"));
        assert_eq!(c.limits.memory_bytes, Some(64 << 20));
        assert_eq!(c.limits.cpus, Some(0.5));
        assert_eq!(c.limits.pids, Some(50));
        assert_eq!(c.restart.name, RestartPolicyName::OnFailure);
        assert_eq!(c.restart.max_retries, 3);
        assert_eq!(c.networks, vec!["none"]);
        assert_eq!(c.ports[0].host_port, Some(8080));
        assert_eq!(c.mounts[0].kind, MountKind::Volume);
        assert_eq!(c.mounts[0].source, "data");
    }

    #[test]
    fn podman_states_map() {
        assert_eq!(state_of("stopped"), ContainerState::Exited);
        assert_eq!(state_of("configured"), ContainerState::Created);
        assert_eq!(state_of("weird"), ContainerState::Unknown);
    }
}
