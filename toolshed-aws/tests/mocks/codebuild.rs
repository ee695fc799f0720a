use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
use aws_sdk_codebuild::operation::start_build::{StartBuildInput, StartBuildOutput};
use aws_sdk_codebuild::types::{
    Build, BuildPhase, BuildPhaseType, EnvironmentVariableType, LogsLocation, PhaseContext,
    SourceType, StatusType,
};
use aws_sdk_codebuild::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use toolshed_aws::codebuild::{
    package_build_from, BUILDSPEC, DEFAULT_PYTHON_BASE_IMAGE, MAX_INLINE_DOCKERFILE_B64,
};
use toolshed_aws::{CodeBuildImageBuilder, CodeBuildSettings};
use toolshed_core::domain::server_json::{PackageChoice, ServerManifest};
use toolshed_core::domain::{
    BuildId, BuildSpec, CommitSha, ImageTag, RepoUrl, ServerId, ServerOrigin, Transport,
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

/// A pypi server imported from a `server.json` whose secret setting has a default: the import
/// drops it, and nothing of it may reach the build.
fn imported_pypi_request() -> BuildRequest {
    let doc = serde_json::json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": "io.github.example/fetch",
        "description": "Fetches pages",
        "version": "2025.4.7",
        "packages": [{
            "registryType": "pypi", "identifier": "mcp-server-fetch", "version": "2025.4.7",
            "transport": {"type": "stdio"},
            "environmentVariables": [
                {"name": "FETCH_TOKEN", "isSecret": true, "default": "leaked-secret-value"}
            ]
        }]
    });
    let plan = ServerManifest::parse(doc.to_string().as_bytes())
        .unwrap()
        .plan(PackageChoice::Preferred)
        .unwrap();
    let settings = package_build_from(|_| None).unwrap();
    let dockerfile = plan.dockerfile(&settings).expect("a pypi package is built");
    let origin = ServerOrigin::Imported {
        registry_name: plan.registry_name.clone(),
        source: plan.source.clone(),
    };
    let fingerprint = origin.fingerprint().unwrap();
    BuildRequest {
        dockerfile: Some(dockerfile),
        tag: ImageTag::for_build(&plan.server_id, &fingerprint),
        server_id: plan.server_id.clone(),
        repo: RepoUrl::new("https://github.com/example/fetch").unwrap(),
        commit: fingerprint,
        repository: crate::REPO.into(),
        transport: plan.transport.clone(),
        build: Default::default(),
        idempotency_token: "run-0456".into(),
    }
}

#[tokio::test]
async fn a_package_build_carries_its_dockerfile_and_no_source() {
    let req = imported_pypi_request();
    let dockerfile = req.dockerfile.clone().unwrap();
    assert!(
        dockerfile.contains(&format!("FROM {DEFAULT_PYTHON_BASE_IMAGE}\n")),
        "{dockerfile}"
    );
    let seen = Captured::<StartBuildInput>::default();
    let s = seen.clone();
    let start = mock!(Client::start_build)
        .match_requests(move |r| s.put(r))
        .then_output(|| {
            StartBuildOutput::builder()
                .build_value(Build::builder().id("toolshed-build:7").build())
                .build()
        });
    let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&start]);
    let id = builder(client).start_build(&req).await.unwrap();
    assert_eq!(id.as_str(), "toolshed-build:7");
    let sent = seen.get();
    // No repository: no clone, and the buildspec travels with the build.
    assert_eq!(sent.source_type_override(), Some(&SourceType::NoSource));
    assert_eq!(sent.buildspec_override(), Some(BUILDSPEC));
    assert!(BUILDSPEC.contains("INLINE_DOCKERFILE_B64"));
    assert_eq!(sent.source_location_override(), None);
    assert_eq!(sent.source_version(), None);
    assert_eq!(sent.idempotency_token(), Some("run-0456"));

    let vars = sent.environment_variables_override();
    assert!(
        vars.iter()
            .all(|v| v.r#type() == Some(&EnvironmentVariableType::Plaintext)),
        "only plain values, no secret references: {vars:?}"
    );
    let env = env_of(&sent);
    let mut names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "IMAGE_TAG",
            "INLINE_DOCKERFILE_B64",
            "MCP_STDIO_COMMAND",
            "MCP_TRANSPORT",
            "REPOSITORY_URI",
            "SERVER_ID",
            "SOURCE_FINGERPRINT",
        ]
    );
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let decoded = aws_smithy_types::base64::decode(get("INLINE_DOCKERFILE_B64")).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), dockerfile);
    // The fingerprint stands in for the commit, in the variable and in the tag.
    let fingerprint = req.commit.as_str();
    assert_eq!(get("SOURCE_FINGERPRINT"), fingerprint);
    assert_eq!(
        get("IMAGE_TAG"),
        format!("build-{}-{}", req.server_id, &fingerprint[..12])
    );
    assert_eq!(get("MCP_TRANSPORT"), "stdio");
    assert_eq!(get("MCP_STDIO_COMMAND"), r#"["mcp-server-fetch"]"#);
    assert!(
        env.iter()
            .all(|(_, v)| !v.contains("leaked-secret-value") && !v.contains("FETCH_TOKEN")),
        "{env:?}"
    );
    assert!(!dockerfile.contains("leaked-secret-value"));
}

#[tokio::test]
async fn a_too_large_generated_dockerfile_is_refused_before_any_call() {
    let start = mock!(Client::start_build).then_output(|| {
        StartBuildOutput::builder()
            .build_value(Build::builder().id("toolshed-build:8").build())
            .build()
    });
    let client = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&start]);
    let builder = builder(client);
    let mut req = imported_pypi_request();
    // 3 bytes → 4 base64 characters: exactly at the bound, then one block over it.
    let limit_bytes = MAX_INLINE_DOCKERFILE_B64 / 4 * 3;
    req.dockerfile = Some(format!("FROM scratch\n#{}\n", "x".repeat(limit_bytes - 15)));
    assert_eq!(req.dockerfile.as_ref().unwrap().len(), limit_bytes);
    builder.start_build(&req).await.expect("at the bound");
    assert_eq!(start.num_calls(), 1);

    req.dockerfile = Some(format!("FROM scratch\n#{}\n", "x".repeat(limit_bytes - 14)));
    let err = builder.start_build(&req).await.unwrap_err();
    assert!(
        matches!(&err, toolshed_core::Error::InvalidInput { field, .. } if *field == "build"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(req.server_id.as_str()) && text.contains("8192"),
        "{text}"
    );
    assert!(
        !err.is_retryable(),
        "the same package gives the same Dockerfile"
    );
    assert_eq!(start.num_calls(), 1, "CodeBuild was not called again");
}
