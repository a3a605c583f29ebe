//! Configuration: built-in defaults, then the TOML file, then environment, then flags.
//!
//! `hostplane serve --help` prints [`SAMPLE_CONFIG`], which documents every key of the file;
//! a unit test parses it so the help cannot drift from the code. Bad config is an error at
//! start, naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every key of the TOML file, with its default. Shown by `hostplane serve --help`.
pub const SAMPLE_CONFIG: &str = r#"CONFIGURATION FILE (--config FILE, TOML; every key optional, defaults shown):

  data_dir = "/var/lib/hostplane"      # root; else $XDG_DATA_HOME/hostplane (~/.local/share/hostplane)
  listen = ["127.0.0.1:8443"]          # TCP listeners (HTTPS unless http = true)
  http = false                         # plain HTTP instead of HTTPS (tests, behind a proxy)
  socket = "/run/hostplane/hostplane.sock"  # root with the default data dir; else DATA_DIR/hostplane.sock
  socket_enabled = true                # unix socket for local admin (mode 0660; peer uid 0 = admin)
  # sandbox = false                    # true: never act on the host's own system: generated system files go to
                                       #   DATA_DIR/root (unless admin.system_root), reboot only through
                                       #   admin.reboot_command, units changed only with services.change_units;
                                       #   absent = false as root, true otherwise (tests and fuzzing set it to true;
                                       #   GET /system/capabilities shows it as host_actions)

  [tls]
  cert = ""                            # PEM certificate chain; empty = DATA_DIR/tls/cert.pem,
  key = ""                             #   self-signed at first start when both are empty

  [auth]
  query_token = true                   # accept ?token= (Jidoteki compatible; the token shows in logs)
  query_hash = true                    # accept ?hash= HMAC (Jidoteki compatible; a hash is replayable)
  session_ttl_secs = 43200             # lifetime of a login session (60 .. 31536000)
  login_attempts_per_minute = 10       # per client address; more get 429 with Retry-After (1 .. 10000)
  anonymous_failures_per_minute = 60   # refused unauthenticated requests per client address (IPv6: per /64);
                                       #   more answer 429 rate_limited; valid credentials and the unix socket
                                       #   are never limited (1 .. 1000000; docs/limits.md)

  [audit]                              # the audit log's retention (docs/limits.md); pruned at start and hourly
  max_age_days = 90                    # entries older than this are deleted (1 .. 36500)
  max_rows = 200000                    # at most this many entries, oldest deleted first (10 .. 100000000)

  [connections]                        # TCP listeners (HTTP/HTTPS); the unix socket is never limited (docs/limits.md)
  max = 4096                           # open TCP connections at once; more are closed at accept
                                       #   (lowered to the open-files limit minus 256 when that is smaller)
  max_per_ip = 128                     # open TCP connections per client address (IPv6: per /64)
  header_read_timeout_secs = 10        # a connection must send a complete request head within this, and an
                                       #   idle HTTP/1 keep-alive connection is closed after it (1 .. 3600)
  idle_timeout_secs = 120              # closed after this long with no request in flight and no traffic
                                       #   (HTTP/1 and HTTP/2; WebSockets exempt; 0 = never)

  [metrics]
  public = false                       # serve /metrics without authentication
  interval_secs = 10                   # metrics history: seconds between samples (1 .. 300; docs/metrics.md)
  history = true                       # keep the metrics history (DATA_DIR/metrics.db)

  [terminal]
  shells = ["/bin/bash", "/bin/sh"]    # shells a host terminal may run (absolute paths)
  idle_timeout_secs = 900              # a terminal with no input or output for this long ends
  max_session_secs = 28800             # a terminal ends this long after it started
  detach_grace_secs = 300              # a terminal nobody is attached to ends after this
  max_sessions = 8                     # terminals open at once
  replay_bytes = 65536                 # recent output replayed to a reattaching client

  [events]
  replay_window = 10000                # events kept for Last-Event-ID replay (100 .. 1000000)
  max_stream_secs = 0                  # end each event stream after this long (0 = never .. 86400); clients
                                       #   reconnect with Last-Event-ID (tests use it to prove resume)

  [disks]
  allow = []                           # globs of devices destructive operations may touch, e.g. ["/dev/loop*"]

  [pools]                              # storage pools (/api/v1/pools)
  mount_root = "/mnt/pools"            # pools are mounted at MOUNT_ROOT/<name>, mergerfs members under MOUNT_ROOT/.members

  [admin]                              # the Jidoteki-compatible admin API (/api/v1/admin)
  # endpoints = ["settings", "certs", "license", "storage", "backup"]  # optional endpoints; absent = all implemented
  vendor_public_key = ""               # vendor's ed25519 public key (base64): verifies update packages and licences
  appliance_identity = ""              # age identity file that decrypts update packages; empty = DATA_DIR/keys/appliance.key
  vendor_recipient = ""                # age recipient (age1...) debug bundles are encrypted to
  update_timeout_secs = 1800           # an update script running longer is killed (E1000)
  reboot_command = []                  # argv of the reboot action; empty = systemd over D-Bus, else `reboot`
  services = ["hostplane"]             # units GET /admin/services reports
  log_paths = []                       # extra log files and dirs logs.tar.gz includes
  storage_options = ["local", "nfs", "aoe", "iscsi", "nbd"]  # persistent storage types offered
  storage_mount_point = "/srv/hostplane"  # where persistent storage is mounted at boot
  system_root = ""                     # prefix for generated system files (mount units); empty = "/",
                                       #   or DATA_DIR/root with sandbox = true
  backup_keep = 3                      # backups kept in DATA_DIR/backup; older ones are deleted (1 .. 100)
  backup_upload_max_bytes = 1073741824 # largest backup archive an upload or restore form may send (1 GiB; 1 MiB ..); more: 413
  backup_unpacked_max_bytes = 4294967296  # most bytes an archive may unpack to, after gzip/zstd (4 GiB; 1 MiB ..); more: refused
  update_upload_max_bytes = 2147483648 # largest update package an upload may send (2 GiB; 1 MiB ..); more: 413

  [services]                           # systemd units over D-Bus (/api/v1/services, GET /admin/services)
  dbus_address = ""                    # system bus address; empty = $DBUS_SYSTEM_BUS_ADDRESS, else unix:path=/run/dbus/system_bus_socket
  # change_units = true                # start/stop/restart/enable/disable units over that bus; absent = not sandbox
                                       #   (reads are always allowed; a sandbox with a private bus sets it to true)
  job_timeout_secs = 120               # a start/stop/restart job gives up waiting for systemd after this (1 .. 3600)

  [vms]                                # QEMU virtual machines (/api/v1/vms)
  images_dir = ""                      # disks (unless on a pool), templates, thin-clone bases; empty = DATA_DIR/vms
  run_dir = ""                         # QMP/serial/VNC sockets, pidfiles, QEMU logs (at most 58 bytes); empty = DATA_DIR/run/vms if short enough
  allowed_paths = []                   # more directories whose files (ISOs, kernels, images) a VM definition may name
  max_disk_bytes = 4398046511104       # largest disk a request may create, grow or import (4 TiB)
  max_upload_bytes = 68719476736       # most bytes an image upload or box download may carry, and may unpack
                                       #   to (decompressed), per request (64 GiB; at least 1048576)
  url_allow = []                       # addresses Vagrant box URLs may reach although not public (loopback,
                                       #   private, link-local, ...): IPs or CIDRs, e.g. ["10.0.0.0/8", "127.0.0.1"]
  max_running = 32                     # VMs running at once, at most (1 .. 1024)
  default_storage = "images"           # where new VM disks go unless a request names its storage: "images" (images_dir)
                                       #   or "<pool>/<dataset>" (a dataset of a mounted pool; docs/vms.md)

  [provisioning]                       # recipes, profiles, artifacts and runs (/api/v1/provisioning)
  url_allow = []                       # addresses an artifact URL may reach although not public (loopback, private,
                                       #   link-local, ...): IPs or CIDRs, e.g. ["10.0.0.0/8", "127.0.0.1"]
  artifacts_storage = "data"           # where artifacts are kept: "data" (DATA_DIR/provisioning/artifacts) or
                                       #   "<pool>/<dataset>" (a dataset of a mounted pool; docs/provisioning.md)

  [shares]                             # SMB shares and NFS exports (/api/v1/shares); share users are users with role "share"
  group = "hostplane-share"            # Unix group of every share user; files written through SMB get it
  unix_accounts = true                 # create/delete each share user's Unix account (useradd/userdel); false = it must exist
  smb_config = "/etc/samba/smb.conf"   # smbd's main config (passdb, smbcontrol, smbstatus); it must include smb_include
  smb_include = ""                     # the SMB file hostplane owns; empty = SYSTEM_ROOT/etc/samba/hostplane-shares.conf
  nfs_backend = "auto"                 # auto | kernel | ganesha | off; auto = kernel nfsd when /proc/fs/nfsd is mounted, else ganesha
  nfs_exports = ""                     # the NFS file hostplane owns; empty = SYSTEM_ROOT/etc/exports.d/hostplane.exports (kernel)
                                       #   or SYSTEM_ROOT/etc/ganesha/hostplane-exports.conf (ganesha: %include it in ganesha.conf)
  ganesha_pid_file = "/run/ganesha/ganesha.pid"  # ganesha rereads its exports on SIGHUP to this pid
  ganesha_log = "/var/log/ganesha/ganesha.log"   # a change waits (up to 10 s) for "Reread exports complete" in
                                       #   the log the running ganesha names with -L; this path only when it
                                       #   names none; unreadable or SYSLOG = not confirmed (logged)

  [containers]                         # container engines speaking the Docker Engine API (/api/v1/containers, docs/containers.md)
  timeout_secs = 30                    # deadline of one engine request (not log streams); a silent engine answers 503 (1 .. 3600)
  import_max_bytes = 4294967296        # largest rootfs tarball an image import may upload (4 GiB; 1 MiB ..); more: 413
  files_max_bytes = 1073741824         # largest tar a PUT .../files may upload (1 GiB; 1 MiB ..); spooled to a temp file, more: 413
  # [[containers.engines]]             # absent = the usual sockets that exist at start: docker = /run/docker.sock,
  # name = "docker"                    #   podman = /run/podman/podman.sock (none with sandbox = true); engines = [] = none
  # socket = "unix:///run/docker.sock" # unix:///path or /path; name: A-Z a-z 0-9 _ . -, unique

  [lxc]                                # LXC system containers (/api/v1/lxc, docs/lxc.md); every lxc-* gets -P path
  path = ""                            # the lxcpath (container configs, default rootfs dirs, snapshots); empty =
                                       #   /var/lib/lxc, or DATA_DIR/lxc with sandbox = true
  [network]                            # host network (/api/v1/network, docs/network.md)
  networkd_dir = ""                    # where boot files (NN-hostplane-*.network|.netdev) are written after a
                                       #   confirmed change; empty = SYSTEM_ROOT/etc/systemd/network
  resolv_conf = ""                     # the resolver file host settings write (DNS); empty = SYSTEM_ROOT/etc/resolv.conf
  hostname_file = ""                   # the file host settings write the host name to; empty = SYSTEM_ROOT/etc/hostname
  # set_hostname = true                # also set the running kernel's host name (sethostname); absent = not sandbox

  [log]
  level = "info"                       # tracing filter (RUST_LOG syntax), e.g. "info,hostplane_server=debug"
  format = "text"                      # text | json | journald

