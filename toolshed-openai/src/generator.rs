//! [`OpenAiMetadataGenerator`]: prompt, call, parse, cross-check.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use toolshed_core::adapters::heuristic::HeuristicMetadataGenerator;
use toolshed_core::domain::markdown;
use toolshed_core::domain::{
    GeneratedMetadata, Provenance, ProvenanceSource, RepoSnapshot, Timestamp,
};
use toolshed_core::ports::{Clock, MetadataGenerator, MetadataRequest};

use crate::client::{ChatClient, ChatCompletion};
use crate::config::{OpenAiMetadataGeneratorBuilder, Settings};
use crate::error::OpenAiError;
use crate::key::KeyProvider;
use crate::prompt::{build_prompt, Prompt};
use crate::schema::{self, ModelAnswer};
use crate::tokens::TokenCounter;
use crate::{language, sanitize};

/// Longest generated description kept, in characters (at most three sentences as well).
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
/// Longest generated Markdown kept, in characters (longer docs are cut at a line).
pub const MAX_DOCS_CHARS: usize = 64 * 1024;
/// Longest refusal text kept in the provenance note.
const MAX_REFUSAL_CHARS: usize = 200;

/// Phrases models use in a field instead of saying `enough_information: false`.
const NO_INFORMATION_PHRASES: [&str; 5] = [
    "not enough information",
    "insufficient information",
    "cannot determine",
    "unable to determine",
    "no information",
];

/// How a generation ended (when the call itself succeeded).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The model answered; fields that failed the cross-checks are empty.
    Generated,
    /// The model refused (the API's `refusal` field, or its content filter); fields are empty.
    Refused {
        /// The refusal, as plain text, bounded.
        reason: String,
    },
    /// The model said the material does not show what the server does; fields are empty.
    InsufficientInformation,
}

/// The result of [`OpenAiMetadataGenerator::generate_detailed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// What the port returns.
    pub metadata: GeneratedMetadata,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether the language is the repository heuristic's rather than the model's.
    pub language_fallback: bool,
    /// Input tokens as counted locally before sending.
    pub estimated_input_tokens: usize,
    /// Whether material was cut to fit the input budget.
    pub prompt_truncated: bool,
}

/// Generates description, primary language and tool docs with an OpenAI-compatible Chat
/// Completions API, using a strict JSON-schema response format, then cross-checks the answer
/// against the repository before returning it.
///
/// Build one with [`OpenAiMetadataGenerator::builder`] or [`OpenAiMetadataGenerator::from_env`].
/// `Debug` shows the model and endpoint, never the key.
pub struct OpenAiMetadataGenerator {
    settings: Arc<Settings>,
    client: ChatClient,
    key_provider: Arc<dyn KeyProvider>,
    clock: Arc<dyn Clock>,
    counter: TokenCounter,
}

impl fmt::Debug for OpenAiMetadataGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiMetadataGenerator")
            .field("model", &self.settings.model)
            .field("base_url", &self.settings.base_url.as_str())
            .field("deadline", &self.settings.deadline)
            .field("input_token_budget", &self.settings.input_token_budget)
            .field("key_provider", &self.key_provider)
            .finish_non_exhaustive()
    }
}

impl OpenAiMetadataGenerator {
    /// A builder with the defaults.
    pub fn builder() -> OpenAiMetadataGeneratorBuilder {
        OpenAiMetadataGeneratorBuilder::new()
    }

    /// A generator configured from the environment (see
    /// [`OpenAiMetadataGeneratorBuilder::from_env`]).
    ///
    /// # Errors
    /// [`OpenAiError::MissingApiKey`] when `OPENAI_API_KEY` is unset, `InvalidConfig` for bad
    /// values.
    pub fn from_env() -> Result<Self, OpenAiError> {
        OpenAiMetadataGeneratorBuilder::from_env().build()
    }

    pub(crate) fn from_parts(
        settings: Settings,
        http: reqwest::Client,
        key_provider: Arc<dyn KeyProvider>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let counter = TokenCounter::for_model(&settings.model);
        let settings = Arc::new(settings);
        Self {
            client: ChatClient::new(http, Arc::clone(&settings)),
            settings,
            key_provider,
            clock,
            counter,
        }
    }

    /// The configured model.
    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// The prompt a request would send (pure; no network).
    pub fn prompt(&self, request: &MetadataRequest) -> Prompt {
        build_prompt(request, &self.counter, self.settings.input_token_budget)
    }

    /// Generates metadata and says how it went.
    ///
    /// # Errors
    /// Every failure of the call: see [`OpenAiError`]. A refusal or a "not enough information"
    /// answer is not an error but an [`Outcome`].
    pub async fn generate_detailed(
        &self,
        request: &MetadataRequest,
    ) -> Result<Generation, OpenAiError> {
        match self.settings.deadline {
            Some(after) => {
                let deadline = tokio::time::Instant::now() + after;
                tokio::time::timeout_at(deadline, self.run(request, Some(deadline)))
                    .await
                    .map_err(|_| OpenAiError::DeadlineExceeded { after })?
            }
            None => self.run(request, None).await,
        }
    }

