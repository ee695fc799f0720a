//! The Toolshed session sweep as an AWS Lambda function.
//!
//! An EventBridge schedule (Terraform module `terraform/modules/cleanup`) invokes the function
//! every minute; [`handle`] calls [`Sweeper::sweep_expired_sessions`] and returns its
//! [`SweepReport`] as JSON. The handler has no logic of its own: what to stop is decided by the
//! core service; this crate only adapts the event, the report and the errors to Lambda.
//!
//! The same function keeps session status fresh (module `status`): ECS task state change events
//! are routed by [`dispatch`] to the status use case, and each scheduled run also refreshes the
//! observations of live sessions in batches.
//!
//! Errors are reported to Lambda as [`Diagnostic`]s whose `errorType` starts with `Retryable.`
//! or `NonRetryable.` (see [`SweepError`]), so alarms and the dead-letter queue can tell a
//! backend outage from a misconfiguration.
#![warn(missing_docs)]

mod compose;
mod error;
mod status;

pub use compose::{handlers_from_env, sweeper_from_env};
pub use error::SweepError;
pub use status::{
    dispatch, dispatch_for_runtime, CleanupHandlers, CleanupResponse, RefreshResponse,
    TaskEventResponse,
};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use toolshed_core::services::{SweepLimits, SweepReport, Sweeper};
use tracing::{info, warn};

/// Event sources a sweep accepts: EventBridge rules (`aws.events`) and EventBridge Scheduler
/// (`aws.scheduler`).
pub const ACCEPTED_SOURCES: [&str; 2] = ["aws.events", "aws.scheduler"];

/// What the function returns: the sweep's report, with the event it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepResponse {
    /// The `id` of the scheduled event, when it had one.
    pub event_id: Option<String>,
    /// Expired sessions stopped and ended by this sweep.
    pub expired_stopped: u32,
    /// Managed tasks without a live session stopped by this sweep.
    pub orphans_stopped: u32,
    /// Live sessions whose task had ended by itself, now ended.
    pub exited_marked: u32,
    /// Managed tasks listed.
    pub tasks_seen: u32,
    /// Orphan candidates left alone because they are younger than the grace period.
    pub young_tasks_skipped: u32,
    /// Tasks that no longer run whose leftovers (per-task secret, task definition revisions)
    /// this sweep removed.
    pub leftovers_removed: u32,
    /// Whether task pages were left unread (the next sweep continues).
    pub tasks_truncated: bool,
    /// Errors met on single items (the sweep went on after each).
    pub errors: Vec<String>,
}

impl SweepResponse {
    fn new(event_id: Option<String>, r: SweepReport) -> Self {
        Self {
            event_id,
            expired_stopped: r.expired_stopped,
            orphans_stopped: r.orphans_stopped,
            exited_marked: r.exited_marked,
            tasks_seen: r.tasks_seen,
            young_tasks_skipped: r.young_tasks_skipped,
            leftovers_removed: r.leftovers_removed,
            tasks_truncated: r.tasks_truncated,
            errors: r.errors,
        }
    }
}

/// Reads the trigger: an EventBridge event from [`ACCEPTED_SOURCES`], or the empty payload
/// (`{}` / `null`) EventBridge Scheduler sends when its target has no input. Returns the event id.
fn accept_trigger(payload: &serde_json::Value) -> Result<Option<String>, SweepError> {
    let empty = payload.is_null() || payload.as_object().is_some_and(|o| o.is_empty());
    if empty {
        return Ok(None);
    }
    let event: EventBridgeEvent = serde_json::from_value(payload.clone())
        .map_err(|e| SweepError::InvalidEvent(format!("not an EventBridge event: {e}")))?;
    if !ACCEPTED_SOURCES.contains(&event.source.as_str()) {
        return Err(SweepError::InvalidEvent(format!(
            "source {:?} is not a schedule (expected one of {ACCEPTED_SOURCES:?})",
            event.source
        )));
    }
    info!(id = ?event.id, detail_type = %event.detail_type, time = ?event.time, "scheduled sweep");
    Ok(event.id)
}

/// The Lambda handler: one sweep per scheduled event.
///
/// # Errors
/// [`SweepError::InvalidEvent`] (non-retryable) for a payload that is not a schedule;
/// [`SweepError::Incomplete`] (retryable: the sweep is idempotent) when the sweep met errors and
/// changed nothing, which is what a backend outage looks like. A sweep that made progress despite
/// some errors succeeds and lists them in its response.
pub async fn handle(
    sweeper: &Sweeper,
    limits: SweepLimits,
    event: LambdaEvent<serde_json::Value>,
) -> Result<SweepResponse, SweepError> {
    let event_id = accept_trigger(&event.payload)?;
    let report = sweeper.sweep_expired_sessions(limits).await;
    if !report.errors.is_empty() && report.is_noop() {
        warn!(errors = report.errors.len(), "sweep made no progress");
        return Err(SweepError::Incomplete {
            errors: report.errors,
        });
    }
    Ok(SweepResponse::new(event_id, report))
}

/// [`handle`] with its error turned into Lambda's [`Diagnostic`], the form `lambda_runtime::run`
/// takes.
///
/// # Errors
/// As [`handle`].
pub async fn handle_for_runtime(
    sweeper: &Sweeper,
    limits: SweepLimits,
    event: LambdaEvent<serde_json::Value>,
) -> Result<SweepResponse, Diagnostic> {
    handle(sweeper, limits, event)
        .await
        .map_err(Diagnostic::from)
}
