//! The running LXC containers for the metrics collector (`platform::processes`), as the
//! containers area hands over its Docker/podman containers.
//!
//! Flow: each sample the collector awaits [`LxcProcesses`]: one `lxc-ls --fancy` of the
//! lxcpath gives the running (or frozen) containers; a container seen for the first time, or
//! whose init pid is gone (restarted), is asked once for its pid (`lxc-info -H`), and that pid's
//! cgroup is read from `/proc/<pid>/cgroup` (`hostplane_host::containers::cgroup`: the payload
//! cgroup LXC made for it). The collector then reads the cgroup (CPU, memory, block I/O of
//! every process in the container) and the container's network namespace. The series are
//! labelled `kind="lxc"`, `name="NAME"`. The tools get [`SAMPLE_DEADLINE`] per sample: a hung
//! `lxc-ls` must not hold the collector.

use std::collections::HashMap;
use std::sync::Mutex;

use hostplane_host::containers::cgroup::{self, Cgroup};
use hostplane_host::lxc::{Lxc, State};

use crate::platform::processes::{Listed, Monitored, ProcessSource};

/// Longest wait for the listing (and the pids of new containers) within a sample.
pub const SAMPLE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

pub struct LxcProcesses {
    lxc: Lxc,
    /// Pid and cgroup per container name, kept between samples.
    known: Mutex<HashMap<String, (u32, Option<Cgroup>)>>,
}

impl LxcProcesses {
    pub fn new(lxc: Lxc) -> LxcProcesses {
        LxcProcesses {
            lxc,
            known: Mutex::new(HashMap::new()),
        }
    }

    async fn now(&self) -> Vec<Monitored> {
        let rows = match self.lxc.list().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "LXC containers not sampled");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for row in rows {
            if !matches!(row.state, State::Running | State::Frozen | State::Thawed) {
                continue;
            }
            let cached = self
                .known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&row.name)
                .cloned()
                .filter(|(pid, _)| std::path::Path::new(&format!("/proc/{pid}")).exists());
            let (pid, cg) = match cached {
                Some(v) => v,
                None => match self.lxc.info(&row.name).await.ok().and_then(|i| i.pid) {
                    Some(pid) => {
                        let v = (pid, cgroup::of_pid(pid));
                        self.known
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(row.name.clone(), v.clone());
                        v
                    }
                    None => continue,
                },
            };
            out.push(Monitored {
                kind: "lxc",
                name: row.name,
                pid,
                cgroup: cg,
            });
        }
        out
    }
}

impl ProcessSource for LxcProcesses {
    fn processes(&self) -> Listed<'_> {
        Box::pin(async move {
            let all = tokio::time::timeout(SAMPLE_DEADLINE, self.now())
                .await
                .unwrap_or_else(|_| {
                    tracing::debug!("LXC containers not sampled: no answer in time");
                    Vec::new()
                });
            // Forget containers that no longer run (found again when they do).
            self.known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|name, _| all.iter().any(|m| &m.name == name));
            all
        })
    }
}
