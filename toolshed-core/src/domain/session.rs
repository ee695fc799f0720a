//! Playground sessions and their TTL.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Endpoint, IdempotencyKey, ImageRef, PrincipalId, ServerId, SessionId, Timestamp};
use crate::error::{CapScope, Error, Result};

/// An opaque handle of a running task or container (ECS task ARN, Docker container id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TaskHandle(String);

impl TaskHandle {
    /// Wraps a handle: 1-2048 visible ASCII characters.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        if (1..=2048).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_graphic()) {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "task",
                format!("{raw:?} is not a task handle"),
            ))
        }
    }

    /// The handle string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<TaskHandle> for String {
    fn from(v: TaskHandle) -> String {
        v.0
    }
}

impl TryFrom<String> for TaskHandle {
    type Error = Error;
    fn try_from(v: String) -> Result<Self> {
        Self::new(v)
    }
}

/// Bounds of session TTLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlBounds {
    /// TTL when the caller gives none.
    pub default: Duration,
    /// Shortest accepted TTL.
    pub min: Duration,
    /// Longest accepted TTL.
    pub max: Duration,
}

/// The hard ceiling of any TTL: 24 hours.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for TtlBounds {
    /// 15 minutes by default, 1 minute to 24 hours.
    fn default() -> Self {
        Self {
            default: Duration::from_secs(15 * 60),
            min: Duration::from_secs(60),
            max: MAX_SESSION_TTL,
        }
    }
}

impl TtlBounds {
    /// Validates custom bounds (`min <= default <= max <= 24 h`).
    pub fn new(default: Duration, min: Duration, max: Duration) -> Result<Self> {
        if min.is_zero() || min > default || default > max || max > MAX_SESSION_TTL {
            return Err(Error::invalid(
                "ttl_bounds",
                "need 0 < min <= default <= max <= 24h",
            ));
        }
        Ok(Self { default, min, max })
    }

    /// The TTL for a request: the default when `None`, else validated against the bounds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use toolshed_core::domain::TtlBounds;
    /// let b = TtlBounds::default();
    /// assert_eq!(b.resolve(None).unwrap(), Duration::from_secs(900));
    /// assert!(b.resolve(Some(Duration::from_secs(25 * 3600))).is_err());
    /// ```
    pub fn resolve(&self, requested: Option<Duration>) -> Result<Duration> {
        let ttl = requested.unwrap_or(self.default);
        if ttl < self.min || ttl > self.max {
            return Err(Error::invalid(
                "ttl",
                format!(
                    "{} s is outside {}-{} s",
                    ttl.as_secs(),
                    self.min.as_secs(),
                    self.max.as_secs()
                ),
            ));
        }
        Ok(ttl)
    }
}

/// Lifecycle of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The task was started; it is not reachable yet.
    Launching,
    /// The task runs and its endpoint is known.
    Running,
    /// Ended (see the stop reason). Terminal.
    Stopped,
}

impl SessionState {
    /// Whether the session still holds a task (counts against caps).
    pub fn is_live(self) -> bool {
        !matches!(self, SessionState::Stopped)
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionState::Launching => "launching",
            SessionState::Running => "running",
            SessionState::Stopped => "stopped",
        })
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Somebody asked.
    Requested,
    /// Its TTL passed (stopped by the sweep).
    Expired,
    /// The task ended by itself.
    TaskExited,
    /// The task could not be started or vanished.
    LaunchFailed,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Requested => "requested",
            StopReason::Expired => "expired",
            StopReason::TaskExited => "task exited",
            StopReason::LaunchFailed => "launch failed",
        })
    }
}

/// A short-lived playground task running a server's verified image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaygroundSession {
    /// Id (also the runner's idempotency token).
    pub id: SessionId,
    /// The server.
    pub server_id: ServerId,
    /// The exact image (by digest) the task runs.
    pub image: ImageRef,
    /// The task.
    pub task: TaskHandle,
    /// Where MCP answers, once known.
    pub endpoint: Option<Endpoint>,
    /// Lifecycle state.
    pub state: SessionState,
    /// Why it ended.
    pub stop_reason: Option<StopReason>,
    /// The launch's idempotency key, if any.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Creation time.
    pub created_at: Timestamp,
    /// When the sweep stops it.
    pub expires_at: Timestamp,
    /// When it ended.
    pub stopped_at: Option<Timestamp>,
    /// The principal that launched it; `None` for sessions stored before owners were recorded
    /// (only admins reach those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<PrincipalId>,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl PlaygroundSession {
    /// Whether its TTL has passed at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// Ends a live session: `Stopped` with `reason` at `at`. Returns `false`, changing nothing,
    /// when it had already ended (ending is idempotent). The version is left to the repository.
    pub fn end(&mut self, reason: StopReason, at: Timestamp) -> bool {
        if !self.state.is_live() {
            return false;
        }
        self.state = SessionState::Stopped;
        self.stop_reason = Some(reason);
        self.stopped_at = Some(at);
        true
    }
}

/// Per-server and total caps on live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCaps {
    /// Live sessions per server.
    pub per_server: u32,
    /// Live sessions in total.
    pub total: u32,
}

impl SessionCaps {
    /// Whether one more live session of `server_id` fits, given the live sessions counted before
    /// the insert. Repositories call it inside the transaction that inserts the session.
    ///
    /// # Errors
    /// `CapReached`, per server first, then in total.
    pub fn admit(&self, server_id: &ServerId, counts: LiveSessionCounts) -> Result<()> {
        if counts.server >= self.per_server {
            return Err(self.reached(CapScope::PerServer, server_id));
        }
        if counts.total >= self.total {
            return Err(self.reached(CapScope::Total, server_id));
        }
        Ok(())
    }

    /// The error of a full cap, for repositories that enforce the caps with conditional
    /// counters rather than by counting.
    pub fn reached(&self, scope: CapScope, server_id: &ServerId) -> Error {
        Error::CapReached {
            scope,
            limit: match scope {
                CapScope::PerServer => self.per_server,
                CapScope::Total => self.total,
            },
            server_id: server_id.clone(),
        }
    }
}

impl Default for SessionCaps {
    fn default() -> Self {
        Self {
            per_server: 5,
            total: 100,
        }
    }
}

/// Live-session counts, for cap pre-checks and reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSessionCounts {
    /// Live sessions of the server asked about.
    pub server: u32,
    /// Live sessions in total.
    pub total: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bounds() {
        let b = TtlBounds::default();
        assert_eq!(b.resolve(None).unwrap(), Duration::from_secs(900));
        assert_eq!(
            b.resolve(Some(Duration::from_secs(3600))).unwrap(),
            Duration::from_secs(3600)
        );
        let err = b
            .resolve(Some(Duration::from_secs(5)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ttl") && err.contains("outside 60-86400"),
            "{err}"
        );
        assert!(b
            .resolve(Some(MAX_SESSION_TTL + Duration::from_secs(1)))
            .is_err());
        assert!(TtlBounds::new(
            Duration::from_secs(10),
            Duration::from_secs(60),
            MAX_SESSION_TTL
        )
        .is_err());
        assert!(TtlBounds::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
            MAX_SESSION_TTL * 2
        )
        .is_err());
    }

    #[test]
    fn task_handles() {
        assert!(TaskHandle::new("arn:aws:ecs:eu-west-1:1:task/c/abc").is_ok());
        assert!(TaskHandle::new("").is_err());
        assert!(TaskHandle::new("a b").is_err());
    }
}
