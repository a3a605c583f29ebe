//! Who may call what: every operation declares its access beside its handler, in its
//! `#[utoipa::path]` attribute, and this module turns those declarations into the table the
//! auth layer enforces before any handler runs.
//!
//! Declaration (the OpenAPI document shows it as is):
//!
//! ```text
//! #[utoipa::path(get, path = "/api/v1/jobs",
//!     extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("jobs:read"))),
//!     ...)]
//! ```
//!
//! - `x-required-role`: `public` (no credential), `authenticated` (any API role: the operation
//!   only touches the caller), `viewer`, `operator` or `admin`. Role `share` never reaches the API.
//! - `x-required-scope`: `<area>:read|write`, checked against a scoped token's scopes. Absent
//!   only for `public` and `authenticated` operations.
//! - `x-public-when` (optional): a named, state-dependent exception that makes the operation
//!   public (`admin_api_token_unset_local`: Jidoteki's first-boot setup; `metrics_public`:
//!   `GET /metrics` with `metrics.public = true`).
//!
//! [`table`] builds the table once from the document and panics on an operation that declares
//! nothing or something invalid, so such a route cannot start a daemon (and a unit test names
//! it). Requests are matched against the documented path templates, including the ones axum
//! cannot route on their own (`/vms/{id}.tar.zst`, `/vms/{id}/disks/{n}.{format}`).

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::Method;
use hostplane_types::auth::Role;

use crate::error::ApiError;
use crate::platform::auth::Principal;

/// What a caller needs for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub need: Need,
    /// `(area, write)`: the scope a scoped token must hold.
    pub scope: Option<(String, bool)>,
    pub public_when: Option<PublicWhen>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Public,
    Authenticated,
    Role(Role),
}

/// State-dependent exceptions that make an operation public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicWhen {
    /// Jidoteki `POST /admin/setup`: until the admin-API token is set, from a local peer.
    AdminApiTokenUnsetLocal,
    /// `GET /metrics` when the configuration says `metrics.public = true`.
    MetricsPublic,
}

impl Need {
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Public => "public",
            Need::Authenticated => "authenticated",
            Need::Role(r) => r.as_str(),
        }
    }
}

impl Access {
    fn parse(
        role: Option<&serde_json::Value>,
        scope: Option<&serde_json::Value>,
        public_when: Option<&serde_json::Value>,
    ) -> Result<Access, String> {
        let role = role
            .and_then(|v| v.as_str())
            .ok_or("no x-required-role (declare it in the #[utoipa::path] extensions)")?;
        let need = match role {
            "public" => Need::Public,
            "authenticated" => Need::Authenticated,
            r => match Role::parse(r) {
                Some(Role::Share) | None => {
                    return Err(format!(
                        "x-required-role {r:?} is not a role an operation can require"
                    ));
                }
                Some(r) => Need::Role(r),
            },
        };
        let scope = match scope {
            None => None,
            Some(v) => {
                let s = v.as_str().ok_or("x-required-scope is not a string")?;
                let (area, access) = s
                    .split_once(':')
                    .ok_or_else(|| format!("x-required-scope {s:?} is not <area>:read|write"))?;
                if !crate::areas::scope_names().contains(&area) {
                    return Err(format!("x-required-scope names an unknown area {area:?}"));
                }
                let write = match access {
                    "read" => false,
                    "write" => true,
                    _ => return Err(format!("x-required-scope {s:?} is not <area>:read|write")),
                };
                Some((area.to_string(), write))
            }
        };
        match (need, &scope) {
            (Need::Role(_), None) => {
                return Err("an operation that needs a role also declares x-required-scope".into());
            }
            (Need::Public | Need::Authenticated, Some(_)) => {
                return Err("public and authenticated operations take no scope".into());
            }
            _ => {}
        }
        let public_when = match public_when.map(|v| v.as_str()) {
            None => None,
            Some(Some("admin_api_token_unset_local")) => Some(PublicWhen::AdminApiTokenUnsetLocal),
            Some(Some("metrics_public")) => Some(PublicWhen::MetricsPublic),
            Some(other) => return Err(format!("unknown x-public-when {other:?}")),
        };
        Ok(Access {
            need,
            scope,
            public_when,
        })
    }

