//! hostplane API types: one request/response type per endpoint, shared by the server (which
//! derives the OpenAPI document from them), the CLI and the tests. No logic lives here.

pub mod audit;
pub mod auth;
pub mod container_io;
pub mod containers;
pub mod containers_ops;
pub mod disks;
pub mod events;
pub mod health;
pub mod jobs;
pub mod lxc;
pub mod metrics;
pub mod network;
pub mod network_host;
pub mod pools;
pub mod problem;
pub mod provisioning;
pub mod services;
pub mod shares;
pub mod stacks;
pub mod system;
pub mod terminal;
pub mod vms;
pub mod workloads;

/// Base path of the native API.
pub const API_BASE: &str = "/api/v1";

/// `hostplane_host::command::validate_name` (pool, dataset, snapshot names, …) as a JSON-Schema
/// pattern: a letter or digit, then A-Z a-z 0-9 `_` `.` `-`, never `..`; at most
/// [`NAME_MAX_LEN`] bytes. `#[schema(pattern)]` needs a literal, so the schemas copy this text;
/// a server test checks that the copies in the OpenAPI document equal it.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$";
/// Longest name [`NAME_PATTERN`] allows.
pub const NAME_MAX_LEN: usize = 64;
/// `hostplane_host::systemd::unit_name` as a pattern: A-Z a-z 0-9 `:` `_` `.` `\` `@` `-`, not
/// starting with `-` or `.`, never `..`; at most [`UNIT_NAME_MAX_LEN`] bytes.
pub const UNIT_NAME_PATTERN: &str = r"^[A-Za-z0-9:_\\@](\.?[A-Za-z0-9:_\\@-])*\.?$";
/// Longest unit name [`UNIT_NAME_PATTERN`] allows.
pub const UNIT_NAME_MAX_LEN: usize = 240;
