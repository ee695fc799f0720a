//! Health of long-running instances: liveness (the process runs), readiness (the server completes an
//! MCP handshake: a bare TCP connect proves nothing, the engine's port proxy accepts connections
//! even when nothing listens in the container), and a consecutive-failure threshold before an
//! instance is called unhealthy.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::runner::DockerTaskRunner;
use crate::domain::{TaskHandle, Timestamp};
use crate::error::Result;
use crate::ports::{McpProbe, TaskState};

/// Overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// The last check passed.
    Healthy,
    /// Some checks failed, fewer than the threshold in a row.
    Degraded,
    /// At least `threshold` consecutive checks failed.
    Unhealthy,
}

/// One health check's result, with the tracker's running state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The container process runs.
    pub live: bool,
    /// The server completed an MCP handshake.
    pub ready: bool,
    /// Verdict after this check.
    pub status: Liveness,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// Failures in a row that make the instance unhealthy.
    pub threshold: u32,
    /// When this check ran.
    pub checked_at: Timestamp,
}

/// Counts consecutive failed checks against a threshold: one blip does not make an instance
/// unhealthy, `threshold` in a row do, and one success resets the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTracker {
    threshold: u32,
    consecutive_failures: u32,
}

impl HealthTracker {
    /// A tracker; a threshold of 0 is treated as 1.
    pub fn new(threshold: u32) -> Self {
        Self {
            threshold: threshold.max(1),
            consecutive_failures: 0,
        }
    }

    /// Records one check and returns the verdict.
    pub fn record(&mut self, ok: bool) -> Liveness {
        if ok {
            self.consecutive_failures = 0;
            Liveness::Healthy
        } else {
            self.consecutive_failures += 1;
            if self.consecutive_failures >= self.threshold {
                Liveness::Unhealthy
            } else {
                Liveness::Degraded
            }
        }
    }

    /// Failed checks in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The threshold.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }
}

impl DockerTaskRunner {
    /// Runs one health check of a container and records it in `tracker`.
    ///
    /// # Errors
    /// `Backend` when the engine cannot be asked.
    pub async fn check_health(
        &self,
        task: &TaskHandle,
        probe: &dyn McpProbe,
        tracker: &mut HealthTracker,
        now: Timestamp,
    ) -> Result<HealthReport> {
        let status = match self.inspect(task).await? {
            Some((_, status)) => status,
            None => crate::ports::TaskStatus {
                state: TaskState::Missing,
                endpoint: None,
            },
        };
        let live = status.state == TaskState::Running;
        let ready = match &status.endpoint {
            Some(ep) if live => probe.probe(ep, Duration::from_secs(3)).await.is_ok(),
            _ => false,
        };
        let verdict = tracker.record(live && ready);
        Ok(HealthReport {
            live,
            ready,
            status: verdict,
            consecutive_failures: tracker.consecutive_failures(),
            threshold: tracker.threshold(),
            checked_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_of_consecutive_failures() {
        let mut t = HealthTracker::new(3);
        assert_eq!(t.record(false), Liveness::Degraded);
        assert_eq!(t.record(false), Liveness::Degraded);
        assert_eq!(t.record(true), Liveness::Healthy);
        assert_eq!(t.consecutive_failures(), 0);
        assert_eq!(t.record(false), Liveness::Degraded);
        assert_eq!(t.record(false), Liveness::Degraded);
        assert_eq!(t.record(false), Liveness::Unhealthy);
        assert_eq!(t.consecutive_failures(), 3);
        assert_eq!(HealthTracker::new(0).threshold(), 1);
    }
}
