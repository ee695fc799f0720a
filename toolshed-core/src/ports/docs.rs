//! Long documentation storage (S3, files).

use std::fmt::{self, Debug};

use async_trait::async_trait;

use crate::domain::{CommitSha, ServerId};
use crate::error::{Error, Result};

/// A docs key: `docs/<serverId>/<commit>.md`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocsKey(String);

impl DocsKey {
    /// The key of a server's docs at a commit.
    ///
    /// ```
    /// use toolshed_core::domain::{CommitSha, ServerId};
    /// use toolshed_core::ports::DocsKey;
    /// let k = DocsKey::for_server(&ServerId::new("time").unwrap(), &CommitSha::new("a".repeat(40)).unwrap());
    /// assert_eq!(k.as_str(), format!("docs/time/{}.md", "a".repeat(40)));
    /// ```
    pub fn for_server(server: &ServerId, commit: &CommitSha) -> Self {
        Self(format!("docs/{server}/{commit}.md"))
    }

    /// Parses a stored key.
    pub fn parse(raw: &str) -> Result<Self> {
        let parts: Vec<&str> = raw.split('/').collect();
        match parts.as_slice() {
            ["docs", server, file] => {
                let commit = file
                    .strip_suffix(".md")
                    .ok_or_else(|| Error::invalid("docs_key", "must end in .md"))?;
                Ok(Self::for_server(
                    &ServerId::new(*server)?,
                    &CommitSha::new(commit)?,
                ))
            }
            _ => Err(Error::invalid(
                "docs_key",
                format!("{raw:?} is not docs/<serverId>/<commit>.md"),
            )),
        }
    }

    /// The key string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Stores Markdown documents by key.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait DocsStore: Send + Sync + Debug {
    /// Writes (or overwrites) a document, content type `text/markdown; charset=utf-8`.
    async fn put_docs(&self, key: &DocsKey, markdown: &str) -> Result<()>;

    /// Reads a document; `Ok(None)` when absent.
    async fn get_docs(&self, key: &DocsKey) -> Result<Option<String>>;
}
