//! The inspections of an engine's containers, kept between listings so that `GET /containers`
//! costs one engine listing plus inspections of what changed (not one inspection per
//! container), without ever answering stale data.
//!
//! Flow: [`Engine::list_containers`](super::Engine::list_containers) lists the containers
//! (one call), takes each one's inspection from here when the entry is still valid, inspects
//! the others and stores them. An entry is valid only while
//! - the engine's event stream is followed ([`InspectCache::set_live`]: the server's follower
//!   sets it when its stream is open and clears it, dropping everything, when it ends, so a
//!   reconnect starts empty);
//! - no event named that container since ([`InspectCache::forget`]: any event, any action);
//! - hostplane did not change any container of that engine since ([`InspectCache::forget_all`],
//!   called by every mutating engine call);
//! - the listing's own view (name, state, image) is what it was at the inspection: a change
//!   the engine made before its event reached the follower is seen in the listing itself.
//!
//! A listing that raced an invalidation (the generation moved while it inspected) does not
//! store what it read.

use std::collections::HashMap;
use std::sync::Mutex;

use hostplane_types::containers::Container;

/// What the listing says of a container, compared with what it said at the inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub state: String,
    pub image_id: String,
}

struct Inner<T> {
    live: bool,
    generation: u64,
    entries: HashMap<String, (Seen, T)>,
}

/// Generic over what is kept (an inspected [`Container`]) so the rules test without an engine.
pub struct InspectCache<T = Container>(Mutex<Inner<T>>);

impl<T> Default for InspectCache<T> {
    fn default() -> Self {
        InspectCache(Mutex::new(Inner {
            live: false,
            generation: 0,
            entries: HashMap::new(),
        }))
    }
}

impl<T: Clone> InspectCache<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The event stream is followed (true) or not (false: everything is dropped and nothing
    /// is kept until it is followed again).
    pub fn set_live(&self, live: bool) {
        let mut i = self.lock();
        i.live = live;
        i.generation += 1;
        i.entries.clear();
    }

    /// An event named container `id` (a full id).
    pub fn forget(&self, id: &str) {
        let mut i = self.lock();
        i.generation += 1;
        i.entries.remove(id);
    }

    /// hostplane changed a container of this engine.
    pub fn forget_all(&self) {
        let mut i = self.lock();
        i.generation += 1;
        i.entries.clear();
    }

    /// The current generation, and the valid entry of each listed container (None: inspect).
    pub fn lookup(&self, listed: &[(String, Seen)]) -> (u64, Vec<Option<T>>) {
        let i = self.lock();
        let hits = listed
            .iter()
            .map(|(id, seen)| {
                if !i.live {
                    return None;
                }
                i.entries
                    .get(id)
                    .filter(|(s, _)| s == seen)
                    .map(|(_, c)| c.clone())
            })
            .collect();
        (i.generation, hits)
    }

    /// Stores fresh inspections made since `generation` was read, unless anything was
    /// invalidated meanwhile; drops entries of containers no longer listed.
    pub fn store(&self, generation: u64, listed: &[String], fresh: Vec<(String, Seen, T)>) {
        let mut i = self.lock();
        if !i.live || i.generation != generation {
            return;
        }
        i.entries.retain(|id, _| listed.contains(id));
        for (id, seen, c) in fresh {
            i.entries.insert(id, (seen, c));
        }
    }

    /// How many inspections are kept (for tests and the benchmark).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str) -> String {
        name.to_string()
    }

    fn seen(name: &str, state: &str) -> Seen {
        Seen {
            name: name.into(),
            state: state.into(),
            image_id: "sha256:1".into(),
        }
    }

    #[test]
    fn valid_only_while_live_unchanged_and_unraced() {
        let cache = InspectCache::<String>::default();
        let listed = vec![("a".to_string(), seen("web", "running"))];
        let ids = vec!["a".to_string()];
        // Not live: nothing kept.
        let (g, _) = cache.lookup(&listed);
        cache.store(
            g,
            &ids,
            vec![("a".into(), seen("web", "running"), c("web"))],
        );
        assert!(cache.is_empty());
        cache.set_live(true);
        let (g, hits) = cache.lookup(&listed);
        assert!(hits[0].is_none());
        cache.store(
            g,
            &ids,
            vec![("a".into(), seen("web", "running"), c("web"))],
        );
        assert!(cache.lookup(&listed).1[0].is_some());
        // The listing says something else: inspect again.
        assert!(cache.lookup(&[("a".into(), seen("web", "exited"))]).1[0].is_none());
        assert!(cache.lookup(&[("a".into(), seen("web2", "running"))]).1[0].is_none());
        // An event for it.
        cache.forget("a");
        assert!(cache.lookup(&listed).1[0].is_none());
        // A listing that raced an invalidation stores nothing.
        let (g, _) = cache.lookup(&listed);
        cache.forget("zzz");
        cache.store(
            g,
            &ids,
            vec![("a".into(), seen("web", "running"), c("web"))],
        );
        assert!(cache.is_empty());
        // hostplane's own change, and the stream going away.
        let (g, _) = cache.lookup(&listed);
        cache.store(
            g,
            &ids,
            vec![("a".into(), seen("web", "running"), c("web"))],
        );
        cache.forget_all();
        assert!(cache.is_empty());
        let (g, _) = cache.lookup(&listed);
        cache.store(
            g,
            &ids,
            vec![("a".into(), seen("web", "running"), c("web"))],
        );
        cache.set_live(false);
        assert!(cache.lookup(&listed).1[0].is_none());
    }
}
