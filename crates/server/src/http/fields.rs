//! `?fields=` on single-item GETs: the answer keeps only the named properties (and `href`), as
//! a collection's items do. The operation's documented properties are the valid names (from
//! the access table's view of the document); anything else is 422 `invalid_query`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::http::access;

/// Item answers are small; a larger one is passed through whole.
const MAX_ITEM_BYTES: usize = 4 << 20;

pub async fn project_fields(req: Request, next: Next) -> Response {
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let Some(wanted) = fields_param(req.uri().query()) else {
        return next.run(req).await;
    };
    let Some(known) = access::table()
        .operation(req.method(), req.uri().path())
        .and_then(|op| op.item_fields.as_ref())
    else {
        return next.run(req).await;
    };
    // `fields=` (empty) is the whole item; otherwise every name must be exact.
    let wanted: Vec<String> = if wanted.is_empty() {
        Vec::new()
    } else {
        wanted.split(',').map(str::to_string).collect()
    };
    if let Some(bad) = wanted.iter().find(|f| !known.contains(f)) {
        return ApiError::invalid_field(
            "invalid_query",
            "fields",
            format!(
                "{bad:?} is not a property here; known: {}",
                known.join(", ")
            ),
        )
        .into_response();
    }
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status() != StatusCode::OK || !is_json || wanted.is_empty() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ITEM_BYTES).await else {
        return ApiError::internal("an item answer was too large to project").into_response();
    };
    let projected = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.retain(|k, _| k == "href" || wanted.iter().any(|w| w == k));
            serde_json::to_vec(&map).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    // The projection is another representation: an ETag of the whole item no longer fits it.
    parts.headers.remove(header::ETAG);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(projected))
}

fn fields_param(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query?).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v)
}
