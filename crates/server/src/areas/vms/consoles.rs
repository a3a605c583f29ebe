//! Consoles: the serial console and VNC over authenticated WebSockets, PNG screenshots, and the
//! tickets a browser uses instead of headers.
//!
//! * Serial (`GET /vms/{id}/serial`): the daemon itself stays connected to QEMU's serial socket
//!   (a [`SerialHub`] per running VM) and keeps the last 64 KiB of output, so a client that
//!   connects late still sees the boot messages. Server → client: binary frames of console
//!   output, text frames for control (`{"type":"closed","reason":...}` when the VM stops).
//!   Client → server: binary frames are typed into the console; text frames are control
//!   messages (`{"type":"ping"}` answers `{"type":"pong"}`; others are ignored).
//! * VNC (`GET /vms/{id}/vnc`): binary frames proxied both ways to QEMU's VNC unix socket, the
//!   `binary` subprotocol noVNC asks for. The first frame is the RFB banner.
//! * Screenshot (`GET /vms/{id}/screenshot`): QMP `screendump` as PNG (QEMU ≥ 7.1 writes PNG;
//!   older QEMU writes PPM, converted here).
//! * Tickets (`POST /vms/{id}/console`): see `platform::tickets`.
//! * Other areas (provisioning) reach a running VM's serial console through
//!   `platform::serial` ([`VmSerials`]). While one drives it, viewers here are read-only: what
//!   they type is dropped and a `{"type":"read_only","driver":...}` frame says why
//!   (`{"type":"read_write"}` when it is given back). The same provider names a running VM's
//!   guest agent socket.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hostplane_host::qemu::png;
use hostplane_host::qemu::qmp::QemuVersion;
use hostplane_types::vms::ConsoleTicket;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::lifecycle::qmp_error;
use super::model;
use crate::platform::tickets::TICKET_TTL;
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use super::VmsState;
use crate::state::AppState;

/// Console output kept for late joiners.
const BACKLOG: usize = 64 * 1024;

/// The daemon's own connection to a VM's serial console, shared by all WebSocket clients.
pub struct SerialHub {
    backlog: Mutex<VecDeque<u8>>,
    tx: broadcast::Sender<Bytes>,
    input: mpsc::Sender<Bytes>,
    closed: CancellationToken,
}

