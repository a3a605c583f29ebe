//! The VM manager: QEMU processes, their QMP sessions and run state.
//!
//! Flow of a start: take the VM's lock → resolve the definition into a [`Launch`] (accelerator
//! from the capability probe, files checked, UEFI vars copied) → spawn QEMU with its QMP,
//! serial and VNC sockets and pidfile in the VM's run directory → connect QMP (greeting,
//! `qmp_capabilities`, `query-status`) → start the monitor task and the serial hub → publish
//! `resource.updated`. The monitor turns QMP events (`STOP`, `RESUME`, `POWERDOWN`,
//! `SHUTDOWN`) into status changes, each pushed on the event stream; when the QMP socket
//! closes, QEMU has exited: the runtime is dropped and the VM is `stopped`.
//!
//! QEMU outlives the daemon by design. At daemon start ([`VmManager::startup`], a spawned task
//! so readiness is not delayed) each VM whose pidfile names a live QEMU (its command line must
//! contain the VM's QMP socket path) is re-attached over QMP; then autostart VMs are started.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostplane_host::qemu::argv::{
    self, Accel, Bus, Launch, LaunchCdrom, LaunchDisk, LaunchNic, NicBackend, Uefi,
};
use hostplane_host::qemu::process::{self, RunFiles};
use hostplane_host::qemu::qmp::{self, Qmp};
use hostplane_types::vms::{
    Accelerator, BootDevice, DiskBus, Firmware, MachineType, NicMode, Vm, VmDisk, VmNic,
    VmStatus,
};
use tokio::sync::{OwnedMutexGuard, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::consoles::SerialHub;
use super::model::{self, VmDef, VmRecord};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::platform::events::Events;
use crate::platform::store::Store;

/// Spare PCIe root ports a q35 VM gets for hot-plug.
pub const HOTPLUG_PORTS: u32 = 4;
/// Longest wait for QEMU's QMP socket after spawning.
const QMP_READY: Duration = Duration::from_secs(15);

/// The running QEMUs, for the metrics collector (`platform::processes`).
pub struct QemuProcesses(pub Arc<VmManager>);

impl crate::platform::processes::ProcessSource for QemuProcesses {
    fn processes(&self) -> crate::platform::processes::Listed<'_> {
        let list = self
            .0
            .runtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|rt| crate::platform::processes::Monitored {
                kind: "vm",
                name: rt.id.clone(),
                pid: rt.pid,
                cgroup: None,
            })
            .collect();
        Box::pin(std::future::ready(list))
    }
}

/// A running (or re-attached) QEMU.
pub struct Runtime {
    pub id: String,
    pub pid: u32,
    pub qmp: Qmp,
    pub accel: String,
    pub files: RunFiles,
    pub status: Mutex<VmStatus>,
    /// The definition QEMU was started with, plus what was hot-plugged since.
    pub launched: Mutex<VmDef>,
    pub serial: Arc<SerialHub>,
    /// QMP events, re-broadcast for waiters (`DEVICE_DELETED`, jobs).
    pub events: broadcast::Sender<qmp::Event>,
    /// Cancelled once the process has exited and the runtime is gone.
    pub done: CancellationToken,
    /// q35: hot-plug root port per device id.
    pub ports: Mutex<HashMap<String, String>>,
}