    async fn run(
        &self,
        request: &MetadataRequest,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Generation, OpenAiError> {
        let key = self
            .key_provider
            .api_key()
            .await
            .map_err(OpenAiError::KeyProvider)?;
        let prompt = self.prompt(request);
        tracing::debug!(
            server = request.server_id.as_str(),
            input_tokens = prompt.input_tokens,
            truncated = prompt.truncated(),
            user_prompt = %prompt.user,
            "OpenAI metadata prompt"
        );
        let body = json!({
            "model": self.settings.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "response_format": schema::response_format(),
            "max_completion_tokens": self.settings.max_output_tokens,
        });
        let completion = self.client.complete(&key, &body, deadline).await?;
        // The core's offline answer is the fallback for a language the repository does not
        // support; it reads only the snapshot, so it costs nothing to ask.
        let heuristic_language = HeuristicMetadataGenerator::new(Arc::clone(&self.clock))
            .generate(request)
            .await
            .ok()
            .and_then(|m| m.language);
        let generation = interpret(
            completion,
            request,
            heuristic_language,
            &self.settings,
            self.clock.now(),
            &prompt,
        )?;
        tracing::info!(
            server = request.server_id.as_str(),
            outcome = ?generation.outcome,
            language_fallback = generation.language_fallback,
            provenance = ?generation.metadata.provenance.source,
            "OpenAI metadata generated"
        );
        Ok(generation)
    }
}

#[async_trait]
impl MetadataGenerator for OpenAiMetadataGenerator {
    async fn generate(
        &self,
        request: &MetadataRequest,
    ) -> toolshed_core::Result<GeneratedMetadata> {
        self.generate_detailed(request)
            .await
            .map(|g| g.metadata)
            .map_err(|e| e.into_core(Some(request.server_id.as_str().to_owned())))
    }
}

/// Turns the completion into checked metadata.
fn interpret(
    completion: ChatCompletion,
    request: &MetadataRequest,
    heuristic_language: Option<String>,
    settings: &Settings,
    now: Timestamp,
    prompt: &Prompt,
) -> Result<Generation, OpenAiError> {
    let usage = completion.usage;
    let model = if completion.model.trim().is_empty() {
        settings.model.clone()
    } else {
        completion.model.clone()
    };
    let provenance = |mut notes: Vec<String>| {
        if usage.is_none() {
            // Some compatible servers omit usage: say so rather than let 0 look like a count.
            notes.push("token usage not reported by the endpoint".to_owned());
        }
        Provenance {
            source: ProvenanceSource::Generated {
                model: model.clone(),
                input_tokens: usage.map_or(0, |u| u.prompt_tokens),
                output_tokens: usage.map_or(0, |u| u.completion_tokens),
            },
            at: now,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        }
    };
    let empty = |outcome: Outcome, note: String| Generation {
        metadata: GeneratedMetadata {
            description: None,
            language: None,
            docs_markdown: None,
            provenance: provenance(vec![note]),
        },
        outcome,
        language_fallback: false,
        estimated_input_tokens: prompt.input_tokens,
        prompt_truncated: prompt.truncated(),
    };

    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(OpenAiError::InvalidResponse("no choices".to_owned()));
    };
    if let Some(refusal) = choice.message.refusal.filter(|r| !r.trim().is_empty()) {
        let reason = sanitize::bound(&sanitize::plain_text(&refusal), MAX_REFUSAL_CHARS, false);
        return Ok(empty(
            Outcome::Refused {
                reason: reason.clone(),
            },
            format!("model refused: {reason}"),
        ));
    }
    match choice.finish_reason.as_deref() {
        Some("content_filter") => {
            let reason = "content filter".to_owned();
            return Ok(empty(
                Outcome::Refused {
                    reason: reason.clone(),
                },
                format!("model refused: {reason}"),
            ));
        }
        Some("length") => {
            return Err(OpenAiError::AnswerTruncated {
                max_output_tokens: settings.max_output_tokens,
            })
        }
        _ => {}
    }
    let content = choice
        .message
        .content
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| OpenAiError::MalformedAnswer("empty message content".to_owned()))?;
    let answer = schema::parse_answer(&content)?;
    if !answer.enough_information {
        return Ok(empty(
            Outcome::InsufficientInformation,
            "model: not enough information in the repository".to_owned(),
        ));
    }
    let checked = cross_check(answer, &request.snapshot, heuristic_language);
    Ok(Generation {
        metadata: GeneratedMetadata {
            description: checked.description,
            language: checked.language,
            docs_markdown: checked.docs_markdown,
            provenance: provenance(checked.notes),
        },
        outcome: Outcome::Generated,
        language_fallback: checked.language_fallback,
        estimated_input_tokens: prompt.input_tokens,
        prompt_truncated: prompt.truncated(),
    })
}

struct Checked {
    description: Option<String>,
    language: Option<String>,
    docs_markdown: Option<String>,
    language_fallback: bool,
    notes: Vec<String>,
}

