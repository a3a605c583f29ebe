//! Compose stacks (`/api/v1/stacks`): a compose file (and an optional `.env`) per stack, run on
//! one container engine by Debian's `docker-compose`. See docs/stacks.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::containers::Container;

/// Stack names: what `docker-compose -p` keeps unchanged as the project name (it lowercases and
/// drops other characters), so the `com.docker.compose.project` label is the name itself.
pub const STACK_NAME_PATTERN: &str = r"^[a-z0-9][a-z0-9_-]{0,62}$";

/// A stack as listed: its definition and the containers its project label finds now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stack {
    pub href: String,
    pub name: String,
    /// The engine it runs on (`[[containers.engines]]`).
    pub engine: String,
    /// The services of the compose file, in file order.
    pub services: Vec<String>,
    /// Whether a `.env` file is stored with it.
    pub has_env: bool,
    /// `running` (every service has a running container), `partial`, `stopped` (containers,
    /// none running), `down` (no container), `unknown` (the engine did not answer).
    pub status: String,
    /// Its containers (label `com.docker.compose.project=<name>`); empty when the engine is down.
    pub containers: Vec<Container>,
    /// Why `status` is `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /stacks`: a new stack (stored, not started).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StackCreate {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$", max_length = 63)]
    pub name: String,
    /// A configured engine's name.
    #[schema(pattern = "^[A-Za-z0-9](\\.?[A-Za-z0-9_-])*\\.?$", max_length = 64)]
    pub engine: String,
    /// The compose file (YAML, at most 256 KiB).
    #[schema(max_length = 262144)]
    pub compose: String,
    /// The `.env` file (`KEY=value` lines, at most 64 KiB).
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub env: Option<String>,
}

/// `PUT /stacks/{name}/files`: replaces the compose file and the `.env` (absent = none).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StackFiles {
    #[schema(max_length = 262144)]
    pub compose: String,
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub env: Option<String>,
}

/// Result of the jobs `stacks.up`, `stacks.down`, `stacks.restart`, `stacks.pull`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StackActionResult {
    pub stack: String,
    /// `up`, `down`, `restart` or `pull`.
    pub action: String,
    /// The stack's containers afterwards (`engine/name`).
    pub containers: Vec<String>,
}
