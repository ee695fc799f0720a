//! Playground sessions and their TTL.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    Endpoint, IdempotencyKey, ImageRef, PrincipalId, ServerId, SessionId, TaskExit,
    TaskObservation, Timestamp,
};
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

/// Lifecycle of a session:
///
/// ```text
/// starting ──(its MCP endpoint answered a handshake)──► running
///     │                                                   │
///     └────────────(stopped, expired, task exited)────────┴──► stopped
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The task was started, but its MCP endpoint has not answered yet: the task may still be
    /// pending, or its server still loading. Records written as `launching` by earlier versions
    /// read as this state.
    #[serde(alias = "launching")]
    Starting,
    /// The task runs and its MCP endpoint completed a handshake.
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
            SessionState::Starting => "starting",
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
    /// A warm-pool session retired unclaimed: its server's live image changed, or its pool
    /// shrank or was turned off.
    Retired,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Requested => "requested",
            StopReason::Expired => "expired",
            StopReason::TaskExited => "task exited",
            StopReason::LaunchFailed => "launch failed",
            StopReason::Retired => "retired from the warm pool",
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
    /// When its MCP endpoint first answered (the move to `Running`); `None` while starting, and
    /// for sessions stored before readiness was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Timestamp>,
    /// What was last seen of its task (state, endpoint, when), so a status poll answers from the
    /// record while this is fresh; `None` until first observed, and for older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<TaskObservation>,
    /// Whether it is a warm-pool session waiting to be claimed (see [`super::WarmPool`]): no
    /// owner yet, and `expires_at` is its idle deadline. Cleared by the claim.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm: bool,
    /// When a launch claimed it from its server's warm pool; `None` for sessions started for
    /// their launch (and for warm ones not claimed yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<Timestamp>,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl PlaygroundSession {
    /// Whether its TTL has passed at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// How long it has been starting at `now` (since its launch); `None` unless `Starting`.
    pub fn starting_for(&self, now: Timestamp) -> Option<Duration> {
        (self.state == SessionState::Starting)
            .then(|| (now - self.created_at).to_std().unwrap_or(Duration::ZERO))
    }

    /// Records the endpoint of a starting session learnt from the runner, before it answered.
    /// Returns whether anything changed (only a `Starting` session takes an endpoint this way).
    pub fn record_endpoint(&mut self, endpoint: Endpoint) -> bool {
        if self.state != SessionState::Starting || self.endpoint.as_ref() == Some(&endpoint) {
            return false;
        }
        self.endpoint = Some(endpoint);
        true
    }

    /// `Starting` → `Running`: `endpoint` answered an MCP handshake at `at`. A `Running` session
    /// whose task moved to another endpoint takes the new one (its `ready_at` is kept). Returns
    /// whether anything changed; an ended session never changes. The version is left to the
    /// repository.
    pub fn mark_ready(&mut self, endpoint: Endpoint, at: Timestamp) -> bool {
        match self.state {
            SessionState::Starting => {
                self.state = SessionState::Running;
                self.endpoint = Some(endpoint);
                self.ready_at = Some(at);
                true
            }
            SessionState::Running if self.endpoint.as_ref() != Some(&endpoint) => {
                self.endpoint = Some(endpoint);
                true
            }
            SessionState::Running | SessionState::Stopped => false,
        }
    }

    /// Records an observation of its task: only on a live session, and only one newer than the
    /// stored one (events and describes may arrive out of order). Returns whether it changed.
    /// The version is left to the repository.
    pub fn observe(&mut self, observation: TaskObservation) -> bool {
        if !self.state.is_live() || !observation.supersedes(self.observed.as_ref()) {
            return false;
        }
        self.observed = Some(observation);
        true
    }

    /// How its task ended, when the session ended because its task did and the last
    /// observation (kept through the end) says how.
    pub fn task_exit(&self) -> Option<TaskExit> {
        if self.stop_reason != Some(StopReason::TaskExited) {
            return None;
        }
        self.observed
            .as_ref()
            .filter(|o| o.state.is_ended())
            .and_then(|o| o.exit)
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

    fn session(state: SessionState) -> PlaygroundSession {
        let at = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        PlaygroundSession {
            id: SessionId::new("s-12345678").unwrap(),
            server_id: ServerId::new("time").unwrap(),
            image: ImageRef::new(
                "reg/x",
                crate::domain::ImageTag::new("t").unwrap(),
                crate::domain::ImageDigest::new(format!("sha256:{}", "a".repeat(64))).unwrap(),
            )
            .unwrap(),
            task: TaskHandle::new("c1").unwrap(),
            endpoint: None,
            state,
            stop_reason: None,
            idempotency_key: None,
            created_at: at,
            expires_at: at + chrono::Duration::minutes(15),
            stopped_at: None,
            owner: None,
            ready_at: None,
            observed: None,
            warm: false,
            claimed_at: None,
            version: 1,
        }
    }

    #[test]
    fn starting_becomes_running_only_when_marked_ready() {
        let mut s = session(SessionState::Starting);
        let later = s.created_at + chrono::Duration::seconds(4);
        assert_eq!(s.starting_for(later), Some(Duration::from_secs(4)));
        let ep = Endpoint::new("127.0.0.1", 8000, "/mcp").unwrap();
        assert!(s.record_endpoint(ep.clone()));
        assert!(!s.record_endpoint(ep.clone()), "unchanged");
        assert_eq!(
            s.state,
            SessionState::Starting,
            "an endpoint alone is not readiness"
        );
        assert!(s.mark_ready(ep.clone(), later));
        assert_eq!((s.state, s.ready_at), (SessionState::Running, Some(later)));
        assert_eq!(s.starting_for(later), None);
        assert!(!s.mark_ready(ep.clone(), later), "already running there");
        let moved = Endpoint::new("127.0.0.1", 8001, "/mcp").unwrap();
        assert!(!s.record_endpoint(moved.clone()));
        assert!(s.mark_ready(moved.clone(), later + chrono::Duration::seconds(1)));
        assert_eq!(s.ready_at, Some(later), "first readiness kept");
        s.end(StopReason::Requested, later);
        assert!(!s.mark_ready(ep, later), "an ended session stays ended");
    }

    #[test]
    fn records_of_earlier_versions_stay_readable() {
        let mut json = serde_json::to_value(session(SessionState::Starting)).unwrap();
        assert_eq!(json["state"], "starting");
        assert!(json.get("ready_at").is_none());
        json["state"] = "launching".into();
        let old: PlaygroundSession = serde_json::from_value(json).unwrap();
        assert_eq!(old.state, SessionState::Starting);
        assert_eq!(old.ready_at, None);
    }

    #[test]
    fn observations_only_move_forward_on_live_sessions() {
        use crate::domain::ObservedTaskState;
        let mut s = session(SessionState::Running);
        let obs = |secs: i64, state| TaskObservation {
            state,
            endpoint: None,
            observed_at: s_at(secs),
            exit: None,
        };
        fn s_at(secs: i64) -> Timestamp {
            chrono::DateTime::from_timestamp(1_900_000_000 + secs, 0).unwrap()
        }
        assert!(s.observe(obs(2, ObservedTaskState::Pending)));
        assert!(!s.observe(obs(1, ObservedTaskState::Stopped)), "older");
        assert!(!s.observe(obs(2, ObservedTaskState::Stopped)), "same time");
        assert!(s.observe(obs(3, ObservedTaskState::Stopped)));
        let json = serde_json::to_value(&s).unwrap();
        let back: PlaygroundSession = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        s.end(StopReason::TaskExited, s_at(4));
        assert!(!s.observe(obs(5, ObservedTaskState::Running)), "ended");
    }

    #[test]
    fn task_handles() {
        assert!(TaskHandle::new("arn:aws:ecs:eu-west-1:1:task/c/abc").is_ok());
        assert!(TaskHandle::new("").is_err());
        assert!(TaskHandle::new("a b").is_err());
    }
}
