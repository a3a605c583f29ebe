//! `/api/v1/auth`: log in (sets the `authenticationToken` cookie), log out, who am I.
//!
//! Login: rate limit per client address → argon2id check (on a blocking thread) → a session
//! token (`kind = session`, `auth.session_ttl_secs`) → cookie + body. Logout revokes the
//! session used for the request.

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hostplane_types::auth::{AuthMethod, LoginRequest, LoginResponse, Role, TokenKind, Whoami};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::{ApiError, ApiResult};
use crate::http::auth_layer::COOKIE_NAME;
use crate::http::caller::Caller;
use crate::http::extract::Json;
use crate::http::peer::Peer;
use crate::platform::auth::TokenSpec;
use crate::platform::time;
use crate::areas::Area;
use crate::state::AppState;

pub const AREA: Area = Area::new("auth", "Log in and out; who am I", router);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(whoami))
}

fn session_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie is ASCII")
}

/// Log in with a username and password.
#[utoipa::path(post, path = "/api/v1/auth/login",
    extensions(("x-required-role" = json!("public"))),
    tag = "auth", request_body = LoginRequest,
    security(()),
    responses((status = 200, description = "Logged in; the session is also set as cookie `authenticationToken`", body = LoginResponse)))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    state.login_limiter.check(peer.ip())?;
    let name = req.username.clone();
    let st = state.clone();
    let role = tokio::task::spawn_blocking(move || st.auth.check_password(&name, &req.password))
        .await
        .map_err(ApiError::internal)??;
    let Some(role) = role else {
        metrics::counter!("hostplane_auth_failures_total", "reason" => "bad_password").increment(1);
        return Err(ApiError::Unauthenticated(
            "wrong username or password".into(),
        ));
    };
    if role == Role::Share {
        return Err(ApiError::Forbidden(
            crate::http::auth_layer::SHARE_ONLY.into(),
        ));
    }
    let ttl = state.config.auth.session_ttl_secs;
    let expires = time::now() + ::time::Duration::seconds(ttl as i64);
    let (token, value) = state.auth.create_token(TokenSpec {
        name: "login session",
        kind: TokenKind::Session,
        owner: &req.username,
        role,
        scopes: &[],
        expires_at: Some(expires),
    })?;
    let body = LoginResponse {
        user: req.username,
        role,
        token: value.clone(),
        expires_at: token.expires_at.unwrap_or_default(),
    };
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&value, ttl, !state.config.http),
    );
    Ok(resp)
}

/// End the current session (revokes the session token used, clears the cookie). API tokens
/// are revoked with `DELETE /api/v1/tokens/{id}` instead: logging out with one is a 409.
#[utoipa::path(post, path = "/api/v1/auth/logout",
    extensions(("x-required-role" = json!("authenticated"))),
    tag = "auth",
    responses((status = 204, description = "Logged out")))]
async fn logout(State(state): State<AppState>, Caller(p): Caller) -> ApiResult<Response> {
    let session = match &p.token_id {
        Some(id) => state
            .auth
            .get_token(id)?
            .filter(|t| t.kind == TokenKind::Session || p.method == AuthMethod::Cookie),
        None => None,
    };
    let Some(session) = session else {
        return Err(ApiError::conflict(
            "not_a_session",
            "this credential is not a login session; revoke API tokens with DELETE /api/v1/tokens/{id}",
        ));
    };
    state.auth.revoke_token(&session.id)?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", 0, !state.config.http),
    );
    Ok(resp)
}

/// Who the caller is, with role, method and scopes.
#[utoipa::path(get, path = "/api/v1/auth/whoami",
    extensions(("x-required-role" = json!("authenticated"))),
    tag = "auth",
    responses((status = 200, description = "The caller", body = Whoami)))]
async fn whoami(Caller(p): Caller) -> axum::Json<Whoami> {
    axum::Json(p.whoami())
}
