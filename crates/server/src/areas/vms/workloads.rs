//! The VMs as workloads (`platform::workloads`): listed in `/api/v1/workloads` and started by
//! the autostart order. Registered by the area's `init` hook.
//!
//! A VM is named by its name (or id). It is missing something when a file it boots from (a
//! disk, its backing file, an ISO, the kernel or initrd) is not there: a pool that is not
//! mounted shows up this way.

use std::path::Path;

use hostplane_types::vms::VmStatus;
use hostplane_types::workloads::Workload;

use super::{VmsState, model};
use crate::platform::workloads::{RunState, WorkFuture, WorkloadProvider};
use crate::state::AppState;

pub struct VmWorkloads;

fn word(s: VmStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl WorkloadProvider for VmWorkloads {
    fn kind(&self) -> &'static str {
        "vm"
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        model::check_name("name", name)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn list<'a>(&'a self, state: &'a AppState) -> WorkFuture<'a, Vec<Workload>> {
        Box::pin(async move {
            Ok(model::load_all(&state.store)?
                .iter()
                .map(|r| {
                    let vm = state.vms().view(r);
                    Workload {
                        kind: "vm".into(),
                        id: vm.name.clone(),
                        name: vm.name,
                        state: word(vm.status),
                        running: vm.status != VmStatus::Stopped,
                        engine: None,
                        href: vm.href,
                    }
                })
                .collect())
        })
    }

    fn status<'a>(&'a self, state: &'a AppState, name: &'a str) -> WorkFuture<'a, RunState> {
        Box::pin(async move {
            let rec = model::find(&state.store, name)?;
            let running = state
                .vms()
                .runtime(&rec.id)
                .is_some_and(|rt| rt.status() == VmStatus::Running);
            Ok(RunState {
                running,
                health: None,
            })
        })
    }

    fn missing<'a>(&'a self, state: &'a AppState, name: &'a str) -> WorkFuture<'a, Vec<String>> {
        Box::pin(async move {
            let rec = model::find(&state.store, name)?;
            let d = &rec.def;
            let mut files: Vec<&String> = Vec::new();
            for disk in &d.disks {
                files.push(&disk.path);
                files.extend(disk.backing.as_ref());
            }
            files.extend(d.cdroms.iter().filter_map(|c| c.iso.as_ref()));
            files.extend(d.kernel.as_ref());
            files.extend(d.initrd.as_ref());
            Ok(files
                .into_iter()
                .filter(|f| !Path::new(f.as_str()).exists())
                .map(|f| format!("file {f} does not exist (is its pool mounted?)"))
                .collect())
        })
    }

    fn start<'a>(
        &'a self,
        state: &'a AppState,
        name: &'a str,
        actor: &'a str,
    ) -> WorkFuture<'a, ()> {
        Box::pin(async move {
            let (_g, rec) = state.vms().find_locked(&state.store, name).await?;
            state.vms().start(&rec, actor).await
        })
    }
}
