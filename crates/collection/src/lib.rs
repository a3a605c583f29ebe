//! # Collection queries
//!
//! Every list endpoint (`GET /api/v1/<things>`) shares one query layer: the
//! server turns the collection's items into JSON objects and validates the
//! query string parameters `limit`, `offset`, `fields`, `filter` and `sort`
//! against the collection's field names. A bad parameter is rejected with
//! `422 Unprocessable Content` (a problem+json body naming the error `code`
//! and the offending `param`). Otherwise the server keeps the items matching
//! `filter`, records how many there are as `total`, orders them by `sort`,
//! cuts the page `offset`..`offset+limit`, and finally trims every returned
//! item down to `fields`. Because `total` is counted after filtering and
//! before paging, a client can page through a filtered result with
//! `offset += limit` until `offset >= total`.
//!
//! ## Parameters
//!
//! | Parameter | Example | Meaning |
//! |-----------|---------|---------|
//! | `limit`  | `limit=50` | At most this many items (integer 1–10000). Absent: all items. |
//! | `offset` | `offset=100` | Skip this many items first (integer 0–1000000000, default 0). An offset past the end returns no items, with `total` still correct. |
//! | `fields` | `fields=name,state` | Return only these top-level fields. `href` is always kept when the item has one. |
//! | `filter` | `filter=state:running name:web*` | Return only items matching every term (grammar below). |
//! | `sort`   | `sort=-size,name` | Order by these fields; `-` means descending. Default: the collection's natural order. |
//!
//! `limit` and `offset` take plain decimal digits only (no sign, no
//! spaces). `fields` and `sort` are comma-separated lists of the collection's
//! top-level field names; spaces around names are ignored, empty entries
//! (`fields=a,,b`, `sort=`) and unknown names are errors, and a repeated
//! field is harmless. Error messages list the valid field names.
//!
//! ## Sorting
//!
//! Sorting is stable: items that compare equal on every key keep their
//! natural order, and later keys only break ties of earlier ones. Values
//! compare as follows:
//!
//! * numbers numerically, strings by their UTF-8 bytes (so `B` < `a`),
//!   booleans `false` < `true`, arrays element by element (then by length),
//!   objects all equal;
//! * a missing field counts as `null`;
//! * values of different types order by type:
//!   `null` < boolean < number < string < array < object. So in ascending
//!   order `null`/missing come first, and with `-field` they come last.
//!
//! ## Filter grammar
//!
//! A filter is a list of terms separated by whitespace; an item is returned
//! only when **all** terms match. An empty filter matches everything. The
//! filter may be at most 4096 characters long.
//!
//! | Term | Matches when |
//! |------|--------------|
//! | `field:value` | the field, rendered as text, equals `value` exactly (case-sensitive). |
//! | `field:pat*ern` | the field's text matches the glob; each unquoted `*` stands for any run of characters (including none). |
//! | `field:>N` `field:>=N` `field:<N` `field:<=N` | the field compares to `N` as stated (see below). |
//! | `word` | some string field contains `word`, ignoring case. |
//! | `!term` | `term` does not match. |
//!
//! **Rendering.** For `field:value`, strings are used as they are, numbers
//! and booleans as their JSON text (`size:2048`, `enabled:true`) and `null`
//! as `null`. A missing field counts as `null`, so `description:null`
//! matches items without a description and `!description:null` items with
//! one. Objects never match a value; reach into them with a dotted name.
//!
//! **Comparisons.** Only numbers and strings can satisfy `>`, `>=`, `<`,
//! `<=`; `null`, missing fields, booleans and objects never do. When the
//! field and `N` are both numbers (a string field holding a decimal number
//! counts as one) they compare numerically; otherwise both are compared as
//! text, byte by byte. Text order is chronological for RFC 3339 timestamps
//! written in the same form and offset, e.g. `created:>=2024-05-01` or
//! `created:<2024-05-01T12:00:00Z`.
//!
//! **Arrays.** When the field is an array (such as `tags` or `scopes`),
//! `field:value` and comparisons match when **any** element matches:
//! `tags:prod`, `!tags:prod` (no element is `prod`).
//!
//! **Bare words.** A term without an unquoted `:` searches the item's
//! top-level string fields (except `href`), and strings inside top-level
//! arrays, for the word as a substring, ignoring case. Numbers, booleans and nested objects
//! are not searched, and `*` has no special meaning in a bare word.
//!
//! **Nested fields.** `field.key:value` looks one level into an object
//! field, e.g. `data.kind:vm` or `data.cpus:>=4`. If `field` is not an
//! object, or has no such key, the value counts as missing. Deeper paths
//! (`a.b.c`) are rejected.
//!
//! **Quoting.** Double quotes let a value (or a bare word) contain spaces or
//! colons: `name:"my vm"`, `"error: disk"`. Inside quotes `\"` stands for a
//! quote and `\\` for a backslash; any other backslash is kept as is.
//! Quoted characters are always literal: `name:"a*"` matches exactly `a*`,
//! and `name:">5"` matches the text `>5`, not numbers above 5. Quoted and
//! unquoted pieces can be joined, e.g. `name:"my vm"*` matches names
//! starting with `my vm`. `name:""` matches an empty string. Outside quotes
//! only the first `:` separates field and value, so
//! `created:>2024-05-01T12:00:00Z` needs no quotes.
//!
//! **Errors** (`invalid_filter`): an unknown field name, an empty field name
//! (`:x`), a missing value (`name:`, `size:>`), an unterminated quote, a `!`
//! not followed by a term, `!!`, an empty quoted bare word (`""`), a malformed
//! dotted name (`.x`, `data.`, `a.b.c`), or a filter over 4096 characters.
//!
//! ### Examples
//!
//! ```text
//! filter=state:running                  state is exactly "running"
//! filter=name:web-*  !tags:staging      name starts with "web-" and not tagged staging
//! filter=size:>=1073741824 size:<1e10   size in [1 GiB, 10^10)
//! filter=created:>=2024-05-01           created on or after 1 May 2024
//! filter=scopes:admin                   the scopes array contains "admin"
//! filter=data.kind:vm                   nested key
//! filter=name:"my vm" enabled:true      quoted value with a space
//! filter=nginx                          any string field contains "nginx" (any case)
//! ```
//!
//! ## Errors
//!
//! Every rejected parameter yields a [`QueryError`] with a stable `code`:
//! `invalid_limit`, `invalid_offset`, `invalid_fields`, `invalid_filter` or
//! `invalid_sort`, the parameter name in `param`, and a readable `message`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

