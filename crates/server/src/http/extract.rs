//! Request extractors whose rejections are problem+json (422 for bad input, 415 for a wrong
//! content type) instead of axum's plain-text defaults.

use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query as AxumQuery};

use crate::error::ApiError;

/// JSON body. Unknown fields, wrong types and syntax errors are 422 `invalid_body` (with
/// `errors[].field` when serde names the field); a body without a JSON content type is 415.
/// No body at all (no content type, nothing sent) reads as `{}`: an operation whose fields are
/// all optional needs no `-d '{}'`, and one with required fields says which is missing.
///
/// Numbers are read as JSON Schema reads them: `5.0` is the integer 5 (OpenAPI 3.1 clients and
/// fuzzers send integers that way), so the body is parsed to a value, integral floats become
/// integers, and only then is it turned into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut value = if is_bodiless(&req) {
            serde_json::Value::Object(Default::default())
        } else {
            axum::Json::<serde_json::Value>::from_request(req, state)
                .await?
                .0
        };
        // Every body is an object: serde would otherwise read a struct from an array.
        if !value.is_object() {
            return Err(ApiError::invalid(
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        integral_floats_to_integers(&mut value);
        crate::http::access::table()
            .check_body_shape(&method, &path, &value)
            .map_err(|detail| {
                let field = detail.split(':').next().unwrap_or("").to_string();
                ApiError::invalid_field("invalid_body", field, detail)
            })?;
        serde_json::from_value(value).map(Json).map_err(|e| {
            let detail = format!("invalid body: {e}");
            match field_of(&e.to_string()) {
                Some(field) => ApiError::invalid_field("invalid_body", field, detail),
                None => ApiError::invalid("invalid_body", detail),
            }
        })
    }
}

/// A request that carries no body: no `Content-Type`, and a zero or absent length with
/// nothing to read.
fn is_bodiless(req: &axum::extract::Request) -> bool {
    use axum::body::HttpBody;
    use axum::http::header;
    let headers = req.headers();
    if headers.contains_key(header::CONTENT_TYPE) {
        return false;
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(len) => len.as_bytes() == b"0",
        None => req.body().is_end_stream(),
    }
}

/// The field a serde error names: "missing field `name`", "unknown field `x`, expected ...".
fn field_of(msg: &str) -> Option<String> {
    let rest = msg
        .split_once("missing field `")
        .or_else(|| msg.split_once("unknown field `"))?
        .1;
    rest.split_once('`').map(|(f, _)| f.to_string())
}

fn integral_floats_to_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Query string parameters. Bad values are 422 `invalid_query`.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(AxumQuery), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "expected a body with Content-Type: application/json".into(),
            ),
            JsonRejection::BytesRejection(b) => {
                if b.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(b.body_text())
                } else {
                    ApiError::invalid("invalid_body", b.body_text())
                }
            }
            other => ApiError::invalid("invalid_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::invalid("invalid_query", r.body_text())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_errors_name_their_field() {
        assert_eq!(
            super::field_of("missing field `name` at line 1").as_deref(),
            Some("name")
        );
        assert_eq!(
            super::field_of("unknown field `nmae`, expected `name`").as_deref(),
            Some("nmae")
        );
        assert_eq!(super::field_of("invalid type: string"), None);
    }

    #[test]
    fn integral_floats_become_integers_and_others_stay() {
        let mut v = serde_json::json!({"a": 5.0, "b": [1.0, 2.5], "c": {"d": -3.0}, "e": 1e300});
        super::integral_floats_to_integers(&mut v);
        assert_eq!(v["a"], serde_json::json!(5));
        assert!(v["a"].is_u64());
        assert_eq!(v["b"], serde_json::json!([1, 2.5]));
        assert!(v["c"]["d"].is_i64());
        assert!(v["e"].is_f64());
    }
}
