//! Warm pools: a server keeps a few verified, ready sessions of its live image, so a launch can
//! claim one and answer at once (see [`WarmPool`]).
//!
//! - [`Toolshed::set_warm_pool`] (admin) stores the settings, bounded by
//!   [`ToolshedConfig::warm_pool_max_size`](super::ToolshedConfig::warm_pool_max_size) and the
//!   per-server cap, and tops the pool up in the background.
//! - A launch claims a warm session of the server's live digest first (one conditional write in
//!   the repository), then a replacement starts in the background; the cold path otherwise.
//! - [`Toolshed::top_up_warm_pool`] retires warm sessions of other digests (a re-verification
//!   changed the image) and beyond the size, and starts sessions up to the size. Warm sessions
//!   are live sessions: they count against the caps, so a full cap stops a top-up early.
//! - Idle sessions end like expired ones: while warm, a session's `expires_at` is its idle
//!   deadline, so the sweep retires it.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::config::plus;
use super::playground::LaunchRequest;
use super::{Caller, Toolshed};
use crate::domain::{
    resolve_settings, InstanceEnv, PlaygroundSession, Scope, Server, ServerId, SessionId,
    SessionState, StopReason, WarmClaim, WarmPool,
};
use crate::error::{Error, Result};
use crate::ports::{SessionInsert, TaskSpec};

/// Most warm sessions of one server read by a top-up (pools are far smaller).
const WARM_READ_LIMIT: usize = 1_000;

/// Servers read per page by [`Toolshed::maintain_warm_pools`].
const SERVER_PAGE: usize = 100;

/// What a top-up (or a maintenance pass over every pool) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmPoolReport {
    /// Warm sessions started.
    pub started: u32,
    /// Warm sessions retired (another digest, or beyond the pool's size).
    pub retired: u32,
    /// Warm sessions counted towards the pool after this pass (ready or starting).
    pub kept: u32,
    /// Whether a cap stopped the top-up before the pool was full.
    pub capped: bool,
    /// Errors met (a pass goes on after each).
    pub errors: Vec<String>,
}

impl WarmPoolReport {
    fn absorb(&mut self, other: WarmPoolReport) {
        self.started += other.started;
        self.retired += other.retired;
        self.kept += other.kept;
        self.capped |= other.capped;
        self.errors.extend(other.errors);
    }
}

impl LaunchRequest {
    /// Whether this launch may be served by a warm-pool session.
    ///
    /// Warm sessions start with the server's declared defaults and no other value, so **a launch
    /// that gives values never claims one** (it would run without them). An idempotent launch (with a key) is not served from the pool either: its session
    /// id is derived from the key so that a retry finds it, and a warm session already has its
    /// own id.
    pub fn may_use_warm(&self) -> bool {
        self.settings.is_empty() && self.idempotency_key.is_none()
    }
}

