//! Playground sessions: launch from the verified image pinned by digest, status, stop, list.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::access::{owned_session_id, Caller};
use super::config::plus;
use super::status::{observation_of, status_of};
use super::Toolshed;
use crate::domain::{
    resolve_settings, IdempotencyKey, InstanceEnv, PlaygroundSession, QuotaKind, ServerId,
    SessionId, SessionState, StopReason,
};
use crate::error::{CapScope, Error, Result};
use crate::ports::{SessionInsert, TaskSpec, TaskState};

/// The longest single readiness wait of [`Toolshed::wait_session_ready`] before the task is
/// described again (a task that ended is noticed this soon).
const READY_WAIT_SLICE: Duration = Duration::from_secs(5);

/// Suggested pause after `SessionStarting` when the endpoint is known (the server is loading).
const RETRY_AFTER_LOADING: Duration = Duration::from_secs(2);

/// Suggested pause after `SessionStarting` while the task has no endpoint yet.
const RETRY_AFTER_PENDING: Duration = Duration::from_secs(5);

/// `SessionNotRunning` for an ended session, with its stop reason and, when its task ended by
/// itself, how.
pub(super) fn not_running(session: &PlaygroundSession) -> Error {
    Error::SessionNotRunning {
        session_id: session.id.to_string(),
        state: match (session.stop_reason, session.task_exit()) {
            (Some(reason), Some(exit)) => format!("{}: {reason}, {exit}", session.state),
            (Some(reason), None) => format!("{}: {reason}", session.state),
            (None, _) => session.state.to_string(),
        },
    }
}

/// A launch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchRequest {
    /// TTL; the configured default when `None`.
    pub ttl: Option<Duration>,
    /// Makes a retried launch return the same session (and never start a second task).
    pub idempotency_key: Option<IdempotencyKey>,
    /// Values of the server's declared settings (see [`resolve_settings`]): they go into the
    /// task's environment at start and nowhere else (never into the session record).
    pub settings: InstanceEnv,
}

impl Toolshed {
    /// Launches a session of a verified server: always its recorded image, by digest.
    ///
    /// Three round trips: (1) server, existing session and live counts, concurrently;
    /// (2) the task start; (3) the session insert, which enforces the caps atomically.
    ///
    /// # Errors
    /// `InvalidInput` for a TTL outside the bounds, or settings that do not match the server's
    /// declarations (a required one missing, an unknown one); `NotFound`; `NotVerified`; `NotLaunchable` (a remote);
    /// `CapReached`
    /// (nothing left running); runner errors.
    pub async fn launch_session(
        &self,
        server_id: &ServerId,
        request: LaunchRequest,
    ) -> Result<PlaygroundSession> {
        self.launch(server_id, request, None).await
    }

