//! Playground sessions: launch, status, stop.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use toolshed_core::domain::{IdempotencyKey, ServerId, SessionId};
use toolshed_core::services::LaunchRequest;

use super::find_session;
use crate::auth::Authenticated;
use crate::dto::{LaunchBody, SessionSelector, SessionView};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{optional_json, ApiPath, ApiQuery};
use crate::AppState;

/// The idempotency header of a launch.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Launches a playground session from the server's verified image (pinned by digest). Answers
/// 202: the session is `launching`; poll its `status_url` until `running`.
#[utoipa::path(post, path = "/api/servers/{id}/playground", tag = "playground",
    params(
        ("id" = String, Path, description = "Server id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retried launch with the same key returns the same session"),
    ),
    request_body(content = Option<LaunchBody>, description = "Optional"),
    responses(
        (status = 202, description = "Launching", body = SessionView),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 412, description = "The server has no verified image", body = ErrorBody),
        (status = 422, description = "TTL out of bounds or invalid key", body = ErrorBody),
        (status = 429, description = "Session cap reached", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn launch(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let body: LaunchBody = optional_json(&body)?;
    let header_key = headers
        .get(IDEMPOTENCY_HEADER)
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| {
            crate::error::ApiError::invalid("idempotency_key", "must be printable ASCII")
        })?;
    let idempotency_key = body
        .idempotency_key
        .or(header_key)
        .map(IdempotencyKey::new)
        .transpose()?;
    let request = LaunchRequest {
        ttl: body.ttl_seconds.map(Duration::from_secs),
        idempotency_key,
    };
    let session = state
        .toolshed
        .launch_session_as(&caller, &id, request)
        .await?;
    let view = SessionView::new(session);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, view.status_url.clone())],
        Json(view),
    ))
}

/// A session's status, refreshed from the runner: `launching`, `running` (with its endpoint) or
/// `stopped` (with the reason). Select it by `session_id`, or by `task_arn` as seed 001 has it.
#[utoipa::path(get, path = "/api/servers/{id}/playground/status", tag = "playground",
    params(("id" = String, Path, description = "Server id"), SessionSelector),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 400, description = "No selector, or an invalid one", body = ErrorBody),
        (status = 404, description = "No such session for this server", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    ApiQuery(selector): ApiQuery<SessionSelector>,
) -> ApiResult<Json<SessionView>> {
    let session = find_session(&state.toolshed, &caller, &id, &selector).await?;
    let refreshed = state
        .toolshed
        .session_status_as(&caller, &session.id)
        .await?;
    Ok(Json(SessionView::new(refreshed)))
}

/// Stops a session of the server (idempotent). The session is selected in the JSON body by
/// `session_id` or `task_arn` (seed 001).
#[utoipa::path(post, path = "/api/servers/{id}/playground/stop", tag = "playground",
    params(("id" = String, Path, description = "Server id")),
    request_body(content = SessionSelector),
    responses(
        (status = 200, description = "Stopped", body = SessionView),
        (status = 400, description = "No selector", body = ErrorBody),
        (status = 404, description = "No such session for this server", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn stop_for_server(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    body: Bytes,
) -> ApiResult<Json<SessionView>> {
    let selector: SessionSelector = optional_json(&body)?;
    let session = find_session(&state.toolshed, &caller, &id, &selector).await?;
    let stopped = state.toolshed.stop_session_as(&caller, &session.id).await?;
    Ok(Json(SessionView::new(stopped)))
}

/// Stops a session by id (idempotent).
#[utoipa::path(delete, path = "/api/playground/{session_id}", tag = "playground",
    params(("session_id" = String, Path, description = "Session id: [a-z0-9-]{8,64}")),
    responses(
        (status = 200, description = "Stopped", body = SessionView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(session_id): ApiPath<SessionId>,
) -> ApiResult<Json<SessionView>> {
    let stopped = state.toolshed.stop_session_as(&caller, &session_id).await?;
    Ok(Json(SessionView::new(stopped)))
}
