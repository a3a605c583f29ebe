//! Post-processing passes that make the OpenAPI document usable by tools nobody here wrote
//! (client generators, validators):
//!
//! * [`operation_ids`]: every operationId derived from the method and path, `area_resource_action`
//!   (`GET /api/v1/shares/smb/{name}` → `shares_smb_get`), unique by construction (a unit test
//!   checks it). The handler names utoipa uses by default collide (`create` for SMB and NFS).
//! * [`binary_bodies`]: uploads and downloads (`application/octet-stream`, `x-tar`, `zstd`,
//!   `gzip`, `image/png`) are `{"type": "string", "format": "binary"}`, not the array of integers
//!   a `Vec<u8>` body becomes.
//! * [`prune_unused_schemas`]: component schemas no `$ref` reaches (from the paths, transitively)
//!   are dropped, e.g. an item schema whose only listing answers its `…Fields` copy.
//! * [`close_tagged_variants`]: the variants of internally tagged enums that serde closes
//!   (`deny_unknown_fields` on the enum refuses an unknown field in any variant) get
//!   `additionalProperties: false`, which utoipa only emits for structs.

use std::collections::{BTreeSet, HashSet};

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Content, OpenApi, RefOr, Schema};

/// Operations whose derived name would not read well: a GET that does something (reboot,
/// download, a WebSocket console), a POST that is an upload rather than a create, a DELETE
/// that cancels or revokes. Keyed by `(method, path)`; a unit test checks every key still names
/// an operation of the document.
const NAMED: &[(&str, &str, &str)] = &[
    ("get", "/metrics", "metrics_get"),
    ("get", "/api/v1/events", "events_stream"),
    ("get", "/api/v1/events/ws", "events_websocket"),
    ("delete", "/api/v1/jobs/{id}", "jobs_cancel"),
    ("delete", "/api/v1/tokens/{id}", "tokens_revoke"),
    ("get", "/api/v1/jobs/{id}/wait", "jobs_wait"),
    ("get", "/api/v1/admin/reboot", "admin_reboot"),
    ("get", "/api/v1/admin/debug", "admin_debug_download"),
    ("get", "/api/v1/admin/logs", "admin_logs_download"),
    ("post", "/api/v1/admin/backup", "admin_backup_action"),
    ("post", "/api/v1/admin/certs", "admin_certs_upload"),
    ("post", "/api/v1/admin/license", "admin_license_upload"),
    ("post", "/api/v1/admin/storage", "admin_storage_set"),
    ("post", "/api/v1/admin/update", "admin_update_upload"),
    ("post", "/api/v1/system/update", "system_update_upload"),
    (
        "get",
        "/api/v1/admin/backup/download",
        "admin_backup_download",
    ),
    (
        "get",
        "/api/v1/system/backups/{id}/download",
        "system_backups_download",
    ),
    (
        "get",
        "/api/v1/system/debug-bundle",
        "system_debug_bundle_download",
    ),
    (
        "get",
        "/api/v1/system/logs/archive",
        "system_logs_archive_download",
    ),
    ("post", "/api/v1/pools/{name}/scrub", "pools_scrub_start"),
    (
        "post",
        "/api/v1/pools/{name}/balance",
        "pools_balance_start",
    ),
    ("post", "/api/v1/pools/{name}/devices", "pools_devices_add"),
    (
        "delete",
        "/api/v1/pools/{name}/devices/{disk}",
        "pools_devices_remove",
    ),
    ("delete", "/api/v1/pools/{name}", "pools_destroy"),
    ("post", "/api/v1/vms/{id}/console", "vms_console_ticket"),
    ("get", "/api/v1/vms/{id}/serial", "vms_serial_websocket"),
    ("get", "/api/v1/vms/{id}/vnc", "vms_vnc_websocket"),
    ("get", "/api/v1/vms/{id}.tar.zst", "vms_export"),
    (
        "get",
        "/api/v1/vms/{id}/disks/{n}.{format}",
        "vms_disks_export",
    ),
    ("post", "/api/v1/vms/{id}/cdroms", "vms_cdroms_add"),
    ("delete", "/api/v1/vms/{id}/cdroms/{n}", "vms_cdroms_remove"),
    ("post", "/api/v1/vms/{id}/disks", "vms_disks_add"),
    ("delete", "/api/v1/vms/{id}/disks/{n}", "vms_disks_remove"),
    ("post", "/api/v1/vms/{id}/nics", "vms_nics_add"),
    ("delete", "/api/v1/vms/{id}/nics/{n}", "vms_nics_remove"),
];

fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> [(&'static str, Option<&mut Operation>); 5] {
    [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("patch", item.patch.as_mut()),
        ("delete", item.delete.as_mut()),
    ]
}

/// Whether a GET answers a list (200 `application/json` is an array).
fn answers_array(op: &Operation) -> bool {
    let Some(RefOr::T(ok)) = op.responses.responses.get("200") else {
        return false;
    };
    matches!(
        ok.content.get("application/json"),
        Some(RefOr::T(Content {
            schema: Some(RefOr::T(Schema::Array(_))),
            ..
        }))
    )
}

/// The operationId the rules give `method path`: the literal segments after `/api/v1`
/// (`-` → `_`), then the action: `list`/`get` for reads (a list when it answers an array),
/// `create` for a POST to a collection, `update` (PATCH), `set` (PUT), `delete`; a POST to a
/// literal path is the action its last segment names (`/pools/{name}/mount` → `pools_mount`).
fn derived_id(doc_paths: &BTreeSet<String>, method: &str, path: &str, lists: bool) -> String {
    if let Some((_, _, name)) = NAMED.iter().find(|(m, p, _)| *m == method && *p == path) {
        return (*name).to_string();
    }
    let rest = path
        .strip_prefix("/api/v1/")
        .unwrap_or(path.trim_start_matches('/'));
    let segments: Vec<&str> = rest.split('/').collect();
    let literals: Vec<String> = segments
        .iter()
        .filter(|s| !s.starts_with('{'))
        .map(|s| s.replace(['-', '.'], "_"))
        .collect();
    let base = literals.join("_");
    let ends_in_param = segments.last().is_some_and(|s| s.starts_with('{'));
    // A collection: `X` where the document has `X/{p}`, or whose GET answers an array.
    let collection = lists
        || doc_paths.iter().any(|p| {
            p.strip_prefix(path)
                .is_some_and(|r| r.starts_with("/{") && r.matches('/').count() == 1)
        });
    let action = match method {
        "get" if !ends_in_param && collection => "list",
        "get" => "get",
        "post" if collection && !ends_in_param => "create",
        "post" => return base,
        "put" => "set",
        "patch" => "update",
        "delete" => "delete",
        _ => method,
    };
    format!("{base}_{action}")
}

/// Sets every operation's operationId from its method and path (see [`derived_id`]).
pub fn operation_ids(doc: &mut OpenApi) {
    let paths: BTreeSet<String> = doc.paths.paths.keys().cloned().collect();
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations_mut(item) {
            let Some(op) = op else { continue };
            let lists = method == "get" && answers_array(op);
            op.operation_id = Some(derived_id(&paths, method, path, lists));
        }
    }
}

/// Media types whose bodies are bytes, not JSON.
const BINARY_TYPES: &[&str] = &[
    "application/octet-stream",
    "application/x-tar",
    "application/zstd",
    "application/gzip",
    "image/png",
];

fn binary_schema() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .build(),
    ))
}

/// An array of integers: what utoipa makes of `Vec<u8>`.
fn is_byte_array(schema: &RefOr<Schema>) -> bool {
    use utoipa::openapi::schema::ArrayItems;
    let RefOr::T(Schema::Array(a)) = schema else {
        return false;
    };
    let ArrayItems::RefOrSchema(items) = &a.items else {
        return false;
    };
    matches!(items.as_ref(), RefOr::T(Schema::Object(o))
        if matches!(&o.schema_type, utoipa::openapi::schema::SchemaType::Type(Type::Integer)))
}

fn fix_binary(media_type: &str, content: &mut RefOr<Content>) {
    let RefOr::T(content) = content else { return };
    let binary_type = BINARY_TYPES.contains(&media_type);
    let bytes = content.schema.as_ref().is_some_and(is_byte_array);
    // A `$ref` to a binary string (`PackageBody`) is inlined, so the upload needs no component.
    let named = matches!(&content.schema, Some(RefOr::Ref(_)));
    if (binary_type && (bytes || named || content.schema.is_none())) || bytes {
        content.schema = Some(binary_schema());
    } else if binary_type
        && let Some(RefOr::T(Schema::Object(o))) = &mut content.schema
        && matches!(
            &o.schema_type,
            utoipa::openapi::schema::SchemaType::Type(Type::String)
        )
    {
        o.format = Some(SchemaFormat::KnownFormat(KnownFormat::Binary));
    }
}

/// Uploads and downloads as binary strings (see the module docs).
pub fn binary_bodies(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for (_, op) in operations_mut(item) {
            let Some(op) = op else { continue };
            if let Some(RefOr::T(body)) = op.request_body.as_mut() {
                for (media_type, content) in body.content.iter_mut() {
                    fix_binary(media_type, content);
                }
            }
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    for (media_type, content) in response.content.iter_mut() {
                        fix_binary(media_type, content);
                    }
                }
            }
        }
    }
}

