//! `/api/v1/shares/smb`: SMB shares on Samba, and `GET /shares/smb/sessions`.
//!
//! Handlers turn a request into a [`ShareRecord`], check it ([`check`]) against the other
//! shares and the users, and hand it to [`super::apply`]. [`section`] turns a record into the
//! `[name]` section of the include file.

use std::path::Path as FsPath;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hostplane_host::samba::{self, SectionSpec};
use hostplane_types::auth::Role;
use hostplane_types::shares::{
    CreateSmbShareRequest, ShareProtocol, SmbSession, SmbShare, UpdateSmbShareRequest,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::registry::{Options, ShareRecord, SmbOptions};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(sessions))
        .routes(routes!(get_one, update, delete))
}

const P: ShareProtocol = ShareProtocol::Smb;

/// Names that are Samba's own sections, or a route of ours.
const RESERVED: &[&str] = &["sessions"];

fn opts(r: &ShareRecord) -> &SmbOptions {
    match &r.options {
        Options::Smb(o) => o,
        Options::Nfs(_) => unreachable!("an SMB route loaded an NFS record"),
    }
}

pub fn view(resolver: &mut super::Resolver, r: &ShareRecord) -> SmbShare {
    let res = super::resolve(resolver, r);
    let o = opts(r);
    SmbShare {
        href: r.href(),
        name: r.name.clone(),
        pool: r.pool.clone(),
        dataset: r.dataset.clone(),
        subpath: r.subpath.clone(),
        path: super::shown_path(resolver.state, r, &res),
        enabled: r.enabled,
        state: super::share_state(r, &res),
        problem: res.as_ref().err().map(|u| u.message().to_string()),
        comment: r.comment.clone(),
        read_only: o.read_only,
        browseable: o.browseable,
        guest_ok: o.guest_ok,
        valid_users: o.valid_users.clone(),
        write_list: o.write_list.clone(),
        recycle_bin: o.recycle_bin,
        macos: o.macos,
        time_machine: o.time_machine,
        time_machine_max_bytes: o.time_machine_max_bytes,
        created_at: r.created_at.clone(),
        updated_at: r.updated_at.clone(),
    }
}

/// The include-file section of an active share.
pub fn section(
    r: &ShareRecord,
    o: &SmbOptions,
    path: &FsPath,
    group: Option<String>,
) -> SectionSpec {
    SectionSpec {
        name: r.name.clone(),
        path: path.display().to_string(),
        comment: r.comment.clone(),
        read_only: o.read_only,
        browseable: o.browseable,
        guest_ok: o.guest_ok,
        valid_users: o.valid_users.clone(),
        write_list: o.write_list.clone(),
        recycle_bin: o.recycle_bin,
        macos: o.macos,
        time_machine: o.time_machine,
        time_machine_max_bytes: o.time_machine_max_bytes,
        force_group: group,
    }
}

/// Everything a new or changed SMB share must satisfy.
fn check(state: &AppState, r: &ShareRecord, others: &[ShareRecord]) -> ApiResult<()> {
    if samba::RESERVED_NAMES
        .iter()
        .chain(RESERVED)
        .any(|n| n.eq_ignore_ascii_case(&r.name))
    {
        return Err(ApiError::invalid_field(
            "reserved_name",
            "name",
            format!("{:?} is reserved", r.name),
        ));
    }
    super::check_common(state, r, others)?;
    if !super::smb_available() {
        return Err(super::smb_unavailable());
    }
    let share_users: Vec<String> = state
        .auth
        .list_users()?
        .into_iter()
        .filter(|u| u.role == Role::Share)
        .map(|u| u.name)
        .collect();
    let o = opts(r);
    for (field, list) in [
        ("valid_users", &o.valid_users),
        ("write_list", &o.write_list),
    ] {
        if list.len() > 64 {
            return Err(ApiError::invalid_field(
                "invalid_users",
                field,
                "at most 64 users",
            ));
        }
        for (i, u) in list.iter().enumerate() {
            if !share_users.contains(u) {
                return Err(ApiError::invalid_field(
                    "unknown_share_user",
                    format!("{field}[{i}]"),
                    format!("{u:?} is not a user with role share"),
                ));
            }
        }
    }
    Ok(())
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

const SMB: super::Protocol<SmbShare> = super::Protocol {
    protocol: P,
    view,
    check,
};

/// List SMB shares.
#[utoipa::path(get, path = "/api/v1/shares/smb",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("shares:read"))),
    tag = "shares", params(CollectionParams),
    responses((status = 200, description = "SMB shares", body = [SmbShare],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    SMB.list(&state, &params, &headers)
}

/// Create an SMB share of a dataset folder; smbd serves it at once.
#[utoipa::path(post, path = "/api/v1/shares/smb",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("shares:write"))),
    tag = "shares", request_body = CreateSmbShareRequest,
    responses((status = 201, description = "Created", body = SmbShare)))]
