//! The hostplane command-line client: a client of the REST API and nothing more.
//!
//! Flow of one invocation ([`run`]):
//! 1. The saved login (`~/.config/hostplane/cli.toml`, see `config`) is read.
//! 2. [`ConnectOpts`] (flags, then `HOSTPLANE_*` environment) and the saved login resolve to an
//!    endpoint (`client::resolve`): `--url`, else the saved login's URL, else a usable local
//!    socket (`/run/hostplane/hostplane.sock`, then `$XDG_DATA_HOME/hostplane/hostplane.sock`),
//!    else `https://127.0.0.1:8443`. The saved token, `insecure` and `ca` apply only when the
//!    URL is the saved one, so a token is never sent to another server.
//! 3. `client::Client` speaks HTTP over reqwest (TLS with rustls/ring) or over the unix socket
//!    with a bare hyper HTTP/1 connection (where root is authenticated by peer credentials).
//! 4. The command (`commands::*`) calls the API and prints a table, or the API's JSON as is with
//!    `--json`. A non-2xx answer becomes `client::ApiFailure`, printed as
//!    `error: <detail> (<code>, HTTP <status>)`; every error exits 1, `jobs wait` timing out 2.
//!    Commands that start a job share `commands::common` (`--wait` follows the job with a
//!    progress bar; its outcome is the exit code), as do list tables and `--yes` prompts.

mod client;
mod commands;
mod config;
mod output;
mod prompt;

use std::path::PathBuf;

use clap::builder::FalseyValueParser;
use clap::{ArgAction, Args, Subcommand};

use commands::Ctx;

/// How to reach the daemon; global options of `hostplane`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct ConnectOpts {
    /// Daemon address: https://HOST:PORT, http://HOST:PORT or unix:///PATH [default: the saved
    /// login's, else the local socket, else https://127.0.0.1:8443]
    #[arg(long, global = true, env = "HOSTPLANE_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token [default: the saved login's; none on the unix socket]
    #[arg(long, global = true, env = "HOSTPLANE_TOKEN", value_name = "TOKEN")]
    #[arg(hide_env_values = true)]
    pub token: Option<String>,
    /// Accept any TLS certificate (the daemon's default one is self-signed)
    #[arg(long, global = true, env = "HOSTPLANE_INSECURE", action = ArgAction::SetTrue)]
    #[arg(value_parser = FalseyValueParser::new())]
    pub insecure: bool,
    /// Trust this PEM certificate, e.g. DATA_DIR/tls/cert.pem
    #[arg(long, global = true, env = "HOSTPLANE_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Print the API's JSON instead of tables
    #[arg(long, global = true, env = "HOSTPLANE_JSON", action = ArgAction::SetTrue)]
    #[arg(value_parser = FalseyValueParser::new())]
    pub json: bool,
}

/// The client commands, beside `serve` and `openapi`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in with a password; later commands use the saved session.
    Login(commands::auth::LoginArgs),
    /// End the saved session and forget its token.
    Logout,
    /// Show who the daemon takes you for.
    Whoami,
    /// API tokens: create, list, revoke.
    #[command(subcommand)]
    Token(commands::tokens::TokenCmd),
    /// User accounts (admins).
    #[command(subcommand)]
    User(commands::users::UserCmd),
    /// Background jobs: list, show, log, wait, cancel.
    #[command(subcommand)]
    Jobs(commands::jobs::JobsCmd),
    /// Run the daemon's self-test (a job).
    Selftest(commands::jobs::SelftestArgs),
    /// Call any API path: `hostplane api GET /api/v1/auth/whoami`.
    Api(commands::api::ApiArgs),
    /// Disks: list, show, SMART, wipe, format, standby, wake.
    #[command(subcommand, visible_alias = "disk")]
    Disks(commands::disks::DisksCmd),
    /// Storage pools: list, show, create, scrub, mount, unmount, destroy.
    #[command(subcommand, visible_alias = "pool")]
    Pools(commands::pools::PoolsCmd),
    /// Datasets of a pool (POOL/DATASET): list, show, create, set, delete.
    #[command(subcommand, visible_alias = "dataset")]
    Datasets(commands::pools::DatasetsCmd),
    /// Dataset snapshots (POOL/DATASET@NAME): list, show, create, delete, rollback.
    #[command(subcommand, visible_alias = "snapshot")]
    Snapshots(commands::pools::SnapshotsCmd),
    /// SMB and NFS shares: `shares smb|nfs list|show|create|delete`.
    #[command(subcommand, visible_alias = "share")]
    Shares(commands::shares::SharesCmd),
    /// Virtual machines: list, show, start, stop, console, snapshot, export, delete.
    #[command(subcommand, visible_alias = "vm")]
    Vms(commands::vms::VmsCmd),
    /// LXC containers: list, show, create, start, stop, kill, freeze, unfreeze, snapshot,
    /// restore, clone, backup, restore-backup, rm, console.
    #[command(subcommand)]
    Lxc(commands::lxc::LxcCmd),
    /// Containers on dockerd and podman (ENGINE/NAME): list, show, create, start, stop,
    /// restart, kill, rm, logs, exec.
    #[command(subcommand, visible_alias = "container")]
    Containers(commands::containers::ContainersCmd),
    /// Container images of an engine: list, import, rm.
    #[command(subcommand, visible_alias = "image")]
    Images(commands::containers::ImagesCmd),
    /// systemd services: list, show, start, stop, restart, enable, disable.
    #[command(subcommand, visible_alias = "service")]
    Services(commands::services::ServicesCmd),
    /// Compose stacks: list, show, create, files, set, up, down, restart, pull, logs, rm.
    #[command(subcommand, visible_alias = "stack")]
    Stacks(commands::stacks::StacksCmd),
    /// Provisioning over a VM's serial console: recipes, profiles, secrets, artifacts, runs;
    /// `provision run VM --profile P`, `provision retry RUN`.
    #[command(subcommand)]
    Provision(commands::provision::ProvisionCmd),
    /// Template registries (Vagrant boxes): list, add, show, browse, pull, rm.
    #[command(subcommand, visible_alias = "registry")]
    Registries(commands::registries::RegistriesCmd),
    /// Containers, LXC containers and VMs together.
    Workloads(commands::common::ListArgs),
    /// The start order across containers, LXC and VMs: show, set.
    #[command(subcommand)]
    Autostart(commands::stacks::AutostartCmd),
    /// Host network: `net interfaces|bridges|addresses|routes|nat|forwards|dhcp ...`.
    #[command(subcommand, visible_alias = "network")]
    Net(commands::net::NetCmd),
    /// Software updates: status, version, keys, apply.
    #[command(subcommand)]
    Update(commands::system::UpdateCmd),
    /// Backups of the appliance state: list, show, create, download, upload, restore, delete.
    #[command(subcommand, visible_alias = "backups")]
    Backup(commands::system::BackupCmd),
    /// The HTTPS certificate: show, set.
    #[command(subcommand, visible_alias = "cert")]
    Certs(commands::system::CertsCmd),
    /// An interactive shell on the host (admin; Ctrl-] leaves).
    Terminal(commands::terminal::TerminalArgs),
    /// Metrics history: `metrics show cpu --since 1h`, `metrics series`.
    #[command(subcommand)]
    Metrics(commands::metrics::MetricsCmd),
}

