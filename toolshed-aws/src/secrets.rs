//! Secrets Manager: a secret read by ARN, for values the service itself needs (the OpenAI API
//! key) — never written to the environment of a task definition or to a log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::Client;
use tokio::sync::Mutex;
use toolshed_core::domain::SecretValue;
use toolshed_core::{Error, Result};

use crate::error::{sdk_error, unexpected};

/// How long a read value is reused before the secret is read again (rotation is picked up
/// within this time; one `GetSecretValue` call per interval at most).
pub const DEFAULT_SECRET_MAX_AGE: Duration = Duration::from_secs(300);

/// One secret, read by ARN (or name) and cached for [`DEFAULT_SECRET_MAX_AGE`].
///
/// `Debug` shows neither the value nor the ARN.
#[derive(Clone)]
pub struct SecretsManagerSecret {
    client: Client,
    id: String,
    max_age: Duration,
    cached: Arc<Mutex<Option<(SecretValue, Instant)>>>,
}

impl std::fmt::Debug for SecretsManagerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerSecret")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerSecret {
    /// The secret `id` (an ARN or a name) on `client`.
    pub fn new(client: Client, id: impl Into<String>) -> Self {
        Self {
            client,
            id: id.into(),
            max_age: DEFAULT_SECRET_MAX_AGE,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// Reuses a read value for `max_age` (zero: read at every call).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The secret's current string value.
    ///
    /// # Errors
    /// `NotFound`-like backend error (not retryable) when the secret or its value does not
    /// exist; `PermissionDenied` without `secretsmanager:GetSecretValue`; a retryable backend
    /// error when Secrets Manager is unavailable. No error carries the value.
    pub async fn value(&self) -> Result<SecretValue> {
        let mut cached = self.cached.lock().await;
        if let Some((value, at)) = cached.as_ref() {
            if at.elapsed() < self.max_age {
                return Ok(value.clone());
            }
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.id)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(GetSecretValueError::ResourceNotFoundException(_)) => unexpected(
                    "secretsmanager",
                    "GetSecretValue",
                    None,
                    "the secret does not exist or has no current value",
                ),
                _ => sdk_error("secretsmanager", "GetSecretValue", None, e),
            })?;
        let raw = out.secret_string.ok_or_else(|| {
            unexpected(
                "secretsmanager",
                "GetSecretValue",
                None,
                "the secret holds binary data, not a string",
            )
        })?;
        let value = SecretValue::new(raw).map_err(|_| {
            Error::invalid("secret", "the secret's value is too long or contains NUL")
        })?;
        *cached = Some((value.clone(), Instant::now()));
        Ok(value)
    }
}
