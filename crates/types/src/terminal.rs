//! The host terminal (`/api/v1/system/terminals`): a shell on a PTY over a WebSocket.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /system/terminals`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalCreate {
    /// Columns (default 80).
    #[schema(minimum = 1, maximum = 1000)]
    pub cols: Option<u16>,
    /// Rows (default 24).
    #[schema(minimum = 1, maximum = 1000)]
    pub rows: Option<u16>,
    /// The shell: one of `terminal.shells` (default: the first that exists).
    #[schema(max_length = 4096)]
    pub shell: Option<String>,
}

/// A terminal session as `GET /system/terminals` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TerminalSession {
    pub id: String,
    pub href: String,
    /// Who opened it.
    pub user: String,
    pub shell: String,
    pub cols: u16,
    pub rows: u16,
    /// The shell's pid on the host.
    pub pid: u32,
    /// Whether a WebSocket is attached now.
    pub attached: bool,
    pub created_at: String,
    /// Last input or output.
    pub last_activity_at: String,
}

/// A session opened, or a new ticket for one: open `ws_url` (path and query, ticket included)
/// as a WebSocket within 60 s. Binary frames carry terminal bytes both ways; the client sends
/// `{"type":"resize","cols":C,"rows":R}` text frames, the server `{"type":"exit","code":N}`
/// (and `{"type":"ended","reason":...}`) before it closes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TerminalTicket {
    /// The session id.
    pub id: String,
    /// Single-use ticket (also in `ws_url`).
    pub ticket: String,
    /// The WebSocket path with the ticket.
    pub ws_url: String,
    /// Ticket expiry (RFC 3339, UTC).
    pub expires_at: String,
}
