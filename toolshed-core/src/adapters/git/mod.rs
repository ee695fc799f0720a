//! [`SourceRepository`] on the git CLI (`GitCliSource`).
//!
//! Every git call runs through `tokio::process` with a timeout, `GIT_TERMINAL_PROMPT=0` (a missing
//! credential fails instead of hanging on a prompt) and no inherited terminal. Credentials for
//! private repositories come from git's own configuration (a credential helper, or
//! `GIT_ASKPASS`/`GIT_CONFIG_*` in the environment) or from a token scoped to one host
//! ([`GitCliSource::with_token_for_host`]); they are never put in URLs, arguments or logs.
//!
//! Repository content is untrusted: every git call reads at most a bounded amount of output
//! (file reads stop git after their limit, archives past their limit fail with
//! `LimitExceeded`), so no repository decides how much memory a call takes.

mod cli;
mod paths;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{CommitSha, GitRef, RepoSnapshot, RepoUrl};
use crate::error::Result;
use crate::ports::{SnapshotLimits, SourceRepository};

pub use cli::Checkout;
use cli::{GitCli, GitFailure, ScopedToken, Token};
pub use paths::ResolvedBuild;

/// The environment variable naming the host a git token is for.
pub const ENV_GIT_TOKEN_HOST: &str = "TOOLSHED_GIT_TOKEN_HOST";
/// The host a git token is sent to unless another is configured.
pub const DEFAULT_TOKEN_HOST: &str = "github.com";

/// `host` lower case, when it is a host name with an optional port (no scheme, path, user or
/// whitespace).
///
/// # Errors
/// `InvalidInput { field: "git_token_host" }` otherwise.
pub fn validate_token_host(host: &str) -> Result<String> {
    let host = host.trim().to_ascii_lowercase();
    let parsed = url::Url::parse(&format!("https://{host}/")).ok();
    let plain = parsed.as_ref().is_some_and(|u| {
        u.username().is_empty()
            && u.password().is_none()
            && u.path() == "/"
            && u.query().is_none()
            && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if host.is_empty() || !plain || host.contains(['/', '@', '?', '#']) {
        return Err(crate::Error::invalid(
            "git_token_host",
            format!("{host:?} is not a host name (e.g. github.com or git.example.com:8443)"),
        ));
    }
    Ok(host)
}

/// Manifest file names whose text a snapshot keeps (matched on the file name, anywhere in the
/// tree, shallowest first).
const MANIFESTS: &[&str] = &[
    "Cargo.toml",
    "package.json",
    "pyproject.toml",
    "setup.py",
    "requirements.txt",
    "go.mod",
    "pom.xml",
    "build.gradle",
    "Gemfile",
    "composer.json",
    "deno.json",
];

/// Most manifests kept in a snapshot.
const MAX_MANIFESTS: usize = 16;

/// Reads repositories with the `git` executable.
#[derive(Debug, Clone)]
pub struct GitCliSource {
    git: GitCli,
}

impl Default for GitCliSource {
    fn default() -> Self {
        Self::new()
    }
}

impl GitCliSource {
    /// `git` from `PATH`, 30 s per remote operation.
    pub fn new() -> Self {
        Self {
            git: GitCli::new("git", Duration::from_secs(30)),
        }
    }

    /// [`Self::new`], with a token from `TOOLSHED_GIT_TOKEN` when set, for the host in
    /// `TOOLSHED_GIT_TOKEN_HOST` (default [`DEFAULT_TOKEN_HOST`]).
    ///
    /// # Errors
    /// `InvalidInput` naming `TOOLSHED_GIT_TOKEN_HOST` when it is not a host name.
    pub fn from_env() -> Result<Self> {
        let host = std::env::var(ENV_GIT_TOKEN_HOST)
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TOKEN_HOST.to_owned());
        match std::env::var("TOOLSHED_GIT_TOKEN") {
            Ok(token) if !token.is_empty() => Self::new().with_token_for_host(token, &host),
            _ => Ok(Self::new()),
        }
    }

    /// Authenticates https remotes on [`DEFAULT_TOKEN_HOST`] (github.com) with `token`; see
    /// [`Self::with_token_for_host`].
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.git.token = Some(ScopedToken {
            token: Token::new(token.into()),
            prefix: format!("https://{DEFAULT_TOKEN_HOST}/"),
        });
        self
    }

    /// Authenticates https remotes on `host` (a host name, optionally with `:port`) with
    /// `token`, sent as an HTTP header and never logged. Repositories on any other host never
    /// see it, and redirects from `host` are not followed while it is attached.
    ///
    /// # Errors
    /// `InvalidInput { field: "git_token_host" }` when `host` is not a bare host name.
    pub fn with_token_for_host(mut self, token: impl Into<String>, host: &str) -> Result<Self> {
        let host = validate_token_host(host)?;
        self.git.token = Some(ScopedToken {
            token: Token::new(token.into()),
            prefix: format!("https://{host}/"),
        });
        Ok(self)
    }

    /// Sends the token to a plain-http URL prefix (a fake git host on loopback in tests).
    #[cfg(test)]
    pub(crate) fn with_token_for_url_prefix(mut self, token: &str, prefix: &str) -> Self {
        self.git.token = Some(ScopedToken {
            token: Token::new(token.to_owned()),
            prefix: prefix.to_ascii_lowercase(),
        });
        self
    }

    /// Largest build context (`git archive` output) [`Checkout::archive`] reads (default
    /// 256 MiB); a larger tree fails with `LimitExceeded`.
    pub fn with_max_archive_bytes(mut self, bytes: usize) -> Self {
        self.git.max_archive_bytes = bytes;
        self
    }

    /// Overrides the per-call timeout (an unreachable remote fails with `Timeout` after it).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.git.timeout = timeout;
        self
    }

    /// Shallow-fetches `commit` into a fresh temporary repository (removed on drop). The image
    /// builder uses it to get the build context with `git archive`.
    ///
    /// # Errors
    /// `InvalidInput { field: "commit" }` when the repository does not have the commit, plus the
    /// errors of [`SourceRepository::resolve_commit`].
    pub async fn checkout(&self, repo: &RepoUrl, commit: &CommitSha) -> Result<Checkout> {
        self.git.fetch_commit(repo, commit).await
    }
}

