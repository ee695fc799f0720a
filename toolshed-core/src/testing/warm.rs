//! Warm-pool claims of the in-memory repository: the claim is decided and written under the one
//! lock, so two concurrent claims never take the same session.

use super::api_keys::live_of;
use super::clock::lock;
use super::InMemoryServerRepository;
use crate::domain::{PlaygroundSession, QuotaKind, ServerId, WarmClaim};
use crate::error::{Error, Result};

impl InMemoryServerRepository {
    pub(super) fn claim_warm_session_impl(
        &self,
        claim: &WarmClaim,
    ) -> Result<Option<PlaygroundSession>> {
        let mut inner = lock(&self.inner);
        if let Some(quota) = claim.live_quota {
            let owner = claim
                .owner
                .as_ref()
                .ok_or_else(|| Error::invalid("owner", "a live-session quota needs an owner"))?;
            if live_of(&inner, owner) >= quota {
                return Err(Error::QuotaExceeded {
                    principal: owner.to_string(),
                    quota: QuotaKind::LiveSessions,
                    limit: quota,
                    retry_after_secs: None,
                });
            }
        }
        // The oldest ready one first: it has waited longest for its idle deadline.
        let Some(id) = inner
            .sessions
            .values()
            .filter(|s| s.is_claimable_by(claim))
            .min_by(|a, b| a.ready_at.cmp(&b.ready_at).then_with(|| a.id.cmp(&b.id)))
            .map(|s| s.id.clone())
        else {
            return Ok(None);
        };
        let Some(session) = inner.sessions.get_mut(&id) else {
            return Ok(None);
        };
        let old_expiry = session.expires_at;
        session.apply_claim(claim);
        session.version += 1;
        let claimed = session.clone();
        inner.expiry_index.remove(&(old_expiry, id.clone()));
        inner.expiry_index.insert((claimed.expires_at, id));
        Ok(Some(claimed))
    }

    pub(super) fn list_warm_sessions_impl(
        &self,
        server_id: &ServerId,
        limit: usize,
    ) -> Vec<PlaygroundSession> {
        let inner = lock(&self.inner);
        let mut out: Vec<PlaygroundSession> = inner
            .sessions
            .values()
            .filter(|s| &s.server_id == server_id && s.warm && s.state.is_live())
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out.truncate(limit);
        out
    }
}