/// The cross-checks: language supported by the repository's files (else `heuristic`, the
/// core heuristic's answer), plain bounded description, sanitised bounded Markdown.
fn cross_check(answer: ModelAnswer, snapshot: &RepoSnapshot, heuristic: Option<String>) -> Checked {
    let mut notes = Vec::new();

    let description = answer
        .description
        .map(|d| sanitize::plain_text(&d))
        .filter(|d| !d.is_empty())
        .and_then(|d| {
            let lower = d.to_ascii_lowercase();
            if NO_INFORMATION_PHRASES.iter().any(|p| lower.contains(p)) {
                notes.push("model description said it lacked information; dropped".to_owned());
                None
            } else {
                let kept = sanitize::first_sentences(&d, 3);
                Some(sanitize::bound(kept, MAX_DESCRIPTION_CHARS, false))
            }
        });

    let supported = language::repo_languages(snapshot);
    let model_language = answer
        .primary_language
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let (language, language_fallback) = match model_language {
        Some(raw) => {
            let canon = language::canonical(raw).or_else(|| {
                // "Python 3.12", "Rust (tokio)" → the leading word.
                raw.split(|c: char| c.is_whitespace() || c == '(' || c == '/')
                    .next()
                    .and_then(language::canonical)
            });
            match canon {
                Some(c) if supported.iter().any(|(l, _)| *l == c) => (Some(c.to_owned()), false),
                _ => {
                    let shown = sanitize::bound(&sanitize::plain_text(raw), 40, false);
                    notes.push(match &heuristic {
                        Some(h) => format!(
                            "model language {shown:?} not found in repository files; heuristic language {h} used"
                        ),
                        None => format!(
                            "model language {shown:?} not found in repository files; no language detected"
                        ),
                    });
                    (heuristic, true)
                }
            }
        }
        None => {
            if let Some(h) = &heuristic {
                notes.push(format!(
                    "model gave no language; heuristic language {h} used"
                ));
            }
            let used = heuristic.is_some();
            (heuristic, used)
        }
    };

    let docs_markdown = answer
        .docs_markdown
        .map(|d| markdown::sanitize_markdown(&d))
        .filter(|d| !d.is_empty())
        .map(|d| {
            if d.chars().count() <= MAX_DOCS_CHARS {
                return d;
            }
            notes.push(format!("docs cut to {MAX_DOCS_CHARS} characters"));
            // Cutting can leave a construct open (a fence, a link), so the cut text is
            // sanitised again; closing what was open may add a few characters, hence a
            // shorter cut when the result is still too long.
            let mut limit = MAX_DOCS_CHARS;
            loop {
                let cut = markdown::sanitize_markdown(&sanitize::bound(&d, limit, true));
                let over = cut.chars().count().saturating_sub(MAX_DOCS_CHARS);
                if over == 0 || limit <= MAX_DOCS_CHARS / 2 {
                    return cut;
                }
                limit -= over + 64;
            }
        });

    Checked {
        description,
        language,
        docs_markdown,
        language_fallback,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> RepoSnapshot {
        RepoSnapshot {
            readme: Some("# x".into()),
            files: vec!["src/server.py".into(), "pyproject.toml".into()],
            manifests: vec![("pyproject.toml".into(), "[project]".into())],
            dockerfile: None,
            truncated: false,
        }
    }

    fn answer(language: Option<&str>, description: &str) -> ModelAnswer {
        ModelAnswer {
            enough_information: true,
            description: Some(description.into()),
            primary_language: language.map(str::to_owned),
            docs_markdown: Some("### t\n<script>x()</script>ok".into()),
        }
    }

    #[test]
    fn supported_language_is_kept_in_canonical_form() {
        let c = cross_check(
            answer(Some("python 3.12"), "Tells time. Converts zones."),
            &snapshot(),
            Some("Python".into()),
        );
        assert_eq!(c.language.as_deref(), Some("Python"));
        assert!(!c.language_fallback);
        assert!(c.notes.is_empty());
        // Raw HTML is shown as code, never passed through.
        assert_eq!(
            c.docs_markdown.as_deref(),
            Some("### t\n\n```html\n<script>x()</script>ok\n```")
        );
    }

    #[test]
    fn unsupported_language_falls_back_with_a_note() {
        let c = cross_check(
            answer(Some("Rust"), "Tells time."),
            &snapshot(),
            Some("Python".into()),
        );
        assert_eq!(c.language.as_deref(), Some("Python"));
        assert!(c.language_fallback);
        assert!(c.notes[0].contains("\"Rust\" not found"), "{:?}", c.notes);
    }

    #[test]
    fn long_descriptions_are_cut_to_three_sentences_and_junk_dropped() {
        let c = cross_check(
            answer(Some("Python"), "One. Two. Three. Four. Five."),
            &snapshot(),
            Some("Python".into()),
        );
        assert_eq!(c.description.as_deref(), Some("One. Two. Three."));
        let c = cross_check(
            answer(Some("Python"), "There is not enough information to tell."),
            &snapshot(),
            Some("Python".into()),
        );
        assert_eq!(c.description, None);
    }
}
