//! Repository URLs: https by default, never with embedded credentials.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest accepted repository URL.
pub const MAX_REPO_URL_LEN: usize = 2048;

/// Which URL schemes a caller accepts for repositories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoUrlPolicy {
    /// Allow `file://` URLs (local repositories, tests). Off by default: a hosted service must not
    /// let users make it read its own disk.
    pub allow_file: bool,
}

impl RepoUrlPolicy {
    /// https only.
    pub const HTTPS_ONLY: Self = Self { allow_file: false };
    /// https and `file://`.
    pub const ALLOW_FILE: Self = Self { allow_file: true };
}

/// A git repository URL.
///
/// ```
/// use toolshed_core::domain::{RepoUrl, RepoUrlPolicy};
/// assert!(RepoUrl::new("https://github.com/modelcontextprotocol/servers").is_ok());
/// assert!(RepoUrl::new("https://user:token@github.com/x/y").is_err());
/// assert!(RepoUrl::new("file:///tmp/repo").is_err());
/// assert!(RepoUrl::parse("file:///tmp/repo", RepoUrlPolicy::ALLOW_FILE).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RepoUrl(String);

impl RepoUrl {
    /// Parses an https URL.
    pub fn new(raw: impl AsRef<str>) -> Result<Self> {
        Self::parse(raw.as_ref(), RepoUrlPolicy::HTTPS_ONLY)
    }

    /// Parses under an explicit policy.
    pub fn parse(raw: &str, policy: RepoUrlPolicy) -> Result<Self> {
        let invalid = |reason: &str| Error::invalid("repo_url", reason.to_owned());
        if raw.len() > MAX_REPO_URL_LEN {
            return Err(invalid("longer than 2048 characters"));
        }
        if raw.trim() != raw || raw.is_empty() {
            return Err(invalid(
                "must be a non-empty URL without surrounding whitespace",
            ));
        }
        let url = url::Url::parse(raw).map_err(|e| invalid(&format!("not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            // Never echo the URL back: it contains the credential.
            return Err(invalid(
                "must not embed credentials; configure them for the git backend instead",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        match url.scheme() {
            "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("https URL has no host"));
                }
                let path = url.path().trim_matches('/');
                if path.is_empty() {
                    return Err(invalid("https URL has no repository path"));
                }
            }
            "file" if policy.allow_file => {
                if url.path().len() <= 1 {
                    return Err(invalid("file URL has no path"));
                }
            }
            "file" => {
                return Err(invalid(
                    "file:// URLs are not allowed here (the caller did not enable them)",
                ))
            }
            other => {
                return Err(invalid(&format!(
                    "scheme {other:?} is not allowed; use https://"
                )))
            }
        }
        Ok(Self(url.to_string()))
    }

    /// The URL string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a `file://` URL.
    pub fn is_file(&self) -> bool {
        self.0.starts_with("file:")
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<RepoUrl> for String {
    fn from(v: RepoUrl) -> String {
        v.0
    }
}

impl TryFrom<String> for RepoUrl {
    type Error = Error;
    /// Deserialisation accepts `file://` too: the policy was applied when the URL was registered.
    fn try_from(v: String) -> Result<Self> {
        Self::parse(&v, RepoUrlPolicy::ALLOW_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https() {
        let u = RepoUrl::new("https://github.com/a/b.git").unwrap();
        assert_eq!(u.as_str(), "https://github.com/a/b.git");
        assert!(!u.is_file());
    }

    #[test]
    fn rejects_bad_urls_with_clear_messages() {
        let cases = [
            ("http://github.com/a/b", "scheme \"http\""),
            ("ssh://git@github.com/a/b", "credentials"),
            ("git@github.com:a/b.git", "not a URL"),
            ("https://tok@github.com/a/b", "credentials"),
            ("https://github.com/", "no repository path"),
            ("https://github.com/a/b?x=1", "query"),
            (" https://github.com/a/b", "whitespace"),
            ("file:///tmp/x", "not allowed here"),
        ];
        for (raw, needle) in cases {
            let err = RepoUrl::new(raw).unwrap_err().to_string();
            assert!(err.contains(needle), "{raw}: {err}");
            assert!(!err.contains("tok@"), "credential echoed: {err}");
        }
        let long = format!("https://github.com/{}", "a".repeat(2100));
        assert!(RepoUrl::new(long).unwrap_err().to_string().contains("2048"));
    }

    #[test]
    fn file_urls_when_allowed() {
        let u = RepoUrl::parse("file:///tmp/repo", RepoUrlPolicy::ALLOW_FILE).unwrap();
        assert!(u.is_file());
    }
}
