//! The HTTP layer: thin. It routes, authenticates, measures, and turns requests into calls on
//! the areas; it holds no business logic.
//!
//! Request flow: listener (TLS or plain TCP via axum-server, or the unix socket) →
//! [`drain::drain_unread_body`] (an answer given before the body was read still arrives) →
//! [`metrics_layer`] → [`auth_layer::auth_layer`] (credential → `Principal`, role/scope check,
//! audit) → the area handler (`areas::<area>`) → platform services (store, jobs, events) and the
//! host layer (`hostplane_host`). Errors leave as problem+json via `ApiError`.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, ResponseBuilder};
use utoipa_swagger_ui::SwaggerUi;

use crate::areas;
use crate::error::{ApiError, PROBLEM_JSON};
use crate::state::AppState;

pub mod access;
pub mod answer;
pub mod auth_layer;
pub mod caller;
pub mod collection;
pub mod conn_limit;
pub mod doc_passes;
pub mod drain;
pub mod etag;
pub mod extract;
pub mod fields;
pub mod links;
pub mod peer;
pub mod ratelimit;
pub mod ui;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hostplane",
        description = "One REST API for the host's disks, storage pools, shares, virtual machines, services and system administration. Errors are RFC 9457 problem+json with a stable `code`. Collections accept limit/offset/fields/filter/sort/ndjson. Slow operations answer 202 with a job.",
        license(name = "Apache-2.0")
    ),
    components(schemas(
        hostplane_types::problem::Problem,
        hostplane_types::problem::FieldError
    ))
)]
struct ApiDoc;

/// Error statuses every operation may answer, documented once for all.
const ERROR_STATUSES: &[(&str, &str)] = &[
    ("400", "Malformed request (Jidoteki-compatible routes)"),
    ("401", "No valid credentials"),
    ("403", "Authenticated but not allowed (role or scope)"),
    ("404", "No such resource"),
    ("405", "Method not allowed on this path"),
    (
        "409",
        "Conflicts with the current state (exists, busy, lock held)",
    ),
    ("413", "Body too large"),
    ("415", "Wrong content type"),
    ("422", "Invalid input; `errors` names the fields"),
    ("429", "Too many requests; see Retry-After"),
    (
        "503",
        "A subsystem this needs is not available on this host",
    ),
];

/// The finished OpenAPI document: operations from the areas, security schemes, and the
/// problem+json error responses added to every operation.
pub fn openapi_and_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(areas::router())
        .routes(utoipa_axum::routes!(metrics_endpoint))
        .split_for_parts();
    // One tag per area, in the registry's order.
    doc.tags = Some(
        areas::ALL
            .iter()
            .map(|a| {
                utoipa::openapi::tag::TagBuilder::new()
                    .name(a.name)
                    .description(Some(a.description))
                    .build()
            })
            .collect(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    // The job results' schemas, once for all the operations that answer a `Job`.
    let mut job_results = Vec::new();
    hostplane_types::jobs::result_type_schemas(&mut job_results);
    for (name, schema) in job_results {
        components.schemas.entry(name).or_insert(schema);
    }
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("hp_<id>_<secret>")
                .build(),
        ),
    );
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(auth_layer::COOKIE_NAME))),
    );
    components.add_security_scheme(
        "token",
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "token",
            "Jidoteki-compatible: an API token or the admin-API token in the query (shows up in logs)",
        ))),
    );
    components.add_security_scheme(
        "hash",
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "hash",
            "Jidoteki-compatible HMAC-SHA256 of METHOD+path keyed by hex(SHA-256(admin-API token)); replayable",
        ))),
    );
    let default_security: Vec<utoipa::openapi::security::SecurityRequirement> =
        ["bearer", "cookie", "token", "hash"]
            .iter()
            .map(|s| utoipa::openapi::security::SecurityRequirement::new(*s, Vec::<String>::new()))
            .collect();
    doc.security = Some(default_security);
    // Each answer is built once and cloned into the operations: building ~1,500 of them with
    // the builder was a tenth of the start-up.
    let error_responses: Vec<(&str, RefOr<utoipa::openapi::Response>)> = ERROR_STATUSES
        .iter()
        .map(|(status, text)| {
            let response = ResponseBuilder::new()
                .description(*text)
                .content(
                    PROBLEM_JSON,
                    Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Problem",
                    )))),
                )
                .build();
            (*status, RefOr::T(response))
        })
        .collect();
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            document_streams(op);
            for (status, response) in &error_responses {
                if !op.responses.responses.contains_key(*status) {
                    op.responses
                        .responses
                        .insert(status.to_string(), response.clone());
                }
            }
        }
    }
    close_multipart_forms(&mut doc);
    constrain_collection_params(&mut doc);
    document_pool_kind_limits(&mut doc);
    links::add_links(&mut doc);
    // After the links, which read the item schemas these passes replace by partial ones.
    add_item_fields_params(&mut doc);
    optional_empty_bodies(&mut doc);
    doc_passes::operation_ids(&mut doc);
    doc_passes::binary_bodies(&mut doc);
    doc_passes::close_tagged_variants(&mut doc);
    doc_passes::prune_unused_schemas(&mut doc);
    (router, doc)
}

