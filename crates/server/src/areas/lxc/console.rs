//! The attach console: `lxc-attach` (the container's root shell) on a pseudo-terminal
//! (`Cmd::spawn_pty`), forwarded over a WebSocket with the VM consoles' framing.
//!
//! Flow: `POST /lxc/{name}/console` hands out a single-use ticket (`platform::tickets`) for
//! `GET /lxc/{name}/attach`, which browsers open with `?ticket=` (other clients may use their
//! usual credentials). On upgrade, `lxc-attach` starts in a PTY of `cols` × `rows`.
//! Binary frames carry the terminal both ways. Text frames are JSON control messages: the
//! client sends `{"type":"resize","cols":N,"rows":N}` (and `{"type":"ping"}`, answered with
//! `{"type":"pong"}`); the server sends `{"type":"exit","code":N}` when the shell ends, then
//! closes. A client that goes away kills the shell (its whole session).

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hostplane_host::command::PtyChild;
use hostplane_types::lxc::{LxcConsoleTicket, LxcState as S};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::{LxcState, lxc_error, model};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use crate::http::extract::Query;
use crate::platform::tickets::TICKET_TTL;
use crate::state::AppState;

fn attach_path(name: &str) -> String {
    format!("{}/attach", model::href(name))
}

/// A single-use ticket for the attach WebSocket of this container, valid for 60 s (browsers
/// cannot send headers on a WebSocket). Admin only: a root shell in the container.
#[utoipa::path(post, path = "/api/v1/lxc/{name}/console",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name")),
    responses((status = 201, description = "A ticket and the URL that carries it", body = LxcConsoleTicket)))]
pub async fn console_ticket(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    model::check_path_name(&name)?;
    if !state.lxc().lxc.exists(&name) {
        return Err(ApiError::not_found(format!("LXC container {name:?}")));
    }
    let path = attach_path(&name);
    let ticket = state.tickets.issue(vec![path.clone()], &p);
    let body = LxcConsoleTicket {
        url: format!("{path}?ticket={ticket}"),
        ticket,
        expires_at: crate::platform::time::format(
            crate::platform::time::now() + time::Duration::seconds(TICKET_TTL.as_secs() as i64),
        ),
    };
    Ok((axum::http::StatusCode::CREATED, axum::Json(body)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttachParams {
    /// A console ticket instead of other credentials.
    pub ticket: Option<String>,
    /// Terminal columns (1 .. 1000; default 80).
    #[param(minimum = 1, maximum = 1000)]
    pub cols: Option<u16>,
    /// Terminal rows (1 .. 1000; default 24).
    #[param(minimum = 1, maximum = 1000)]
    pub rows: Option<u16>,
}

fn size(v: Option<u16>, default: u16, field: &str) -> ApiResult<u16> {
    let v = v.unwrap_or(default);
    if (1..=1000).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::invalid_field(
            "invalid_terminal_size",
            field,
            "must be 1 .. 1000",
        ))
    }
}

/// A root shell in a running container (`lxc-attach` in a PTY) over a WebSocket: binary frames
/// are the terminal, text frames JSON control (`resize` in, `exit` out).
#[utoipa::path(get, path = "/api/v1/lxc/{name}/attach",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("lxc:write"))),
    tag = "lxc",
    params(("name" = String, Path, description = "Container name"), AttachParams),
    responses((status = 101, description = "Switching to WebSocket: binary frames are the terminal")))]
pub async fn attach_ws(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<AttachParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let (cols, rows) = (size(q.cols, 80, "cols")?, size(q.rows, 24, "rows")?);
    let c = super::routes::get_one(&state, &name).await?;
    if c.state != S::Running {
        return Err(ApiError::conflict(
            "lxc_state",
            format!("LXC container {name:?} is not running"),
        ));
    }
    let ws = ws.map_err(|e| ApiError::BadRequest {
        code: "websocket_upgrade_required",
        detail: format!("this endpoint speaks WebSocket only: {e}"),
    })?;
    let child = state
        .lxc()
        .lxc
        .attach_pty(&name, &[], cols, rows)
        .map_err(lxc_error)?;
    Ok(ws.on_upgrade(move |socket| session(socket, child)))
}

fn control(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

async fn session(socket: WebSocket, mut child: PtyChild) {
    let master = child.io();
    let (mut tx, mut inbound) = socket.split();
    // A reader task, so a large paste being written never waits on output being read.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let reader = {
        let master = master.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = master.read(&mut buf).await {
                if n == 0 || out_tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut client_left = false;
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(b) => {
                    if tx.send(Message::Binary(b)).await.is_err() {
                        client_left = true;
                        break;
                    }
                }
                None => break,
            },
            msg = inbound.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if master.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("resize") => {
                            let dim = |k: &str| v[k].as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| (1..=1000).contains(n));
                            if let (Some(c), Some(r)) = (dim("cols"), dim("rows")) {
                                let _ = master.resize(c, r);
                            }
                        }
                        Some("ping") => {
                            let _ = tx.send(control(json!({"type": "pong"}))).await;
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_left = true;
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    reader.abort();
    if client_left {
        let _ = child.kill().await;
        return;
    }
    let code = match tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await {
        Ok(Ok(s)) => s.code(),
        _ => {
            let _ = child.kill().await;
            None
        }
    };
    let _ = tx.send(control(json!({"type": "exit", "code": code}))).await;
    let _ = tx.send(Message::Close(None)).await;
}
