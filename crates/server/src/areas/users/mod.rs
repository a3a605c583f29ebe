//! `/api/v1/users`: user accounts (admin only). Passwords are argon2id hashes; a user without a
//! password uses API tokens only. The last admin cannot be deleted or demoted. Users with role
//! `share` reach SMB shares only: the shares area's `accounts` gives them a Unix account and
//! a Samba password around each change here.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use hostplane_types::auth::{CreateUserRequest, Role, UpdateUserRequest, User};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::answer::created;
use crate::areas::shares::accounts;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::etag::{check_if_match, etag_of, with_etag};
use crate::http::extract::{Json, Query};
use crate::areas::Area;
use crate::state::AppState;

pub const AREA: Area = Area::new("users", "User accounts (admin)", router);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
}

/// List users.
#[utoipa::path(get, path = "/api/v1/users",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("users:read"))),
    tag = "users", params(CollectionParams),
    responses((status = 200, description = "Users", body = [User],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_users(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    collection::respond(state.auth.list_users()?, &params, &headers)
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("users:write"))),
    tag = "users", request_body = CreateUserRequest,
    responses((status = 201, description = "Created", body = User)))]
async fn create_user(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<Response> {
    let share = req.role == Role::Share;
    if share {
        accounts::before_create(&state, &req.name, req.password.as_deref()).await?;
    }
    let st = state.clone();
    let (name, password) = (req.name.clone(), req.password.clone());
    // argon2 is deliberately slow: keep it off the async workers.
    let user = tokio::task::spawn_blocking(move || {
        st.auth
            .create_user(&req.name, req.role, req.password.as_deref())
    })
    .await
    .map_err(ApiError::internal)??;
    if share
        && let Err(e) =
            accounts::after_create(&state, &name, password.as_deref().unwrap_or_default()).await
    {
        // No half-made share user: without the SMB account the user is useless.
        let _ = state.auth.delete_user(&name);
        return Err(e);
    }
    state.events.publish(
        "resource.created",
        &user.href,
        &p.user,
        serde_json::to_value(&user).unwrap_or_default(),
    );
    Ok(created(&user.href, &user))
}

/// Get one user.
#[utoipa::path(get, path = "/api/v1/users/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("users:read"))),
    tag = "users",
    params(("name" = String, Path, description = "User name")),
    responses((status = 200, description = "The user", body = User,
        headers(("etag" = String, description = "Send as If-Match to update safely")))))]
async fn get_user(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    if p.user != name {
        p.require(Role::Admin)?;
    }
    let user = find(&state, &name)?;
    Ok(with_etag(&user))
}

fn find(state: &AppState, name: &str) -> ApiResult<User> {
    state
        .auth
        .get_user(name)?
        .ok_or_else(|| ApiError::not_found(format!("no user {name:?}")))
}

/// Change a user's role or password.
#[utoipa::path(patch, path = "/api/v1/users/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("users:write"))),
    tag = "users",
    params(("name" = String, Path, description = "User name"),
        ("If-Match" = Option<String>, Header, description = "ETag from a previous read; 412 if the user changed since")),
    request_body = UpdateUserRequest,
    responses((status = 200, description = "The updated user", body = User),
        (status = 412, description = "If-Match does not match", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn update_user(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<UpdateUserRequest>,
) -> ApiResult<Response> {
    // Bad input is reported before a stale ETag: fixing the body first is what helps.
    if let Some(pw) = &req.password {
        crate::platform::auth::validate_password(pw)?;
    }
    let before = find(&state, &name)?;
    check_if_match(&headers, &etag_of(&before))?;
    let new_role = req.role.unwrap_or(before.role);
    let password = req.password.clone();
    accounts::before_update(&state, &name, before.role, new_role, password.as_deref()).await?;
    let st = state.clone();
    let n = name.clone();
    let user = tokio::task::spawn_blocking(move || {
        st.auth.update_user(&n, req.role, req.password.as_deref())
    })
    .await
    .map_err(ApiError::internal)??;
    if let Err(e) =
        accounts::after_update(&state, &name, before.role, new_role, password.as_deref()).await
    {
        if new_role != before.role {
            let _ = state.auth.update_user(&name, Some(before.role), None);
        }
        return Err(e);
    }
    state.events.publish(
        "resource.updated",
        &user.href,
        &p.user,
        serde_json::to_value(&user).unwrap_or_default(),
    );
    Ok(with_etag(&user))
}

/// Delete a user and all their tokens.
#[utoipa::path(delete, path = "/api/v1/users/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("users:write"))),
    tag = "users",
    params(("name" = String, Path, description = "User name"),
        ("If-Match" = Option<String>, Header, description = "ETag from a previous read; 412 if the user changed since")),
    responses((status = 204, description = "Deleted"),
        (status = 412, description = "If-Match does not match", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn delete_user(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<axum::http::StatusCode> {
    let before = find(&state, &name)?;
    check_if_match(&headers, &etag_of(&before))?;
    accounts::before_delete(&state, &name, before.role).await?;
    let user = state.auth.delete_user(&name)?;
    state.events.publish(
        "resource.deleted",
        &user.href,
        &p.user,
        serde_json::to_value(&user).unwrap_or_default(),
    );
    Ok(axum::http::StatusCode::NO_CONTENT)
}
