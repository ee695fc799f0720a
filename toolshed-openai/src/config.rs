//! Configuration: the builder of [`crate::OpenAiMetadataGenerator`] and its environment variables.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use toolshed_core::ports::{Clock, SystemClock};

use crate::error::OpenAiError;
use crate::generator::OpenAiMetadataGenerator;
use crate::key::{ApiKey, KeyProvider, StaticKey};
use crate::retry::RetryPolicy;

/// `OPENAI_API_KEY`: the API key (a secret; never logged).
pub const ENV_API_KEY: &str = "OPENAI_API_KEY";
/// `TOOLSHED_OPENAI_MODEL`: the model, default [`DEFAULT_MODEL`].
pub const ENV_MODEL: &str = "TOOLSHED_OPENAI_MODEL";
/// `TOOLSHED_OPENAI_BASE_URL`: the API base URL up to and including `/v1`, for
/// OpenAI-compatible endpoints (Azure OpenAI's v1 API, vLLM, Ollama); default
/// [`DEFAULT_BASE_URL`].
pub const ENV_BASE_URL: &str = "TOOLSHED_OPENAI_BASE_URL";
/// `OPENAI_ORG_ID`: sent as the `OpenAI-Organization` header when set.
pub const ENV_ORG_ID: &str = "OPENAI_ORG_ID";
/// `OPENAI_PROJECT_ID`: sent as the `OpenAI-Project` header when set.
pub const ENV_PROJECT_ID: &str = "OPENAI_PROJECT_ID";

/// A small, cheap model that supports strict structured outputs.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// The OpenAI API.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Bound of one whole generation: key, every attempt and every wait.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Bound of one HTTP attempt.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(45);
/// Prompt size, counted with the model's tokenizer.
pub const DEFAULT_INPUT_TOKEN_BUDGET: usize = 4_000;
/// Answer size (`max_completion_tokens`).
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 1_500;
/// The smallest budget that still leaves room for material after the instructions.
pub const MIN_INPUT_TOKEN_BUDGET: usize = 600;

/// Validated settings shared by the generator's parts.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub model: String,
    pub base_url: reqwest::Url,
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    pub request_timeout: Option<Duration>,
    pub deadline: Option<Duration>,
    pub retry: RetryPolicy,
    pub input_token_budget: usize,
    pub max_output_tokens: u32,
}

/// Builds an [`OpenAiMetadataGenerator`]. Setters never fail; [`build`](Self::build) validates.
///
/// ```
/// use std::time::Duration;
/// use toolshed_openai::{ApiKey, OpenAiMetadataGenerator};
///
/// let generator = OpenAiMetadataGenerator::builder()
///     .with_api_key(ApiKey::new("sk-example").unwrap())
///     .with_model("gpt-4o-mini")
///     .with_base_url("http://127.0.0.1:11434/v1") // e.g. Ollama
///     .with_deadline(Duration::from_secs(30))
///     .build()
///     .unwrap();
/// assert!(!format!("{generator:?}").contains("sk-example"));
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiMetadataGeneratorBuilder {
    model: String,
    base_url: String,
    organization: Option<String>,
    project: Option<String>,
    key_provider: Option<Arc<dyn KeyProvider>>,
    request_timeout: Option<Duration>,
    deadline: Option<Duration>,
    retry: RetryPolicy,
    input_token_budget: usize,
    max_output_tokens: u32,
    clock: Arc<dyn Clock>,
    http_client: Option<reqwest::Client>,
}