#[async_trait]
impl SourceRepository for GitCliSource {
    async fn resolve_commit(&self, repo: &RepoUrl, git_ref: &GitRef) -> Result<CommitSha> {
        let name = git_ref.as_str();
        let patterns = [
            format!("refs/heads/{name}"),
            format!("refs/tags/{name}"),
            format!("refs/tags/{name}^{{}}"),
        ];
        let args: Vec<&str> = ["ls-remote", "--exit-code", "--", repo.as_str()]
            .into_iter()
            .chain(patterns.iter().map(String::as_str))
            .collect();
        let out = match self.git.run(None, &args, "ls-remote", repo).await {
            Ok(out) => out,
            // ls-remote --exit-code exits 2 when the repository answered but has no such ref.
            Err(GitFailure::Exit { code: Some(2), .. }) => {
                return Err(crate::Error::invalid(
                    "git_ref",
                    format!("{repo} has no branch or tag named {name:?}"),
                ))
            }
            Err(e) => return Err(e.into_error("ls-remote", repo)),
        };
        let text = String::from_utf8_lossy(&out);
        let mut heads = None;
        let mut tag = None;
        let mut peeled = None;
        for line in text.lines() {
            let Some((sha, refname)) = line.split_once('\t') else {
                continue;
            };
            if refname.ends_with("^{}") {
                peeled = Some(sha);
            } else if refname.starts_with("refs/heads/") {
                heads = Some(sha);
            } else {
                tag = Some(sha);
            }
        }
        // A branch wins over a tag of the same name (like git's own ref resolution), and an
        // annotated tag resolves to the commit it points at, not the tag object.
        let sha = heads.or(peeled).or(tag).ok_or_else(|| {
            crate::Error::invalid(
                "git_ref",
                format!("{repo} has no branch or tag named {name:?}"),
            )
        })?;
        CommitSha::new(sha)
    }

    async fn snapshot(
        &self,
        repo: &RepoUrl,
        commit: &CommitSha,
        limits: SnapshotLimits,
    ) -> Result<RepoSnapshot> {
        let checkout = self.git.fetch_commit(repo, commit).await?;
        let listing = checkout.list_files().await?;
        let mut truncated = listing.len() > limits.max_files;
        let files: Vec<String> = listing.iter().take(limits.max_files).cloned().collect();

        // Root README first, any case and extension.
        let readme_path = listing
            .iter()
            .filter(|p| !p.contains('/'))
            .find(|p| p.to_ascii_lowercase().starts_with("readme"));
        let readme = match readme_path {
            Some(p) => {
                let (text, cut) = checkout.read_file(p, limits.max_readme_bytes).await?;
                truncated |= cut;
                Some(text)
            }
            None => None,
        };

        let dockerfile = match listing.iter().find(|p| *p == "Dockerfile") {
            Some(p) => {
                let (text, cut) = checkout.read_file(p, limits.max_file_bytes).await?;
                truncated |= cut;
                Some(text)
            }
            None => None,
        };

        let mut manifest_paths: Vec<&String> = listing
            .iter()
            .filter(|p| {
                let file = p.rsplit('/').next().unwrap_or(p);
                MANIFESTS.contains(&file)
            })
            .collect();
        manifest_paths.sort_by_key(|p| (p.matches('/').count(), p.as_str()));
        if manifest_paths.len() > MAX_MANIFESTS {
            truncated = true;
            manifest_paths.truncate(MAX_MANIFESTS);
        }
        let mut manifests = Vec::with_capacity(manifest_paths.len());
        for p in manifest_paths {
            let (text, cut) = checkout.read_file(p, limits.max_file_bytes).await?;
            truncated |= cut;
            manifests.push((p.clone(), text));
        }

        Ok(RepoSnapshot {
            readme,
            files,
            manifests,
            dockerfile,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests;
