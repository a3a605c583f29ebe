//! RFC 9457 problem details, the body of every error response.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error response (`application/problem+json`). Switch on `code`; it is stable.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem type (derived from `code`).
    pub r#type: String,
    /// Short human summary (the HTTP reason phrase).
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Human explanation of this occurrence.
    pub detail: String,
    /// Stable machine-readable error code, e.g. `unauthenticated`, `invalid_filter`, `lock_held`.
    pub code: String,
    /// Which inputs were invalid, when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// What uses the pool or dataset (409 `in_use`): delete or move these first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UsedBy>,
}

/// An object of another area that lives on a pool's dataset (a share, a VM's disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsedBy {
    /// The using area's kind of object: `share`, `vm` (`container` and `lxc` later).
    pub kind: String,
    pub name: String,
    pub href: String,
    /// The pool's dataset it uses.
    pub dataset: String,
    /// It holds files open (a running VM): it blocks renames and rollbacks too, not only
    /// what makes the dataset go away.
    pub busy: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The offending input: a body field, a query parameter or a path segment.
    pub field: String,
    pub message: String,
}