    /// The launch, unowned (`caller = None`: operator tools) or owned by the caller and charged
    /// to its quotas (see `access.rs`).
    pub(super) async fn launch(
        &self,
        server_id: &ServerId,
        request: LaunchRequest,
        caller: Option<&Caller>,
    ) -> Result<PlaygroundSession> {
        let p = &self.ports;
        let ttl = self.config.ttl_bounds.resolve(request.ttl)?;
        let session_id = match (&request.idempotency_key, caller) {
            // Keys are the caller's own: two principals using the same key get two sessions.
            (Some(key), Some(c)) => owned_session_id(&c.principal.id, server_id, key),
            (Some(key), None) => SessionId::for_idempotency_key(server_id, key),
            (None, _) => SessionId::random(),
        };
        let owner_live = async {
            match caller {
                Some(c) => p.repository.count_live_sessions_of(&c.principal.id).await,
                None => Ok(0),
            }
        };
        let (server, existing, counts, owner_live) = tokio::join!(
            p.repository.get_server(server_id),
            p.repository.get_session(&session_id),
            p.repository.count_live_sessions(server_id),
            owner_live,
        );
        match existing {
            Ok(session) => return Ok(session),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let server = server?;
        // A remote runs at its own URL: refused before anything is charged or started.
        server.ensure_launchable()?;
        // Checked before anything is charged or started: a launch missing a required setting
        // (or naming an unknown one) never starts a task.
        let env = resolve_settings(&server.settings, &request.settings)?;
        let counts = counts?;
        let caps = self.config.session_caps;
        if let Some(c) = caller {
            // Pre-checks, to avoid starting a task the insert would refuse; the launch window is
            // charged here, before the task starts, so refused launches count too.
            let live = c.quotas.live_sessions;
            if owner_live? >= live {
                return Err(Error::QuotaExceeded {
                    principal: c.principal.id.to_string(),
                    quota: QuotaKind::LiveSessions,
                    limit: live,
                    retry_after_secs: None,
                });
            }
            self.charge(c, QuotaKind::Launches, c.quotas.launches_per_minute)
                .await?;
        }
        // A warm session of the live image answers at once; it is already counted in the caps.
        if let Some(claimed) = self.claim_warm(&server, &request, caller, ttl).await? {
            return Ok(claimed);
        }
        // Pre-check, to avoid starting a task that the insert would refuse.
        if counts.server >= caps.per_server {
            return Err(Error::CapReached {
                scope: CapScope::PerServer,
                limit: caps.per_server,
                server_id: server_id.clone(),
            });
        }
        if counts.total >= caps.total {
            return Err(Error::CapReached {
                scope: CapScope::Total,
                limit: caps.total,
                server_id: server_id.clone(),
            });
        }
        let now = p.clock.now();
        let expires_at = plus(now, ttl);
        // NotVerified when there is no image: the only image a session can ever run.
        let mut spec = TaskSpec::for_session(&server, &session_id, expires_at)?;
        spec.env = env;
        let task = p.runner.start(&spec).await?;
        let session = PlaygroundSession {
            id: session_id,
            server_id: server_id.clone(),
            image: spec.image.clone(),
            task: task.clone(),
            endpoint: None,
            state: SessionState::Starting,
            stop_reason: None,
            idempotency_key: request.idempotency_key,
            created_at: now,
            expires_at,
            stopped_at: None,
            owner: caller.map(|c| c.principal.id.clone()),
            ready_at: None,
            observed: None,
            warm: false,
            claimed_at: None,
            version: 0,
        };
        let inserted = match caller {
            Some(c) => {
                p.repository
                    .create_owned_session(&session, caps, c.quotas.live_sessions)
                    .await
            }
            None => p.repository.create_session(&session, caps).await,
        };
        match inserted {
            Ok(SessionInsert::Created(s)) => {
                info!(server = %server_id, session = %s.id, %task, "session launched");
                Ok(s)
            }
            Ok(SessionInsert::Existing(s)) => Ok(s),
            Err(e @ (Error::CapReached { .. } | Error::QuotaExceeded { .. })) => {
                if let Err(stop) = p.runner.stop(&task, "toolshed: session cap reached").await {
                    warn!(%task, error = %stop, "could not stop the task of a refused session");
                }
                Err(e)
            }
            // Any other failure leaves the task to a retry with the same key, or to the sweep.
            Err(e) => Err(e),
        }
    }

    /// A session, refreshed from its task's observation and, while it starts, from its MCP
    /// endpoint: `Running` once the task runs **and** its endpoint answered an MCP handshake (one
    /// check per poll, within `readiness_check_timeout`); still `Starting` (with the endpoint,
    /// once known) until then; ended (`TaskExited`) when the task stopped or vanished.
    ///
    /// The task's state comes from the record while its observation is fresh
    /// (`status_freshness`; kept so by task events and the batched refresher): no runner call.
    /// A stale record joins a batched describe shared by every concurrent stale poll (and by
    /// the other live sessions about to go stale), whose observations are stored with their
    /// sessions.
    ///
    /// # Errors
    /// `NotFound`; runner / repository errors (a failed readiness check is not an error: the
    /// session stays `Starting`).
    pub async fn session_status(&self, session_id: &SessionId) -> Result<PlaygroundSession> {
        let session = self.ports.repository.get_session(session_id).await?;
        self.refresh_session(session, StaleSource::Batched).await
    }

    /// [`Self::session_status`] that asks the runner whatever the record's age: after a call
    /// failed to reach the endpoint, a fresh record may still say `running` about a task killed
    /// a moment ago.
    pub(super) async fn session_status_from_runner(
        &self,
        session_id: &SessionId,
    ) -> Result<PlaygroundSession> {
        let mut session = self.ports.repository.get_session(session_id).await?;
        session.observed = None;
        self.refresh_session(session, StaleSource::Runner).await
    }

    /// [`Self::session_status`] of a session already read; a stale record learns its task's
    /// state from `stale`.
    async fn refresh_session(
        &self,
        session: PlaygroundSession,
        stale: StaleSource,
    ) -> Result<PlaygroundSession> {
        let p = &self.ports;
        if !session.state.is_live() {
            return Ok(session);
        }
        let now = p.clock.now();
        let fresh = session
            .observed
            .as_ref()
            .filter(|o| o.is_fresh(now, self.config.status_freshness))
            .map(status_of);
        let mut session = session;
        let mut refreshed = session.clone();
        let (status, observed_now) = match (fresh, stale) {
            (Some(status), _) => (status, false),
            (None, StaleSource::Runner) => {
                let status = p.runner.describe(&session.task).await?;
                let observed = refreshed.observe(observation_of(&status, p.clock.now()));
                (status, observed)
            }
            (None, StaleSource::Batched) => {
                let batched = self.status_batch.status(session.clone()).await?;
                match batched.stored {
                    // The batch ended it: its task ended.
                    Some(stored) if !stored.state.is_live() => return Ok(stored),
                    // The batch stored the observation: go on from the stored record.
                    Some(stored) => {
                        session = stored.clone();
                        refreshed = stored;
                        (batched.status, false)
                    }
                    None => {
                        let observed = refreshed.observe(batched.observation);
                        (batched.status, observed)
                    }
                }
            }
        };
        match (status.state, status.endpoint) {
            (TaskState::Running, Some(endpoint)) => {
                let changed = if session.state == SessionState::Starting {
                    match p
                        .probe
                        .probe(&endpoint, self.config.readiness_check_timeout)
                        .await
                    {
                        Ok(_) => refreshed.mark_ready(endpoint, p.clock.now()),
                        Err(e) => {
                            debug!(session = %session.id, error = %e, "session not ready yet");
                            refreshed.record_endpoint(endpoint)
                        }
                    }
                } else {
                    refreshed.mark_ready(endpoint, p.clock.now())
                };
                if !changed && !observed_now {
                    return Ok(session);
                }
                if refreshed.state == SessionState::Running && session.state != refreshed.state {
                    info!(
                        session = %session.id,
                        starting_ms = session.starting_for(p.clock.now()).map(|d| d.as_millis() as u64),
                        "session ready"
                    );
                }
                self.store_refreshed(&refreshed).await
            }
            (TaskState::Stopped { .. } | TaskState::Missing, _) => {
                if observed_now {
                    // Kept through the end, so the ended session says how its task ended. A
                    // failed write costs only that detail: the session ends all the same.
                    if let Err(e) = self.store_refreshed(&refreshed).await {
                        debug!(session = %session.id, error = %e, "task end not recorded");
                    }
                }
                let ended = p
                    .repository
                    .end_session(&session.id, StopReason::TaskExited, p.clock.now())
                    .await?
                    .into_session();
                if let Some(exit) = ended.task_exit() {
                    info!(session = %ended.id, task = %exit, "session ended: its task ended");
                }
                Ok(ended)
            }
            _ if observed_now => self.store_refreshed(&refreshed).await,
            _ => Ok(session),
        }
    }

    /// Writes a refreshed live session with its version check. When somebody else refreshed or
    /// ended it first, their write wins, unless theirs is still `Starting` and ours is `Running`
    /// (readiness is a fact once seen: it is written over theirs).
    async fn store_refreshed(&self, refreshed: &PlaygroundSession) -> Result<PlaygroundSession> {
        let p = &self.ports;
        let mut candidate = refreshed.clone();
        for _ in 0..=self.config.conflict_retries {
            match p.repository.update_session(&candidate).await {
                Ok(s) => return Ok(s),
                Err(Error::Conflict { .. }) => {
                    let current = p.repository.get_session(&refreshed.id).await?;
                    let (Some(endpoint), Some(at)) = (&refreshed.endpoint, refreshed.ready_at)
                    else {
                        return Ok(current);
                    };
                    if current.state != SessionState::Starting
                        || refreshed.state != SessionState::Running
                    {
                        return Ok(current);
                    }
                    candidate = current;
                    candidate.mark_ready(endpoint.clone(), at);
                }
                Err(e) => return Err(e),
            }
        }
        p.repository.get_session(&refreshed.id).await
    }

    /// Waits until a session is `Running`, at most `deadline`: the task's describes while it
    /// has no endpoint, then the probe's readiness wait (handshake polls with backoff) on its
    /// endpoint, in slices so a task that ends meanwhile is noticed.
    ///
    /// # Errors
    /// `SessionStarting` when the deadline passes first; `SessionNotRunning` when the session
    /// ended; `NotFound`; runner / repository errors.
    pub async fn wait_session_ready(
        &self,
        session_id: &SessionId,
        deadline: Duration,
    ) -> Result<PlaygroundSession> {
        let session = self.ports.repository.get_session(session_id).await?;
        self.await_ready(session, deadline).await
    }

    /// [`Self::wait_session_ready`] of a session already read.
    pub(super) async fn await_ready(
        &self,
        session: PlaygroundSession,
        deadline: Duration,
    ) -> Result<PlaygroundSession> {
        let p = &self.ports;
        let until = Instant::now() + deadline;
        // The runner first: the task may have ended, or its server answer already.
        let mut session = self.refresh_session(session, StaleSource::Batched).await?;
        loop {
            match session.state {
                SessionState::Running => return Ok(session),
                SessionState::Stopped => return Err(not_running(&session)),
                SessionState::Starting => {}
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::SessionStarting {
                    session_id: session.id.to_string(),
                    starting_for: session.starting_for(p.clock.now()).unwrap_or_default(),
                    // The server loads once its endpoint is known; a pending task takes longer.
                    retry_after: if session.endpoint.is_some() {
                        RETRY_AFTER_LOADING
                    } else {
                        RETRY_AFTER_PENDING
                    },
                });
            }
            match session.endpoint.clone() {
                Some(endpoint) => {
                    let slice = left.min(READY_WAIT_SLICE);
                    if p.probe.wait_ready(&endpoint, slice).await.is_ok() {
                        let mut ready = session.clone();
                        if ready.mark_ready(endpoint, p.clock.now()) {
                            info!(
                                session = %session.id,
                                starting_ms = session.starting_for(p.clock.now()).map(|d| d.as_millis() as u64),
                                "session ready"
                            );
                            session = self.store_refreshed(&ready).await?;
                            continue;
                        }
                    }
                }
                None => {
                    tokio::time::sleep(left.min(self.config.task_poll_interval)).await;
                }
            }
            let current = p.repository.get_session(&session.id).await?;
            session = self.refresh_session(current, StaleSource::Batched).await?;
        }
    }

