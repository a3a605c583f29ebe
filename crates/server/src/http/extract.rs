//! Request extractors whose rejections are problem+json (422 for bad input, 415 for a wrong
//! content type) instead of axum's plain-text defaults.

use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query as AxumQuery};

use crate::error::ApiError;

/// JSON body. Unknown fields, wrong types and syntax errors are 422 `invalid_body`.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// Query string parameters. Bad values are 422 `invalid_query`.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(AxumQuery), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "expected a body with Content-Type: application/json".into(),
            ),
            JsonRejection::BytesRejection(b) => {
                if b.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(b.body_text())
                } else {
                    ApiError::invalid("invalid_body", b.body_text())
                }
            }
            other => ApiError::invalid("invalid_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::invalid("invalid_query", r.body_text())
    }
}