ENVIRONMENT: every flag has a HOSTPLANE_* variable (shown with each flag); flags win over the
environment, which wins over the file."#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Never act on the host's own system (see [`SAMPLE_CONFIG`]); None = not root.
    pub sandbox: Option<bool>,
    pub listen: Vec<SocketAddr>,
    pub http: bool,
    pub socket: Option<PathBuf>,
    pub socket_enabled: bool,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub metrics: MetricsConfig,
    pub terminal: TerminalConfig,
    pub events: EventsConfig,
    pub disks: DisksConfig,
    pub pools: PoolsConfig,
    pub admin: AdminConfig,
    pub services: ServicesConfig,
    pub vms: VmsConfig,
    pub provisioning: ProvisioningConfig,
    pub shares: SharesConfig,
    pub containers: ContainersConfig,
    pub lxc: LxcConfig,
    pub network: NetworkConfig,
    pub log: LogConfig,
    pub audit: AuditConfig,
    pub connections: ConnectionsConfig,
    /// The file this was loaded from (not a key of the file; backups include the file).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub query_token: bool,
    pub query_hash: bool,
    pub session_ttl_secs: u64,
    pub login_attempts_per_minute: u32,
    pub anonymous_failures_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            query_token: true,
            query_hash: true,
            session_ttl_secs: 12 * 3600,
            login_attempts_per_minute: 10,
            anonymous_failures_per_minute: 60,
        }
    }
}

