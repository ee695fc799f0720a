//! The API on the local backend (Docker engine, SQLite, git, rmcp probe) over real HTTP, when
//! `TOOLSHED_TEST_DOCKER` is set: register the example MCP server's repository, re-verify (a real
//! build and check), launch, status, a real tool call, stop, and the re-verify conflict.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, required_env, Served};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::testing::fixtures;
use toolshed_playground_api::ApiConfig;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("toolshed-api-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_the_local_backend() {
    if required_env("TOOLSHED_TEST_DOCKER", "no Docker engine").is_none() {
        return;
    }
    let data = TempDir::new();
    let binary =
        tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-example-server"))
            .await
            .unwrap()
            .expect("example server binary");
    let repo =
        fixtures::write_server_repo(&data.0.join("repo"), &binary, fixtures::EXAMPLE_DOCKERFILE)
            .unwrap();
    let backend = LocalBackend::connect(LocalConfig {
        registry: std::env::var("TOOLSHED_TEST_REGISTRY")
            .ok()
            .filter(|r| !r.is_empty()),
        ..LocalConfig::new(data.0.clone())
    })
    .await
    .unwrap();
    let id = format!("api-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let api = Served::start_with(
        backend.toolshed.clone(),
        ApiConfig {
            backend: "local".to_owned(),
            allow_file_repos: true,
            ..support::generous()
        },
    )
    .await;
    // The local backend's API accepts file:// repositories.
    let (status, body) = api
        .post(
            "/api/servers",
            json!({"id": id, "repo": repo.as_str(), "git_ref": "main", "description": "Example MCP server"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, health) = api.get("/healthz").await;
    assert_eq!(health["backend"], "local");

    // Not verified yet: 412.
    let (status, body) = api
        .post(&format!("/api/servers/{id}/playground"), json!({}))
        .await;
    assert_error(status, &body, 412, "not_verified");

    // Re-verify: 202, then a second request while it runs is a 409.
    let (status, body) = api
        .post(&format!("/api/servers/{id}/reverify"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let url = body["status_url"].as_str().unwrap().to_owned();
    let (status, body) = api
        .post(
            &format!("/api/servers/{id}/reverify"),
            json!({"force": true}),
        )
        .await;
    assert_error(status, &body, 409, "verification_in_progress");
    let v = api
        .settled_verification(&url, Duration::from_secs(120))
        .await;
    assert_eq!(v["state"], "verified", "{v}");
    let (_, server) = api.get(&format!("/api/servers/{id}")).await;
    let tools: Vec<&str> = server["server"]["tools"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"add"), "{tools:?}");

    // Launch, wait for running, call a real tool, stop.
    let (status, body) = api
        .post(
            &format!("/api/servers/{id}/playground"),
            json!({"ttl_seconds": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let session_id = body["session"]["id"].as_str().unwrap().to_owned();
    let task = body["task_arn"].as_str().unwrap().to_owned();
    let mut running = Value::Null;
    for _ in 0..200 {
        let (status, body) = api
            .get(&format!(
                "/api/servers/{id}/playground/status?session_id={session_id}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["session"]["state"] == "running" {
            running = body;
            break;
        }
        assert_eq!(body["session"]["state"], "starting", "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(running["session"]["endpoint"]["port"].is_u64(), "{running}");
    let (status, by_task) = api
        .get(&format!(
            "/api/servers/{id}/playground/status?task_arn={task}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_task["session"]["id"], session_id.as_str());

    let (status, body) = api
        .post(
            &format!("/api/servers/{id}/execute"),
            json!({"session_id": session_id, "tool": "add", "arguments": {"a": 2, "b": 3}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["is_error"], false, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "5", "{body}");
    let (status, body) = api
        .post(
            &format!("/api/servers/{id}/execute"),
            json!({"command": "word_count {\"text\": \"one two three\"}"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "3", "{body}");
    let (status, body) = api
        .post(
            &format!("/api/servers/{id}/execute"),
            json!({"tool": "add", "arguments": {"a": "two"}}),
        )
        .await;
    assert_error(status, &body, 422, "invalid_tool_arguments");

    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("/api/playground/{session_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"]["state"], "stopped");
    let (_, body) = api
        .get(&format!(
            "/api/servers/{id}/playground/status?session_id={session_id}"
        ))
        .await;
    assert_eq!(body["session"]["state"], "stopped");
    assert_eq!(body["session"]["stop_reason"], "requested");
    api.stop().await;
}
