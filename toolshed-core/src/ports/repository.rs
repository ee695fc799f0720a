//! Persistence of servers, verification leases and playground sessions.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::domain::{
    ApiKey, ApiKeyId, Instance, InstanceId, InstanceName, LiveSessionCounts, PlaygroundSession,
    PrincipalId, QuotaKind, Server, ServerId, SessionCaps, SessionId, StopReason, TaskHandle,
    TaskObservation, Timestamp, VerificationFailure, VerificationLease, VerificationRun, WarmClaim,
};
use crate::error::Result;

pub use crate::domain::VerificationCompletion;

/// Most session ids [`ServerRepository::get_sessions`] reads in one round trip (DynamoDB's
/// `BatchGetItem` limit).
pub const SESSION_BATCH: usize = 100;

/// One observation of a session's task, for [`ServerRepository::record_task_observations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionObservation {
    /// The session.
    pub session_id: SessionId,
    /// The task observed: recorded only when it is the session's own task (an event of another
    /// task naming this session is ignored).
    pub task: TaskHandle,
    /// What was seen.
    pub observation: TaskObservation,
}

/// The newest observation of each session named in `observations`, ordered by session id, for
/// backends implementing [`ServerRepository::record_task_observations`].
pub fn newest_per_session(observations: &[SessionObservation]) -> Vec<&SessionObservation> {
    let mut newest: std::collections::BTreeMap<&SessionId, &SessionObservation> =
        std::collections::BTreeMap::new();
    for o in observations {
        let slot = newest.entry(&o.session_id).or_insert(o);
        if o.observation.observed_at > slot.observation.observed_at {
            *slot = o;
        }
    }
    newest.into_values().collect()
}

/// Outcome of [`ServerRepository::create_session`].
#[derive(Debug, Clone, PartialEq)]
pub enum SessionInsert {
    /// The session was stored.
    Created(PlaygroundSession),
    /// A session with this id already existed (a retried launch): here it is, unchanged.
    Existing(PlaygroundSession),
}

/// Outcome of [`ServerRepository::end_session`].
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// This call ended it.
    Ended(PlaygroundSession),
    /// It had already ended (idempotent repeat): unchanged.
    AlreadyEnded(PlaygroundSession),
}

impl SessionEnd {
    /// The session either way.
    pub fn into_session(self) -> PlaygroundSession {
        match self {
            SessionEnd::Ended(s) | SessionEnd::AlreadyEnded(s) => s,
        }
    }
}

