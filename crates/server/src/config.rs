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

  [tls]
  cert = ""                            # PEM certificate chain; empty = DATA_DIR/tls/cert.pem,
  key = ""                             #   self-signed at first start when both are empty

  [auth]
  query_token = true                   # accept ?token= (Jidoteki compatible; the token shows in logs)
  query_hash = true                    # accept ?hash= HMAC (Jidoteki compatible; a hash is replayable)
  session_ttl_secs = 43200             # lifetime of a login session (60 .. 31536000)
  login_attempts_per_minute = 10       # per client address; more get 429 with Retry-After (1 .. 10000)

  [metrics]
  public = false                       # serve /metrics without authentication

  [events]
  replay_window = 10000                # events kept for Last-Event-ID replay (100 .. 1000000)

  [disks]
  allow = []                           # globs of devices destructive operations may touch, e.g. ["/dev/loop*"]

  [admin]                              # the Jidoteki-compatible admin API (/api/v1/admin)
  # endpoints = ["certs", "license", "storage", "backup"]  # optional endpoints; absent = all implemented
  vendor_public_key = ""               # vendor's ed25519 public key (base64): verifies update packages and licences
  appliance_identity = ""              # age identity file that decrypts update packages; empty = DATA_DIR/keys/appliance.key
  vendor_recipient = ""                # age recipient (age1...) debug bundles are encrypted to
  update_timeout_secs = 1800           # an update script running longer is killed (E1000)
  reboot_command = []                  # argv of the reboot action; empty = systemd over D-Bus, else `reboot`
  services = ["hostplane"]             # units GET /admin/services reports
  log_paths = []                       # extra log files and dirs logs.tar.gz includes
  storage_options = ["local", "nfs", "aoe", "iscsi", "nbd"]  # persistent storage types offered

  [log]
  level = "info"                       # tracing filter (RUST_LOG syntax), e.g. "info,hostplane_server=debug"
  format = "text"                      # text | json | journald

ENVIRONMENT: every flag has a HOSTPLANE_* variable (shown with each flag); flags win over the
environment, which wins over the file."#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub http: bool,
    pub socket: Option<PathBuf>,
    pub socket_enabled: bool,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub metrics: MetricsConfig,
    pub events: EventsConfig,
    pub disks: DisksConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
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
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            query_token: true,
            query_hash: true,
            session_ttl_secs: 12 * 3600,
            login_attempts_per_minute: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub public: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub replay_window: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            replay_window: 10_000,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisksConfig {
    pub allow: Vec<String>,
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
        }
    }
}

/// The optional Jidoteki endpoints a config may name.
pub const ADMIN_OPTIONAL_ENDPOINTS: &[&str] = &[
    "settings", "certs", "license", "storage", "backup", "cluster",
];

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
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8443))],
            http: false,
            socket: None,
            socket_enabled: true,
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            metrics: MetricsConfig::default(),
            events: EventsConfig::default(),
            disks: DisksConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
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
        if !(100..=1_000_000).contains(&self.events.replay_window) {
            return Err(invalid("events.replay_window", "must be 100 .. 1000000"));
        }
        for g in &self.disks.allow {
            if !g.starts_with("/dev/") {
                return Err(invalid(
                    "disks.allow",
                    &format!("{g:?}: a device glob must start with /dev/"),
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
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", &e.to_string()));
        }
        if let Some(s) = self.socket_path()
            && s.as_os_str().len() > 100
        {
            return Err(invalid("socket", "path longer than 100 bytes"));
        }
        Ok(())
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
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = Config::from_toml("listne = []").unwrap_err();
        assert!(e.contains("listne"), "{e}");
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
}