/// Audit log retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub max_age_days: u32,
    pub max_rows: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            max_age_days: 90,
            max_rows: 200_000,
        }
    }
}

/// Limits of the TCP listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    pub max: usize,
    pub max_per_ip: usize,
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            max: 4096,
            max_per_ip: 128,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 120,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub public: bool,
    /// Seconds between metrics-history samples.
    pub interval_secs: u64,
    /// Whether the metrics history is kept at all.
    pub history: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            public: false,
            interval_secs: 10,
            history: true,
        }
    }
}

/// The host terminal (`/api/v1/system/terminals`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerminalConfig {
    pub shells: Vec<PathBuf>,
    pub idle_timeout_secs: u64,
    pub max_session_secs: u64,
    pub detach_grace_secs: u64,
    pub max_sessions: usize,
    pub replay_bytes: usize,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        TerminalConfig {
            shells: vec!["/bin/bash".into(), "/bin/sh".into()],
            idle_timeout_secs: 900,
            max_session_secs: 28_800,
            detach_grace_secs: 300,
            max_sessions: 8,
            replay_bytes: 65_536,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub replay_window: usize,
    /// End every event stream (SSE and WebSocket) after this many seconds; 0: never. Clients
    /// reconnect and resume with `Last-Event-ID`, so this only bounds a connection's life.
    pub max_stream_secs: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            replay_window: 10_000,
            max_stream_secs: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisksConfig {
    pub allow: Vec<String>,
}

/// Storage pools.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolsConfig {
    /// Pools are mounted at `mount_root/<name>` (absolute).
    pub mount_root: PathBuf,
}

impl Default for PoolsConfig {
    fn default() -> Self {
        PoolsConfig {
            mount_root: PathBuf::from("/mnt/pools"),
        }
    }
}

/// The Jidoteki-compatible admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Optional endpoints enabled; None = every implemented one.
    pub endpoints: Option<Vec<String>>,
    pub vendor_public_key: String,
    pub appliance_identity: Option<PathBuf>,
    pub vendor_recipient: String,
    pub update_timeout_secs: u64,
    pub reboot_command: Vec<String>,
    pub services: Vec<String>,
    pub log_paths: Vec<PathBuf>,
    pub storage_options: Vec<String>,
    /// Mount point of the persistent storage (absolute, no `..`).
    pub storage_mount_point: PathBuf,
    /// Prefix for generated system files; None = [`Config::system_root`] decides.
    pub system_root: Option<PathBuf>,
    /// Backups kept; the oldest beyond this are deleted after a new one.
    pub backup_keep: usize,
    /// Largest backup archive accepted from an upload (bytes on the wire).
    pub backup_upload_max_bytes: u64,
    /// Most bytes an archive may unpack to (decompressed tar and the files in it).
    pub backup_unpacked_max_bytes: u64,
    /// Largest update package accepted from an upload.
    pub update_upload_max_bytes: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            endpoints: None,
            vendor_public_key: String::new(),
            appliance_identity: None,
            vendor_recipient: String::new(),
            update_timeout_secs: 1800,
            reboot_command: Vec::new(),
            services: vec!["hostplane".into()],
            log_paths: Vec::new(),
            storage_options: ["local", "nfs", "aoe", "iscsi", "nbd"]
                .map(String::from)
                .to_vec(),
            storage_mount_point: PathBuf::from("/srv/hostplane"),
            system_root: None,
            backup_keep: 3,
            backup_upload_max_bytes: 1 << 30,
            backup_unpacked_max_bytes: 4 << 30,
            update_upload_max_bytes: 2 << 30,
        }
    }
}

/// The optional Jidoteki endpoints a config may name.
pub const ADMIN_OPTIONAL_ENDPOINTS: &[&str] = &[
    "settings", "certs", "license", "storage", "backup", "cluster",
];

/// systemd over D-Bus (the services area).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesConfig {
    /// D-Bus address of the system bus; empty = environment, else the standard socket.
    pub dbus_address: String,
    /// Changes to units allowed; None = not [`Config::sandbox`].
    pub change_units: Option<bool>,
    pub job_timeout_secs: u64,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        ServicesConfig {
            dbus_address: String::new(),
            change_units: None,
            job_timeout_secs: 120,
        }
    }
}

/// QEMU virtual machines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VmsConfig {
    pub images_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub allowed_paths: Vec<PathBuf>,
    pub max_disk_bytes: u64,
    pub max_running: u32,
    pub max_upload_bytes: u64,
    pub url_allow: Vec<String>,
    /// Where new VM disks go unless a request says: `images` or `<pool>/<dataset>`.
    pub default_storage: String,
}

impl Default for VmsConfig {
    fn default() -> Self {
        VmsConfig {
            images_dir: None,
            run_dir: None,
            allowed_paths: Vec::new(),
            max_disk_bytes: 4 << 40,
            max_running: 32,
            max_upload_bytes: 64 << 30,
            url_allow: Vec::new(),
            default_storage: "images".into(),
        }
    }
}

/// Provisioning (`/api/v1/provisioning`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvisioningConfig {
    /// Non-public addresses an artifact URL may reach.
    pub url_allow: Vec<String>,
    /// `data` or `<pool>/<dataset>`: where the content-addressed artifact files live.
    pub artifacts_storage: String,
}

