//! `GET /api/v1/events`: Server-Sent Events of job and resource changes.
//!
//! Each SSE message has `id: <seq>`, `event: <type>` and the JSON [`Event`] as data. A client
//! that reconnects with `Last-Event-ID: <seq>` (or `?last_event_id=`) first gets the stored
//! events after that number — up to `events.replay_window` of them, kept across restarts — then
//! the live ones, with no duplicate and no hole. If it is further behind than the window, or
//! falls behind the live stream by more than 1024 events, it gets a `stream.gap` event (no id)
//! and should refetch state; the stream then ends after a gap in the live part, so the client
//! reconnects and replays from the store. `?type=job.*,resource.deleted` filters by type
//! (comma list, `*` at the end matches a prefix). A comment every 15 s keeps proxies open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use futures_util::StreamExt;
use hostplane_types::events::Event;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::{ApiError, ApiResult};
use crate::http::access;
use crate::http::caller::Caller;
use crate::http::extract::Query;
use crate::platform::auth::Principal;
use crate::areas::Area;
use crate::state::AppState;

pub const AREA: Area = Area::new("events", "Event stream (SSE)", router);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(events_ws))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventParams {
    /// Comma-separated event types; `*` at the end matches a prefix (`job.*`).
    #[param(
        pattern = "^[A-Za-z0-9._]*\\*?(,[A-Za-z0-9._]*\\*?)*$",
        max_length = 1024
    )]
    r#type: Option<String>,
    /// Replay events after this sequence number (same as the `Last-Event-ID` header).
    #[param(minimum = 0)]
    last_event_id: Option<i64>,
}

struct TypeFilter(Vec<String>);

impl TypeFilter {
    fn parse(s: Option<&str>) -> Result<TypeFilter, ApiError> {
        let mut pats = Vec::new();
        for p in s
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let stem = p.strip_suffix('*').unwrap_or(p);
            let ok = stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
            if !ok || p.len() > 1024 {
                return Err(ApiError::invalid_field(
                    "invalid_filter",
                    "type",
                    format!("{p:?} is not an event type pattern (e.g. job.* or resource.created)"),
                ));
            }
            pats.push(p.to_string());
        }
        Ok(TypeFilter(pats))
    }

    fn matches(&self, ty: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => ty.starts_with(prefix),
                None => ty == p,
            })
    }
}

/// What one subscriber gets: the types it asked for, of the events it may see (the GET
/// access of the event's `href`, and for jobs of their target: see
/// `AccessTable::may_see_event`).
struct Subscription {
    types: TypeFilter,
    who: Principal,
}

