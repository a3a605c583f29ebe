//! Resource use of a container: one sample (`stats`), a stream of samples (`stats_stream`), and
//! its processes (`top`). The engine's stats document becomes a [`ContainerStats`] in
//! [`stats_of`] (pure, unit-tested): CPU percent from the difference to the previous sample, as
//! `docker stats` computes it.

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::{StatsOptions, TopOptions};
use futures_util::{Stream, StreamExt};
use hostplane_types::containers_ops::{ContainerStats, ContainerTop};

use super::{Engine, EngineError, EngineResult};

/// One engine stats document in the API's terms.
pub fn stats_of(engine: &str, name: &str, s: &ContainerStatsResponse) -> ContainerStats {
    let cpu = s.cpu_stats.as_ref();
    let pre = s.precpu_stats.as_ref();
    let total = |c: Option<&bollard::models::ContainerCpuStats>| {
        c.and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
    };
    let system =
        |c: Option<&bollard::models::ContainerCpuStats>| c.and_then(|c| c.system_cpu_usage);
    let cpu_percent = match (total(cpu), total(pre), system(cpu), system(pre)) {
        (Some(t), Some(pt), Some(sy), Some(psy)) if sy > psy && psy > 0 => {
            let cpus = cpu
                .and_then(|c| c.online_cpus)
                .filter(|n| *n > 0)
                .or_else(|| {
                    cpu.and_then(|c| c.cpu_usage.as_ref())
                        .and_then(|u| u.percpu_usage.as_ref())
                        .map(|v| v.len() as u32)
                })
                .unwrap_or(1)
                .max(1);
            let d = t.saturating_sub(pt) as f64;
            Some((d / (sy - psy) as f64) * cpus as f64 * 100.0)
        }
        _ => None,
    };
    let mem = s.memory_stats.as_ref();
    let (mut rx, mut tx) = (0, 0);
    for n in s.networks.iter().flat_map(|m| m.values()) {
        rx += n.rx_bytes.unwrap_or(0);
        tx += n.tx_bytes.unwrap_or(0);
    }
    let (mut rd, mut wr) = (0, 0);
    for e in s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .into_iter()
        .flatten()
    {
        match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => rd += e.value.unwrap_or(0),
            Some("write") => wr += e.value.unwrap_or(0),
            _ => {}
        }
    }
    ContainerStats {
        engine: engine.to_string(),
        name: name.to_string(),
        read_at: s.read.as_ref().map(|d| d.to_string()).unwrap_or_default(),
        cpu_percent: cpu_percent.map(|p| (p * 100.0).round() / 100.0),
        memory_usage_bytes: mem.and_then(|m| m.usage),
        memory_limit_bytes: mem.and_then(|m| m.limit),
        pids: s.pids_stats.as_ref().and_then(|p| p.current),
        net_rx_bytes: rx,
        net_tx_bytes: tx,
        blk_read_bytes: rd,
        blk_write_bytes: wr,
    }
}

impl Engine {
    /// One sample. Not `one_shot`: the engine then waits for a second sample so that the CPU
    /// percent can be computed (about a second).
    pub async fn stats(&self, name: &str) -> EngineResult<ContainerStats> {
        let docker = self.client().await?;
        let opts = StatsOptions {
            stream: false,
            one_shot: false,
        };
        let mut s = Box::pin(docker.stats(name, Some(opts)));
        let first = self
            .bounded(async { s.next().await.transpose() })
            .await?
            .ok_or_else(|| EngineError::Failed("the engine sent no stats".into()))?;
        let st = stats_of(self.name(), name, &first);
        if st.cpu_percent.is_some() {
            return Ok(st);
        }
        // podman's one sample has no previous one: the second sample of a stream has.
        let stream = self.stats_stream(name).await?;
        let second = self
            .bounded(async {
                let mut s = Box::pin(stream.skip(1));
                Ok::<_, bollard::errors::Error>(s.next().await)
            })
            .await?;
        match second {
            Some(Ok(s2)) if s2.cpu_percent.is_some() => Ok(s2),
            _ => Ok(st),
        }
    }

    /// Samples as the engine sends them (about one a second) until the container is gone or
    /// the reader stops.
    pub async fn stats_stream(
        &self,
        name: &str,
    ) -> EngineResult<impl Stream<Item = EngineResult<ContainerStats>> + Send + 'static> {
        let docker = self.client().await?;
        let opts = StatsOptions {
            stream: true,
            one_shot: false,
        };
        let (engine, n) = (self.name().to_string(), name.to_string());
        Ok(docker.stats(name, Some(opts)).map(move |r| {
            r.map(|s| stats_of(&engine, &n, &s))
                .map_err(|e| EngineError::from_bollard(&engine, e))
        }))
    }

    /// The container's processes (`ps -ef` style columns).
    pub async fn top(&self, name: &str) -> EngineResult<ContainerTop> {
        let docker = self.client().await?;
        // podman 4.3's compat top answers an empty body for the default `-ef`; its own
        // descriptors (read from /proc, no `ps` needed in the container) work.
        let opts = match self.driver().await? {
            hostplane_types::containers::EngineDriver::Podman => Some(TopOptions {
                ps_args: "user,pid,ppid,etime,time,args".into(),
            }),
            hostplane_types::containers::EngineDriver::Docker => None,
        };
        let t = self.bounded(docker.top_processes(name, opts)).await?;
        Ok(ContainerTop {
            titles: t.titles.unwrap_or_default(),
            processes: t.processes.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};

    #[test]
    fn cpu_percent_is_the_share_of_the_system_delta_times_cpus() {
        let cpu = |total, system| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(2),
            ..Default::default()
        };
        let s = ContainerStatsResponse {
            cpu_stats: Some(cpu(1_500, 20_000)),
            precpu_stats: Some(cpu(1_000, 10_000)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(42),
                limit: Some(100),
                ..Default::default()
            }),
            ..Default::default()
        };
        let st = stats_of("e", "c", &s);
        assert_eq!(st.cpu_percent, Some(10.0));
        assert_eq!(st.memory_usage_bytes, Some(42));
        // No previous sample: no percent.
        let s = ContainerStatsResponse {
            cpu_stats: Some(cpu(1_500, 20_000)),
            ..Default::default()
        };
        assert_eq!(stats_of("e", "c", &s).cpu_percent, None);
    }
}
