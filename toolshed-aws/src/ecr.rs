//! ECR [`ImageStore`]: resolves the tags builds push to their digests, and promotes a verified
//! build from its candidate tag (`build-…`, expired by the lifecycle policy) to its verified tag
//! (`verified-…`, never expired).

use async_trait::async_trait;
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::operation::put_image::PutImageError;
use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_ecr::Client;
use toolshed_core::domain::{ImageDigest, ImageRef, ImageTag};
use toolshed_core::error::EntityKind;
use toolshed_core::ports::ImageStore;
use toolshed_core::{Error, Result};

use crate::config::EcrRepository;
use crate::error::{sdk_error, unexpected};

/// The ECR repository verification builds push to.
#[derive(Debug, Clone)]
pub struct EcrImageStore {
    client: Client,
    repository: EcrRepository,
}

impl EcrImageStore {
    /// A store on `client` for `repository`.
    pub fn new(client: Client, repository: EcrRepository) -> Self {
        Self { client, repository }
    }

    /// DescribeImages of one image id: `Ok(None)` when ECR says the image does not exist.
    async fn describe(
        &self,
        id: ImageIdentifier,
        what: &str,
    ) -> Result<Option<aws_sdk_ecr::types::ImageDetail>> {
        let res = self
            .client
            .describe_images()
            .repository_name(&self.repository.name)
            .set_registry_id(self.repository.registry_id.clone())
            .image_ids(id)
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.image_details().first().cloned()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DescribeImagesError::ImageNotFoundException(_))
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error("ecr", "DescribeImages", Some(what.to_owned()), e)),
        }
    }
}

#[async_trait]
impl ImageStore for EcrImageStore {
    fn repository(&self) -> String {
        self.repository.uri.clone()
    }

    async fn resolve_tag(&self, tag: &ImageTag) -> Result<Option<ImageRef>> {
        let id = ImageIdentifier::builder().image_tag(tag.as_str()).build();
        let Some(detail) = self.describe(id, tag.as_str()).await? else {
            return Ok(None);
        };
        let digest = detail.image_digest().ok_or_else(|| {
            unexpected(
                "ecr",
                "DescribeImages",
                Some(tag.to_string()),
                "image without digest",
            )
        })?;
        let digest = ImageDigest::new(digest)?;
        Ok(Some(ImageRef::new(
            self.repository.uri.clone(),
            tag.clone(),
            digest,
        )?))
    }

    async fn contains(&self, image: &ImageRef) -> Result<bool> {
        let id = ImageIdentifier::builder()
            .image_digest(image.digest().as_str())
            .build();
        Ok(self.describe(id, image.digest().as_str()).await?.is_some())
    }

    async fn promote(&self, candidate: &ImageRef, verified: &ImageTag) -> Result<ImageRef> {
        let repo = &self.repository;
        let digest = candidate.digest().as_str();
        let what = Some(verified.to_string());
        // The candidate's manifest, to put again under the verified tag (ECR re-tags by PutImage).
        let got = self
            .client
            .batch_get_image()
            .repository_name(&repo.name)
            .set_registry_id(repo.registry_id.clone())
            .image_ids(ImageIdentifier::builder().image_digest(digest).build())
            .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
            .accepted_media_types("application/vnd.docker.distribution.manifest.list.v2+json")
            .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
            .accepted_media_types("application/vnd.oci.image.index.v1+json")
            .send()
            .await
            .map_err(|e| sdk_error("ecr", "BatchGetImage", what.clone(), e))?;
        let Some(image) = got.images().first() else {
            return Err(Error::not_found(EntityKind::Image, candidate));
        };
        let manifest = image.image_manifest().ok_or_else(|| {
            unexpected(
                "ecr",
                "BatchGetImage",
                what.clone(),
                "image without manifest",
            )
        })?;
        let put = self
            .client
            .put_image()
            .repository_name(&repo.name)
            .set_registry_id(repo.registry_id.clone())
            .image_manifest(manifest)
            .set_image_manifest_media_type(image.image_manifest_media_type().map(str::to_owned))
            .image_tag(verified.as_str())
            .image_digest(digest)
            .send()
            .await;
        match put {
            Ok(_) => {}
            // This tag already names this very image: promoted before (a retried step).
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutImageError::ImageAlreadyExistsException(_))
                ) => {}
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutImageError::ImageTagAlreadyExistsException(_))
                ) =>
            {
                // Immutable tags: fine when the tag names this digest, a conflict otherwise.
                let named = self.resolve_tag(verified).await?;
                if named.as_ref().map(ImageRef::digest) != Some(candidate.digest()) {
                    return Err(Error::AlreadyExists {
                        kind: EntityKind::Image,
                        id: verified.to_string(),
                    });
                }
            }
            Err(e) => return Err(sdk_error("ecr", "PutImage", what, e)),
        }
        if candidate.tag() != verified {
            // Only the candidate tag goes: the image itself keeps its verified tag.
            let out = self
                .client
                .batch_delete_image()
                .repository_name(&repo.name)
                .set_registry_id(repo.registry_id.clone())
                .image_ids(
                    ImageIdentifier::builder()
                        .image_tag(candidate.tag().as_str())
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_error("ecr", "BatchDeleteImage", what.clone(), e))?;
            if let Some(f) = out.failures().iter().find(|f| {
                !matches!(
                    f.failure_code(),
                    Some(aws_sdk_ecr::types::ImageFailureCode::ImageNotFound)
                        | Some(aws_sdk_ecr::types::ImageFailureCode::ImageTagDoesNotMatchDigest)
                )
            }) {
                // Retryable: the verified tag exists; a retried step removes the candidate tag.
                return Err(Error::backend(
                    "ecr",
                    "BatchDeleteImage",
                    Some(candidate.tag().to_string()),
                    true,
                    crate::error::AwsError::unexpected(
                        "BatchDeleteImage",
                        f.failure_reason()
                            .unwrap_or("cannot remove the candidate tag"),
                    ),
                ));
            }
        }
        tracing::info!(image = %candidate, tag = %verified, "image promoted to verified");
        ImageRef::new(
            repo.uri.clone(),
            verified.clone(),
            candidate.digest().clone(),
        )
    }
}
