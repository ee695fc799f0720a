//! The reference [`ServerRepository`]: one mutex over maps, implementing every contract rule.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::clock::lock;
use crate::domain::{
    next_version, ApiKey, ApiKeyId, Instance, InstanceId, InstanceName, LiveSessionCounts,
    PlaygroundSession, PrincipalId, QuotaKind, Server, ServerId, SessionCaps, SessionId,
    SessionState, StopReason, Timestamp, VerificationFailure, VerificationLease, VerificationRun,
    WarmClaim,
};
use crate::error::{EntityKind, Error, Result};
use crate::ports::{
    newest_per_session, ServerRepository, SessionEnd, SessionInsert, SessionObservation,
    VerificationCompletion,
};

#[derive(Debug, Default)]
struct LeaseSlot {
    /// Highest token ever handed out for this server: tokens are never reused.
    last_token: u64,
    /// The lease, expired or not, until released.
    current: Option<VerificationLease>,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    servers: BTreeMap<ServerId, Server>,
    leases: HashMap<ServerId, LeaseSlot>,
    pub(super) sessions: BTreeMap<SessionId, PlaygroundSession>,
    /// Expiry index of live sessions: what `list_expired_sessions` reads, like a sparse GSI.
    pub(super) expiry_index: BTreeSet<(Timestamp, SessionId)>,
    pub(super) live_per_server: HashMap<ServerId, u32>,
    pub(super) live_total: u32,
    /// API keys and quota windows (see `api_keys.rs`).
    pub(super) principals: super::api_keys::PrincipalState,
}

impl Inner {
    fn server_mut(&mut self, id: &ServerId) -> Result<&mut Server> {
        self.servers
            .get_mut(id)
            .ok_or_else(|| Error::not_found(EntityKind::Server, id))
    }

    /// The stored lease `lease` is the holder of, or `LeaseLost`.
    fn current_lease_mut(&mut self, lease: &VerificationLease) -> Result<&mut VerificationLease> {
        let cur = self
            .leases
            .get_mut(&lease.server_id)
            .and_then(|s| s.current.as_mut())
            .ok_or_else(|| lease.lost())?;
        cur.ensure_token(lease)?;
        Ok(cur)
    }

    /// Ends a run: checks the token, applies `change` to the server, bumps its version and
    /// releases the lease, all under the one lock.
    fn finish_verification(
        &mut self,
        lease: &VerificationLease,
        change: impl FnOnce(&mut Server),
    ) -> Result<Server> {
        self.current_lease_mut(lease)?;
        let server = self.server_mut(&lease.server_id)?;
        change(server);
        server.version += 1;
        let out = server.clone();
        if let Some(slot) = self.leases.get_mut(&lease.server_id) {
            slot.current = None;
        }
        Ok(out)
    }

    fn mark_ended(&mut self, session: &PlaygroundSession) {
        self.expiry_index
            .remove(&(session.expires_at, session.id.clone()));
        if let Some(n) = self.live_per_server.get_mut(&session.server_id) {
            *n = n.saturating_sub(1);
        }
        self.live_total = self.live_total.saturating_sub(1);
    }
}

/// A [`ServerRepository`] in memory. Fit for tests and for single-process use without a database.
#[derive(Debug, Default)]
pub struct InMemoryServerRepository {
    pub(super) inner: Mutex<Inner>,
    instances: super::instances::InstanceTable,
}

impl InMemoryServerRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ServerRepository for InMemoryServerRepository {
    async fn insert_server(&self, server: &Server) -> Result<Server> {
        let mut inner = lock(&self.inner);
        if inner.servers.contains_key(&server.id) {
            return Err(Error::AlreadyExists {
                kind: EntityKind::Server,
                id: server.id.to_string(),
            });
        }
        let mut stored = server.clone();
        stored.version = 1;
        inner.servers.insert(stored.id.clone(), stored.clone());
        Ok(stored)
    }

