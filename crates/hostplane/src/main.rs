//! `hostplane`: the daemon (`hostplane serve`), the OpenAPI printer, and the CLI client.
//! `completions` and `man` print what the Debian package ships (scripts/build-deb), generated
//! from this command tree, so every subcommand is covered whoever adds it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use hostplane_server::config::{Config, ServeArgs};

#[derive(Debug, Parser)]
#[command(
    name = "hostplane",
    version,
    about = "Turns a Linux server into an API-managed appliance: the daemon and its CLI client",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    connect: hostplane_cli::ConnectOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Print the OpenAPI 3.1 document.
    Openapi,
    /// Print a shell completion script (bash: /usr/share/bash-completion/completions/hostplane).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (section 1), one per subcommand, into a directory.
    Man {
        /// Directory to write hostplane.1, hostplane-serve.1, ... into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    #[command(flatten)]
    Client(hostplane_cli::Command),
    /// Vendor tooling (no daemon needed): keys, update packages, licences.
    #[command(flatten)]
    Vendor(hostplane_package::cli::VendorCommand),
}

/// Writes one roff page per (visible) command of the tree: `hostplane-jobs-list.1`.
fn write_man_pages(out: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    clap_mangen::generate_to(Cli::command(), out)
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    if let Some(argv0) = argv.next() {
        // QEMU's bridge helper for VM NICs in bridge mode.
        if hostplane_server::is_bridge_helper(&argv0) {
            let code = hostplane_server::bridge_helper_main(argv);
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        let event = argv.next();
        let event = event.as_deref().and_then(|e| e.to_str());
        if let Some(code) = hostplane_server::dhcp_client_hook(&argv0, event) {
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        // Before the runtime's threads exist (platform::memory).
        hostplane_server::platform::memory::tune_allocator();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hostplane: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => {
            let cfg = match Config::load(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("hostplane: {e}");
                    return ExitCode::from(2);
                }
            };
            hostplane_server::serve::init_logging(&cfg);
            match runtime.block_on(hostplane_server::serve::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hostplane: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Openapi => {
            println!("{}", hostplane_server::openapi_json());
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            // Buffered: clap_complete panics on a write error (`| head` closes the pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hostplane", &mut script);
            match std::io::stdout().write_all(&script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hostplane: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Man { out } => match write_man_pages(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!(
                    "hostplane: cannot write man pages to {}: {e}",
                    out.display()
                );
                ExitCode::FAILURE
            }
        },
        Command::Vendor(cmd) => ExitCode::from(hostplane_package::cli::run(cmd)),
        Command::Client(cmd) => match runtime.block_on(hostplane_cli::run(cli.connect, cmd)) {
            Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
            Err(e) => {
                eprintln!("hostplane: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
