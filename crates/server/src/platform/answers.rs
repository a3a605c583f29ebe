//! Answers of store-backed listings, kept until the store's next write.
//!
//! `GET /api/v1/jobs?limit=1` read SQLite, built `Job`s and serialized them on every request:
//! ~24 µs over authentication alone (docs/benchmarks.md, issue 15), for an answer that only
//! changes when the store does. The collection layer (`http::collection::respond_table`) asks
//! this cache first, under the key of the parsed query; an entry counts only while the store's
//! [`Store::generation`] is the one it was read at, and every committed write moves that on.
//! So nothing served is older than the last write: the data stays live (MOS's rule), and a
//! reader pays the full path once per change instead of once per request.
//!
//! Order matters for that guarantee: the generation is read *before* the rows, and
//! [`Store::write`] bumps it *after* its commit. An answer read while a write was committing
//! is filed under the old generation and never served after the commit.
//!
//! Bounded: at most [`MAX_ENTRIES`] answers of at most [`MAX_BODY`] bytes each and
//! [`MAX_BYTES`] in all; a full cache is emptied rather than managed (the keys are few: clients
//! poll the same few queries), and an answer found out of date is dropped at once.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

/// Entries per store; inserting into a full cache empties it first.
pub const MAX_ENTRIES: usize = 64;
/// Answers larger than this are not kept (long listings are streamed anyway).
pub const MAX_BODY: usize = 64 * 1024;
/// All kept bodies together.
pub const MAX_BYTES: usize = 512 * 1024;

/// One kept answer: the serialized body and what its headers need.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub body: Bytes,
    /// `X-Total-Count`.
    pub total: usize,
    pub ndjson: bool,
}

#[derive(Default)]
pub struct Answers {
    /// By key: the listing's table and its parsed query (see `http::collection`).
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, (u64, Answer)>,
    /// Body bytes in `map`.
    bytes: usize,
}

impl Answers {
    /// The answer kept under `key`, if it was read at `generation`.
    pub fn get(&self, key: &str, generation: u64) -> Option<Answer> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.map.get(key) {
            Some((g, a)) if *g == generation => Some(a.clone()),
            Some(_) => {
                if let Some((_, old)) = entries.map.remove(key) {
                    entries.bytes -= old.body.len();
                }
                None
            }
            None => None,
        }
    }

    /// Keeps `answer`, read at `generation`, unless it is too large.
    pub fn put(&self, key: String, generation: u64, answer: Answer) {
        if answer.body.len() > MAX_BODY {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = entries.map.remove(&key) {
            entries.bytes -= old.body.len();
        }
        if entries.map.len() >= MAX_ENTRIES || entries.bytes + answer.body.len() > MAX_BYTES {
            *entries = Entries::default();
        }
        entries.bytes += answer.body.len();
        entries.map.insert(key, (generation, answer));
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Body bytes kept.
    pub fn bytes(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &'static str) -> Answer {
        Answer {
            body: Bytes::from_static(body.as_bytes()),
            total: 1,
            ndjson: false,
        }
    }

    #[test]
    fn an_answer_counts_only_at_its_generation() {
        let a = Answers::default();
        a.put("jobs q".into(), 7, answer("[1]"));
        assert_eq!(a.get("jobs q", 7), Some(answer("[1]")));
        assert_eq!(a.get("jobs q", 8), None);
        assert_eq!(a.get("audit q", 7), None);
        // Found out of date: dropped.
        assert!(a.is_empty());
        assert_eq!(a.bytes(), 0);
    }

    #[test]
    fn the_cache_is_bounded() {
        let a = Answers::default();
        for i in 0..MAX_ENTRIES + 5 {
            a.put(i.to_string(), 1, answer("[]"));
            assert!(a.len() <= MAX_ENTRIES);
        }
        let body = Bytes::from(vec![b' '; MAX_BODY]);
        for i in 0..2 * MAX_BYTES / MAX_BODY {
            let a1 = Answer {
                body: body.clone(),
                total: 1,
                ndjson: false,
            };
            a.put(format!("b{i}"), 1, a1);
            assert!(a.bytes() <= MAX_BYTES);
        }
        let big = Answer {
            body: Bytes::from(vec![b' '; MAX_BODY + 1]),
            total: 1,
            ndjson: false,
        };
        a.put("big".into(), 1, big);
        assert_eq!(a.get("big", 1), None);
    }
}