mod filter;
mod order;
mod project;

pub use filter::Filter;
pub use project::Projected;

/// Largest accepted `limit`.
pub const MAX_LIMIT: usize = 10_000;
/// Largest accepted `offset`.
pub const MAX_OFFSET: usize = 1_000_000_000;
/// Longest accepted `filter`, in characters.
pub const MAX_FILTER_LEN: usize = 4096;

/// The stable error codes carried by [`QueryError::code`].
pub mod codes {
    pub const INVALID_LIMIT: &str = "invalid_limit";
    pub const INVALID_OFFSET: &str = "invalid_offset";
    pub const INVALID_FIELDS: &str = "invalid_fields";
    pub const INVALID_FILTER: &str = "invalid_filter";
    pub const INVALID_SORT: &str = "invalid_sort";
}

/// Raw parameters as they came in the query string (None = absent).
#[derive(Debug, Default, Clone)]
pub struct RawParams {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub fields: Option<String>,
    pub filter: Option<String>,
    pub sort: Option<String>,
}

/// Validated query. `Query::default()` returns every item unchanged.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub limit: Option<usize>,
    pub offset: usize,
    /// Deduplicated, in request order.
    pub fields: Option<Vec<String>>,
    pub filter: Filter,
    pub sort: Vec<SortKey>,
}

/// One `sort` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

/// Error for a bad parameter: the HTTP layer turns it into 422 problem+json.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub code: &'static str,
    pub param: &'static str,
    pub message: String,
}

/// One page of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Items matching the filter, before `offset`/`limit`.
    pub total: usize,
    pub items: Vec<Value>,
}

/// Echoes user input in messages, cut short so a huge parameter cannot
/// produce a huge error body.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

pub(crate) fn valid_fields(known: &[&str]) -> String {
    if known.is_empty() {
        "this collection has no fields".to_owned()
    } else {
        format!("valid fields: {}", known.join(", "))
    }
}

