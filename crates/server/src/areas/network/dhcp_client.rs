//! The supervised DHCP client of the management interface (host settings `mode: dhcp`).
//!
//! Flow: a host change to `dhcp` ([`super::changes`]) clears the interface's static IPv4
//! configuration and calls [`DhcpClient::start`]: the hook link is prepared, a udhcpc left by
//! a killed daemon is killed, and a task runs `busybox udhcpc` (`hostplane_host::network::
//! dhcp_client::command`, `Cmd::spawn`), starting it again after 1 s … 30 s when it exits. A
//! change to `static`, a rollback and daemon shutdown call [`DhcpClient::stop`] (the rollback
//! before it puts the prior addresses back, so no late lease event undoes them). The start hook
//! starts the client again when the confirmed settings say `dhcp`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hostplane_host::command::{ChildOutput, OnDrop};
use hostplane_host::network::dhcp_client::{self, Files, Lease};

struct Running {
    interface: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    pid: Arc<AtomicU32>,
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
            .map(|r| (r.interface.clone(), r.pid.load(Ordering::Relaxed)))
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
        let cmd = dhcp_client::command(&self.files, interface, hostname);
        let log = self.files.log();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let pid = Arc::new(AtomicU32::new(0));
        let pid2 = pid.clone();
        let name = interface.to_string();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                let begun = Instant::now();
                match cmd.spawn(ChildOutput::AppendTo(log.clone()), OnDrop::Kill) {
                    Ok(mut child) => {
                        pid2.store(child.pid(), Ordering::Relaxed);
                        tokio::select! {
                            r = child.wait() => {
                                pid2.store(0, Ordering::Relaxed);
                                tracing::warn!(interface = %name, status = ?r.ok(), "udhcpc exited; restarting");
                            }
                            _ = stopped.changed() => {
                                let _ = child.kill().await;
                                pid2.store(0, Ordering::Relaxed);
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(interface = %name, error = %e, "udhcpc did not start"),
                }
                if begun.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        });
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(Running {
            interface: interface.to_string(),
            stop,
            task,
            pid,
        });
        Ok(())
    }

    /// Stops the client and waits until it is gone; also kills one a killed daemon left.
    pub async fn stop(&self) {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(r) = r {
            let _ = r.stop.send(true);
            let _ = r.task.await;
        }
        dhcp_client::kill_stale(&self.files);
    }
}
