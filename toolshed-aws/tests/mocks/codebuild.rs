use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
use aws_sdk_codebuild::operation::start_build::{StartBuildInput, StartBuildOutput};
use aws_sdk_codebuild::types::{
    Build, BuildPhase, BuildPhaseType, LogsLocation, PhaseContext, StatusType,
};
use aws_sdk_codebuild::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use toolshed_aws::{CodeBuildImageBuilder, CodeBuildSettings};
use toolshed_core::domain::{
    BuildId, BuildSpec, CommitSha, ImageTag, RepoUrl, ServerId, Transport,
};
use toolshed_core::ports::{BuildRequest, BuildStatus, ImageBuilder};

use crate::Captured;

fn builder(client: Client) -> CodeBuildImageBuilder {
    CodeBuildImageBuilder::new(
        client,
        CodeBuildSettings {
            project: "toolshed-build".into(),
            repository_uri: crate::REPO.into(),
            region: "eu-west-1".into(),
        },
    )
}

fn request(transport: Transport) -> BuildRequest {
    let server_id = ServerId::new("time").unwrap();
    let commit = CommitSha::new("abcdef0123456789abcdef0123456789abcdef01").unwrap();
    BuildRequest {
        dockerfile: None,
        tag: ImageTag::for_build(&server_id, &commit),
        server_id,
        repo: RepoUrl::new("https://github.com/example/time").unwrap(),
        commit,
        repository: crate::REPO.into(),
        transport,
        build: Default::default(),
        idempotency_token: "run-0123".into(),
    }
}

fn env_of(req: &StartBuildInput) -> Vec<(String, String)> {
    req.environment_variables_override()
        .iter()
        .map(|e| (e.name().to_owned(), e.value().to_owned()))
        .collect()
}

#[tokio::test]
async fn start_build_request_shape() {
    for (transport, mcp, stdio) in [
        (Transport::default(), "http", None),
        (
            Transport::Stdio {
                command: vec!["uvx".into(), "mcp-server-time".into()],
            },
            "stdio",
            Some(r#"["uvx","mcp-server-time"]"#),
        ),
    ] {
        let seen = Captured::<StartBuildInput>::default();
        let s = seen.clone();
        let start = mock!(Client::start_build)
            .match_requests(move |r| s.put(r))
            .then_output(|| {
                StartBuildOutput::builder()
                    .build_value(Build::builder().id("toolshed-build:1").build())
                    .build()
            });
        let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&start]);
        let id = builder(client)
            .start_build(&request(transport))
            .await
            .unwrap();
        assert_eq!(id.as_str(), "toolshed-build:1");
        let req = seen.get();
        assert_eq!(req.project_name(), Some("toolshed-build"));
        assert_eq!(
            req.source_location_override(),
            Some("https://github.com/example/time")
        );
        assert_eq!(
            req.source_version(),
            Some("abcdef0123456789abcdef0123456789abcdef01")
        );
        assert_eq!(req.idempotency_token(), Some("run-0123"));
        let env = env_of(&req);
        assert!(
            env.contains(&("IMAGE_TAG".into(), "build-time-abcdef012345".into())),
            "{env:?}"
        );
        assert!(env.contains(&("SERVER_ID".into(), "time".into())));
        assert!(env.contains(&("REPOSITORY_URI".into(), crate::REPO.into())));
        assert!(env.contains(&("MCP_TRANSPORT".into(), mcp.into())));
        assert_eq!(
            env.iter()
                .find(|(k, _)| k == "MCP_STDIO_COMMAND")
                .map(|(_, v)| v.as_str()),
            stdio
        );
    }
}

#[tokio::test]
async fn start_build_passes_the_build_spec_as_plain_values() {
    let hostile = "$(touch /tmp/x); a; rm -rf / `id` \"q\" 'q'";
    let mut req = request(Transport::default());
    req.build = BuildSpec {
        context: "servers/time".into(),
        dockerfile: "docker/Dockerfile.prod".into(),
        args: [("VERSION".to_owned(), hostile.to_owned())].into(),
    }
    .checked()
    .unwrap();
    req.tag = ImageTag::for_build_spec(&req.server_id, &req.commit, &req.build);
    let seen = Captured::<StartBuildInput>::default();
    let s = seen.clone();
    let start = mock!(Client::start_build)
        .match_requests(move |r| s.put(r))
        .then_output(|| {
            StartBuildOutput::builder()
                .build_value(Build::builder().id("toolshed-build:2").build())
                .build()
        });
    let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&start]);
    builder(client).start_build(&req).await.unwrap();
    let env = env_of(&seen.get());
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing: {env:?}"))
    };
    assert_eq!(get("BUILD_CONTEXT"), "servers/time");
    assert_eq!(get("DOCKERFILE"), "docker/Dockerfile.prod");
    // The arguments as one JSON object, the hostile value byte for byte.
    let args: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&get("BUILD_ARGS")).unwrap();
    assert_eq!(args.get("VERSION").map(String::as_str), Some(hostile));
    // The tag names the spec and still ends with the commit, as the buildspec requires.
    let tag = get("IMAGE_TAG");
    assert!(
        tag.starts_with("build-time_") && tag.ends_with("-abcdef012345"),
        "{tag}"
    );

    // The default spec: the repository root's Dockerfile, no arguments.
    let seen = Captured::<StartBuildInput>::default();
    let s = seen.clone();
    let start = mock!(Client::start_build)
        .match_requests(move |r| s.put(r))
        .then_output(|| {
            StartBuildOutput::builder()
                .build_value(Build::builder().id("toolshed-build:3").build())
                .build()
        });
    let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&start]);
    builder(client)
        .start_build(&request(Transport::default()))
        .await
        .unwrap();
    let env = env_of(&seen.get());
    for (k, v) in [
        ("BUILD_CONTEXT", "."),
        ("DOCKERFILE", "Dockerfile"),
        ("BUILD_ARGS", "{}"),
    ] {
        assert!(env.contains(&(k.into(), v.into())), "{k}: {env:?}");
    }
}

