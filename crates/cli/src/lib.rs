//! hostplane command-line client (placeholder; being written).
use clap::{Args, Subcommand};

#[derive(Debug, Clone, Args)]
pub struct ConnectOpts {}

#[derive(Debug, Subcommand)]
pub enum Command {}

pub async fn run(_opts: ConnectOpts, _cmd: Command) -> anyhow::Result<i32> {
    Ok(0)
}
