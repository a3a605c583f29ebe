//! Which host processes belong to which object (a VM's QEMU, a container), for the metrics
//! collector, without the collector naming the areas that run them.
//!
//! Flow: an area that runs processes adds a [`ProcessSource`] to `Services::processes` in its
//! `init` hook (vms, containers, lxc); the metrics collector awaits [`Processes::all`] each sample
//! (the containers' answer comes from the engines) and reads each object's CPU and memory: from
//! its cgroup when it has one (every process of a container, not only its init), else from
//! `/proc/<pid>/stat`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

pub use hostplane_host::containers::cgroup::Cgroup;

/// One process to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitored {
    /// What it is: `vm`, `container`, `lxc` (the metrics label `kind`).
    pub kind: &'static str,
    /// Its object's id or name (the label `name`).
    pub name: String,
    pub pid: u32,
    /// Read this cgroup rather than the pid alone (it holds all the object's processes).
    pub cgroup: Option<Cgroup>,
}

/// The future of one source's list.
pub type Listed<'a> = Pin<Box<dyn Future<Output = Vec<Monitored>> + Send + 'a>>;

/// An area that runs processes.
pub trait ProcessSource: Send + Sync {
    /// Its running processes now.
    fn processes(&self) -> Listed<'_>;
}

#[derive(Default)]
pub struct Processes {
    sources: RwLock<Vec<Arc<dyn ProcessSource>>>,
}

impl Processes {
    pub fn register(&self, source: Arc<dyn ProcessSource>) {
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// Every source's processes (the sources asked concurrently).
    pub async fn all(&self) -> Vec<Monitored> {
        let sources = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        futures_util::future::join_all(sources.iter().map(|s| s.processes()))
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}
