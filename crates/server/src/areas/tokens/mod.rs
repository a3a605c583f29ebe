//! `/api/v1/tokens`: API tokens (`hp_<id>_<secret>`). Everyone sees and revokes their own;
//! admins see and revoke all. A token's role is at most its owner's and its creator's. The
//! secret is returned once, at creation.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use hostplane_types::auth::{CreateTokenRequest, CreatedToken, Role, Token, TokenKind};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::answer::created;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::auth::{Principal, TokenSpec, narrow_scopes, validate_scopes};
use crate::platform::time;
use crate::areas::Area;
use crate::state::AppState;

const MAX_LIFETIME_SECS: u64 = 10 * 365 * 86400;

pub const AREA: Area = Area::new("tokens", "API tokens and sessions", router);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(get_token, revoke_token))
}

fn visible(p: &Principal, t: &Token) -> bool {
    p.role == Role::Admin || t.owner == p.user
}

/// List tokens and sessions (yours; all for admins).
#[utoipa::path(get, path = "/api/v1/tokens",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("tokens:read"))),
    tag = "tokens", params(CollectionParams),
    responses((status = 200, description = "Tokens", body = [Token],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_tokens(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let owner = (p.role != Role::Admin).then_some(p.user.as_str());
    collection::respond(state.auth.list_tokens(owner)?, &params, &headers)
}

/// Create an API token. The answer holds its secret value, shown only this once.
#[utoipa::path(post, path = "/api/v1/tokens",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("tokens:write"))),
    tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 201, description = "Created", body = CreatedToken)))]
async fn create_token(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<CreateTokenRequest>,
) -> ApiResult<Response> {
    let name = req.name.as_str();
    let n = name.chars().count();
    if n == 0 || n > 64 || name.chars().any(|c| c < ' ' || c == '\x7f') {
        return Err(ApiError::invalid_field(
            "invalid_name",
            "name",
            "token names are 1-64 characters without control characters",
        ));
    }
    validate_scopes(&req.scopes, &crate::areas::scope_names())?;
    let scopes = narrow_scopes(&p.scopes, &req.scopes)?;
    // Virtual principals (root on the socket, the admin-API token) own nothing: their tokens
    // go to the bootstrap admin unless an owner is named.
    let caller_is_user = state.auth.get_user(&p.user)?.is_some();
    let owner = match &req.owner {
        Some(o) if *o != p.user => {
            p.require(Role::Admin)?;
            o.clone()
        }
        Some(o) => o.clone(),
        None if caller_is_user => p.user.clone(),
        None => crate::serve::BOOTSTRAP_USER.to_string(),
    };
    let owner_user = state
        .auth
        .get_user(&owner)?
        .ok_or_else(|| ApiError::not_found(format!("no user {owner:?} (the token's owner)")))?;
    let ceiling = owner_user.role.min(p.role);
    let role = req.role.unwrap_or(ceiling);
    // Like a role above the ceiling (403): a share-role token could not call anything.
    if role == Role::Share {
        return Err(ApiError::Forbidden(
            "role share has no API access, so there are no tokens for it".into(),
        ));
    }
    if role > ceiling {
        return Err(ApiError::Forbidden(format!(
            "a token's role is at most {} here",
            ceiling.as_str()
        )));
    }
    let expires_at = match req.expires_in {
        None => None,
        Some(s) if (1..=MAX_LIFETIME_SECS).contains(&s) => {
            Some(time::now() + ::time::Duration::seconds(s as i64))
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "invalid_expiry",
                "expires_in",
                format!("expires_in is 1 .. {MAX_LIFETIME_SECS} seconds"),
            ));
        }
    };
    let (token, value) = state.auth.create_token(TokenSpec {
        name,
        kind: TokenKind::Api,
        owner: &owner,
        role,
        scopes: &scopes,
        expires_at,
    })?;
    state.events.publish(
        "resource.created",
        &token.href,
        &p.user,
        serde_json::to_value(&token).unwrap_or_default(),
    );
    Ok(created(&token.href.clone(), &CreatedToken { token, value }))
}

/// Get one token (never its secret).
#[utoipa::path(get, path = "/api/v1/tokens/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("tokens:read"))),
    tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, description = "The token", body = Token)))]
async fn get_token(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Token>> {
    match state.auth.get_token(&id)? {
        Some(t) if visible(&p, &t) => Ok(axum::Json(t)),
        _ => Err(ApiError::not_found(format!("no token {id:?}"))),
    }
}

/// Revoke a token or session at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("tokens:write"))),
    tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked")))]
async fn revoke_token(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    let token = match state.auth.get_token(&id)? {
        Some(t) if visible(&p, &t) => t,
        _ => return Err(ApiError::not_found(format!("no token {id:?}"))),
    };
    state.auth.revoke_token(&id)?;
    state.events.publish(
        "resource.deleted",
        &token.href,
        &p.user,
        serde_json::to_value(&token).unwrap_or_default(),
    );
    Ok(axum::http::StatusCode::NO_CONTENT)
}
