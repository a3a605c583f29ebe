//! The HTTP side of the collection layer (`hostplane_collection` does the work): every
//! `GET /api/v1/<things>` takes [`CollectionParams`], hands its items here, and gets back a
//! JSON array (or NDJSON stream) with `X-Total-Count`.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hostplane_collection::{Projected, Query, QueryError, RawParams};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::platform::answers::Answer;
use crate::platform::store::Store;

pub const NDJSON: &str = "application/x-ndjson";

/// Parameters every collection accepts. Grammar: docs/collections.md.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CollectionParams {
    /// At most this many items (1–10000). Absent: all.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 10000)]
    pub limit: Option<String>,
    /// Skip this many items first (0–1000000000).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 1000000000)]
    pub offset: Option<String>,
    /// Comma-separated fields to return (`href` is always kept), e.g. `id,status`.
    pub fields: Option<String>,
    /// Filter, e.g. `status:running !kind:system.* created_at:>2026-01-01`.
    pub filter: Option<String>,
    /// Comma-separated sort keys, `-` for descending, e.g. `-created_at,name`.
    pub sort: Option<String>,
    /// Present (and not `false`/`0`): stream NDJSON, one item per line.
    #[param(allow_reserved)]
    pub ndjson: Option<String>,
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError::invalid_field(e.code, e.param, e.message)
    }
}

/// Top-level property names of `T`'s schema, computed once per type.
fn known_fields<T: ToSchema + 'static>() -> &'static [&'static str] {
    static CACHE: OnceLock<Mutex<HashMap<TypeId, &'static [&'static str]>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    cache.entry(TypeId::of::<T>()).or_insert_with(|| {
        let names: Vec<&'static str> = match T::schema() {
            RefOr::T(Schema::Object(o)) => o
                .properties
                .keys()
                .map(|k| &*Box::leak(k.clone().into_boxed_str()))
                .collect(),
            _ => Vec::new(),
        };
        Box::leak(names.into_boxed_slice())
    })
}

/// Characters that never occur unquoted inside a term: controls and every character Rust and
/// Python both call whitespace (the fuzzer generates from these patterns with Python's `re`).
const NOT_IN_TERM: &str = r"\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The documented patterns of `fields`, `sort` and `filter` for a collection with these field
/// names. The server checks them too, so what the document promises and what is accepted agree.
/// The filter pattern is the unquoted subset of the grammar: `[!]field:[op]value` terms and
/// bare words, separated by single spaces (no quotes: a value with a space is matched with a
/// glob, `name:my*vm`). docs/collections.md describes it.
pub fn param_patterns(fields: &[&str]) -> [(&'static str, String); 3] {
    let alt = format!("({})", fields.join("|"));
    let first = format!("[^{NOT_IN_TERM}\"!:<>=]");
    let value = format!("([<>]=?)?[^{NOT_IN_TERM}\"<>=][^{NOT_IN_TERM}\"]*");
    let term = format!("(!?({alt}:{value}|{first}+))");
    [
        ("fields", format!("^({alt}(,{alt})*)?$")),
        ("sort", format!("^(-?{alt}(,-?{alt})*)?$")),
        ("filter", format!("^({term}( {term})*)?$")),
    ]
}

/// The compiled [`param_patterns`] of `T`, once per type.
fn compiled_patterns<T: ToSchema + 'static>() -> &'static [(&'static str, regex::Regex); 3] {
    type Compiled = [(&'static str, regex::Regex); 3];
    static CACHE: OnceLock<Mutex<HashMap<TypeId, &'static Compiled>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    cache.entry(TypeId::of::<T>()).or_insert_with(|| {
        let compiled: Compiled = param_patterns(known_fields::<T>()).map(|(name, p)| {
            (
                name,
                regex::Regex::new(&p).expect("the collection patterns compile"),
            )
        });
        Box::leak(Box::new(compiled))
    })
}

impl CollectionParams {
    pub fn parse<T: ToSchema + 'static>(&self) -> Result<Query, ApiError> {
        for (name, re) in compiled_patterns::<T>() {
            let value = match *name {
                "fields" => &self.fields,
                "sort" => &self.sort,
                _ => &self.filter,
            };
            if let Some(v) = value.as_deref()
                && !re.is_match(v)
            {
                let code = match *name {
                    "fields" => "invalid_fields",
                    "sort" => "invalid_sort",
                    _ => "invalid_filter",
                };
                return Err(ApiError::invalid_field(
                    code,
                    *name,
                    format!(
                        "`{name}` does not match its pattern (valid fields: {}; see docs/collections.md)",
                        known_fields::<T>().join(", ")
                    ),
                ));
            }
        }
        if self
            .filter
            .as_deref()
            .is_some_and(|f| f.chars().count() > 4096)
        {
            return Err(ApiError::invalid_field(
                "invalid_filter",
                "filter",
                "`filter` is longer than 4096 characters",
            ));
        }
        // An empty parameter (`fields=`) means the same as an absent one.
        let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let raw = RawParams {
            limit: given(&self.limit),
            offset: given(&self.offset),
            fields: given(&self.fields),
            filter: given(&self.filter),
            sort: given(&self.sort),
        };
        Ok(Query::parse(&raw, known_fields::<T>())?)
    }

    fn wants_ndjson(&self, headers: &HeaderMap) -> bool {
        let flag = self
            .ndjson
            .as_deref()
            .is_some_and(|v| !matches!(v, "false" | "0"));
        flag || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(NDJSON))
    }
}