/// Snapshots, scrub, balance, device changes and dataset quotas/retention are btrfs features:
/// on an ext4, xfs or mergerfs pool these operations answer 501 (`snapshots_unsupported`,
/// `unsupported_for_pool_kind`, `quota_unsupported`). Say so on each of them.
fn document_pool_kind_limits(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/v1/pools/{") {
            continue;
        }
        let btrfs_only = ["/snapshots", "/balance", "/scrub", "/devices"]
            .iter()
            .any(|s| path.contains(s));
        let dataset = path.ends_with("/datasets/{dataset}");
        let ops = [
            (&mut item.get, btrfs_only),
            (&mut item.post, btrfs_only),
            (&mut item.put, btrfs_only),
            (&mut item.patch, btrfs_only || dataset),
            (&mut item.delete, btrfs_only),
        ];
        for (op, limited) in ops {
            let Some(op) = op.as_mut().filter(|_| limited) else {
                continue;
            };
            op.responses
                .responses
                .entry("501".to_string())
                .or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("Not supported for this pool's kind (a btrfs feature)")
                            .content(
                                PROBLEM_JSON,
                                Content::new(Some(RefOr::Ref(
                                    utoipa::openapi::Ref::from_schema_name("Problem"),
                                ))),
                            )
                            .build(),
                    )
                });
        }
    }
}

/// The collection parameters `fields`, `sort` and `filter` only take the item's own field
/// names; say so per operation with a pattern built from the item schema, so clients (and the
/// fuzzer) know the valid values. The filter pattern covers the common subset of the grammar
/// (`field:value`, `!field:value`, bare words); the full grammar is in docs/collections.md.
fn constrain_collection_params(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Type};
    let Some(components) = doc.components.as_ref() else {
        return;
    };
    let mut partials = Vec::new();
    for item in doc.paths.paths.values_mut() {
        let Some(op) = item.get.as_mut() else {
            continue;
        };
        // The item type: 200 → application/json → array of $ref.
        let item_schema = match op.responses.responses.get("200") {
            Some(RefOr::T(r)) => match r.content.get("application/json") {
                Some(RefOr::T(c)) => match &c.schema {
                    Some(RefOr::T(utoipa::openapi::Schema::Array(a))) => match &a.items {
                        ArrayItems::RefOrSchema(s) => match s.as_ref() {
                            RefOr::Ref(r) => r.ref_location.rsplit('/').next().map(str::to_string),
                            _ => None,
                        },
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        let Some(name) = item_schema else { continue };
        let Some(RefOr::T(utoipa::openapi::Schema::Object(obj))) = components.schemas.get(&name)
        else {
            continue;
        };
        let names: Vec<String> = obj.properties.keys().cloned().collect();
        if names.is_empty() {
            continue;
        }
        // With `fields`, items carry only the named properties: the answer's items follow a
        // copy of the item schema with nothing required.
        let partial_name = format!("{name}Fields");
        let mut partial = obj.clone();
        partial.required.clear();
        partial.description = Some(format!(
            "A {name} as a collection returns it: every property unless `fields` names some (`href` is always kept)."
        ));
        partials.push((partial_name.clone(), partial));
        if let Some(RefOr::T(r)) = op.responses.responses.get_mut("200")
            && let Some(RefOr::T(c)) = r.content.get_mut("application/json")
        {
            c.schema = Some(RefOr::T(utoipa::openapi::Schema::Array(
                utoipa::openapi::schema::ArrayBuilder::new()
                    .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        partial_name,
                    )))
                    .build(),
            )));
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let patterns = collection::param_patterns(&names);
        for p in op.parameters.iter_mut().flatten() {
            let RefOr::T(p) = p else { continue };
            // An empty parameter (`offset=`) means the same as an absent one (http/collection.rs),
            // also for the two numbers: say so, or the document calls `offset=` invalid.
            if matches!(p.name.as_str(), "limit" | "offset")
                && let Some(number) = p.schema.take()
            {
                let empty = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(0))
                    .description(Some("Empty: as if absent"))
                    .build();
                p.schema = Some(RefOr::T(utoipa::openapi::Schema::OneOf(
                    utoipa::openapi::schema::OneOfBuilder::new()
                        .item(number)
                        .item(utoipa::openapi::Schema::Object(empty))
                        .build(),
                )));
            }
            if let Some((name, pattern)) = patterns.iter().find(|(n, _)| *n == p.name) {
                let mut schema = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(pattern.clone()));
                if *name == "filter" {
                    schema = schema.max_length(Some(4096));
                }
                p.schema = Some(RefOr::T(utoipa::openapi::Schema::Object(schema.build())));
            }
        }
    }
    insert_schemas(doc, partials);
}

