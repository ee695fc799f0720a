//! Filling missing metadata after a verification: description, language, docs.

use tracing::{info, warn};

use super::Toolshed;
use crate::domain::{
    DocsRef, MetadataFailure, MetadataField, Server, ServerId, MAX_DESCRIPTION_LEN,
    MAX_LANGUAGE_LEN,
};
use crate::error::{Error, Result};
use crate::ports::{DocsKey, MetadataRequest};

/// What [`Toolshed::fill_missing_metadata`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataOutcome {
    /// Nothing was missing.
    NothingMissing,
    /// These fields were filled (`description`, `language`, `docs`).
    Filled {
        /// The filled fields.
        fields: Vec<&'static str>,
    },
    /// Generation failed; the reason is recorded in `metadata.last_error`.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A server with its long documentation (what [`Toolshed::server_docs`] reads).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerDocs {
    /// The server (description, language and the docs reference are in its metadata).
    pub server: Server,
    /// The Markdown docs, when generated and still in the docs store.
    pub markdown: Option<String>,
}

fn cut(s: &str, max_chars: usize) -> String {
    s.trim().chars().take(max_chars).collect()
}

impl Toolshed {
    /// A server and its long documentation from the docs store.
    ///
    /// # Errors
    /// `NotFound`; `InvalidInput` when the stored docs key is malformed; docs store errors.
    pub async fn server_docs(&self, server_id: &ServerId) -> Result<ServerDocs> {
        let server = self.ports.repository.get_server(server_id).await?;
        let markdown = match &server.metadata.docs {
            Some(docs) => {
                self.ports
                    .docs
                    .get_docs(&DocsKey::parse(&docs.key)?)
                    .await?
            }
            None => None,
        };
        Ok(ServerDocs { server, markdown })
    }

    /// Generates the metadata a verified server lacks. Manually set fields are never
    /// overwritten; docs go to the docs store under [`DocsKey::for_server`]. A generator failure
    /// is recorded on the server (`metadata.last_error`) and returned as
    /// [`MetadataOutcome::Failed`], not as an error.
    ///
    /// # Errors
    /// `NotFound`; `NotVerified` (there is no commit to describe yet); repository errors.
    pub async fn fill_missing_metadata(&self, server_id: &ServerId) -> Result<MetadataOutcome> {
        let p = &self.ports;
        let server = p.repository.get_server(server_id).await?;
        // A remote has no image nor repository to read: its description came with its
        // server.json.
        if server.origin.remote_url().is_some() {
            return Ok(MetadataOutcome::NothingMissing);
        }
        let commit = server.launchable_image()?.commit.clone();
        // An imported server has no repository to read (its "commit" is the package pin): its
        // description came with its server.json.
        if !server.origin.is_git() {
            return Ok(MetadataOutcome::NothingMissing);
        }
        let m = &server.metadata;
        let want_description = m.description.is_none();
        let want_language = m.language.is_none();
        let want_docs = m.docs.as_ref().is_none_or(|d| d.commit != commit);
        if !(want_description || want_language || want_docs) {
            return Ok(MetadataOutcome::NothingMissing);
        }

        let generated = async {
            let snapshot = p
                .source
                .snapshot(&server.repo, &commit, self.config.snapshot_limits)
                .await?;
            p.metadata
                .generate(&MetadataRequest {
                    server_id: server.id.clone(),
                    repo: server.repo.clone(),
                    commit: commit.clone(),
                    snapshot,
                    tools: server.tools.tools.clone(),
                    findings: server.tools.findings.clone(),
                })
                .await
        }
        .await;
        let generated = match generated {
            Ok(g) => g,
            Err(e) => return self.record_metadata_failure(server_id, &e).await,
        };

        let mut docs_error = None;
        let docs = match (&generated.docs_markdown, want_docs) {
            (Some(markdown), true) if !markdown.trim().is_empty() => {
                let key = DocsKey::for_server(server_id, &commit);
                match p.docs.put_docs(&key, markdown).await {
                    Ok(()) => Some(DocsRef {
                        key: key.to_string(),
                        bytes: markdown.len() as u64,
                        commit: commit.clone(),
                        provenance: generated.provenance.clone(),
                    }),
                    Err(e) => {
                        docs_error = Some(e);
                        None
                    }
                }
            }
            _ => None,
        };

        let now = p.clock.now();
        let mut filled: Vec<&'static str> = Vec::new();
        let provenance = generated.provenance.clone();
        let failure = docs_error.as_ref().map(|e| MetadataFailure {
            reason: format!("storing docs failed: {e}"),
            at: now,
            retryable: e.is_retryable(),
        });
        self.update_server_with_retry(server_id, |s| {
            filled.clear();
            let md = &mut s.metadata;
            // Re-checked on every attempt: a person may have set a field meanwhile.
            if md.description.is_none() {
                if let Some(d) = generated
                    .description
                    .as_deref()
                    .filter(|d| !d.trim().is_empty())
                {
                    md.description = Some(MetadataField {
                        value: cut(d, MAX_DESCRIPTION_LEN),
                        provenance: provenance.clone(),
                    });
                    filled.push("description");
                }
            }
            if md.language.is_none() {
                if let Some(l) = generated
                    .language
                    .as_deref()
                    .filter(|l| !l.trim().is_empty())
                {
                    md.language = Some(MetadataField {
                        value: cut(l, MAX_LANGUAGE_LEN),
                        provenance: provenance.clone(),
                    });
                    filled.push("language");
                }
            }
            if let Some(d) = &docs {
                md.docs = Some(d.clone());
                filled.push("docs");
            }
            md.last_error = failure.clone();
            s.updated_at = now;
        })
        .await?;
        info!(server = %server_id, ?filled, "metadata filled");
        match docs_error {
            Some(e) => Ok(MetadataOutcome::Failed {
                reason: format!("storing docs failed: {e}"),
            }),
            None => Ok(MetadataOutcome::Filled { fields: filled }),
        }
    }

    async fn record_metadata_failure(
        &self,
        server_id: &ServerId,
        e: &Error,
    ) -> Result<MetadataOutcome> {
        // The error text may echo generator input: keep it out of logs above warn's summary.
        warn!(server = %server_id, retryable = e.is_retryable(), "metadata generation failed");
        let failure = MetadataFailure {
            reason: e.to_string(),
            at: self.ports.clock.now(),
            retryable: e.is_retryable(),
        };
        self.update_server_with_retry(server_id, |s| {
            s.metadata.last_error = Some(failure.clone());
        })
        .await?;
        Ok(MetadataOutcome::Failed {
            reason: failure.reason,
        })
    }
}
