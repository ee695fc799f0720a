//! The in-memory repository's API keys and per-principal quotas, under the same mutex as the
//! sessions so the owner's live-session quota is checked atomically with the insert.

use std::collections::{BTreeMap, HashMap};

use super::clock::lock;
use super::repository::{InMemoryServerRepository, Inner};
use crate::domain::{
    ApiKey, ApiKeyId, PlaygroundSession, PrincipalId, QuotaKind, SessionCaps, Timestamp,
};
use crate::error::{CapScope, EntityKind, Error, Result};
use crate::ports::SessionInsert;

/// API keys and quota windows.
#[derive(Debug, Default)]
pub(super) struct PrincipalState {
    keys: BTreeMap<ApiKeyId, ApiKey>,
    windows: HashMap<(PrincipalId, QuotaKind, Timestamp), u32>,
}

pub(super) fn live_of(inner: &Inner, owner: &PrincipalId) -> u32 {
    let n = inner
        .sessions
        .values()
        .filter(|s| s.state.is_live() && s.owner.as_ref() == Some(owner))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl InMemoryServerRepository {
    pub(super) fn insert_api_key_impl(&self, key: &ApiKey) -> Result<ApiKey> {
        let mut inner = lock(&self.inner);
        if inner.principals.keys.contains_key(&key.id) {
            return Err(Error::AlreadyExists {
                kind: EntityKind::ApiKey,
                id: key.id.to_string(),
            });
        }
        inner.principals.keys.insert(key.id.clone(), key.clone());
        Ok(key.clone())
    }

    pub(super) fn get_api_key_impl(&self, id: &ApiKeyId) -> Result<ApiKey> {
        lock(&self.inner)
            .principals
            .keys
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(EntityKind::ApiKey, id))
    }

    pub(super) fn list_api_keys_impl(&self, owner: Option<PrincipalId>) -> Result<Vec<ApiKey>> {
        Ok(lock(&self.inner)
            .principals
            .keys
            .values()
            .filter(|k| owner.as_ref().is_none_or(|o| &k.owner == o))
            .cloned()
            .collect())
    }

    pub(super) fn revoke_api_key_impl(&self, id: &ApiKeyId, at: Timestamp) -> Result<ApiKey> {
        let mut inner = lock(&self.inner);
        let key = inner
            .principals
            .keys
            .get_mut(id)
            .ok_or_else(|| Error::not_found(EntityKind::ApiKey, id))?;
        key.revoked_at.get_or_insert(at);
        Ok(key.clone())
    }

    pub(super) fn touch_api_key_impl(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        let mut inner = lock(&self.inner);
        let key = inner
            .principals
            .keys
            .get_mut(id)
            .ok_or_else(|| Error::not_found(EntityKind::ApiKey, id))?;
        if key.last_used_at.is_none_or(|last| last < at) {
            key.last_used_at = Some(at);
        }
        Ok(())
    }

    pub(super) fn create_owned_session_impl(
        &self,
        session: &PlaygroundSession,
        caps: SessionCaps,
        live_quota: u32,
    ) -> Result<SessionInsert> {
        let owner = session
            .owner
            .clone()
            .ok_or_else(|| Error::invalid("owner", "an owned session needs an owner"))?;
        let mut inner = lock(&self.inner);
        if let Some(existing) = inner.sessions.get(&session.id) {
            return Ok(SessionInsert::Existing(existing.clone()));
        }
        if live_of(&inner, &owner) >= live_quota {
            return Err(Error::QuotaExceeded {
                principal: owner.to_string(),
                quota: QuotaKind::LiveSessions,
                limit: live_quota,
                retry_after_secs: None,
            });
        }
        let per_server = inner
            .live_per_server
            .get(&session.server_id)
            .copied()
            .unwrap_or(0);
        if per_server >= caps.per_server {
            return Err(Error::CapReached {
                scope: CapScope::PerServer,
                limit: caps.per_server,
                server_id: session.server_id.clone(),
            });
        }
        if inner.live_total >= caps.total {
            return Err(Error::CapReached {
                scope: CapScope::Total,
                limit: caps.total,
                server_id: session.server_id.clone(),
            });
        }
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

    pub(super) fn count_live_sessions_of_impl(&self, owner: &PrincipalId) -> Result<u32> {
        Ok(live_of(&lock(&self.inner), owner))
    }

    pub(super) fn take_quota_impl(
        &self,
        principal: &PrincipalId,
        kind: QuotaKind,
        window_start: Timestamp,
        limit: u32,
    ) -> Result<u32> {
        let mut inner = lock(&self.inner);
        let count = inner
            .principals
            .windows
            .entry((principal.clone(), kind, window_start))
            .or_default();
        if *count >= limit {
            return Err(Error::QuotaExceeded {
                principal: principal.to_string(),
                quota: kind,
                limit,
                retry_after_secs: None,
            });
        }
        *count += 1;
        Ok(*count)
    }
}
