//! The handlers, one module per resource. Each is annotated with `#[utoipa::path]`: the OpenAPI
//! document is generated from them.

pub mod api_keys;
pub mod docs;
pub mod execute;
pub mod health;
pub mod instances;
pub mod playground;
pub mod review;
pub mod servers;
pub mod verification;
pub mod warm_pool;

use toolshed_core::domain::{PlaygroundSession, ServerId, SessionId, TaskHandle};
use toolshed_core::error::EntityKind;
use toolshed_core::services::{Caller, Toolshed};

use crate::dto::SessionSelector;
use axum::http::StatusCode;

use crate::error::{ApiError, ApiResult};

/// Sessions scanned when looking a session up by task ARN.
const TASK_LOOKUP_LIMIT: usize = 1000;

/// The session `selector` names, which must belong to `server`.
///
/// # Errors
/// 400 `missing_parameter` when neither id nor ARN is given; 404 when it does not exist or
/// belongs to another server.
pub(crate) async fn find_session(
    toolshed: &Toolshed,
    caller: &Caller,
    server: &ServerId,
    selector: &SessionSelector,
) -> ApiResult<PlaygroundSession> {
    match (&selector.session_id, &selector.task_arn) {
        (Some(id), _) => session_of(toolshed, caller, server, id).await,
        (None, Some(arn)) => session_by_task(toolshed, caller, server, arn).await,
        (None, None) => Err(ApiError::bad_request(
            "missing_parameter",
            "give session_id (or task_arn)",
        )
        .with_details(serde_json::json!({ "parameters": ["session_id", "task_arn"] }))),
    }
}

/// A session by id, checked to belong to `server`.
pub(crate) async fn session_of(
    toolshed: &Toolshed,
    caller: &Caller,
    server: &ServerId,
    id: &SessionId,
) -> ApiResult<PlaygroundSession> {
    // Another principal's session is NotFound, like a missing one.
    let session = toolshed.get_session_as(caller, id).await?;
    if &session.server_id != server {
        // Same answer as a missing session: ids of other servers' sessions are not disclosed.
        return Err(toolshed_core::Error::not_found(EntityKind::Session, id).into());
    }
    Ok(session)
}

/// A session of `server` by its task handle: live sessions first, then the recent ones.
pub(crate) async fn session_by_task(
    toolshed: &Toolshed,
    caller: &Caller,
    server: &ServerId,
    arn: &str,
) -> ApiResult<PlaygroundSession> {
    let task = TaskHandle::new(arn).map_err(|_| {
        ApiError::bad_request("invalid_query", format!("{arn:?} is not a task ARN"))
    })?;
    for live_only in [true, false] {
        let sessions = toolshed
            .list_sessions_as(caller, server, live_only, TASK_LOOKUP_LIMIT)
            .await?;
        if let Some(s) = sessions.into_iter().find(|s| s.task == task) {
            return Ok(s);
        }
    }
    Err(toolshed_core::Error::not_found(EntityKind::Task, arn).into())
}

/// A session named in a request body: when the server exists but has no such session, 409
/// `session_not_found` (the body names a session the server's state does not have; the server
/// itself, which the URL names, is there). 404 stays for an unknown server.
pub(crate) async fn named_in_body(
    toolshed: &Toolshed,
    server: &ServerId,
    found: ApiResult<PlaygroundSession>,
) -> ApiResult<PlaygroundSession> {
    match found {
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            toolshed.get_server(server).await?;
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "session_not_found",
                format!("server {server} has no such playground session; launch one, or name one of its sessions"),
            )
            .with_details(serde_json::json!({
                "server_id": server,
                "launch_url": format!("/api/servers/{server}/playground"),
            })))
        }
        other => other,
    }
}