impl Default for OpenAiMetadataGeneratorBuilder {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.to_owned(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            organization: None,
            project: None,
            key_provider: None,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            deadline: Some(DEFAULT_DEADLINE),
            retry: RetryPolicy::default(),
            input_token_budget: DEFAULT_INPUT_TOKEN_BUDGET,
            max_output_tokens: DEFAULT_MAX_OUTPUT_TOKENS,
            clock: Arc::new(SystemClock),
            http_client: None,
        }
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl OpenAiMetadataGeneratorBuilder {
    /// Defaults: [`DEFAULT_MODEL`], [`DEFAULT_BASE_URL`], no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defaults overridden by the environment: [`ENV_API_KEY`] (`OPENAI_API_KEY`),
    /// [`ENV_MODEL`] (`TOOLSHED_OPENAI_MODEL`), [`ENV_BASE_URL`] (`TOOLSHED_OPENAI_BASE_URL`),
    /// [`ENV_ORG_ID`] (`OPENAI_ORG_ID`), [`ENV_PROJECT_ID`] (`OPENAI_PROJECT_ID`). Empty values
    /// count as unset. An invalid key is reported by [`build`](Self::build).
    pub fn from_env() -> Self {
        let mut b = Self::default();
        if let Some(key) = env_value(ENV_API_KEY) {
            match ApiKey::new(key) {
                Ok(key) => b = b.with_api_key(key),
                Err(_) => b.key_provider = Some(Arc::new(InvalidEnvKey)),
            }
        }
        if let Some(model) = env_value(ENV_MODEL) {
            b.model = model;
        }
        if let Some(url) = env_value(ENV_BASE_URL) {
            b.base_url = url;
        }
        b.organization = env_value(ENV_ORG_ID);
        b.project = env_value(ENV_PROJECT_ID);
        b
    }

    /// The model name, e.g. `gpt-4o-mini`, `gpt-4.1-mini`, or a local model's name.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// The API base URL up to `/v1` (the client appends `/chat/completions`).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Sends `OpenAI-Organization`.
    pub fn with_organization(mut self, org: impl Into<String>) -> Self {
        self.organization = Some(org.into());
        self
    }

    /// Sends `OpenAI-Project`.
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// A fixed key.
    pub fn with_api_key(self, key: ApiKey) -> Self {
        self.with_key_provider(Arc::new(StaticKey::new(key)))
    }

    /// Where the key comes from (asked once per generation).
    pub fn with_key_provider(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.key_provider = Some(provider);
        self
    }

    /// Bound of each HTTP attempt (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// No per-attempt bound; the whole-call deadline still applies.
    pub fn without_request_timeout(mut self) -> Self {
        self.request_timeout = None;
        self
    }

    /// Bound of a whole generation, waits included (default [`DEFAULT_DEADLINE`]).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// No whole-call deadline, for callers that bound the call themselves (and for tests on
    /// tokio's paused clock, which would otherwise jump to the deadline while a request is in
    /// flight). Retries stay bounded by the [`RetryPolicy`].
    pub fn without_deadline(mut self) -> Self {
        self.deadline = None;
        self
    }

    /// How 429 / 5xx / connection failures are retried.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Prompt size in tokens (default [`DEFAULT_INPUT_TOKEN_BUDGET`], at least
    /// [`MIN_INPUT_TOKEN_BUDGET`]).
    pub fn with_input_token_budget(mut self, tokens: usize) -> Self {
        self.input_token_budget = tokens;
        self
    }

    /// Answer size limit (default [`DEFAULT_MAX_OUTPUT_TOKENS`]).
    pub fn with_max_output_tokens(mut self, tokens: u32) -> Self {
        self.max_output_tokens = tokens;
        self
    }

    /// The clock that stamps provenance (default the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A preconfigured HTTP client (proxies, extra root certificates). The per-attempt timeout
    /// is still applied per request.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Validates the settings and builds the generator.
    ///
    /// # Errors
    /// [`OpenAiError::MissingApiKey`] without a key or key provider; [`OpenAiError::InvalidConfig`]
    /// for a bad model name, URL, header value, budget or zero timeout.
    pub fn build(self) -> Result<OpenAiMetadataGenerator, OpenAiError> {
        let invalid =
            |field: &'static str, reason: String| OpenAiError::InvalidConfig { field, reason };
        let key_provider = self.key_provider.ok_or(OpenAiError::MissingApiKey)?;
        let model = self.model.trim().to_owned();
        if model.is_empty() || model.len() > 256 || model.chars().any(char::is_control) {
            return Err(invalid("model", format!("{model:?} is not a model name")));
        }
        let base = self.base_url.trim().trim_end_matches('/');
        let base_url = reqwest::Url::parse(&format!("{base}/"))
            .map_err(|e| invalid("base_url", format!("{base:?}: {e}")))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(invalid(
                "base_url",
                format!("{base:?} must be an http(s) URL"),
            ));
        }
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(invalid(
                "base_url",
                "must not embed credentials; use the key provider".to_owned(),
            ));
        }
        let mut extra_headers = Vec::new();
        for (name, value) in [
            ("openai-organization", self.organization),
            ("openai-project", self.project),
        ] {
            if let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                let value = HeaderValue::from_str(&value).map_err(|_| {
                    invalid("headers", format!("{name} is not a valid header value"))
                })?;
                extra_headers.push((HeaderName::from_static(name), value));
            }
        }
        if self.input_token_budget < MIN_INPUT_TOKEN_BUDGET {
            return Err(invalid(
                "input_token_budget",
                format!(
                    "{} is below the minimum of {MIN_INPUT_TOKEN_BUDGET}",
                    self.input_token_budget
                ),
            ));
        }
        if self.max_output_tokens == 0 {
            return Err(invalid("max_output_tokens", "must be positive".to_owned()));
        }
        if self.request_timeout.is_some_and(|t| t.is_zero())
            || self.deadline.is_some_and(|t| t.is_zero())
        {
            return Err(invalid("timeout", "must be positive".to_owned()));
        }
        let http = match self.http_client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .user_agent(concat!("toolshed-openai/", env!("CARGO_PKG_VERSION")))
                // One call per verified server: a pool saves little, and its idle timer would keep
                // a paused test clock jumping while requests are in flight.
                .pool_max_idle_per_host(0)
                .build()
                .map_err(|e| invalid("http_client", e.to_string()))?,
        };
        let settings = Settings {
            model,
            base_url,
            extra_headers,
            request_timeout: self.request_timeout,
            deadline: self.deadline,
            retry: self.retry,
            input_token_budget: self.input_token_budget,
            max_output_tokens: self.max_output_tokens,
        };
        Ok(OpenAiMetadataGenerator::from_parts(
            settings,
            http,
            key_provider,
            self.clock,
        ))
    }
}

/// Stands in for an `OPENAI_API_KEY` that cannot be a key, so the error surfaces at call time
/// as `InvalidInput` without echoing the value.
#[derive(Debug)]
struct InvalidEnvKey;

#[async_trait::async_trait]
impl KeyProvider for InvalidEnvKey {
    async fn api_key(&self) -> toolshed_core::Result<ApiKey> {
        Err(toolshed_core::Error::invalid(
            "openai_api_key",
            format!("{ENV_API_KEY} must be non-empty visible ASCII"),
        ))
    }
}
