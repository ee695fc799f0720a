//! API keys and where they come from. A key never appears in `Debug` output or logs.

use std::fmt;

use async_trait::async_trait;

use crate::error::{BACKEND, OPERATION};

/// An OpenAI API key. `Debug` prints `ApiKey(***)`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; surrounding whitespace (e.g. a trailing newline from a file) is removed.
    ///
    /// # Errors
    /// `InvalidInput` when the key is empty or contains characters an HTTP header cannot carry.
    pub fn new(raw: impl Into<String>) -> toolshed_core::Result<Self> {
        let raw = raw.into();
        let key = raw.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
            // Never echo the value back: it is a secret.
            return Err(toolshed_core::Error::invalid(
                "openai_api_key",
                "must be non-empty visible ASCII",
            ));
        }
        Ok(Self(key.to_owned()))
    }

    /// The secret, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// A source of the API key, asked once per generation so rotated keys are picked up.
///
/// Implement it to read the key from a secret store (`toolshed-aws` can provide one on AWS
/// Secrets Manager); [`StaticKey`] and [`EnvKey`] cover the simple cases.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// Returns the current key.
    ///
    /// # Errors
    /// `PermissionDenied` when no key is available; `Backend` (retryable when transient) when
    /// the secret store fails. The error is passed to the caller unchanged.
    async fn api_key(&self) -> toolshed_core::Result<ApiKey>;
}

/// A fixed key.
#[derive(Debug, Clone)]
pub struct StaticKey(ApiKey);

impl StaticKey {
    /// Uses `key` for every call.
    pub fn new(key: ApiKey) -> Self {
        Self(key)
    }
}

#[async_trait]
impl KeyProvider for StaticKey {
    async fn api_key(&self) -> toolshed_core::Result<ApiKey> {
        Ok(self.0.clone())
    }
}

/// Reads an environment variable (default `OPENAI_API_KEY`) at every call.
#[derive(Debug, Clone)]
pub struct EnvKey {
    var: String,
}

impl EnvKey {
    /// Reads `var`.
    pub fn new(var: impl Into<String>) -> Self {
        Self { var: var.into() }
    }
}

impl Default for EnvKey {
    fn default() -> Self {
        Self::new(crate::config::ENV_API_KEY)
    }
}

#[async_trait]
impl KeyProvider for EnvKey {
    async fn api_key(&self) -> toolshed_core::Result<ApiKey> {
        match std::env::var(&self.var) {
            Ok(v) if !v.trim().is_empty() => ApiKey::new(v),
            _ => Err(toolshed_core::Error::PermissionDenied {
                backend: BACKEND,
                operation: OPERATION,
                detail: format!("{} is not set", self.var),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::new("sk-test-SECRET\n").unwrap();
        assert_eq!(key.expose(), "sk-test-SECRET");
        let shown = format!("{:?} {:?}", key, StaticKey::new(key.clone()));
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn rejects_empty_and_header_breaking_keys() {
        assert!(ApiKey::new("  ").is_err());
        assert!(ApiKey::new("sk-a b").is_err());
        assert!(ApiKey::new("sk-\u{e9}").is_err());
    }
}
