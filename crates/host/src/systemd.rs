//! systemd over D-Bus: list service units, read one, start/stop/restart them (waiting for the
//! systemd job's result), enable/disable their unit files, and reboot.
//!
//! Flow: [`Systemd::connect`] opens a connection to the system bus (the configured address,
//! else `$DBUS_SYSTEM_BUS_ADDRESS`, else `unix:path=/run/dbus/system_bus_socket`) and checks
//! that `org.freedesktop.systemd1` answers there; a host without systemd gets
//! [`SystemdError::Unavailable`] with the reason, never made-up data. Each call is bounded by
//! [`CALL_TIMEOUT`]. Unit names are checked with [`unit_name`] before they reach the bus.
//!
//! Properties are read uncached (`CacheProperties::No`): every read is a live `Get`.

use std::time::Duration;

use futures_util::StreamExt;
use hostplane_types::services::Service;
use zbus::proxy::CacheProperties;
use zbus_systemd::systemd1::{ManagerProxy, ServiceProxy, UnitProxy};

/// Where the system bus is when neither config nor environment says otherwise.
pub const DEFAULT_SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
/// Longest any single D-Bus call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(25);

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// No system bus, or no systemd on it (the host's init is something else).
    #[error("{0}")]
    Unavailable(String),
    #[error("no unit {0:?}")]
    NoSuchUnit(String),
    #[error("{0}")]
    InvalidName(String),
    /// systemd refused or failed the call (access denied, unit masked, bad setting…).
    #[error("systemd: {name}: {message}")]
    Failed { name: String, message: String },
    #[error("systemd did not answer within {0:?}")]
    Timeout(Duration),
}

impl SystemdError {
    fn from_zbus(e: zbus::Error, unit: Option<&str>) -> SystemdError {
        match e {
            zbus::Error::MethodError(name, msg, _) => {
                let name = name.as_str().to_string();
                if name.ends_with(".NoSuchUnit") || name.ends_with(".LoadFailed") {
                    return SystemdError::NoSuchUnit(unit.unwrap_or_default().to_string());
                }
                SystemdError::Failed {
                    name,
                    message: msg.unwrap_or_default(),
                }
            }
            zbus::Error::FDO(f) => match *f {
                zbus::fdo::Error::ServiceUnknown(m) | zbus::fdo::Error::NameHasNoOwner(m) => {
                    SystemdError::Unavailable(format!(
                        "systemd (org.freedesktop.systemd1) is not on the system bus: {m}"
                    ))
                }
                other => SystemdError::Failed {
                    name: "org.freedesktop.DBus.Error".into(),
                    message: other.to_string(),
                },
            },
            zbus::Error::InputOutput(io) => {
                SystemdError::Unavailable(format!("the system bus connection failed: {io}"))
            }
            other => SystemdError::Failed {
                name: "zbus".into(),
                message: other.to_string(),
            },
        }
    }
}

/// Check a unit name and complete it: a name without a type suffix gets `.service`.
/// Allowed: 1–255 of `A-Z a-z 0-9 : _ . \ @ -`, not starting with `-` or `.`.
pub fn unit_name(name: &str) -> Result<String, SystemdError> {
    let ok = !name.is_empty()
        && name.len() <= 240
        && !name.starts_with(['-', '.'])
        && name.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b':' | b'_' | b'.' | b'\\' | b'@' | b'-')
        })
        && !name.contains("..");
    if !ok {
        return Err(SystemdError::InvalidName(format!(
            "invalid unit name {:?}: use 1 to 240 of A-Z a-z 0-9 : _ . \\ @ -, not starting with - or .",
            name.chars().take(80).collect::<String>()
        )));
    }
    const TYPES: &[&str] = &[
        ".service",
        ".socket",
        ".target",
        ".timer",
        ".mount",
        ".automount",
        ".path",
        ".slice",
        ".scope",
        ".swap",
        ".device",
    ];
    if TYPES.iter().any(|t| name.ends_with(t)) {
        Ok(name.to_string())
    } else {
        Ok(format!("{name}.service"))
    }
}

/// The bus address to use: the configured one, else `$DBUS_SYSTEM_BUS_ADDRESS`, else the
/// standard socket.
pub fn bus_address(configured: Option<&str>) -> String {
    if let Some(a) = configured.filter(|a| !a.is_empty()) {
        return a.to_string();
    }
    match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        Ok(a) if !a.is_empty() => a,
        _ => DEFAULT_SYSTEM_BUS.to_string(),
    }
}