    /// Whether `p` may call the operation (role and scope); the share role never may.
    pub fn check(&self, p: &Principal) -> Result<(), ApiError> {
        if p.role == Role::Share {
            return Err(ApiError::Forbidden(
                crate::http::auth_layer::SHARE_ONLY.into(),
            ));
        }
        if let Need::Role(r) = self.need {
            p.require(r)?;
        }
        if let Some((area, write)) = &self.scope
            && !p.scope_allows(area, *write)
        {
            return Err(ApiError::Forbidden(format!(
                "the token's scopes do not allow {} on {area}",
                if *write { "write" } else { "read" }
            )));
        }
        Ok(())
    }

    /// The same as [`Access::check`], as a yes/no (event and job visibility).
    pub fn allows(&self, p: &Principal) -> bool {
        self.check(p).is_ok()
    }
}

/// One segment of a path template: literal text and `{param}`s. A segment like
/// `{id}.tar.zst` is `[Param, Lit(".tar.zst")]`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Param,
}

/// One documented operation: its path template, its access, its query parameters.
#[derive(Debug)]
pub struct Template {
    pub path: String,
    segments: Vec<Vec<Piece>>,
    /// Literal characters: the most specific template wins.
    literal_len: usize,
    pub access: Access,
    /// The query parameters the operation documents; any other is refused.
    pub query: Vec<String>,
    /// For a single-item GET that takes `fields`: the item's property names (the answer is
    /// projected by `http::fields`). `None` for collections, which project themselves.
    pub item_fields: Option<Vec<String>>,
    /// The JSON schema of the `application/json` request body, if any.
    pub body: Option<serde_json::Value>,
}

/// Query parameters every operation takes: the credentials of the auth layer.
const CREDENTIAL_PARAMS: &[&str] = &["token", "hash", "ticket"];

/// The first query parameter of `query` not in `known` and not a credential, if any: a typo
/// (`skip_standby` for `skipStandby`) must not silently drop what the caller meant.
pub fn unknown_query_param(known: &[&str], query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query?).ok()?;
    pairs
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| !CREDENTIAL_PARAMS.contains(&k.as_str()) && !known.contains(&k.as_str()))
}

fn parse_template(path: &str) -> Vec<Vec<Piece>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|seg| {
            let mut pieces = Vec::new();
            let mut rest = seg;
            while !rest.is_empty() {
                if let Some(stripped) = rest.strip_prefix('{') {
                    let end = stripped.find('}').map(|i| i + 1).unwrap_or(stripped.len());
                    pieces.push(Piece::Param);
                    rest = stripped.get(end..).unwrap_or("");
                } else {
                    let end = rest.find('{').unwrap_or(rest.len());
                    pieces.push(Piece::Lit(rest[..end].to_string()));
                    rest = &rest[end..];
                }
            }
            pieces
        })
        .collect()
}

/// Whether one request path segment matches one template segment. A parameter takes at least
/// one character; a parameter followed by a literal takes up to that literal's last match
/// (`{n}.{format}` on `0.raw`: n = `0`, format = `raw`).
fn segment_matches(pieces: &[Piece], seg: &str) -> bool {
    match pieces.split_first() {
        None => seg.is_empty(),
        Some((Piece::Lit(l), rest)) => seg
            .strip_prefix(l.as_str())
            .is_some_and(|s| segment_matches(rest, s)),
        Some((Piece::Param, [])) => !seg.is_empty(),
        Some((Piece::Param, rest)) => {
            (1..seg.len()).any(|i| seg.is_char_boundary(i) && segment_matches(rest, &seg[i..]))
        }
    }
}

/// What [`AccessTable::check_body_shape`] reads of a schema, and nothing else: references,
/// choices, `type`, `items` and `properties` (by name). Descriptions, examples, patterns and
/// enums are most of the document's schemas; the table keeps this skeleton for the daemon's
/// whole life, so they would be idle heap.
fn skeleton(schema: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let Value::Object(map) = schema else {
        return Value::Null;
    };
    let kept = map
        .into_iter()
        .filter_map(|(k, v)| {
            let v = match k.as_str() {
                "$ref" | "type" => v,
                "items" => skeleton(v),
                "oneOf" | "anyOf" | "allOf" => match v {
                    Value::Array(branches) => {
                        Value::Array(branches.into_iter().map(skeleton).collect())
                    }
                    _ => return None,
                },
                "properties" => match v {
                    Value::Object(props) => {
                        Value::Object(props.into_iter().map(|(n, p)| (n, skeleton(p))).collect())
                    }
                    _ => return None,
                },
                _ => return None,
            };
            Some((k, v))
        })
        .collect();
    Value::Object(kept)
}