impl SerialHub {
    /// Connects to the serial socket (retrying while QEMU comes up) and starts pumping.
    pub fn start(path: PathBuf) -> Arc<SerialHub> {
        let (tx, _) = broadcast::channel(1024);
        let (input, mut input_rx) = mpsc::channel::<Bytes>(64);
        let hub = Arc::new(SerialHub {
            backlog: Mutex::new(VecDeque::with_capacity(4096)),
            tx,
            input,
            closed: CancellationToken::new(),
        });
        let h = hub.clone();
        tokio::spawn(async move {
            let mut stream = None;
            for _ in 0..100 {
                if h.closed.is_cancelled() {
                    return;
                }
                if let Ok(s) = UnixStream::connect(&path).await {
                    stream = Some(s);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let Some(stream) = stream else {
                tracing::warn!(path = %path.display(), "cannot connect to the serial console");
                h.closed.cancel();
                return;
            };
            let (mut r, mut w) = stream.into_split();
            let mut buf = vec![0u8; 8192];
            loop {
                tokio::select! {
                    n = r.read(&mut buf) => match n {
                        Ok(0) | Err(_) => break,
                        Ok(n) => h.push(Bytes::copy_from_slice(&buf[..n])),
                    },
                    data = input_rx.recv() => match data {
                        Some(d) => {
                            if w.write_all(&d).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = h.closed.cancelled() => break,
                }
            }
            h.closed.cancel();
        });
        hub
    }

    fn push(&self, data: Bytes) {
        let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        b.extend(data.iter().copied());
        let excess = b.len().saturating_sub(BACKLOG);
        b.drain(..excess);
        // Under the backlog lock, so a subscriber never misses or doubles a chunk.
        let _ = self.tx.send(data);
    }

    /// The backlog so far and a receiver for what follows.
    pub fn subscribe(&self) -> (Vec<u8>, broadcast::Receiver<Bytes>) {
        let b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        (b.iter().copied().collect(), self.tx.subscribe())
    }

    pub async fn send(&self, data: Bytes) {
        let _ = self.input.send(data).await;
    }

    pub fn close(&self) {
        self.closed.cancel();
    }
}

/// The serial consoles as `platform::serial` offers them to other areas.
pub struct VmSerials;

impl crate::platform::serial::SerialPort for SerialHub {
    fn subscribe(&self) -> (Vec<u8>, broadcast::Receiver<Bytes>) {
        SerialHub::subscribe(self)
    }

    fn send<'a>(
        &'a self,
        data: Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(SerialHub::send(self, data))
    }

    fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }
}

impl crate::platform::serial::SerialProvider for VmSerials {
    fn open<'a>(
        &'a self,
        state: &'a AppState,
        vm: &'a str,
    ) -> crate::platform::workloads::WorkFuture<
        'a,
        (String, Arc<dyn crate::platform::serial::SerialPort>),
    > {
        Box::pin(async move {
            let rec = model::find(&state.store, vm)?;
            let rt = state.vms().require_running(&rec.id)?;
            let port: Arc<dyn crate::platform::serial::SerialPort> = rt.serial.clone();
            Ok((rec.id, port))
        })
    }

    fn agent_socket<'a>(
        &'a self,
        state: &'a AppState,
        vm: &'a str,
    ) -> crate::platform::workloads::WorkFuture<'a, (String, PathBuf)> {
        Box::pin(async move {
            let rec = model::find(&state.store, vm)?;
            let rt = state.vms().require_running(&rec.id)?;
            Ok((rec.id, rt.files.qga.clone()))
        })
    }

    fn forwarded_port<'a>(
        &'a self,
        state: &'a AppState,
        vm: &'a str,
        guest_port: u16,
    ) -> crate::platform::workloads::WorkFuture<'a, Option<u16>> {
        Box::pin(async move {
            let rec = model::find(&state.store, vm)?;
            let rt = state.vms().require_running(&rec.id)?;
            // What QEMU runs with, not the stored definition (a NIC added for the next boot
            // has no forward yet).
            Ok(rt
                .launched()
                .nics
                .iter()
                .filter(|n| n.mode == hostplane_types::vms::NicMode::User)
                .flat_map(|n| n.port_forwards.iter())
                .find(|p| {
                    p.guest_port == guest_port
                        && p.protocol == hostplane_types::vms::ForwardProtocol::Tcp
                })
                .map(|p| p.host_port))
        })
    }
}

fn upgrade(ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> ApiResult<WebSocketUpgrade> {
    ws.map_err(|e| ApiError::BadRequest {
        code: "websocket_upgrade_required",
        detail: format!("this endpoint speaks WebSocket only: {e}"),
    })
}

fn control(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

/// Serial console over a WebSocket: binary frames carry console bytes both ways; text frames
/// carry JSON control messages. Authenticated like every route, or with `?ticket=`.
#[utoipa::path(get, path = "/api/v1/vms/{id}/serial",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"),
        ("ticket" = Option<String>, Query, description = "A console ticket instead of other credentials")),
    responses((status = 101, description = "Switching to WebSocket: binary frames are console data")))]
pub async fn serial_ws(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let rec = model::find(&state.store, &id)?;
    let rt = state.vms().require_running(&rec.id)?;
    let ws = upgrade(ws)?;
    let hub = rt.serial.clone();
    let driver = state.serial.watch(&rec.id);
    Ok(ws.on_upgrade(move |socket| serial_session(socket, hub, driver)))
}

fn driver_frame(driver: &Option<String>) -> Message {
    match driver {
        Some(d) => control(json!({"type": "read_only", "driver": d,
            "reason": format!("{d} is driving this console; what you type is dropped")})),
        None => control(json!({"type": "read_write"})),
    }
}

