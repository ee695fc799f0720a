//! Playground sessions: launch, status, stop.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use toolshed_core::domain::{IdempotencyKey, ServerId, SessionId};
use toolshed_core::services::{Caller, LaunchRequest};

use super::{find_session, named_in_body};
use crate::auth::Authenticated;
use crate::dto::{LaunchBody, SessionSelector, SessionView, StopRequest};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiOptionalJson, ApiPath, ApiQuery};
use crate::AppState;

/// The idempotency header of a launch.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Launches a playground session from the server's verified image (pinned by digest). Answers
/// 202: the session is `starting`; poll its `status_url` until `running` (its MCP endpoint
/// answered), or call a tool at once: the call waits for the server, up to a deadline.
#[utoipa::path(post, path = "/api/servers/{id}/playground", tag = "playground",
    params(
        ("id" = String, Path, description = "Server id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retried launch with the same key returns the same session"),
    ),
    request_body(content = Option<LaunchBody>, content_type = "application/json", description = "Optional"),
    responses(
        (status = 202, description = "Starting", body = SessionView),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "`not_launchable`: a remote server runs at its own URL and is never launched here", body = ErrorBody),
        (status = 412, description = "The server has no verified image", body = ErrorBody),
        (status = 422, description = "TTL out of bounds, invalid key, or settings that do not match the server's declarations (a required one missing, an undeclared one)", body = ErrorBody),
        (status = 429, description = "Session cap reached", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn launch(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    headers: HeaderMap,
    ApiOptionalJson(body): ApiOptionalJson<LaunchBody>,
) -> ApiResult<impl IntoResponse> {
    let header_key = headers
        .get(IDEMPOTENCY_HEADER)
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| {
            crate::error::ApiError::invalid("idempotency_key", "must be printable ASCII")
        })?;
    // Every input is checked before any state is read, so an invalid request is 422 whatever
    // the server's state (and never 404/412 first).
    let header_key = header_key.map(IdempotencyKey::new).transpose()?;
    let body_key = body.idempotency_key.map(IdempotencyKey::new).transpose()?;
    let settings = crate::schema::setting_values("settings", body.settings)?;
    let ttl = body.ttl_seconds.map(Duration::from_secs);
    if let Some(ttl) = ttl {
        state.toolshed.config().ttl_bounds.resolve(Some(ttl))?;
    }
    let request = LaunchRequest {
        ttl,
        idempotency_key: body_key.or(header_key),
        settings,
    };
    let session = state
        .toolshed
        .launch_session_as(&caller, &id, request)
        .await?;
    let view = SessionView::new(&session, state.toolshed.now());
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, view.status_url.clone())],
        Json(view),
    ))
}

/// A session's status, refreshed from the runner and, while it starts, from one MCP handshake
/// with its endpoint: `starting` (with `starting_for_secs`), `running` (its endpoint answered) or
/// `stopped` (with the reason). Select it by `session_id` or by `task_arn`; without either, the
/// server's newest session (live ones first).
#[utoipa::path(get, path = "/api/servers/{id}/playground/status", tag = "playground",
    params(("id" = String, Path, description = "Server id"), SessionSelector),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 404, description = "No such server, or no such session for it", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    ApiQuery(selector): ApiQuery<SessionSelector>,
) -> ApiResult<Json<SessionView>> {
    let session = match (&selector.session_id, &selector.task_arn) {
        (None, None) => newest_session(&state, &caller, &id).await?,
        _ => find_session(&state.toolshed, &caller, &id, &selector).await?,
    };
    let refreshed = state
        .toolshed
        .session_status_as(&caller, &session.id)
        .await?;
    Ok(Json(SessionView::new(&refreshed, state.toolshed.now())))
}

/// Stops a session of the server (idempotent). The session is selected in the JSON body by
/// `session_id` or `task_arn`.
#[utoipa::path(post, path = "/api/servers/{id}/playground/stop", tag = "playground",
    params(("id" = String, Path, description = "Server id")),
    request_body(content = StopRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Stopped", body = SessionView),
        (status = 400, description = "No selector", body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "The server has no such session", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn stop_for_server(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    ApiOptionalJson(body): ApiOptionalJson<StopRequest>,
) -> ApiResult<Json<SessionView>> {
    let selector = SessionSelector::from(body);
    let found = find_session(&state.toolshed, &caller, &id, &selector).await;
    let session = named_in_body(&state.toolshed, &id, found).await?;
    let stopped = state.toolshed.stop_session_as(&caller, &session.id).await?;
    Ok(Json(SessionView::new(&stopped, state.toolshed.now())))
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
    Ok(Json(SessionView::new(&stopped, state.toolshed.now())))
}

/// The server's newest live session, else its newest session; 404 when it has none.
async fn newest_session(
    state: &AppState,
    caller: &Caller,
    id: &ServerId,
) -> ApiResult<toolshed_core::domain::PlaygroundSession> {
    for live_only in [true, false] {
        if let Some(s) = state
            .toolshed
            .list_sessions_as(caller, id, live_only, 1)
            .await?
            .into_iter()
            .next()
        {
            return Ok(s);
        }
    }
    // 404 naming the server when it does not exist, the session otherwise.
    state.toolshed.get_server(id).await?;
    Err(toolshed_core::Error::not_found(
        toolshed_core::error::EntityKind::Session,
        format!("of server {id}"),
    )
    .into())
}