    /// Stops a session (idempotent): the task, then the record.
    ///
    /// # Errors
    /// `NotFound`; runner / repository errors (a retry is safe).
    pub async fn stop_session(&self, session_id: &SessionId) -> Result<PlaygroundSession> {
        let p = &self.ports;
        let session = p.repository.get_session(session_id).await?;
        if !session.state.is_live() {
            return Ok(session);
        }
        p.runner
            .stop(&session.task, "toolshed: session stopped on request")
            .await?;
        let ended = p
            .repository
            .end_session(session_id, StopReason::Requested, p.clock.now())
            .await?
            .into_session();
        info!(session = %session_id, "session stopped");
        Ok(ended)
    }

    /// Reads a session as stored (no runner call; see [`Self::session_status`]).
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_session(&self, session_id: &SessionId) -> Result<PlaygroundSession> {
        self.ports.repository.get_session(session_id).await
    }

    /// Sessions of a server, newest first, at most `limit` (capped at 1000).
    pub async fn list_sessions(
        &self,
        server_id: &ServerId,
        live_only: bool,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        self.ports
            .repository
            .list_sessions_for_server(server_id, live_only, limit.min(1000))
            .await
    }
}

/// Where a status poll that finds its record stale learns its task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StaleSource {
    /// The status batcher: concurrent stale polls share one batched describe.
    Batched,
    /// The runner, for this task alone and at once (after a call could not reach the task).
    Runner,
}