/// Runs one client command; returns the exit code.
pub async fn run(opts: ConnectOpts, cmd: Command) -> anyhow::Result<i32> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run_inner(opts, cmd).await {
        Ok(code) => Ok(code),
        Err(e) if is_broken_pipe(&e) => Ok(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(1)
        }
    }
}

async fn run_inner(opts: ConnectOpts, cmd: Command) -> anyhow::Result<i32> {
    let config_path = config::default_path();
    let saved = match &config_path {
        Some(p) => config::load(p).unwrap_or_else(|e| {
            eprintln!("warning: ignoring the saved login: {e:#}");
            None
        }),
        None => None,
    };
    let endpoint = client::resolve(
        opts.url.as_deref(),
        opts.token.as_deref(),
        opts.insecure,
        opts.ca.as_deref(),
        saved.as_ref(),
        client::socket_usable,
    )?;
    let ctx = Ctx {
        client: client::Client::new(&endpoint)?,
        endpoint,
        json: opts.json,
        config_path,
        saved,
    };
    match cmd {
        Command::Login(a) => commands::auth::login(&ctx, a).await,
        Command::Logout => commands::auth::logout(&ctx).await,
        Command::Whoami => commands::auth::whoami(&ctx).await,
        Command::Token(c) => commands::tokens::run(&ctx, c).await,
        Command::User(c) => commands::users::run(&ctx, c).await,
        Command::Jobs(c) => commands::jobs::run(&ctx, c).await,
        Command::Selftest(a) => commands::jobs::selftest(&ctx, a).await,
        Command::Api(a) => commands::api::run(&ctx, a).await,
        Command::Disks(c) => commands::disks::run(&ctx, c).await,
        Command::Pools(c) => commands::pools::run(&ctx, c).await,
        Command::Datasets(c) => commands::pools::datasets(&ctx, c).await,
        Command::Snapshots(c) => commands::pools::snapshots(&ctx, c).await,
        Command::Shares(c) => commands::shares::run(&ctx, c).await,
        Command::Vms(c) => commands::vms::run(&ctx, c).await,
        Command::Lxc(c) => commands::lxc::run(&ctx, c).await,
        Command::Containers(c) => commands::containers::run(&ctx, c).await,
        Command::Images(c) => commands::containers::images(&ctx, c).await,
        Command::Services(c) => commands::services::run(&ctx, c).await,
        Command::Stacks(c) => commands::stacks::run(&ctx, c).await,
        Command::Provision(c) => commands::provision::run(&ctx, c).await,
        Command::Registries(c) => commands::registries::run(&ctx, c).await,
        Command::Workloads(l) => commands::stacks::workloads(&ctx, l).await,
        Command::Autostart(c) => commands::stacks::autostart(&ctx, c).await,
        Command::Net(c) => commands::net::run(&ctx, c).await,
        Command::Update(c) => commands::system::update(&ctx, c).await,
        Command::Backup(c) => commands::system::backup(&ctx, c).await,
        Command::Certs(c) => commands::system::certs(&ctx, c).await,
        Command::Terminal(a) => commands::terminal::run(&ctx, a).await,
        Command::Metrics(c) => commands::metrics::run(&ctx, c).await,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        connect: super::ConnectOpts,
        #[command(subcommand)]
        command: super::Command,
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = Cli::try_parse_from([
            "hostplane",
            "jobs",
            "wait",
            "J1",
            "--timeout",
            "5",
            "--json",
            "--url",
            "unix:///tmp/s.sock",
        ])
        .unwrap();
        assert!(cli.connect.json);
        assert_eq!(cli.connect.url.as_deref(), Some("unix:///tmp/s.sock"));
        assert!(
            Cli::try_parse_from(["hostplane", "user", "create", "bob", "--role", "boss"]).is_err()
        );
        assert!(Cli::try_parse_from(["hostplane", "selftest", "--timeout", "3"]).is_err());
    }
}
