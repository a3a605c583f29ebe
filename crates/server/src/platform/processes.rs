//! Which host processes belong to which object (a VM's QEMU), for the metrics collector,
//! without the collector naming the areas that run them.
//!
//! Flow: an area that runs processes adds a [`ProcessSource`] to `Services::processes` in its
//! `init` hook (vms today); the metrics collector calls [`Processes::all`] each sample and reads
//! each pid's CPU and memory from `/proc`.

use std::sync::{Arc, RwLock};

/// One process to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitored {
    /// What it is: `vm` (the metrics label `kind`).
    pub kind: &'static str,
    /// Its object's id (the label `name`).
    pub name: String,
    pub pid: u32,
}

/// An area that runs processes.
pub trait ProcessSource: Send + Sync {
    /// Its running processes now.
    fn processes(&self) -> Vec<Monitored>;
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

    /// Every source's processes.
    pub fn all(&self) -> Vec<Monitored> {
        let sources = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        sources.iter().flat_map(|s| s.processes()).collect()
    }
}
