//! `/api/v1/system/terminals`: a shell on the host over a WebSocket (area and scope
//! `terminal`, admin only; a scoped token must name `terminal` itself, `*` does not reach it).
//!
//! Request flow: `POST /system/terminals {cols, rows, shell}` (auth layer: admin +
//! `terminal:write`; audited with the new session's href) → [`session::Terminals::open`] spawns
//! the shell on a PTY → the answer carries a single-use ticket (`platform::tickets`, 60 s) for
//! `GET /system/terminals/{id}/ws`. On that WebSocket binary frames are terminal bytes both
//! ways; text frames are JSON control: in `{"type":"resize","cols":C,"rows":R}` and
//! `{"type":"ping"}`; out `{"type":"pong"}`, `{"type":"exit","code":N,"reason":R}` (then close)
//! and `{"type":"replaced"}` when another client attached. A dropped client may reattach with
//! a new ticket (`POST .../{id}/ticket`) within `terminal.detach_grace_secs` and first gets the
//! recent output (`terminal.replay_bytes`). Keystrokes are never stored; the start (the POST)
//! and the end (with its reason) are in the audit log.

pub mod session;

use std::sync::{Arc, Mutex};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hostplane_types::terminal::{TerminalCreate, TerminalSession, TerminalTicket};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::{AnyState, Area, HookFuture};
use crate::error::{ApiError, ApiResult};
use crate::http::answer::created;
use crate::http::caller::Caller;
use crate::http::collection::{self, CollectionParams};
use crate::http::extract::{Json, Query};
use crate::platform::audit::Record;
use crate::platform::auth::Principal;
use crate::platform::tickets::TICKET_TTL;
use crate::state::{AppState, Services};
use session::{BASE, Ended, Session, Terminals};

pub const AREA: Area = Area {
    init: Some(init),
    start: Some(start),
    shutdown: Some(shutdown),
    ..Area::new(
        "terminal",
        "Host terminal: a shell on a PTY over a WebSocket (admin, its own scope)",
        router,
    )
};

/// This area's state: the sessions, and the ends waiting to be audited.
struct TerminalArea {
    terminals: Arc<Terminals>,
    ends: Mutex<Option<mpsc::UnboundedReceiver<(String, String, Ended)>>>,
}

fn init(services: &Services) -> anyhow::Result<Option<AnyState>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let terminals = Terminals::new(
        services.config.terminal.clone(),
        Arc::new(move |s: &Session, e: &Ended| {
            let _ = tx.send((s.user.clone(), s.id.clone(), e.clone()));
        }),
    );
    Ok(Some(Arc::new(TerminalArea {
        terminals: Arc::new(terminals),
        ends: Mutex::new(Some(rx)),
    })))
}

/// Audits each session's end as it happens.
fn start(state: AppState) -> HookFuture {
    Box::pin(async move {
        let rx = state
            .area::<TerminalArea>()
            .ends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut rx) = rx else { return };
        tokio::spawn(async move {
            while let Some((user, id, ended)) = rx.recv().await {
                let href = format!("{BASE}/{id}");
                let target = match ended.code {
                    Some(c) => format!("{href} ended: {} (exit code {c})", ended.reason),
                    None => format!("{href} ended: {}", ended.reason),
                };
                state.audit.record(Record {
                    actor: &user,
                    auth_method: None,
                    method: "TERMINAL_END",
                    path: &href,
                    target: &target,
                    status: 200,
                    remote: "",
                });
            }
        });
    })
}

fn shutdown(state: AppState) -> HookFuture {
    Box::pin(async move { state.terminals().end_all() })
}

trait TerminalState {
    fn terminals(&self) -> &Arc<Terminals>;
}

impl TerminalState for AppState {
    fn terminals(&self) -> &Arc<Terminals> {
        &self.area::<TerminalArea>().terminals
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_terminals, open_terminal))
        .routes(routes!(get_terminal, end_terminal))
        .routes(routes!(terminal_ticket))
        .routes(routes!(terminal_ws))
}

/// A ticket for the session's WebSocket, for `who`.
fn ticket_for(state: &AppState, id: &str, who: &Principal) -> TerminalTicket {
    let path = format!("{BASE}/{id}/ws");
    let ticket = state.tickets.issue(vec![path.clone()], who);
    TerminalTicket {
        id: id.to_string(),
        ws_url: format!("{path}?ticket={ticket}"),
        ticket,
        expires_at: crate::platform::time::format(
            crate::platform::time::now() + time::Duration::seconds(TICKET_TTL.as_secs() as i64),
        ),
    }
}

/// Open sessions (every admin's).
#[utoipa::path(get, path = "/api/v1/system/terminals",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("terminal:read"))),
    tag = "terminal", params(CollectionParams),
    responses((status = 200, description = "Open terminal sessions", body = [TerminalSession],
        headers(("x-total-count" = u64, description = "Items before limit/offset")))))]
async fn list_terminals(
    State(state): State<AppState>,
    Query(params): Query<CollectionParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let items: Vec<TerminalSession> = state.terminals().list().iter().map(|s| s.view()).collect();
    collection::respond(items, &params, &headers)
}