impl Runtime {
    pub fn status(&self) -> VmStatus {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_status(&self, s: VmStatus) -> bool {
        let mut cur = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let changed = *cur != s;
        *cur = s;
        changed
    }

    pub fn launched(&self) -> VmDef {
        self.launched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a live change in what runs (and in `launched.json`, for a daemon restart).
    pub fn update_launched(&self, f: impl FnOnce(&mut VmDef)) {
        let mut l = self.launched.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut l);
        write_launched(&self.files, &l);
    }

    /// A free q35 hot-plug port for `dev`, None when all are taken.
    pub fn take_port(&self, dev: &str) -> Option<String> {
        let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let port = (0..HOTPLUG_PORTS)
            .map(argv::hotplug_port)
            .find(|p| !ports.values().any(|v| v == p))?;
        ports.insert(dev.to_string(), port.clone());
        Some(port)
    }

    pub fn release_port(&self, dev: &str) {
        self.ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(dev);
    }
}

fn write_launched(files: &RunFiles, def: &VmDef) {
    if let Ok(json) = serde_json::to_vec(def) {
        let _ = crate::fsutil::write_atomic(&files.dir.join("launched.json"), &json, 0o600);
    }
}

fn read_launched(files: &RunFiles) -> Option<VmDef> {
    serde_json::from_slice(&std::fs::read(files.dir.join("launched.json")).ok()?).ok()
}

pub struct VmManager {
    pub store: Arc<Store>,
    pub events: Arc<Events>,
    pub images_dir: PathBuf,
    pub run_dir: PathBuf,
    /// Where request paths may point: the images directory and `vms.allowed_paths`.
    pub roots: Vec<PathBuf>,
    /// `pools.mount_root`: disks below it are on a pool dataset (`VmDisk::storage`).
    pub pools_root: PathBuf,
    pub max_disk_bytes: u64,
    pub max_running: u32,
    /// `[vms] max_upload_bytes`: an upload or download as sent, and unpacked.
    pub max_upload_bytes: u64,
    /// `[vms] url_allow`: non-public addresses box URLs may reach.
    pub url_allow: Vec<crate::platform::fetch::Net>,
    runtimes: Mutex<HashMap<String, Arc<Runtime>>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Maps a QMP failure to the API.
pub fn qmp_error(e: qmp::QmpError) -> ApiError {
    match e {
        qmp::QmpError::Closed => ApiError::conflict("vm_not_running", "QEMU exited"),
        qmp::QmpError::Command { command, desc, .. } => {
            ApiError::conflict("qemu_refused", format!("QEMU refused {command}: {desc}"))
        }
        other => ApiError::internal(other),
    }
}

impl VmManager {
    pub fn new(cfg: &Config, store: Arc<Store>, events: Arc<Events>) -> std::io::Result<VmManager> {
        let images_dir = cfg.vms_images_dir();
        let run_dir = cfg.vms_run_dir();
        for d in [&images_dir, &run_dir] {
            std::fs::create_dir_all(d)?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700))?;
        let mut roots = vec![images_dir.clone()];
        roots.extend(cfg.vms.allowed_paths.iter().cloned());
        // Scratch files of uploads and unpacking that a crash or kill left behind.
        super::intake::sweep_stale(&images_dir.join(".tmp"), &images_dir.join("templates"));
        let url_allow = cfg
            .vms
            .url_allow
            .iter()
            .map(|n| crate::platform::fetch::parse_net(n).map_err(std::io::Error::other))
            .collect::<std::io::Result<_>>()?;
        Ok(VmManager {
            store,
            events,
            images_dir,
            run_dir,
            roots,
            pools_root: cfg.pools.mount_root.clone(),
            max_disk_bytes: cfg.vms.max_disk_bytes,
            max_running: cfg.vms.max_running,
            max_upload_bytes: cfg.vms.max_upload_bytes,
            url_allow,
            runtimes: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> model::HostLimits {
        model::HostLimits::probe(self.max_disk_bytes)
    }

    pub fn vm_dir(&self, id: &str) -> PathBuf {
        self.images_dir.join(id)
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.images_dir.join("templates")
    }

    pub fn bases_dir(&self) -> PathBuf {
        self.images_dir.join("bases")
    }

    /// Scratch space on the images file system (uploads, exports), created on demand.
    pub fn tmp_dir(&self) -> std::io::Result<PathBuf> {
        let d = self.images_dir.join(".tmp");
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// QEMU's `helper=` for bridge NICs: the daemon's own binary, linked as the bridge helper
    /// in the run directory (`hostplane_host::qemu::bridge_helper`).
    pub fn bridge_helper(&self) -> ApiResult<PathBuf> {
        let exe = std::env::current_exe().map_err(ApiError::internal)?;
        hostplane_host::qemu::bridge_helper::prepare(&self.run_dir, &exe).map_err(ApiError::internal)
    }

    pub fn run_files(&self, id: &str) -> RunFiles {
        RunFiles::new(self.run_dir.join(id))
    }

    pub fn runtime(&self, id: &str) -> Option<Arc<Runtime>> {
        self.runtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub fn running_count(&self) -> usize {
        self.runtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The per-VM lock every state change takes (start, stop, device changes, disk jobs).
    pub async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        let m = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone();
        m.lock_owned().await
    }

    /// Whether an operation holds the VM's lock now (a clone, an export, a snapshot job).
    pub fn is_locked(&self, id: &str) -> bool {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|m| m.try_lock().is_err())
    }

    /// [`lock`](Self::lock) for a request: 409 `vm_busy` when another operation on the VM
    /// (a clone, an import, a snapshot) holds it for more than a few seconds.
    pub async fn lock_req(&self, id: &str) -> ApiResult<OwnedMutexGuard<()>> {
        tokio::time::timeout(Duration::from_secs(5), self.lock(id))
            .await
            .map_err(|_| ApiError::conflict("vm_busy", "another operation on this VM is running"))
    }

    /// The VM `key` (id or name) under its operation lock, read again once the lock is held:
    /// an operation that held the lock before may have changed the record.
    pub async fn find_locked(
        &self,
        store: &crate::platform::store::Store,
        key: &str,
    ) -> ApiResult<(OwnedMutexGuard<()>, super::model::VmRecord)> {
        let rec = super::model::find(store, key)?;
        let guard = self.lock_req(&rec.id).await?;
        Ok((guard, super::model::find(store, &rec.id)?))
    }

    /// The running QEMU of `id`, or 409 `vm_not_running`.
    pub fn require_running(&self, id: &str) -> ApiResult<Arc<Runtime>> {
        self.runtime(id)
            .ok_or_else(|| ApiError::conflict("vm_not_running", "the VM is not running"))
    }

    /// 409 `vm_running` unless stopped.
    pub fn require_stopped(&self, id: &str) -> ApiResult<()> {
        if self.runtime(id).is_some() {
            return Err(ApiError::conflict(
                "vm_running",
                "the VM is running; stop it first",
            ));
        }
        Ok(())
    }

    /// The API view of a record.
    pub fn view(&self, rec: &VmRecord) -> Vm {
        let rt = self.runtime(&rec.id);
        let d = &rec.def;
        Vm {
            href: format!("/api/v1/vms/{}", rec.id),
            id: rec.id.clone(),
            name: rec.name.clone(),
            status: rt.as_ref().map(|r| r.status()).unwrap_or(VmStatus::Stopped),
            vcpus: d.vcpus,
            memory_mib: d.memory_mib,
            machine: d.machine,
            firmware: d.firmware,
            accelerator: d.accelerator,
            accelerator_in_use: rt.as_ref().map(|r| r.accel.clone()),
            disks: d.disks.iter().map(|x| self.disk_view(x)).collect(),
            cdroms: d.cdroms.clone(),
            nics: d.nics.clone(),
            boot: d.boot.clone(),
            kernel: d.kernel.clone(),
            initrd: d.initrd.clone(),
            cmdline: d.cmdline.clone(),
            autostart: d.autostart,
            template: d.template.clone(),
            pid: rt.as_ref().map(|r| r.pid),
            pending_changes: rt
                .as_ref()
                .is_some_and(|r| !r.launched().boot_relevant_eq(d)),
            created_at: rec.created_at.clone(),
            updated_at: rec.updated_at.clone(),
        }
    }

    /// A disk as the API shows it: with the storage it is on.
    pub fn disk_view(&self, d: &VmDisk) -> VmDisk {
        VmDisk {
            storage: super::storage::label(&self.images_dir, &self.pools_root, &d.path),
            ..d.clone()
        }
    }

    /// Publishes `resource.updated` with the VM's current view.
    pub fn publish(&self, id: &str, actor: &str) {
        if let Ok(Some(rec)) = model::load(&self.store, id) {
            let vm = self.view(&rec);
            self.events.publish(
                "resource.updated",
                &vm.href,
                actor,
                serde_json::to_value(&vm).unwrap_or_default(),
            );
        }
    }

    fn resolve(&self, field: &str, s: &str) -> ApiResult<PathBuf> {
        model::resolve_file(field, s, &self.images_dir, &self.roots)
    }

    /// The definition as QEMU arguments; every file checked now (it may have gone since).
    async fn launch_of(&self, rec: &VmRecord, files: &RunFiles) -> ApiResult<Launch> {
        let d = &rec.def;
        let accel = match d.accelerator {
            Accelerator::Tcg => Accel::Tcg,
            Accelerator::Kvm => Accel::Kvm,
            Accelerator::Auto => {
                if hostplane_host::capabilities::probe()
                    .await
                    .virtualization
                    .kvm_usable
                {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                }
            }
        };
        if accel == Accel::Kvm && !Path::new("/dev/kvm").exists() {
            return Err(ApiError::NotSupported {
                code: "kvm_unavailable",
                detail: "accelerator kvm asked for, but /dev/kvm does not exist".into(),
            });
        }
        let uefi = match d.firmware {
            Firmware::Bios => None,
            Firmware::Uefi => {
                let (code, vars_template) =
                    hostplane_host::qemu::ovmf_files().ok_or_else(|| ApiError::Unavailable {
                        code: "ovmf_missing",
                        detail: "UEFI firmware (OVMF) is not installed (apt-get install ovmf)"
                            .into(),
                    })?;
                let vars = self.vm_dir(&rec.id).join("OVMF_VARS.fd");
                if !vars.exists() {
                    std::fs::create_dir_all(self.vm_dir(&rec.id)).map_err(ApiError::internal)?;
                    std::fs::copy(&vars_template, &vars).map_err(ApiError::internal)?;
                }
                Some(Uefi { code, vars })
            }
        };
        let order = if d.boot.is_empty() {
            model::default_boot()
        } else {
            d.boot.clone()
        };
        let boot_index = |class: BootDevice| -> Option<u32> {
            order
                .iter()
                .position(|b| *b == class)
                .map(|p| (p as u32 + 1) * 100)
        };
        let mut disks = Vec::new();
        for (i, disk) in d.disks.iter().enumerate() {
            let p = PathBuf::from(&disk.path);
            if !p.is_file() {
                return Err(ApiError::conflict(
                    "disk_missing",
                    format!("disk {} ({}) does not exist", disk.index, disk.path),
                ));
            }
            super::intake::recheck_in_place(disk).await?;
            disks.push(LaunchDisk {
                index: disk.index,
                path: p,
                format: disk.format.as_str(),
                bus: bus_of(disk.bus),
                bootindex: boot_index(BootDevice::Disk).map(|b| b + i as u32),
                read_only: false,
            });
        }
        let mut cdroms = Vec::new();
        for (i, c) in d.cdroms.iter().enumerate() {
            let iso = match &c.iso {
                Some(s) if c.cloud_init => Some(PathBuf::from(s)),
                Some(s) => Some(self.resolve(&format!("cdroms[{i}].iso"), s)?),
                None => None,
            };
            cdroms.push(LaunchCdrom {
                index: c.index,
                iso,
                bootindex: boot_index(BootDevice::Cdrom).map(|b| b + i as u32),
            });
        }
        let mut nics = Vec::new();
        for (i, n) in d.nics.iter().enumerate() {
            let backend = match (n.mode, &n.bridge) {
                (NicMode::Bridge, Some(br)) => {
                    if !Path::new("/sys/class/net").join(br).join("bridge").exists() {
                        return Err(ApiError::conflict(
                            "bridge_missing",
                            format!("nic {}: host bridge {br:?} does not exist", n.index),
                        ));
                    }
                    NicBackend::Bridge {
                        bridge: br.clone(),
                        helper: self.bridge_helper()?,
                    }
                }
                _ => NicBackend::User,
            };
            let model_name = model::nic_model_name(n.model);
            let net_boot = boot_index(BootDevice::Network);
            nics.push(LaunchNic {
                host_forwards: host_forwards(n),
                index: n.index,
                backend,
                mac: n.mac.clone(),
                model: model_name,
                bootindex: net_boot.map(|b| b + i as u32),
                romfile: net_boot
                    .and_then(|_| hostplane_host::qemu::nic_rom(model_name))
                    .unwrap_or("")
                    .to_string(),
            });
        }
        let kernel = match &d.kernel {
            Some(k) => Some(self.resolve("kernel", k)?),
            None => None,
        };
        let initrd = match (&d.kernel, &d.initrd) {
            (Some(_), Some(i)) => Some(self.resolve("initrd", i)?),
            _ => None,
        };
        Ok(Launch {
            name: rec.name.clone(),
            accel,
            machine: match d.machine {
                MachineType::Pc => "pc",
                MachineType::Q35 => "q35",
            },
            vcpus: d.vcpus,
            memory_mib: d.memory_mib,
            uefi,
            disks,
            cdroms,
            nics,
            kernel,
            initrd,
            cmdline: d.cmdline.clone(),
            qmp_socket: files.qmp.clone(),
            serial_socket: files.serial.clone(),
            qga_socket: files.qga.clone(),
            vnc_socket: files.vnc.clone(),
            pidfile: files.pidfile.clone(),
            hotplug_ports: HOTPLUG_PORTS,
        })
    }

    /// Starts the VM's QEMU (the caller holds the VM's lock).
    pub async fn start(self: &Arc<Self>, rec: &VmRecord, actor: &str) -> ApiResult<()> {
        if self.runtime(&rec.id).is_some() {
            return Err(ApiError::conflict(
                "vm_running",
                "the VM is already running",
            ));
        }
        if self.running_count() >= self.max_running as usize {
            return Err(ApiError::conflict(
                "too_many_running",
                format!("{} VMs run already (vms.max_running)", self.max_running),
            ));
        }
        let files = self.run_files(&rec.id);
        if let Some(pid) = files.running_pid() {
            // A QEMU nobody manages (e.g. re-attach failed): take it over rather than start twice.
            tracing::warn!(vm = rec.id, pid, "found a running QEMU; attaching");
            self.attach(rec, pid, None).await?;
            return Ok(());
        }
        std::fs::create_dir_all(&files.dir).map_err(ApiError::internal)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&files.dir, std::fs::Permissions::from_mode(0o700));
        }
        files.clear_stale();
        let _ = std::fs::remove_file(&files.log);
        model::check_host_ports(rec.def.nics.iter().flat_map(|n| &n.port_forwards))?;
        let launch = self.launch_of(rec, &files).await?;
        let args = argv::argv(&launch);
        let mut child = process::spawn(&args, &files.log).map_err(ApiError::from)?;
        let pid = child.pid();
        // Wait for the QMP socket (or an early exit: bad arguments, locked image, …).
        let deadline = tokio::time::Instant::now() + QMP_READY;
        loop {
            if files.qmp.exists() && std::os::unix::net::UnixStream::connect(&files.qmp).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let tail = process::log_tail(&files.log, 2000);
                files.clear_stale();
                // A forwarded host port taken between the check above and QEMU's bind.
                let code = if tail.contains("host forwarding rule") {
                    "host_port_in_use"
                } else {
                    "start_failed"
                };
                return Err(ApiError::conflict(
                    code,
                    format!("QEMU exited at start ({status}): {tail}"),
                ));
            }
            if tokio::time::Instant::now() > deadline {
                process::signal(pid, libc::SIGKILL);
                let _ = child.wait().await;
                files.clear_stale();
                return Err(ApiError::conflict(
                    "start_failed",
                    "QEMU did not open its QMP socket in time",
                ));
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        write_launched(&files, &rec.def);
        match self.attach(rec, pid, Some(child)).await {
            Ok(_) => {
                tracing::info!(
                    vm = rec.id,
                    name = rec.name,
                    pid,
                    accel = launch.accel.as_str(),
                    by = actor,
                    "VM started"
                );
                self.publish(&rec.id, actor);
                Ok(())
            }
            Err(e) => {
                process::signal(pid, libc::SIGKILL);
                files.clear_stale();
                Err(e)
            }
        }
    }

    /// Connects to a QEMU's QMP and starts managing it. `child` when we spawned it.
    pub async fn attach(
        self: &Arc<Self>,
        rec: &VmRecord,
        pid: u32,
        child: Option<hostplane_host::Supervised>,
    ) -> ApiResult<Arc<Runtime>> {
        let files = self.run_files(&rec.id);
        let (qmp, rx) = Qmp::connect(&files.qmp).await.map_err(qmp_error)?;
        let st = qmp.execute("query-status", None).await.map_err(qmp_error)?;
        let (status, running) = qmp::status_of(&st);
        let status = if running {
            VmStatus::Running
        } else if status == "shutdown" {
            VmStatus::ShuttingDown
        } else {
            VmStatus::Paused
        };
        let accel = std::fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .and_then(|c| {
                let s = String::from_utf8_lossy(&c).into_owned();
                s.split('\0').find_map(|a| {
                    a.split("accel=")
                        .nth(1)
                        .map(|x| x.split(',').next().unwrap_or("").to_string())
                })
            })
            .unwrap_or_else(|| "tcg".into());
        let launched = read_launched(&files).unwrap_or_else(|| rec.def.clone());
        let (events, _) = broadcast::channel(256);
        let rt = Arc::new(Runtime {
            id: rec.id.clone(),
            pid,
            qmp,
            accel,
            serial: SerialHub::start(files.serial.clone()),
            files,
            status: Mutex::new(status),
            launched: Mutex::new(launched),
            events,
            done: CancellationToken::new(),
            ports: Mutex::new(HashMap::new()),
        });
        self.runtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rec.id.clone(), rt.clone());
        tokio::spawn(monitor(self.clone(), rt.clone(), rx, child));
        Ok(rt)
    }

    /// Stops QEMU at once (`quit`; SIGKILL if it does not exit). Waits until it is gone.
    pub async fn stop_force(&self, id: &str) -> ApiResult<()> {
        let Some(rt) = self.runtime(id) else {
            return Ok(());
        };
        let _ = rt
            .qmp
            .execute_timeout("quit", None, Duration::from_secs(5))
            .await;
        if tokio::time::timeout(Duration::from_secs(10), rt.done.cancelled())
            .await
            .is_err()
        {
            tracing::warn!(vm = id, pid = rt.pid, "QEMU ignored quit; killing it");
            process::signal(rt.pid, libc::SIGKILL);
            if tokio::time::timeout(Duration::from_secs(10), rt.done.cancelled())
                .await
                .is_err()
            {
                return Err(ApiError::internal(format!(
                    "QEMU {} of VM {id} does not exit",
                    rt.pid
                )));
            }
        }
        Ok(())
    }

    /// ACPI power button, then wait up to `timeout` for the guest to power off; stop by force
    /// after that. Returns whether the guest powered off by itself.
    pub async fn shutdown(&self, id: &str, timeout: Duration, actor: &str) -> ApiResult<bool> {
        let Some(rt) = self.runtime(id) else {
            return Ok(true);
        };
        rt.qmp
            .execute("system_powerdown", None)
            .await
            .map_err(qmp_error)?;
        if rt.set_status(VmStatus::ShuttingDown) {
            self.publish(id, actor);
        }
        if tokio::time::timeout(timeout, rt.done.cancelled())
            .await
            .is_ok()
        {
            return Ok(true);
        }
        self.stop_force(id).await?;
        Ok(false)
    }

    /// Re-attach to QEMUs that survived a daemon restart, then start autostart VMs.
    pub async fn startup(self: Arc<Self>) {
        let records = match model::load_all(&self.store) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "VMs: cannot read the definitions");
                return;
            }
        };
        for rec in &records {
            let files = self.run_files(&rec.id);
            match files.running_pid() {
                Some(pid) => match self.attach(rec, pid, None).await {
                    Ok(_) => {
                        tracing::info!(
                            vm = rec.id,
                            name = rec.name,
                            pid,
                            "re-attached to a running VM"
                        );
                        self.publish(&rec.id, "hostplane");
                    }
                    Err(e) => {
                        tracing::error!(vm = rec.id, pid, error = %e, "cannot re-attach to QEMU")
                    }
                },
                None => files.clear_stale(),
            }
        }
        for rec in records.iter().filter(|r| r.def.autostart) {
            let _guard = self.lock(&rec.id).await;
            if self.runtime(&rec.id).is_some() {
                continue;
            }
            match self.start(rec, "hostplane").await {
                Ok(()) => tracing::info!(vm = rec.id, name = rec.name, "autostarted"),
                Err(e) => {
                    tracing::error!(vm = rec.id, name = rec.name, error = %e, "autostart failed")
                }
            }
        }
    }
}

