//! `ETag` / `If-Match` for configuration resources, so two admins cannot overwrite each other:
//! a read returns the resource's ETag (a hash of its JSON), and a write carrying `If-Match`
//! that no longer matches answers 412 `precondition_failed`. A write without `If-Match` goes
//! through (last writer wins), as in RFC 9110.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub fn etag_of<T: Serialize>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32])
}

/// 412 unless `If-Match` is absent, `*`, or lists the current ETag.
pub fn check_if_match(headers: &HeaderMap, current: &str) -> Result<(), ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("").trim();
    if v.is_empty() {
        // An empty If-Match names no version: treat it as absent.
        return Ok(());
    }
    let matches = v.trim() == "*"
        || v.split(',')
            .any(|t| t.trim().trim_start_matches("W/") == current);
    if matches {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed(
            "the resource changed since you read it (If-Match does not match its ETag); read it again".into(),
        ))
    }
}

/// A JSON answer with its ETag.
pub fn with_etag<T: Serialize>(value: &T) -> Response {
    let tag = etag_of(value);
    let mut resp = axum::Json(value).into_response();
    if let Ok(h) = HeaderValue::from_str(&tag) {
        resp.headers_mut().insert(header::ETAG, h);
    }
    resp
}