async fn bounded<T>(
    fut: impl std::future::Future<Output = zbus::Result<T>>,
    unit: Option<&str>,
) -> Result<T, SystemdError> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| SystemdError::from_zbus(e, unit)),
        Err(_) => Err(SystemdError::Timeout(CALL_TIMEOUT)),
    }
}

fn init_name() -> String {
    std::fs::read_to_string("/proc/1/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A connection to the systemd manager.
pub struct Systemd {
    conn: zbus::Connection,
    address: String,
}

/// One entry of `ListUnits`.
type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    zbus::OwnedObjectPath,
    u32,
    String,
    zbus::OwnedObjectPath,
);

impl Systemd {
    /// Connects and checks that systemd answers (`SystemState`).
    pub async fn connect(configured: Option<&str>) -> Result<Systemd, SystemdError> {
        let address = bus_address(configured);
        let unavailable = |why: String| {
            SystemdError::Unavailable(format!(
                "systemd is not reachable over D-Bus at {address}: {why} (PID 1 here is {:?})",
                init_name()
            ))
        };
        let builder = zbus::connection::Builder::address(address.as_str());
        let conn = match tokio::time::timeout(CALL_TIMEOUT, builder.build()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(_) => return Err(unavailable("connecting timed out".into())),
        };
        let s = Systemd {
            conn,
            address: address.clone(),
        };
        let m = s.manager().await?;
        match bounded(m.system_state(), None).await {
            Ok(_) => Ok(s),
            Err(SystemdError::Unavailable(why)) => Err(unavailable(why)),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    async fn manager(&self) -> Result<ManagerProxy<'static>, SystemdError> {
        bounded(
            ManagerProxy::builder(&self.conn)
                .cache_properties(CacheProperties::No)
                .build(),
            None,
        )
        .await
    }

    /// `running`, `degraded`, `starting`… (the manager's `SystemState`).
    pub async fn system_state(&self) -> Result<String, SystemdError> {
        let m = self.manager().await?;
        bounded(m.system_state(), None).await
    }

    /// Every service unit: loaded ones (`ListUnitsByPatterns`) merged with installed unit files
    /// (`ListUnitFilesByPatterns`), sorted by name. Template files (`foo@.service`) are left out.
    pub async fn list_services(&self) -> Result<Vec<Service>, SystemdError> {
        let m = self.manager().await?;
        let units: Vec<UnitRow> = bounded(
            m.list_units_by_patterns(Vec::new(), vec!["*.service".into()]),
            None,
        )
        .await?;
        let files: Vec<(String, String)> = bounded(
            m.list_unit_files_by_patterns(Vec::new(), vec!["*.service".into()]),
            None,
        )
        .await?;
        let mut file_state: std::collections::HashMap<String, String> = files
            .into_iter()
            .filter_map(|(path, state)| {
                let name = path.rsplit('/').next()?.to_string();
                (!name.contains("@.")).then_some((name, state))
            })
            .collect();
        let mut out: Vec<Service> = units
            .into_iter()
            .map(|u| {
                let ufs = file_state.remove(&u.0).unwrap_or_default();
                service(u.0, u.1, u.2, u.3, u.4, ufs, None)
            })
            .collect();
        for (name, state) in file_state {
            // Installed but not loaded now: inactive by definition.
            out.push(service(
                name,
                String::new(),
                "stub".into(),
                "inactive".into(),
                "dead".into(),
                state,
                None,
            ));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One unit, loaded on demand (`LoadUnit`). A unit with no unit file anywhere is
    /// [`SystemdError::NoSuchUnit`].
    pub async fn unit(&self, name: &str) -> Result<Service, SystemdError> {
        let name = unit_name(name)?;
        let m = self.manager().await?;
        let path = bounded(m.load_unit(name.clone()), Some(&name)).await?;
        let u = bounded(
            UnitProxy::builder(&self.conn)
                .path(path.clone())
                .cache_properties(CacheProperties::No)
                .build(),
            Some(&name),
        )
        .await?;
        let load_state = bounded(u.load_state(), Some(&name)).await?;
        if load_state == "not-found" {
            return Err(SystemdError::NoSuchUnit(name));
        }
        let description = bounded(u.description(), Some(&name)).await?;
        let active_state = bounded(u.active_state(), Some(&name)).await?;
        let sub_state = bounded(u.sub_state(), Some(&name)).await?;
        let unit_file_state = bounded(u.unit_file_state(), Some(&name)).await?;
        let mut main_pid = None;
        if name.ends_with(".service") {
            let s = bounded(
                ServiceProxy::builder(&self.conn)
                    .path(path)
                    .cache_properties(CacheProperties::No)
                    .build(),
                Some(&name),
            )
            .await?;
            main_pid = bounded(s.main_pid(), Some(&name))
                .await
                .ok()
                .filter(|p| *p != 0);
        }
        Ok(service(
            name,
            description,
            load_state,
            active_state,
            sub_state,
            unit_file_state,
            main_pid,
        ))
    }

    /// Starts, stops or restarts `name` (mode `replace`) and waits up to `timeout` for
    /// systemd's job to finish; returns the job result (`done`, `failed`, `canceled`,
    /// `timeout`, `dependency`, `skipped`).
    pub async fn run_action(
        &self,
        action: UnitAction,
        name: &str,
        timeout: Duration,
    ) -> Result<String, SystemdError> {
        let name = unit_name(name)?;
        // The unit must exist: StartUnit on a missing unit would only say "not found" later.
        self.unit(&name).await?;
        let m = self.manager().await?;
        // Signals are sent only to subscribed clients; subscribe and listen before the call so
        // the JobRemoved of a fast job cannot be missed.
        bounded(m.subscribe(), None).await?;
        let mut removed = bounded(m.receive_job_removed(), None).await?;
        let mode = "replace".to_string();
        let job = match action {
            UnitAction::Start => bounded(m.start_unit(name.clone(), mode), Some(&name)).await?,
            UnitAction::Stop => bounded(m.stop_unit(name.clone(), mode), Some(&name)).await?,
            UnitAction::Restart => bounded(m.restart_unit(name.clone(), mode), Some(&name)).await?,
        };
        let wait = async {
            while let Some(sig) = removed.next().await {
                if let Ok(args) = sig.args()
                    && args.job.as_str() == job.as_str()
                {
                    return Ok(args.result.clone());
                }
            }
            Err(SystemdError::Unavailable(
                "the system bus connection closed while waiting for the job".into(),
            ))
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(SystemdError::Timeout(timeout)),
        }
    }

    /// Enables (`EnableUnitFiles`, then `Reload`) or disables the unit file of `name`.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), SystemdError> {
        let name = unit_name(name)?;
        self.unit(&name).await?;
        let m = self.manager().await?;
        if enabled {
            bounded(
                m.enable_unit_files(vec![name.clone()], false, false),
                Some(&name),
            )
            .await?;
        } else {
            bounded(m.disable_unit_files(vec![name.clone()], false), Some(&name)).await?;
        }
        bounded(m.reload(), None).await
    }

    /// Reboots the way `systemctl reboot` does: start `reboot.target`, irreversibly.
    pub async fn reboot(&self) -> Result<(), SystemdError> {
        let m = self.manager().await?;
        bounded(
            m.start_unit("reboot.target".into(), "replace-irreversibly".into()),
            Some("reboot.target"),
        )
        .await
        .map(|_| ())
    }
}

/// What [`Systemd::run_action`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitAction {
    Start,
    Stop,
    Restart,
}

impl UnitAction {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitAction::Start => "start",
            UnitAction::Stop => "stop",
            UnitAction::Restart => "restart",
        }
    }
}