fn parse_int(
    raw: &str,
    code: &'static str,
    param: &'static str,
    min: usize,
    max: usize,
) -> Result<usize, QueryError> {
    let value = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        // Overflow of u64 is simply "too large".
        raw.parse::<u64>()
            .ok()
            .and_then(|n| usize::try_from(n).ok())
    } else {
        None
    };
    match value {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(QueryError {
            code,
            param,
            message: format!(
                "`{param}` must be an integer from {min} to {max}, got `{}`",
                shown(raw)
            ),
        }),
    }
}

/// Splits a comma list into trimmed names, rejecting empty entries.
fn split_list<'a>(
    raw: &'a str,
    code: &'static str,
    param: &'static str,
    what: &str,
) -> Result<Vec<&'a str>, QueryError> {
    raw.split(',')
        .map(|entry| {
            let name = entry.trim();
            if name.is_empty() {
                Err(QueryError {
                    code,
                    param,
                    message: format!(
                        "`{param}` has an empty entry; expected a comma-separated list of {what}"
                    ),
                })
            } else {
                Ok(name)
            }
        })
        .collect()
}

fn unknown(code: &'static str, param: &'static str, name: &str, known: &[&str]) -> QueryError {
    QueryError {
        code,
        param,
        message: format!(
            "unknown field `{}` in `{param}`; {}",
            shown(name),
            valid_fields(known)
        ),
    }
}

