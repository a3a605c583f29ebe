//! Engine events into the hostplane event stream.
//!
//! Flow: the area's `start` hook spawns one task per engine ([`follow`]). Each reads the
//! engine's own event stream (`hostplane_host::containers::events`: pushed by the engine, not
//! polled) and publishes `container.create|start|die|destroy` with the container's href. Who
//! caused it: handlers that act on a container [`Actors::note`] it first (engine, name, user);
//! an event for a container noted within [`NOTE_TTL`] carries that user as its actor and
//! `origin: "hostplane"`, any other says `actor: "engine:<name>"`, `origin: "engine"` (the
//! `docker` CLI, compose, a restart policy). When an engine goes away the task reconnects with
//! a backoff (1 s doubling to 30 s), and says so once in the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hostplane_host::containers::Engine;
use hostplane_host::containers::convert::container_href;
use hostplane_host::containers::events::ContainerEvent;
use serde_json::json;

use super::ContainersState;
use crate::areas::HookFuture;
use crate::state::AppState;

/// How long an action hostplane took explains the engine's events for that container.
pub const NOTE_TTL: Duration = Duration::from_secs(60);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Who last acted on which container through hostplane.
#[derive(Default)]
pub struct Actors(Mutex<HashMap<(String, String), (String, Instant)>>);

impl Actors {
    /// `actor` is about to act on container `name` (a name or an id) of `engine`.
    pub fn note(&self, engine: &str, name: &str, actor: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (_, t)| t.elapsed() < NOTE_TTL);
        m.insert(
            (engine.to_string(), name.to_string()),
            (actor.to_string(), Instant::now()),
        );
    }

    /// The user who acted on the container of event `e` lately, if any.
    pub fn who(&self, engine: &str, e: &ContainerEvent) -> Option<String> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |k: &str| {
            m.get(&(engine.to_string(), k.to_string()))
                .filter(|(_, t)| t.elapsed() < NOTE_TTL)
                .map(|(a, _)| a.clone())
        };
        fresh(&e.name)
            .or_else(|| fresh(&e.id))
            .or_else(|| {
                // A note made with a short id.
                m.iter()
                    .find(|((en, k), (_, t))| {
                        en == engine && k.len() >= 12 && e.id.starts_with(k.as_str())
                            && t.elapsed() < NOTE_TTL
                    })
                    .map(|(_, (a, _))| a.clone())
            })
    }
}

/// The `start` hook: one follower per engine.
pub fn start(state: AppState) -> HookFuture {
    Box::pin(async move {
        for e in state.engines().all() {
            tokio::spawn(follow(state.clone(), e.clone()));
        }
    })
}

/// Reads `engine`'s events for as long as the daemon runs. While a stream is open the
/// engine's inspection cache is live (the stream invalidates it); it is emptied and off from
/// the moment a stream ends until the next one is open.
async fn follow(state: AppState, engine: Arc<Engine>) {
    let mut backoff = Duration::from_secs(1);
    let mut said_down = false;
    loop {
        // Live before subscribing, with the stream replaying from this second: an event
        // between the two still invalidates. Replayed events older than `from` are not
        // published again.
        let from = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        engine.cache().set_live(true);
        match engine.container_events(from.as_secs() as i64).await {
            Ok(stream) => {
                if said_down {
                    tracing::info!(engine = engine.name(), "following the engine's events again");
                }
                said_down = false;
                backoff = Duration::from_secs(1);
                let from_nano = from.as_nanos() as i64;
                let mut stream = Box::pin(stream);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(ev) if ev.time_nano != 0 && ev.time_nano < from_nano => {}
                        Ok(ev) => publish(&state, engine.name(), &ev),
                        Err(err) => {
                            tracing::debug!(engine = engine.name(), error = %err, "event stream ended");
                            break;
                        }
                    }
                }
            }
            Err(err) => {
                if !said_down {
                    tracing::warn!(engine = engine.name(), error = %err,
                        "cannot follow the engine's events; retrying with a backoff");
                    said_down = true;
                }
            }
        }
        engine.cache().set_live(false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn publish(state: &AppState, engine: &str, ev: &ContainerEvent) {
    let who = state.engines().actors.who(engine, ev);
    let origin = if who.is_some() { "hostplane" } else { "engine" };
    let actor = who.unwrap_or_else(|| format!("engine:{engine}"));
    let name = if ev.name.is_empty() { &ev.id } else { &ev.name };
    state.events.publish(
        &format!("container.{}", ev.action),
        &container_href(engine, name),
        &actor,
        json!({
            "engine": engine,
            "id": ev.id,
            "name": name,
            "image": ev.image,
            "exit_code": ev.exit_code,
            "origin": origin,
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_container_names_its_actor() {
        let a = Actors::default();
        a.note("docker", "web", "alice");
        a.note("docker", "0123456789abcdef", "bob");
        let ev = |id: &str, name: &str| ContainerEvent {
            action: "start".into(),
            id: id.into(),
            name: name.into(),
            image: None,
            exit_code: None,
            time_nano: 0,
        };
        assert_eq!(a.who("docker", &ev("ff", "web")).as_deref(), Some("alice"));
        assert_eq!(a.who("podman", &ev("ff", "web")), None);
        assert_eq!(
            a.who("docker", &ev("0123456789abcdef0000", "x")).as_deref(),
            Some("bob")
        );
        assert_eq!(a.who("docker", &ev("99", "other")), None);
    }
}
