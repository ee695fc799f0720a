//! Calling a tool of a running session.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};
use toolshed_core::domain::{PlaygroundSession, ServerId, ToolCall};

use super::{named_in_body, session_by_task, session_of};
use crate::auth::Authenticated;
use crate::dto::{ExecuteRequest, ExecuteResponse};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;
use toolshed_core::services::Caller;

/// Calls a tool on a session of the server and answers the tool's result (a failing tool is a
/// 200 with `is_error: true`). Without `session_id`/`task_arn`, the server's newest live session
/// is used. On a session that is still `starting`, the call waits for its MCP server (up to the
/// service's `session_ready_deadline`), then answers 503 `session_starting` with `Retry-After`.
#[utoipa::path(post, path = "/api/servers/{id}/execute", tag = "playground",
    params(("id" = String, Path, description = "Server id")),
    request_body(content = ExecuteRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The tool's result", body = ExecuteResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such server or tool", body = ErrorBody),
        (status = 409, description = "The session is not running, the server has no such session, or none at all", body = ErrorBody),
        (status = 422, description = "Arguments violate the tool's schema", body = ErrorBody),
        (status = 502, description = "The server broke the MCP protocol", body = ErrorBody),
        (status = 503, description = "The session is still starting (`session_starting`: its MCP server has not answered yet) or its server is unreachable; retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 504, description = "The tool call timed out", body = ErrorBody),
    ))]
pub async fn execute(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    ApiJson(request): ApiJson<ExecuteRequest>,
) -> ApiResult<Json<ExecuteResponse>> {
    let call = tool_call(&request)?;
    let session = target_session(&state, &caller, &id, &request).await?;
    let result = state
        .toolshed
        .execute_tool_as(&caller, &session.id, call.clone())
        .await?;
    Ok(Json(ExecuteResponse {
        session_id: session.id.to_string(),
        tool: call.name,
        result: (&result).into(),
    }))
}

async fn target_session(
    state: &AppState,
    caller: &Caller,
    id: &ServerId,
    request: &ExecuteRequest,
) -> ApiResult<PlaygroundSession> {
    if let Some(session_id) = &request.session_id {
        let found = session_of(&state.toolshed, caller, id, session_id).await;
        return named_in_body(&state.toolshed, id, found).await;
    }
    if let Some(arn) = &request.task_arn {
        let found = session_by_task(&state.toolshed, caller, id, arn).await;
        return named_in_body(&state.toolshed, id, found).await;
    }
    // Newest first: the session the playground UI launched last.
    let live = state.toolshed.list_sessions_as(caller, id, true, 1).await?;
    match live.into_iter().next() {
        Some(s) => Ok(s),
        None => {
            // 404 for an unknown server, 409 for a known one without a session.
            state.toolshed.get_server(id).await?;
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_live_session",
                format!("server {id} has no live playground session; launch one first"),
            )
            .with_details(serde_json::json!({
                "server_id": id,
                "launch_url": format!("/api/servers/{id}/playground"),
            })))
        }
    }
}

/// The call from `tool`/`arguments`, or from `command` (`<tool> [<JSON object>]`).
fn tool_call(request: &ExecuteRequest) -> ApiResult<ToolCall> {
    let (name, arguments) = match (&request.tool, &request.command) {
        (Some(tool), _) => (tool.clone(), request.arguments.clone()),
        (None, Some(command)) => parse_command(command)?,
        (None, None) => return Err(ApiError::invalid("tool", "give tool (or command)")),
    };
    crate::schema::check_tool_name(&name)?;
    Ok(ToolCall::new(name, arguments)?)
}

fn parse_command(command: &str) -> ApiResult<(String, Map<String, Value>)> {
    let command = command.trim();
    let (name, rest) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok((name.to_owned(), Map::new()));
    }
    match serde_json::from_str::<Value>(rest) {
        Ok(Value::Object(arguments)) => Ok((name.to_owned(), arguments)),
        _ => Err(ApiError::invalid(
            "command",
            "expected `<tool> [<JSON object of arguments>]`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_into_tool_and_arguments() {
        let (name, args) = parse_command("  add {\"a\": 1, \"b\": 2} ").unwrap();
        assert_eq!(name, "add");
        assert_eq!(args.get("b"), Some(&Value::from(2)));
        let (name, args) = parse_command("get_current_time").unwrap();
        assert_eq!(name, "get_current_time");
        assert!(args.is_empty());
        let err = parse_command("add [1, 2]").unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.body.code, "invalid_input");
    }
}