fn parse_fields(raw: &str, known: &[&str]) -> Result<Vec<String>, QueryError> {
    let (code, param) = (codes::INVALID_FIELDS, "fields");
    let mut out: Vec<String> = Vec::new();
    for name in split_list(raw, code, param, "field names")? {
        if !known.contains(&name) {
            return Err(unknown(code, param, name, known));
        }
        if !out.iter().any(|f| f == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

fn parse_sort(raw: &str, known: &[&str]) -> Result<Vec<SortKey>, QueryError> {
    let (code, param) = (codes::INVALID_SORT, "sort");
    split_list(
        raw,
        code,
        param,
        "field names, each optionally prefixed with `-`",
    )?
    .into_iter()
    .map(|entry| {
        let (name, descending) = match entry.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (entry, false),
        };
        if name.is_empty() {
            return Err(QueryError {
                code,
                param,
                message: "`sort` entry `-` needs a field name".to_owned(),
            });
        }
        if !known.contains(&name) {
            return Err(unknown(code, param, name, known));
        }
        Ok(SortKey {
            field: name.to_owned(),
            descending,
        })
    })
    .collect()
}

impl Query {
    /// Validates the raw parameters. `known_fields`: the top-level field
    /// names items of this collection have (used to reject unknown names in
    /// fields/sort/filter with a helpful message listing the valid ones).
    pub fn parse(raw: &RawParams, known_fields: &[&str]) -> Result<Query, QueryError> {
        let limit = raw
            .limit
            .as_deref()
            .map(|s| parse_int(s, codes::INVALID_LIMIT, "limit", 1, MAX_LIMIT))
            .transpose()?;
        let offset = raw
            .offset
            .as_deref()
            .map(|s| parse_int(s, codes::INVALID_OFFSET, "offset", 0, MAX_OFFSET))
            .transpose()?
            .unwrap_or(0);
        let fields = raw
            .fields
            .as_deref()
            .map(|s| parse_fields(s, known_fields))
            .transpose()?;
        let filter = match raw.filter.as_deref() {
            Some(s) => Filter::parse(s, known_fields)?,
            None => Filter::default(),
        };
        let sort = match raw.sort.as_deref() {
            Some(s) => parse_sort(s, known_fields)?,
            None => Vec::new(),
        };
        Ok(Query {
            limit,
            offset,
            fields,
            filter,
            sort,
        })
    }

    /// True when `item` passes the filter (used by event stream filters too).
    pub fn matches(&self, item: &Value) -> bool {
        self.filter.matches(item)
    }

    /// filter → total = count after filter → sort (stable; default order =
    /// input order) → offset/limit → project fields.
    pub fn apply(&self, mut items: Vec<Value>) -> Page {
        if !self.filter.is_empty() {
            items.retain(|item| self.filter.matches(item));
        }
        let total = items.len();
        let start = self.offset.min(total);
        let end = match self.limit {
            Some(limit) => start.saturating_add(limit).min(total),
            None => total,
        };

        let page: Vec<Value> = if self.sort.is_empty() || start == end {
            items.drain(start..end).collect()
        } else {
            let order = self.page_order(&items, end);
            // Move the page's items out; the rest is dropped with `items`.
            order[start..end]
                .iter()
                .map(|&i| std::mem::take(&mut items[i]))
                .collect()
        };

        let items = match &self.fields {
            Some(fields) => page.into_iter().map(|v| project(v, fields)).collect(),
            None => page,
        };
        Page { total, items }
    }

    /// Indices of `items` in sorted order; only the first `end` positions
    /// are guaranteed sorted. Ties break on the original index, which makes
    /// the (faster) unstable sorts produce a stable order.
    fn page_order(&self, items: &[Value], end: usize) -> Vec<usize> {
        let k = self.sort.len();
        // Look every sort value up once instead of per comparison.
        let keys: Vec<Option<&Value>> = items
            .iter()
            .flat_map(|item| self.sort.iter().map(move |s| item.get(&s.field)))
            .collect();
        let cmp = |&a: &usize, &b: &usize| -> Ordering {
            for (j, key) in self.sort.iter().enumerate() {
                let o = order::compare(keys[a * k + j], keys[b * k + j]);
                let o = if key.descending { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.cmp(&b)
        };
        let mut order: Vec<usize> = (0..items.len()).collect();
        if end < order.len() {
            // Only the page and what precedes it needs full ordering.
            order.select_nth_unstable_by(end, cmp);
            order[..end].sort_unstable_by(cmp);
        } else {
            order.sort_unstable_by(cmp);
        }
        order
    }
}

/// Keeps `href` plus the requested keys, moving values rather than cloning.
fn project(item: Value, fields: &[String]) -> Value {
    let Value::Object(mut map) = item else {
        return item;
    };
    let mut out = Map::new();
    if let Some((k, v)) = map.remove_entry("href") {
        out.insert(k, v);
    }
    for f in fields {
        if let Some((k, v)) = map.remove_entry(f.as_str()) {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KNOWN: &[&str] = &["href", "id", "name", "size", "tags", "state", "data"];

    fn raw() -> RawParams {
        RawParams::default()
    }

    fn q(r: RawParams) -> Query {
        Query::parse(&r, KNOWN).unwrap_or_else(|e| panic!("{r:?}: {e}"))
    }

    fn err(r: RawParams) -> QueryError {
        Query::parse(&r, KNOWN).expect_err("expected an error")
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    fn items() -> Vec<Value> {
        vec![
            json!({"href": "/api/v1/vms/1", "id": 1, "name": "web-01", "size": 300, "tags": ["prod"], "state": "running"}),
            json!({"href": "/api/v1/vms/2", "id": 2, "name": "db-01", "size": 100, "tags": [], "state": "stopped"}),
            json!({"href": "/api/v1/vms/3", "id": 3, "name": "web-02", "size": 200, "tags": ["prod", "eu"], "state": "running"}),
            json!({"href": "/api/v1/vms/4", "id": 4, "name": "cache", "size": null, "tags": ["dev"], "state": "running"}),
            json!({"href": "/api/v1/vms/5", "id": 5, "name": "web-03", "size": 100, "tags": [], "state": "paused"}),
        ]
    }

    fn ids(page: &Page) -> Vec<i64> {
        page.items
            .iter()
            .map(|v| v["id"].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn defaults_return_everything_in_order() {
        let query = q(raw());
        assert_eq!(query.limit, None);
        assert_eq!(query.offset, 0);
        assert!(query.fields.is_none());
        assert!(query.filter.is_empty());
        assert!(query.sort.is_empty());
        let page = query.apply(items());
        assert_eq!(page.total, 5);
        assert_eq!(page.items, items());
        assert_eq!(Query::default().apply(items()).items, items());
    }

    #[test]
    fn limit_valid() {
        for (v, n) in [("1", 1), ("10000", 10_000), ("007", 7), ("50", 50)] {
            assert_eq!(
                q(RawParams {
                    limit: s(v),
                    ..raw()
                })
                .limit,
                Some(n)
            );
        }
    }

    #[test]
    fn limit_invalid() {
        for v in [
            "",
            "0",
            "10001",
            "-1",
            "+5",
            "1.5",
            "abc",
            " 5",
            "5 ",
            "1e3",
            "99999999999999999999999",
            "٣",
        ] {
            let e = err(RawParams {
                limit: s(v),
                ..raw()
            });
            assert_eq!(e.code, "invalid_limit", "{v:?}");
            assert_eq!(e.param, "limit");
            assert!(e.message.contains("from 1 to 10000"), "{}", e.message);
            assert_eq!(e.to_string(), e.message);
        }
    }

    #[test]
    fn offset_valid_and_invalid() {
        assert_eq!(
            q(RawParams {
                offset: s("0"),
                ..raw()
            })
            .offset,
            0
        );
        assert_eq!(
            q(RawParams {
                offset: s("1000000000"),
                ..raw()
            })
            .offset,
            MAX_OFFSET
        );
        for v in ["", "-1", "1000000001", "x", "1.0", "18446744073709551616"] {
            let e = err(RawParams {
                offset: s(v),
                ..raw()
            });
            assert_eq!(e.code, "invalid_offset", "{v:?}");
            assert_eq!(e.param, "offset");
        }
    }

    #[test]
    fn paging() {
        let page = |l: Option<&str>, o: Option<&str>| {
            q(RawParams {
                limit: l.and_then(s),
                offset: o.and_then(s),
                ..raw()
            })
            .apply(items())
        };
        assert_eq!(ids(&page(Some("2"), None)), [1, 2]);
        assert_eq!(ids(&page(Some("2"), Some("2"))), [3, 4]);
        assert_eq!(ids(&page(Some("2"), Some("4"))), [5]);
        assert_eq!(ids(&page(None, Some("3"))), [4, 5]);
        assert_eq!(ids(&page(Some("10000"), Some("0"))), [1, 2, 3, 4, 5]);
        for off in ["5", "6", "1000000000"] {
            let p = page(Some("10"), Some(off));
            assert!(p.items.is_empty());
            assert_eq!(p.total, 5, "total is unaffected by paging");
        }
        assert_eq!(page(Some("1"), Some("1000000000")).total, 5);
    }

    #[test]
    fn empty_collection() {
        let query = q(RawParams {
            limit: s("5"),
            offset: s("3"),
            sort: s("-name"),
            fields: s("name"),
            filter: s("web"),
        });
        let page = query.apply(Vec::new());
        assert_eq!(
            page,
            Page {
                total: 0,
                items: vec![]
            }
        );
    }

    #[test]
    fn fields_projection_keeps_href() {
        let query = q(RawParams {
            fields: s("name,state"),
            ..raw()
        });
        assert_eq!(
            query.fields.as_deref(),
            Some(&["name".to_owned(), "state".to_owned()][..])
        );
        let page = query.apply(items());
        assert_eq!(
            page.items[0],
            json!({"href": "/api/v1/vms/1", "name": "web-01", "state": "running"})
        );
        assert_eq!(page.total, 5);
        // Items without href (or without a requested field) simply lack it.
        let page = q(RawParams {
            fields: s("name,size"),
            ..raw()
        })
        .apply(vec![json!({"name": "x", "id": 1}), json!(3)]);
        assert_eq!(page.items, [json!({"name": "x"}), json!(3)]);
        // Asking for href explicitly is fine too.
        let page = q(RawParams {
            fields: s("href"),
            ..raw()
        })
        .apply(items());
        assert_eq!(page.items[1], json!({"href": "/api/v1/vms/2"}));
    }

    #[test]
    fn fields_duplicates_and_spaces() {
        let query = q(RawParams {
            fields: s("name, id ,name"),
            ..raw()
        });
        assert_eq!(query.fields.unwrap(), ["name", "id"]);
    }

    #[test]
    fn fields_invalid() {
        for v in [
            "",
            ",",
            "name,",
            ",name",
            "name,,id",
            " ",
            "nope",
            "name,nope",
            "data.kind",
            "Name",
        ] {
            let e = err(RawParams {
                fields: s(v),
                ..raw()
            });
            assert_eq!(e.code, "invalid_fields", "{v:?}");
            assert_eq!(e.param, "fields");
        }
        let e = err(RawParams {
            fields: s("name,bogus"),
            ..raw()
        });
        assert!(e.message.contains("unknown field `bogus`"), "{}", e.message);
        assert!(
            e.message
                .contains("valid fields: href, id, name, size, tags, state, data"),
            "{}",
            e.message
        );
    }

    #[test]
    fn sort_parse() {
        let query = q(RawParams {
            sort: s("state, -size ,name"),
            ..raw()
        });
        assert_eq!(
            query.sort,
            [
                SortKey {
                    field: "state".into(),
                    descending: false
                },
                SortKey {
                    field: "size".into(),
                    descending: true
                },
                SortKey {
                    field: "name".into(),
                    descending: false
                },
            ]
        );
    }

    #[test]
    fn sort_invalid() {
        for v in [
            "",
            ",",
            "-",
            "name,",
            "--name",
            "+name",
            "bogus",
            "-bogus",
            "name,,id",
            "data.kind",
        ] {
            let e = err(RawParams {
                sort: s(v),
                ..raw()
            });
            assert_eq!(e.code, "invalid_sort", "{v:?}");
            assert_eq!(e.param, "sort");
        }
        assert!(
            err(RawParams {
                sort: s("-nope"),
                ..raw()
            })
            .message
            .contains("valid fields:")
        );
    }

    #[test]
    fn sort_ascending_descending() {
        let sorted = |spec: &str| {
            ids(&q(RawParams {
                sort: s(spec),
                ..raw()
            })
            .apply(items()))
        };
        assert_eq!(sorted("name"), [4, 2, 1, 3, 5]);
        assert_eq!(sorted("-name"), [5, 3, 1, 2, 4]);
        // null first ascending, last descending; ties keep input order.
        assert_eq!(sorted("size"), [4, 2, 5, 3, 1]);
        assert_eq!(sorted("-size"), [1, 3, 2, 5, 4]);
        assert_eq!(sorted("size,-id"), [4, 5, 2, 3, 1]);
        assert_eq!(sorted("state,-size"), [5, 1, 3, 4, 2]);
        assert_eq!(sorted("id"), [1, 2, 3, 4, 5]);
        assert_eq!(sorted("-id"), [5, 4, 3, 2, 1]);
    }

    #[test]
    fn sort_is_stable() {
        const STATES: [&str; 3] = ["a", "b", "c"];
        let many: Vec<Value> = (0..200)
            .map(|i| json!({"id": i, "state": STATES[i % 3]}))
            .collect();
        for spec in ["state", "-state"] {
            let page = q(RawParams {
                sort: s(spec),
                ..raw()
            })
            .apply(many.clone());
            let mut last: Option<(String, i64)> = None;
            for v in &page.items {
                let cur = (
                    v["state"].as_str().unwrap().to_owned(),
                    v["id"].as_i64().unwrap(),
                );
                if let Some(prev) = &last
                    && prev.0 == cur.0
                {
                    assert!(prev.1 < cur.1, "unstable at {cur:?}");
                }
                last = Some(cur);
            }
        }
    }

    #[test]
    fn partial_sort_pages_agree_with_full_sort() {
        let many: Vec<Value> = (0..137)
            .map(|i: i64| json!({"id": i, "size": (i * 7919) % 13, "name": format!("n{}", (i * 31) % 17)}))
            .collect();
        for spec in ["size", "-size,name", "name,-id", "-name"] {
            let full = ids(&q(RawParams {
                sort: s(spec),
                ..raw()
            })
            .apply(many.clone()));
            let mut paged = Vec::new();
            let mut offset = 0;
            loop {
                let p = q(RawParams {
                    sort: s(spec),
                    limit: s("10"),
                    offset: Some(offset.to_string()),
                    ..raw()
                })
                .apply(many.clone());
                assert_eq!(p.total, 137);
                if p.items.is_empty() {
                    break;
                }
                paged.extend(ids(&p));
                offset += 10;
            }
            assert_eq!(paged, full, "{spec}");
        }
    }

    #[test]
    fn sort_mixed_types() {
        let mixed = vec![
            json!({"id": 1, "size": "x"}),
            json!({"id": 2, "size": 5}),
            json!({"id": 3}),
            json!({"id": 4, "size": true}),
            json!({"id": 5, "size": {"a": 1}}),
            json!({"id": 6, "size": [1]}),
            json!({"id": 7, "size": null}),
            json!({"id": 8, "size": -1.5}),
        ];
        let page = q(RawParams {
            sort: s("size"),
            ..raw()
        })
        .apply(mixed.clone());
        assert_eq!(ids(&page), [3, 7, 4, 8, 2, 1, 6, 5]);
        let page = q(RawParams {
            sort: s("-size"),
            ..raw()
        })
        .apply(mixed);
        assert_eq!(ids(&page), [5, 6, 1, 2, 8, 4, 3, 7]);
    }

    #[test]
    fn filter_then_total_then_page() {
        let query = q(RawParams {
            filter: s("state:running"),
            sort: s("-size"),
            limit: s("1"),
            offset: s("1"),
            fields: s("id"),
        });
        let page = query.apply(items());
        assert_eq!(page.total, 3);
        assert_eq!(page.items, [json!({"href": "/api/v1/vms/3", "id": 3})]);
    }

    #[test]
    fn filter_through_query() {
        let run = |f: &str| {
            ids(&q(RawParams {
                filter: s(f),
                ..raw()
            })
            .apply(items()))
        };
        assert_eq!(run("name:web*"), [1, 3, 5]);
        assert_eq!(run("!name:web*"), [2, 4]);
        assert_eq!(run("tags:prod"), [1, 3]);
        assert_eq!(run("size:>=200"), [1, 3]);
        assert_eq!(run("size:null"), [4]);
        assert_eq!(run("WEB !state:paused"), [1, 3]);
        assert_eq!(run(""), [1, 2, 3, 4, 5]);
        let query = q(RawParams {
            filter: s("state:running"),
            ..raw()
        });
        assert!(query.matches(&items()[0]));
        assert!(!query.matches(&items()[1]));
    }

    #[test]
    fn filter_errors_through_query() {
        for v in ["nope:1", "name:", "!", "\"x", "data.a.b:1"] {
            let e = err(RawParams {
                filter: s(v),
                ..raw()
            });
            assert_eq!((e.code, e.param), ("invalid_filter", "filter"), "{v:?}");
        }
        let e = err(RawParams {
            filter: s("nope:1"),
            ..raw()
        });
        assert!(
            e.message.contains("valid fields: href, id"),
            "{}",
            e.message
        );
    }

    #[test]
    fn first_bad_parameter_wins() {
        let e = err(RawParams {
            limit: s("0"),
            offset: s("-1"),
            fields: s(""),
            filter: s("!"),
            sort: s(""),
        });
        assert_eq!(e.code, "invalid_limit");
        let e = err(RawParams {
            offset: s("-1"),
            fields: s(""),
            ..raw()
        });
        assert_eq!(e.code, "invalid_offset");
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(codes::INVALID_LIMIT, "invalid_limit");
        assert_eq!(codes::INVALID_OFFSET, "invalid_offset");
        assert_eq!(codes::INVALID_FIELDS, "invalid_fields");
        assert_eq!(codes::INVALID_FILTER, "invalid_filter");
        assert_eq!(codes::INVALID_SORT, "invalid_sort");
    }

    #[test]
    fn shown_truncates_on_char_boundary() {
        assert_eq!(shown("abc"), "abc");
        let long = "é".repeat(100);
        let cut = shown(&long);
        assert_eq!(cut.chars().count(), 65);
        assert!(cut.ends_with('…'));
        let e = err(RawParams {
            limit: s(&"9".repeat(1000)),
            ..raw()
        });
        assert!(e.message.len() < 200);
    }

    #[test]
    fn nasty_params_never_panic() {
        let nasty = [
            "",
            ",",
            ",,",
            "-",
            "--",
            "!",
            "!!",
            ":::",
            "\"",
            "é",
            "🦀",
            "\u{0}",
            "-\u{0}",
            " , ",
            "name,-",
            "href,href",
        ];
        for v in nasty {
            let r = RawParams {
                limit: s(v),
                offset: s(v),
                fields: s(v),
                filter: s(v),
                sort: s(v),
            };
            let _ = Query::parse(&r, KNOWN);
            for one in [
                RawParams {
                    limit: s(v),
                    ..raw()
                },
                RawParams {
                    offset: s(v),
                    ..raw()
                },
                RawParams {
                    fields: s(v),
                    ..raw()
                },
                RawParams {
                    filter: s(v),
                    ..raw()
                },
                RawParams {
                    sort: s(v),
                    ..raw()
                },
            ] {
                if let Ok(query) = Query::parse(&one, KNOWN) {
                    let _ = query.apply(items());
                }
            }
        }
    }
}
