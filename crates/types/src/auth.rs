//! Users, API tokens, sessions and the identity of a caller.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Roles, ordered: a share user reaches file shares only (SMB) and never the API, a viewer
/// reads, an operator also changes things, an admin also manages users, all tokens and
/// security settings.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// SMB share access only: refused by every API route, login included.
    Share,
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Share => "share",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "share" => Some(Role::Share),
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// `Authorization: Bearer hp_<id>_<secret>`.
    Bearer,
    /// Cookie `authenticationToken`.
    Cookie,
    /// `?token=` query parameter (Jidoteki compatible).
    QueryToken,
    /// `?hash=` HMAC query parameter (Jidoteki compatible).
    QueryHash,
    /// Peer credentials on the unix socket.
    UnixSocket,
    /// A single-use console ticket.
    Ticket,
}

/// `GET /api/v1/auth/whoami`: who the caller is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    pub user: String,
    pub role: Role,
    pub method: AuthMethod,
    /// The token id, when a token was used.
    pub token_id: Option<String>,
    /// Per-area scopes the credential is limited to; empty means all areas.
    pub scopes: Vec<String>,
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Answer to a login. The session token is also set as cookie `authenticationToken`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub user: String,
    pub role: Role,
    /// The session token (`hp_<id>_<secret>`); usable as a bearer token too.
    pub token: String,
    /// RFC 3339 time the session ends.
    pub expires_at: String,
}

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Whether the user can log in with a password.
    pub has_password: bool,
    pub created_at: String,
    pub updated_at: String,
    pub href: String,
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1–64 characters of `[a-z0-9_.-]`, starting with a letter or digit (`root` and
    /// `admin-api` are reserved).
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub name: String,
    pub role: Role,
    /// Optional password (8–1024 characters). Without one, the user has API tokens only.
    #[serde(default)]
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

/// `PATCH /api/v1/users/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub role: Option<Role>,
    /// New password (8–1024 characters).
    #[serde(default)]
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A long-lived API token.
    Api,
    /// A web/CLI login session.
    Session,
    /// The admin token written at first start.
    Bootstrap,
}

/// An API token or session. The secret is shown only once, at creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub kind: TokenKind,
    pub owner: String,
    pub role: Role,
    /// Areas and access this token is limited to, e.g. `vms:write`, `jobs:read`; empty = all.
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub href: String,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// 1–64 characters, no control characters.
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f]{1,64}$")]
    pub name: String,
    /// Role of the token; at most the owner's role. Defaults to the owner's role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Scopes `<area>:read|write` or `*`; empty = all areas.
    #[serde(default)]
    #[schema(value_type = Vec<ScopeString>)]
    pub scopes: Vec<String>,
    /// Lifetime in seconds (1 s – 10 years); absent = never expires.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 315360000)]
    pub expires_in: Option<u64>,
    /// Owner of the token (admins only); defaults to the caller.
    #[serde(default)]
    pub owner: Option<String>,
}

/// A scope: an area (or `*`), optionally `:read` or `:write` (the default).
#[derive(ToSchema)]
#[schema(
    pattern = "^(\\*|admin|audit|auth|containers|disks|events|jobs|network|pools|services|shares|system|tokens|users|vms)(:(read|write))?$"
)]
#[allow(dead_code)]
pub struct ScopeString(String);

/// Answer to token creation: the token and, once, its secret value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: Token,
    /// `hp_<id>_<secret>`: use as `Authorization: Bearer <value>`. Not retrievable later.
    pub value: String,
}
