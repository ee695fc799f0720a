//! API keys: create (the secret is returned once), list, revoke — operator use cases (the CLI on
//! the local state, or an admin tool) — and the check of a presented key, which an HTTP layer
//! calls on every request.

use tracing::{info, warn};

use super::{Caller, Toolshed};
use crate::domain::{
    ApiKey, ApiKeyId, ApiKeySecret, NewApiKey, PresentedApiKey, Principal, PrincipalId, Scope,
};
use crate::error::Result;

/// What a presented API key proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyCheck {
    /// A live key whose secret matches: the caller is its principal.
    Valid(Principal),
    /// No key has this id (never issued, or another deployment's).
    Unknown,
    /// The key exists but the secret does not match, or the key is revoked.
    Rejected,
}

impl Toolshed {
    /// Creates a key: 256 random bits, stored only as a hash. The returned secret is the only
    /// copy: show it once.
    ///
    /// # Errors
    /// `InvalidInput` (name, scopes); repository errors.
    pub async fn create_api_key(&self, new: NewApiKey) -> Result<(ApiKey, ApiKeySecret)> {
        let (key, secret) = ApiKey::generate(new, self.ports.clock.now())?;
        let stored = self.ports.repository.insert_api_key(&key).await?;
        info!(key_id = %stored.id, owner = %stored.owner, "API key created");
        Ok((stored, secret))
    }

    /// Keys by id, revoked ones included; only `owner`'s when given.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn list_api_keys(&self, owner: Option<PrincipalId>) -> Result<Vec<ApiKey>> {
        self.ports.repository.list_api_keys(owner).await
    }

    /// Revokes a key (idempotent). It fails the very next authentication.
    ///
    /// # Errors
    /// `NotFound`; repository errors.
    pub async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<ApiKey> {
        let key = self
            .ports
            .repository
            .revoke_api_key(id, self.ports.clock.now())
            .await?;
        info!(key_id = %id, "API key revoked");
        Ok(key)
    }

    /// Checks a presented key: the principal when the key is live and its secret matches.
    /// Records the key's use (at most once a minute, off the caller's path: a lost record only
    /// makes `last_used_at` older).
    ///
    /// # Errors
    /// Repository errors other than not-found (the key store is unreachable: retry).
    pub async fn check_api_key(&self, presented: &PresentedApiKey) -> Result<ApiKeyCheck> {
        let repo = &self.ports.repository;
        let key = match repo.get_api_key(&presented.id).await {
            Ok(k) => k,
            Err(e) if e.is_not_found() => return Ok(ApiKeyCheck::Unknown),
            Err(e) => return Err(e),
        };
        if !key.verify(presented) {
            return Ok(ApiKeyCheck::Rejected);
        }
        let now = self.ports.clock.now();
        if key.needs_touch(now) {
            let repo = repo.clone();
            let id = key.id.clone();
            tokio::spawn(async move {
                if let Err(e) = repo.touch_api_key(&id, now).await {
                    warn!(key_id = %id, error = %e, "could not record the API key's use");
                }
            });
        }
        Ok(ApiKeyCheck::Valid(key.principal()))
    }

    /// Creates a key on behalf of `caller` (scope `admin`): key management over an API, on any
    /// backend.
    ///
    /// # Errors
    /// `Forbidden`; see [`Self::create_api_key`].
    pub async fn create_api_key_as(
        &self,
        caller: &Caller,
        new: NewApiKey,
    ) -> Result<(ApiKey, ApiKeySecret)> {
        caller.principal.require(Scope::Admin)?;
        self.create_api_key(new).await
    }

    /// Lists keys on behalf of `caller` (scope `admin`).
    ///
    /// # Errors
    /// `Forbidden`; repository errors.
    pub async fn list_api_keys_as(
        &self,
        caller: &Caller,
        owner: Option<PrincipalId>,
    ) -> Result<Vec<ApiKey>> {
        caller.principal.require(Scope::Admin)?;
        self.list_api_keys(owner).await
    }

    /// Revokes a key on behalf of `caller` (scope `admin`).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; repository errors.
    pub async fn revoke_api_key_as(&self, caller: &Caller, id: &ApiKeyId) -> Result<ApiKey> {
        caller.principal.require(Scope::Admin)?;
        self.revoke_api_key(id).await
    }
}