async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<CreateSmbShareRequest>,
) -> ApiResult<Response> {
    let now = time::now_string();
    let time_machine = req.time_machine.unwrap_or(false);
    let rec = ShareRecord {
        name: req.name,
        pool: req.pool,
        dataset: req.dataset,
        subpath: req.subpath.unwrap_or_default(),
        enabled: req.enabled.unwrap_or(true),
        comment: req.comment.unwrap_or_default(),
        options: Options::Smb(SmbOptions {
            read_only: req.read_only.unwrap_or(false),
            browseable: req.browseable.unwrap_or(true),
            guest_ok: req.guest_ok.unwrap_or(false),
            valid_users: dedup(req.valid_users.unwrap_or_default()),
            write_list: dedup(req.write_list.unwrap_or_default()),
            recycle_bin: req.recycle_bin.unwrap_or(false),
            macos: req.macos.unwrap_or(false) || time_machine,
            time_machine,
            time_machine_max_bytes: req.time_machine_max_bytes.filter(|b| *b > 0),
        }),
        created_at: now.clone(),
        updated_at: now,
    };
    SMB.create(&state, &p.user, |_| rec).await
}

/// Connected SMB clients and the shares they have open (`smbstatus -j`).
#[utoipa::path(get, path = "/api/v1/shares/smb/sessions",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("shares:read"))),
    tag = "shares", params(CollectionParams),
    responses((status = 200, description = "Sessions", body = [SmbSession],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn sessions(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !super::smb_available() {
        return Err(super::smb_unavailable());
    }
    let list = samba::sessions(&state.config.shares.smb_config)
        .await
        .map_err(ApiError::from)?;
    collection::respond(list, &params, &headers)
}

/// One SMB share.
#[utoipa::path(get, path = "/api/v1/shares/smb/{name}",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("shares:read"))),
    tag = "shares",
    params(("name" = String, Path, description = "Share name (any case)")),
    responses((status = 200, description = "The share", body = SmbShare,
        headers(("etag" = String, description = "Send as If-Match to update safely")))))]
async fn get_one(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    SMB.get(&state, &name)
}

/// Change an SMB share (rename, move, options); smbd rereads its configuration.
#[utoipa::path(patch, path = "/api/v1/shares/smb/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("shares:write"))),
    tag = "shares", request_body = UpdateSmbShareRequest,
    params(("name" = String, Path, description = "Share name (any case)"),
        ("If-Match" = Option<String>, Header, description = "ETag from a previous read; 412 if the share changed since")),
    responses((status = 200, description = "The share", body = SmbShare),
        (status = 412, description = "If-Match does not match", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn update(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<UpdateSmbShareRequest>,
) -> ApiResult<Response> {
    let common = super::CommonPatch {
        name: req.name,
        pool: req.pool,
        dataset: req.dataset,
        subpath: req.subpath,
        enabled: req.enabled,
        comment: req.comment,
    };
    SMB.update(&state, &p.user, &name, &headers, common, |o| {
        let Options::Smb(o) = o else { return };
        let set = |dst: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut o.read_only, req.read_only);
        set(&mut o.browseable, req.browseable);
        set(&mut o.guest_ok, req.guest_ok);
        set(&mut o.recycle_bin, req.recycle_bin);
        set(&mut o.macos, req.macos);
        set(&mut o.time_machine, req.time_machine);
        // Time Machine needs vfs_fruit.
        o.macos |= o.time_machine;
        if let Some(v) = req.valid_users {
            o.valid_users = dedup(v);
        }
        if let Some(v) = req.write_list {
            o.write_list = dedup(v);
        }
        if let Some(v) = req.time_machine_max_bytes {
            o.time_machine_max_bytes = (v > 0).then_some(v);
        }
    })
    .await
}

/// Delete an SMB share (the folder and its files stay).
#[utoipa::path(delete, path = "/api/v1/shares/smb/{name}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("shares:write"))),
    tag = "shares",
    params(("name" = String, Path, description = "Share name (any case)"),
        ("If-Match" = Option<String>, Header, description = "ETag from a previous read; 412 if the share changed since")),
    responses((status = 204, description = "Deleted"),
        (status = 412, description = "If-Match does not match", body = hostplane_types::problem::Problem, content_type = "application/problem+json")))]
async fn delete(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    SMB.delete(&state, &p.user, &name, &headers).await
}