/// Adds object schemas made by a pass to the document's components.
fn insert_schemas(
    doc: &mut utoipa::openapi::OpenApi,
    schemas: Vec<(String, utoipa::openapi::schema::Object)>,
) {
    if let Some(components) = doc.components.as_mut() {
        for (name, schema) in schemas {
            components
                .schemas
                .insert(name, RefOr::T(utoipa::openapi::Schema::Object(schema)));
        }
    }
}

/// Single-item GETs (200 answers one `$ref` object) take `fields` too: the answer keeps only
/// the named properties (and `href`), as collections do ([`fields::project_fields`]).
fn add_item_fields_params(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let Some(components) = doc.components.as_ref() else {
        return;
    };
    let mut partials = Vec::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        // The Jidoteki answers are fixed by their spec.
        if path.starts_with("/api/v1/admin/") {
            continue;
        }
        let Some(op) = item.get.as_mut() else {
            continue;
        };
        let takes_fields = op.parameters.iter().flatten().any(
            |p| matches!(p, RefOr::T(p) if p.name == "fields" && p.parameter_in == ParameterIn::Query),
        );
        if takes_fields {
            continue;
        }
        let Some(name) = links::answer_schema(op, "200").and_then(links::ref_name) else {
            continue;
        };
        let Some(RefOr::T(utoipa::openapi::Schema::Object(obj))) = components.schemas.get(&name)
        else {
            continue;
        };
        let names: Vec<&str> = obj.properties.keys().map(String::as_str).collect();
        if names.is_empty() {
            continue;
        }
        let pattern = collection::param_patterns(&names)[0].1.clone();
        let param = ParameterBuilder::new()
            .name("fields")
            .parameter_in(ParameterIn::Query)
            .description(Some(format!(
                "Comma-separated properties of the {name} to answer with (`href` is always kept)"
            )))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(pattern)),
            ))
            .build();
        op.parameters
            .get_or_insert_with(Vec::new)
            .push(RefOr::T(param));
        // With `fields` the answer carries only the named properties: like a collection's
        // items it follows a copy of the schema with nothing required.
        let partial_name = format!("{name}Fields");
        if !components.schemas.contains_key(&partial_name) {
            let mut partial = obj.clone();
            partial.required.clear();
            partial.description = Some(format!(
                "A {name} as it is answered: every property unless `fields` names some (`href` is always kept)."
            ));
            partials.push((partial_name.clone(), partial));
        }
        if let Some(RefOr::T(r)) = op.responses.responses.get_mut("200")
            && let Some(RefOr::T(c)) = r.content.get_mut("application/json")
        {
            c.schema = Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                partial_name,
            )));
        }
    }
    insert_schemas(doc, partials);
}

/// A JSON body whose schema requires no property may be left out (it reads as `{}`,
/// `http::extract::Json`): say so with `required: false`.
fn optional_empty_bodies(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::Required;
    let Some(components) = doc.components.as_ref() else {
        return;
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let Some(RefOr::T(body)) = op.request_body.as_mut() else {
                continue;
            };
            if body.content.len() != 1 {
                continue;
            }
            let Some(RefOr::T(content)) = body.content.get("application/json") else {
                continue;
            };
            let no_required = match &content.schema {
                Some(RefOr::Ref(r)) => {
                    let name = r.ref_location.rsplit('/').next().unwrap_or("");
                    matches!(components.schemas.get(name),
                        Some(RefOr::T(utoipa::openapi::Schema::Object(o))) if o.required.is_empty())
                }
                Some(RefOr::T(utoipa::openapi::Schema::Object(o))) => o.required.is_empty(),
                _ => false,
            };
            if no_required {
                body.required = Some(Required::False);
            }
        }
    }
}