/// Servers, leases and sessions.
///
/// # Contract (checked by `toolshed_core::testing::conformance`)
/// - Every successful write of a server or session stores `version + 1` and returns the stored
///   record; writes that carry a version compare it first and fail with
///   [`crate::Error::Conflict`] on mismatch.
/// - Missing records: [`crate::Error::NotFound`] with [`crate::error::EntityKind::Server`] or
///   `Session`. Duplicate ids on insert: [`crate::Error::AlreadyExists`].
/// - Lease operations are atomic (a single conditional write or transaction). Fencing tokens only
///   grow per server, and are never reused, even after release.
/// - Session caps are enforced atomically with the insert: two concurrent creates can never both
///   pass a cap with one place left.
/// - Time is always passed in: implementations never read a clock, so expiry is decided by the
///   caller's clock and is testable.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ServerRepository: Send + Sync + Debug {
    /// Stores a new server (its `version` is ignored; stored as 1).
    ///
    /// # Errors
    /// `AlreadyExists` if the id is taken.
    async fn insert_server(&self, server: &Server) -> Result<Server>;

    /// Reads a server.
    ///
    /// # Errors
    /// `NotFound`.
    async fn get_server(&self, id: &ServerId) -> Result<Server>;

    /// Lists servers ordered by id, starting after `after`, at most `limit`.
    async fn list_servers(&self, after: Option<ServerId>, limit: usize) -> Result<Vec<Server>>;

    /// Replaces a server if its stored version equals `server.version`. Does not touch the lease.
    ///
    /// # Errors
    /// `NotFound`; `Conflict` on a version mismatch.
    async fn update_server(&self, server: &Server) -> Result<Server>;

    /// Takes the verification lease of a server.
    ///
    /// With `run = Some(..)` a new run starts; with `None` the caller takes over the stored run of
    /// an expired lease (resume after a crash). The lease is granted when there is none, or when the
    /// current one has expired at `now`; its token is the previous token + 1.
    ///
    /// # Errors
    /// `NotFound` if the server does not exist, or `run` is `None` and there is no stored run;
    /// `VerificationInProgress` when a live lease is held by anyone (the same holder included).
    async fn acquire_lease(
        &self,
        server_id: &ServerId,
        holder: &str,
        run: Option<VerificationRun>,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<VerificationLease>;

    /// The current lease, expired or not; `None` when released.
    async fn get_lease(&self, server_id: &ServerId) -> Result<Option<VerificationLease>>;

    /// Held leases whose expiry has passed at `now` (`expires_at <= now`): runs whose holder
    /// stopped heartbeating, most likely because it died. Earliest expiry first, at most `limit`.
    /// Released leases never appear. Must not scan every server (an index on the expiry of held
    /// leases); the result may lag a just-written heartbeat, which is harmless because taking a
    /// run over goes through [`Self::acquire_lease`], which decides on the stored lease.
    async fn list_stale_verifications(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<VerificationLease>>;

    /// Stores the lease's run progress and expiry (a heartbeat), if `lease.token` is still current.
    ///
    /// # Errors
    /// `LeaseLost` if the lease was released or taken over.
    async fn save_progress(&self, lease: &VerificationLease) -> Result<VerificationLease>;

    /// Records a successful verification and releases the lease, atomically: image, commit,
    /// tools, state `Verified`, `last_failure` cleared, `verification_count + 1`.
    ///
    /// # Errors
    /// `LeaseLost` if the token is stale (nothing is written).
    async fn complete_verification(
        &self,
        lease: &VerificationLease,
        completion: &VerificationCompletion,
        now: Timestamp,
    ) -> Result<Server>;

    /// Records a failed verification and releases the lease, atomically: state `Failed` and
    /// `last_failure`; the image (last good one) is left untouched.
    ///
    /// # Errors
    /// `LeaseLost` if the token is stale.
    async fn fail_verification(
        &self,
        lease: &VerificationLease,
        failure: &VerificationFailure,
    ) -> Result<Server>;

    /// Stores a new live session, enforcing `caps` atomically (live sessions per server and in
    /// total, counted before the insert). A session with the same id returns `Existing` unchanged
    /// and is not counted again.
    ///
    /// # Errors
    /// `CapReached` (nothing stored).
    async fn create_session(
        &self,
        session: &PlaygroundSession,
        caps: SessionCaps,
    ) -> Result<SessionInsert>;

    /// Reads a session.
    ///
    /// # Errors
    /// `NotFound`.
    async fn get_session(&self, id: &SessionId) -> Result<PlaygroundSession>;

    /// Reads many sessions at once, live or ended: those of `ids` that exist, each once, in no
    /// particular order (a missing id is left out, not an error; a repeated id counts once).
    /// Strongly consistent like [`Self::get_session`]. Any number of ids: a backend with a
    /// per-request limit splits them (DynamoDB: one `BatchGetItem` per [`SESSION_BATCH`] ids), so
    /// the sweep judges a page of 100 tasks with one read instead of 100.
    ///
    /// # Errors
    /// Only `Backend` (retryable when the backend was throttling): a missing id is no error.
    async fn get_sessions(&self, ids: &[SessionId]) -> Result<Vec<PlaygroundSession>>;

    /// Updates a live session (task endpoint, `Starting` → `Running`) with a version check.
    ///
    /// # Errors
    /// `NotFound`; `Conflict` on a version mismatch or when the stored session has ended;
    /// `InvalidInput` if `session.state` is `Stopped` (use [`Self::end_session`]).
    async fn update_session(&self, session: &PlaygroundSession) -> Result<PlaygroundSession>;

    /// Records task observations on their sessions, each atomically: a session takes its
    /// observation only when it exists, is live, runs `task`, and the observation is newer than
    /// the stored one ([`PlaygroundSession::observe`]); it is then stored with `version + 1`.
    /// Anything else is skipped without error (events may name unknown or ended sessions, or
    /// arrive late). Any number of observations; a session named twice takes the newer. Returns
    /// the sessions this call changed, as stored. Ending a session whose task ended is left to
    /// [`Self::end_session`].
    ///
    /// # Errors
    /// `Backend`; `Conflict` when a session kept changing through the backend's re-reads. What
    /// was recorded before the failure stays recorded (a retry is safe).
    async fn record_task_observations(
        &self,
        observations: &[SessionObservation],
    ) -> Result<Vec<PlaygroundSession>>;

    /// Ends a session (idempotent): a live session becomes `Stopped` with `reason` and
    /// `stopped_at = at` and stops counting against caps; an ended one is returned unchanged.
    ///
    /// # Errors
    /// `NotFound`.
    async fn end_session(
        &self,
        id: &SessionId,
        reason: StopReason,
        at: Timestamp,
    ) -> Result<SessionEnd>;

    /// Sessions of a server, newest first, at most `limit`; only live ones when `live_only`.
    async fn list_sessions_for_server(
        &self,
        server_id: &ServerId,
        live_only: bool,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>>;

    /// Live sessions with `expires_at <= now`, earliest expiry first, at most `limit`. Must not
    /// scan every session (an index on expiry of live sessions).
    async fn list_expired_sessions(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>>;

    /// Live sessions in a stable backend-defined order, continuing after the session `after`
    /// (a cursor from the previous page's last element), at most `limit`.
    async fn list_live_sessions(
        &self,
        after: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>>;

    /// Live-session counts of a server and in total.
    async fn count_live_sessions(&self, server_id: &ServerId) -> Result<LiveSessionCounts>;

    // -- Warm pools (see `crate::domain::WarmPool`) ----------------------------------------------

    /// Claims one warm session of `claim.server_id` for which
    /// [`PlaygroundSession::is_claimable_by`] holds (warm, `Running` with `ready_at`, the claim's
    /// digest, idle deadline after `claim.now`), as a **single conditional write**: the session
    /// takes the claim's owner and expiry, stops being warm, and its version grows by one. Two
    /// concurrent claims never get the same session. The claimed session already counted against
    /// the caps (a warm session is live), so no cap is checked; with an owner it counts against
    /// the owner from now on, and with `live_quota` the owner must have fewer live sessions than
    /// that (checked in the same write). `None` when no session is claimable.
    ///
    /// # Errors
    /// `InvalidInput` for a quota without an owner; `QuotaExceeded` with
    /// [`QuotaKind::LiveSessions`] (nothing claimed).
    async fn claim_warm_session(&self, claim: &WarmClaim) -> Result<Option<PlaygroundSession>>;

    /// The live warm sessions of a server, whatever their state or digest (top-up and retire
    /// read them), oldest first, at most `limit`. Reads only the server's live sessions.
    async fn list_warm_sessions(
        &self,
        server_id: &ServerId,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>>;

    /// Stores a new instance (its `version` is ignored; stored as 1) and returns it. Names are
    /// unique among stored instances, enforced atomically with the insert.
    ///
    /// # Errors
    /// `AlreadyExists` (kind `Instance`) if the id or the name is taken (nothing stored).
    async fn insert_instance(&self, instance: &Instance) -> Result<Instance>;

    /// Reads an instance.
    ///
    /// # Errors
    /// `NotFound` (kind `Instance`).
    async fn get_instance(&self, id: &InstanceId) -> Result<Instance>;

    /// Reads an instance by its name (strongly consistent, like [`Self::get_instance`]).
    ///
    /// # Errors
    /// `NotFound` (kind `Instance`, the name as id).
    async fn get_instance_by_name(&self, name: &InstanceName) -> Result<Instance>;

    /// Instances ordered by name, starting after the name `after`, at most `limit`.
    async fn list_instances(
        &self,
        after: Option<InstanceName>,
        limit: usize,
    ) -> Result<Vec<Instance>>;

    /// Replaces an instance if its stored version equals `instance.version`; stores and returns
    /// `version + 1`. Its id, name, server and creation time never change (they are not written).
    ///
    /// # Errors
    /// `NotFound`; `Conflict` on a version mismatch.
    async fn update_instance(&self, instance: &Instance) -> Result<Instance>;

    /// Deletes an instance and frees its name (idempotent); whether it existed. The caller stops
    /// its task first: deleting never stops anything.
    async fn delete_instance(&self, id: &InstanceId) -> Result<bool>;
    // -- Principals: API keys and per-principal quotas -----------------------------------------

    /// Stores a new API key (the record holds only the secret's hash).
    ///
    /// # Errors
    /// `AlreadyExists` if the id is taken.
    async fn insert_api_key(&self, key: &ApiKey) -> Result<ApiKey>;

    /// Reads an API key, revoked or not.
    ///
    /// # Errors
    /// `NotFound` with [`crate::error::EntityKind::ApiKey`].
    async fn get_api_key(&self, id: &ApiKeyId) -> Result<ApiKey>;

    /// API keys ordered by id (revoked ones included), only those of `owner` when given.
    async fn list_api_keys(&self, owner: Option<PrincipalId>) -> Result<Vec<ApiKey>>;

    /// Revokes a key (idempotent: a second revocation keeps the first time). A revoked key is
    /// refused by the very next read.
    ///
    /// # Errors
    /// `NotFound`.
    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<ApiKey>;

    /// Records a use: `last_used_at = at` unless the stored time is already later (never moves
    /// back). Callers limit how often they call it ([`ApiKey::needs_touch`]).
    ///
    /// # Errors
    /// `NotFound`.
    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<()>;

    /// Stores a new live session like [`Self::create_session`], and also enforces, in the same
    /// atomic write, that its owner (`session.owner`, required) has fewer than `live_quota` live
    /// sessions. Ending the session (`end_session`) frees the place.
    ///
    /// # Errors
    /// `InvalidInput` without an owner; `CapReached`; `QuotaExceeded` with
    /// [`QuotaKind::LiveSessions`] (nothing stored).
    async fn create_owned_session(
        &self,
        session: &PlaygroundSession,
        caps: SessionCaps,
        live_quota: u32,
    ) -> Result<SessionInsert>;

    /// Live sessions owned by `owner`.
    async fn count_live_sessions_of(&self, owner: &PrincipalId) -> Result<u32>;

    /// Takes one unit of a windowed quota atomically: the counter of (`principal`, `kind`, the
    /// window starting at `window_start`) grows by one if it is below `limit`. Returns the count
    /// after the increment. Old windows are never read again (backends may expire them).
    ///
    /// # Errors
    /// `QuotaExceeded` (the counter is unchanged; `retry_after_secs` is left `None`: the caller
    /// knows the window).
    async fn take_quota(
        &self,
        principal: &PrincipalId,
        kind: QuotaKind,
        window_start: Timestamp,
        limit: u32,
    ) -> Result<u32>;
}
