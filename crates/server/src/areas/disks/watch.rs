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
use hostplane_types::disks::Disk;

use crate::areas::disks::href;
use crate::state::AppState;

/// The disks by kernel name, each as the API shows it (`href` set).
async fn snapshot() -> HashMap<String, Disk> {
    tokio::task::spawn_blocking(|| hd::scan(&SysPaths::default()))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
        .into_iter()
        .map(|mut d| {
            d.disk.href = href(&d.disk.id);
            (d.disk.name.clone(), d.disk)
        })
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
    known: HashMap<String, Disk>,
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
            for (name, disk) in &now {
                if !known.contains_key(name) {
                    publish(&state, "resource.created", disk, &ev);
                }
            }
            for (name, disk) in &known {
                match now.get(name) {
                    None => publish(&state, "resource.deleted", disk, &ev),
                    Some(new) if new.id != disk.id => {
                        // Another image on the same loop number: a different disk.
                        publish(&state, "resource.deleted", disk, &ev);
                        publish(&state, "resource.created", new, &ev);
                    }
                    Some(new) if touched.as_deref() == Some(name) => {
                        publish(&state, "resource.updated", new, &ev)
                    }
                    Some(_) => {}
                }
            }
            known = now;
        }
    });
}

/// `data` is the disk as `GET /api/v1/disks/{id}` shows it from kernel memory (for a deleted
/// disk: as it was last seen), the shape every disk event has (docs/storage.md).
fn publish(state: &AppState, ty: &str, disk: &Disk, ev: &Uevent) {
    tracing::debug!(
        event = ty,
        disk = disk.id,
        action = ev.action,
        "disk uevent"
    );
    state.events.publish(
        ty,
        &disk.href,
        "system",
        serde_json::to_value(disk).unwrap_or_default(),
    );
}
