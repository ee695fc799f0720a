//! The API on the AWS wiring (`AwsAdapters::ports` over the `toolshed-aws` adapters) against
//! moto (`TOOLSHED_TEST_MOTO_ENDPOINT`), over real HTTP: register, re-verify (CodeBuild → ECR →
//! ECS check task → DynamoDB), launch, status by id and by task ARN, execute, stop.
//! moto runs no containers, so the MCP probe is the fake one and git is in memory.

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::{assert_error, Served};
use toolshed_aws::testing::MotoEnv;
use toolshed_core::adapters::heuristic::HeuristicMetadataGenerator;
use toolshed_core::domain::{CommitSha, GitRef, ImageTag, RepoUrl, ServerId, ToolCallOutput};
use toolshed_core::ports::{ServerRepository, TaskRunner};
use toolshed_core::services::{Toolshed, ToolshedConfig};
use toolshed_core::testing::{FakeMcpProbe, InMemorySourceRepository, ManualClock};

const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn the_api_on_the_aws_adapters_against_moto() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let secs = chrono::Utc::now().timestamp();
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::from_timestamp(secs, 0).unwrap(),
    ));
    let probe = Arc::new(FakeMcpProbe::new());
    let source = Arc::new(InMemorySourceRepository::new());
    let metadata = Arc::new(HeuristicMetadataGenerator::new(clock.clone()));
    let toolshed = Toolshed::new(
        env.adapters
            .ports(probe.clone(), source.clone(), metadata, clock.clone()),
        ToolshedConfig {
            build_poll_interval: Duration::from_millis(10),
            task_poll_interval: Duration::from_millis(10),
            ..ToolshedConfig::default()
        },
    )
    .unwrap();
    let api = Served::start(toolshed).await;

    let (status, body) = api
        .post(
            "/api/servers",
            json!({"id": "clock", "repo": "https://github.com/example/clock", "git_ref": "main"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = ServerId::new("clock").unwrap();
    let commit = CommitSha::new(COMMIT).unwrap();
    source.set_commit(
        &RepoUrl::new("https://github.com/example/clock").unwrap(),
        &GitRef::main(),
        &commit,
    );
    // 412 before any verification, read from DynamoDB.
    let (status, body) = api.post("/api/servers/clock/playground", json!({})).await;
    assert_error(status, &body, 412, "not_verified");

    // The build's push, played by hand (moto's CodeBuild runs nothing).
    let digest = env
        .push_image(ImageTag::for_build(&id, &commit).as_str(), "clock")
        .await;
    let (status, body) = api.post("/api/servers/clock/reverify", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let url = body["status_url"].as_str().unwrap().to_owned();
    let run = api
        .settled_verification(&url, Duration::from_secs(15))
        .await;
    assert_eq!(run["state"], "verified", "{run}");
    let (_, body) = api.get("/api/servers/clock").await;
    assert!(
        body["server"]["image"].to_string().contains(&digest),
        "{body}"
    );
    assert_eq!(env.calls.count("CodeBuild.StartBuild"), 1);
    // Unchanged commit: up to date, no second build.
    let (status, body) = api.post("/api/servers/clock/reverify", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "up_to_date");
    assert_eq!(env.calls.count("CodeBuild.StartBuild"), 1);

    // Launch → ECS RunTask; status by session id and by task ARN (DescribeTasks).
    let (status, body) = api.post("/api/servers/clock/playground", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let session_id = body["session"]["id"].as_str().unwrap().to_owned();
    let task_arn = body["task_arn"].as_str().unwrap().to_owned();
    assert!(task_arn.starts_with("arn:aws:ecs:"), "{task_arn}");
    let (status, body) = api
        .get(&format!(
            "/api/servers/clock/playground/status?taskArn={task_arn}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"]["id"], session_id.as_str());
    assert_eq!(body["session"]["state"], "running");
    let host = body["session"]["endpoint"]["host"].as_str().unwrap();
    assert!(host.parse::<std::net::Ipv4Addr>().is_ok(), "{host}");

    probe.set_tool_result(
        "get_current_time",
        ToolCallOutput {
            content: vec![json!({"type": "text", "text": "12:00"})],
            structured: None,
            is_error: false,
            truncated: false,
        },
    );
    let (status, body) = api
        .post(
            "/api/servers/clock/execute",
            json!({"taskArn": task_arn, "tool": "get_current_time", "arguments": {"timezone": "UTC"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "12:00");
    assert_eq!(probe.calls().last().unwrap().endpoint.host, host);

    let (status, body) = api
        .post(
            "/api/servers/clock/playground/stop",
            json!({"session_id": session_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"]["state"], "stopped");
    assert!(env
        .adapters
        .tasks
        .list_managed(None, 100)
        .await
        .unwrap()
        .tasks
        .is_empty());
    let counts = env
        .adapters
        .repository
        .count_live_sessions(&id)
        .await
        .unwrap();
    assert_eq!(counts.server, 0);
    let (status, body) = api.get("/api/servers/unknown/docs").await;
    assert_error(status, &body, 404, "not_found");
    api.stop().await;
}
