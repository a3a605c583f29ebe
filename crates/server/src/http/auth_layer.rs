//! Authentication, authorization and audit for every request, in one middleware.
//!
//! Flow per request: find one credential (Bearer header, `authenticationToken` cookie,
//! `?token=`, `?hash=`, a console `?ticket=`, or root on the unix socket — in that order; a
//! credential that is present but wrong is refused, never skipped), turn it into a
//! [`Principal`], check role (mutating methods need `operator`) and scope
//! (`<area>:read|write`), put the principal in the request extensions for handlers, run the
//! handler, and write an audit entry for every mutating request, accepted or refused.
//!
//! Public operations are listed in [`is_public`]; everything else needs credentials, WebSocket
//! upgrades included (they are GET requests through this same layer).

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hostplane_types::auth::{AuthMethod, Role};

use crate::error::ApiError;
use crate::http::peer::Peer;
use crate::platform::audit::Record;
use crate::platform::auth::{Auth, Principal};
use crate::state::AppState;

pub const COOKIE_NAME: &str = "authenticationToken";

/// Operations anyone may call. The auth-matrix test holds the same list.
pub fn is_public(state: &AppState, method: &Method, path: &str, peer: &Peer) -> bool {
    match (method, path) {
        (&Method::POST, "/api/v1/auth/login") => true,
        // Jidoteki: setup is open until the admin-API token is set, and only locally.
        (&Method::POST, "/api/v1/admin/setup") => {
            !state.auth.admin_api_token_is_set() && peer.is_local()
        }
        _ => false,
    }
}

/// Operations any authenticated caller may do whatever its role (they only touch the caller).
fn is_self_service(method: &Method, path: &str) -> bool {
    matches!(
        (method, path),
        (&Method::POST, "/api/v1/auth/logout") | (&Method::GET, "/api/v1/auth/whoami")
    )
}

pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// What a share user is told by every route.
pub const SHARE_ONLY: &str = "this user has role share: file shares only, no API access";

/// The area a path belongs to: `/api/v1/<area>/...`.
pub fn area_of(path: &str) -> &str {
    path.strip_prefix("/api/v1/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
}

fn cookie_token(req: &Request) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Ok(None): no credential at all. Err: a credential that does not authenticate.
fn authenticate(
    state: &AppState,
    req: &Request,
    peer: &Peer,
) -> Result<Option<Principal>, ApiError> {
    let auth: &Auth = &state.auth;
    let bad = |what: &str| {
        ApiError::Unauthenticated(format!(
            "the {what} is not valid (unknown, revoked or expired)"
        ))
    };
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        let value = h.to_str().unwrap_or("");
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::Unauthenticated("use Authorization: Bearer <token>".into()))?;
        return auth
            .authenticate_token(token.trim(), AuthMethod::Bearer)
            .map(Some)
            .ok_or_else(|| bad("bearer token"));
    }
    if let Some(token) = cookie_token(req) {
        return auth
            .authenticate_token(token, AuthMethod::Cookie)
            .map(Some)
            .ok_or_else(|| bad("session cookie"));
    }
    let cfg = &state.config.auth;
    if cfg.query_token
        && let Some(token) = query_param(req, "token")
    {
        return auth
            .authenticate_token(&token, AuthMethod::QueryToken)
            .or_else(|| auth.authenticate_admin_api_token(&token))
            .map(Some)
            .ok_or_else(|| bad("token parameter"));
    }
    if cfg.query_hash
        && let Some(hash) = query_param(req, "hash")
    {
        return auth
            .authenticate_admin_api_hash(&hash, req.method().as_str(), req.uri().path())
            .map(Some)
            .ok_or_else(|| bad("hash parameter"));
    }
    // A console ticket (POST /vms/{id}/console): single use, one console WebSocket of one VM.
    if let Some(ticket) = query_param(req, "ticket") {
        return state
            .vms
            .tickets
            .redeem(&ticket, req.method(), req.uri().path())
            .map(Some)
            .ok_or_else(|| bad("console ticket"));
    }
    if let Peer::Unix { uid: Some(0), .. } = peer {
        return Ok(Some(Principal {
            user: "root".into(),
            role: Role::Admin,
            method: AuthMethod::UnixSocket,
            token_id: None,
            scopes: Vec::new(),
        }));
    }
    Ok(None)
}

fn authorize(p: &Principal, method: &Method, path: &str) -> Result<(), ApiError> {
    if p.role == Role::Share {
        return Err(ApiError::Forbidden(SHARE_ONLY.into()));
    }
    let write = is_mutating(method);
    if write && !is_self_service(method, path) {
        p.require(Role::Operator)?;
    }
    let area = area_of(path);
    if !area.is_empty() && !is_self_service(method, path) && !p.scope_allows(area, write) {
        return Err(ApiError::Forbidden(format!(
            "the token's scopes do not allow {} on {area}",
            if write { "write" } else { "read" }
        )));
    }
    Ok(())
}

pub async fn auth_layer(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let public = is_public(&state, &method, &path, &peer);
    // Jidoteki: authentication errors under /admin answer 403.
    let jidoteki = path.starts_with("/api/v1/admin/") || path == "/api/v1/admin";
    let refuse = |e: ApiError| {
        metrics::counter!("hostplane_auth_failures_total", "reason" => e.code()).increment(1);
        match e {
            ApiError::Unauthenticated(msg) if jidoteki => ApiError::Forbidden(msg),
            other => other,
        }
        .into_response()
    };
    let principal = match authenticate(&state, &req, &peer) {
        Ok(p) => p,
        // A stale cookie must not lock a user out of logging in again.
        Err(_) if public => None,
        Err(e) => {
            let resp = refuse(state.anon_limiter.limit(&peer, e));
            audit(&state, &method, &path, None, &peer, &resp);
            return resp;
        }
    };
    let resp = match &principal {
        Some(p) => match authorize(p, &method, &path) {
            Ok(()) => {
                req.extensions_mut().insert(p.clone());
                next.run(req).await
            }
            Err(e) => refuse(e),
        },
        None if public => next.run(req).await,
        None => refuse(state.anon_limiter.limit(&peer, ApiError::Unauthenticated("authentication required: send Authorization: Bearer <token>, the authenticationToken cookie, or ?token=/?hash=".into()))),
    };
    audit(&state, &method, &path, principal.as_ref(), &peer, &resp);
    resp
}

fn audit(
    state: &AppState,
    method: &Method,
    path: &str,
    p: Option<&Principal>,
    peer: &Peer,
    resp: &Response,
) {
    if !is_mutating(method) {
        return;
    }
    // A created resource is better named by its Location than by the collection path.
    let target = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|_| resp.status().as_u16() == 201)
        .unwrap_or(path);
    let method_name = p.map(|p| serde_json::to_value(p.method).ok());
    let method_str = method_name
        .flatten()
        .and_then(|v| v.as_str().map(str::to_string));
    state.audit.record(Record {
        actor: p.map(|p| p.user.as_str()).unwrap_or("anonymous"),
        auth_method: method_str.as_deref(),
        method: method.as_str(),
        path,
        target,
        status: resp.status().as_u16(),
        remote: &peer.describe(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas() {
        assert_eq!(area_of("/api/v1/jobs/123/log"), "jobs");
        assert_eq!(area_of("/api/v1/jobs"), "jobs");
        assert_eq!(area_of("/metrics"), "");
    }
}