impl Toolshed {
    /// Sets the warm pool of `server_id` (one versioned write, retried on conflicts). The pool
    /// fills (or, at size 0, is retired) on the next top-up: [`Self::top_up_warm_pool`] to wait
    /// for it, [`Self::spawn_warm_top_up`] in a long-running process, or the next sweep.
    ///
    /// # Errors
    /// `InvalidInput` for a size above the deployment's warm-pool cap or the per-server session
    /// cap, or an idle TTL outside 1 min-24 h; `NotLaunchable` for a remote (a pool that is not
    /// off); `NotFound`; repository errors.
    pub async fn set_warm_pool(&self, server_id: &ServerId, pool: WarmPool) -> Result<Server> {
        let bound = self
            .config
            .warm_pool_max_size
            .min(self.config.session_caps.per_server);
        pool.validate(bound)?;
        let repo = &self.ports.repository;
        let mut attempt = 0;
        let stored = loop {
            let mut server = repo.get_server(server_id).await?;
            // A remote runs at its own URL: it has no sessions to keep warm.
            if !pool.is_off() {
                server.ensure_launchable()?;
            }
            server.warm_pool = pool;
            server.updated_at = self.ports.clock.now();
            match repo.update_server(&server).await {
                Ok(stored) => break stored,
                Err(Error::Conflict { .. }) if attempt < self.config.conflict_retries => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        info!(server = %server_id, size = pool.size, idle_ttl_s = pool.idle_ttl.as_secs(), "warm pool set");
        Ok(stored)
    }

    /// [`Self::set_warm_pool`] for an admin.
    ///
    /// # Errors
    /// `Forbidden` without scope `admin`; as [`Self::set_warm_pool`].
    pub async fn set_warm_pool_as(
        &self,
        caller: &Caller,
        server_id: &ServerId,
        pool: WarmPool,
    ) -> Result<Server> {
        caller.principal.require(Scope::Admin)?;
        self.set_warm_pool(server_id, pool).await
    }

    /// The live warm sessions of a server (ready or starting, any digest), oldest first.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn list_warm_sessions(&self, server_id: &ServerId) -> Result<Vec<PlaygroundSession>> {
        self.ports
            .repository
            .list_warm_sessions(server_id, WARM_READ_LIMIT)
            .await
    }

    /// Tries to serve a launch from the server's warm pool: claims a ready warm session of the
    /// live digest for the caller with the launch's TTL and starts a replacement in the
    /// background. `None` when the launch may not use the pool ([`LaunchRequest::may_use_warm`]),
    /// the server has no pool, or nothing is claimable (the cold path follows).
    ///
    /// # Errors
    /// `QuotaExceeded` (the caller's live sessions, checked in the claim's write). Other claim
    /// failures are logged and answered `None`: the cold path still works.
    pub(super) async fn claim_warm(
        &self,
        server: &Server,
        request: &LaunchRequest,
        caller: Option<&Caller>,
        ttl: Duration,
    ) -> Result<Option<PlaygroundSession>> {
        if !request.may_use_warm() || server.warm_pool.is_off() {
            return Ok(None);
        }
        let Some(image) = server.image.as_ref() else {
            return Ok(None);
        };
        let now = self.ports.clock.now();
        let claim = WarmClaim {
            server_id: server.id.clone(),
            digest: image.image.digest().clone(),
            owner: caller.map(|c| c.principal.id.clone()),
            live_quota: caller.map(|c| c.quotas.live_sessions),
            expires_at: plus(now, ttl),
            now,
        };
        let claimed = match self.ports.repository.claim_warm_session(&claim).await {
            Ok(c) => c,
            Err(e @ Error::QuotaExceeded { .. }) => return Err(e),
            Err(e) => {
                warn!(server = %server.id, error = %e, "warm claim failed; launching cold");
                return Ok(None);
            }
        };
        if let Some(session) = &claimed {
            info!(server = %server.id, session = %session.id, "session claimed from the warm pool");
            // The pool lost one: a replacement starts now, off the launch's path.
            self.spawn_warm_top_up(server.id.clone());
        } else {
            debug!(server = %server.id, "no warm session to claim");
        }
        Ok(claimed)
    }

    /// Runs [`Self::top_up_warm_pool`] in a background task; its failures are logged, never
    /// returned (a pool is an optimisation).
    pub fn spawn_warm_top_up(&self, server_id: ServerId) {
        let this = self.clone();
        tokio::spawn(async move {
            match this.top_up_warm_pool(&server_id).await {
                Ok(report) if !report.errors.is_empty() => {
                    warn!(server = %server_id, ?report, "warm pool top-up met errors");
                }
                Ok(report) => debug!(server = %server_id, ?report, "warm pool topped up"),
                Err(e) => warn!(server = %server_id, error = %e, "warm pool top-up failed"),
            }
        });
    }

    /// Brings a server's warm pool to its settings: retires warm sessions of another digest than
    /// the live image (or all, without a pool or an image), and beyond the size (newest first);
    /// nudges starting ones towards readiness; starts new ones up to the size, each waited for
    /// in the background until ready. A full session cap stops the top-up (`capped`).
    ///
    /// Top-ups of one service (and its clones) run one at a time. Two processes may both start
    /// a session for the same free place; the next pass retires the extra one.
    ///
    /// # Errors
    /// `NotFound`; repository errors reading the server or its warm sessions (errors of single
    /// sessions are collected in the report).
    pub async fn top_up_warm_pool(&self, server_id: &ServerId) -> Result<WarmPoolReport> {
        let _one_at_a_time = self.warm_top_up.lock().await;
        let p = &self.ports;
        let server = p.repository.get_server(server_id).await?;
        let warm = p
            .repository
            .list_warm_sessions(server_id, WARM_READ_LIMIT)
            .await?;
        let now = p.clock.now();
        let live_digest = server.image.as_ref().map(|i| i.image.digest().clone());
        let size = if self.config.warm_pool_max_size == 0 {
            0
        } else {
            server.warm_pool.size as usize
        };
        let mut report = WarmPoolReport::default();
        let mut keep = Vec::new();
        let mut retire = Vec::new();
        for s in warm {
            if s.is_expired(now) {
                // Idle past its deadline: the sweep ends it (and stops its task).
                continue;
            }
            if Some(s.image.digest()) == live_digest.as_ref() {
                keep.push(s);
            } else {
                retire.push(s);
            }
        }
        // Oldest first: the newest beyond the size go (they are the least likely to be ready).
        if keep.len() > size {
            retire.extend(keep.split_off(size));
        }
        for s in retire {
            match self.retire_warm(&s).await {
                Ok(true) => report.retired += 1,
                Ok(false) => {}
                Err(e) => report
                    .errors
                    .push(format!("retire warm session {}: {e}", s.id)),
            }
        }
        for s in &keep {
            if s.state == SessionState::Starting {
                // Its background wait may have died with its process: one status check.
                if let Err(e) = self.refresh_warm(s.clone()).await {
                    report
                        .errors
                        .push(format!("refresh warm session {}: {e}", s.id));
                }
            }
        }
        report.kept = u32::try_from(keep.len()).unwrap_or(u32::MAX);
        for _ in keep.len()..size {
            match self.start_warm_session(&server).await {
                Ok(Some(session)) => {
                    report.started += 1;
                    report.kept += 1;
                    self.spawn_warm_ready_wait(session);
                }
                Ok(None) => {
                    report.capped = true;
                    break;
                }
                Err(e) => {
                    report
                        .errors
                        .push(format!("start warm session of {server_id}: {e}"));
                    break;
                }
            }
        }
        if report.started > 0 || report.retired > 0 {
            info!(server = %server_id, started = report.started, retired = report.retired, kept = report.kept, "warm pool topped up");
        }
        Ok(report)
    }

    /// One top-up pass over every server with a warm pool (servers page by page). The sweep's
    /// companion: it retires pools of re-verified servers and refills pools drained by claims
    /// or idle expiry.
    pub async fn maintain_warm_pools(&self) -> WarmPoolReport {
        let mut report = WarmPoolReport::default();
        let mut after = None;
        loop {
            let page = match self
                .ports
                .repository
                .list_servers(after.clone(), SERVER_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    report.errors.push(format!("list servers: {e}"));
                    return report;
                }
            };
            for server in page.iter().filter(|s| !s.warm_pool.is_off()) {
                match self.top_up_warm_pool(&server.id).await {
                    Ok(r) => report.absorb(r),
                    Err(e) => report
                        .errors
                        .push(format!("top up warm pool of {}: {e}", server.id)),
                }
            }
            if page.len() < SERVER_PAGE {
                return report;
            }
            after = page.last().map(|s| s.id.clone());
        }
    }