/// Starts a shell on a PTY and answers a single-use ticket for its WebSocket (`ws_url`).
#[utoipa::path(post, path = "/api/v1/system/terminals",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("terminal:write"))),
    tag = "terminal", request_body = TerminalCreate,
    responses((status = 201, description = "Session started; open `ws_url` within 60 s", body = TerminalTicket)))]
async fn open_terminal(
    State(state): State<AppState>,
    Caller(p): Caller,
    Json(req): Json<TerminalCreate>,
) -> ApiResult<Response> {
    let terminals = state.terminals().clone();
    let s = terminals.open(
        &p.user,
        req.cols.unwrap_or(80),
        req.rows.unwrap_or(24),
        req.shell.as_deref(),
    )?;
    let body = ticket_for(&state, &s.id, &p);
    Ok(created(&format!("{BASE}/{}", s.id), &body))
}

/// One session.
#[utoipa::path(get, path = "/api/v1/system/terminals/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("terminal:read"))),
    tag = "terminal", params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The session", body = TerminalSession)))]
async fn get_terminal(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TerminalSession>> {
    Ok(axum::Json(state.terminals().get(&id)?.view()))
}

/// Ends a session: its shell and everything it started get SIGKILL.
#[utoipa::path(delete, path = "/api/v1/system/terminals/{id}",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("terminal:write"))),
    tag = "terminal", params(("id" = String, Path, description = "Session id")),
    responses((status = 204, description = "Ending")))]
async fn end_terminal(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.terminals().get(&id)?.end("deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A new single-use ticket to (re)attach to a session; only for the user who opened it.
#[utoipa::path(post, path = "/api/v1/system/terminals/{id}/ticket",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("terminal:write"))),
    tag = "terminal", params(("id" = String, Path, description = "Session id")),
    responses((status = 201, description = "A ticket for the session's WebSocket", body = TerminalTicket)))]
async fn terminal_ticket(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let s = state.terminals().get(&id)?;
    if s.user != p.user {
        return Err(ApiError::Forbidden(format!(
            "terminal session {id} belongs to {}",
            s.user
        )));
    }
    let body = ticket_for(&state, &s.id, &p);
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// The session's terminal over a WebSocket (binary frames both ways, JSON text frames for
/// control). Open it with the `ws_url` a ticket came with.
#[utoipa::path(get, path = "/api/v1/system/terminals/{id}/ws",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("terminal:write"))),
    tag = "terminal",
    params(("id" = String, Path, description = "Session id"),
        ("ticket" = Option<String>, Query, description = "A terminal ticket instead of other credentials")),
    responses((status = 101, description = "Switching to WebSocket: binary frames are terminal bytes")))]
async fn terminal_ws(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let s = state.terminals().get(&id)?;
    if s.user != p.user {
        return Err(ApiError::Forbidden(format!(
            "terminal session {id} belongs to {}",
            s.user
        )));
    }
    let ws = ws.map_err(|e| ApiError::BadRequest {
        code: "websocket_upgrade_required",
        detail: format!("this endpoint speaks WebSocket only: {e}"),
    })?;
    Ok(ws.on_upgrade(move |socket| pump(socket, s)))
}

fn control(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

fn exit_message(e: &Ended) -> Message {
    control(json!({"type": "exit", "code": e.code, "reason": e.reason}))
}

/// One attached client: replay, then output and input until either side ends.
async fn pump(socket: WebSocket, s: Arc<Session>) {
    let mut a = s.attach();
    let (mut tx, mut inbound) = socket.split();
    if !a.replay.is_empty() && tx.send(Message::Binary(std::mem::take(&mut a.replay).into())).await.is_err() {
        s.detach(&a);
        return;
    }
    let mut ended = a.ended.clone();
    loop {
        let done = ended.borrow().clone();
        if let Some(e) = done {
            // What the shell printed last goes out before the exit.
            while let Ok(b) = a.output.try_recv() {
                let _ = tx.send(Message::Binary(b)).await;
            }
            let _ = tx.send(exit_message(&e)).await;
            let _ = tx.send(Message::Close(None)).await;
            return;
        }
        tokio::select! {
            out = a.output.recv() => match out {
                Ok(b) => {
                    if tx.send(Message::Binary(b)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let _ = tx.send(control(json!({"type": "lagged", "chunks": n}))).await;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = ended.changed().await;
                }
            },
            _ = ended.changed() => {}
            _ = a.replaced.cancelled() => {
                let _ = tx.send(control(json!({"type": "replaced"}))).await;
                let _ = tx.send(Message::Close(None)).await;
                return;
            }
            msg = inbound.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if s.input(&b).await.is_err() {
                        let _ = ended.changed().await;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("resize") => {
                            let dim = |k: &str| v[k].as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(0);
                            if let Err(e) = s.resize(dim("cols"), dim("rows")) {
                                let _ = tx.send(control(json!({"type": "error", "detail": e.to_string()}))).await;
                            }
                        }
                        Some("ping") => {
                            let _ = tx.send(control(json!({"type": "pong"}))).await;
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    s.detach(&a);
}
