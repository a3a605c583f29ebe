//! VM serial consoles for areas other than the one that owns the VMs, and who drives them.
//!
//! Flow: the vms area registers a [`SerialProvider`] in its `init` hook
//! (`services.serial.register(...)`); provisioning asks [`SerialConsoles::open`] for a
//! running VM's console (its output backlog, a live receiver, a way to type), then
//! [`SerialConsoles::drive`]s it: while the returned [`DriveGuard`] lives, the vms area's
//! console WebSockets (which [`SerialConsoles::watch`] the VM) drop what viewers type and tell
//! them so in a text control frame. [`SerialConsoles::agent_socket`] gives the host side of a
//! running VM's guest agent channel (provisioning's `guest_agent` transport),
//! [`SerialConsoles::forwarded_port`] the loopback port forwarded to a guest port (its `ssh`
//! transport).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiResult};
use crate::platform::workloads::WorkFuture;
use crate::state::AppState;

/// One running VM's serial console.
pub trait SerialPort: Send + Sync {
    /// The output so far (bounded backlog) and a receiver for what follows.
    fn subscribe(&self) -> (Vec<u8>, broadcast::Receiver<Bytes>);
    /// Types `data` into the console.
    fn send<'a>(
        &'a self,
        data: Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
    /// Cancelled when the console closes (the VM stopped).
    fn closed(&self) -> CancellationToken;
}

/// Implemented by the area that owns VMs.
pub trait SerialProvider: Send + Sync {
    /// The VM's id and its console; 404 for an unknown VM, 409 when it is not running.
    fn open<'a>(
        &'a self,
        state: &'a AppState,
        vm: &'a str,
    ) -> WorkFuture<'a, (String, Arc<dyn SerialPort>)>;

    /// The VM's id and the unix socket of its guest agent channel (`org.qemu.guest_agent.0`);
    /// 404 for an unknown VM, 409 when it is not running.
    fn agent_socket<'a>(
        &'a self,
        state: &'a AppState,
        vm: &'a str,
    ) -> WorkFuture<'a, (String, std::path::PathBuf)>;

    /// The host port on 127.0.0.1 a running VM's user-mode NIC forwards (TCP) to `guest_port`
    /// (`None`: no such forward); 404 for an unknown VM, 409 when it is not running.
    fn forwarded_port<'a>(
        &'a self,
        state: &'a AppState,
        vm: &'a str,
        guest_port: u16,
    ) -> WorkFuture<'a, Option<u16>>;
}

#[derive(Default)]
pub struct SerialConsoles {
    provider: RwLock<Option<Arc<dyn SerialProvider>>>,
    drivers: Mutex<HashMap<String, watch::Sender<Option<String>>>>,
}

impl SerialConsoles {
    pub fn register(&self, p: Arc<dyn SerialProvider>) {
        *self.provider.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    fn provider(&self) -> ApiResult<Arc<dyn SerialProvider>> {
        self.provider
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| ApiError::Unavailable {
                code: "serial_unavailable",
                detail: "no area provides VM serial consoles".into(),
            })
    }

    pub async fn open(
        &self,
        state: &AppState,
        vm: &str,
    ) -> ApiResult<(String, Arc<dyn SerialPort>)> {
        self.provider()?.open(state, vm).await
    }

    /// The VM's id and its guest agent socket (see [`SerialProvider::agent_socket`]).
    pub async fn agent_socket(
        &self,
        state: &AppState,
        vm: &str,
    ) -> ApiResult<(String, std::path::PathBuf)> {
        self.provider()?.agent_socket(state, vm).await
    }

    /// The loopback host port forwarded to the VM's TCP `guest_port` (see
    /// [`SerialProvider::forwarded_port`]; provisioning's `ssh` transport).
    pub async fn forwarded_port(
        &self,
        state: &AppState,
        vm: &str,
        guest_port: u16,
    ) -> ApiResult<Option<u16>> {
        self.provider()?.forwarded_port(state, vm, guest_port).await
    }

    fn sender(&self, vm_id: &str) -> watch::Sender<Option<String>> {
        let mut d = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
        d.entry(vm_id.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }

    /// Who drives the VM's console now (`None`: nobody), and its changes.
    pub fn watch(&self, vm_id: &str) -> watch::Receiver<Option<String>> {
        self.sender(vm_id).subscribe()
    }

    /// Takes the console for `who` (e.g. `provisioning run <href>`); 409 when another holds it.
    pub fn drive(&self, vm_id: &str, who: &str) -> ApiResult<DriveGuard> {
        let tx = self.sender(vm_id);
        let mut taken = false;
        tx.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(who.to_string());
                taken = true;
            }
            taken
        });
        if !taken {
            return Err(ApiError::conflict(
                "console_driven",
                format!(
                    "the VM's serial console is driven by {}",
                    tx.borrow().clone().unwrap_or_default()
                ),
            ));
        }
        Ok(DriveGuard { tx })
    }
}

/// Gives the console back to its viewers when dropped.
pub struct DriveGuard {
    tx: watch::Sender<Option<String>>,
}

impl Drop for DriveGuard {
    fn drop(&mut self) {
        self.tx.send_replace(None);
    }
}