    /// Starts one warm session of the server's live image: no owner, the pool's idle deadline as
    /// its expiry. `None` when a session cap is full (the task is stopped again).
    async fn start_warm_session(&self, server: &Server) -> Result<Option<PlaygroundSession>> {
        let p = &self.ports;
        let now = p.clock.now();
        let id = SessionId::random();
        let idle_deadline = plus(now, server.warm_pool.idle_ttl);
        // The task's label expiry covers the longest life a claim can give it.
        let mut spec =
            TaskSpec::for_session(server, &id, plus(idle_deadline, self.config.ttl_bounds.max))?;
        // Exactly what a launch giving no values gets: the declared defaults. A server with a
        // required setting has no such launch, so it keeps no warm sessions (an error here).
        spec.env = resolve_settings(&server.settings, &InstanceEnv::new())?;
        let task = p.runner.start(&spec).await?;
        let session = PlaygroundSession {
            id,
            server_id: server.id.clone(),
            image: spec.image.clone(),
            task: task.clone(),
            endpoint: None,
            state: SessionState::Starting,
            stop_reason: None,
            idempotency_key: None,
            created_at: now,
            expires_at: idle_deadline,
            stopped_at: None,
            owner: None,
            ready_at: None,
            observed: None,
            warm: true,
            claimed_at: None,
            version: 0,
        };
        match p
            .repository
            .create_session(&session, self.config.session_caps)
            .await
        {
            Ok(SessionInsert::Created(s) | SessionInsert::Existing(s)) => {
                debug!(server = %server.id, session = %s.id, %task, "warm session started");
                Ok(Some(s))
            }
            Err(Error::CapReached { .. }) => {
                if let Err(e) = p.runner.stop(&task, "toolshed: session cap reached").await {
                    warn!(%task, error = %e, "could not stop the task of a refused warm session");
                }
                Ok(None)
            }
            // The task is left to the sweep (an orphan once its grace passes).
            Err(e) => Err(e),
        }
    }

