//! The handler's errors and their Lambda diagnostics.

use lambda_runtime::Diagnostic;

/// Why a sweep invocation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// The payload is not a scheduled event. Retrying the same payload cannot help.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// The sweep met errors and changed nothing (e.g. the backend is down or throttling). The
    /// sweep is idempotent: the next scheduled run (or a retry) does the same work.
    #[error("sweep made no progress: {} error(s), first: {}", errors.len(), errors.first().map_or("", String::as_str))]
    Incomplete {
        /// The errors, as collected by the sweep.
        errors: Vec<String>,
    },
    /// A task state change event could not be applied (EventBridge retries the delivery;
    /// applying an event twice changes nothing).
    #[error("task event not applied: {message}")]
    TaskEvent {
        /// Whether the backend said a retry may help.
        retryable: bool,
        /// What failed.
        message: String,
    },
}

impl SweepError {
    /// Whether invoking again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SweepError::InvalidEvent(_) => false,
            SweepError::Incomplete { .. } => true,
            SweepError::TaskEvent { retryable, .. } => *retryable,
        }
    }

    /// The Lambda `errorType`: `Retryable.<Kind>` or `NonRetryable.<Kind>`.
    pub fn error_type(&self) -> String {
        let kind = match self {
            SweepError::InvalidEvent(_) => "InvalidEvent",
            SweepError::Incomplete { .. } => "SweepIncomplete",
            SweepError::TaskEvent { .. } => "TaskEventNotApplied",
        };
        let class = if self.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        format!("{class}.{kind}")
    }
}

impl From<SweepError> for Diagnostic {
    fn from(e: SweepError) -> Self {
        Diagnostic {
            error_type: e.error_type(),
            error_message: e.to_string(),
        }
    }
}
