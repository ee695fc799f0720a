//! One chat completion over HTTP, with retries of transient failures.

use std::sync::Arc;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::Settings;
use crate::error::OpenAiError;
use crate::key::ApiKey;
use crate::retry::parse_retry_after;

/// Longest error message kept from an error response.
const MAX_ERROR_MESSAGE: usize = 500;

/// The parts of a chat completion this crate reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatCompletion {
    /// The model that answered, as the API reports it.
    #[serde(default)]
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Choice {
    pub message: Message,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct Usage {
    #[serde(default)]
    pub prompt_tokens: u32,
    #[serde(default)]
    pub completion_tokens: u32,
}

/// Sends chat completion requests to `{base_url}/chat/completions`.
#[derive(Debug, Clone)]
pub(crate) struct ChatClient {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    settings: Arc<Settings>,
}

impl ChatClient {
    pub(crate) fn new(http: reqwest::Client, settings: Arc<Settings>) -> Self {
        // The base URL was validated to end with '/', so joining keeps its path (`/v1/`).
        let endpoint = settings
            .base_url
            .join("chat/completions")
            .unwrap_or_else(|_| settings.base_url.clone());
        Self {
            http,
            endpoint,
            settings,
        }
    }

    /// Sends `body`, retrying 429 / 5xx / transport failures per the retry policy. A wait that
    /// would end after `deadline` is not started: the last error is returned instead.
    pub(crate) async fn complete(
        &self,
        key: &ApiKey,
        body: &Value,
        deadline: Option<Instant>,
    ) -> Result<ChatCompletion, OpenAiError> {
        let policy = &self.settings.retry;
        let mut retry = 0;
        loop {
            let err = match self.send_once(key, body).await {
                Ok(completion) => return Ok(completion),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            if retry >= policy.max_retries {
                return Err(if retry == 0 {
                    err
                } else {
                    OpenAiError::RetriesExhausted {
                        attempts: retry + 1,
                        last: Box::new(err),
                    }
                });
            }
            let asked = err.retry_after();
            if asked.is_some_and(|a| a > policy.max_retry_after) {
                tracing::warn!(
                    retry_after_ms = asked.map(|a| a.as_millis()),
                    "OpenAI asked to wait longer than the retry policy allows; giving up"
                );
                return Err(err);
            }
            let wait = policy.delay(retry, asked);
            if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                tracing::warn!(
                    wait_ms = wait.as_millis(),
                    "no time left before the deadline to retry OpenAI"
                );
                return Err(err);
            }
            tracing::info!(
                attempt = retry + 1,
                wait_ms = wait.as_millis(),
                error = %err,
                "transient OpenAI failure; retrying"
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    async fn send_once(&self, key: &ApiKey, body: &Value) -> Result<ChatCompletion, OpenAiError> {
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                OpenAiError::InvalidConfig {
                    field: "api_key",
                    reason: "cannot be sent in a header".to_owned(),
                }
            })?;
        // Keeps the header out of reqwest's and hyper's Debug output.
        auth.set_sensitive(true);
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .header(AUTHORIZATION, auth)
            .json(body);
        for (name, value) in &self.settings.extra_headers {
            request = request.header(name, value);
        }
        if let Some(timeout) = self.settings.request_timeout {
            request = request.timeout(timeout);
        }
        tracing::debug!(endpoint = %self.endpoint, "sending chat completion request");
        let response = request.send().await.map_err(OpenAiError::Transport)?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers(), chrono::Utc::now());
        let bytes = response.bytes().await.map_err(OpenAiError::Transport)?;
        tracing::debug!(
            status = status.as_u16(),
            bytes = bytes.len(),
            "chat completion response"
        );
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| OpenAiError::InvalidResponse(e.to_string()));
        }
        let (message, code) = error_details(&bytes, key);
        let status = status.as_u16();
        if status == 401 || status == 403 {
            return Err(OpenAiError::Unauthorized { status, message });
        }
        // An exhausted quota answers 429 too, but waiting will not refill it.
        let transient = (status == 429 && code.as_deref() != Some("insufficient_quota"))
            || status == 408
            || (500..=599).contains(&status);
        Err(OpenAiError::Status {
            status,
            message,
            transient,
            retry_after,
        })
    }
}

/// The API's error message and code, bounded, with the key redacted should it be echoed.
fn error_details(body: &[u8], key: &ApiKey) -> (String, Option<String>) {
    #[derive(Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        code: Option<Value>,
    }
    let (message, code) = match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => (
            env.error.message.unwrap_or_default(),
            env.error.code.and_then(|c| c.as_str().map(str::to_owned)),
        ),
        Err(_) => (String::from_utf8_lossy(body).into_owned(), None),
    };
    let message = message.replace(key.expose(), "[redacted]");
    let message = crate::sanitize::bound(message.trim(), MAX_ERROR_MESSAGE, false);
    let message = if message.is_empty() {
        "(no message)".to_owned()
    } else {
        message
    };
    (message, code)
}