    /// Waits, in the background, until a new warm session is ready (it becomes claimable then).
    fn spawn_warm_ready_wait(&self, session: PlaygroundSession) {
        let this = self.clone();
        tokio::spawn(async move {
            let id = session.id.clone();
            match this
                .await_ready(session, this.config.readiness_deadline)
                .await
            {
                Ok(_) => debug!(session = %id, "warm session ready"),
                Err(e) => warn!(session = %id, error = %e, "warm session did not become ready"),
            }
        });
    }

    /// One status check of a starting warm session.
    async fn refresh_warm(&self, session: PlaygroundSession) -> Result<()> {
        let id = session.id.clone();
        let refreshed = self.ports.repository.get_session(&id).await?;
        if refreshed.warm && refreshed.state == SessionState::Starting {
            self.session_status(&id).await?;
        }
        Ok(())
    }

    /// Retires an unclaimed warm session: first a versioned write that makes it unclaimable
    /// (`warm` cleared: a concurrent claim of the same version fails), then the task, then the
    /// record (`Retired`). Returns `false`, changing nothing, when it was claimed, changed or
    /// ended meanwhile (the next pass decides again).
    async fn retire_warm(&self, session: &PlaygroundSession) -> Result<bool> {
        let p = &self.ports;
        let current = p.repository.get_session(&session.id).await?;
        if !current.warm || !current.state.is_live() {
            return Ok(false);
        }
        let mut unclaimable = current.clone();
        unclaimable.warm = false;
        match p.repository.update_session(&unclaimable).await {
            Ok(_) => {}
            Err(Error::Conflict { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        // From here no claim can take it; if this stops half-way, the sweep ends it at its
        // idle deadline like any expired session.
        p.runner
            .stop(&current.task, "toolshed: warm session retired")
            .await?;
        p.repository
            .end_session(&current.id, StopReason::Retired, p.clock.now())
            .await?;
        info!(server = %current.server_id, session = %current.id, "warm session retired");
        Ok(true)
    }
}
