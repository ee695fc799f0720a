//! The function's second duty: keeping session status fresh.
//!
//! Two triggers reach the same function:
//! - ECS "Task State Change" events (an EventBridge rule on this deployment's cluster): each is
//!   read by the ECS adapter ([`EcsTaskRunner::task_event`]) and applied by
//!   [`StatusRefresher::apply_task_events`], which records the task's state on its session and
//!   ends the session when the task ended;
//! - the schedule: after the sweep, [`StatusRefresher::refresh_stale_sessions`] describes the
//!   tasks of live sessions whose observation is ageing, 100 per DescribeTasks.
//!
//! [`dispatch`] routes a payload to the right one.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use toolshed_aws::ecs_events::{EVENT_SOURCE, TASK_STATE_CHANGE};
use toolshed_aws::EcsTaskRunner;
use toolshed_core::services::{
    RefreshLimits, RefreshReport, StatusRefresher, SweepLimits, Sweeper,
};
use tracing::info;

use crate::{handle, SweepError, SweepResponse};

/// What the function needs for both duties.
#[derive(Debug, Clone)]
pub struct CleanupHandlers {
    /// The sweep.
    pub sweeper: Sweeper,
    /// The status refresher.
    pub refresher: StatusRefresher,
    /// The ECS runner, whose cluster and deployment decide which events are ours.
    pub tasks: EcsTaskRunner,
}

/// What one task state change event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEventResponse {
    /// The event's `id`.
    pub event_id: Option<String>,
    /// Whether the event was about a session of this deployment (others are skipped).
    pub ours: bool,
    /// Whether a session recorded the task's new state.
    pub recorded: bool,
    /// Whether a session ended because its task ended.
    pub ended: bool,
}

/// What the batched status refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshResponse {
    /// Live sessions read.
    pub checked: u32,
    /// Sessions whose observation was refreshed.
    pub stale: u32,
    /// DescribeTasks calls made.
    pub describe_calls: u32,
    /// Sessions ended because their task ended.
    pub ended: u32,
    /// Errors met.
    pub errors: Vec<String>,
}

impl From<RefreshReport> for RefreshResponse {
    fn from(r: RefreshReport) -> Self {
        Self {
            checked: r.checked,
            stale: r.stale,
            describe_calls: r.describe_calls,
            ended: r.ended,
            errors: r.errors,
        }
    }
}

/// The function's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupResponse {
    /// A scheduled run: the sweep, then the status refresh.
    Scheduled {
        /// The sweep.
        sweep: SweepResponse,
        /// The refresh.
        refresh: RefreshResponse,
    },
    /// A task state change.
    TaskEvent(TaskEventResponse),
}

#[derive(Deserialize)]
struct Head {
    id: Option<String>,
    source: Option<String>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
}

/// Routes a payload: ECS task state changes to the status use case, anything else to
/// [`handle`] (the schedule; foreign payloads are refused there), followed by the refresh.
///
/// # Errors
/// [`SweepError::InvalidEvent`] (non-retryable) for a malformed task event or a foreign payload;
/// [`SweepError::TaskEvent`] (retryable when the backend was) when the event could not be
/// applied; as [`handle`] for the schedule.
pub async fn dispatch(
    h: &CleanupHandlers,
    sweep: SweepLimits,
    refresh: RefreshLimits,
    event: LambdaEvent<serde_json::Value>,
) -> Result<CleanupResponse, SweepError> {
    let head: Option<Head> = serde_json::from_value(event.payload.clone()).ok();
    let is_task_event = head.as_ref().is_some_and(|h| {
        h.source.as_deref() == Some(EVENT_SOURCE)
            && h.detail_type.as_deref() == Some(TASK_STATE_CHANGE)
    });
    if !is_task_event {
        let swept = handle(&h.sweeper, sweep, event).await?;
        let refreshed = h.refresher.refresh_stale_sessions(refresh).await;
        return Ok(CleanupResponse::Scheduled {
            sweep: swept,
            refresh: refreshed.into(),
        });
    }
    let event_id = head.and_then(|h| h.id);
    let parsed = h
        .tasks
        .task_event(&event.payload)
        .map_err(|e| SweepError::InvalidEvent(e.to_string()))?;
    let Some(task_event) = parsed else {
        info!(id = ?event_id, "task event of another deployment or task kind: skipped");
        return Ok(CleanupResponse::TaskEvent(TaskEventResponse {
            event_id,
            ours: false,
            recorded: false,
            ended: false,
        }));
    };
    let report = h
        .refresher
        .apply_task_events(std::slice::from_ref(&task_event))
        .await
        .map_err(|e| SweepError::TaskEvent {
            retryable: e.is_retryable(),
            message: e.to_string(),
        })?;
    if let Some(first) = report.errors.first() {
        return Err(SweepError::TaskEvent {
            retryable: true,
            message: first.clone(),
        });
    }
    Ok(CleanupResponse::TaskEvent(TaskEventResponse {
        event_id,
        ours: report.ignored == 0,
        recorded: report.recorded > 0,
        ended: report.ended > 0,
    }))
}

/// [`dispatch`] with its error as Lambda's [`Diagnostic`].
///
/// # Errors
/// As [`dispatch`].
pub async fn dispatch_for_runtime(
    h: &CleanupHandlers,
    sweep: SweepLimits,
    refresh: RefreshLimits,
    event: LambdaEvent<serde_json::Value>,
) -> Result<CleanupResponse, Diagnostic> {
    dispatch(h, sweep, refresh, event)
        .await
        .map_err(Diagnostic::from)
}