/// The property names of the one object a GET answers with (200 → `$ref` object), if so.
fn item_properties(
    doc: &utoipa::openapi::OpenApi,
    op: &utoipa::openapi::path::Operation,
) -> Option<Vec<String>> {
    use utoipa::openapi::{RefOr, Schema};
    let name = crate::http::links::ref_name(crate::http::links::answer_schema(op, "200")?)?;
    match doc.components.as_ref()?.schemas.get(&name)? {
        RefOr::T(Schema::Object(obj)) => Some(obj.properties.keys().cloned().collect()),
        _ => None,
    }
}

/// Every documented operation's access, by method.
#[derive(Debug, Default)]
pub struct AccessTable {
    by_method: HashMap<Method, Vec<Template>>,
    /// `components.schemas` of the document as JSON, for [`AccessTable::check_body_shape`].
    schemas: serde_json::Value,
}

impl AccessTable {
    /// Reads the declarations of every operation of `doc`. Errors name each operation that
    /// declares nothing or something invalid.
    pub fn from_doc(doc: &utoipa::openapi::OpenApi) -> Result<AccessTable, Vec<String>> {
        let mut table = AccessTable {
            schemas: doc
                .components
                .as_ref()
                .and_then(|c| serde_json::to_value(&c.schemas).ok())
                .map(|schemas| match schemas {
                    serde_json::Value::Object(map) => serde_json::Value::Object(
                        map.into_iter().map(|(k, v)| (k, skeleton(v))).collect(),
                    ),
                    other => other,
                })
                .unwrap_or_default(),
            ..Default::default()
        };
        let mut errors = Vec::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                let ext = op.extensions.as_ref();
                let get = |k: &str| ext.and_then(|e| e.get(k));
                let access = match Access::parse(
                    get("x-required-role"),
                    get("x-required-scope"),
                    get("x-public-when"),
                ) {
                    Ok(a) => a,
                    Err(e) => {
                        errors.push(format!("{method} {path}: {e}"));
                        continue;
                    }
                };
                if method != Method::GET && matches!(access.need, Need::Role(Role::Viewer)) {
                    errors.push(format!(
                        "{method} {path}: a mutating operation needs at least operator"
                    ));
                }
                // A GET may need write (a console types into a VM); a change never needs only read.
                if let Some((_, false)) = &access.scope
                    && method != Method::GET
                {
                    errors.push(format!(
                        "{method} {path}: a mutating operation needs a write scope"
                    ));
                }
                let query: Vec<String> = op
                    .parameters
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        utoipa::openapi::RefOr::T(p)
                            if p.parameter_in == utoipa::openapi::path::ParameterIn::Query =>
                        {
                            Some(p.name.clone())
                        }
                        _ => None,
                    })
                    .collect();
                let item_fields = (method == Method::GET && query.iter().any(|q| q == "fields"))
                    .then(|| item_properties(doc, op))
                    .flatten();
                let body = match &op.request_body {
                    Some(utoipa::openapi::RefOr::T(b)) => match b.content.get("application/json") {
                        Some(utoipa::openapi::RefOr::T(c)) => c
                            .schema
                            .as_ref()
                            .and_then(|s| serde_json::to_value(s).ok())
                            .map(skeleton),
                        _ => None,
                    },
                    _ => None,
                };
                let segments = parse_template(path);
                let literal_len = segments
                    .iter()
                    .flatten()
                    .map(|p| match p {
                        Piece::Lit(l) => l.len(),
                        Piece::Param => 0,
                    })
                    .sum();
                table.by_method.entry(method).or_default().push(Template {
                    path: path.clone(),
                    segments,
                    literal_len,
                    access,
                    query,
                    item_fields,
                    body,
                });
            }
        }
        for list in table.by_method.values_mut() {
            list.sort_by_key(|t| std::cmp::Reverse(t.literal_len));
        }
        if errors.is_empty() {
            Ok(table)
        } else {
            Err(errors)
        }
    }

    /// The operation a request path names (HEAD as GET), and its template.
    pub fn lookup(&self, method: &Method, path: &str) -> Option<(&str, &Access)> {
        self.operation(method, path)
            .map(|t| (t.path.as_str(), &t.access))
    }

    /// The documented operation a request names (HEAD as GET). `None` also when another
    /// method's operation names the path more precisely (`DELETE /vms/x/disks/0.raw` is the
    /// export's path with an undeclared method, not disk 0's DELETE): the router answers 405.
    pub fn operation(&self, method: &Method, path: &str) -> Option<&Template> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let found = *self.matching(method, &segs).first()?;
        let more_precise_elsewhere = self
            .by_method
            .keys()
            .filter(|m| *m != method)
            .filter_map(|m| self.matching(m, &segs).first().copied())
            .any(|t| t.literal_len > found.literal_len);
        (!more_precise_elsewhere).then_some(found)
    }

    /// The query parameters a request may send: those of every operation of its method whose
    /// template matches the path (`/vms/x/disks/0.raw` is both a disk and its export).
    pub fn known_query_params(&self, method: &Method, path: &str) -> Vec<&str> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut known: Vec<&str> = self
            .matching(method, &segs)
            .into_iter()
            .flat_map(|t| t.query.iter().map(String::as_str))
            .collect();
        known.sort_unstable();
        known.dedup();
        known
    }

    /// The templates of `method` that match `segs`, most specific first.
    fn matching(&self, method: &Method, segs: &[&str]) -> Vec<&Template> {
        self.by_method
            .get(method)
            .into_iter()
            .flatten()
            .filter(|t| {
                t.segments.len() == segs.len()
                    && t.segments
                        .iter()
                        .zip(segs)
                        .all(|(pieces, seg)| segment_matches(pieces, seg))
            })
            .collect()
    }

    /// Refuses a JSON body that gives an array where the operation's schema wants an object.
    /// serde reads a struct from a JSON array (field by field, in order), so
    /// `{"partitions": [[null, null]]}` would pass as two default partitions: the schema, not
    /// serde, knows it is wrong. Other type errors are serde's to report.
    pub fn check_body_shape(
        &self,
        method: &Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(), String> {
        let Some(schema) = self.operation(method, path).and_then(|t| t.body.as_ref()) else {
            return Ok(());
        };
        self.shape(body, schema, "", 0)
    }

    fn resolve<'a>(&'a self, schema: &'a serde_json::Value) -> &'a serde_json::Value {
        match schema.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => r
                .rsplit('/')
                .next()
                .and_then(|name| self.schemas.get(name))
                .unwrap_or(schema),
            None => schema,
        }
    }

    fn wants_object(&self, schema: &serde_json::Value) -> bool {
        let s = self.resolve(schema);
        s.get("type").and_then(|t| t.as_str()) == Some("object") || s.get("properties").is_some()
    }

    fn shape(
        &self,
        value: &serde_json::Value,
        schema: &serde_json::Value,
        at: &str,
        depth: usize,
    ) -> Result<(), String> {
        use serde_json::Value;
        if depth > 32 {
            return Ok(());
        }
        let s = self.resolve(schema);
        // Option<T>: oneOf [null, T]; a choice of objects only: any of them.
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = s.get(key) {
                let non_null: Vec<&Value> = branches
                    .iter()
                    .filter(|b| {
                        self.resolve(b).get("type").and_then(|t| t.as_str()) != Some("null")
                    })
                    .collect();
                if value.is_array()
                    && !non_null.is_empty()
                    && non_null.iter().all(|b| self.wants_object(b))
                {
                    return Err(format!(
                        "{}: expected an object, not an array",
                        field_name(at)
                    ));
                }
                if let [one] = non_null.as_slice() {
                    return self.shape(value, one, at, depth + 1);
                }
                return Ok(());
            }
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for b in all {
                self.shape(value, b, at, depth + 1)?;
            }
        }
        match value {
            Value::Array(items) => {
                if self.wants_object(s) {
                    return Err(format!(
                        "{}: expected an object, not an array",
                        field_name(at)
                    ));
                }
                if let Some(item_schema) = s.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.shape(item, item_schema, &format!("{at}[{i}]"), depth + 1)?;
                    }
                }
                Ok(())
            }
            Value::Object(map) => {
                let Some(Value::Object(props)) = s.get("properties") else {
                    return Ok(());
                };
                for (k, v) in map {
                    if let Some(ps) = props.get(k) {
                        let at = if at.is_empty() {
                            k.clone()
                        } else {
                            format!("{at}.{k}")
                        };
                        self.shape(v, ps, &at, depth + 1)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether `p` may read what `href` names (its GET operation). Hrefs no operation reads
    /// are admin-only.
    pub fn may_read(&self, p: &Principal, href: &str) -> bool {
        let path = href.split(['?', '#']).next().unwrap_or(href);
        match self.lookup(&Method::GET, path) {
            Some((_, access)) => access.allows(p),
            None => p.role == Role::Admin && p.scopes.is_empty(),
        }
    }

    /// Whether `p` may see a job: admins see all; others their own jobs and the jobs whose
    /// target they may read (a job with no target: anyone who may read jobs).
    pub fn may_see_job(&self, p: &Principal, created_by: &str, target: Option<&str>) -> bool {
        sees_everything(p) || created_by == p.user || target.is_none_or(|t| self.may_read(p, t))
    }

    /// Whether `p` may see an event: it may read what the event is about (its `href`), and
    /// for a job event also the job (see [`AccessTable::may_see_job`]). Viewers therefore see
    /// no user, token or backup events, and a scoped token sees only its areas.
    pub fn may_see_event(&self, p: &Principal, e: &hostplane_types::events::Event) -> bool {
        if sees_everything(p) {
            return true;
        }
        if !self.may_read(p, &e.href) {
            return false;
        }
        if e.r#type.starts_with("job.") {
            let created_by = e
                .data
                .get("created_by")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let target = e.data.get("target").and_then(|v| v.as_str());
            return self.may_see_job(p, created_by, target);
        }
        true
    }

    /// Every operation with its access, sorted by path then method (docs, tests).
    pub fn operations(&self) -> Vec<(Method, &str, &Access)> {
        let mut all: Vec<(Method, &str, &Access)> = self
            .by_method
            .iter()
            .flat_map(|(m, list)| {
                list.iter()
                    .map(move |t| (m.clone(), t.path.as_str(), &t.access))
            })
            .collect();
        all.sort_by(|a, b| (a.1, a.0.as_str()).cmp(&(b.1, b.0.as_str())));
        all
    }
}

impl AccessTable {
    /// The table of docs/security.md: every operation, the least role, the scope.
    pub fn render_markdown(&self) -> String {
        let mut out = String::from("| operation | least role | scope |\n|---|---|---|\n");
        for (method, path, a) in self.operations() {
            let mut role = a.need.as_str().to_string();
            match a.public_when {
                Some(PublicWhen::AdminApiTokenUnsetLocal) => {
                    role.push_str(" (public from loopback until the admin-API token is set)")
                }
                Some(PublicWhen::MetricsPublic) => {
                    role.push_str(" (public with `metrics.public = true`)")
                }
                None => {}
            }
            let scope = match &a.scope {
                Some((area, true)) => format!("`{area}:write`"),
                Some((area, false)) => format!("`{area}:read`"),
                None => "—".into(),
            };
            out.push_str(&format!("| `{method} {path}` | {role} | {scope} |\n"));
        }
        out
    }
}

fn field_name(at: &str) -> &str {
    if at.is_empty() { "the body" } else { at }
}

/// An unscoped admin may read every operation: the fast path of the visibility checks.
pub fn sees_everything(p: &Principal) -> bool {
    p.role == Role::Admin && p.scopes.is_empty()
}

static TABLE: OnceLock<AccessTable> = OnceLock::new();

/// The table of this build's document. The daemon makes it at start from the document its
/// router came with ([`init_from`]); only code that never built the app (unit tests) builds
/// the document again here. Building the document twice cost the first request ~40 MiB of
/// transient heap and tens of milliseconds (docs/benchmarks.md).
pub fn table() -> &'static AccessTable {
    TABLE.get_or_init(|| {
        let (_, doc) = crate::http::openapi_and_router();
        build(&doc)
    })
}

