//! Changes to an existing container: limits and restart policy live ([`Engine::update_limits`],
//! the engine's `/containers/{id}/update`), and a recreate with the same name, configuration and
//! named volumes ([`Engine::recreate`]).
//!
//! Engine differences: podman ignores `NanoCpus` on update (it takes `CpuQuota`/`CpuPeriod`)
//! and may reset the restart policy when an update omits it, so the policy is always sent;
//! dockerd refuses a memory limit above the swap limit it set at create (twice the memory), so
//! the swap limit moves with it.

use bollard::models::{ContainerCreateBody, ContainerUpdateBody, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions,
    RenameContainerOptions, StartContainerOptions, StopContainerOptions,
};
use hostplane_types::containers::{
    Container, ContainerLimits, ContainerState, EngineDriver, RestartPolicy, RestartPolicyName,
};

use super::{Engine, EngineError, EngineResult, driver_of};

/// CFS period used when CPUs are set as a quota (podman).
const CPU_PERIOD: i64 = 100_000;

fn restart_policy(r: &RestartPolicy) -> bollard::models::RestartPolicy {
    let name = match r.name {
        RestartPolicyName::No => RestartPolicyNameEnum::NO,
        RestartPolicyName::Always => RestartPolicyNameEnum::ALWAYS,
        RestartPolicyName::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
        RestartPolicyName::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
    };
    bollard::models::RestartPolicy {
        name: Some(name),
        maximum_retry_count: (r.name == RestartPolicyName::OnFailure)
            .then_some(r.max_retries as i64),
    }
}

/// The update document for `driver`: the given limits (absent ones unchanged) and the restart
/// policy, always.
pub fn update_body(
    driver: EngineDriver,
    limits: &ContainerLimits,
    restart: &RestartPolicy,
) -> ContainerUpdateBody {
    let mut b = ContainerUpdateBody {
        memory: limits.memory_bytes.map(|m| m as i64),
        memory_swap: limits.memory_bytes.map(|m| 2 * m as i64),
        pids_limit: limits.pids,
        restart_policy: Some(restart_policy(restart)),
        ..Default::default()
    };
    if let Some(c) = limits.cpus {
        match driver {
            EngineDriver::Docker => b.nano_cpus = Some((c * 1e9).round() as i64),
            EngineDriver::Podman => {
                b.cpu_period = Some(CPU_PERIOD);
                b.cpu_quota = Some((c * CPU_PERIOD as f64).round() as i64);
            }
        }
    }
    b
}

impl Engine {
    /// docker or podman, asked now.
    pub async fn driver(&self) -> EngineResult<EngineDriver> {
        let docker = self.client().await?;
        Ok(driver_of(&self.bounded(docker.version()).await?))
    }

    /// Applies limits and the restart policy to `current` while it runs; answers it afterwards.
    pub async fn update_limits(
        &self,
        current: &Container,
        limits: Option<&ContainerLimits>,
        restart: Option<&RestartPolicy>,
    ) -> EngineResult<Container> {
        let r = self.update_limits_now(current, limits, restart).await;
        self.cache().forget_all();
        r
    }

    async fn update_limits_now(
        &self,
        current: &Container,
        limits: Option<&ContainerLimits>,
        restart: Option<&RestartPolicy>,
    ) -> EngineResult<Container> {
        let docker = self.client().await?;
        let driver = self.driver().await?;
        let body = update_body(
            driver,
            limits.unwrap_or(&ContainerLimits::default()),
            restart.unwrap_or(&current.restart),
        );
        match self
            .bounded(docker.update_container(&current.id, body))
            .await
        {
            Ok(()) => {}
            // podman 4.3 has no compat update; its own API changes the resources (not the
            // restart policy: that needs a recreate there).
            Err(EngineError::NotFound(m))
                if driver == EngineDriver::Podman && !m.contains("no such") =>
            {
                if restart.is_some_and(|r| *r != current.restart) {
                    return Err(EngineError::Conflict(
                        "this podman cannot change a restart policy live".into(),
                    ));
                }
                if let Some(l) = limits {
                    self.podman_update(&current.id, l).await?;
                    // podman 4.3 applies it to the cgroup but keeps reporting the create-time
                    // limits (inspect, stats): answer what was applied.
                    let mut c = self.inspect(&current.id).await?;
                    c.limits.memory_bytes = l.memory_bytes.or(c.limits.memory_bytes);
                    c.limits.cpus = l.cpus.or(c.limits.cpus);
                    c.limits.pids = l.pids.or(c.limits.pids);
                    return Ok(c);
                }
            }
            Err(e) => return Err(e),
        }
        self.inspect(&current.id).await
    }