    async fn get_server(&self, id: &ServerId) -> Result<Server> {
        lock(&self.inner)
            .servers
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(EntityKind::Server, id))
    }

    async fn list_servers(&self, after: Option<ServerId>, limit: usize) -> Result<Vec<Server>> {
        let inner = lock(&self.inner);
        Ok(inner
            .servers
            .values()
            .filter(|s| after.as_ref().is_none_or(|a| s.id > *a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn update_server(&self, server: &Server) -> Result<Server> {
        let mut inner = lock(&self.inner);
        let stored = inner.server_mut(&server.id)?;
        let mut next = server.clone();
        next.version = next_version(
            EntityKind::Server,
            server.id.as_str(),
            stored.version,
            server.version,
        )?;
        *stored = next.clone();
        Ok(next)
    }

    async fn acquire_lease(
        &self,
        server_id: &ServerId,
        holder: &str,
        run: Option<VerificationRun>,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<VerificationLease> {
        let mut inner = lock(&self.inner);
        if !inner.servers.contains_key(server_id) {
            return Err(Error::not_found(EntityKind::Server, server_id));
        }
        let slot = inner.leases.entry(server_id.clone()).or_default();
        let lease = VerificationLease::grant(
            server_id,
            slot.current.as_ref(),
            slot.last_token,
            holder,
            run,
            now,
            expires_at,
        )?;
        slot.last_token = lease.token;
        slot.current = Some(lease.clone());
        Ok(lease)
    }

    async fn get_lease(&self, server_id: &ServerId) -> Result<Option<VerificationLease>> {
        Ok(lock(&self.inner)
            .leases
            .get(server_id)
            .and_then(|s| s.current.clone()))
    }

    async fn list_stale_verifications(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<VerificationLease>> {
        let inner = lock(&self.inner);
        let mut stale: Vec<VerificationLease> = inner
            .leases
            .values()
            .filter_map(|slot| slot.current.as_ref())
            .filter(|l| l.is_expired(now))
            .cloned()
            .collect();
        stale.sort_by(|a, b| (a.expires_at, &a.server_id).cmp(&(b.expires_at, &b.server_id)));
        stale.truncate(limit);
        Ok(stale)
    }

    async fn save_progress(&self, lease: &VerificationLease) -> Result<VerificationLease> {
        let mut inner = lock(&self.inner);
        let cur = inner.current_lease_mut(lease)?;
        cur.heartbeat(lease)?;
        Ok(cur.clone())
    }

    async fn complete_verification(
        &self,
        lease: &VerificationLease,
        completion: &VerificationCompletion,
        now: Timestamp,
    ) -> Result<Server> {
        lock(&self.inner).finish_verification(lease, |s| s.record_verified(completion, now))
    }

    async fn fail_verification(
        &self,
        lease: &VerificationLease,
        failure: &VerificationFailure,
    ) -> Result<Server> {
        lock(&self.inner).finish_verification(lease, |s| s.record_failure(failure))
    }

    async fn create_session(
        &self,
        session: &PlaygroundSession,
        caps: SessionCaps,
    ) -> Result<SessionInsert> {
        let mut inner = lock(&self.inner);
        if let Some(existing) = inner.sessions.get(&session.id) {
            return Ok(SessionInsert::Existing(existing.clone()));
        }
        let counts = LiveSessionCounts {
            server: inner
                .live_per_server
                .get(&session.server_id)
                .copied()
                .unwrap_or(0),
            total: inner.live_total,
        };
        caps.admit(&session.server_id, counts)?;
        let mut stored = session.clone();
        stored.version = 1;
        if stored.state.is_live() {
            inner
                .expiry_index
                .insert((stored.expires_at, stored.id.clone()));
            *inner
                .live_per_server
                .entry(stored.server_id.clone())
                .or_default() += 1;
            inner.live_total += 1;
        }
        inner.sessions.insert(stored.id.clone(), stored.clone());
        Ok(SessionInsert::Created(stored))
    }

    async fn get_session(&self, id: &SessionId) -> Result<PlaygroundSession> {
        lock(&self.inner)
            .sessions
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(EntityKind::Session, id))
    }

    async fn get_sessions(&self, ids: &[SessionId]) -> Result<Vec<PlaygroundSession>> {
        let inner = lock(&self.inner);
        let wanted: std::collections::BTreeSet<&SessionId> = ids.iter().collect();
        Ok(wanted
            .into_iter()
            .filter_map(|id| inner.sessions.get(id).cloned())
            .collect())
    }

    async fn update_session(&self, session: &PlaygroundSession) -> Result<PlaygroundSession> {
        if session.state == SessionState::Stopped {
            return Err(Error::invalid(
                "session_state",
                "a session is ended with end_session, not update_session",
            ));
        }
        let mut inner = lock(&self.inner);
        let stored = inner
            .sessions
            .get(&session.id)
            .ok_or_else(|| Error::not_found(EntityKind::Session, &session.id))?;
        if !stored.state.is_live() {
            // An ended session is final: updating it is a conflict like a stale version.
            return Err(Error::Conflict {
                kind: EntityKind::Session,
                id: session.id.to_string(),
                expected: session.version,
            });
        }
        let old_key = (stored.expires_at, stored.id.clone());
        let mut next = session.clone();
        next.version = next_version(
            EntityKind::Session,
            session.id.as_str(),
            stored.version,
            session.version,
        )?;
        inner.expiry_index.remove(&old_key);
        inner
            .expiry_index
            .insert((next.expires_at, next.id.clone()));
        inner.sessions.insert(next.id.clone(), next.clone());
        Ok(next)
    }

    async fn record_task_observations(
        &self,
        observations: &[SessionObservation],
    ) -> Result<Vec<PlaygroundSession>> {
        let mut inner = lock(&self.inner);
        let mut changed = Vec::new();
        for o in newest_per_session(observations) {
            let Some(stored) = inner.sessions.get_mut(&o.session_id) else {
                continue;
            };
            if stored.task != o.task || !stored.observe(o.observation.clone()) {
                continue;
            }
            stored.version += 1;
            changed.push(stored.clone());
        }
        Ok(changed)
    }

    async fn end_session(
        &self,
        id: &SessionId,
        reason: StopReason,
        at: Timestamp,
    ) -> Result<SessionEnd> {
        let mut inner = lock(&self.inner);
        let stored = inner
            .sessions
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(EntityKind::Session, id))?;
        let mut ended = stored.clone();
        if !ended.end(reason, at) {
            return Ok(SessionEnd::AlreadyEnded(stored));
        }
        inner.mark_ended(&stored);
        ended.version += 1;
        inner.sessions.insert(ended.id.clone(), ended.clone());
        Ok(SessionEnd::Ended(ended))
    }

    async fn list_sessions_for_server(
        &self,
        server_id: &ServerId,
        live_only: bool,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let inner = lock(&self.inner);
        let mut out: Vec<PlaygroundSession> = inner
            .sessions
            .values()
            .filter(|s| &s.server_id == server_id && (!live_only || s.state.is_live()))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        out.truncate(limit);
        Ok(out)
    }

    async fn list_expired_sessions(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let inner = lock(&self.inner);
        Ok(inner
            .expiry_index
            .iter()
            .take_while(|(exp, _)| *exp <= now)
            .take(limit)
            .filter_map(|(_, id)| inner.sessions.get(id).cloned())
            .collect())
    }

    async fn list_live_sessions(
        &self,
        after: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let inner = lock(&self.inner);
        Ok(inner
            .sessions
            .values()
            .filter(|s| s.state.is_live() && after.as_ref().is_none_or(|a| s.id > *a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn count_live_sessions(&self, server_id: &ServerId) -> Result<LiveSessionCounts> {
        let inner = lock(&self.inner);
        Ok(LiveSessionCounts {
            server: inner.live_per_server.get(server_id).copied().unwrap_or(0),
            total: inner.live_total,
        })
    }

    async fn claim_warm_session(&self, claim: &WarmClaim) -> Result<Option<PlaygroundSession>> {
        self.claim_warm_session_impl(claim)
    }

    async fn list_warm_sessions(
        &self,
        server_id: &ServerId,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        Ok(self.list_warm_sessions_impl(server_id, limit))
    }

    async fn insert_instance(&self, instance: &Instance) -> Result<Instance> {
        self.instances.insert(instance)
    }

    async fn get_instance(&self, id: &InstanceId) -> Result<Instance> {
        self.instances.get(id)
    }

    async fn get_instance_by_name(&self, name: &InstanceName) -> Result<Instance> {
        self.instances.get_by_name(name)
    }

    async fn list_instances(
        &self,
        after: Option<InstanceName>,
        limit: usize,
    ) -> Result<Vec<Instance>> {
        Ok(self.instances.list(after, limit))
    }

    async fn update_instance(&self, instance: &Instance) -> Result<Instance> {
        self.instances.update(instance)
    }

    async fn delete_instance(&self, id: &InstanceId) -> Result<bool> {
        Ok(self.instances.delete(id))
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<ApiKey> {
        self.insert_api_key_impl(key)
    }

    async fn get_api_key(&self, id: &ApiKeyId) -> Result<ApiKey> {
        self.get_api_key_impl(id)
    }

    async fn list_api_keys(&self, owner: Option<PrincipalId>) -> Result<Vec<ApiKey>> {
        self.list_api_keys_impl(owner)
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<ApiKey> {
        self.revoke_api_key_impl(id, at)
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        self.touch_api_key_impl(id, at)
    }

    async fn create_owned_session(
        &self,
        session: &PlaygroundSession,
        caps: SessionCaps,
        live_quota: u32,
    ) -> Result<SessionInsert> {
        self.create_owned_session_impl(session, caps, live_quota)
    }

    async fn count_live_sessions_of(&self, owner: &PrincipalId) -> Result<u32> {
        self.count_live_sessions_of_impl(owner)
    }

    async fn take_quota(
        &self,
        principal: &PrincipalId,
        kind: QuotaKind,
        window_start: Timestamp,
        limit: u32,
    ) -> Result<u32> {
        self.take_quota_impl(principal, kind, window_start, limit)
    }
}
