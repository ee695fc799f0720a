//! A [`DocsStore`] on the local file system: the local backend's counterpart of S3.
//!
//! Keys map to paths under a root directory (`<root>/docs/<serverId>/<commit>.md`). A
//! [`DocsKey`] can only be built from a validated server id and commit, so a key can never
//! escape the root.

use std::io::ErrorKind;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::ports::{DocsKey, DocsStore};

/// Stores docs as Markdown files under a root directory.
///
/// ```
/// # tokio_test_block_on(async {
/// use toolshed_core::adapters::files::FileDocsStore;
/// use toolshed_core::domain::{CommitSha, ServerId};
/// use toolshed_core::ports::{DocsKey, DocsStore};
///
/// let root = std::env::temp_dir().join(format!("toolshed-doc-{}", std::process::id()));
/// let store = FileDocsStore::new(&root);
/// let key = DocsKey::for_server(&ServerId::new("time").unwrap(), &CommitSha::new("a".repeat(40)).unwrap());
/// store.put_docs(&key, "# Tools").await.unwrap();
/// assert_eq!(store.get_docs(&key).await.unwrap().as_deref(), Some("# Tools"));
/// # std::fs::remove_dir_all(root).unwrap();
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FileDocsStore {
    root: PathBuf,
}

impl FileDocsStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &DocsKey) -> PathBuf {
        self.root.join(key.as_str())
    }
}

fn io_error(operation: &'static str, key: &DocsKey, e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::PermissionDenied => Error::PermissionDenied {
            backend: "files",
            operation,
            detail: format!("{key}: {e}"),
        },
        _ => Error::backend("files", operation, Some(key.to_string()), false, e),
    }
}

#[async_trait]
impl DocsStore for FileDocsStore {
    async fn put_docs(&self, key: &DocsKey, markdown: &str) -> Result<()> {
        let path = self.path(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_error("put_docs", key, e))?;
        }
        // Write a sibling temp file and rename it over the target, so a reader never sees a
        // half-written document and a crash leaves the previous version intact.
        let tmp = path.with_extension(format!("md.tmp-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&tmp, markdown.as_bytes())
            .await
            .map_err(|e| io_error("put_docs", key, e))?;
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_error("put_docs", key, e));
        }
        Ok(())
    }

    async fn get_docs(&self, key: &DocsKey) -> Result<Option<String>> {
        match tokio::fs::read_to_string(self.path(key)).await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("get_docs", key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CommitSha, ServerId};

    fn key(server: &str, c: char) -> DocsKey {
        DocsKey::for_server(
            &ServerId::new(server).unwrap(),
            &CommitSha::new(c.to_string().repeat(40)).unwrap(),
        )
    }

    #[tokio::test]
    async fn round_trip_overwrite_and_missing() {
        let root = std::env::temp_dir().join(format!("toolshed-docs-{}", uuid::Uuid::new_v4()));
        let store = FileDocsStore::new(&root);
        let k = key("time", 'a');
        assert_eq!(store.get_docs(&k).await.unwrap(), None);
        store.put_docs(&k, "# v1").await.unwrap();
        store.put_docs(&k, "# v2").await.unwrap();
        assert_eq!(store.get_docs(&k).await.unwrap().as_deref(), Some("# v2"));
        assert_eq!(store.get_docs(&key("time", 'b')).await.unwrap(), None);
        // The file sits where the key says, and no temp file is left behind.
        let dir = root.join("docs").join("time");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![format!("{}.md", "a".repeat(40))]);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn unwritable_root_is_a_typed_error() {
        // A regular file where the root directory should be: create_dir_all must fail.
        let file =
            std::env::temp_dir().join(format!("toolshed-docs-file-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, b"x").unwrap();
        let store = FileDocsStore::new(&file);
        let err = store.put_docs(&key("time", 'a'), "# x").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Backend {
                    backend: "files",
                    ..
                }
            ),
            "{err:?}"
        );
        std::fs::remove_file(file).unwrap();
    }
}