    /// podman's own `POST /libpod/containers/{id}/update` with an OCI `LinuxResources` body.
    async fn podman_update(&self, id: &str, l: &ContainerLimits) -> EngineResult<()> {
        let mut res = serde_json::Map::new();
        if let Some(m) = l.memory_bytes {
            res.insert(
                "memory".into(),
                serde_json::json!({"limit": m, "swap": 2 * m}),
            );
        }
        if let Some(c) = l.cpus {
            res.insert(
                "cpu".into(),
                serde_json::json!({"quota": (c * CPU_PERIOD as f64).round() as i64, "period": CPU_PERIOD}),
            );
        }
        if let Some(p) = l.pids {
            res.insert("pids".into(), serde_json::json!({"limit": p}));
        }
        let body = serde_json::Value::Object(res).to_string();
        let (status, text) = tokio::time::timeout(
            self.timeout(),
            raw_post(
                self.socket(),
                &format!("/v4.0.0/libpod/containers/{id}/update"),
                &body,
            ),
        )
        .await
        .map_err(|_| EngineError::Unavailable {
            engine: self.name().to_string(),
            detail: "no answer in time".into(),
        })?
        .map_err(|e| EngineError::Unavailable {
            engine: self.name().to_string(),
            detail: e.to_string(),
        })?;
        match status {
            200..=299 => Ok(()),
            404 => Err(EngineError::NotFound(text)),
            409 => Err(EngineError::Conflict(text)),
            400..=499 => Err(EngineError::Rejected(text)),
            _ => Err(EngineError::Failed(format!(
                "engine {:?}: {text}",
                self.name()
            ))),
        }
    }

    /// Replaces container `name` by a new one with the same name, configuration (as the engine
    /// reports it) and mounts: named volumes and bind mounts are mounted again, so their data
    /// stays. The image reference is resolved again (pull first for a newer image). A running
    /// container is stopped and the new one started. On failure the old one is put back.
    pub async fn recreate(
        &self,
        name: &str,
        log: &(dyn Fn(String) + Send + Sync),
    ) -> EngineResult<Container> {
        let r = self.recreate_now(name, log).await;
        self.cache().forget_all();
        r
    }

