//! hostplane API types: one request/response type per endpoint, shared by the server (which
//! derives the OpenAPI document from them), the CLI and the tests. No logic lives here.

pub mod audit;
pub mod auth;
pub mod disks;
pub mod events;
pub mod health;
pub mod jobs;
pub mod pools;
pub mod problem;
pub mod services;
pub mod system;
pub mod vms;

/// Base path of the native API.
pub const API_BASE: &str = "/api/v1";