/// Applies the collection query to `items` and renders the response.
pub fn respond<T: Serialize + ToSchema + 'static>(
    items: Vec<T>,
    params: &CollectionParams,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let query = params.parse::<T>()?;
    let ndjson = params.wants_ndjson(headers);
    if !(query.filter.is_empty() && query.sort.is_empty()) {
        return respond_query(items, query, ndjson);
    }
    // No filter or sort needs the items as JSON values: the page is serialized straight from
    // the typed items, projected while it is written.
    let total = items.len();
    let end = query
        .offset
        .saturating_add(query.limit.unwrap_or(usize::MAX));
    let page = &items[query.offset.min(total)..end.min(total)];
    match &query.fields {
        None => render(page, total, ndjson),
        Some(f) => render(&projected(page, f), total, ndjson),
    }
}

/// A large, growing table (jobs, the audit log) read newest first. The collection asks it for
/// one page when the query neither filters nor sorts, so `?limit=1` reads one row and a row
/// count whatever the table holds; and it streams a whole listing (`?ndjson`, or no `limit`)
/// a chunk at a time by key, so memory stays constant however long the table is.
pub trait Table: Send + 'static {
    type Item: Serialize + ToSchema + Send + 'static;
    /// Every item: the query filters or sorts, so it needs the whole set.
    fn all(&self) -> Result<Vec<Self::Item>, ApiError>;
    /// Items `offset..offset+limit` in the natural order, and the total count.
    fn page(&self, offset: usize, limit: usize) -> Result<(Vec<Self::Item>, usize), ApiError>;
    /// Up to `n` items that follow `last` in the natural order.
    fn after(&self, last: &Self::Item, n: usize) -> Result<Vec<Self::Item>, ApiError>;
    /// The answer shows only these properties (`fields`), told before `page` and `after`: a
    /// source may leave the others unread.
    fn only_fields(&mut self, _fields: &[String]) {}
    /// The store the table lives in and the table's name: a one-chunk answer is then kept
    /// until the store's next write and served again without a read (`platform::answers`).
    fn kept_in(&self) -> Option<(Arc<Store>, &'static str)> {
        None
    }
}

/// Items per chunk when a listing is streamed.
const CHUNK: usize = 256;

