//! Sessions are `starting` until their MCP endpoint answers, with a real MCP server (the example
//! server, in process) that starts listening only after the runner reported its endpoint — as a
//! container whose server takes seconds to load.
#![cfg(feature = "mcp-server")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use toolshed_core::adapters::mcp::{
    serve_example_server, ExampleServer, RmcpProbe, RmcpProbeConfig,
};
use toolshed_core::domain::{Endpoint, SessionState, ToolCall};
use toolshed_core::ports::{Clock, McpProbe, ServerRepository};
use toolshed_core::services::{LaunchRequest, Toolshed, ToolshedConfig};
use toolshed_core::Error;

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

fn probe() -> Arc<RmcpProbe> {
    Arc::new(
        RmcpProbe::with_config(
            RmcpProbeConfig::default()
                .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
                .with_attempt_timeout(Duration::from_secs(10)),
        )
        .unwrap(),
    )
}

/// A verified `example` server whose sessions' tasks report `127.0.0.1:<port>/mcp`, where no
/// server listens yet, and a `Toolshed` speaking real MCP to it.
struct Fixture {
    h: Harness,
    toolshed: Toolshed,
    port: u16,
}

async fn fixture(config: impl FnOnce(&mut ToolshedConfig)) -> Fixture {
    let h = Harness::new();
    // The verification records the example server's real tool list.
    let reference = free_port().await;
    serve_on(reference).await;
    let report = probe()
        .wait_ready(&endpoint(reference), Duration::from_secs(60))
        .await
        .unwrap();
    h.probe.set_default_report(report);
    h.verified("example").await;
    let port = free_port().await;
    h.runner.set_task_endpoint(Some(endpoint(port)));
    let mut ports = h.ports.clone();
    ports.probe = probe();
    let mut c = h.config.clone();
    config(&mut c);
    let toolshed = Toolshed::new(ports, c).unwrap();
    Fixture { h, toolshed, port }
}

fn endpoint(port: u16) -> Endpoint {
    Endpoint::new("127.0.0.1", port, "/mcp").unwrap()
}

fn echo(text: &str) -> ToolCall {
    let mut args = serde_json::Map::new();
    args.insert("text".into(), text.into());
    ToolCall::new("echo", args).unwrap()
}

#[tokio::test]
async fn status_is_starting_until_the_endpoint_answers_then_running() {
    let f = fixture(|_| {}).await;
    let s = f
        .toolshed
        .launch_session(&f.h.id("example"), LaunchRequest::default())
        .await
        .unwrap();
    assert_eq!(s.state, SessionState::Starting);
    f.h.advance(Duration::from_secs(4));

    // The task runs and its endpoint is known, but nothing answers MCP there yet.
    let starting = f.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(starting.state, SessionState::Starting);
    assert_eq!(starting.endpoint, Some(endpoint(f.port)));
    assert_eq!(starting.ready_at, None);
    assert_eq!(
        starting.starting_for(f.h.clock.now()),
        Some(Duration::from_secs(4))
    );
    // Polling again changes nothing (no write).
    let again = f.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(again.version, starting.version);

    serve_on(f.port).await;
    let running = f.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(running.state, SessionState::Running);
    assert_eq!(running.ready_at, Some(f.h.clock.now()));
    assert_eq!(running.version, starting.version + 1);
    assert_eq!(
        f.h.repo.get_session(&s.id).await.unwrap(),
        running,
        "recorded, not only answered"
    );
}

#[tokio::test]
async fn a_tool_call_during_start_waits_for_the_server_and_succeeds() {
    let f = fixture(|c| c.session_ready_deadline = Duration::from_secs(60)).await;
    let s = f
        .toolshed
        .launch_session(&f.h.id("example"), LaunchRequest::default())
        .await
        .unwrap();
    assert_eq!(
        f.toolshed.session_status(&s.id).await.unwrap().state,
        SessionState::Starting
    );
    let port = f.port;
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        serve_on(port).await
    });
    let out = f.toolshed.execute_tool(&s.id, echo("hello")).await.unwrap();
    assert_eq!(out.content[0]["text"], "hello");
    assert_eq!(late.await.unwrap().calls(), 1);
    let s = f.toolshed.get_session(&s.id).await.unwrap();
    assert_eq!(
        s.state,
        SessionState::Running,
        "the wait recorded readiness"
    );
    assert!(s.ready_at.is_some());
}

#[tokio::test]
async fn a_tool_call_past_the_ready_deadline_is_told_the_session_is_starting() {
    let f = fixture(|c| c.session_ready_deadline = Duration::from_millis(300)).await;
    let s = f
        .toolshed
        .launch_session(&f.h.id("example"), LaunchRequest::default())
        .await
        .unwrap();
    f.h.advance(Duration::from_secs(3));
    let e = f
        .toolshed
        .execute_tool(&s.id, echo("early"))
        .await
        .unwrap_err();
    match &e {
        Error::SessionStarting {
            session_id,
            starting_for,
            retry_after,
        } => {
            assert_eq!(session_id, s.id.as_str());
            assert_eq!(*starting_for, Duration::from_secs(3));
            assert!(!retry_after.is_zero());
        }
        other => panic!("expected SessionStarting, got {other:?}"),
    }
    assert!(e.is_retryable());
    let message = e.to_string();
    assert!(message.contains("still starting"), "{message}");
    assert!(!message.contains("127.0.0.1"), "{message}");

    // Once the server listens, the same call goes through.
    let server = serve_on(f.port).await;
    let out = f.toolshed.execute_tool(&s.id, echo("later")).await.unwrap();
    assert_eq!(out.content[0]["text"], "later");
    assert_eq!(server.calls(), 1, "the early call never reached the server");
}

#[tokio::test]
async fn a_session_whose_task_ends_while_starting_is_not_running() {
    let f = fixture(|c| c.session_ready_deadline = Duration::from_secs(60)).await;
    let s = f
        .toolshed
        .launch_session(&f.h.id("example"), LaunchRequest::default())
        .await
        .unwrap();
    f.h.runner.exit_task(&s.task);
    let e = f.toolshed.execute_tool(&s.id, echo("x")).await.unwrap_err();
    assert!(
        matches!(e, Error::SessionNotRunning { ref state, .. } if state.contains("task exited")),
        "{e}"
    );
}