impl Default for ProvisioningConfig {
    fn default() -> Self {
        ProvisioningConfig {
            url_allow: Vec::new(),
            artifacts_storage: "data".into(),
        }
    }
}

/// SMB shares and NFS exports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharesConfig {
    pub group: String,
    pub unix_accounts: bool,
    pub smb_config: PathBuf,
    pub smb_include: Option<PathBuf>,
    pub nfs_backend: NfsBackendConfig,
    pub nfs_exports: Option<PathBuf>,
    pub ganesha_pid_file: PathBuf,
    /// ganesha's log file, where it says a reread finished.
    pub ganesha_log: PathBuf,
}

impl Default for SharesConfig {
    fn default() -> Self {
        SharesConfig {
            group: "hostplane-share".into(),
            unix_accounts: true,
            smb_config: PathBuf::from("/etc/samba/smb.conf"),
            smb_include: None,
            nfs_backend: NfsBackendConfig::Auto,
            nfs_exports: None,
            ganesha_pid_file: PathBuf::from("/run/ganesha/ganesha.pid"),
            ganesha_log: PathBuf::from("/var/log/ganesha/ganesha.log"),
        }
    }
}

/// LXC (`[lxc]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LxcConfig {
    /// The lxcpath; None or empty = [`Config::lxc_path`]'s default.
    pub path: Option<PathBuf>,
}

/// Container engines (`[containers]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    /// None = the default sockets that exist ([`ContainersConfig::engines`]).
    pub engines: Option<Vec<EngineConfig>>,
    pub timeout_secs: u64,
    pub import_max_bytes: u64,
    /// Largest tar a `PUT /containers/{engine}/{name}/files` may upload.
    pub files_max_bytes: u64,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        ContainersConfig {
            engines: None,
            timeout_secs: 30,
            import_max_bytes: 4 << 30,
            files_max_bytes: 1 << 30,
        }
    }
}

/// The host network (`[network]`): where host settings and boot files go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// systemd-networkd files; None/empty = SYSTEM_ROOT/etc/systemd/network.
    pub networkd_dir: Option<PathBuf>,
    /// The resolver file hostplane writes; None/empty = SYSTEM_ROOT/etc/resolv.conf.
    pub resolv_conf: Option<PathBuf>,
    /// The host name file; None/empty = SYSTEM_ROOT/etc/hostname.
    pub hostname_file: Option<PathBuf>,
    /// Also set the kernel's host name; None = not [`Config::sandbox`].
    pub set_hostname: Option<bool>,
}

/// One `[[containers.engines]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub name: String,
    pub socket: String,
}

impl EngineConfig {
    /// The socket's path (`unix://` taken off).
    pub fn socket_path(&self) -> PathBuf {
        PathBuf::from(self.socket.strip_prefix("unix://").unwrap_or(&self.socket))
    }
}

impl ContainersConfig {
    /// The engines to use: the configured ones, or the default sockets that exist now (none
    /// in a sandbox: a test daemon never reaches the host's own engines unless told to).
    pub fn engines(&self, sandbox: bool) -> Vec<EngineConfig> {
        match &self.engines {
            Some(e) => e.clone(),
            None if sandbox => Vec::new(),
            None => hostplane_host::containers::DEFAULT_SOCKETS
                .iter()
                .filter(|(_, path)| Path::new(path).exists())
                .map(|(name, path)| EngineConfig {
                    name: name.to_string(),
                    socket: format!("unix://{path}"),
                })
                .collect(),
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(("containers.timeout_secs", "must be 1 .. 3600".into()));
        }
        if self.import_max_bytes < 1 << 20 {
            return Err((
                "containers.import_max_bytes",
                "must be at least 1048576".into(),
            ));
        }
        if self.files_max_bytes < 1 << 20 {
            return Err((
                "containers.files_max_bytes",
                "must be at least 1048576".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for e in self.engines.iter().flatten() {
            if let Err(err) = hostplane_host::command::validate_name("engine", &e.name) {
                return Err(("containers.engines", err.to_string()));
            }
            if !seen.insert(e.name.as_str()) {
                return Err((
                    "containers.engines",
                    format!("engine {:?} is named twice", e.name),
                ));
            }
            let path = e.socket_path();
            let plain = path.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            });
            if !path.is_absolute() || !plain || e.socket.contains('\0') {
                return Err((
                    "containers.engines",
                    format!(
                        "engine {:?}: socket must be unix:///absolute/path (no . or ..), not {:?}",
                        e.name, e.socket
                    ),
                ));
            }
            // sun_path holds 107 bytes and a NUL.
            if path.as_os_str().len() > 107 {
                return Err((
                    "containers.engines",
                    format!("engine {:?}: socket path longer than 107 bytes", e.name),
                ));
            }
        }
        Ok(())
    }
}

/// `[shares] nfs_backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NfsBackendConfig {
    Auto,
    Kernel,
    Ganesha,
    Off,
}

/// Longest `vms.run_dir`: its sockets `<run_dir>/<VM id>/serial.sock` must fit in 107 bytes.
pub const VMS_RUN_DIR_MAX: usize = 58;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
    Journald,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

const ROOT_DATA_DIR: &str = "/var/lib/hostplane";
const ROOT_SOCKET: &str = "/run/hostplane/hostplane.sock";

fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from(ROOT_DATA_DIR);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("hostplane");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/hostplane")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            sandbox: None,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8443))],
            http: false,
            socket: None,
            socket_enabled: true,
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            metrics: MetricsConfig::default(),
            terminal: TerminalConfig::default(),
            events: EventsConfig::default(),
            disks: DisksConfig::default(),
            pools: PoolsConfig::default(),
            admin: AdminConfig::default(),
            services: ServicesConfig::default(),
            vms: VmsConfig::default(),
            provisioning: ProvisioningConfig::default(),
            shares: SharesConfig::default(),
            containers: ContainersConfig::default(),
            lxc: LxcConfig::default(),
            network: NetworkConfig::default(),
            log: LogConfig::default(),
            audit: AuditConfig::default(),
            connections: ConnectionsConfig::default(),
            config_file: None,
        }
    }
}

