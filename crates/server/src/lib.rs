//! hostplane daemon: the platform (store, auth, jobs, events, audit) and the API areas.
//! See ARCHITECTURE.md for the request flow.

pub mod areas;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod http;
pub mod logfile;
pub mod platform;
pub mod serve;
pub mod state;
pub mod tls;

/// The OpenAPI document as JSON (what `hostplane openapi` prints and `openapi.json` holds).
pub fn openapi_json() -> String {
    let (_, doc) = http::openapi_and_router();
    doc.to_pretty_json()
        .expect("the OpenAPI document serializes")
}
