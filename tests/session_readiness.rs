//! On the real engine, a session is `starting` while its container runs but its MCP server is
//! still loading: a real Python MCP server (PyPI `mcp`) that sleeps a few seconds before it
//! listens (`mcp_servers/slow_server.py`), in an image built `FROM` the local Python image
//! (`TOOLSHED_TEST_PYTHON_IMAGE`, made by `scripts/python-base-image.sh`).
//!
//! A tool call with a short readiness deadline is told `SessionStarting`; one with a longer
//! deadline waits for the server and gets its answer; the session is then `running`.

use std::time::Duration;

use toolshed_core::domain::{ServerId, ServerRegistration, SessionState, ToolCall, Transport};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::services::{LaunchRequest, Toolshed, ToolshedConfig, VerifyOptions};
use toolshed_core::Error;
use toolshed_tests::{backend, git_repo, TempDir};

/// How long the server loads before it listens: longer than a launch and one status poll take,
/// so the first poll sees it loading.
const LOAD_SECS: u32 = 8;

/// The same services with another readiness deadline for tool calls.
fn with_ready_deadline(ts: &Toolshed, deadline: Duration) -> Toolshed {
    Toolshed::new(
        ts.ports().clone(),
        ToolshedConfig {
            session_ready_deadline: deadline,
            ..ts.config().clone()
        },
    )
    .unwrap()
}

fn echo(text: &str) -> ToolCall {
    let mut args = serde_json::Map::new();
    args.insert("text".into(), text.into());
    ToolCall::new("echo", args).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_python_server_is_starting_until_it_answers_mcp() {
    let test = "a_slow_python_server_is_starting_until_it_answers_mcp";
    if !backend("TOOLSHED_TEST_DOCKER", test) || !backend("TOOLSHED_TEST_PYTHON_IMAGE", test) {
        return;
    }
    let image = std::env::var("TOOLSHED_TEST_PYTHON_IMAGE").unwrap();
    let data = TempDir::new("toolshed-slow-start");
    let script = include_str!("mcp_servers/slow_server.py");
    let dockerfile = format!(
        "FROM {image}\nCOPY slow_server.py /app/slow_server.py\nEXPOSE 8000\n\
         ENTRYPOINT [\"/opt/mcp/bin/python\", \"/app/slow_server.py\", \"{LOAD_SECS}\"]\n"
    );
    let repo = git_repo(
        &data.0.join("repo"),
        &[("Dockerfile", &dockerfile), ("slow_server.py", script)],
    );
    let backend = LocalBackend::connect(LocalConfig::new(data.0.join("state")))
        .await
        .unwrap();
    let ts = &backend.toolshed;
    let id = ServerId::new(format!(
        "py-slow-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
    .unwrap();
    ts.register_server(ServerRegistration {
        transport: Transport::Http {
            port: 8000,
            path: "/mcp".into(),
        },
        ..ServerRegistration::new(id.clone(), repo)
    })
    .await
    .unwrap();
    // The verification waits for the MCP handshake itself.
    let outcome = ts
        .verify_server(&id, VerifyOptions::default())
        .await
        .expect("the slow server verifies");
    let tools: Vec<&str> = outcome
        .server()
        .tools
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(tools, ["echo"]);

    let session = ts
        .launch_session(&id, LaunchRequest::default())
        .await
        .unwrap();
    assert_eq!(session.state, SessionState::Starting);
    // The container runs and its port is published, but the server is still loading.
    let status = ts.session_status(&session.id).await.unwrap();
    assert_eq!(status.state, SessionState::Starting, "{status:?}");
    assert!(status.endpoint.is_some(), "{status:?}");

    let impatient = with_ready_deadline(ts, Duration::from_millis(500));
    let e = impatient
        .execute_tool(&session.id, echo("too early"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::SessionStarting { ref session_id, .. } if *session_id == session.id.as_str()),
        "{e}"
    );

    // Generous for a loaded machine: Python imports after the sleep.
    let patient = with_ready_deadline(ts, Duration::from_secs(120));
    let output = patient
        .execute_tool(&session.id, echo("hello"))
        .await
        .expect("the call waits for the server");
    assert!(!output.is_error, "{output:?}");
    assert_eq!(output.content[0]["text"], "hello", "{output:?}");

    let running = ts.session_status(&session.id).await.unwrap();
    assert_eq!(running.state, SessionState::Running);
    assert!(running.ready_at.is_some(), "{running:?}");
    ts.stop_session(&session.id).await.unwrap();
}