pub fn bus_of(b: DiskBus) -> Bus {
    match b {
        DiskBus::Virtio => Bus::Virtio,
        DiskBus::Sata => Bus::Sata,
        DiskBus::Scsi => Bus::Scsi,
    }
}

/// Follows one QEMU: events to status, exit to `stopped`.
async fn monitor(
    mgr: Arc<VmManager>,
    rt: Arc<Runtime>,
    mut rx: mpsc::UnboundedReceiver<qmp::Event>,
    child: Option<hostplane_host::Supervised>,
) {
    while let Some(ev) = rx.recv().await {
        let new = match ev.name.as_str() {
            "STOP" => Some(VmStatus::Paused),
            "RESUME" => Some(VmStatus::Running),
            "POWERDOWN" | "SHUTDOWN" => Some(VmStatus::ShuttingDown),
            _ => None,
        };
        tracing::debug!(vm = rt.id, event = ev.name, "QMP event");
        let _ = rt.events.send(ev);
        if let Some(s) = new
            && rt.set_status(s)
        {
            mgr.publish(&rt.id, "qemu");
        }
    }
    // QMP closed: QEMU is exiting. Reap it (our child) or watch the pid (re-attached).
    match child {
        Some(mut c) => {
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                process::signal(rt.pid, libc::SIGKILL);
                let _ = c.wait().await;
            }
        }
        None => {
            let mut waited = Duration::ZERO;
            while process::is_alive(rt.pid) {
                if waited > Duration::from_secs(10) {
                    process::signal(rt.pid, libc::SIGKILL);
                }
                if waited > Duration::from_secs(20) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                waited += Duration::from_millis(50);
            }
        }
    }
    let removed = {
        let mut map = mgr.runtimes.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&rt.id) {
            Some(cur) if Arc::ptr_eq(cur, &rt) => map.remove(&rt.id).is_some(),
            _ => false,
        }
    };
    rt.files.clear_stale();
    rt.serial.close();
    rt.done.cancel();
    if removed {
        tracing::info!(vm = rt.id, pid = rt.pid, "VM stopped");
        mgr.publish(&rt.id, "qemu");
    }
}

/// The QEMU `hostfwd` rules of a NIC's port forwards (user-mode NICs only).
pub fn host_forwards(n: &VmNic) -> Vec<argv::HostForward> {
    if n.mode != NicMode::User {
        return Vec::new();
    }
    n.port_forwards
        .iter()
        .map(|p| argv::HostForward {
            udp: p.protocol == hostplane_types::vms::ForwardProtocol::Udp,
            host_port: p.host_port,
            guest_port: p.guest_port,
        })
        .collect()
}
