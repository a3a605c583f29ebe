//! The one error type of the HTTP layer and its one mapping to status + stable code.
//!
//! Every handler returns `Result<_, ApiError>`. `ApiError::status()` and `ApiError::code()` are
//! the single exhaustive mapping (cloud-hypervisor's `api_error_status_code()` habit): adding a
//! variant forces a decision here. Responses are RFC 9457 `application/problem+json` with the
//! stable `code` clients switch on; `title` is human text and may change.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hostplane_host::command::CommandError;
use hostplane_types::problem::{FieldError, Problem, UsedBy};

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or credentials that do not identify anyone.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the role, scope or rule does not allow the operation.
    #[error("{0}")]
    Forbidden(String),
    /// The named resource does not exist (or the route does not).
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the current state (exists, busy, lock held, If-Match).
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// 409 `in_use`: a pool or dataset other areas' objects use (`users` names them).
    #[error("{detail}")]
    InUse { detail: String, users: Vec<UsedBy> },
    /// `If-Match` given and stale.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Input that parses but is not acceptable (422). `field` names the offending input.
    #[error("{detail}")]
    Invalid {
        code: &'static str,
        detail: String,
        field: Option<String>,
    },
    /// 400, for compatibility surfaces whose spec demands it (Jidoteki); native routes use 422.
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// Body that could not be read at all (wrong content type).
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Rate limited; the caller may retry after `retry_after` seconds.
    #[error("too many requests, retry after {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    /// A subsystem this operation needs is missing or not running (tool not installed).
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    /// The host cannot do this at all (kernel feature absent).
    #[error("{detail}")]
    NotSupported { code: &'static str, detail: String },
    /// Our fault. Never used for anything a caller can cause.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            detail: detail.into(),
            field: None,
        }
    }

    pub fn invalid_field(
        code: &'static str,
        field: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        ApiError::Invalid {
            code,
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// 409 `insufficient_space`: the file system something is written to has no room for it.
    /// One code and status for every area (uploads, images, backups, restores).
    pub fn insufficient_space(detail: impl Into<String>) -> Self {
        ApiError::conflict("insufficient_space", detail)
    }

    /// 503 `tool_missing`: a program the operation needs is not installed. For checks made
    /// before anything runs (`which`); a run that finds no program maps through `From`.
    pub fn tool_missing(detail: impl Into<String>) -> Self {
        ApiError::Unavailable {
            code: "tool_missing",
            detail: detail.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::NotFound(what.into())
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::InUse { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotSupported { .. } => StatusCode::NOT_IMPLEMENTED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, documented code (see docs/errors.md).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::InUse { .. } => "in_use",
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::Invalid { code, .. } => code,
            ApiError::BadRequest { code, .. } => code,
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable { code, .. } => code,
            ApiError::NotSupported { code, .. } => code,
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            // Internal details go to the log, not to the caller.
            ApiError::Internal(_) => "internal error; see the daemon log".to_string(),
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Invalid {
                field: Some(field),
                detail,
                ..
            } => vec![FieldError {
                field: field.clone(),
                message: detail.clone(),
            }],
            _ => Vec::new(),
        };
        Problem {
            r#type: format!("https://hostplane.dev/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail,
            code: self.code().to_string(),
            errors,
            users: match self {
                ApiError::InUse { users, .. } => users.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(msg) = &self {
            tracing::error!(error = %msg, "internal error");
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::TooManyRequests { retry_after } = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if matches!(self, ApiError::Unauthenticated(_)) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hostplane\""),
            );
        }
        resp
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Internal(format!("store: {e}"))
    }
}

/// The one mapping of a host command's failure to the API (docs/errors.md, "Host commands").
/// Areas that know more (a parsed stderr meaning "busy", "not supported") match those cases
/// first and hand the rest here.
impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::NotFound { program } => {
                ApiError::tool_missing(format!("`{program}` is not installed on this host"))
            }
            // Retryable, not the caller's fault: the host did not answer in time.
            CommandError::Timeout { .. } => ApiError::Unavailable {
                code: "command_timeout",
                detail: e.to_string(),
            },
            // The tool refused on the host's current state; its message is the detail.
            CommandError::Failed { .. } => ApiError::conflict("command_failed", e.to_string()),
            CommandError::InvalidArgument { message } => {
                ApiError::invalid("invalid_argument", message)
            }
            // Spawning failed, output we cannot parse or too much of it: our side.
            CommandError::Io { .. }
            | CommandError::Parse { .. }
            | CommandError::OutputTooLarge { .. } => ApiError::internal(e),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
