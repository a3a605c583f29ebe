//! The event stream (`GET /api/v1/events`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One event. Over SSE, `seq` is the `id:` field and `type` the `event:` field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Strictly increasing sequence number, kept across restarts.
    pub seq: u64,
    pub time: String,
    /// `job.created`, `job.updated`, `resource.created`, `resource.updated`, `resource.deleted`.
    pub r#type: String,
    /// The resource or job the event is about.
    pub href: String,
    /// Who caused it.
    pub actor: String,
    /// The new state of the object (for `*.deleted`: what was deleted), when known.
    #[serde(default)]
    pub data: serde_json::Value,
}
