//! One module per command group; each takes the shared `Ctx` and returns the exit code.

pub mod api;
pub mod auth;
pub mod common;
pub mod containers;
pub mod disks;
pub mod jobs;
pub mod lxc;
pub mod metrics;
pub mod net;
pub mod net_host;
pub mod pools;
pub mod provision;
pub mod registries;
pub mod services;
pub mod shares;
pub mod stacks;
pub mod system;
pub mod terminal;
pub mod tokens;
pub mod users;
pub mod vms;
pub mod ws_terminal;

use std::path::PathBuf;

use hostplane_types::auth::Role;

use crate::client::{Client, Endpoint};
use crate::config::SavedLogin;

/// What every command gets.
pub struct Ctx {
    pub client: Client,
    pub endpoint: Endpoint,
    pub json: bool,
    pub config_path: Option<PathBuf>,
    pub saved: Option<SavedLogin>,
}

/// The API path for `rest` (which starts with `/`).
pub fn api(rest: &str) -> String {
    format!("{}{rest}", hostplane_types::API_BASE)
}

pub fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("{s:?}: roles are share, viewer, operator and admin"))
}
