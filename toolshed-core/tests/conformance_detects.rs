//! The conformance suite can fail: repositories that break one rule each are caught.

use std::sync::Arc;

use async_trait::async_trait;
use toolshed_core::domain::{
    ApiKey, ApiKeyId, Instance, InstanceId, InstanceName, LiveSessionCounts, PlaygroundSession,
    PrincipalId, QuotaKind, Server, ServerId, SessionCaps, SessionId, StopReason, Timestamp,
    VerificationFailure, VerificationLease, VerificationRun, WarmClaim,
};
use toolshed_core::ports::{
    ServerRepository, SessionEnd, SessionInsert, SessionObservation, VerificationCompletion,
};
use toolshed_core::testing::{conformance, InMemoryServerRepository};
use toolshed_core::Result;

/// Which rule the wrapper breaks.
#[derive(Debug, Clone, Copy)]
enum Bug {
    IgnoresCaps,
    NoFencing,
    ExpiredListIncludesEnded,
    StaleListIncludesLive,
    InstanceLastWriterWins,
    IgnoresOwnerQuota,
    RevocationIgnored,
    /// Reads only the first batch of ids, as if the adapter forgot to split the request.
    BatchReadUnsplit,
    /// Stores every observation in turn, older ones over newer.
    ObservationsIgnoreOrder,
    /// Claims a warm session by a read, then an unconditional write (last writer wins).
    WarmClaimNotConditional,
}

#[derive(Debug)]
struct Broken {
    inner: InMemoryServerRepository,
    bug: Bug,
}