/// Like [`respond`], for a [`Table`]: pages and streams instead of reading everything when the
/// query allows it (no `filter`, no `sort`).
pub fn respond_table<S: Table>(
    mut source: S,
    params: &CollectionParams,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let query = params.parse::<S::Item>()?;
    let ndjson = params.wants_ndjson(headers);
    if !(query.filter.is_empty() && query.sort.is_empty()) {
        return respond_query(source.all()?, query, ndjson);
    }
    let fields = query.fields.clone();
    if let Some(f) = &fields {
        source.only_fields(f);
    }
    let limit = query.limit.unwrap_or(usize::MAX);
    // The generation is read before the rows (platform::answers).
    let kept = source.kept_in().map(|(store, table)| {
        let key = format!("{table} {ndjson} {} {limit} {fields:?}", query.offset);
        (store.generation(), key, store)
    });
    if let Some((generation, key, store)) = &kept
        && let Some(answer) = store.answers().get(key, *generation)
    {
        return Ok(answer_response(answer));
    }
    let (first, total) = source.page(query.offset, CHUNK.min(limit))?;
    if limit <= CHUNK || first.len() < CHUNK || total <= query.offset + CHUNK {
        // One chunk holds the whole answer.
        let body = match &fields {
            None => serialize(&first, ndjson)?,
            Some(f) => serialize(&projected(&first, f), ndjson)?,
        };
        let answer = Answer {
            body,
            total,
            ndjson,
        };
        if let Some((generation, key, store)) = kept {
            store.answers().put(key, generation, answer.clone());
        }
        return Ok(answer_response(answer));
    }
    // A long listing: the first chunk told the total, the rest follows by key as the client
    // reads (the stream is pulled by the connection, so a slow reader holds one chunk).
    let stream = Streamed {
        source,
        fields,
        ndjson,
        pending: first,
        left: limit,
        started: false,
        done: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(stream, |mut s| async move {
        s.next_chunk().map(|chunk| (chunk, s))
    }));
    let mut resp = body.into_response();
    let ct = if ndjson { NDJSON } else { "application/json" };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp.headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    Ok(resp)
}

/// The state of a streamed listing.
struct Streamed<S: Table> {
    source: S,
    fields: Option<Vec<String>>,
    ndjson: bool,
    /// The chunk to write next (read ahead, so the end is known before `]` is due).
    pending: Vec<S::Item>,
    /// Items the `limit` still allows.
    left: usize,
    started: bool,
    done: bool,
}

impl<S: Table> Streamed<S> {
    /// The next piece of the body, or `None` after the last.
    fn next_chunk(&mut self) -> Option<Result<Vec<u8>, std::io::Error>> {
        if self.done {
            return None;
        }
        let mut out = Vec::with_capacity(self.pending.len() * 256 + 2);
        if !self.started && !self.ndjson {
            out.push(b'[');
        }
        let take = self.pending.len().min(self.left);
        for (i, item) in self.pending[..take].iter().enumerate() {
            if !self.ndjson && (self.started || i > 0) {
                out.push(b',');
            }
            let written = match &self.fields {
                None => serde_json::to_writer(&mut out, item),
                Some(f) => serde_json::to_writer(&mut out, &Projected { item, fields: f }),
            };
            if let Err(e) = written {
                return Some(Err(std::io::Error::other(e)));
            }
            if self.ndjson {
                out.push(b'\n');
            }
        }
        self.started = true;
        self.left -= take;
        let next = match self.pending[..take].last() {
            Some(last) if self.left > 0 && take == self.pending.len() => {
                match self.source.after(last, CHUNK.min(self.left)) {
                    Ok(next) => next,
                    // The answer has begun: all that is left is to cut it short.
                    Err(e) => return Some(Err(std::io::Error::other(e.to_string()))),
                }
            }
            _ => Vec::new(),
        };
        if next.is_empty() {
            self.done = true;
            if !self.ndjson {
                out.push(b']');
            }
        }
        self.pending = next;
        Some(Ok(out))
    }
}

fn projected<'a, T>(items: &'a [T], fields: &'a [String]) -> Vec<Projected<'a, T>> {
    items
        .iter()
        .map(|item| Projected { item, fields })
        .collect()
}

/// Filters, sorts, pages and projects `items` as JSON values (the general path).
fn respond_query<T: Serialize>(
    items: Vec<T>,
    query: Query,
    ndjson: bool,
) -> Result<Response, ApiError> {
    let values = items
        .into_iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    let page = query.apply(values);
    render(&page.items, page.total, ndjson)
}

/// A page as a JSON array or NDJSON, with `X-Total-Count`.
fn render<T: Serialize>(items: &[T], total: usize, ndjson: bool) -> Result<Response, ApiError> {
    Ok(answer_response(Answer {
        body: serialize(items, ndjson)?,
        total,
        ndjson,
    }))
}

