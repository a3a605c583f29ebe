//! The metrics history (`/api/v1/metrics`): answers in Prometheus's HTTP API shape.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One series of a range query: its labels (`__name__` included) and `[unix seconds, "value"]`
/// pairs, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RangeSeries {
    #[schema(value_type = Object)]
    pub metric: std::collections::BTreeMap<String, String>,
    #[schema(schema_with = sample_pairs)]
    pub values: Vec<(f64, String)>,
}

/// `data` of a range query.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RangeData {
    /// Always `matrix`.
    pub result_type: String,
    pub result: Vec<RangeSeries>,
}

/// `GET /metrics/query_range` and `/metrics/host`: Prometheus's response shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RangeResponse {
    /// Always `success` (errors are problem+json).
    pub status: String,
    pub data: RangeData,
}

/// A metric the history keeps, as `GET /metrics/series` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeriesInfo {
    #[schema(value_type = Object)]
    pub metric: std::collections::BTreeMap<String, String>,
    /// Newest raw sample (unix seconds), if any.
    pub last: Option<i64>,
}

/// One live sample (`metrics.sample` event data): the host's headline numbers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiveSample {
    /// Unix seconds.
    pub time: i64,
    /// Every series sampled, by name and labels.
    pub values: Vec<LiveValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiveValue {
    pub name: String,
    #[schema(value_type = Object)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Prometheus's `[timestamp, "value"]` pairs: a Unix time in seconds and the value as a
/// string (a tuple, which the derive cannot say).
fn sample_pairs() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let item = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .build();
    ArrayBuilder::new()
        .items(
            ArrayBuilder::new()
                .items(utoipa::openapi::RefOr::T(
                    utoipa::openapi::schema::Schema::OneOf(item),
                ))
                .min_items(Some(2))
                .max_items(Some(2)),
        )
        .description(Some("`[unix_seconds, \"value\"]` pairs, oldest first."))
        .build()
}
