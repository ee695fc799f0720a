//! Real Python MCP servers nobody here wrote, in containers on the real engine: PyPI's
//! `mcp-server-time` (stdio) wrapped with the static stdio bridge, verified, launched in a
//! hardened playground container and called.
//!
//! The image is built `FROM` the local Python image that `scripts/python-base-image.sh` makes (no
//! registry can be pulled from here); the test command exports its tag as
//! `TOOLSHED_TEST_PYTHON_IMAGE`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use toolshed_core::domain::{
    GitRef, RepoUrl, RepoUrlPolicy, ServerId, ServerRegistration, SessionState, ToolCall, Transport,
};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::services::{LaunchRequest, VerifyOptions};
use toolshed_core::testing::fixtures;
use toolshed_tests::{backend, TempDir};

/// A git repository at `dir` with one commit holding `files`.
fn git_repo(dir: &Path, files: &[(&str, &str)]) -> RepoUrl {
    std::fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "-m",
            "server",
        ],
    ] {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
    RepoUrl::parse(
        &format!("file://{}", dir.canonicalize().unwrap().display()),
        RepoUrlPolicy::ALLOW_FILE,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_time_over_stdio_through_the_bridge_in_a_container() {
    if !backend("TOOLSHED_TEST_DOCKER", "mcp_server_time_in_a_container")
        || !backend(
            "TOOLSHED_TEST_PYTHON_IMAGE",
            "mcp_server_time_in_a_container",
        )
    {
        return;
    }
    let image = std::env::var("TOOLSHED_TEST_PYTHON_IMAGE").unwrap();
    let bridge = tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-stdio-bridge"))
        .await
        .unwrap()
        .expect("static stdio bridge");
    let data = TempDir::new("toolshed-python");
    let repo = git_repo(
        &data.0.join("repo"),
        &[("Dockerfile", &format!("FROM {image}\n"))],
    );
    let backend = LocalBackend::connect(LocalConfig {
        stdio_bridge: Some(bridge),
        ..LocalConfig::new(data.0.join("state"))
    })
    .await
    .unwrap();
    let ts = &backend.toolshed;
    let id = ServerId::new(format!(
        "py-time-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
    .unwrap();
    ts.register_server(ServerRegistration {
        build: Default::default(),
        id: id.clone(),
        repo,
        git_ref: GitRef::main(),
        transport: Transport::Stdio {
            command: vec![
                "mcp-server-time".into(),
                "--local-timezone".into(),
                "UTC".into(),
            ],
        },
        resources: Default::default(),
        description: None,
        language: None,
    })
    .await
    .unwrap();

    let outcome = ts
        .verify_server(&id, VerifyOptions::default())
        .await
        .expect("mcp-server-time verifies through the bridge");
    let mut tools: Vec<&str> = outcome
        .server()
        .tools
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    tools.sort_unstable();
    assert_eq!(tools, ["convert_time", "get_current_time"]);

    let session = ts
        .launch_session(&id, LaunchRequest::default())
        .await
        .unwrap();
    let started = Instant::now();
    // The container is hardened (read-only root, non-root user, no capabilities); Python starts in
    // a few seconds on a loaded machine. A generous deadline that fails with the last error.
    let deadline = Duration::from_secs(90);
    let mut arguments = serde_json::Map::new();
    arguments.insert("timezone".into(), "Asia/Tokyo".into());
    let output = loop {
        let status = ts.session_status(&session.id).await.unwrap();
        assert!(status.state.is_live(), "session ended: {status:?}");
        let attempt = if status.state == SessionState::Running {
            ts.execute_tool(
                &session.id,
                ToolCall::new("get_current_time", arguments.clone()).unwrap(),
            )
            .await
        } else {
            Err(toolshed_core::Error::invalid("state", "not running yet"))
        };
        match attempt {
            Ok(output) => break output,
            Err(e) if started.elapsed() > deadline => {
                panic!("no answer within {deadline:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    assert!(!output.is_error, "{output:?}");
    let text = output
        .content
        .iter()
        .find_map(|c| c.get("text").and_then(|t| t.as_str()))
        .expect("a text answer");
    // The server computed it: Tokyo's offset, a datetime that parses, not an echo of the input.
    let answer: serde_json::Value = serde_json::from_str(text).expect("JSON answer");
    assert_eq!(answer["timezone"], "Asia/Tokyo", "{answer}");
    let datetime = answer["datetime"].as_str().expect("datetime");
    let parsed = chrono::DateTime::parse_from_rfc3339(datetime).expect("RFC 3339 datetime");
    assert_eq!(parsed.offset().local_minus_utc(), 9 * 3600, "{datetime}");
    let skew = (parsed.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .num_seconds()
        .abs();
    assert!(
        skew < 300,
        "the server's clock answer is {skew} s off: {datetime}"
    );

    ts.stop_session(&session.id).await.unwrap();
}
