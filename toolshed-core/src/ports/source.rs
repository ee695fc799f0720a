//! Reading git repositories.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::domain::{CommitSha, GitRef, RepoSnapshot, RepoUrl};
use crate::error::Result;

/// Size bounds of a [`RepoSnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotLimits {
    /// Most file paths listed.
    pub max_files: usize,
    /// Largest README kept (bytes; longer is cut).
    pub max_readme_bytes: usize,
    /// Largest manifest or Dockerfile kept (bytes; longer is cut).
    pub max_file_bytes: usize,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        Self {
            max_files: 2000,
            max_readme_bytes: 64 * 1024,
            max_file_bytes: 32 * 1024,
        }
    }
}

/// A git host or local repositories.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SourceRepository: Send + Sync + Debug {
    /// Resolves a branch or tag to its commit (like `git ls-remote`).
    ///
    /// # Errors
    /// `InvalidInput { field: "git_ref" }` for a ref the repository does not have,
    /// `InvalidInput { field: "repo_url" }` for a repository that does not exist, `Timeout` for an
    /// unreachable remote, `PermissionDenied` for missing credentials.
    async fn resolve_commit(&self, repo: &RepoUrl, git_ref: &GitRef) -> Result<CommitSha>;

    /// README, file list, manifests and Dockerfile at `commit`, within `limits`.
    async fn snapshot(
        &self,
        repo: &RepoUrl,
        commit: &CommitSha,
        limits: SnapshotLimits,
    ) -> Result<RepoSnapshot>;
}
