use aws_sdk_ecr::error::ErrorMetadata;
use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
use aws_sdk_ecr::types::error::{ImageNotFoundException, RepositoryNotFoundException};
use aws_sdk_ecr::types::ImageDetail;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use toolshed_aws::{EcrImageStore, EcrRepository};
use toolshed_core::domain::ImageTag;
use toolshed_core::ports::ImageStore;
use toolshed_core::Error;

fn store(client: aws_sdk_ecr::Client) -> EcrImageStore {
    EcrImageStore::new(client, EcrRepository::parse(crate::REPO).unwrap())
}

#[tokio::test]
async fn resolves_a_tag_to_a_pinned_image() {
    let d = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|r| {
            r.repository_name() == Some("toolshed/mcp-servers")
                && r.registry_id() == Some("123456789012")
                && r.image_ids()[0].image_tag() == Some("time-aaaaaaaaaaaa")
        })
        .then_output(|| {
            DescribeImagesOutput::builder()
                .image_details(
                    ImageDetail::builder()
                        .image_digest(crate::digest().as_str())
                        .build(),
                )
                .build()
        });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&d]);
    let image = store(client)
        .resolve_tag(&ImageTag::new("time-aaaaaaaaaaaa").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        image.pinned(),
        format!("{}@{}", crate::REPO, crate::digest())
    );
}

#[tokio::test]
async fn image_not_found_is_none_other_errors_are_errors() {
    let d = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
        DescribeImagesError::ImageNotFoundException(
            ImageNotFoundException::builder()
                .message("no such tag")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&d]);
    assert_eq!(
        store(client)
            .resolve_tag(&ImageTag::new("x").unwrap())
            .await
            .unwrap(),
        None
    );

    let d = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
        DescribeImagesError::RepositoryNotFoundException(
            RepositoryNotFoundException::builder()
                .message("no repo")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&d]);
    let err = store(client)
        .resolve_tag(&ImageTag::new("x").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );

    let d = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
        DescribeImagesError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("no ecr:DescribeImages")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&d]);
    let err = store(client)
        .resolve_tag(&ImageTag::new("x").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::PermissionDenied { backend: "ecr", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn docs_are_markdown_under_their_key() {
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use aws_sdk_s3::types::error::NoSuchKey;
    use toolshed_core::domain::{CommitSha, ServerId};
    use toolshed_core::ports::{DocsKey, DocsStore};
    let put = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(|r| {
            r.bucket() == Some("docs")
                && r.key() == Some(&*format!("docs/time/{}.md", "a".repeat(40)))
                && r.content_type() == Some("text/markdown; charset=utf-8")
        })
        .then_output(|| PutObjectOutput::builder().build());
    let get = mock!(aws_sdk_s3::Client::get_object)
        .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
    let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put, &get]);
    let docs = toolshed_aws::S3DocsStore::new(client, "docs".into());
    let key = DocsKey::for_server(
        &ServerId::new("time").unwrap(),
        &CommitSha::new("a".repeat(40)).unwrap(),
    );
    docs.put_docs(&key, "# hi").await.unwrap();
    assert_eq!(put.num_calls(), 1);
    assert_eq!(docs.get_docs(&key).await.unwrap(), None);
}
