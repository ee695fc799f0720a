//! The one error shape of the API, `{code, message, details}`, and the mapping of
//! [`toolshed_core::Error`] variants to HTTP statuses.
//!
//! | status | codes |
//! |---|---|
//! | 400 | `malformed_json`, `invalid_path_parameter`, `invalid_query`, `missing_parameter`, `unreadable_body` |
//! | 401 | `unauthorized` (with `WWW-Authenticate: Bearer`) |
//! | 403 | `forbidden` |
//! | 404 | `not_found`, `unknown_tool`, `route_not_found` |
//! | 405 | `method_not_allowed` |
//! | 409 | `not_launchable` (a remote server runs at its own URL), `already_exists`, `conflict`, `verification_in_progress`, `lease_lost`, `session_not_running`, `no_live_session`, `session_not_found`, `verification_failed` (the repository or ref is the problem) |
//! | 412 | `not_verified` |
//! | 413 | `payload_too_large` |
//! | 415 | `unsupported_media_type` |
//! | 421 | `misdirected_request` (a `Host` this API does not serve) |
//! | 422 | `invalid_input`, `invalid_tool_arguments`, `egress_refused` (a remote's host is outside the networks remote servers may use) |
//! | 429 | `session_cap_reached`, `rate_limited`, `quota_exceeded` (with `Retry-After`) |
//! | 500 | `backend_error`, `backend_permission_denied`, `internal` |
//! | 502 | `mcp_protocol_error` |
//! | 503 | `session_starting` (the session's MCP server has not answered yet), `backend_unavailable`, `mcp_unreachable`, `timeout`, `request_timeout`, `verification_failed` when retryable (with `Retry-After`) |
//! | 504 | `tool_call_timeout` |
//!
//! Messages and details are built from stable parts and redacted text
//! ([`toolshed_core::domain::redact`]): no SDK type name, internal address, ARN or secret.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use toolshed_core::domain::{failure_reason, redact};
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
        let mut body = *self.body;
        // A last guard: whatever a message quotes, no internal address, ARN or type path leaves.
        body.message = redact(&body.message);
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<Error> for ApiError {
    /// Messages are built from the error's stable parts (ids, steps, limits) and redacted free
    /// text: never an SDK type name, an internal address, an ARN or a backend's raw message. The
    /// full error is logged (inside the request's span, so with its request id).
    fn from(e: Error) -> Self {
        let retryable = e.is_retryable();
        let api = match &e {
            Error::InvalidInput { field, reason } => ApiError::invalid(field, redact(reason)),
            Error::NotFound { kind, id } => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{kind} {} not found", redact(id)),
            )
            .with_details(json!({ "kind": kind.to_string(), "id": redact(id) })),
            Error::AlreadyExists { kind, id } => ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("{kind} {} already exists", redact(id)),
            )
            .with_details(json!({ "kind": kind.to_string(), "id": redact(id) })),
            Error::Conflict { kind, id, expected } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{kind} {} was changed concurrently; retry", redact(id)),
            )
            .with_details(json!({ "kind": kind.to_string(), "id": redact(id), "expected_version": expected, "retryable": true }))
            .retry_after(1),
            Error::VerificationInProgress {
                server_id,
                holder,
                expires_at,
            } => ApiError::new(
                StatusCode::CONFLICT,
                "verification_in_progress",
                format!("a verification of server {server_id} is already in progress (until {expires_at}); follow it at the status URL"),
            )
            .with_details(json!({
                "server_id": server_id,
                "holder": redact(holder),
                "lease_expires_at": expires_at,
                "status_url": format!("/api/servers/{server_id}/verification"),
                "retryable": true,
            }))
            .retry_after(retry_until(*expires_at)),
            Error::LeaseLost { server_id, token } => ApiError::new(
                StatusCode::CONFLICT,
                "lease_lost",
                format!("the verification of server {server_id} was taken over by another worker"),
            )
            .with_details(json!({ "server_id": server_id, "token": token, "retryable": false })),
            Error::ReviewMismatch {
                server_id,
                expected,
                pending,
            } => ApiError::new(
                StatusCode::CONFLICT,
                "review_mismatch",
                match pending {
                    Some(p) => format!("the candidate pending review of server {server_id} is {p}, not {}; review it before deciding", redact(expected)),
                    None => format!("server {server_id} has no candidate pending review"),
                },
            )
            .with_details(json!({
                "server_id": server_id,
                "expected": redact(expected),
                "pending": pending,
                "retryable": false,
            })),
            Error::NotLaunchable { server_id, reason } => ApiError::new(
                StatusCode::CONFLICT,
                "not_launchable",
                format!("server {server_id} cannot be launched here: {}", redact(reason)),
            )
            .with_details(json!({ "server_id": server_id, "retryable": false })),
            Error::EgressRefused { host, reason } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "egress_refused",
                format!("connection to remote host {} refused: {}", redact(host), redact(reason)),
            )
            .with_details(json!({ "host": redact(host), "retryable": false })),
            Error::NotVerified { server_id } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "not_verified", e.to_string())
                    .with_details(json!({
                        "server_id": server_id,
                        "reverify_url": format!("/api/servers/{server_id}/reverify"),
                    }))
            }
            Error::SessionNotRunning { session_id, state } => ApiError::new(
                StatusCode::CONFLICT,
                "session_not_running",
                format!("session {} is not running ({})", redact(session_id), redact(state)),
            )
            .with_details(json!({ "session_id": redact(session_id), "state": redact(state), "retryable": true })),
            Error::SessionStarting {
                session_id,
                starting_for,
                retry_after,
            } => {
                let wait = u32::try_from(retry_after.as_secs().max(1)).unwrap_or(u32::MAX);
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "session_starting",
                    format!(
                        "session {} is still starting (for {} s): its MCP server has not answered yet; retry in {wait} s",
                        redact(session_id),
                        starting_for.as_secs()
                    ),
                )
                .with_details(json!({
                    "session_id": redact(session_id),
                    "starting_for_secs": starting_for.as_secs(),
                    "retry_after_secs": wait,
                    "retryable": true,
                }))
                .retry_after(wait)
            }
            Error::CapReached {
                scope,
                limit,
                server_id,
            } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "session_cap_reached", e.to_string())
                .with_details(json!({ "scope": scope.to_string(), "limit": limit, "server_id": server_id, "retryable": true }))
                .retry_after(30),
            Error::VerificationFailed {
                server_id,
                step,
                reason,
                retryable,
            } => {
                // Not retryable: the registered repository or ref is the problem (a state of
                // the server, fixed by changing it), not the request.
                let status = if *retryable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::CONFLICT
                };
                let reason = failure_reason(reason);
                let api = ApiError::new(
                    status,
                    "verification_failed",
                    format!("verification of server {server_id} failed at step {step}"),
                )
                .with_details(json!({
                    "server_id": server_id,
                    "step": step.to_string(),
                    "reason": reason,
                    "retryable": retryable,
                }));
                if *retryable {
                    api.retry_after(30)
                } else {
                    api
                }
            }
            Error::Probe { kind, .. } => {
                warn!(error = %e, "MCP call failed");
                let (status, code, message) = match kind {
                    ProbeFailureKind::Unreachable => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "mcp_unreachable",
                        "the session's MCP server does not answer yet; retry shortly",
                    ),
                    ProbeFailureKind::HandshakeTimeout => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "mcp_unreachable",
                        "the session's MCP server did not complete the MCP handshake in time; retry shortly",
                    ),
                    ProbeFailureKind::CallTimeout => (
                        StatusCode::GATEWAY_TIMEOUT,
                        "tool_call_timeout",
                        "the tool did not answer within the tool call deadline",
                    ),
                    ProbeFailureKind::NotMcp => (
                        StatusCode::BAD_GATEWAY,
                        "mcp_protocol_error",
                        "the session's server does not speak MCP at its endpoint",
                    ),
                    _ => (
                        StatusCode::BAD_GATEWAY,
                        "mcp_protocol_error",
                        "the session's MCP server answered something that is not valid MCP",
                    ),
                };
                let api = ApiError::new(status, code, message).with_details(json!({
                    "kind": kind.to_string(),
                    "retryable": retryable,
                }));
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    api.retry_after(2)
                } else {
                    api
                }
            }
            Error::UnknownTool { server_id, tool } => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_tool",
                format!("server {} has no tool named {:?}", redact(server_id), redact(tool)),
            )
            .with_details(json!({ "server_id": redact(server_id), "tool": redact(tool) })),
            Error::InvalidToolArguments {
                tool,
                pointer,
                reason,
            } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_tool_arguments",
                format!(
                    "arguments for tool {:?} are invalid at {}: {}",
                    redact(tool),
                    redact(pointer),
                    redact(reason)
                ),
            )
            .with_details(json!({ "tool": redact(tool), "pointer": redact(pointer), "reason": redact(reason) })),
            Error::Backend {
                backend,
                operation,
                retryable,
                ..
            } => {
                // The source holds backend internals: logged, not answered.
                let details = json!({ "backend": backend, "operation": operation, "retryable": retryable });
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
                        format!("{backend} {operation} failed; the request id identifies the details in the service's logs"),
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
                    format!("{backend} {operation}: the service lacks a permission; its operator must grant it"),
                )
                .with_details(json!({ "backend": backend, "operation": operation, "retryable": false }))
            }
            Error::Timeout {
                operation,
                after_ms,
                ..
            } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("{operation} timed out after {after_ms} ms; retry later"),
            )
            .with_details(json!({ "operation": operation, "after_ms": after_ms, "retryable": true }))
            .retry_after(5),
            Error::InvalidState {
                kind,
                id,
                state,
                action,
            } => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_state",
                format!("{kind} {} is {state}: cannot {action}", redact(id)),
            )
            .with_details(
                json!({ "kind": kind.to_string(), "id": redact(id), "state": state, "action": action }),
            ),
            Error::Unsupported { backend, operation } => {
                ApiError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "unsupported",
                    format!("{backend} does not support {operation}"),
                )
                    .with_details(json!({ "backend": backend, "operation": operation }))
            }
            Error::LimitExceeded {
                what, limit, unit, ..
            } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit_exceeded",
                format!("{what} exceeds the limit of {limit} {unit}"),
            )
                .with_details(json!({ "what": what, "limit": limit, "unit": unit })),
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
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the request id identifies the details in the service's logs",
                )
            }
        };
        api
    }
}

