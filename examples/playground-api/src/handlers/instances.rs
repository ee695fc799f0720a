//! Long-running instances of verified servers: create, list, status with health, stop with a
//! drain, restart, log tail. Every handler calls one method of the instance service on behalf of
//! the caller (scope `sessions`; a principal sees and touches only its own instances, another's
//! is 404; admins all); responses show instances through their redacted view (environment
//! values never leave the service).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use toolshed_core::domain::{
    Instance, InstanceEnv, InstanceId, InstanceName, InstanceRequest, ServerId,
};
use toolshed_core::services::{InstanceHealth, InstanceListing, InstanceStatus};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::dto::views::{InstanceHealthBody, InstanceRecord};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{optional_json, ApiPath, ApiQuery};
use crate::AppState;

/// Instances per page when the caller gives no `limit`.
const DEFAULT_PAGE: usize = 100;
/// Largest page.
const MAX_PAGE: usize = 1000;
/// Log lines when the caller gives no `tail`.
const DEFAULT_TAIL: usize = 100;

/// `POST /api/instances` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstanceBody {
    /// The verified server to run (its image pinned by digest now is what the instance runs).
    pub server_id: String,
    /// Unique name: `[a-z0-9][a-z0-9-]{0,62}`.
    pub name: String,
    /// Environment of the task. Values are stored for the runner and never returned.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `POST /api/instances/{id}/stop` and `/restart` body (optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainBody {
    /// Seconds between the stop signal and a kill (default 10, at most 300).
    #[serde(default, deserialize_with = "crate::dto::whole::opt_u64")]
    pub drain_timeout_seconds: Option<u64>,
}

/// `GET /api/instances` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Continue after this name (the `next` of the previous page).
    pub after: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// `GET /api/instances/{id}/logs` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// The last N lines (default 100, at most 10000).
    pub tail: Option<usize>,
}

/// One instance, with its links.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceBody {
    /// The instance, environment values redacted.
    pub instance: InstanceRecord,
    /// Health of its task, on status reads of an instance that holds one.
    pub health: Option<InstanceHealthBody>,
    /// Status URL (with health).
    pub status_url: String,
    /// Log tail URL.
    pub logs_url: String,
}

impl InstanceBody {
    fn new(instance: &Instance, health: Option<InstanceHealth>) -> Self {
        let id = &instance.id;
        Self {
            instance: (&instance.view()).into(),
            health: health.as_ref().map(Into::into),
            status_url: format!("/api/instances/{id}"),
            logs_url: format!("/api/instances/{id}/logs"),
        }
    }
}

/// A page of instances.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstancePage {
    /// Instances ordered by name, environment values redacted.
    pub instances: Vec<InstanceRecord>,
    /// `after` of the next page, when there may be one.
    pub next: Option<String>,
}

/// A log tail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogTail {
    /// The instance.
    pub instance_id: String,
    /// Lines, oldest first, control characters stripped.
    pub lines: Vec<String>,
}

fn drain(body: &Bytes) -> ApiResult<Option<Duration>> {
    let body: DrainBody = optional_json(body)?;
    Ok(body.drain_timeout_seconds.map(Duration::from_secs))
}

/// Creates an instance of a verified server and starts it. Answers 201 with the instance
/// `created` (running), or the runner's error (the instance is then recorded `failed`).
#[utoipa::path(post, path = "/api/instances", tag = "instances",
    request_body(content = CreateInstanceBody),
    responses(
        (status = 201, description = "Created and started", body = InstanceBody),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "The name is taken, or `not_launchable`: a remote server runs at its own URL and is never launched here", body = ErrorBody),
        (status = 412, description = "The server has no verified image", body = ErrorBody),
        (status = 422, description = "Invalid name, server id or environment", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn create_instance(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let body: CreateInstanceBody = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() || e.is_eof() {
            ApiError::invalid("body", e.to_string())
        } else {
            ApiError::bad_request("malformed_json", e.to_string())
        }
    })?;
    let server_id = ServerId::new(body.server_id)?;
    let request = InstanceRequest {
        name: InstanceName::new(body.name)?,
        env: InstanceEnv::from_exposed(body.env)?,
        // The service records the caller as the owner.
        owner: None,
    };
    let instance = state
        .toolshed
        .create_instance_as(&caller, &server_id, request)
        .await?;
    let body = InstanceBody::new(&instance, None);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, body.status_url.clone())],
        Json(body),
    ))
}

