//! [`SecretStore`] in process memory: values live as long as the process (tests, and a
//! composition that keeps nothing between runs).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::InstanceEnv;
use crate::error::Result;
use crate::ports::{SecretOwner, SecretStore};

/// Secret values in a map, lost when the process ends.
#[derive(Debug, Default)]
pub struct InMemorySecretStore {
    values: Mutex<BTreeMap<SecretOwner, InstanceEnv>>,
}

impl InMemorySecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many owners have values (tests check deletions with it).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no owner has values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SecretOwner, InstanceEnv>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SecretStore for InMemorySecretStore {
    async fn put(&self, owner: &SecretOwner, values: &InstanceEnv) -> Result<()> {
        self.lock().insert(owner.clone(), values.clone());
        Ok(())
    }

    async fn get(&self, owner: &SecretOwner) -> Result<Option<InstanceEnv>> {
        Ok(self.lock().get(owner).cloned())
    }

    async fn delete(&self, owner: &SecretOwner) -> Result<()> {
        self.lock().remove(owner);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms() {
        let store = InMemorySecretStore::new();
        crate::testing::conformance::check_secret_store(&store).await;
        assert!(store.is_empty());
    }
}
