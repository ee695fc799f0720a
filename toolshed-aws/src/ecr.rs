//! ECR [`ImageStore`]: resolves the tags builds push to their digests.

use async_trait::async_trait;
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_ecr::Client;
use toolshed_core::domain::{ImageDigest, ImageRef, ImageTag};
use toolshed_core::ports::ImageStore;
use toolshed_core::Result;

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
}
