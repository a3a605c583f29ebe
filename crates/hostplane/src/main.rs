//! `hostplane`: the daemon (`hostplane serve`), the OpenAPI printer, and the CLI client.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    #[command(flatten)]
    Client(hostplane_cli::Command),
    /// Vendor tooling (no daemon needed): keys, update packages, licences.
    #[command(flatten)]
    Vendor(hostplane_package::cli::VendorCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