async fn serial_session(
    socket: WebSocket,
    hub: Arc<SerialHub>,
    mut driver: tokio::sync::watch::Receiver<Option<String>>,
) {
    let (backlog, mut rx) = hub.subscribe();
    let (mut tx, mut inbound) = socket.split();
    if !backlog.is_empty() && tx.send(Message::Binary(backlog.into())).await.is_err() {
        return;
    }
    let driven = driver.borrow_and_update().clone();
    if driven.is_some() && tx.send(driver_frame(&driven)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            Ok(()) = driver.changed() => {
                let d = driver.borrow_and_update().clone();
                if tx.send(driver_frame(&d)).await.is_err() {
                    return;
                }
            }
            out = rx.recv() => match out {
                Ok(b) => {
                    if tx.send(Message::Binary(b)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let _ = tx.send(control(json!({"type": "lagged", "chunks": n}))).await;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = hub.closed.cancelled() => break,
            msg = inbound.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if driver.borrow().is_none() {
                        hub.send(b).await;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    if v["type"] == "ping" {
                        let _ = tx.send(control(json!({"type": "pong"}))).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = tx
        .send(control(
            json!({"type": "closed", "reason": "the VM stopped"}),
        ))
        .await;
    let _ = tx.send(Message::Close(None)).await;
}

/// VNC over a WebSocket (noVNC-compatible): binary frames proxied to QEMU's VNC server.
#[utoipa::path(get, path = "/api/v1/vms/{id}/vnc",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name"),
        ("ticket" = Option<String>, Query, description = "A console ticket instead of other credentials")),
    responses((status = 101, description = "Switching to WebSocket (subprotocol `binary`): RFB in binary frames")))]
pub async fn vnc_ws(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let rec = model::find(&state.store, &id)?;
    let rt = state.vms().require_running(&rec.id)?;
    let ws = upgrade(ws)?;
    let vnc = UnixStream::connect(&rt.files.vnc)
        .await
        .map_err(|e| ApiError::conflict("vnc_unavailable", format!("QEMU's VNC socket: {e}")))?;
    Ok(ws
        .protocols(["binary"])
        .on_upgrade(move |socket| vnc_session(socket, vnc)))
}

async fn vnc_session(socket: WebSocket, vnc: UnixStream) {
    let (mut r, mut w) = vnc.into_split();
    let (mut tx, mut inbound) = socket.split();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = r.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
            },
            msg = inbound.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if w.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = tx.send(Message::Close(None)).await;
}

/// A PNG screenshot of the VM's display.
#[utoipa::path(get, path = "/api/v1/vms/{id}/screenshot",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:read"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 200, description = "The display as PNG", content_type = "image/png", body = Vec<u8>)))]
pub async fn screenshot(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let rec = model::find(&state.store, &id)?;
    let rt = state.vms().require_running(&rec.id)?;
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).expect("the OS random source works");
    let png_native = rt.qmp.version()
        >= QemuVersion {
            major: 7,
            minor: 1,
            micro: 0,
        };
    let file = rt.files.dir.join(format!(
        "shot-{}.{}",
        hex::encode(raw),
        if png_native { "png" } else { "ppm" }
    ));
    let mut args = json!({"filename": file.to_string_lossy()});
    if png_native {
        args["format"] = json!("png");
    }
    let res = rt.qmp.execute("screendump", Some(args)).await;
    let data = tokio::fs::read(&file).await;
    let _ = tokio::fs::remove_file(&file).await;
    res.map_err(qmp_error)?;
    let data = data.map_err(ApiError::internal)?;
    let body = if png_native {
        data
    } else {
        png::ppm_to_png(&data)
            .ok_or_else(|| ApiError::internal("QEMU wrote a PPM this cannot read"))?
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// A single-use ticket for one console WebSocket of this VM, valid for 60 s: for browsers,
/// which cannot send headers on a WebSocket. Works for sessions and API tokens alike.
#[utoipa::path(post, path = "/api/v1/vms/{id}/console",
    extensions(("x-required-role" = json!("operator")), ("x-required-scope" = json!("vms:write"))),
    tag = "vms",
    params(("id" = String, Path, description = "VM id or name")),
    responses((status = 201, description = "A ticket and the console URLs that carry it", body = ConsoleTicket)))]
pub async fn console_ticket(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let rec = model::find(&state.store, &id)?;
    let base = format!("/api/v1/vms/{}", rec.id);
    let ticket = state
        .tickets
        .issue(vec![format!("{base}/serial"), format!("{base}/vnc")], &p);
    let expires = crate::platform::time::format(
        crate::platform::time::now() + time::Duration::seconds(TICKET_TTL.as_secs() as i64),
    );
    let body = ConsoleTicket {
        serial_url: format!("{base}/serial?ticket={ticket}"),
        vnc_url: format!("{base}/vnc?ticket={ticket}"),
        ticket,
        expires_at: expires,
    };
    Ok((axum::http::StatusCode::CREATED, axum::Json(body)).into_response())
}