#[async_trait]
impl ServerRepository for Broken {
    async fn insert_server(&self, s: &Server) -> Result<Server> {
        self.inner.insert_server(s).await
    }
    async fn get_server(&self, id: &ServerId) -> Result<Server> {
        self.inner.get_server(id).await
    }
    async fn list_servers(&self, after: Option<ServerId>, limit: usize) -> Result<Vec<Server>> {
        self.inner.list_servers(after, limit).await
    }
    async fn update_server(&self, s: &Server) -> Result<Server> {
        self.inner.update_server(s).await
    }
    async fn acquire_lease(
        &self,
        id: &ServerId,
        holder: &str,
        run: Option<VerificationRun>,
        now: Timestamp,
        exp: Timestamp,
    ) -> Result<VerificationLease> {
        self.inner.acquire_lease(id, holder, run, now, exp).await
    }
    async fn get_lease(&self, id: &ServerId) -> Result<Option<VerificationLease>> {
        self.inner.get_lease(id).await
    }
    async fn list_stale_verifications(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<VerificationLease>> {
        if matches!(self.bug, Bug::StaleListIncludesLive) {
            // Lists every held lease, as if the expiry were ignored.
            let far = now + chrono::Duration::days(365 * 100);
            return self.inner.list_stale_verifications(far, limit).await;
        }
        self.inner.list_stale_verifications(now, limit).await
    }
    async fn save_progress(&self, lease: &VerificationLease) -> Result<VerificationLease> {
        if matches!(self.bug, Bug::NoFencing) {
            // Writes with whatever token is current: a paused worker clobbers its successor.
            if let Some(mut cur) = self.inner.get_lease(&lease.server_id).await? {
                cur.run = lease.run.clone();
                return self.inner.save_progress(&cur).await;
            }
        }
        self.inner.save_progress(lease).await
    }
    async fn complete_verification(
        &self,
        lease: &VerificationLease,
        c: &VerificationCompletion,
        now: Timestamp,
    ) -> Result<Server> {
        self.inner.complete_verification(lease, c, now).await
    }
    async fn fail_verification(
        &self,
        lease: &VerificationLease,
        f: &VerificationFailure,
    ) -> Result<Server> {
        self.inner.fail_verification(lease, f).await
    }
    async fn create_session(
        &self,
        s: &PlaygroundSession,
        caps: SessionCaps,
    ) -> Result<SessionInsert> {
        let caps = match self.bug {
            Bug::IgnoresCaps => SessionCaps {
                per_server: u32::MAX,
                total: u32::MAX,
            },
            _ => caps,
        };
        self.inner.create_session(s, caps).await
    }
    async fn get_session(&self, id: &SessionId) -> Result<PlaygroundSession> {
        self.inner.get_session(id).await
    }
    async fn get_sessions(&self, ids: &[SessionId]) -> Result<Vec<PlaygroundSession>> {
        if matches!(self.bug, Bug::BatchReadUnsplit) {
            let first = &ids[..ids.len().min(toolshed_core::ports::SESSION_BATCH)];
            return self.inner.get_sessions(first).await;
        }
        self.inner.get_sessions(ids).await
    }
    async fn update_session(&self, s: &PlaygroundSession) -> Result<PlaygroundSession> {
        self.inner.update_session(s).await
    }
    async fn record_task_observations(
        &self,
        observations: &[SessionObservation],
    ) -> Result<Vec<PlaygroundSession>> {
        if matches!(self.bug, Bug::ObservationsIgnoreOrder) {
            let mut out = Vec::new();
            for o in observations {
                let Ok(mut s) = self.inner.get_session(&o.session_id).await else {
                    continue;
                };
                if s.state.is_live() && s.task == o.task {
                    s.observed = Some(o.observation.clone());
                    out.push(self.inner.update_session(&s).await?);
                }
            }
            return Ok(out);
        }
        self.inner.record_task_observations(observations).await
    }
    async fn end_session(
        &self,
        id: &SessionId,
        r: StopReason,
        at: Timestamp,
    ) -> Result<SessionEnd> {
        self.inner.end_session(id, r, at).await
    }
    async fn list_sessions_for_server(
        &self,
        id: &ServerId,
        live_only: bool,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        self.inner
            .list_sessions_for_server(id, live_only, limit)
            .await
    }
    async fn list_expired_sessions(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let mut v = self.inner.list_expired_sessions(now, limit).await?;
        if matches!(self.bug, Bug::ExpiredListIncludesEnded) {
            // Scans every session of every server it knows, ended ones included.
            let mut ids = std::collections::BTreeSet::new();
            for s in &v {
                ids.insert(s.server_id.clone());
            }
            for id in ids {
                for s in self.inner.list_sessions_for_server(&id, false, 100).await? {
                    if s.expires_at <= now && !v.iter().any(|x| x.id == s.id) {
                        v.push(s);
                    }
                }
            }
            v.sort_by_key(|s| s.expires_at);
        }
        Ok(v)
    }
    async fn list_live_sessions(
        &self,
        after: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        self.inner.list_live_sessions(after, limit).await
    }
    async fn count_live_sessions(&self, id: &ServerId) -> Result<LiveSessionCounts> {
        self.inner.count_live_sessions(id).await
    }
    async fn insert_instance(&self, i: &Instance) -> Result<Instance> {
        self.inner.insert_instance(i).await
    }
    async fn get_instance(&self, id: &InstanceId) -> Result<Instance> {
        self.inner.get_instance(id).await
    }
    async fn get_instance_by_name(&self, name: &InstanceName) -> Result<Instance> {
        self.inner.get_instance_by_name(name).await
    }
    async fn list_instances(
        &self,
        after: Option<InstanceName>,
        limit: usize,
    ) -> Result<Vec<Instance>> {
        self.inner.list_instances(after, limit).await
    }
    async fn update_instance(&self, i: &Instance) -> Result<Instance> {
        if matches!(self.bug, Bug::InstanceLastWriterWins) {
            // Overwrites whatever is stored: a concurrent stop and restart lose each other.
            let mut i = i.clone();
            i.version = self.inner.get_instance(&i.id).await?.version;
            return self.inner.update_instance(&i).await;
        }
        self.inner.update_instance(i).await
    }
    async fn delete_instance(&self, id: &InstanceId) -> Result<bool> {
        self.inner.delete_instance(id).await
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<ApiKey> {
        self.inner.insert_api_key(key).await
    }
    async fn get_api_key(&self, id: &ApiKeyId) -> Result<ApiKey> {
        self.inner.get_api_key(id).await
    }
    async fn list_api_keys(&self, owner: Option<PrincipalId>) -> Result<Vec<ApiKey>> {
        self.inner.list_api_keys(owner).await
    }
    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<ApiKey> {
        if matches!(self.bug, Bug::RevocationIgnored) {
            // Answers as if revoked, stores nothing.
            let mut key = self.inner.get_api_key(id).await?;
            key.revoked_at = Some(at);
            return Ok(key);
        }
        self.inner.revoke_api_key(id, at).await
    }
    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        self.inner.touch_api_key(id, at).await
    }
    async fn create_owned_session(
        &self,
        s: &PlaygroundSession,
        caps: SessionCaps,
        live_quota: u32,
    ) -> Result<SessionInsert> {
        let quota = if matches!(self.bug, Bug::IgnoresOwnerQuota) {
            u32::MAX
        } else {
            live_quota
        };
        self.inner.create_owned_session(s, caps, quota).await
    }
    async fn count_live_sessions_of(&self, owner: &PrincipalId) -> Result<u32> {
        self.inner.count_live_sessions_of(owner).await
    }
    async fn claim_warm_session(&self, claim: &WarmClaim) -> Result<Option<PlaygroundSession>> {
        if !matches!(self.bug, Bug::WarmClaimNotConditional) {
            return self.inner.claim_warm_session(claim).await;
        }
        let candidate = self
            .inner
            .list_warm_sessions(&claim.server_id, 100)
            .await?
            .into_iter()
            .find(|s| s.is_claimable_by(claim));
        let Some(candidate) = candidate else {
            return Ok(None);
        };
        // Another claimer gets to read the same candidate meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut current = self.inner.get_session(&candidate.id).await?;
        current.apply_claim(claim);
        Ok(Some(self.inner.update_session(&current).await?))
    }
    async fn list_warm_sessions(
        &self,
        id: &ServerId,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        self.inner.list_warm_sessions(id, limit).await
    }
    async fn take_quota(
        &self,
        principal: &PrincipalId,
        kind: QuotaKind,
        window_start: Timestamp,
        limit: u32,
    ) -> Result<u32> {
        self.inner
            .take_quota(principal, kind, window_start, limit)
            .await
    }
}

fn broken(bug: Bug) -> Arc<dyn ServerRepository> {
    Arc::new(Broken {
        inner: InMemoryServerRepository::new(),
        bug,
    })
}

#[tokio::test]
#[should_panic(expected = "conformance: create_session over the per-server cap: expected an error")]
async fn catches_a_repository_that_ignores_caps() {
    conformance::check_session_caps(broken(Bug::IgnoresCaps)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "conformance: 20 concurrent creates with per_server=3")]
async fn catches_a_repository_that_ignores_caps_under_concurrency() {
    conformance::check_concurrent_session_caps(broken(Bug::IgnoresCaps)).await;
}

#[tokio::test]
#[should_panic(expected = "conformance: save_progress with a stale token: expected an error")]
async fn catches_a_repository_without_fencing() {
    conformance::check_lease_takeover(broken(Bug::NoFencing)).await;
}

#[tokio::test]
#[should_panic(expected = "conformance: list_expired_sessions returned ended session")]
async fn catches_an_expiry_listing_with_ended_sessions() {
    conformance::check_list_expired_sessions(broken(Bug::ExpiredListIncludesEnded)).await;
}

#[tokio::test]
#[should_panic(
    expected = "conformance: list_stale_verifications must return only leases expired at now"
)]
async fn catches_a_stale_listing_with_live_leases() {
    conformance::check_list_stale_verifications(broken(Bug::StaleListIncludesLive)).await;
}

