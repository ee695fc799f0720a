//! The crate's error type and its mapping onto [`toolshed_core::Error`].

use std::time::Duration;

/// Backend name used in core errors.
pub(crate) const BACKEND: &str = "openai";
/// Operation name used in core errors.
pub(crate) const OPERATION: &str = "chat.completions";

/// Everything that can go wrong while generating metadata with the OpenAI API.
///
/// Converted to [`toolshed_core::Error`] at the port boundary (see
/// [`OpenAiError::into_core`]); `Backend { retryable }` tells the core whether a later attempt may
/// succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenAiError {
    /// No key was configured: neither `OPENAI_API_KEY` nor a key provider.
    #[error("no OpenAI API key: set OPENAI_API_KEY or pass a key provider")]
    MissingApiKey,

    /// A configuration value is invalid.
    #[error("invalid OpenAI configuration {field}: {reason}")]
    InvalidConfig {
        /// Which setting.
        field: &'static str,
        /// Why.
        reason: String,
    },

    /// The key provider failed (its error is passed through unchanged to the core).
    #[error("API key provider failed: {0}")]
    KeyProvider(#[source] toolshed_core::Error),

    /// HTTP 401 / 403: the key is wrong, revoked or lacks access to the model.
    #[error("OpenAI rejected the credentials (HTTP {status}): {message}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The API's error message (the key is redacted from it).
        message: String,
    },

    /// Any other non-success HTTP status.
    #[error("OpenAI answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The API's error message (the key is redacted from it).
        message: String,
        /// Whether the status is transient (429 other than exhausted quota, 5xx).
        transient: bool,
        /// The server's `Retry-After` / `retry-after-ms`, when given.
        retry_after: Option<Duration>,
    },

    /// The request could not be sent or the response not read (connect error, per-attempt
    /// timeout, reset connection).
    #[error("request to OpenAI failed: {0}")]
    Transport(#[source] reqwest::Error),

    /// Transient failures continued after every retry of the policy.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<OpenAiError>,
    },

    /// The whole call (key, attempts and waits) did not finish within the deadline.
    #[error("OpenAI metadata generation did not finish within {}", fmt_duration(*.after))]
    DeadlineExceeded {
        /// The deadline.
        after: Duration,
    },

    /// A 2xx response that is not a chat completion.
    #[error("the API response is not a chat completion: {0}")]
    InvalidResponse(String),

    /// The model's answer is not JSON.
    #[error("the model's answer is not valid JSON: {0}")]
    MalformedAnswer(String),

    /// The model's answer is JSON but violates the response schema.
    #[error("the model's answer violates the response schema: {0}")]
    SchemaViolation(String),

    /// The answer was cut at the output token limit (`finish_reason: length`).
    #[error("the model's answer was cut at the output limit of {max_output_tokens} tokens")]
    AnswerTruncated {
        /// The configured limit.
        max_output_tokens: u32,
    },
}

fn fmt_duration(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

impl OpenAiError {
    /// Whether retrying the same request after a wait may help (429, 5xx, transport errors).
    pub fn is_transient(&self) -> bool {
        match self {
            OpenAiError::Status { transient, .. } => *transient,
            OpenAiError::Transport(e) => !e.is_builder(),
            _ => false,
        }
    }

    /// The wait the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OpenAiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether a later, separate attempt at generating metadata may succeed.
    fn is_retryable_later(&self) -> bool {
        match self {
            OpenAiError::RetriesExhausted { .. } | OpenAiError::DeadlineExceeded { .. } => true,
            // Sampling differs between calls, so a garbled or cut answer may well come out fine
            // next time; an endpoint that ignores the schema will not change by itself.
            OpenAiError::MalformedAnswer(_) => true,
            OpenAiError::Status { .. } | OpenAiError::Transport(_) => self.is_transient(),
            _ => false,
        }
    }

    /// Maps to the core error, naming `id` (the server) when given.
    ///
    /// `PermissionDenied` for a missing or rejected key, `Timeout` for the deadline,
    /// `InvalidInput` for configuration, the key provider's own error as is, and `Backend`
    /// (retryable for 429 / 5xx / transport failures) for everything else.
    pub fn into_core(self, id: Option<String>) -> toolshed_core::Error {
        use toolshed_core::Error;
        let retryable = self.is_retryable_later();
        match self {
            OpenAiError::MissingApiKey => Error::PermissionDenied {
                backend: BACKEND,
                operation: OPERATION,
                detail: "no API key configured (OPENAI_API_KEY or a key provider)".to_owned(),
            },
            OpenAiError::Unauthorized { status, message } => Error::PermissionDenied {
                backend: BACKEND,
                operation: OPERATION,
                detail: format!("HTTP {status}: {message}"),
            },
            OpenAiError::InvalidConfig { field, reason } => Error::InvalidInput { field, reason },
            OpenAiError::KeyProvider(inner) => inner,
            OpenAiError::DeadlineExceeded { after } => Error::Timeout {
                operation: "openai metadata generation",
                id,
                after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            },
            other => Error::backend(BACKEND, OPERATION, id, retryable, other),
        }
    }
}

impl From<OpenAiError> for toolshed_core::Error {
    fn from(e: OpenAiError) -> Self {
        e.into_core(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_core_meanings() {
        let throttled = OpenAiError::Status {
            status: 429,
            message: "slow down".into(),
            transient: true,
            retry_after: None,
        };
        let core = throttled.into_core(Some("srv".into()));
        assert!(core.is_retryable());
        assert!(matches!(core, toolshed_core::Error::Backend { .. }));

        let bad_request = OpenAiError::Status {
            status: 400,
            message: "bad".into(),
            transient: false,
            retry_after: None,
        };
        assert!(!toolshed_core::Error::from(bad_request).is_retryable());

        let denied = OpenAiError::Unauthorized {
            status: 401,
            message: "nope".into(),
        };
        assert!(matches!(
            toolshed_core::Error::from(denied),
            toolshed_core::Error::PermissionDenied { .. }
        ));
        let late = OpenAiError::DeadlineExceeded {
            after: Duration::from_secs(60),
        };
        assert!(matches!(
            toolshed_core::Error::from(late),
            toolshed_core::Error::Timeout {
                after_ms: 60_000,
                ..
            }
        ));
        let schema = OpenAiError::SchemaViolation("x".into());
        assert!(!toolshed_core::Error::from(schema).is_retryable());
    }
}