/// Multipart forms take exactly their documented fields (the handlers refuse others), so their
/// schemas say `additionalProperties: false`.
fn close_multipart_forms(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::AdditionalProperties;
    let mut names = Vec::new();
    for item in doc.paths.paths.values() {
        for op in [&item.post, &item.put, &item.patch].into_iter().flatten() {
            if let Some(RefOr::T(body)) = &op.request_body
                && let Some(RefOr::T(content)) = body.content.get("multipart/form-data")
                && let Some(RefOr::Ref(r)) = &content.schema
            {
                names.push(r.ref_location.rsplit('/').next().unwrap_or("").to_string());
            }
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in names {
        if let Some(RefOr::T(utoipa::openapi::Schema::Object(obj))) =
            components.schemas.get_mut(&name)
        {
            obj.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
}

/// Streaming answers the derive macros cannot describe: collections also answer NDJSON (one
/// item per line, when the operation takes `ndjson`), and an SSE stream is a sequence of
/// messages `{id, event, data}` whose `data` is the JSON the operation names.
fn document_streams(op: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let takes_ndjson = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p, RefOr::T(p) if p.name == "ndjson"))
    });
    let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") else {
        return;
    };
    if takes_ndjson && !ok.content.contains_key(collection::NDJSON) {
        let line = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("One JSON item per line"))
            .build();
        ok.content.insert(
            collection::NDJSON.to_string(),
            RefOr::T(Content::new(Some(RefOr::T(
                utoipa::openapi::Schema::Object(line),
            )))),
        );
    }
    if let Some(RefOr::T(sse)) = ok.content.get_mut("text/event-stream") {
        let string = || ObjectBuilder::new().schema_type(Type::String).build();
        let message = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One SSE message: `id` is the event's sequence number (absent on `stream.gap`), `event` its type, `data` the event as JSON",
            ))
            .property("id", string())
            .property("event", string())
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/json")
                    .build(),
            )
            .build();
        sse.schema = Some(RefOr::T(utoipa::openapi::Schema::Object(message)));
    }
}

/// The whole application: API routes behind auth and metrics, plus the public docs, the web
/// UI's static files (`/`, `/assets/*`: [`ui`]) and `/metrics`.
pub fn app(state: AppState) -> Router {
    app_from(Prepared::build(), state)
}

/// What the router needs that does not depend on the daemon's state: the API routes, the
/// access table (declared in the document, installed globally) and the served document. Built
/// by [`Prepared::build`] on its own thread while the daemon opens its store and runs the
/// areas' `init` hooks: it is a third of the start-up and needs nothing from them.
pub struct Prepared {
    api: Router<AppState>,
    document: OpenApiBytes,
    /// How long building took (logged at readiness: the long pole of start-up).
    pub took: std::time::Duration,
}

impl Prepared {
    pub fn build() -> Prepared {
        let t0 = std::time::Instant::now();
        let (api, doc) = openapi_and_router();
        access::init_from(&doc);
        // Serialized and compressed off the start-up path; the tree (several MiB) is dropped
        // there once only the compressed bytes are left.
        let document = OpenApiBytes::spawn(doc);
        Prepared {
            api,
            document,
            took: t0.elapsed(),
        }
    }
}

/// The router over `state`, from the parts [`Prepared::build`] made.
pub fn app_from(prepared: Prepared, state: AppState) -> Router {
    let Prepared { api, document, .. } = prepared;
    let api = api
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth_layer::auth_layer,
        ))
        .layer(middleware::from_fn(fields::project_fields))
        .layer(middleware::from_fn(problem_fallback))
        .layer(middleware::from_fn(metrics_layer))
        .layer(middleware::from_fn(drain::drain_unread_body))
        .with_state(state.clone());
    Router::new()
        .merge(
            SwaggerUi::new("/api-docs")
                .config(utoipa_swagger_ui::Config::new(["/api-docs/openapi.json"])),
        )
        .route(
            "/api-docs/openapi.json",
            axum::routing::get(move |headers: axum::http::HeaderMap| async move {
                document.answer(&headers).await
            }),
        )
        .merge(ui::router())
        .merge(api)
}