impl Subscription {
    fn matches(&self, e: &Event) -> bool {
        self.types.matches(&e.r#type) && access::table().may_see_event(&self.who, e)
    }
}

fn sse(e: &Event) -> SseEvent {
    let ev = SseEvent::default();
    // A live-only event (seq 0) has no id, so it does not move the client's Last-Event-ID.
    let ev = if e.seq == 0 { ev } else { ev.id(e.seq.to_string()) };
    ev.event(e.r#type.clone())
        .data(serde_json::to_string(e).unwrap_or_default())
}

fn gap(after: u64) -> SseEvent {
    SseEvent::default().event("stream.gap").data(format!(
        r#"{{"after":{after},"detail":"events were missed; refetch state"}}"#
    ))
}

/// One item of an event stream: an event, or notice that some were missed after `after`.
enum Item {
    Event(Arc<Event>),
    Gap(u64),
}

/// Replay from the store after `since` (if given), then live events; filtered by type.
fn event_stream(
    state: &AppState,
    filter: Subscription,
    since: Option<u64>,
) -> ApiResult<impl futures_util::Stream<Item = Item> + Send + 'static> {
    let filter = Arc::new(filter);
    // Subscribe before reading the store so nothing falls between replay and live.
    let rx = state.events.subscribe();
    let (replay, missed_some, last) = match since {
        Some(seq) => {
            let (events, gap) = state.events.since(seq)?;
            let last = events.last().map(|e| e.seq).unwrap_or(seq);
            (events, gap, last)
        }
        None => (Vec::new(), false, state.events.last_seq()),
    };
    let mut head = Vec::with_capacity(replay.len() + 1);
    if missed_some {
        head.push(Item::Gap(since.unwrap_or(0)));
    }
    head.extend(
        replay
            .into_iter()
            .filter(|e| filter.matches(e))
            .map(|e| Item::Event(Arc::new(e))),
    );
    let live = futures_util::stream::unfold(
        (BroadcastStream::new(rx), last, false),
        move |(mut rx, mut last, ended)| {
            let filter = filter.clone();
            async move {
                if ended {
                    return None;
                }
                loop {
                    match rx.next().await? {
                        // Live-only (seq 0, `Events::publish_live`): never replayed.
                        Ok(e) if e.seq == 0 => {
                            if filter.matches(&e) {
                                return Some((Item::Event(e), (rx, last, false)));
                            }
                        }
                        // Already sent from the replay.
                        Ok(e) if e.seq <= last => continue,
                        Ok(e) => {
                            last = e.seq;
                            if filter.matches(&e) {
                                return Some((Item::Event(e), (rx, last, false)));
                            }
                        }
                        // Too slow: say so and end; a reconnect replays from the store.
                        Err(BroadcastStreamRecvError::Lagged(_)) => {
                            return Some((Item::Gap(last), (rx, last, true)));
                        }
                    }
                }
            }
        },
    );
    // `events.max_stream_secs`: the stream ends; the client resumes with Last-Event-ID.
    let limit = state.config.events.max_stream_secs;
    let deadline = async move {
        match limit {
            0 => std::future::pending::<()>().await,
            s => tokio::time::sleep(Duration::from_secs(s)).await,
        }
    };
    Ok(futures_util::stream::iter(head)
        .chain(live)
        .take_until(deadline))
}

fn last_event_id(v: Option<i64>) -> ApiResult<Option<u64>> {
    match v {
        Some(n) if n < 0 => Err(ApiError::invalid_field(
            "invalid_last_event_id",
            "last_event_id",
            "must be a sequence number (0 or more)",
        )),
        other => Ok(other.map(|n| n as u64)),
    }
}

fn gap_json(after: u64) -> String {
    format!(
        r#"{{"type":"stream.gap","after":{after},"detail":"events were missed; refetch state"}}"#
    )
}

/// Stream of job and resource events (SSE), with replay from `Last-Event-ID`.
#[utoipa::path(get, path = "/api/v1/events",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("events:read"))),
    tag = "events", params(EventParams,
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = "^[0-9]{1,19}$", description = "Replay events after this sequence number")),
    responses((status = 200, description = "An SSE stream; each data line is an Event", content_type = "text/event-stream", body = Event)))]
async fn events(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(params): Query<EventParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let filter = Subscription {
        types: TypeFilter::parse(params.r#type.as_deref())?,
        who,
    };
    let header_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "invalid_last_event_id",
                        "Last-Event-ID",
                        "must be a sequence number",
                    )
                })?,
        ),
        None => None,
    };
    let stream = event_stream(
        &state,
        filter,
        header_id.or(last_event_id(params.last_event_id)?),
    )?
    .map(|item| {
        Ok::<_, Infallible>(match item {
            Item::Event(e) => sse(&e),
            Item::Gap(after) => gap(after),
        })
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The same stream over a WebSocket (for the web UI): one JSON [`Event`] per text frame; a
/// `stream.gap` notice is a text frame too. Authenticated like every route (cookie, bearer,
/// `?token=`); replay with `?last_event_id=`.
#[utoipa::path(get, path = "/api/v1/events/ws",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("events:read"))),
    tag = "events", params(EventParams),
    responses((status = 101, description = "Switching to WebSocket; text frames carry Event JSON")))]
async fn events_ws(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(params): Query<EventParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = ws.map_err(|e| ApiError::BadRequest {
        code: "websocket_upgrade_required",
        detail: format!("this endpoint speaks WebSocket only: {e}"),
    })?;
    let filter = Subscription {
        types: TypeFilter::parse(params.r#type.as_deref())?,
        who,
    };
    let stream = event_stream(&state, filter, last_event_id(params.last_event_id)?)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let (mut tx, mut rx) = socket.split();
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                item = stream.next() => {
                    let text = match item {
                        Some(Item::Event(e)) => serde_json::to_string(&*e).unwrap_or_default(),
                        Some(Item::Gap(after)) => gap_json(after),
                        None => break,
                    };
                    if tx.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                // The client closed (or sent something): inbound frames are ignored, close ends.
                msg = rx.next() => match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }))
}
