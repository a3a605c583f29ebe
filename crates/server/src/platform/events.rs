//! The event bus: job and resource changes, numbered, kept for replay, pushed to subscribers.
//!
//! Flow: an area or the job engine calls [`Events::publish`]; the event gets the next sequence
//! number, is written to the `events` table (so replay survives a restart) and is sent on a
//! broadcast channel to every open `GET /api/v1/events` stream. A client reconnecting with
//! `Last-Event-ID: N` gets the stored events after N, then the live ones. The store keeps the
//! last `events.replay_window` events; a client further behind gets a `stream.gap` event.

use std::sync::{Arc, Mutex};

use hostplane_types::events::Event;
use rusqlite::params;
use tokio::sync::broadcast;

use crate::platform::store::Store;
use crate::platform::time;

pub struct Events {
    store: Arc<Store>,
    tx: broadcast::Sender<Arc<Event>>,
    /// Last sequence number handed out; the lock also orders inserts with sends.
    last_seq: Mutex<u64>,
    window: u64,
}

impl Events {
    pub fn new(store: Arc<Store>, window: usize) -> rusqlite::Result<Events> {
        let last: i64 = store
            .read(|c| c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0)))?;
        let (tx, _) = broadcast::channel(1024);
        Ok(Events {
            store,
            tx,
            last_seq: Mutex::new(last as u64),
            window: window as u64,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn last_seq(&self) -> u64 {
        *self.last_seq.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records and broadcasts one event. A store failure is logged, never fatal to the caller.
    pub fn publish(&self, r#type: &str, href: &str, actor: &str, data: serde_json::Value) {
        let mut last = self.last_seq.lock().unwrap_or_else(|p| p.into_inner());
        let event = Event {
            seq: *last + 1,
            time: time::now_string(),
            r#type: r#type.to_string(),
            href: href.to_string(),
            actor: actor.to_string(),
            data,
        };
        let prune_below = event
            .seq
            .is_multiple_of(256)
            .then(|| event.seq.saturating_sub(self.window));
        let res = self.store.write(|tx| {
            tx.execute(
                "INSERT INTO events(seq, time, type, href, actor, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    event.seq as i64,
                    event.time,
                    event.r#type,
                    event.href,
                    event.actor,
                    event.data.to_string()
                ],
            )?;
            if let Some(below) = prune_below {
                tx.execute("DELETE FROM events WHERE seq <= ?1", [below as i64])?;
            }
            Ok(())
        });
        if let Err(e) = res {
            tracing::error!(error = %e, "cannot store event");
            return;
        }
        *last = event.seq;
        // No receivers is fine.
        let _ = self.tx.send(Arc::new(event));
    }

    /// Broadcasts a live-only event (`metrics.sample`): not stored, never replayed, `seq` 0
    /// (no SSE id), so frequent samples neither fill the replay window nor move
    /// `Last-Event-ID`.
    pub fn publish_live(&self, r#type: &str, href: &str, actor: &str, data: serde_json::Value) {
        let event = Event {
            seq: 0,
            time: time::now_string(),
            r#type: r#type.to_string(),
            href: href.to_string(),
            actor: actor.to_string(),
            data,
        };
        let _ = self.tx.send(Arc::new(event));
    }

    /// Events after `seq` still in the replay window, oldest first, and whether some were
    /// already pruned (the client missed more than the window holds).
    pub fn since(&self, seq: u64) -> rusqlite::Result<(Vec<Event>, bool)> {
        let (events, oldest) = self.store.read(|c| {
            let oldest: Option<i64> =
                c.query_row("SELECT MIN(seq) FROM events", [], |r| r.get(0))?;
            let mut stmt = c.prepare(
                "SELECT seq, time, type, href, actor, data FROM events WHERE seq > ?1 ORDER BY seq",
            )?;
            let rows = stmt
                .query_map([seq.min(i64::MAX as u64) as i64], |r| {
                    let data: String = r.get(5)?;
                    Ok(Event {
                        seq: r.get::<_, i64>(0)? as u64,
                        time: r.get(1)?,
                        r#type: r.get(2)?,
                        href: r.get(3)?,
                        actor: r.get(4)?,
                        data: serde_json::from_str(&data).unwrap_or_default(),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((rows, oldest))
        })?;
        let gap = oldest.is_some_and(|o| (o as u64) > seq.saturating_add(1));
        Ok((events, gap))
    }
}
