//! The audit log: every mutating request, who made it and how it ended.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub time: String,
    /// The user (or `anonymous` for rejected requests without credentials).
    pub actor: String,
    /// How the actor authenticated, when it did.
    pub auth_method: Option<String>,
    pub method: String,
    /// The request path (without the query string: it may carry credentials).
    pub path: String,
    /// The resource acted on (the path, or the created resource's `Location`).
    pub target: String,
    pub status: u16,
    /// `success` (2xx/3xx) or `failure`.
    pub outcome: String,
    /// Remote address, or `unix:uid=…,pid=…` for the socket.
    pub remote: String,
    /// How many requests this entry stands for: 1, or more for refused anonymous requests,
    /// which are aggregated per remote address and status over 60 s (`method`, `path` and
    /// `target` are the first request's; text fields are cut at 512 bytes, see docs/limits.md).
    #[serde(default = "one")]
    pub count: u64,
    /// When the last request counted in `count` came (aggregated entries only).
    #[serde(default)]
    pub last_time: Option<String>,
    pub href: String,
}
