//! The audit log: every mutating request, who made it and how it ended.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// Remote address, or `unix` for the socket.
    pub remote: String,
    pub href: String,
}
