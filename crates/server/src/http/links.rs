//! OpenAPI `links` derived from the document itself, so that clients (and the fuzzer's stateful
//! phase) know which answer feeds which request: what `POST /pools` created is what
//! `GET /pools/{name}` takes.
//!
//! The rules, for every item path `X/{p}` (a collection `X` and its item parameter `p`):
//!
//! * Producers: `POST X` and `POST X/<word>` (a literal sibling such as `/pools/import` or
//!   `/system/backups/upload`, when it is not itself a collection), for each 2xx answer.
//! * The item's key: when the answer is the item's own schema (the schema `GET X/{p}` answers),
//!   its property `p`, else `name`, else `id` (`$response.body#/name`); when the answer has a
//!   property holding the item schema, that property's key (`$response.body#/token/id`); else
//!   (a `202` job) the JSON request body's property `p` (`$request.body#/name`).
//! * Targets: every operation whose path is `X/{p}` or continues below it (`X/{p}/start`,
//!   `X/{p}/snapshots`), whose parameters are all known: `p` and the parameters of `X`, which
//!   are passed on from the producer's own path (`$request.path.pool`).
//! * A listing `GET X` (200, an array of items) links to the `GET` operations of its first item
//!   (`$response.body#/0/name`); only reads, so following a listing never changes anything.

use std::collections::BTreeMap;

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::ArrayItems;
use utoipa::openapi::{OpenApi, RefOr, Schema};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn operation<'a>(doc: &'a OpenApi, path: &str, method: &str) -> Option<&'a Operation> {
    let item = doc.paths.paths.get(path)?;
    match method {
        "get" => item.get.as_ref(),
        "post" => item.post.as_ref(),
        "put" => item.put.as_ref(),
        "patch" => item.patch.as_ref(),
        "delete" => item.delete.as_ref(),
        _ => None,
    }
}

fn operation_mut<'a>(doc: &'a mut OpenApi, path: &str, method: &str) -> Option<&'a mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        "put" => item.put.as_mut(),
        "patch" => item.patch.as_mut(),
        "delete" => item.delete.as_mut(),
        _ => None,
    }
}

/// The names of the `{parameters}` in a path template.
fn path_params(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push(rest[start + 1..start + len].to_string());
        rest = &rest[start + len + 1..];
    }
    out
}

pub(crate) fn ref_name(schema: &RefOr<Schema>) -> Option<String> {
    match schema {
        RefOr::Ref(r) => r.ref_location.rsplit('/').next().map(str::to_string),
        RefOr::T(_) => None,
    }
}

/// The JSON schema of an answer (`application/json` only).
pub(crate) fn answer_schema<'a>(op: &'a Operation, status: &str) -> Option<&'a RefOr<Schema>> {
    match op.responses.responses.get(status)? {
        RefOr::T(r) => match r.content.get("application/json")? {
            RefOr::T(c) => c.schema.as_ref(),
            RefOr::Ref(_) => None,
        },
        RefOr::Ref(_) => None,
    }
}

/// The `$ref` name of the JSON request body (an operation that also takes an upload leaves the
/// expression unresolvable for those: the link is not followed then).
fn json_body(op: &Operation) -> Option<String> {
    let RefOr::T(body) = op.request_body.as_ref()? else {
        return None;
    };
    match body.content.get("application/json")? {
        RefOr::T(c) => ref_name(c.schema.as_ref()?),
        RefOr::Ref(_) => None,
    }
}

fn properties<'a>(doc: &'a OpenApi, schema: &str) -> Option<&'a BTreeMap<String, RefOr<Schema>>> {
    match doc.components.as_ref()?.schemas.get(schema)? {
        RefOr::T(Schema::Object(o)) => Some(&o.properties),
        _ => None,
    }
}

/// The property of the item schema that holds the key the item path takes.
fn key_property(doc: &OpenApi, item_schema: &str, param: &str) -> Option<String> {
    let props = properties(doc, item_schema)?;
    [param, "name", "id"]
        .into_iter()
        .find(|k| props.contains_key(*k))
        .map(str::to_string)
}

/// A JSON pointer token (RFC 6901) and an operationRef to `#/paths/<path>/<method>`.
fn operation_ref(path: &str, method: &str) -> String {
    format!(
        "#/paths/{}/{method}",
        path.replace('~', "~0").replace('/', "~1")
    )
}

