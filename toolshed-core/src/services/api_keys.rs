//! API keys: create (the secret is returned once), list, revoke. Operator use cases (the CLI on
//! the local state, or an admin tool); authentication itself reads keys in the HTTP layer.

use tracing::info;

use super::Toolshed;
use crate::domain::{ApiKey, ApiKeyId, ApiKeySecret, NewApiKey, PrincipalId};
use crate::error::Result;

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
}