#[tokio::test]
#[should_panic(expected = "conformance: get_sessions missed session")]
async fn catches_a_batch_read_that_reads_only_the_first_batch() {
    conformance::check_get_sessions(broken(Bug::BatchReadUnsplit)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "conformance: 8 concurrent claims on 3 warm sessions")]
async fn catches_a_warm_claim_that_is_not_one_conditional_write() {
    conformance::check_concurrent_warm_claims(broken(Bug::WarmClaimNotConditional)).await;
}

#[tokio::test]
#[should_panic(expected = "conformance: record_task_observations must change only")]
async fn catches_observations_stored_out_of_order() {
    conformance::check_record_task_observations(broken(Bug::ObservationsIgnoreOrder)).await;
}

#[tokio::test]
async fn the_unbroken_wrapper_passes() {
    conformance::check_concurrent_warm_claims(broken(Bug::NoFencing)).await;
    conformance::check_warm_claim(broken(Bug::NoFencing)).await;
    // The same wrapper, with a bug that only matters elsewhere, passes the checks above.
    conformance::check_session_caps(broken(Bug::NoFencing)).await;
    conformance::check_lease_takeover(broken(Bug::IgnoresCaps)).await;
    conformance::check_list_expired_sessions(broken(Bug::NoFencing)).await;
    conformance::check_list_stale_verifications(broken(Bug::IgnoresCaps)).await;
    conformance::check_get_sessions(broken(Bug::NoFencing)).await;
    conformance::check_record_task_observations(broken(Bug::NoFencing)).await;
}

#[tokio::test]
#[should_panic(expected = "conformance: update_instance with a stale version: expected an error")]
async fn catches_instance_updates_without_version_check() {
    conformance::check_update_instance(broken(Bug::InstanceLastWriterWins)).await;
}

#[tokio::test]
#[should_panic(expected = "conformance")]
async fn a_repository_ignoring_the_owner_quota_is_caught() {
    conformance::check_concurrent_owner_quota(broken(Bug::IgnoresOwnerQuota)).await;
}

#[tokio::test]
#[should_panic(expected = "conformance")]
async fn a_repository_that_does_not_store_revocations_is_caught() {
    conformance::check_api_keys(broken(Bug::RevocationIgnored)).await;
}
