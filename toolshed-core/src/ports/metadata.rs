//! Generating missing metadata.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{CommitSha, GeneratedMetadata, McpTool, RepoSnapshot, RepoUrl, ServerId};
use crate::error::Result;

/// What a generator gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataRequest {
    /// The server.
    pub server_id: ServerId,
    /// The repository.
    #[serde(deserialize_with = "RepoUrl::deserialize_stored")]
    pub repo: RepoUrl,
    /// The verified commit.
    pub commit: CommitSha,
    /// README, files, manifests, Dockerfile.
    pub snapshot: RepoSnapshot,
    /// The tools the probe listed (with input schemas).
    pub tools: Vec<McpTool>,
}

/// Produces description, language and docs.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait MetadataGenerator: Send + Sync + Debug {
    /// Generates metadata. Fields it cannot tell are `None` (never junk).
    ///
    /// # Errors
    /// `Backend` (retryable for 429 / 5xx), `Timeout`, `PermissionDenied` for a bad key. The core
    /// records any error on the server; verification never fails because of it.
    async fn generate(&self, request: &MetadataRequest) -> Result<GeneratedMetadata>;
}
