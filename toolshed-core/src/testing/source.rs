//! An in-memory set of git repositories.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::clock::lock;
use crate::domain::{CommitSha, GitRef, RepoSnapshot, RepoUrl};
use crate::error::{Error, Result};
use crate::ports::{SnapshotLimits, SourceRepository};

#[derive(Debug, Default)]
struct Inner {
    refs: HashMap<(String, String), CommitSha>,
    snapshots: HashMap<(String, String), RepoSnapshot>,
    fail_snapshots: Option<String>,
    resolve_calls: u32,
}

/// A [`SourceRepository`] whose refs and snapshots tests set. A repository is known once one of
/// its refs is set.
#[derive(Debug, Default)]
pub struct InMemorySourceRepository {
    inner: Mutex<Inner>,
}

impl InMemorySourceRepository {
    /// No repositories.
    pub fn new() -> Self {
        Self::default()
    }

    /// Points `git_ref` of `repo` at `commit` (a push).
    pub fn set_commit(&self, repo: &RepoUrl, git_ref: &GitRef, commit: &CommitSha) {
        lock(&self.inner)
            .refs
            .insert((repo.to_string(), git_ref.to_string()), commit.clone());
    }

    /// Sets what `snapshot` returns for `repo` at `commit` (otherwise an empty snapshot).
    pub fn set_snapshot(&self, repo: &RepoUrl, commit: &CommitSha, snapshot: RepoSnapshot) {
        lock(&self.inner)
            .snapshots
            .insert((repo.to_string(), commit.to_string()), snapshot);
    }

    /// Makes `snapshot` fail with a retryable `Backend` error (or succeed again with `None`).
    pub fn fail_snapshots(&self, reason: Option<&str>) {
        lock(&self.inner).fail_snapshots = reason.map(str::to_owned);
    }

    /// How many times `resolve_commit` was called.
    pub fn resolve_calls(&self) -> u32 {
        lock(&self.inner).resolve_calls
    }
}

#[async_trait]
impl SourceRepository for InMemorySourceRepository {
    async fn resolve_commit(&self, repo: &RepoUrl, git_ref: &GitRef) -> Result<CommitSha> {
        let mut inner = lock(&self.inner);
        inner.resolve_calls += 1;
        if let Some(c) = inner.refs.get(&(repo.to_string(), git_ref.to_string())) {
            return Ok(c.clone());
        }
        if inner.refs.keys().any(|(r, _)| r == repo.as_str()) {
            Err(Error::invalid(
                "git_ref",
                format!("{repo} has no branch or tag {git_ref:?}"),
            ))
        } else {
            Err(Error::invalid("repo_url", format!("{repo} does not exist")))
        }
    }

    async fn snapshot(
        &self,
        repo: &RepoUrl,
        commit: &CommitSha,
        limits: SnapshotLimits,
    ) -> Result<RepoSnapshot> {
        let inner = lock(&self.inner);
        if let Some(reason) = &inner.fail_snapshots {
            return Err(Error::backend(
                "memory-git",
                "Snapshot",
                Some(repo.to_string()),
                true,
                reason.clone(),
            ));
        }
        let mut snap = inner
            .snapshots
            .get(&(repo.to_string(), commit.to_string()))
            .cloned()
            .unwrap_or_default();
        // Honour the limits like a real adapter, so generators see what they would in production.
        if snap.files.len() > limits.max_files {
            snap.files.truncate(limits.max_files);
            snap.truncated = true;
        }
        if let Some(readme) = &mut snap.readme {
            if readme.len() > limits.max_readme_bytes {
                let mut cut = limits.max_readme_bytes;
                while !readme.is_char_boundary(cut) {
                    cut -= 1;
                }
                readme.truncate(cut);
                snap.truncated = true;
            }
        }
        Ok(snap)
    }
}
