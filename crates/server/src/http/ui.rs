//! The web UI's static files (built from `web/` into `crates/server/ui/`, embedded with
//! rust-embed), served at `/` and `/assets/*`.
//!
//! Flow: these routes sit beside `/api-docs` outside the API router, so they pass no auth layer:
//! the files hold no data (the page fetches everything from the API with the user's
//! credential). `/` answers `index.html` (revalidated on every load, so a new daemon's UI is
//! picked up at once); `/assets/<name>-<hash>.<ext>` are content-hashed by the build and cached
//! as immutable. Every answer carries a strict Content-Security-Policy: the page may load and
//! connect only to its own origin.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;

#[derive(rust_embed::Embed)]
#[folder = "ui/"]
struct Files;

/// Nothing from another host, no inline script or style, no framing, no plugin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = "index.html";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index).fallback(method_not_allowed))
        .route("/assets/{*path}", get(asset).fallback(method_not_allowed))
}

/// Another method on a page or an asset: the API's 405 problem.
async fn method_not_allowed() -> crate::error::ApiError {
    crate::error::ApiError::MethodNotAllowed
}

async fn index(headers: HeaderMap) -> Response {
    serve(INDEX, &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("assets/{path}"), &headers)
}

/// The media type of a built file, by extension (the build makes only these).
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// `index.html` is revalidated on every load; hashed assets never change under their name.
pub fn cache_control(path: &str) -> &'static str {
    if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Files::get(path) else {
        return ApiError::not_found(format!("no UI file {path:?}")).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = file.data.into_owned().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is ASCII"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control(path)),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_assets_are_embedded_with_types_and_caching() {
        let index = Files::get(INDEX).expect("index.html is built into crates/server/ui");
        let html = std::str::from_utf8(&index.data).unwrap();
        let assets: Vec<String> = Files::iter()
            .filter(|p| p.starts_with("assets/"))
            .map(|p| p.to_string())
            .collect();
        assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
        for a in &assets {
            // Every asset is content-hashed (immutable caching depends on it).
            assert!(a.contains('-'), "{a} has no hash in its name");
            assert_ne!(content_type(a), "application/octet-stream", "{a}");
            assert_eq!(cache_control(a), "public, max-age=31536000, immutable");
        }
        // No reference to another host in the page.
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
            "{html}"
        );
        assert_eq!(cache_control(INDEX), "no-cache");
        assert_eq!(content_type(INDEX), "text/html; charset=utf-8");
    }
}
