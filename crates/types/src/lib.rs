//! hostplane API types: one request/response type per endpoint, shared by the server (which
//! derives the OpenAPI document from them), the CLI and the tests. No logic lives here.

pub mod audit;
pub mod auth;
pub mod events;
pub mod jobs;
pub mod problem;
pub mod system;

/// Base path of the native API.
pub const API_BASE: &str = "/api/v1";