fn failed_build(status: StatusType, phase: BuildPhaseType, phase_status: StatusType) -> Build {
    Build::builder()
        .id("toolshed-build:1")
        .build_status(status)
        .current_phase("COMPLETED")
        .phases(
            BuildPhase::builder()
                .phase_type(BuildPhaseType::Submitted)
                .phase_status(StatusType::Succeeded)
                .build(),
        )
        .phases(
            BuildPhase::builder()
                .phase_type(phase)
                .phase_status(phase_status)
                .contexts(
                    PhaseContext::builder()
                        .status_code("COMMAND_EXECUTION_ERROR")
                        .message("docker build exited with 1")
                        .build(),
                )
                .build(),
        )
        .logs(
            LogsLocation::builder()
                .deep_link("https://console.aws.amazon.com/cloudwatch/home#logs")
                .build(),
        )
        .build()
}

#[tokio::test]
async fn build_failures_name_the_phase() {
    let cases = [
        (
            StatusType::Failed,
            BuildPhaseType::Build,
            StatusType::Failed,
            "BUILD",
            false,
        ),
        (
            StatusType::Fault,
            BuildPhaseType::Provisioning,
            StatusType::Fault,
            "PROVISIONING",
            true,
        ),
        (
            StatusType::Failed,
            BuildPhaseType::DownloadSource,
            StatusType::Failed,
            "DOWNLOAD_SOURCE",
            true,
        ),
        (
            StatusType::TimedOut,
            BuildPhaseType::Build,
            StatusType::TimedOut,
            "BUILD",
            true,
        ),
        (
            StatusType::Failed,
            BuildPhaseType::PostBuild,
            StatusType::Failed,
            "POST_BUILD",
            false,
        ),
    ];
    for (status, phase, phase_status, name, retry) in cases {
        let b = failed_build(status, phase, phase_status);
        let get = mock!(Client::batch_get_builds)
            .then_output(move || BatchGetBuildsOutput::builder().builds(b.clone()).build());
        let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&get]);
        let got = builder(client)
            .build_status(&BuildId::new("toolshed-build:1").unwrap())
            .await
            .unwrap();
        match got {
            BuildStatus::Failed {
                phase,
                reason,
                log_url,
                retryable,
            } => {
                assert_eq!(phase.as_deref(), Some(name));
                assert!(
                    reason.contains("docker build exited with 1") && reason.contains(name),
                    "{reason}"
                );
                assert_eq!(
                    log_url.as_deref(),
                    Some("https://console.aws.amazon.com/cloudwatch/home#logs")
                );
                assert_eq!(retryable, retry, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn in_progress_succeeded_and_unknown_builds() {
    let get = mock!(Client::batch_get_builds).then_output(|| {
        BatchGetBuildsOutput::builder()
            .builds(
                Build::builder()
                    .id("toolshed-build:1")
                    .build_status(StatusType::InProgress)
                    .current_phase("BUILD")
                    .build(),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&get]);
    let got = builder(client)
        .build_status(&BuildId::new("toolshed-build:1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        got,
        BuildStatus::InProgress {
            phase: Some("BUILD".into())
        }
    );

    let get = mock!(Client::batch_get_builds).then_output(|| {
        BatchGetBuildsOutput::builder()
            .builds_not_found("toolshed-build:2")
            .build()
    });
    let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&get]);
    let err = builder(client)
        .build_status(&BuildId::new("toolshed-build:2").unwrap())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn a_generated_package_build_is_refused_before_any_call() {
    // No rule: any call to CodeBuild would fail the test with an unmatched request.
    let start = mock!(Client::start_build).then_output(|| StartBuildOutput::builder().build());
    let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&start]);
    let mut req = request(Transport::default());
    req.dockerfile = Some("FROM python:3.12-slim\n".into());
    let err = builder(client).start_build(&req).await.unwrap_err();
    assert!(
        matches!(&err, toolshed_core::Error::InvalidInput { field, .. } if *field == "build"),
        "{err:?}"
    );
    assert!(err.to_string().contains("imported from a package"), "{err}");
    assert_eq!(start.num_calls(), 0, "CodeBuild was not called");
}
