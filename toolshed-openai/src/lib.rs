//! # toolshed-openai
//!
//! Metadata generation for the Toolshed SDK with the OpenAI API (or any OpenAI-compatible Chat
//! Completions endpoint): [`OpenAiMetadataGenerator`] implements the core
//! [`MetadataGenerator`](toolshed_core::ports::MetadataGenerator) port.
//!
//! - **Structured**: the model answers with a strict JSON schema (description, primary
//!   language, tool docs in Markdown), parsed rather than scraped.
//! - **Within a budget**: [`build_prompt`] is a pure function that keeps the most useful material
//!   (tools, README head, manifests, Dockerfile, file list) within an input token budget
//!   (default 4,000), counted with the real `o200k_base` / `cl100k_base` tokenizer.
//! - **Cross-checked**: the language must be supported by the repository's files (else the
//!   repository heuristic's language is used and the provenance says so); lengths are bounded;
//!   Markdown goes through the core's docs sanitiser ([`toolshed_core::domain::markdown`]: raw
//!   HTML shown as code or text, `javascript:` and other unsafe link targets dropped); refusals
//!   and "not enough information" leave the fields empty ([`Outcome`]).
//! - **Bounded failures**: 429 / 5xx retried with exponential backoff and jitter honouring
//!   `Retry-After`; one deadline (default 60 s) for the whole call; every failure an
//!   [`OpenAiError`] mapped to [`toolshed_core::Error`]. The key never appears in `Debug`
//!   output or logs; prompts and answers are logged at debug level only.
//!
//! ## Environment (see [`OpenAiMetadataGeneratorBuilder::from_env`])
//! | variable | meaning | default |
//! |---|---|---|
//! | `OPENAI_API_KEY` | API key (secret) | none: generation is off |
//! | `TOOLSHED_OPENAI_MODEL` | model | `gpt-4o-mini` |
//! | `TOOLSHED_OPENAI_BASE_URL` | API base URL up to `/v1` | `https://api.openai.com/v1` |
//! | `OPENAI_ORG_ID` | `OpenAI-Organization` header | unset |
//! | `OPENAI_PROJECT_ID` | `OpenAI-Project` header | unset |
#![warn(missing_docs)]

mod client;
mod config;
mod error;
mod generator;
mod key;
pub mod language;
mod prompt;
mod retry;
mod sanitize;
mod schema;
mod tokens;

pub use config::{
    OpenAiMetadataGeneratorBuilder, DEFAULT_BASE_URL, DEFAULT_DEADLINE, DEFAULT_INPUT_TOKEN_BUDGET,
    DEFAULT_MAX_OUTPUT_TOKENS, DEFAULT_MODEL, DEFAULT_REQUEST_TIMEOUT, ENV_API_KEY, ENV_BASE_URL,
    ENV_MODEL, ENV_ORG_ID, ENV_PROJECT_ID, MIN_INPUT_TOKEN_BUDGET,
};
pub use error::OpenAiError;
pub use generator::{
    Generation, OpenAiMetadataGenerator, Outcome, MAX_DESCRIPTION_CHARS, MAX_DOCS_CHARS,
};
pub use key::{ApiKey, EnvKey, KeyProvider, StaticKey};
pub use prompt::{build_prompt, Prompt, Section, SectionUsage, SYSTEM_PROMPT};
pub use retry::RetryPolicy;
pub use schema::{response_format, response_format_text};
pub use tokens::TokenCounter;