/// `items` as a JSON array, or as NDJSON lines.
fn serialize<T: Serialize>(items: &[T], ndjson: bool) -> Result<Bytes, ApiError> {
    if !ndjson {
        return serde_json::to_vec(items)
            .map(Bytes::from)
            .map_err(ApiError::internal);
    }
    let mut body = Vec::with_capacity(items.len() * 128);
    for item in items {
        serde_json::to_writer(&mut body, item).map_err(ApiError::internal)?;
        body.push(b'\n');
    }
    Ok(body.into())
}

fn answer_response(answer: Answer) -> Response {
    let ct = if answer.ndjson {
        NDJSON
    } else {
        "application/json"
    };
    let mut resp = Body::from(answer.body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp.headers_mut()
        .insert("x-total-count", HeaderValue::from(answer.total));
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A table of the `settings` rows of a real store, counting its reads.
    struct Settings {
        store: Arc<Store>,
        reads: Arc<AtomicUsize>,
    }

    #[derive(Serialize, ToSchema)]
    struct Setting {
        key: String,
    }

    impl Table for Settings {
        type Item = Setting;
        fn all(&self) -> Result<Vec<Setting>, ApiError> {
            self.page(0, usize::MAX).map(|(all, _)| all)
        }
        fn page(&self, offset: usize, limit: usize) -> Result<(Vec<Setting>, usize), ApiError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let keys: Vec<String> = self
                .store
                .read(|c| {
                    c.prepare("SELECT key FROM settings ORDER BY key")?
                        .query_map([], |r| r.get(0))?
                        .collect()
                })
                .map_err(ApiError::internal)?;
            let total = keys.len();
            let page = keys.into_iter().skip(offset).take(limit);
            Ok((page.map(|key| Setting { key }).collect(), total))
        }
        fn after(&self, _: &Setting, _: usize) -> Result<Vec<Setting>, ApiError> {
            Ok(Vec::new())
        }
        fn kept_in(&self) -> Option<(Arc<Store>, &'static str)> {
            Some((self.store.clone(), "settings"))
        }
    }

    async fn body_of(
        store: &Arc<Store>,
        reads: &Arc<AtomicUsize>,
        params: &CollectionParams,
    ) -> (String, String) {
        let table = Settings {
            store: store.clone(),
            reads: reads.clone(),
        };
        let resp = respond_table(table, params, &HeaderMap::new()).unwrap();
        let total = resp.headers()["x-total-count"]
            .to_str()
            .unwrap()
            .to_string();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (String::from_utf8(bytes.to_vec()).unwrap(), total)
    }

    /// A listing is read once per store write, and a write is seen by the next request.
    #[tokio::test]
    async fn kept_answers_last_until_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db.sqlite")).unwrap());
        let reads = Arc::new(AtomicUsize::new(0));
        let limit1 = CollectionParams {
            limit: Some("1".into()),
            ..Default::default()
        };
        store.set_setting("a", "1").unwrap();
        let first = body_of(&store, &reads, &limit1).await;
        assert_eq!(first.0, r#"[{"key":"a"}]"#);
        assert_eq!(body_of(&store, &reads, &limit1).await, first);
        assert_eq!(
            reads.load(Ordering::Relaxed),
            1,
            "the second answer was kept"
        );
        // Another query is another answer.
        let all = body_of(&store, &reads, &CollectionParams::default()).await;
        assert_eq!(reads.load(Ordering::Relaxed), 2);
        assert_eq!(all.1, "1");
        // A write: the next answer is read again and shows it.
        let generation = store.generation();
        store.set_setting("0", "x").unwrap();
        assert!(store.generation() > generation);
        let after = body_of(&store, &reads, &limit1).await;
        assert_eq!(reads.load(Ordering::Relaxed), 3);
        assert_eq!(after, (r#"[{"key":"0"}]"#.to_string(), "2".to_string()));
        // A write that fails changes nothing, but is not trusted either.
        let generation = store.generation();
        let failed: rusqlite::Result<()> = store.write(|tx| {
            tx.execute("INSERT INTO settings(key, value) VALUES ('z', 'z')", [])?;
            Err(rusqlite::Error::InvalidQuery)
        });
        assert!(failed.is_err());
        assert!(store.generation() > generation);
        assert_eq!(body_of(&store, &reads, &limit1).await, after);
        assert_eq!(reads.load(Ordering::Relaxed), 4);
    }
}
