//! The one error shape of the API, `{code, message, details}`, and the mapping of
//! [`toolshed_core::Error`] variants to HTTP statuses.
//!
//! | status | codes |
//! |---|---|
//! | 400 | `malformed_json`, `invalid_path_parameter`, `invalid_query`, `missing_parameter` |
//! | 404 | `not_found`, `unknown_tool`, `route_not_found` |
//! | 405 | `method_not_allowed` |
//! | 409 | `already_exists`, `conflict`, `verification_in_progress`, `lease_lost`, `session_not_running`, `no_live_session` |
//! | 412 | `not_verified` |
//! | 413 | `payload_too_large` |
//! | 415 | `unsupported_media_type` |
//! | 422 | `invalid_input`, `invalid_tool_arguments`, `verification_failed` |
//! | 401 | `unauthorized` (with `WWW-Authenticate: Bearer`) |
//! | 403 | `forbidden` |
//! | 429 | `session_cap_reached`, `quota_exceeded` (with `Retry-After`) |
//! | 500 | `backend_error`, `backend_permission_denied`, `internal` |
//! | 502 | `mcp_protocol_error` |
//! | 503 | `backend_unavailable`, `mcp_unreachable`, `timeout`, `request_timeout` (with `Retry-After`) |
//! | 504 | `tool_call_timeout` |

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use toolshed_core::error::ProbeFailureKind;
use toolshed_core::Error;
use tracing::{error, warn};
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable code (`snake_case`), e.g. `not_verified`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Structured details (field names, ids, whether a retry can help…); `{}` when none.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An error answered by the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body (boxed: errors travel in every handler's `Result`, keep that small).
    pub body: Box<ErrorBody>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with empty details.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                details: json!({}),
            }),
            retry_after: None,
        }
    }

    /// Sets the details.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.body.details = details;
        self
    }

    /// Sets `Retry-After`.
    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422 `invalid_input` for `field`.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("invalid {field}: {reason}"),
        )
        .with_details(json!({ "field": field, "reason": reason }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(*self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let retryable = e.is_retryable();
        let api = match &e {
            Error::InvalidInput { field, reason } => ApiError::invalid(field, reason.clone()),
            Error::NotFound { kind, id } => ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
                .with_details(json!({ "kind": kind.to_string(), "id": id })),
            Error::AlreadyExists { kind, id } => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", message)
                    .with_details(json!({ "kind": kind.to_string(), "id": id }))
            }
            Error::Conflict { kind, id, expected } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message).with_details(
                    json!({ "kind": kind.to_string(), "id": id, "expected_version": expected, "retryable": true }),
                )
            }
            Error::VerificationInProgress {
                server_id,
                holder,
                expires_at,
            } => ApiError::new(StatusCode::CONFLICT, "verification_in_progress", message)
                .with_details(json!({
                    "server_id": server_id,
                    "holder": holder,
                    "lease_expires_at": expires_at,
                    "status_url": format!("/api/servers/{server_id}/verification"),
                })),
            Error::LeaseLost { server_id, token } => {
                ApiError::new(StatusCode::CONFLICT, "lease_lost", message)
                    .with_details(json!({ "server_id": server_id, "token": token }))
            }
            Error::NotVerified { server_id } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "not_verified", message)
                    .with_details(json!({ "server_id": server_id }))
            }
            Error::SessionNotRunning { session_id, state } => {
                ApiError::new(StatusCode::CONFLICT, "session_not_running", message)
                    .with_details(json!({ "session_id": session_id, "state": state }))
            }
            Error::CapReached {
                scope,
                limit,
                server_id,
            } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "session_cap_reached", message)
                .with_details(json!({ "scope": scope.to_string(), "limit": limit, "server_id": server_id }))
                .retry_after(30),
            Error::VerificationFailed {
                server_id,
                step,
                reason,
                retryable,
            } => {
                let status = if *retryable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                ApiError::new(status, "verification_failed", message).with_details(json!({
                    "server_id": server_id,
                    "step": step.to_string(),
                    "reason": reason,
                    "retryable": retryable,
                }))
            }
            Error::Probe {
                kind,
                endpoint,
                detail,
            } => {
                let (status, code) = match kind {
                    ProbeFailureKind::Unreachable | ProbeFailureKind::HandshakeTimeout => {
                        (StatusCode::SERVICE_UNAVAILABLE, "mcp_unreachable")
                    }
                    ProbeFailureKind::CallTimeout => {
                        (StatusCode::GATEWAY_TIMEOUT, "tool_call_timeout")
                    }
                    _ => (StatusCode::BAD_GATEWAY, "mcp_protocol_error"),
                };
                let api = ApiError::new(status, code, message).with_details(json!({
                    "kind": kind.to_string(),
                    "endpoint": endpoint,
                    "detail": detail,
                    "retryable": retryable,
                }));
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    api.retry_after(2)
                } else {
                    api
                }
            }
            Error::UnknownTool { server_id, tool } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_tool", message)
                    .with_details(json!({ "server_id": server_id, "tool": tool }))
            }
            Error::InvalidToolArguments {
                tool,
                pointer,
                reason,
            } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_tool_arguments",
                message,
            )
            .with_details(json!({ "tool": tool, "pointer": pointer, "reason": reason })),
            Error::Backend {
                backend,
                operation,
                id,
                retryable,
                ..
            } => {
                // The source may hold backend internals: logged, not answered.
                let details = json!({ "backend": backend, "operation": operation, "id": id, "retryable": retryable });
                if *retryable {
                    warn!(error = %e, "backend unavailable");
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "backend_unavailable",
                        format!("{backend} {operation} is unavailable; retry later"),
                    )
                    .with_details(details)
                    .retry_after(5)
                } else {
                    error!(error = %e, "backend error");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "backend_error",
                        format!("{backend} {operation} failed"),
                    )
                    .with_details(details)
                }
            }
            Error::PermissionDenied {
                backend, operation, ..
            } => {
                error!(error = %e, "backend permission denied");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "backend_permission_denied",
                    format!("{backend} {operation}: the service lacks a permission"),
                )
                .with_details(json!({ "backend": backend, "operation": operation }))
            }
            Error::Timeout {
                operation,
                id,
                after_ms,
            } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", message)
                .with_details(json!({ "operation": operation, "id": id, "after_ms": after_ms, "retryable": true }))
                .retry_after(5),
            Error::Forbidden { scope, .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this operation needs the scope {scope}"),
            )
            .with_details(json!({ "required_scope": scope.to_string() })),
            Error::QuotaExceeded {
                quota,
                limit,
                retry_after_secs,
                ..
            } => {
                let api = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    format!("your quota of {limit} {quota} is used up"),
                )
                .with_details(json!({ "quota": quota.as_str(), "limit": limit }));
                // Live sessions free up when one ends: suggest a short wait.
                let wait = retry_after_secs.unwrap_or(30);
                api.retry_after(u32::try_from(wait).unwrap_or(u32::MAX))
            }
            _ => {
                error!(error = %e, "unmapped error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        };
        api
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
