//! S3 [`DocsStore`]: long Markdown docs under `docs/<serverId>/<commit>.md`.

use async_trait::async_trait;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use toolshed_core::ports::{DocsKey, DocsStore};
use toolshed_core::Result;

use crate::error::{sdk_error, unexpected};

/// Content type of every stored document.
pub const DOCS_CONTENT_TYPE: &str = "text/markdown; charset=utf-8";

/// Docs in one S3 bucket, keyed by [`DocsKey`].
#[derive(Debug, Clone)]
pub struct S3DocsStore {
    client: Client,
    bucket: String,
}

impl S3DocsStore {
    /// A store on `client` in `bucket`.
    pub fn new(client: Client, bucket: String) -> Self {
        Self { client, bucket }
    }
}

#[async_trait]
impl DocsStore for S3DocsStore {
    async fn put_docs(&self, key: &DocsKey, markdown: &str) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(DOCS_CONTENT_TYPE)
            .body(ByteStream::from(markdown.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| sdk_error("s3", "PutObject", Some(key.to_string()), e))?;
        Ok(())
    }

    async fn get_docs(&self, key: &DocsKey) -> Result<Option<String>> {
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None)
            }
            Err(e) => return Err(sdk_error("s3", "GetObject", Some(key.to_string()), e)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| unexpected("s3", "GetObject", Some(key.to_string()), e.to_string()))?
            .into_bytes();
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| unexpected("s3", "GetObject", Some(key.to_string()), "not UTF-8"))
    }
}