fn service(
    name: String,
    description: String,
    load_state: String,
    active_state: String,
    sub_state: String,
    unit_file_state: String,
    main_pid: Option<u32>,
) -> Service {
    Service {
        href: format!("/api/v1/services/{name}"),
        name,
        description,
        load_state,
        active_state,
        sub_state,
        unit_file_state,
        main_pid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        assert_eq!(unit_name("ssh").unwrap(), "ssh.service");
        assert_eq!(unit_name("ssh.service").unwrap(), "ssh.service");
        assert_eq!(
            unit_name("getty@tty1.service").unwrap(),
            "getty@tty1.service"
        );
        assert_eq!(unit_name("multi-user.target").unwrap(), "multi-user.target");
        assert_eq!(
            unit_name("systemd-fsck@dev-disk-by\\x2dlabel-x").unwrap(),
            "systemd-fsck@dev-disk-by\\x2dlabel-x.service"
        );
        for bad in ["", "-x", ".x", "a/b", "a b", "../etc", "a;b", "x\n"] {
            assert!(unit_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bus_address_prefers_config() {
        assert_eq!(bus_address(Some("unix:path=/x")), "unix:path=/x");
    }

    #[tokio::test]
    async fn no_bus_is_unavailable_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("unix:path={}/none.sock", dir.path().display());
        match Systemd::connect(Some(&addr)).await {
            Err(SystemdError::Unavailable(why)) => {
                assert!(why.contains(&addr), "{why}");
                assert!(why.contains("PID 1"), "{why}");
            }
            Err(e) => panic!("expected Unavailable, got {e}"),
            Ok(_) => panic!("connected to nothing"),
        }
    }
}
