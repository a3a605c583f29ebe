//! `POST /api/v1/admin/setup`: the admin-API token (Jidoteki sections 1 and 2).
//!
//! `POST /admin/setup` sets the admin-API token that
//! `?token=` and `?hash=` authenticate with. Unauthenticated setup is accepted only while the
//! token has never been set, and only from loopback or the unix socket (see
//! `x-public-when` in the declaration below); afterwards it needs authentication. Errors answer 400 and
//! authentication failures 403, as the spec says.

use axum::Extension;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::admin::JidotekiStatus;
use crate::error::{ApiError, ApiResult};
use crate::platform::auth::Principal;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(setup))
}

/// `multipart/form-data` body of `POST /admin/setup`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SetupForm {
    /// The new API token: 16 to 255 characters, hard to guess (at least 80 bits of estimated
    /// entropy; the Jidoteki spec allows 1 character, but this token authenticates as admin).
    #[schema(min_length = 16, max_length = 255)]
    newtoken: String,
}

fn bad_request(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_token",
        detail: detail.into(),
    }
}

/// Set or change the admin API token (Jidoteki `POST /setup`).
#[utoipa::path(post, path = "/api/v1/admin/setup",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:write")),
        ("x-public-when" = json!("admin_api_token_unset_local"))),
    tag = "admin",
    request_body(content = SetupForm, content_type = "multipart/form-data"),
    security((), ("bearer" = []), ("cookie" = []), ("token" = []), ("hash" = [])),
    responses((status = 200, description = "Token set", body = JidotekiStatus)))]
async fn setup(
    State(state): State<AppState>,
    caller: Option<Extension<Principal>>,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut fields = crate::areas::admin::compat::fields(form, &["newtoken"]).await?;
    let token = fields
        .remove("newtoken")
        .map(|v| String::from_utf8(v).map_err(|_| bad_request("newtoken must be UTF-8 text")))
        .transpose()?;
    let token = token.ok_or_else(|| bad_request("the newtoken field is required"))?;
    state
        .auth
        .set_admin_api_token(&token)
        .map_err(|e| match e {
            ApiError::Invalid { detail, .. } => bad_request(detail),
            other => other,
        })?;
    state.events.publish(
        "resource.updated",
        "/api/v1/admin/setup",
        caller
            .map(|Extension(p)| p.user)
            .as_deref()
            .unwrap_or("anonymous"),
        serde_json::Value::Null,
    );
    Ok(axum::Json(JidotekiStatus::ok()).into_response())
}
