//! Authentication, authorization and audit for every request, in one middleware.
//!
//! Flow per request: find one credential (Bearer header, `authenticationToken` cookie,
//! `?token=`, `?hash=`, a console `?ticket=`, or root on the unix socket — in that order; a
//! credential that is present but wrong is refused, never skipped), turn it into a
//! [`Principal`], check it against the access the operation declared beside its handler
//! (`x-required-role`, `x-required-scope`: see [`crate::http::access`]), put the principal in
//! the request extensions for handlers, run the handler, and write an audit entry for every
//! mutating request, accepted or refused.
//!
//! Handlers never check roles themselves; they keep only checks that depend on the object
//! ("your own token"). Operations declared `public` need no credential; everything else does,
//! WebSocket upgrades included (they are GET requests through this same layer).

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hostplane_types::auth::{AuthMethod, Role};

use crate::error::ApiError;
use crate::http::access::{self, Access, Need, PublicWhen};
use crate::http::peer::Peer;
use crate::platform::audit::Record;
use crate::platform::auth::{Auth, Principal};
use crate::state::AppState;

pub const COOKIE_NAME: &str = "authenticationToken";

pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// What a share user is told by every route.
pub const SHARE_ONLY: &str = "this user has role share: file shares only, no API access";

fn cookie_token(req: &Request) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

/// CSRF: a browser attaches the session cookie on its own, so a mutating request authenticated
/// by it must come from a page of this origin. Browsers say where a request comes from
/// (`Sec-Fetch-Site`; older ones only `Origin`, which they send on every cross-origin and
/// every non-GET request); a client that sends neither is not a browser and cannot be
/// tricked into sending the cookie. `SameSite=Strict` alone would still let a page of the same
/// site (another port, a sibling subdomain) post with it.
fn cross_origin(req: &Request) -> bool {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = h.get(header::ORIGIN) else {
        return false;
    };
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    origin_host.is_none() || origin_host != host
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
        if is_mutating(req.method()) && cross_origin(req) {
            return Err(ApiError::Forbidden(
                "cross-origin request with the session cookie refused (CSRF): send it from the UI's own origin, or use Authorization: Bearer".into(),
            ));
        }
        return auth
            .authenticate_token(token, AuthMethod::Cookie)
            .map(Some)
            .ok_or_else(|| bad("session cookie"));
    }
    let cfg = &state.config.auth;
    // The query forms carry guessable secrets (the admin-API token is chosen by a person):
    // their failures count against the login budget of the address, and an address over it
    // is refused before its credential is tried.
    let limited = |found: Option<Principal>, what: &str| match found {
        Some(p) => Ok(Some(p)),
        None => {
            state.login_limiter.failed(peer.ip())?;
            Err(bad(what))
        }
    };
    if cfg.query_token
        && let Some(token) = query_param(req, "token")
    {
        state.login_limiter.check_blocked(peer.ip())?;
        let found = auth
            .authenticate_token(&token, AuthMethod::QueryToken)
            .or_else(|| auth.authenticate_admin_api_token(&token));
        return limited(found, "token parameter");
    }
    if cfg.query_hash
        && let Some(hash) = query_param(req, "hash")
    {
        state.login_limiter.check_blocked(peer.ip())?;
        let found =
            auth.authenticate_admin_api_hash(&hash, req.method().as_str(), req.uri().path());
        return limited(found, "hash parameter");
    }
    // A WebSocket ticket (platform::tickets): single use, one of the paths it was issued for.
    if let Some(ticket) = query_param(req, "ticket") {
        return state
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

/// Whether the operation is public for this request: declared `public`, or a declared
/// state-dependent exception holds.
fn is_public(state: &AppState, access: &Access, peer: &Peer) -> bool {
    match (access.need, access.public_when) {
        (Need::Public, _) => true,
        (_, Some(PublicWhen::AdminApiTokenUnsetLocal)) => {
            !state.auth.admin_api_token_is_set() && peer.is_local()
        }
        (_, Some(PublicWhen::MetricsPublic)) => state.config.metrics.public,
        _ => false,
    }
}

/// Requests no operation serves (404/405 follow) still need a credential of an API role:
/// the route table is not disclosed to anonymous callers.
const UNDOCUMENTED: Access = Access {
    need: Need::Authenticated,
    scope: None,
    public_when: None,
};

pub async fn auth_layer(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let operation = access::table().operation(&method, &path);
    let access = operation.map(|o| &o.access).unwrap_or(&UNDOCUMENTED);
    let public = is_public(&state, access, &peer);
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
    // Unknown query parameters are refused once the caller may call the operation: a typo
    // must not silently drop what it meant (422 `invalid_query` naming the known ones).
    let allowed = public || principal.as_ref().is_some_and(|p| access.check(p).is_ok());
    let unknown = operation.filter(|_| allowed).and_then(|op| {
        let known = access::table().known_query_params(&method, &path);
        let bad = access::unknown_query_param(&known, req.uri().query())?;
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        Some(ApiError::invalid_field(
            "invalid_query",
            bad.clone(),
            format!(
                "unknown query parameter {bad:?}; {method} {} takes: {known}",
                op.path
            ),
        ))
    });
    if let Some(e) = unknown {
        let resp = e.into_response();
        audit(&state, &method, &path, principal.as_ref(), &peer, &resp);
        return resp;
    }
    let resp = match &principal {
        Some(p) if public => {
            req.extensions_mut().insert(p.clone());
            next.run(req).await
        }
        Some(p) => match access.check(p) {
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