    async fn recreate_now(
        &self,
        name: &str,
        log: &(dyn Fn(String) + Send + Sync),
    ) -> EngineResult<Container> {
        let docker = self.client().await?;
        let old = self
            .bounded(docker.inspect_container(name, None::<InspectContainerOptions>))
            .await?;
        let id = old.id.clone().unwrap_or_default();
        let real_name = old
            .name
            .as_deref()
            .unwrap_or(name)
            .trim_start_matches('/')
            .to_string();
        let was_running = old.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        let config = old.config.clone().unwrap_or_default();
        let mut host = old.host_config.clone().unwrap_or_default();
        // The engine fills these in from the old container's own paths; a new one gets its own.
        host.container_id_file = None;
        // podman reports ulimits as `RLIMIT_NOFILE` and wants `nofile` back.
        for u in host.ulimits.iter_mut().flatten() {
            if let Some(n) = u.name.as_mut() {
                *n = n.trim_start_matches("RLIMIT_").to_ascii_lowercase();
            }
        }
        let hostname = config
            .hostname
            .clone()
            .filter(|h| !id.starts_with(h.as_str()) && h != &real_name);
        let body = ContainerCreateBody {
            hostname,
            domainname: config.domainname,
            user: config.user,
            exposed_ports: config.exposed_ports,
            tty: config.tty,
            open_stdin: config.open_stdin,
            stdin_once: config.stdin_once,
            env: config.env,
            cmd: config.cmd,
            healthcheck: config.healthcheck,
            image: config.image,
            volumes: config.volumes,
            working_dir: config.working_dir,
            entrypoint: config.entrypoint,
            labels: config.labels,
            stop_signal: config.stop_signal,
            stop_timeout: config.stop_timeout,
            host_config: Some(host),
            ..Default::default()
        };
        if was_running {
            log(format!("stopping {real_name}"));
            self.bounded_for(
                self.timeout() + std::time::Duration::from_secs(10),
                docker.stop_container(&id, None::<StopContainerOptions>),
            )
            .await?;
        }
        let aside = format!("{}-hp-old-{}", real_name, &id[..id.len().min(12)]);
        self.bounded(docker.rename_container(
            &id,
            RenameContainerOptions {
                name: aside.clone(),
            },
        ))
        .await?;
        log(format!("creating a new {real_name}"));
        let made = async {
            let opts = CreateContainerOptions {
                name: Some(real_name.clone()),
                ..Default::default()
            };
            let created = self
                .bounded(docker.create_container(Some(opts), body))
                .await?;
            if was_running {
                log(format!("starting {real_name}"));
                if let Err(e) = self
                    .bounded(docker.start_container(&created.id, None::<StartContainerOptions>))
                    .await
                {
                    let _ = self.remove(&created.id, true, false).await;
                    return Err(e);
                }
            }
            Ok::<_, EngineError>(created.id)
        }
        .await;
        match made {
            Ok(new_id) => {
                // Named volumes stay (v=false); the old container's anonymous ones go with it.
                let opts = RemoveContainerOptions {
                    force: true,
                    v: false,
                    link: false,
                };
                self.bounded(docker.remove_container(&id, Some(opts)))
                    .await?;
                log(format!(
                    "removed the old container {}",
                    &id[..id.len().min(12)]
                ));
                self.inspect(&new_id).await
            }
            Err(e) => {
                log(format!(
                    "recreate failed ({e}); putting the old container back"
                ));
                let _ = self
                    .bounded(docker.rename_container(
                        &id,
                        RenameContainerOptions {
                            name: real_name.clone(),
                        },
                    ))
                    .await;
                if was_running {
                    let _ = self
                        .bounded(docker.start_container(&id, None::<StartContainerOptions>))
                        .await;
                }
                Err(e)
            }
        }
    }
}

/// One `POST` with a JSON body over the engine's unix socket (for the podman call bollard
/// lacks); answers the status and the body.
async fn raw_post(
    sock: &std::path::Path,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_exchange(sock, &req).await
}

/// One `GET` over the engine's socket, answered whole (HTTP/1.0: no chunked body), at most
/// 1 MiB: for podman's own endpoints bollard does not speak.
pub(crate) async fn raw_get(sock: &std::path::Path, path: &str) -> std::io::Result<(u16, String)> {
    raw_exchange(
        sock,
        &format!("GET {path} HTTP/1.0\r\nHost: engine\r\n\r\n"),
    )
    .await
}

/// Sends `request` on a new connection to `sock` and reads the answer to its end (at most
/// 1 MiB): the status and the body.
async fn raw_exchange(sock: &std::path::Path, request: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(sock).await?;
    s.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    s.take(1 << 20).read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status in the answer"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Whether a container in `state` runs (for callers that check before acting).
pub fn is_running(state: ContainerState) -> bool {
    matches!(
        state,
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_gets_a_quota_docker_nano_cpus_and_both_the_policy() {
        let l = ContainerLimits {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(50),
        };
        let r = RestartPolicy::default();
        let d = update_body(EngineDriver::Docker, &l, &r);
        assert_eq!(d.nano_cpus, Some(500_000_000));
        assert_eq!(d.cpu_quota, None);
        assert_eq!(d.memory_swap, Some(128 << 20));
        let p = update_body(EngineDriver::Podman, &l, &r);
        assert_eq!((p.cpu_quota, p.cpu_period), (Some(50_000), Some(100_000)));
        assert_eq!(p.nano_cpus, None);
        assert!(p.restart_policy.is_some() && d.restart_policy.is_some());
    }
}
