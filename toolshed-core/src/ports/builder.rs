//! Building a repository's image at a commit (CodeBuild, the Docker engine).

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{BuildId, BuildSpec, CommitSha, ImageTag, RepoUrl, ServerId, Transport};
use crate::error::Result;

/// A build to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// The server.
    pub server_id: ServerId,
    /// The repository.
    #[serde(deserialize_with = "RepoUrl::deserialize_stored")]
    pub repo: RepoUrl,
    /// The exact commit to build.
    pub commit: CommitSha,
    /// The tag to push (`build-<serverId>-<sha12>`, or `build-<serverId>_<spec10>-<sha12>` for
    /// a non-default build spec; see [`ImageTag::for_build_spec`]).
    pub tag: ImageTag,
    /// The repository to push to.
    pub repository: String,
    /// How the server speaks MCP; a stdio server gets the stdio bridge added.
    pub transport: Transport,
    /// What to build: context folder, Dockerfile, build arguments. Builders resolve the
    /// context and the Dockerfile inside the checked-out commit and refuse a symbolic link that
    /// leads outside the repository (a failed build, not retryable). Requests serialised before
    /// specs existed load the default.
    #[serde(default)]
    pub build: BuildSpec,
    /// A generated Dockerfile that replaces the repository (servers imported from a package):
    /// the builder checks nothing out and builds a context of this one file (plus the
    /// deployment's package-index CA bundle where it has one). `None` for git servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Makes a retried start return the same build (the verification run id).
    pub idempotency_token: String,
}

/// Where a build is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BuildStatus {
    /// Queued or running.
    InProgress {
        /// Current phase, when known.
        phase: Option<String>,
    },
    /// Pushed.
    Succeeded,
    /// Failed, stopped or timed out.
    Failed {
        /// The failing phase (e.g. `BUILD`, `POST_BUILD`).
        phase: Option<String>,
        /// Why, for humans (a log tail or the builder's message).
        reason: String,
        /// A link to the full log.
        log_url: Option<String>,
        /// Whether rebuilding may help (infrastructure fault vs. a broken Dockerfile).
        retryable: bool,
    },
}

/// Builds images.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ImageBuilder: Send + Sync + Debug {
    /// Starts a build and returns at once.
    ///
    /// # Errors
    /// `Backend` / `PermissionDenied` when the builder refuses; a started build that fails later
    /// is reported by [`Self::build_status`], not here.
    async fn start_build(&self, request: &BuildRequest) -> Result<BuildId>;

    /// Current status.
    ///
    /// # Errors
    /// `NotFound` (kind `Build`) for an unknown id.
    async fn build_status(&self, build: &BuildId) -> Result<BuildStatus>;

    /// Stops a build that is still running (its verification timed out or was cancelled): the
    /// backend's build stops and leaves no build container or job running. Cancelling a finished
    /// or unknown build succeeds (idempotent); a cancelled build's status reads `Failed`.
    ///
    /// # Errors
    /// `Backend` when the builder cannot be reached (retrying may help).
    async fn cancel_build(&self, build: &BuildId) -> Result<()>;
}