/// Makes the table from `doc` unless it exists. Panics (the daemon does not start) when an
/// operation declares no or an invalid access.
pub fn init_from(doc: &utoipa::openapi::OpenApi) {
    TABLE.get_or_init(|| build(doc));
}

fn build(doc: &utoipa::openapi::OpenApi) -> AccessTable {
    match AccessTable::from_doc(doc) {
        Ok(t) => t,
        Err(errors) => panic!(
            "operations without a valid access declaration:\n{}",
            errors.join("\n")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostplane_types::auth::AuthMethod;

    fn principal(role: Role, scopes: &[&str]) -> Principal {
        Principal {
            user: "u".into(),
            role,
            method: AuthMethod::Bearer,
            token_id: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn every_operation_declares_a_valid_access() {
        let (_, doc) = crate::http::openapi_and_router();
        if let Err(errors) = AccessTable::from_doc(&doc) {
            panic!("{}", errors.join("\n"));
        }
    }

    #[test]
    fn templates_match_the_documented_paths() {
        let t = table();
        let (path, a) = t.lookup(&Method::GET, "/api/v1/vms/web.tar.zst").unwrap();
        assert_eq!(path, "/api/v1/vms/{id}.tar.zst");
        assert_eq!(a.need, Need::Role(Role::Operator));
        let (path, _) = t.lookup(&Method::GET, "/api/v1/vms/web").unwrap();
        assert_eq!(path, "/api/v1/vms/{id}");
        let (path, _) = t
            .lookup(&Method::GET, "/api/v1/vms/web/disks/0.qcow2")
            .unwrap();
        assert_eq!(path, "/api/v1/vms/{id}/disks/{n}.{format}");
        let (path, _) = t.lookup(&Method::GET, "/api/v1/vms/web/disks/0").unwrap();
        assert_eq!(path, "/api/v1/vms/{id}/disks/{n}");
        // A literal segment beats a parameter.
        let (path, _) = t.lookup(&Method::GET, "/api/v1/vms/templates").unwrap();
        assert_eq!(path, "/api/v1/vms/templates");
        let (path, _) = t.lookup(&Method::HEAD, "/api/v1/jobs").unwrap();
        assert_eq!(path, "/api/v1/jobs");
        assert!(t.lookup(&Method::GET, "/api/v1/nosuch").is_none());
        assert!(t.lookup(&Method::PUT, "/api/v1/jobs").is_none());
    }

    #[test]
    fn sensitive_reads_are_never_for_viewers() {
        let t = table();
        for path in [
            "/api/v1/admin/backup/download",
            "/api/v1/admin/backup/log",
            "/api/v1/admin/debug",
            "/api/v1/admin/logs",
            "/api/v1/system/backups",
            "/api/v1/system/backups/x/download",
            "/api/v1/system/debug-bundle",
            "/api/v1/system/logs/archive",
            "/api/v1/system/keys",
            "/api/v1/audit",
            "/api/v1/users",
            "/api/v1/users/bob",
            "/api/v1/tokens",
            "/api/v1/tokens/x",
            "/api/v1/vms/x/serial",
            "/api/v1/vms/x/vnc",
            "/api/v1/vms/x/screenshot",
            "/api/v1/vms/x.tar.zst",
            "/api/v1/vms/x/disks/0.raw",
        ] {
            let (_, a) = t.lookup(&Method::GET, path).unwrap();
            assert!(
                !a.allows(&principal(Role::Viewer, &[])),
                "a viewer may GET {path}"
            );
        }
    }

    #[test]
    fn scopes_and_hrefs() {
        let t = table();
        let vms_reader = principal(Role::Operator, &["vms:read"]);
        assert!(t.may_read(&vms_reader, "/api/v1/vms/a"));
        assert!(!t.may_read(&vms_reader, "/api/v1/pools/tank"));
        assert!(!t.may_read(&principal(Role::Viewer, &[]), "/api/v1/tokens/abc"));
        assert!(!t.may_read(&principal(Role::Viewer, &[]), "/api/v1/users/bob"));
        assert!(t.may_read(&principal(Role::Viewer, &[]), "/api/v1/pools/tank"));
        assert!(!t.may_read(&principal(Role::Share, &[]), "/api/v1/pools/tank"));
    }

    /// docs/security.md carries the generated table; `HOSTPLANE_UPDATE_DOCS=1` rewrites it.
    #[test]
    fn security_doc_lists_every_operation() {
        const BEGIN: &str = "<!-- access-table:begin (generated: HOSTPLANE_UPDATE_DOCS=1 cargo test -p hostplane-server security_doc) -->\n";
        const END: &str = "<!-- access-table:end -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md");
        let doc = std::fs::read_to_string(path).expect("docs/security.md");
        let (head, rest) = doc.split_once(BEGIN).expect("the begin marker");
        let (_, tail) = rest.split_once(END).expect("the end marker");
        let table = table().render_markdown();
        let wanted = format!("{head}{BEGIN}{table}{END}{tail}");
        if std::env::var_os("HOSTPLANE_UPDATE_DOCS").is_some() {
            std::fs::write(path, &wanted).unwrap();
        } else {
            assert!(
                doc == wanted,
                "docs/security.md's access table is out of date: HOSTPLANE_UPDATE_DOCS=1 cargo test -p hostplane-server security_doc"
            );
        }
    }

    #[test]
    fn arrays_are_not_objects() {
        let t = table();
        let post = Method::POST;
        let path = "/api/v1/disks/loop1/partition";
        let ok = serde_json::json!({"partitions": [{"size_bytes": 1048576}]});
        assert!(t.check_body_shape(&post, path, &ok).is_ok());
        let bad = serde_json::json!({"partitions": [[null, null]]});
        let e = t.check_body_shape(&post, path, &bad).unwrap_err();
        assert!(e.starts_with("partitions[0]"), "{e}");
        // Arrays where arrays belong stay fine.
        let tok = serde_json::json!({"name": "x", "scopes": ["vms:read"]});
        assert!(t.check_body_shape(&post, "/api/v1/tokens", &tok).is_ok());
    }

    /// The table keeps a schema's structure and none of its prose.
    #[test]
    fn schemas_are_kept_as_skeletons() {
        let s = skeleton(serde_json::json!({
            "type": "object", "description": "d", "required": ["a"],
            "properties": {
                "a": {"type": "array", "items": {"$ref": "#/components/schemas/X", "example": 1}},
                "b": {"oneOf": [{"type": "null"}, {"type": "string", "pattern": "^x$"}]}
            }
        }));
        assert_eq!(
            s,
            serde_json::json!({
                "type": "object",
                "properties": {
                    "a": {"type": "array", "items": {"$ref": "#/components/schemas/X"}},
                    "b": {"oneOf": [{"type": "null"}, {"type": "string"}]}
                }
            })
        );
        let t = table();
        let problem = &t.schemas["Problem"];
        assert_eq!(problem["type"], "object");
        assert!(problem["properties"]["code"].is_object());
        assert!(problem["properties"]["code"].get("description").is_none());
        let kept = serde_json::to_string(&t.schemas).unwrap().len();
        let full = crate::openapi_json();
        assert!(kept * 3 < full.len(), "{kept} of {}", full.len());
    }

    #[test]
    fn declarations_are_parsed_strictly() {
        let v = |s: &str| serde_json::Value::String(s.into());
        assert!(Access::parse(None, None, None).is_err());
        assert!(Access::parse(Some(&v("share")), Some(&v("vms:read")), None).is_err());
        assert!(Access::parse(Some(&v("viewer")), None, None).is_err());
        assert!(Access::parse(Some(&v("viewer")), Some(&v("nosuch:read")), None).is_err());
        assert!(Access::parse(Some(&v("public")), Some(&v("vms:read")), None).is_err());
        assert!(Access::parse(Some(&v("admin")), Some(&v("vms:write")), Some(&v("x"))).is_err());
        assert!(Access::parse(Some(&v("admin")), Some(&v("vms:write")), None).is_ok());
    }
}
