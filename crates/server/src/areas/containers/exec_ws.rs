//! The exec terminal: `POST /containers/{engine}/{name}/exec` with `tty: true` and its
//! WebSocket `GET /containers/{engine}/{name}/exec/{id}/ws`.
//!
//! Flow: the POST (admin; validated by `model::check_exec`) creates the exec in the engine
//! (not started) and answers a single-use ticket (`platform::tickets`) for exactly the exec's
//! WebSocket path — browsers cannot send headers on a WebSocket. The GET (ticket or any other
//! credential; still admin) checks the exec belongs to the container and never ran, upgrades,
//! starts the exec attached with its PTY, and pumps: binary frames ↔ the PTY; text frames
//! carry JSON control, the same framing as the VM consoles (`{"type":"resize","cols":..,
//! "rows":..}` in; `{"type":"exit","code":N}` out when the command ended, then Close). A client
//! that goes away closes the PTY's input: the shell sees end of input and exits.

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hostplane_host::containers::Engine;
use hostplane_host::containers::exec::TtyExec;
use hostplane_types::API_BASE;
use hostplane_types::container_io::ExecTicket;
use hostplane_types::containers::ExecRequest;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ContainersState, engine_error, model};
use crate::error::{ApiError, ApiResult};
use crate::platform::auth::Principal;
use crate::platform::tickets::TICKET_TTL;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(exec_ws))
}

/// The WebSocket path of exec `id`.
pub fn ws_path(engine: &str, name: &str, id: &str) -> String {
    format!("{API_BASE}/containers/{engine}/{name}/exec/{id}/ws")
}

/// Creates a terminal exec (not started) and a ticket for its WebSocket. Called by the exec
/// POST when `tty` is set (the request was validated there).
pub async fn open(
    state: &AppState,
    who: &Principal,
    engine: &Engine,
    name: &str,
    req: &ExecRequest,
) -> ApiResult<ExecTicket> {
    // A stopped container cannot run an exec: say so now, not when the socket opens.
    let c = engine.inspect(name).await.map_err(engine_error)?;
    if c.state != hostplane_types::containers::ContainerState::Running {
        return Err(ApiError::conflict(
            "container_state",
            format!("container {name:?} is not running: an exec needs a running container"),
        ));
    }
    let id = engine
        .create_tty_exec(name, req)
        .await
        .map_err(engine_error)?;
    let path = ws_path(engine.name(), name, &id);
    let ticket = state.tickets.issue(vec![path.clone()], who);
    let expires = crate::platform::time::format(
        crate::platform::time::now() + time::Duration::seconds(TICKET_TTL.as_secs() as i64),
    );
    Ok(ExecTicket {
        ws_url: format!("{path}?ticket={ticket}"),
        id,
        ticket,
        expires_at: expires,
    })
}

/// The terminal of an exec made by `POST .../exec` with `tty: true`, over a WebSocket:
/// binary frames carry the PTY both ways; text frames carry JSON control
/// (`{"type":"resize","cols":80,"rows":24}` in, `{"type":"exit","code":0}` out). Admin only.
#[utoipa::path(get, path = "/api/v1/containers/{engine}/{name}/exec/{id}/ws",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("containers:write"))),
    tag = "containers",
    params(("engine" = String, Path, description = "Engine name"),
        ("name" = String, Path, description = "Container name or id"),
        ("id" = String, Path, description = "The exec's id (from the ticket answer)"),
        ("ticket" = Option<String>, Query, description = "The exec's ticket instead of other credentials")),
    responses((status = 101, description = "Switching to WebSocket: binary frames are the terminal")))]
async fn exec_ws(
    State(state): State<AppState>,
    Path((engine, name, id)): Path<(String, String, String)>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let e = state.engines().get(&engine)?.clone();
    model::check_path_name("container", &name)?;
    model::check_path_name("exec", &id)?;
    let ws = ws.map_err(|err| ApiError::BadRequest {
        code: "websocket_upgrade_required",
        detail: format!("this endpoint speaks WebSocket only: {err}"),
    })?;
    // Started before the upgrade, so a wrong or used exec is an HTTP answer, not a socket
    // that closes at once.
    let tty = e.attach_tty_exec(&name, &id).await.map_err(engine_error)?;
    Ok(ws.on_upgrade(move |socket| session(socket, e, id, tty)))
}

fn control(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

/// A resize request from a control frame: `{"type":"resize","cols":C,"rows":R}`, both 1 .. 10000.
pub fn parse_resize(text: &str) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v["type"] != "resize" {
        return None;
    }
    let dim = |k: &str| {
        v[k].as_u64()
            .filter(|n| (1..=10000).contains(n))
            .map(|n| n as u16)
    };
    Some((dim("cols")?, dim("rows")?))
}

async fn session(socket: WebSocket, engine: Arc<Engine>, id: String, tty: TtyExec) {
    let TtyExec {
        mut output,
        mut input,
    } = tty;
    let (mut tx, mut inbound) = socket.split();
    let mut client_gone = false;
    loop {
        tokio::select! {
            out = output.next() => match out {
                Some(Ok(chunk)) => {
                    if tx.send(Message::Binary(chunk.into_bytes())).await.is_err() {
                        client_gone = true;
                        break;
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!(engine = engine.name(), exec = %id, error = %err, "exec output ended");
                    break;
                }
                None => break,
            },
            msg = inbound.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if input.write_all(&b).await.is_err() || input.flush().await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if let Some((cols, rows)) = parse_resize(t.as_str()) {
                        if let Err(err) = engine.resize_exec(&id, cols, rows).await {
                            tracing::debug!(exec = %id, error = %err, "resize refused");
                        }
                    } else if serde_json::from_str::<serde_json::Value>(t.as_str())
                        .is_ok_and(|v| v["type"] == "ping")
                    {
                        let _ = tx.send(control(json!({"type": "pong"}))).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_gone = true;
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    // Closing the input ends a shell that reads it (end of input, then hangup).
    let _ = input.shutdown().await;
    drop(input);
    if client_gone {
        return;
    }
    // The output ended: the process exited; the engine records its code a moment later.
    let mut code = None;
    for _ in 0..50 {
        match engine.exec_exit_code(&id).await {
            Ok(Some(c)) => {
                code = Some(c);
                break;
            }
            Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(_) => break,
        }
    }
    let _ = tx.send(control(json!({"type": "exit", "code": code}))).await;
    let _ = tx.send(Message::Close(None)).await;
}

/// Answer of the exec POST when it made a terminal.
pub fn ticket_response(t: ExecTicket) -> Response {
    (axum::http::StatusCode::CREATED, axum::Json(t)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages() {
        assert_eq!(
            parse_resize(r#"{"type":"resize","cols":100,"rows":30}"#),
            Some((100, 30))
        );
        assert_eq!(parse_resize(r#"{"type":"resize","cols":0,"rows":30}"#), None);
        assert_eq!(parse_resize(r#"{"type":"resize","cols":10}"#), None);
        assert_eq!(parse_resize(r#"{"type":"ping"}"#), None);
        assert_eq!(parse_resize("nonsense"), None);
    }
}
