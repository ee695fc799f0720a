//! Where built images live (ECR, an OCI registry).

use std::fmt::Debug;

use async_trait::async_trait;

use crate::domain::{ImageDigest, ImageRef, ImageTag};
use crate::error::{Error, Result};

/// A registry repository that verification builds push to.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ImageStore: Send + Sync + Debug {
    /// The repository builds push to, e.g. `…dkr.ecr.…/toolshed/mcp-servers`.
    fn repository(&self) -> String;

    /// Resolves a tag to its digest.
    ///
    /// # Errors
    /// Returns `Ok(None)` when the tag does not exist (never an error for "missing");
    /// `Backend` / `PermissionDenied` for everything else.
    async fn resolve_tag(&self, tag: &ImageTag) -> Result<Option<ImageRef>>;

    /// Whether the image's digest is still stored (lifecycle rules may have expired it).
    async fn contains(&self, image: &ImageRef) -> Result<bool>;

    /// Marks a built image as verified: tags its digest with `verified` (see
    /// [`ImageTag::verified`]; success when that tag already names this digest) and, where the
    /// store can drop a single tag (ECR), removes the candidate's own tag, so lifecycle rules
    /// that expire candidates (`build-…`) can never select a verified image. Returns the image
    /// under its verified tag, with the same digest.
    ///
    /// # Errors
    /// `NotFound` (kind `Image`) when the candidate's digest is gone; `AlreadyExists` (kind
    /// `Image`) when `verified` already names another digest; `Backend` / `PermissionDenied` otherwise.
    async fn promote(&self, candidate: &ImageRef, verified: &ImageTag) -> Result<ImageRef>;

    /// Resolves a tag of an image published in another repository (`registry/repository`, as
    /// an imported `server.json` names it) to its manifest digest, once, so the import records
    /// the image pinned by digest.
    ///
    /// # Errors
    /// `Ok(None)` when the tag does not exist; `InvalidInput { field: "image" }` when this store
    /// cannot look into other registries (the default: import the reference pinned by digest);
    /// `Backend` / `PermissionDenied` otherwise.
    async fn resolve_published(&self, repository: &str, tag: &str) -> Result<Option<ImageDigest>> {
        let _ = (repository, tag);
        Err(Error::invalid(
            "image",
            "this deployment does not resolve tags of other registries; import the image pinned by digest (…@sha256:…)",
        ))
    }
}