/// Lists instances by name, a page at a time.
#[utoipa::path(get, path = "/api/instances", tag = "instances",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of instances", body = InstancePage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 422, description = "Invalid `after` or `limit`", body = ErrorBody),
    ))]
pub async fn list_instances(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<InstancePage>> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid("limit", format!("must be 1-{MAX_PAGE}")));
    }
    let after = q.after.map(InstanceName::new).transpose()?;
    let InstanceListing { instances, next } = state
        .toolshed
        .list_instances_as(&caller, after, limit)
        .await?;
    Ok(Json(InstancePage {
        instances: instances.iter().map(|i| (&i.view()).into()).collect(),
        next: next.map(|n| n.to_string()),
    }))
}

/// An instance with the health of its task: liveness from the runner, readiness from an MCP
/// handshake. An instance whose task ended by itself is reported (and recorded) `failed`.
#[utoipa::path(get, path = "/api/instances/{instance_id}", tag = "instances",
    params(("instance_id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The instance and its health", body = InstanceBody),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn instance_status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<InstanceId>,
) -> ApiResult<Json<InstanceBody>> {
    let InstanceStatus { instance, health } =
        state.toolshed.instance_status_as(&caller, &id).await?;
    Ok(Json(InstanceBody::new(&instance, health)))
}

/// Stops an instance with a drain: the stop signal, then a kill after the drain timeout.
/// Idempotent.
#[utoipa::path(post, path = "/api/instances/{instance_id}/stop", tag = "instances",
    params(("instance_id" = String, Path, description = "Instance id")),
    request_body(content = Option<DrainBody>, description = "Optional"),
    responses(
        (status = 200, description = "Stopped", body = InstanceBody),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 422, description = "Drain timeout out of bounds", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn stop_instance(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<InstanceId>,
    body: Bytes,
) -> ApiResult<Json<InstanceBody>> {
    let drain = drain(&body)?;
    let instance = state.toolshed.stop_instance_as(&caller, &id, drain).await?;
    Ok(Json(InstanceBody::new(&instance, None)))
}

/// Restarts an instance with the same image and environment (its task is stopped with the
/// drain first). Works from `created`, `failed` and `stopped`.
#[utoipa::path(post, path = "/api/instances/{instance_id}/restart", tag = "instances",
    params(("instance_id" = String, Path, description = "Instance id")),
    request_body(content = Option<DrainBody>, description = "Optional"),
    responses(
        (status = 200, description = "Restarted", body = InstanceBody),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "Being created, or changed concurrently", body = ErrorBody),
        (status = 422, description = "Drain timeout out of bounds", body = ErrorBody),
        (status = 503, description = "Runner unavailable", body = ErrorBody),
    ))]
pub async fn restart_instance(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<InstanceId>,
    body: Bytes,
) -> ApiResult<Json<InstanceBody>> {
    let drain = drain(&body)?;
    let instance = state
        .toolshed
        .restart_instance_as(&caller, &id, drain)
        .await?;
    Ok(Json(InstanceBody::new(&instance, None)))
}

/// The last lines the instance's task wrote.
#[utoipa::path(get, path = "/api/instances/{instance_id}/logs", tag = "instances",
    params(("instance_id" = String, Path, description = "Instance id"), LogsQuery),
    responses(
        (status = 200, description = "Log tail", body = LogTail),
        (status = 400, description = "Invalid id or query", body = ErrorBody),
        (status = 404, description = "No such instance, or its task is gone", body = ErrorBody),
        (status = 409, description = "No task was started yet", body = ErrorBody),
        (status = 422, description = "tail above 10000", body = ErrorBody),
        (status = 501, description = "The runner cannot read logs", body = ErrorBody),
    ))]
pub async fn instance_logs(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<InstanceId>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Json<LogTail>> {
    let lines = state
        .toolshed
        .instance_logs_as(&caller, &id, q.tail.unwrap_or(DEFAULT_TAIL))
        .await?;
    Ok(Json(LogTail {
        instance_id: id.to_string(),
        lines,
    }))
}
