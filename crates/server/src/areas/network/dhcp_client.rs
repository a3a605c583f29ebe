//! The supervised DHCP client of the management interface (host settings `mode: dhcp`).
//!
//! Flow: a host change to `dhcp` ([`super::changes`]) clears the interface's static IPv4
//! configuration and calls [`DhcpClient::start`]: the hook link is prepared, a udhcpc left by
//! a killed daemon is killed, and a task runs `busybox udhcpc` (`hostplane_host::network::
//! dhcp_client::command`, `Cmd::supervise`), starting it again after 1 s … 30 s when it exits. A
//! change to `static`, a rollback and daemon shutdown call [`DhcpClient::stop`] (the rollback
//! before it puts the prior addresses back, so no late lease event undoes them). The start hook
//! starts the client again when the confirmed settings say `dhcp`.

use hostplane_host::command::{RestartPolicy, Restarting};
use hostplane_host::network::dhcp_client::{self, Files, Lease};

struct Running {
    interface: String,
    child: Restarting,
}

/// At most one client: the management interface's.
pub struct DhcpClient {
    files: Files,
    running: std::sync::Mutex<Option<Running>>,
}

impl DhcpClient {
    /// The client keeps its files (hook link, pid file, lease record, log) under `dir`.
    pub fn new(dir: std::path::PathBuf) -> DhcpClient {
        DhcpClient {
            files: Files { dir },
            running: Default::default(),
        }
    }

    /// The interface the client runs on and its pid (0 between restarts), if it runs.
    pub fn running(&self) -> Option<(String, u32)> {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        r.as_ref()
            .map(|r| (r.interface.clone(), r.child.pid()))
    }

    /// The last lease event recorded (address, router, DNS…), if a client ran.
    pub fn lease(&self) -> Option<Lease> {
        self.files.lease()
    }

    /// Starts (or restarts) the client on `interface`. `Err` when the hook cannot be prepared.
    pub async fn start(&self, interface: &str, hostname: Option<&str>) -> Result<(), String> {
        self.stop().await;
        let exe = std::env::current_exe().map_err(|e| format!("the daemon's own path: {e}"))?;
        self.files
            .prepare(&exe)
            .map_err(|e| format!("{}: {e}", self.files.dir.display()))?;
        let child = dhcp_client::command(&self.files, interface, hostname).supervise(
            self.files.log(),
            RestartPolicy::default(),
            |_| {},
        );
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(Running {
            interface: interface.to_string(),
            child,
        });
        Ok(())
    }

    /// Stops the client and waits until it is gone; also kills one a killed daemon left.
    pub async fn stop(&self) {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(r) = r {
            r.child.stop().await;
        }
        dhcp_client::kill_stale(&self.files);
    }
}
