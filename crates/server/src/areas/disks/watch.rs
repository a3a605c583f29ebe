//! Disk add/remove events from kernel uevents (netlink; no udevd needed).
//!
//! On every block uevent the disks are rescanned from kernel memory (no I/O) and compared with
//! the previous scan: a disk that appeared is `resource.created`, one that went away is
//! `resource.deleted` (with the id it had), and a change to a present disk (partitions,
//! resize, media) is `resource.updated`. Loop devices count as disks once they have a backing
//! file, so `losetup` attach/detach produce created/deleted.

use std::collections::HashMap;

use hostplane_host::disks::{self as hd, SysPaths};
use hostplane_host::uevent::{Uevent, UeventSocket};

use crate::areas::disks::href;
use crate::state::AppState;

async fn snapshot() -> HashMap<String, (String, String)> {
    tokio::task::spawn_blocking(|| hd::scan(&SysPaths::default()))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
        .into_iter()
        .map(|d| (d.disk.name.clone(), (d.disk.id, d.disk.path)))
        .collect()
}

/// The whole disk a uevent is about (`loop3p1` → `loop3`, from the devpath).
fn disk_of(ev: &Uevent) -> Option<String> {
    let name = ev.devname()?.to_string();
    if ev.devtype() == Some("partition") {
        let mut comps = ev.devpath.rsplit('/');
        comps.next();
        return comps.next().map(str::to_string);
    }
    Some(name)
}

/// The listener, subscribed and with its first snapshot taken (both from kernel memory, no
/// disk I/O): start-up opens it before it writes `ready.json`, so a uevent after readiness is
/// never missed (tests attach a loop device right after the daemon is ready).
pub struct Watcher {
    sock: UeventSocket,
    known: HashMap<String, (String, String)>,
}

/// Subscribes to block uevents; None (logged) when the kernel socket cannot be opened.
pub async fn open() -> Option<Watcher> {
    match UeventSocket::open() {
        Ok(sock) => Some(Watcher {
            sock,
            known: snapshot().await,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "no uevent socket: disk add/remove events are off");
            None
        }
    }
}

/// Runs the listener opened by [`open`] (a spawned task).
pub fn spawn(state: AppState, watcher: Option<Watcher>) {
    let Some(Watcher { sock, mut known }) = watcher else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let ev = match sock.recv().await {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(error = %e, "uevent socket failed: disk events are off");
                    return;
                }
            };
            if ev.subsystem() != Some("block") {
                continue;
            }
            let touched = disk_of(&ev);
            let now = snapshot().await;
            for (name, (id, path)) in &now {
                if !known.contains_key(name) {
                    publish(&state, "resource.created", id, name, path, &ev);
                }
            }
            for (name, (id, path)) in &known {
                match now.get(name) {
                    None => publish(&state, "resource.deleted", id, name, path, &ev),
                    Some((new_id, new_path)) if new_id != id => {
                        // Another image on the same loop number: a different disk.
                        publish(&state, "resource.deleted", id, name, path, &ev);
                        publish(&state, "resource.created", new_id, name, new_path, &ev);
                    }
                    Some(_) if touched.as_deref() == Some(name) => {
                        publish(&state, "resource.updated", id, name, path, &ev)
                    }
                    Some(_) => {}
                }
            }
            known = now;
        }
    });
}

fn publish(state: &AppState, ty: &str, id: &str, name: &str, path: &str, ev: &Uevent) {
    tracing::debug!(event = ty, disk = id, action = ev.action, "disk uevent");
    state.events.publish(
        ty,
        &href(id),
        "system",
        serde_json::json!({
            "kind": "disk", "id": id, "name": name, "path": path,
            "uevent": ev.action, "devname": ev.devname(),
        }),
    );
}
