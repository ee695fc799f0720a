//! An in-memory docs store.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::clock::lock;
use crate::error::{Error, Result};
use crate::ports::{DocsKey, DocsStore};

#[derive(Debug, Default)]
struct Inner {
    docs: BTreeMap<String, String>,
    fail_puts: Option<String>,
}

/// A [`DocsStore`] over a map; puts can be made to fail.
#[derive(Debug, Default)]
pub struct InMemoryDocsStore {
    inner: Mutex<Inner>,
}

impl InMemoryDocsStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every following `put_docs` fail with a retryable `Backend` error (or succeed again
    /// with `None`).
    pub fn fail_puts(&self, reason: Option<&str>) {
        lock(&self.inner).fail_puts = reason.map(str::to_owned);
    }

    /// Every stored key.
    pub fn keys(&self) -> Vec<String> {
        lock(&self.inner).docs.keys().cloned().collect()
    }

    /// A stored document.
    pub fn get(&self, key: &str) -> Option<String> {
        lock(&self.inner).docs.get(key).cloned()
    }
}

#[async_trait]
impl DocsStore for InMemoryDocsStore {
    async fn put_docs(&self, key: &DocsKey, markdown: &str) -> Result<()> {
        let mut inner = lock(&self.inner);
        if let Some(reason) = &inner.fail_puts {
            return Err(Error::backend(
                "memory-docs",
                "PutDocs",
                Some(key.to_string()),
                true,
                reason.clone(),
            ));
        }
        inner.docs.insert(key.to_string(), markdown.to_owned());
        Ok(())
    }

    async fn get_docs(&self, key: &DocsKey) -> Result<Option<String>> {
        Ok(lock(&self.inner).docs.get(key.as_str()).cloned())
    }
}