/// `hostplane serve` flags. Each has an environment variable; both override the file.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_long_help = SAMPLE_CONFIG)]
pub struct ServeArgs {
    /// TOML configuration file (see below for its keys).
    #[arg(long, env = "HOSTPLANE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: store, TLS files, bootstrap token.
    #[arg(long, env = "HOSTPLANE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (repeat or comma-separate for several).
    #[arg(
        long,
        env = "HOSTPLANE_LISTEN",
        value_name = "ADDR:PORT",
        value_delimiter = ','
    )]
    pub listen: Vec<SocketAddr>,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long, env = "HOSTPLANE_HTTP")]
    pub http: bool,
    /// Unix socket path for local administration.
    #[arg(long, env = "HOSTPLANE_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Sandbox: never act on the host's own system (config key `sandbox`).
    #[arg(long, env = "HOSTPLANE_SANDBOX")]
    pub sandbox: bool,
    /// Do not open the unix socket.
    #[arg(long, env = "HOSTPLANE_NO_SOCKET")]
    pub no_socket: bool,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "HOSTPLANE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, env = "HOSTPLANE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve /metrics without authentication.
    #[arg(long, env = "HOSTPLANE_METRICS_PUBLIC")]
    pub metrics_public: bool,
    /// Device globs destructive disk operations may touch (comma-separated).
    #[arg(
        long,
        env = "HOSTPLANE_DISKS_ALLOW",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub disks_allow: Vec<String>,
    /// Log filter, e.g. `info` or `debug,hyper=info`.
    #[arg(long, env = "HOSTPLANE_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Log format.
    #[arg(long, env = "HOSTPLANE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Defaults, then the file, then env/flags (clap has already merged those two).
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let mut cfg = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        cfg.config_file = args.config.clone();
        if let Some(d) = &args.data_dir {
            cfg.data_dir = d.clone();
        }
        if !args.listen.is_empty() {
            cfg.listen = args.listen.clone();
        }
        cfg.http |= args.http;
        if let Some(s) = &args.socket {
            cfg.socket = Some(s.clone());
        }
        if args.sandbox {
            cfg.sandbox = Some(true);
        }
        if args.no_socket {
            cfg.socket_enabled = false;
        }
        if args.tls_cert.is_some() || args.tls_key.is_some() {
            cfg.tls.cert = args.tls_cert.clone();
            cfg.tls.key = args.tls_key.clone();
        }
        cfg.metrics.public |= args.metrics_public;
        if !args.disks_allow.is_empty() {
            cfg.disks.allow = args.disks_allow.clone();
        }
        if let Some(l) = &args.log {
            cfg.log.level = l.clone();
        }
        if let Some(f) = args.log_format {
            cfg.log.format = f;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_string(),
        };
        if self.listen.is_empty() {
            return Err(invalid("listen", "at least one address is needed"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(invalid("tls", "cert and key must be given together"));
        }
        if !(60..=31_536_000).contains(&self.auth.session_ttl_secs) {
            return Err(invalid("auth.session_ttl_secs", "must be 60 .. 31536000"));
        }
        if !(1..=10_000).contains(&self.auth.login_attempts_per_minute) {
            return Err(invalid(
                "auth.login_attempts_per_minute",
                "must be 1 .. 10000",
            ));
        }
        if !(1..=1_000_000).contains(&self.auth.anonymous_failures_per_minute) {
            return Err(invalid(
                "auth.anonymous_failures_per_minute",
                "must be 1 .. 1000000",
            ));
        }
        if !(1..=36_500).contains(&self.audit.max_age_days) {
            return Err(invalid("audit.max_age_days", "must be 1 .. 36500"));
        }
        if !(10..=100_000_000).contains(&self.audit.max_rows) {
            return Err(invalid("audit.max_rows", "must be 10 .. 100000000"));
        }
        if !(1..=1_000_000).contains(&self.connections.max) {
            return Err(invalid("connections.max", "must be 1 .. 1000000"));
        }
        if !(1..=self.connections.max).contains(&self.connections.max_per_ip) {
            return Err(invalid(
                "connections.max_per_ip",
                "must be 1 .. connections.max",
            ));
        }
        if !(1..=3600).contains(&self.connections.header_read_timeout_secs) {
            return Err(invalid(
                "connections.header_read_timeout_secs",
                "must be 1 .. 3600",
            ));
        }
        if self.connections.idle_timeout_secs > 86_400 {
            return Err(invalid(
                "connections.idle_timeout_secs",
                "must be 0 .. 86400",
            ));
        }
        if !(1..=300).contains(&self.metrics.interval_secs) {
            return Err(invalid("metrics.interval_secs", "must be 1 .. 300"));
        }
        if self.terminal.shells.iter().any(|s| !s.is_absolute()) {
            return Err(invalid("terminal.shells", "must be absolute paths"));
        }
        let t = &self.terminal;
        if t.idle_timeout_secs == 0 || t.max_session_secs == 0 || t.detach_grace_secs == 0 {
            return Err(invalid(
                "terminal",
                "idle_timeout_secs, max_session_secs and detach_grace_secs must be > 0",
            ));
        }
        if !(1024..=16 << 20).contains(&t.replay_bytes) {
            return Err(invalid("terminal.replay_bytes", "must be 1024 .. 16777216"));
        }
        if !(100..=1_000_000).contains(&self.events.replay_window) {
            return Err(invalid("events.replay_window", "must be 100 .. 1000000"));
        }
        if self.events.max_stream_secs > 86_400 {
            return Err(invalid(
                "events.max_stream_secs",
                "must be 0 (never) .. 86400",
            ));
        }
        for g in &self.disks.allow {
            if !g.starts_with("/dev/") {
                return Err(invalid(
                    "disks.allow",
                    &format!("{g:?}: a device glob must start with /dev/"),
                ));
            }
        }
        let root = &self.pools.mount_root;
        if !root.is_absolute()
            || root == Path::new("/")
            || root
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            || root.as_os_str().as_encoded_bytes().contains(&b':')
        {
            return Err(invalid(
                "pools.mount_root",
                "must be an absolute path other than /, without .. or ':'",
            ));
        }
        if hostplane_host::accounts::check_unix_name(&self.shares.group).is_err() {
            return Err(invalid(
                "shares.group",
                "must be 1 to 32 of a-z 0-9 _ -, starting with a letter or _",
            ));
        }
        for (key, p) in [
            ("shares.smb_config", Some(&self.shares.smb_config)),
            ("shares.smb_include", self.shares.smb_include.as_ref()),
            ("shares.nfs_exports", self.shares.nfs_exports.as_ref()),
            (
                "shares.ganesha_pid_file",
                Some(&self.shares.ganesha_pid_file),
            ),
            ("shares.ganesha_log", Some(&self.shares.ganesha_log)),
        ] {
            if let Some(p) = p
                && !p.as_os_str().is_empty()
                && (!p.is_absolute() || p.to_str().is_none_or(|s| s.contains(['\n', '"'])))
            {
                return Err(invalid(
                    key,
                    "must be an absolute path without quotes or line breaks",
                ));
            }
        }
        if let Some(list) = &self.admin.endpoints {
            for e in list {
                if !ADMIN_OPTIONAL_ENDPOINTS.contains(&e.as_str()) {
                    return Err(invalid(
                        "admin.endpoints",
                        &format!(
                            "{e:?} is not an optional endpoint ({})",
                            ADMIN_OPTIONAL_ENDPOINTS.join(", ")
                        ),
                    ));
                }
            }
        }
        if !self.admin.vendor_public_key.trim().is_empty()
            && let Err(e) = hostplane_package::keys::parse_public_key(&self.admin.vendor_public_key)
        {
            return Err(invalid("admin.vendor_public_key", &e.to_string()));
        }
        if !(1..=86_400).contains(&self.admin.update_timeout_secs) {
            return Err(invalid("admin.update_timeout_secs", "must be 1 .. 86400"));
        }
        for o in &self.admin.storage_options {
            if !["local", "nfs", "aoe", "iscsi", "nbd"].contains(&o.as_str()) {
                return Err(invalid(
                    "admin.storage_options",
                    &format!("{o:?}: options are local, nfs, aoe, iscsi, nbd"),
                ));
            }
        }
        let mp = &self.admin.storage_mount_point;
        if !mp.is_absolute()
            || mp == Path::new("/")
            || !mp.to_str().is_some_and(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b))
            })
            || mp
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(invalid(
                "admin.storage_mount_point",
                "must be an absolute path other than / of [A-Za-z0-9/_.-], without ..",
            ));
        }
        for (key, p) in [
            ("network.networkd_dir", &self.network.networkd_dir),
            ("network.resolv_conf", &self.network.resolv_conf),
            ("network.hostname_file", &self.network.hostname_file),
        ] {
            if let Some(p) = p
                && !p.as_os_str().is_empty()
                && !p.is_absolute()
            {
                return Err(invalid(key, "must be an absolute path"));
            }
        }
        if let Some(r) = &self.admin.system_root
            && !r.as_os_str().is_empty()
            && !r.is_absolute()
        {
            return Err(invalid("admin.system_root", "must be an absolute path"));
        }
        if !(1..=100).contains(&self.admin.backup_keep) {
            return Err(invalid("admin.backup_keep", "must be 1 .. 100"));
        }
        for (key, v) in [
            (
                "admin.backup_upload_max_bytes",
                self.admin.backup_upload_max_bytes,
            ),
            (
                "admin.backup_unpacked_max_bytes",
                self.admin.backup_unpacked_max_bytes,
            ),
            (
                "admin.update_upload_max_bytes",
                self.admin.update_upload_max_bytes,
            ),
        ] {
            if v < 1 << 20 {
                return Err(invalid(key, "must be at least 1048576"));
            }
        }
        if !(1..=3600).contains(&self.services.job_timeout_secs) {
            return Err(invalid("services.job_timeout_secs", "must be 1 .. 3600"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", &e.to_string()));
        }
        if let Some(s) = self.socket_path()
            && s.as_os_str().len() > 100
        {
            return Err(invalid("socket", "path longer than 100 bytes"));
        }
        // <run_dir>/<36-char VM id>/serial.sock must fit a unix socket address (108 bytes).
        if self.vms_run_dir().as_os_str().len() > VMS_RUN_DIR_MAX {
            return Err(invalid(
                "vms.run_dir",
                &format!(
                    "{} is longer than {VMS_RUN_DIR_MAX} bytes (unix socket paths); set a shorter vms.run_dir",
                    self.vms_run_dir().display()
                ),
            ));
        }
        if self.vms.max_disk_bytes < 1 << 20 {
            return Err(invalid("vms.max_disk_bytes", "must be at least 1048576"));
        }
        if self.vms.max_upload_bytes < 1 << 20 {
            return Err(invalid("vms.max_upload_bytes", "must be at least 1048576"));
        }
        for n in &self.vms.url_allow {
            if let Err(e) = crate::platform::fetch::parse_net(n) {
                return Err(invalid("vms.url_allow", &e));
            }
        }
        for n in &self.provisioning.url_allow {
            if let Err(e) = crate::platform::fetch::parse_net(n) {
                return Err(invalid("provisioning.url_allow", &e));
            }
        }
        let st = &self.provisioning.artifacts_storage;
        if st != "data" {
            let ok = st.split_once('/').is_some_and(|(p, d)| {
                hostplane_host::validate_name("pool", p).is_ok()
                    && hostplane_host::validate_name("dataset", d).is_ok()
            });
            if !ok {
                return Err(invalid(
                    "provisioning.artifacts_storage",
                    "must be \"data\" or \"<pool>/<dataset>\"",
                ));
            }
        }
        if let Err(e) = crate::areas::vms::storage::Storage::parse(&self.vms.default_storage) {
            return Err(invalid("vms.default_storage", &e));
        }
        if !(1..=1024).contains(&self.vms.max_running) {
            return Err(invalid("vms.max_running", "must be 1 .. 1024"));
        }
        if let Err((key, message)) = self.containers.validate() {
            return Err(ConfigError::Invalid { key, message });
        }
        if let Some(p) = &self.lxc.path
            && !p.as_os_str().is_empty()
            && !p.is_absolute()
        {
            return Err(invalid("lxc.path", "must be absolute"));
        }
        for p in &self.vms.allowed_paths {
            if !p.is_absolute() {
                return Err(invalid(
                    "vms.allowed_paths",
                    &format!("{}: must be absolute", p.display()),
                ));
            }
        }
        Ok(())
    }

    /// The lxcpath (`[lxc] path`): default `/var/lib/lxc` (LXC's own, so `lxc-ls` on the host
    /// sees the same containers), `DATA_DIR/lxc` in a sandbox (a test daemon never reaches the
    /// host's containers).
    pub fn lxc_path(&self) -> PathBuf {
        match &self.lxc.path {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ if self.sandbox() => self.data_dir.join("lxc"),
            _ => PathBuf::from("/var/lib/lxc"),
        }
    }

    /// Where VM disks live (`[vms] images_dir`, default DATA_DIR/vms).
    pub fn vms_images_dir(&self) -> PathBuf {
        match &self.vms.images_dir {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => self.data_dir.join("vms"),
        }
    }

    /// Where QEMU's sockets and pidfiles live (`[vms] run_dir`, default DATA_DIR/run/vms, or
    /// `/tmp/hostplane-vms-<hash of the data dir>` when that is too long for socket paths).
    pub fn vms_run_dir(&self) -> PathBuf {
        match &self.vms.run_dir {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => {
                let d = self.data_dir.join("run/vms");
                if d.as_os_str().len() <= VMS_RUN_DIR_MAX {
                    return d;
                }
                use sha2::Digest;
                let h = sha2::Sha256::digest(self.data_dir.as_os_str().as_encoded_bytes());
                std::env::temp_dir().join(format!("hostplane-vms-{}", &hex::encode(h)[..16]))
            }
        }
    }

    /// The unix socket path, or None when disabled.
    pub fn socket_path(&self) -> Option<PathBuf> {
        if !self.socket_enabled {
            return None;
        }
        if let Some(s) = &self.socket {
            return Some(s.clone());
        }
        if is_root() && self.data_dir == Path::new(ROOT_DATA_DIR) {
            Some(PathBuf::from(ROOT_SOCKET))
        } else {
            Some(self.data_dir.join("hostplane.sock"))
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("hostplane.sqlite")
    }

    pub fn bootstrap_token_path(&self) -> PathBuf {
        self.data_dir.join("bootstrap-token")
    }

    /// The `sandbox` setting: never act on the host's own system. Absent: on unless root (a
    /// daemon that is not root cannot manage the host, and must not ask the session's
    /// systemd to reboot it). Tests and fuzzing set it explicitly.
    pub fn sandbox(&self) -> bool {
        self.sandbox.unwrap_or(!is_root())
    }

    /// `[services] change_units`: may start/stop/... units. Absent: not in a sandbox.
    pub fn change_units(&self) -> bool {
        self.services.change_units.unwrap_or(!self.sandbox())
    }

    /// Where generated system files (mount units) go: `admin.system_root`, else DATA_DIR/root
    /// in a sandbox (a daemon started for tests or fuzzing never changes the host's boot
    /// configuration), else `/`.
    pub fn system_root(&self) -> PathBuf {
        match &self.admin.system_root {
            Some(r) if !r.as_os_str().is_empty() => r.clone(),
            _ if self.sandbox() => self.data_dir.join("root"),
            _ => PathBuf::from("/"),
        }
    }

    /// `[network] networkd_dir`, else SYSTEM_ROOT/etc/systemd/network.
    pub fn networkd_dir(&self) -> PathBuf {
        match &self.network.networkd_dir {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => self.system_root().join("etc/systemd/network"),
        }
    }

    /// `[network] resolv_conf`, else SYSTEM_ROOT/etc/resolv.conf.
    pub fn resolv_conf(&self) -> PathBuf {
        match &self.network.resolv_conf {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => self.system_root().join("etc/resolv.conf"),
        }
    }

    /// `[network] hostname_file`, else SYSTEM_ROOT/etc/hostname.
    pub fn hostname_file(&self) -> PathBuf {
        match &self.network.hostname_file {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => self.system_root().join("etc/hostname"),
        }
    }

    /// `[network] set_hostname`: may call sethostname. Absent: not in a sandbox (a test daemon
    /// shares the host's UTS namespace).
    pub fn set_hostname(&self) -> bool {
        self.network.set_hostname.unwrap_or(!self.sandbox())
    }

    /// The SMB include file hostplane owns (`[shares] smb_include`).
    pub fn smb_include(&self) -> PathBuf {
        match &self.shares.smb_include {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => self.system_root().join("etc/samba/hostplane-shares.conf"),
        }
    }

    /// The NFS exports file hostplane owns for a backend (`[shares] nfs_exports`).
    pub fn nfs_exports(&self, kernel: bool) -> PathBuf {
        match &self.shares.nfs_exports {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ if kernel => self.system_root().join("etc/exports.d/hostplane.exports"),
            _ => self
                .system_root()
                .join("etc/ganesha/hostplane-exports.conf"),
        }
    }
}

/// `/etc/hostplane/config.toml` as the Debian package ships it (`dist/etc/hostplane/config.toml`,
/// kept equal by a test): [`SAMPLE_CONFIG`] with every key commented out, so the file means the
/// defaults and a key is changed by uncommenting it under its `[section]`.
pub fn default_config_file() -> String {
    let mut out = String::from(
        "# hostplane's settings (TOML). The hostplane service reads this file through\n\
         # HOSTPLANE_CONFIG in /etc/default/hostplane; after a change: systemctl restart hostplane.\n\
         # Every key is optional: the commented lines show the defaults. Uncomment a key under its\n\
         # [section] to change it. `hostplane serve --help` (or man hostplane-serve) documents the\n\
         # flags and HOSTPLANE_* environment variables, which win over this file.\n",
    );
    let body = SAMPLE_CONFIG
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("ENVIRONMENT"));
    for line in body {
        let trimmed = line.strip_prefix("  ").unwrap_or(line);
        let text = if trimmed.is_empty() {
            String::new()
        } else if trimmed.starts_with(' ') {
            // A continued comment, aligned under the `#` of the key line above it.
            line.to_string()
        } else if trimmed.starts_with('[') || trimmed.starts_with('#') {
            trimmed.to_string()
        } else {
            format!("# {trimmed}")
        };
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help text documents every key: extract the TOML from it and parse it.
    #[test]
    fn sample_config_in_help_parses_and_matches_defaults() {
        let toml: String = SAMPLE_CONFIG
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("ENVIRONMENT"))
            .map(|l| l.split(" #").next().unwrap_or("").trim().to_string() + "\n")
            .collect();
        let cfg = Config::from_toml(&toml).expect("sample parses");
        let d = Config::default();
        assert_eq!(cfg.listen, d.listen);
        assert_eq!(cfg.auth.session_ttl_secs, d.auth.session_ttl_secs);
        assert_eq!(cfg.events.replay_window, d.events.replay_window);
        assert_eq!(cfg.pools.mount_root, d.pools.mount_root);
        assert_eq!(cfg.shares.group, d.shares.group);
        assert_eq!(cfg.shares.ganesha_pid_file, d.shares.ganesha_pid_file);
        assert_eq!(cfg.shares.ganesha_log, d.shares.ganesha_log);
        assert_eq!(
            cfg.auth.anonymous_failures_per_minute,
            d.auth.anonymous_failures_per_minute
        );
        assert_eq!(cfg.audit.max_age_days, d.audit.max_age_days);
        assert_eq!(cfg.audit.max_rows, d.audit.max_rows);
        assert_eq!(cfg.connections.max, d.connections.max);
        assert_eq!(cfg.connections.max_per_ip, d.connections.max_per_ip);
        assert_eq!(
            cfg.connections.header_read_timeout_secs,
            d.connections.header_read_timeout_secs
        );
        assert_eq!(
            cfg.connections.idle_timeout_secs,
            d.connections.idle_timeout_secs
        );
        assert_eq!(cfg.vms.max_upload_bytes, d.vms.max_upload_bytes);
        assert_eq!(cfg.vms.url_allow, d.vms.url_allow);
        assert_eq!(
            cfg.admin.backup_upload_max_bytes,
            d.admin.backup_upload_max_bytes
        );
        assert_eq!(
            cfg.admin.backup_unpacked_max_bytes,
            d.admin.backup_unpacked_max_bytes
        );
        assert_eq!(
            cfg.admin.update_upload_max_bytes,
            d.admin.update_upload_max_bytes
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = Config::from_toml("listne = []").unwrap_err();
        assert!(e.contains("listne"), "{e}");
    }

    #[test]
    fn system_root_follows_the_sandbox_setting() {
        let mut c = Config {
            data_dir: PathBuf::from("/tmp/hp-test"),
            sandbox: Some(true),
            ..Default::default()
        };
        assert_eq!(c.system_root(), PathBuf::from("/tmp/hp-test/root"));
        assert!(!c.change_units());
        c.services.change_units = Some(true);
        assert!(c.change_units());
        // A custom data dir is not a sandbox by itself.
        c.sandbox = Some(false);
        assert_eq!(c.system_root(), PathBuf::from("/"));
        c.services.change_units = None;
        assert!(c.change_units());
        c.sandbox = Some(true);
        c.admin.system_root = Some(PathBuf::from("/"));
        assert_eq!(c.system_root(), PathBuf::from("/"));
        c.admin.storage_mount_point = PathBuf::from("relative");
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("admin.storage_mount_point")
        );
    }

    #[test]
    fn invalid_values_are_named() {
        let mut c = Config::default();
        c.events.replay_window = 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("events.replay_window"), "{e}");
        let mut c = Config::default();
        c.disks.allow = vec!["sda".into()];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("disks.allow")
        );
    }

    /// The conffile of the Debian package is the sample, commented out, and means the defaults.
    /// `HOSTPLANE_UPDATE_DOCS=1 cargo test -p hostplane-server shipped_config` rewrites it.
    #[test]
    fn shipped_config_is_the_commented_sample() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/etc/hostplane/config.toml");
        let text = default_config_file();
        if std::env::var_os("HOSTPLANE_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "dist/etc/hostplane/config.toml is out of date: HOSTPLANE_UPDATE_DOCS=1 cargo test -p hostplane-server shipped_config"
        );
        let cfg = Config::from_toml(&text).expect("the shipped config parses");
        cfg.validate().expect("the shipped config is valid");
        assert_eq!(format!("{cfg:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn container_engines_are_validated() {
        let ok = Config::from_toml(
            "[[containers.engines]]\nname = \"d1\"\nsocket = \"unix:///run/d1.sock\"\n\
             [[containers.engines]]\nname = \"p\"\nsocket = \"/run/p.sock\"\n",
        )
        .unwrap();
        ok.validate().unwrap();
        let e = ok.containers.engines(true);
        assert_eq!(e[1].socket_path(), PathBuf::from("/run/p.sock"));
        assert_eq!(e[0].socket_path(), PathBuf::from("/run/d1.sock"));
        for (name, socket) in [
            ("-x", "/run/a.sock"),
            ("a..b", "/run/a.sock"),
            ("a", "relative.sock"),
            ("a", "unix:///run/../etc/x.sock"),
            ("a", "tcp://127.0.0.1:2375"),
        ] {
            let mut c = Config::default();
            c.containers.engines = Some(vec![EngineConfig {
                name: name.into(),
                socket: socket.into(),
            }]);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("containers.engines"), "{name} {socket}: {err}");
        }
        let mut c = Config::default();
        let one = EngineConfig {
            name: "a".into(),
            socket: "/run/a.sock".into(),
        };
        c.containers.engines = Some(vec![one.clone(), one]);
        assert!(c.validate().is_err());
        c.containers.engines = Some(vec![]);
        assert!(c.containers.engines(false).is_empty());
        c.containers.engines = None;
        assert!(c.containers.engines(true).is_empty());
    }
}
