//! ECR, S3 and CodeBuild adapters against moto.

use toolshed_core::domain::{BuildId, CommitSha, ImageTag, RepoUrl, ServerId, Transport};
use toolshed_core::ports::{
    BuildRequest, BuildStatus, DocsKey, DocsStore, ImageBuilder, ImageStore,
};

use crate::MotoEnv;

#[tokio::test]
async fn ecr_resolves_pushed_tags_and_tells_missing_apart() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let images = &env.adapters.images;
    assert_eq!(images.repository(), env.settings.repository.uri);
    let tag = ImageTag::new("time-0123456789ab").unwrap();
    assert_eq!(images.resolve_tag(&tag).await.unwrap(), None);
    let digest = env.push_image(tag.as_str(), "a").await;
    let image = images.resolve_tag(&tag).await.unwrap().expect("pushed tag");
    assert_eq!(image.digest().as_str(), digest);
    assert_eq!(
        image.pinned(),
        format!("{}@{digest}", env.settings.repository.uri)
    );
    assert!(images.contains(&image).await.unwrap());
}

#[tokio::test]
async fn ecr_promotes_a_candidate_to_its_verified_tag() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let images = &env.adapters.images;
    let server = ServerId::new("time").unwrap();
    let commit = CommitSha::new("d".repeat(40)).unwrap();
    let build_tag = ImageTag::for_build(&server, &commit);
    env.push_image(build_tag.as_str(), "promote").await;
    let candidate = images.resolve_tag(&build_tag).await.unwrap().unwrap();
    let verified_tag = ImageTag::verified(&server, &commit, candidate.digest());

    let verified = images.promote(&candidate, &verified_tag).await.unwrap();
    assert_eq!(verified.tag(), &verified_tag);
    assert_eq!(verified.digest(), candidate.digest());
    // The image now answers to its verified tag only: the candidate rule cannot select it.
    let listed = env
        .ecr()
        .describe_images()
        .repository_name(&env.settings.repository.name)
        .send()
        .await
        .unwrap();
    let tags: Vec<&str> = listed
        .image_details()
        .iter()
        .filter(|d| d.image_digest() == Some(candidate.digest().as_str()))
        .flat_map(|d| d.image_tags())
        .map(String::as_str)
        .collect();
    assert_eq!(tags, [verified_tag.as_str()]);
    assert!(images.contains(&verified).await.unwrap());
    // A retried promotion is a success.
    let again = images.promote(&candidate, &verified_tag).await.unwrap();
    assert_eq!(again, verified);
}

#[tokio::test]
async fn ecr_errors_other_than_missing_are_errors() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let mut settings = env.settings.clone();
    settings.repository = toolshed_aws::EcrRepository::parse(&format!(
        "{}.dkr.ecr.us-east-1.amazonaws.com/does-not-exist",
        env.account
    ))
    .unwrap();
    let adapters = MotoEnv::adapters_with(&env.sdk, &env.account, settings, &env.calls);
    let err = adapters
        .images
        .resolve_tag(&ImageTag::new("x").unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RepositoryNotFound"), "{err}");
}

#[tokio::test]
async fn s3_docs_round_trip() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let docs = &env.adapters.docs;
    let key = DocsKey::for_server(
        &ServerId::new("time").unwrap(),
        &CommitSha::new("b".repeat(40)).unwrap(),
    );
    assert_eq!(docs.get_docs(&key).await.unwrap(), None);
    docs.put_docs(&key, "# Time\n\nSays the time — in UTF-8.")
        .await
        .unwrap();
    assert_eq!(
        docs.get_docs(&key).await.unwrap().as_deref(),
        Some("# Time\n\nSays the time — in UTF-8.")
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&env.sdk)
            .force_path_style(true)
            .interceptor(toolshed_aws::StaticHeader::new(
                "x-moto-account-id",
                env.account.clone(),
            ))
            .build(),
    );
    let head = s3
        .head_object()
        .bucket(&env.settings.docs_bucket)
        .key(key.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/markdown; charset=utf-8"));
}

#[tokio::test]
async fn codebuild_start_and_status() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let builder = &env.adapters.builder;
    let server_id = ServerId::new("time").unwrap();
    let commit = CommitSha::new("c".repeat(40)).unwrap();
    let request = BuildRequest {
        dockerfile: None,
        build: Default::default(),
        tag: ImageTag::for_build(&server_id, &commit),
        server_id,
        repo: RepoUrl::new("https://github.com/example/time").unwrap(),
        commit: commit.clone(),
        repository: env.settings.repository.uri.clone(),
        transport: Transport::Stdio {
            command: vec!["uvx".into(), "mcp-server-time".into()],
        },
        idempotency_token: "run-1".to_owned(),
    };
    let id = builder.start_build(&request).await.unwrap();
    let builds = env
        .codebuild()
        .batch_get_builds()
        .ids(id.as_str())
        .send()
        .await
        .unwrap();
    let b = &builds.builds()[0];
    // moto echoes the source version (it drops environment overrides: unit tests check those).
    assert_eq!(b.source_version(), Some(commit.as_str()));
    assert_eq!(b.project_name(), Some("toolshed-build"));
    assert_eq!(
        builder.build_status(&id).await.unwrap(),
        BuildStatus::Succeeded
    );

    // A package build: the generated Dockerfile replaces the repository, and no commit is sent
    // (moto records its own default source version when none is given).
    let fingerprint = CommitSha::new("d".repeat(40)).unwrap();
    let package = BuildRequest {
        dockerfile: Some("FROM public.ecr.aws/docker/library/python:3.12-slim\n".into()),
        tag: ImageTag::for_build(&request.server_id, &fingerprint),
        commit: fingerprint.clone(),
        transport: Transport::default(),
        idempotency_token: "run-2".to_owned(),
        ..request.clone()
    };
    let package_id = builder.start_build(&package).await.unwrap();
    assert_ne!(package_id, id);
    let builds = env
        .codebuild()
        .batch_get_builds()
        .ids(package_id.as_str())
        .send()
        .await
        .unwrap();
    let b = &builds.builds()[0];
    assert_eq!(b.project_name(), Some("toolshed-build"));
    assert_eq!(
        b.source_version(),
        Some("refs/heads/main"),
        "no commit was sent"
    );
    assert_eq!(
        builder.build_status(&package_id).await.unwrap(),
        BuildStatus::Succeeded
    );

    let unknown = BuildId::new("toolshed-build:00000000-0000-0000-0000-000000000000").unwrap();
    assert!(builder
        .build_status(&unknown)
        .await
        .unwrap_err()
        .is_not_found());
}