/// Internally tagged enums with `deny_unknown_fields` whose variants all have named fields (a
/// unit variant of such an enum ignores unknown fields in serde, so it must not be closed). A
/// unit test checks that serde refuses an unknown field in each.
pub const CLOSED_VARIANTS: &[&str] = &["RecipeStep", "Provisioner", "StorageSettings"];

/// Closes the object variants of the [`CLOSED_VARIANTS`] schemas.
pub fn close_tagged_variants(doc: &mut OpenApi) {
    use utoipa::openapi::schema::AdditionalProperties;
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in CLOSED_VARIANTS {
        let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut(*name) else {
            continue;
        };
        for item in one_of.items.iter_mut() {
            if let RefOr::T(Schema::Object(o)) = item {
                o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// The component schema names `json` (a serialized part of the document) refers to.
///
/// A text scan, not a walk over a `serde_json::Value`: building that tree of the whole document
/// was a quarter of the daemon's start-up (docs/benchmarks.md). The prefix only occurs in
/// `$ref`s; a description quoting it would keep one more schema, never drop a used one.
fn collect_refs(json: &str, out: &mut HashSet<String>) {
    const PREFIX: &str = "\"#/components/schemas/";
    let mut rest = json;
    while let Some(at) = rest.find(PREFIX) {
        rest = &rest[at + PREFIX.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        // Names are plain identifiers: an escaped `~1` or `\"` would be no schema of ours.
        out.insert(rest[..end].to_string());
        rest = &rest[end..];
    }
}

/// Drops the component schemas nothing reaches from the paths (transitively).
pub fn prune_unused_schemas(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let paths = serde_json::to_string(&doc.paths).unwrap_or_default();
    let mut reached = HashSet::new();
    collect_refs(&paths, &mut reached);
    let mut todo: Vec<String> = reached.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        let Some(schema) = components.schemas.get(&name) else {
            continue;
        };
        let mut refs = HashSet::new();
        collect_refs(
            &serde_json::to_string(schema).unwrap_or_default(),
            &mut refs,
        );
        for r in refs {
            if reached.insert(r.clone()) {
                todo.push(r);
            }
        }
    }
    components.schemas.retain(|name, _| reached.contains(name));
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn doc() -> OpenApi {
        crate::http::openapi_and_router().1
    }

    fn ids(doc: &OpenApi) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("patch", &item.patch),
                ("delete", &item.delete),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    let id = op.operation_id.clone().expect("every operation has an id");
                    out.push((id, method.to_string(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn operation_ids_are_unique_and_read_well() {
        let doc = doc();
        let ids = ids(&doc);
        let mut seen: HashMap<&str, (&str, &str)> = HashMap::new();
        for (id, method, path) in &ids {
            if let Some((m, p)) = seen.insert(id, (method, path)) {
                panic!("operationId {id} for both {m} {p} and {method} {path}");
            }
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !id.starts_with('_')
                    && !id.ends_with('_')
                    && !id.contains("__"),
                "{id} ({method} {path}) is not snake_case"
            );
        }
        let id = |m: &str, p: &str| {
            ids.iter()
                .find(|(_, method, path)| method == m && path == p)
                .map(|(id, _, _)| id.as_str())
                .unwrap_or_else(|| panic!("no {m} {p}"))
        };
        assert_eq!(id("get", "/api/v1/shares/smb/{name}"), "shares_smb_get");
        assert_eq!(id("post", "/api/v1/shares/smb"), "shares_smb_create");
        assert_eq!(id("post", "/api/v1/shares/nfs"), "shares_nfs_create");
        assert_eq!(id("get", "/api/v1/shares/nfs"), "shares_nfs_list");
        assert_eq!(id("get", "/api/v1/disks/{id}"), "disks_get");
        assert_eq!(id("get", "/api/v1/vms/{id}/disks/{n}"), "vms_disks_get");
        assert_eq!(id("get", "/api/v1/disks"), "disks_list");
        assert_eq!(
            id("post", "/api/v1/pools/{name}/scrub"),
            "pools_scrub_start"
        );
        assert_eq!(id("get", "/api/v1/pools/{name}/scrub"), "pools_scrub_get");
        assert_eq!(id("post", "/api/v1/pools/{name}/mount"), "pools_mount");
        assert_eq!(id("patch", "/api/v1/users/{name}"), "users_update");
        assert_eq!(id("post", "/api/v1/auth/login"), "auth_login");
    }

    #[test]
    fn every_named_operation_exists() {
        let doc = doc();
        for (method, path, name) in NAMED {
            let item = doc
                .paths
                .paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path}"));
            let op = match *method {
                "get" => &item.get,
                "post" => &item.post,
                "put" => &item.put,
                "patch" => &item.patch,
                "delete" => &item.delete,
                _ => &None,
            };
            assert!(
                op.is_some(),
                "NAMED has {method} {path} ({name}) but the document does not"
            );
        }
    }

    #[test]
    fn bodies_of_bytes_are_binary_strings_and_no_schema_is_unused() {
        let value = serde_json::to_value(doc()).unwrap();
        let mut bad = Vec::new();
        fn walk(v: &serde_json::Value, at: &str, bad: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(map) => {
                    if map.get("type") == Some(&serde_json::json!("array"))
                        && map["items"]["type"] == "integer"
                        && at.contains("/content/")
                    {
                        bad.push(at.to_string());
                    }
                    for (k, x) in map {
                        walk(x, &format!("{at}/{k}"), bad);
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, x) in items.iter().enumerate() {
                        walk(x, &format!("{at}/{i}"), bad);
                    }
                }
                _ => {}
            }
        }
        walk(&value["paths"], "", &mut bad);
        assert!(bad.is_empty(), "byte arrays in bodies: {bad:?}");
        for (path, item) in value["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let mut contents = Vec::new();
                if let Some(c) = op["requestBody"]["content"].as_object() {
                    contents.extend(c.iter());
                }
                for r in op["responses"].as_object().unwrap().values() {
                    if let Some(c) = r["content"].as_object() {
                        contents.extend(c.iter());
                    }
                }
                for (media_type, c) in contents {
                    if BINARY_TYPES.contains(&media_type.as_str()) {
                        assert_eq!(
                            c["schema"],
                            serde_json::json!({"type": "string", "format": "binary"}),
                            "{method} {path} {media_type}"
                        );
                    }
                }
            }
        }
        let mut reached = HashSet::new();
        collect_refs(&value.to_string(), &mut reached);
        for name in value["components"]["schemas"].as_object().unwrap().keys() {
            assert!(reached.contains(name), "unused schema {name}");
        }
    }

    /// Each closed variant is closed in the document and in serde: a valid example of every
    /// variant deserializes, and the same with one unknown field is refused.
    #[test]
    fn closed_variants_match_serde() {
        use hostplane_types::provisioning::{Provisioner, RecipeStep};
        use hostplane_types::system::storage::StorageSettings;
        use serde_json::json;
        fn check<T: serde::de::DeserializeOwned>(examples: &[serde_json::Value]) {
            for e in examples {
                assert!(serde_json::from_value::<T>(e.clone()).is_ok(), "{e}");
                let mut extra = e.clone();
                extra["unknown_field"] = json!(1);
                assert!(serde_json::from_value::<T>(extra).is_err(), "{e} + unknown");
            }
        }
        let steps = [
            json!({"type": "wait", "pattern": "x"}),
            json!({"type": "send", "text": "x"}),
            json!({"type": "command", "command": "true"}),
            json!({"type": "write_file", "path": "/x", "content": "x"}),
            json!({"type": "delay", "millis": 1}),
        ];
        let provisioners = [
            json!({"type": "shell", "inline": ["true"]}),
            json!({"type": "file", "artifact": "a", "dest": "/x"}),
        ];
        let storage = [
            json!({"type": "local"}),
            json!({"type": "nfs", "ip": "10.0.0.1", "share": "/x"}),
            json!({"type": "aoe", "device": "e0.1"}),
            json!({"type": "iscsi", "target": "iqn.2016-01.com.example:x", "ip": "10.0.0.1"}),
            json!({"type": "nbd", "export_name": "x", "ip": "10.0.0.1"}),
        ];
        check::<RecipeStep>(&steps);
        check::<Provisioner>(&provisioners);
        check::<StorageSettings>(&storage);
        let value = serde_json::to_value(doc()).unwrap();
        for (name, n) in [
            ("RecipeStep", steps.len()),
            ("Provisioner", provisioners.len()),
            ("StorageSettings", storage.len()),
        ] {
            assert!(CLOSED_VARIANTS.contains(&name));
            let variants = value["components"]["schemas"][name]["oneOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} is a oneOf"));
            assert_eq!(variants.len(), n, "an example per variant of {name}");
            for v in variants {
                assert_eq!(v["additionalProperties"], json!(false), "{name}: {v}");
            }
        }
        assert_eq!(
            CLOSED_VARIANTS.len(),
            3,
            "every closed schema is checked here"
        );
    }
}