/// `get_pools_pool_datasets_dataset`: a link name from the target.
fn link_name(path: &str, method: &str) -> String {
    let tail = path.strip_prefix("/api/v1/").unwrap_or(path);
    let mut name = format!("{method}_");
    for c in tail.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => name.push(c),
            '{' | '}' => {}
            _ => {
                if !name.ends_with('_') {
                    name.push('_');
                }
            }
        }
    }
    name.trim_end_matches('_').to_string()
}

struct Planned {
    path: String,
    method: &'static str,
    status: String,
    name: String,
    target_path: String,
    target_method: &'static str,
    params: Vec<(String, String)>,
}

/// Adds the links; returns how many.
pub fn add_links(doc: &mut OpenApi) -> usize {
    let paths: Vec<String> = doc.paths.paths.keys().cloned().collect();
    let mut planned = Vec::new();
    for item_path in &paths {
        let Some((collection, last)) = item_path.rsplit_once('/') else {
            continue;
        };
        // The item segment is exactly `{p}`.
        let Some(param) = last.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            continue;
        };
        if param.contains(['{', '}']) {
            continue;
        }
        let item_schema = operation(doc, item_path, "get")
            .and_then(|op| answer_schema(op, "200"))
            .and_then(ref_name);
        let parent_params = path_params(collection);
        // Everything at or below an item of the collection whose parameters are all known: the
        // parent's and the item's own, whatever a path calls it (`/pools/{name}` and
        // `/pools/{pool}/datasets` name the same pool).
        let depth = collection.split('/').count();
        let targets: Vec<(&String, &'static str, String)> = paths
            .iter()
            .filter_map(|q| {
                let segs: Vec<&str> = q.split('/').collect();
                if !q.starts_with(&format!("{collection}/")) || segs.len() <= depth {
                    return None;
                }
                let own = segs[depth]
                    .strip_prefix('{')?
                    .split_once('}')?
                    .0
                    .to_string();
                path_params(q)
                    .iter()
                    .all(|n| *n == own || parent_params.contains(n))
                    .then_some((q, own))
            })
            .flat_map(|(q, own)| {
                METHODS
                    .into_iter()
                    .filter(|m| operation(doc, q, m).is_some())
                    .map(move |m| (q, m, own.clone()))
            })
            .collect();
        if targets.is_empty() {
            continue;
        }
        let passed_on: Vec<(String, String)> = parent_params
            .iter()
            .map(|q| (format!("path.{q}"), format!("$request.path.{q}")))
            .collect();

        // Producers: POST X, POST X/<word>.
        let mut producers = vec![collection.to_string()];
        for p in &paths {
            if let Some(word) = p.strip_prefix(&format!("{collection}/"))
                && !word.contains(['/', '{'])
                && !paths.iter().any(|o| o.starts_with(&format!("{p}/")))
            {
                producers.push(p.clone());
            }
        }
        for producer in &producers {
            let Some(op) = operation(doc, producer, "post") else {
                continue;
            };
            let statuses: Vec<String> = op
                .responses
                .responses
                .keys()
                .filter(|s| s.starts_with('2'))
                .cloned()
                .collect();
            for status in statuses {
                let answer = answer_schema(op, &status);
                let answer_name = answer.and_then(ref_name);
                let expr = match (&item_schema, &answer_name) {
                    (Some(item), Some(ans)) if item == ans => {
                        key_property(doc, item, param).map(|k| format!("$response.body#/{k}"))
                    }
                    _ => None,
                }
                .or_else(|| {
                    // An answer that holds the item in one of its properties.
                    let item = item_schema.as_ref()?;
                    let props = properties(doc, answer_name.as_ref()?)?;
                    let (field, _) = props
                        .iter()
                        .find(|(_, s)| ref_name(s).as_ref() == Some(item))?;
                    let key = key_property(doc, item, param)?;
                    Some(format!("$response.body#/{field}/{key}"))
                })
                .or_else(|| {
                    // A job: the key the client chose in its request.
                    let body = json_body(op)?;
                    properties(doc, &body)?
                        .contains_key(param)
                        .then(|| format!("$request.body#/{param}"))
                });
                let Some(expr) = expr else { continue };
                for (tp, tm, own) in &targets {
                    if *tp == producer && *tm == "post" {
                        continue;
                    }
                    let mut params = passed_on.clone();
                    params.push((format!("path.{own}"), expr.clone()));
                    planned.push(Planned {
                        path: producer.clone(),
                        method: "post",
                        status: status.clone(),
                        name: link_name(tp, tm),
                        target_path: (*tp).clone(),
                        target_method: tm,
                        params,
                    });
                }
            }
        }

        // The listing: reads of its first item.
        if let Some(list) = operation(doc, collection, "get")
            && let Some(RefOr::T(Schema::Array(a))) = answer_schema(list, "200")
            && let ArrayItems::RefOrSchema(items) = &a.items
            && let Some(listed) = ref_name(items)
            && let Some(key) = key_property(doc, &listed, param)
        {
            for (tp, tm, own) in targets.iter().filter(|(_, m, _)| *m == "get") {
                let mut params = passed_on.clone();
                params.push((format!("path.{own}"), format!("$response.body#/0/{key}")));
                planned.push(Planned {
                    path: collection.to_string(),
                    method: "get",
                    status: "200".into(),
                    name: link_name(tp, tm),
                    target_path: (*tp).clone(),
                    target_method: tm,
                    params,
                });
            }
        }
    }

    let n = planned.len();
    for p in planned {
        let mut link = LinkBuilder::new()
            .operation_ref(operation_ref(&p.target_path, p.target_method))
            .description(format!(
                "{} {} with the key this answer names",
                p.target_method.to_uppercase(),
                p.target_path
            ));
        for (k, v) in p.params {
            link = link.parameter(k, v);
        }
        let Some(op) = operation_mut(doc, &p.path, p.method) else {
            continue;
        };
        if let Some(RefOr::T(resp)) = op.responses.responses.get_mut(&p.status) {
            resp.links.insert(p.name, RefOr::T(link.build()));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_refs() {
        assert_eq!(path_params("/a/{pool}/b/{id}.tar.zst"), ["pool", "id"]);
        assert_eq!(
            operation_ref("/api/v1/pools/{name}", "get"),
            "#/paths/~1api~1v1~1pools~1{name}/get"
        );
        assert_eq!(
            link_name("/api/v1/pools/{pool}/datasets/{dataset}", "delete"),
            "delete_pools_pool_datasets_dataset"
        );
    }

    fn link<'a>(
        doc: &'a OpenApi,
        path: &str,
        method: &str,
        status: &str,
        name: &str,
    ) -> Option<&'a utoipa::openapi::link::Link> {
        match operation(doc, path, method)?
            .responses
            .responses
            .get(status)?
        {
            RefOr::T(r) => match r.links.get(name)? {
                RefOr::T(l) => Some(l),
                RefOr::Ref(_) => None,
            },
            RefOr::Ref(_) => None,
        }
    }

    #[test]
    fn the_document_links_creates_to_items() {
        let (_, doc) = crate::http::openapi_and_router();
        // A job: the key from the request.
        let l = link(&doc, "/api/v1/pools", "post", "202", "get_pools_name").unwrap();
        assert_eq!(l.parameters["path.name"], "$request.body#/name");
        // The item itself, below a parent.
        let l = link(
            &doc,
            "/api/v1/pools/{pool}/datasets",
            "post",
            "201",
            "delete_pools_pool_datasets_dataset",
        )
        .unwrap();
        assert_eq!(l.parameters["path.dataset"], "$response.body#/name");
        assert_eq!(l.parameters["path.pool"], "$request.path.pool");
        // The same item under another parameter name.
        let l = link(
            &doc,
            "/api/v1/pools",
            "post",
            "202",
            "post_pools_pool_datasets",
        )
        .unwrap();
        assert_eq!(l.parameters["path.pool"], "$request.body#/name");
        // Deeper targets and the VM's id.
        let l = link(&doc, "/api/v1/vms", "post", "201", "post_vms_id_start").unwrap();
        assert_eq!(l.parameters["path.id"], "$response.body#/id");
        // A property holding the item.
        let l = link(&doc, "/api/v1/tokens", "post", "201", "delete_tokens_id").unwrap();
        assert_eq!(l.parameters["path.id"], "$response.body#/token/id");
        // A sibling producer.
        assert!(
            link(
                &doc,
                "/api/v1/pools/import",
                "post",
                "202",
                "get_pools_name"
            )
            .is_some()
        );
        // A job whose JSON request names the item, on an operation that also takes uploads.
        assert!(
            link(
                &doc,
                "/api/v1/vms/templates",
                "post",
                "202",
                "get_vms_templates_name"
            )
            .is_some()
        );
        // Listings link to reads only.
        assert!(link(&doc, "/api/v1/pools", "get", "200", "get_pools_name").is_some());
        assert!(link(&doc, "/api/v1/pools", "get", "200", "delete_pools_name").is_none());
    }
}
