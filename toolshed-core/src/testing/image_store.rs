//! An in-memory image registry.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::clock::lock;
use crate::domain::{ImageDigest, ImageRef, ImageTag};
use crate::error::{EntityKind, Error, Result};
use crate::ports::ImageStore;

/// Repository name the in-memory store reports by default.
pub const TEST_REPOSITORY: &str = "registry.test/toolshed/mcp-servers";

#[derive(Debug, Default)]
struct Inner {
    tags: HashMap<ImageTag, ImageDigest>,
    digests: HashSet<ImageDigest>,
    resolve_calls: u32,
    /// Images of other registries: `(repository, tag)` → digest.
    published: HashMap<(String, String), ImageDigest>,
}

/// An [`ImageStore`] over maps: tags point at digests; deleting an image removes its digest
/// (as a lifecycle rule would) and every tag pointing at it.
#[derive(Debug)]
pub struct InMemoryImageStore {
    repository: String,
    inner: Mutex<Inner>,
}

impl Default for InMemoryImageStore {
    fn default() -> Self {
        Self::new(TEST_REPOSITORY)
    }
}

impl InMemoryImageStore {
    /// An empty store for `repository`.
    pub fn new(repository: impl Into<String>) -> Self {
        Self {
            repository: repository.into(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A digest derived from `seed`, for tests that need distinct, valid digests.
    pub fn digest_for(seed: &str) -> ImageDigest {
        let hex = hex::encode(Sha256::digest(seed.as_bytes()));
        match ImageDigest::new(format!("sha256:{hex}")) {
            Ok(d) => d,
            Err(_) => unreachable!("a sha256 hex digest is always a valid ImageDigest"),
        }
    }

    /// Pushes `tag` → `digest` (moving the tag if it existed) and returns the image.
    pub fn push(&self, tag: &ImageTag, digest: &ImageDigest) -> Result<ImageRef> {
        let image = ImageRef::new(self.repository.clone(), tag.clone(), digest.clone())?;
        let mut inner = lock(&self.inner);
        inner.tags.insert(tag.clone(), digest.clone());
        inner.digests.insert(digest.clone());
        Ok(image)
    }

    /// Deletes the image with this digest and every tag pointing at it.
    pub fn delete(&self, digest: &ImageDigest) {
        let mut inner = lock(&self.inner);
        inner.digests.remove(digest);
        inner.tags.retain(|_, d| d != digest);
    }

    /// Whether any tag or digest is stored.
    pub fn is_empty(&self) -> bool {
        lock(&self.inner).digests.is_empty()
    }

    /// Publishes `repository:tag` → `digest` in an "other registry" that
    /// [`ImageStore::resolve_published`] reads (imports of `oci` packages by tag).
    pub fn publish_elsewhere(&self, repository: &str, tag: &str, digest: &ImageDigest) {
        lock(&self.inner)
            .published
            .insert((repository.to_owned(), tag.to_owned()), digest.clone());
    }

    /// How many times `resolve_tag` was called.
    pub fn resolve_calls(&self) -> u32 {
        lock(&self.inner).resolve_calls
    }
}

#[async_trait]
impl ImageStore for InMemoryImageStore {
    async fn resolve_published(&self, repository: &str, tag: &str) -> Result<Option<ImageDigest>> {
        Ok(lock(&self.inner)
            .published
            .get(&(repository.to_owned(), tag.to_owned()))
            .cloned())
    }

    fn repository(&self) -> String {
        self.repository.clone()
    }

    async fn resolve_tag(&self, tag: &ImageTag) -> Result<Option<ImageRef>> {
        let digest = {
            let mut inner = lock(&self.inner);
            inner.resolve_calls += 1;
            inner.tags.get(tag).cloned()
        };
        digest
            .map(|d| ImageRef::new(self.repository.clone(), tag.clone(), d))
            .transpose()
    }

    async fn contains(&self, image: &ImageRef) -> Result<bool> {
        Ok(lock(&self.inner).digests.contains(image.digest()))
    }

    async fn promote(&self, candidate: &ImageRef, verified: &ImageTag) -> Result<ImageRef> {
        let mut inner = lock(&self.inner);
        if !inner.digests.contains(candidate.digest()) {
            return Err(Error::not_found(EntityKind::Image, candidate));
        }
        match inner.tags.get(verified) {
            Some(d) if d != candidate.digest() => {
                return Err(Error::AlreadyExists {
                    kind: EntityKind::Image,
                    id: format!("{verified} (names {d})"),
                })
            }
            _ => {}
        }
        inner
            .tags
            .insert(verified.clone(), candidate.digest().clone());
        // Like ECR: the candidate tag goes, the image stays under its verified tag.
        if candidate.tag() != verified
            && inner.tags.get(candidate.tag()) == Some(candidate.digest())
        {
            inner.tags.remove(candidate.tag());
        }
        ImageRef::new(
            self.repository.clone(),
            verified.clone(),
            candidate.digest().clone(),
        )
    }
}
