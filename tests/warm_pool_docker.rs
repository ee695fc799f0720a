//! A warm pool on the real engine (gated on `TOOLSHED_TEST_DOCKER`): a pool of one of the
//! example rmcp server; a launch claims the warm session, a tool call answers at once (the
//! figures are printed, never asserted), and a replacement appears and becomes ready.

use std::time::{Duration, Instant};

use toolshed_core::domain::{
    PlaygroundSession, ServerId, ServerRegistration, SessionState, StopReason, ToolCall, WarmPool,
};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::services::{LaunchRequest, Toolshed, VerifyOptions, VerifyOutcome};
use toolshed_core::testing::fixtures;
use toolshed_tests::{docker as docker_enabled, TempDir};

/// Waits until `server` has a ready warm session other than `not`, nudging starting ones with a
/// status check (a generous deadline for a loaded machine, not a count of tries).
async fn ready_warm(
    ts: &Toolshed,
    server: &ServerId,
    not: Option<&PlaygroundSession>,
) -> PlaygroundSession {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let warm = ts.list_warm_sessions(server).await.unwrap();
        if let Some(s) = warm
            .into_iter()
            .find(|s| s.state == SessionState::Running && not.is_none_or(|n| n.id != s.id))
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no ready warm session within 90 s"
        );
        for s in ts.list_warm_sessions(server).await.unwrap() {
            if s.state == SessionState::Starting {
                ts.session_status(&s.id).await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_claims_the_warm_session_and_its_tool_answers_at_once() {
    if !docker_enabled("a_launch_claims_the_warm_session_and_its_tool_answers_at_once") {
        return;
    }
    let data = TempDir::new("toolshed-warm");
    let binary =
        tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-example-server"))
            .await
            .unwrap()
            .expect("example server binary");
    let repo =
        fixtures::write_server_repo(&data.0.join("repo"), &binary, fixtures::EXAMPLE_DOCKERFILE)
            .unwrap();
    let backend = LocalBackend::connect(LocalConfig::new(data.0.clone()))
        .await
        .unwrap();
    let ts = &backend.toolshed;
    let server = ServerId::new(format!(
        "warm-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    ))
    .unwrap();
    ts.register_server(ServerRegistration::new(server.clone(), repo))
        .await
        .unwrap();
    let outcome = ts
        .verify_server(&server, VerifyOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, VerifyOutcome::Verified { .. }),
        "{outcome:?}"
    );

    ts.set_warm_pool(
        &server,
        WarmPool {
            size: 1,
            idle_ttl: Duration::from_secs(600),
        },
    )
    .await
    .unwrap();
    let report = ts.top_up_warm_pool(&server).await.unwrap();
    assert_eq!(report.started, 1, "{report:?}");
    let warm = ready_warm(ts, &server, None).await;

    let started = Instant::now();
    let session = ts
        .launch_session(&server, LaunchRequest::default())
        .await
        .unwrap();
    let launched = started.elapsed();
    assert_eq!(session.id, warm.id, "the warm session was claimed");
    assert_eq!(session.state, SessionState::Running);
    assert!(session.claimed_at.is_some() && !session.warm);
    let mut args = serde_json::Map::new();
    args.insert("a".into(), 40.into());
    args.insert("b".into(), 2.into());
    let out = ts
        .execute_tool(&session.id, ToolCall::new("add", args).unwrap())
        .await
        .unwrap();
    let first_call = started.elapsed();
    assert!(!out.is_error, "{out:?}");
    assert!(
        serde_json::to_string(&out.content).unwrap().contains("42"),
        "{out:?}"
    );
    println!(
        "warm launch: claim {} ms, launch → first tool call {} ms",
        launched.as_millis(),
        first_call.as_millis()
    );

    // The replacement appears and becomes ready.
    let replacement = ready_warm(ts, &server, Some(&warm)).await;
    assert_ne!(replacement.id, session.id);
    assert!(replacement.warm && replacement.owner.is_none());

    // Clean up: the claimed session, then the pool (size 0 retires it).
    ts.stop_session(&session.id).await.unwrap();
    ts.set_warm_pool(
        &server,
        WarmPool {
            size: 0,
            idle_ttl: Duration::from_secs(600),
        },
    )
    .await
    .unwrap();
    let retired = ts.top_up_warm_pool(&server).await.unwrap();
    assert_eq!(retired.retired, 1, "{retired:?}");
    let ended = ts.get_session(&replacement.id).await.unwrap();
    assert_eq!(ended.stop_reason, Some(StopReason::Retired));
    assert!(ts.list_warm_sessions(&server).await.unwrap().is_empty());
}