/// Seconds until `at` (at least 1, at most an hour) for a `Retry-After`.
fn retry_until(at: toolshed_core::domain::Timestamp) -> u32 {
    let secs = (at - chrono::Utc::now()).num_seconds().clamp(1, 3600);
    u32::try_from(secs).unwrap_or(1)
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use toolshed_core::domain::{QuotaKind, Scope, ServerId, VerificationStep};
    use toolshed_core::error::{CapScope, EntityKind};

    use super::*;

    fn server() -> ServerId {
        ServerId::new("time").unwrap()
    }

    /// Every variant of `toolshed_core::Error`: status, code, whether a retry helps (from the
    /// core, and as answered in `details.retryable`), `Retry-After`.
    #[test]
    fn every_core_error_maps_to_a_status_code_and_retry_advice() {
        let far = Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap();
        let internal = "rmcp::transport::worker::WorkerTransport<reqwest::Client> at http://10.0.0.7:8000/mcp for arn:aws:ecs:eu-west-1:123456789012:task/pg/abc";
        #[rustfmt::skip]
        let table: Vec<(Error, u16, &str, bool, Option<u32>)> = vec![
            (Error::invalid("ttl", "5 s is outside 60-3600 s"), 422, "invalid_input", false, None),
            (Error::not_found(EntityKind::Server, "time"), 404, "not_found", false, None),
            (Error::AlreadyExists { kind: EntityKind::Server, id: "time".into() }, 409, "already_exists", false, None),
            (Error::Conflict { kind: EntityKind::Server, id: "time".into(), expected: 3 }, 409, "conflict", true, Some(1)),
            (Error::VerificationInProgress { server_id: server(), holder: "worker-1".into(), expires_at: far }, 409, "verification_in_progress", true, Some(3600)),
            (Error::LeaseLost { server_id: server(), token: 7 }, 409, "lease_lost", false, None),
            (Error::NotVerified { server_id: server() }, 412, "not_verified", false, None),
            (Error::NotLaunchable { server_id: server(), reason: "it is a remote server that runs at https://mcp.example.com/mcp; connect to it there".into() }, 409, "not_launchable", false, None),
            (Error::EgressRefused { host: "mcp.example.com".into(), reason: "it resolves to a private address".into() }, 422, "egress_refused", false, None),
            (Error::SessionNotRunning { session_id: "s-12345678".into(), state: "stopped: task exited".into() }, 409, "session_not_running", true, None),
            (Error::SessionStarting { session_id: "s-12345678".into(), starting_for: std::time::Duration::from_secs(4), retry_after: std::time::Duration::from_secs(2) }, 503, "session_starting", true, Some(2)),
            (Error::CapReached { scope: CapScope::PerServer, limit: 2, server_id: server() }, 429, "session_cap_reached", true, Some(30)),
            (Error::VerificationFailed { server_id: server(), step: VerificationStep::Build, reason: internal.into(), retryable: false }, 409, "verification_failed", false, None),
            (Error::VerificationFailed { server_id: server(), step: VerificationStep::Build, reason: internal.into(), retryable: true }, 503, "verification_failed", true, Some(30)),
            (Error::Probe { kind: ProbeFailureKind::Unreachable, endpoint: "http://10.0.0.7:8000/mcp".into(), detail: internal.into() }, 503, "mcp_unreachable", true, Some(2)),
            (Error::Probe { kind: ProbeFailureKind::HandshakeTimeout, endpoint: "http://10.0.0.7:8000/mcp".into(), detail: internal.into() }, 503, "mcp_unreachable", true, Some(2)),
            (Error::Probe { kind: ProbeFailureKind::CallTimeout, endpoint: "http://10.0.0.7:8000/mcp".into(), detail: internal.into() }, 504, "tool_call_timeout", true, None),
            (Error::Probe { kind: ProbeFailureKind::NotMcp, endpoint: "http://10.0.0.7:8000/mcp".into(), detail: internal.into() }, 502, "mcp_protocol_error", false, None),
            (Error::Probe { kind: ProbeFailureKind::Protocol, endpoint: "http://10.0.0.7:8000/mcp".into(), detail: internal.into() }, 502, "mcp_protocol_error", false, None),
            (Error::UnknownTool { server_id: "time".into(), tool: "rm".into() }, 404, "unknown_tool", false, None),
            (Error::InvalidToolArguments { tool: "add".into(), pointer: "/a".into(), reason: "not a number".into() }, 422, "invalid_tool_arguments", false, None),
            (Error::backend("ecs", "RunTask", Some("time".into()), true, internal), 503, "backend_unavailable", true, Some(5)),
            (Error::backend("dynamodb", "PutItem", None, false, internal), 500, "backend_error", false, None),
            (Error::PermissionDenied { backend: "ecr", operation: "PutImage", detail: internal.into() }, 500, "backend_permission_denied", false, None),
            (Error::Timeout { operation: "describe task", id: Some("t".into()), after_ms: 5000 }, 503, "timeout", true, Some(5)),
            (Error::Forbidden { principal: "alice".into(), scope: Scope::ServersWrite }, 403, "forbidden", false, None),
            (Error::QuotaExceeded { principal: "alice".into(), quota: QuotaKind::Launches, limit: 10, retry_after_secs: Some(42) }, 429, "quota_exceeded", true, Some(42)),
            (Error::QuotaExceeded { principal: "alice".into(), quota: QuotaKind::LiveSessions, limit: 5, retry_after_secs: None }, 429, "quota_exceeded", true, Some(30)),
            (Error::InvalidState { kind: EntityKind::Instance, id: "i-12345678".into(), state: "creating".into(), action: "restart" }, 409, "invalid_state", false, None),
            (Error::Unsupported { backend: "fake runner", operation: "logs" }, 501, "unsupported", false, None),
            (Error::LimitExceeded { what: "tools/list", id: Some("http://10.0.0.7:8000/mcp".into()), limit: 1000, unit: "tools" }, 422, "limit_exceeded", false, None),
        ];
        // One row per variant at least (the enum is non-exhaustive, so the compiler cannot check
        // it from here): a variant added to the core needs a row here.
        let variants: std::collections::HashSet<_> = table
            .iter()
            .map(|row| std::mem::discriminant(&row.0))
            .collect();
        assert_eq!(
            variants.len(),
            24,
            "every variant of toolshed_core::Error has a row"
        );
        for (error, status, code, retryable, retry_after) in table {
            let label = format!("{error:?}");
            assert_eq!(error.is_retryable(), retryable, "core advice for {label}");
            let api = ApiError::from(error);
            assert_eq!(api.status.as_u16(), status, "{label}");
            assert_eq!(api.body.code, code, "{label}");
            assert_eq!(api.retry_after, retry_after, "{label}");
            if let Some(answered) = api.body.details.get("retryable") {
                assert_eq!(answered, &json!(retryable), "details.retryable of {label}");
            }
            let response = api.clone().into_response();
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                retry_after.is_some(),
                "{label}"
            );
            let answered = format!("{} {}", api.body.message, api.body.details);
            for leaked in [
                "rmcp",
                "reqwest",
                "::",
                "10.0.0.7",
                "arn:aws",
                "123456789012",
            ] {
                assert!(
                    !answered.contains(leaked),
                    "{leaked} in {answered} ({label})"
                );
            }
            assert!(!api.body.message.is_empty(), "{label}");
        }
    }

    #[tokio::test]
    async fn the_answered_message_is_redacted_even_when_a_handler_quotes_internals() {
        let api = ApiError::bad_request(
            "malformed_json",
            "expected value at line 1 for hyper::body::incoming::Incoming from 10.1.2.3:80",
        );
        let response = api.into_response();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert!(!body.message.contains("hyper"), "{}", body.message);
        assert!(!body.message.contains("10.1.2.3"), "{}", body.message);
    }
}
