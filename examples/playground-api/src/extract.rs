//! Extractors whose rejections answer the API's JSON error shape instead of axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body: syntax errors are 400 `malformed_json`, well-formed bodies that do not fit the
/// schema (missing fields, invalid ids) 422 `invalid_input`, over-limit bodies 413, a wrong
/// content type 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => from_object(v).map(Self),
            Err(r) => Err(json_rejection(&r)),
        }
    }
}

/// `T` from a JSON object. serde would also read a struct from an array of its fields in
/// order; the document promises objects, so anything else is 422.
fn from_object<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::invalid("body", without_quoted_values(&e.to_string())))
}

/// serde's message with the strings it quotes from the input (`invalid type: string "…"`)
/// elided: a setting value sent in the wrong shape may be a secret. Field names, which serde
/// quotes with backticks, stay.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    let mut escaped = false;
    for c in message.chars() {
        match (inside, c) {
            (false, '"') => {
                inside = true;
                out.push_str("\"…\"");
            }
            (false, c) => out.push(c),
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => inside = false,
            (true, _) => {}
        }
    }
    out
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    let text = r.body_text();
    match r {
        JsonRejection::JsonDataError(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            text.clone(),
        )
        .with_details(serde_json::json!({ "field": "body", "reason": text })),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a body with content-type application/json",
        ),
        _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body exceeds the limit",
        ),
        _ => ApiError::bad_request("malformed_json", text),
    }
}

/// An optional JSON body: no body means `T::default()`. The content type is checked by the edge
/// layer (415 for a body not declared JSON); the rejections answer the API's error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiOptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiOptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body exceeds the limit",
                    )
                } else {
                    ApiError::bad_request("unreadable_body", "the request body could not be read")
                }
            })?;
        optional_json(&bytes).map(Self)
    }
}

/// Parses an optional JSON body given as bytes: empty means `T::default()`.
///
/// # Errors
/// 400 `malformed_json` for bytes that are not JSON; 422 `invalid_input` for JSON that does not
/// fit `T`.
pub fn optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        // `null` is an absent optional body too.
        Ok(serde_json::Value::Null) => Ok(T::default()),
        Ok(value) => from_object(value),
        Err(e) => Err(ApiError::bad_request("malformed_json", e.to_string())),
    }
}

/// Path parameters, validated by their types (`ServerId`, `SessionId`): 400
/// `invalid_path_parameter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(r) => Err(path_rejection(&r)),
        }
    }
}

fn path_rejection(r: &PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path_parameter", r.body_text())
}

/// Query parameters: 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(r) => Err(query_rejection(&r)),
        }
    }
}

fn query_rejection(r: &QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", r.body_text())
}

#[cfg(test)]
mod quoted_tests {
    use super::without_quoted_values;

    #[test]
    fn values_quoted_by_serde_are_elided_and_field_names_kept() {
        let m = "invalid type: string \"sk-secret \\\" x\", expected a map at `test_values`";
        let out = without_quoted_values(m);
        assert!(!out.contains("sk-secret"), "{out}");
        assert_eq!(
            out,
            "invalid type: string \"…\", expected a map at `test_values`"
        );
    }
}