/// `GET /api-docs/openapi.json`: the document serialized once at start and kept gzip-compressed
/// (~0.2 MiB instead of 1.9 MiB of the idle daemon's heap, and neither the tree). A client that
/// accepts gzip (browsers, Swagger UI) gets these bytes as they are; any other gets them
/// inflated for its request. Serializing and compressing run on their own thread after the
/// access table is made (~15 ms that readiness need not wait for); a request that comes
/// sooner waits for them.
#[derive(Clone)]
struct OpenApiBytes(tokio::sync::watch::Receiver<Option<axum::body::Bytes>>);

impl OpenApiBytes {
    fn spawn(doc: utoipa::openapi::OpenApi) -> OpenApiBytes {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let work = move || {
            let bytes = Self::compress(&doc);
            drop(doc);
            let _ = tx.send(Some(bytes));
            // The tree and the JSON were most of start-up's heap (~60 MiB at the peak): hand
            // it back now, not at the trimmer's next quiet tick (platform::memory).
            crate::platform::memory::trim();
        };
        if let Err(e) = std::thread::Builder::new()
            .name("hp-document".into())
            .spawn(work)
        {
            // The sender is gone with the closure: the document answers 500 (below).
            tracing::error!(error = %e, "cannot start the thread that serializes the document");
        }
        OpenApiBytes(rx)
    }

    fn compress(doc: &utoipa::openapi::OpenApi) -> axum::body::Bytes {
        use std::io::Write;
        let json = serde_json::to_vec(doc).expect("the document serializes");
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(json.len() / 8),
            flate2::Compression::fast(),
        );
        gz.write_all(&json).expect("writing to memory");
        gz.finish().expect("writing to memory").into()
    }

    async fn answer(&self, headers: &axum::http::HeaderMap) -> Response {
        let mut rx = self.0.clone();
        let bytes = match rx.wait_for(Option::is_some).await {
            Ok(b) => b.clone().unwrap_or_default(),
            Err(_) => return ApiError::internal("the document could not be built").into_response(),
        };
        let json = HeaderValue::from_static("application/json");
        let vary = HeaderValue::from_static("accept-encoding");
        if accepts_gzip(headers) {
            return (
                [
                    (header::CONTENT_TYPE, json),
                    (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                    (header::VARY, vary),
                ],
                bytes,
            )
                .into_response();
        }
        let mut plain = Vec::new();
        match std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain)
        {
            Ok(_) => ([(header::CONTENT_TYPE, json), (header::VARY, vary)], plain).into_response(),
            Err(e) => ApiError::Internal(format!("inflating the document: {e}")).into_response(),
        }
    }
}

/// Whether `Accept-Encoding` lists gzip with a non-zero quality.
fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
        })
}

/// A safety net for error answers made outside `ApiError` (axum's own rejections, e.g. a path
/// segment that does not parse into its type): plain-text error bodies become problem+json with
/// a code for their status, so every error a client sees has the same shape.
async fn problem_fallback(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid_input",
        429 => "rate_limited",
        _ if status.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let problem = hostplane_types::problem::Problem {
        r#type: format!("https://hostplane.dev/problems/{code}"),
        title: status.canonical_reason().unwrap_or("error").to_string(),
        status: status.as_u16(),
        detail: String::from_utf8_lossy(&bytes).trim().to_string(),
        code: code.to_string(),
        errors: Vec::new(),
        users: Vec::new(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(
        parts,
        axum::body::Body::from(serde_json::to_vec(&problem).unwrap_or_default()),
    )
}

/// Request count and latency per matched route, method and status.
async fn metrics_layer(req: Request, next: Next) -> Response {
    crate::platform::memory::note_activity();
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("hostplane_http_requests_total", &labels).increment(1);
    metrics::histogram!("hostplane_http_request_duration_seconds", &labels[..2])
        .record(start.elapsed().as_secs_f64());
    resp
}

/// The daemon's own metrics in Prometheus text format (request counts and latencies per
/// route, jobs, uptime). Needs a viewer with `system:read` unless `metrics.public = true`.
#[utoipa::path(get, path = "/metrics",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("system:read")),
        ("x-public-when" = json!("metrics_public"))),
    tag = "system",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String)))]
async fn metrics_endpoint(State(state): State<AppState>) -> Response {
    metrics::gauge!("hostplane_jobs_running").set(state.jobs.running_count() as f64);
    metrics::gauge!("hostplane_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn gzip_is_accepted_as_listed() {
        assert!(!accepts_gzip(&HeaderMap::new()));
        assert!(accepts_gzip(&with("gzip")));
        assert!(accepts_gzip(&with("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("br, deflate")));
        assert!(!accepts_gzip(&with("identity")));
    }
}
