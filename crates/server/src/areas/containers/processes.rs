//! The running containers for the metrics collector (`platform::processes`).
//!
//! Flow: each sample the collector awaits [`ContainerProcesses`]: every engine lists its running
//! containers (one call each, concurrently); a container seen for the first time, or whose
//! init pid is gone (restarted), is inspected once for its pid, and that pid's cgroup is read
//! from `/proc/<pid>/cgroup` (`hostplane_host::containers::cgroup`). The collector then reads
//! the cgroup (CPU and memory of every process in the container). The series are labelled
//! `kind="container"`, `name="ENGINE/NAME"`. An engine that does not answer within
//! [`SAMPLE_DEADLINE`] is left out of that sample (a silent socket must not hold the
//! collector for the engine's whole request timeout).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hostplane_host::containers::Engine;
use hostplane_host::containers::cgroup::{self, Cgroup};

use crate::platform::processes::{Listed, Monitored, ProcessSource};

/// Longest wait for one engine's answer within a sample.
pub const SAMPLE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Pid and cgroup per `(engine, id)`, kept between samples.
type Known = HashMap<(String, String), (u32, Option<Cgroup>)>;

pub struct ContainerProcesses {
    engines: Vec<Arc<Engine>>,
    known: Mutex<Known>,
}

impl ContainerProcesses {
    pub fn new(engines: Vec<Arc<Engine>>) -> ContainerProcesses {
        ContainerProcesses {
            engines,
            known: Mutex::new(HashMap::new()),
        }
    }

    async fn of_engine(&self, e: &Engine) -> Vec<Monitored> {
        tokio::time::timeout(SAMPLE_DEADLINE, self.of_engine_now(e))
            .await
            .unwrap_or_else(|_| {
                tracing::debug!(engine = e.name(), "containers not sampled: no answer in time");
                Vec::new()
            })
    }

    async fn of_engine_now(&self, e: &Engine) -> Vec<Monitored> {
        let running = match e.running().await {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(engine = e.name(), error = %err, "containers not sampled");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(running.len());
        for (id, name) in running {
            let k = (e.name().to_string(), id.clone());
            let cached = self
                .known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&k)
                .cloned()
                .filter(|(pid, _)| std::path::Path::new(&format!("/proc/{pid}")).exists());
            let (pid, cg) = match cached {
                Some(v) => v,
                None => match e.init_pid(&id).await {
                    Ok(Some(pid)) => {
                        let v = (pid, cgroup::of_pid(pid));
                        self.known
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(k, v.clone());
                        v
                    }
                    _ => continue,
                },
            };
            out.push(Monitored {
                kind: "container",
                name: format!("{}/{name}", e.name()),
                pid,
                cgroup: cg,
            });
        }
        out
    }
}

impl ProcessSource for ContainerProcesses {
    fn processes(&self) -> Listed<'_> {
        Box::pin(async move {
            let per_engine =
                futures_util::future::join_all(self.engines.iter().map(|e| self.of_engine(e)))
                    .await;
            let all: Vec<Monitored> = per_engine.into_iter().flatten().collect();
            // Forget containers that no longer run (an engine that did not answer loses its
            // entries too: they are found again at the next sample).
            self.known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, (pid, _)| all.iter().any(|m| m.pid == *pid));
            all
        })
    }
}
