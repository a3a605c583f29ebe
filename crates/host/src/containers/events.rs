//! The engine's own event stream (`GET /events`, type `container`): what happens to containers
//! whoever caused it. The server's containers area reads it per engine and publishes the
//! changes; this module only opens the stream and reads the events it cares about. Every
//! container event, of any action, also invalidates that container's entry in the engine's
//! inspection cache ([`super::cache`]), which is live only while a stream is followed.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptions;
use futures_util::{Stream, StreamExt};

use super::{Engine, EngineError, EngineResult};

/// One container event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// `create`, `start`, `die`, `destroy` (podman's `died`, `remove` read the same).
    pub action: String,
    pub id: String,
    pub name: String,
    pub image: Option<String>,
    pub exit_code: Option<i64>,
    /// When it happened (the engine's `timeNano`, 0 when absent).
    pub time_nano: i64,
}

/// The actions forwarded, in the engine's words, mapped to one spelling.
pub fn action_of(a: &str) -> Option<&'static str> {
    match a {
        "create" => Some("create"),
        "start" => Some("start"),
        "die" | "died" => Some("die"),
        "destroy" | "remove" => Some("destroy"),
        _ => None,
    }
}

impl Engine {
    /// Container events from `since_secs` (unix seconds; the engine replays those it had
    /// since then, so nothing between a caller's decision and the subscription is lost); the
    /// stream ends when the engine goes away.
    pub async fn container_events(
        &self,
        since_secs: i64,
    ) -> EngineResult<impl Stream<Item = EngineResult<ContainerEvent>> + Send + 'static> {
        let docker = self.client().await?;
        // A cheap request first: the stream's own errors come only with its first event.
        self.bounded(docker.ping()).await?;
        let opts = EventsOptions {
            since: Some(since_secs.to_string()),
            filters: Some(HashMap::from([(
                "type".to_string(),
                vec!["container".to_string()],
            )])),
            ..Default::default()
        };
        let engine = self.name().to_string();
        let cache = self.cache.clone();
        Ok(docker.events(Some(opts)).filter_map(move |r| {
            let out = match r {
                Err(e) => Some(Err(EngineError::from_bollard(&engine, e))),
                Ok(m) => {
                    if let Some(id) = m.actor.as_ref().and_then(|a| a.id.as_deref()) {
                        cache.forget(id);
                    }
                    let time_nano = m.time_nano.unwrap_or(0);
                    let action = m.action.as_deref().and_then(action_of);
                    action.map(|action| {
                        let actor = m.actor.unwrap_or_default();
                        let attrs = actor.attributes.unwrap_or_default();
                        Ok(ContainerEvent {
                            action: action.to_string(),
                            id: actor.id.unwrap_or_default(),
                            name: attrs.get("name").cloned().unwrap_or_default(),
                            image: attrs.get("image").cloned(),
                            exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
                            time_nano,
                        })
                    })
                }
            };
            std::future::ready(out)
        }))
    }
}
