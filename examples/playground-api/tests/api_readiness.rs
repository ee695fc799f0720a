//! A session is `starting` until its MCP server answers, over real HTTP, with a real MCP server
//! (the example server, in process) that starts listening only after the runner reported its
//! endpoint: status `starting` then `running`, and a tool call too early answers 503
//! `session_starting` with `Retry-After`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{assert_error, Served};
use toolshed_core::adapters::mcp::{
    serve_example_server, ExampleServer, RmcpProbe, RmcpProbeConfig,
};
use toolshed_core::domain::{
    CommitSha, Endpoint, GitRef, RepoSnapshot, RepoUrl, ServerId, ServerRegistration,
};
use toolshed_core::ports::McpProbe;
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig, VerifyOptions, VerifyOutcome};
use toolshed_core::testing::ManualClock;

/// A port nobody listens on yet (bound once by the OS, then released).
async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Serves the example server on `port` until the test ends.
async fn serve_on(port: u16) -> ExampleServer {
    let server = ExampleServer::new();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let served = server.clone();
    tokio::spawn(async move {
        let _ = serve_example_server(served, listener, "/mcp", std::future::pending()).await;
    });
    server
}

fn endpoint(port: u16) -> Endpoint {
    Endpoint::new("127.0.0.1", port, "/mcp").unwrap()
}

fn probe() -> Arc<RmcpProbe> {
    Arc::new(
        RmcpProbe::with_config(
            RmcpProbeConfig::default()
                .with_backoff(Duration::from_millis(20), Duration::from_millis(200)),
        )
        .unwrap(),
    )
}

/// The API over the in-memory doubles, but speaking real MCP: a verified `example` server
/// (verified with the example server's real tool list) whose session tasks report
/// `127.0.0.1:<port>/mcp`, where nothing listens yet.
async fn served(ready_deadline: Duration) -> (Served, u16) {
    let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
    let reference = free_port().await;
    serve_on(reference).await;
    let report = probe()
        .wait_ready(&endpoint(reference), Duration::from_secs(60))
        .await
        .unwrap();
    doubles.probe.set_default_report(report);
    let url = RepoUrl::new("https://github.com/example/example").unwrap();
    let sha = CommitSha::new("a".repeat(40)).unwrap();
    doubles.source.set_commit(&url, &GitRef::main(), &sha);
    doubles.source.set_snapshot(
        &url,
        &sha,
        RepoSnapshot {
            readme: Some("# example\n\nDeterministic demo tools.\n".into()),
            files: vec!["Cargo.toml".into()],
            manifests: vec![("Cargo.toml".into(), "[package]\nname = \"x\"\n".into())],
            dockerfile: Some("FROM scratch\n".into()),
            truncated: false,
        },
    );
    let config = ToolshedConfig {
        worker_id: "api-readiness".to_owned(),
        session_ready_deadline: ready_deadline,
        ..ToolshedConfig::default()
    };
    let verifier = Toolshed::new(doubles.ports(), config.clone()).unwrap();
    let id = ServerId::new("example").unwrap();
    verifier
        .register_server(ServerRegistration::new(id.clone(), url))
        .await
        .unwrap();
    let outcome = verifier
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, VerifyOutcome::Verified { .. }),
        "{outcome:?}"
    );
    let port = free_port().await;
    doubles.runner.set_task_endpoint(Some(endpoint(port)));
    let mut ports = doubles.ports();
    ports.probe = probe();
    let toolshed = Toolshed::new(ports, config).unwrap();
    (Served::start(toolshed).await, port)
}

async fn launch(api: &Served) -> String {
    let (status, body) = api.post("/api/servers/example/playground", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["session"]["state"], "starting", "{body}");
    body["session"]["id"].as_str().unwrap().to_owned()
}

async fn status(api: &Served, session_id: &str) -> Value {
    let (status, body) = api
        .get(&format!(
            "/api/servers/example/playground/status?session_id={session_id}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn status_is_starting_until_the_server_answers_then_running() {
    let (api, port) = served(Duration::from_secs(20)).await;
    let session_id = launch(&api).await;
    let body = status(&api, &session_id).await;
    assert_eq!(body["session"]["state"], "starting", "{body}");
    assert_eq!(body["session"]["endpoint"]["port"], port, "{body}");
    assert!(body["starting_since"].is_string(), "{body}");
    assert!(body["starting_for_secs"].is_u64(), "{body}");
    assert!(body["session"].get("ready_at").is_none(), "{body}");

    serve_on(port).await;
    let body = status(&api, &session_id).await;
    assert_eq!(body["session"]["state"], "running", "{body}");
    assert!(body["session"]["ready_at"].is_string(), "{body}");
    assert!(body.get("starting_for_secs").is_none(), "{body}");
}

#[tokio::test]
async fn a_tool_call_on_a_starting_session_answers_503_with_retry_after_then_succeeds() {
    let (api, port) = served(Duration::from_millis(300)).await;
    let session_id = launch(&api).await;
    let call = json!({"session_id": session_id, "tool": "echo", "arguments": {"text": "hi"}});

    // Headers too: the shared client's answers are checked against the document by `post`.
    let response = api
        .http
        .post(format!("{}/api/servers/example/execute", api.base))
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let (status, body) = api.post("/api/servers/example/execute", call.clone()).await;
    assert_error(status, &body, 503, "session_starting");
    assert_eq!(body["details"]["session_id"], session_id.as_str(), "{body}");
    assert_eq!(body["details"]["retryable"], true, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("still starting"), "{message}");
    assert!(!message.contains("127.0.0.1"), "{message}");

    let server = serve_on(port).await;
    let (status, body) = api.post("/api/servers/example/execute", call).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "hi", "{body}");
    assert_eq!(
        server.calls(),
        1,
        "the refused calls never reached the server"
    );
}

#[tokio::test]
async fn the_document_lists_session_starting_on_the_tool_call_route() {
    let (api, _) = served(Duration::from_secs(1)).await;
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let answer = &doc["paths"]["/api/servers/{id}/execute"]["post"]["responses"]["503"];
    assert!(
        answer["description"]
            .as_str()
            .unwrap()
            .contains("session_starting"),
        "{answer}"
    );
    assert!(answer["headers"]["Retry-After"].is_object(), "{answer}");
    let states = &doc["components"]["schemas"]["SessionStateView"]["enum"];
    assert!(
        states.as_array().unwrap().contains(&json!("starting")),
        "{states}"
    );
}
