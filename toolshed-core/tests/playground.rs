//! Playground sessions: launch from the pinned verified image, idempotency, caps, TTLs,
//! status, stop and tool calls.

mod common;

use std::time::Duration;

use common::Harness;
use toolshed_core::domain::{
    IdempotencyKey, SessionState, StopReason, ToolCall, ToolCallOutput, MAX_SESSION_TTL,
};
use toolshed_core::error::CapScope;
use toolshed_core::ports::TaskState;
use toolshed_core::services::LaunchRequest;
use toolshed_core::Error;

fn key(k: &str) -> LaunchRequest {
    LaunchRequest {
        ttl: None,
        idempotency_key: Some(IdempotencyKey::new(k).unwrap()),
        settings: Default::default(),
    }
}

#[tokio::test]
async fn launch_runs_the_verified_image_pinned_by_digest() {
    let h = Harness::new();
    let server = h.verified("time").await;
    let image = server.image.unwrap().image;
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    assert_eq!(s.state, SessionState::Starting);
    assert_eq!(s.image, image);
    assert_eq!(
        s.expires_at,
        s.created_at + chrono::Duration::minutes(15),
        "default TTL"
    );
    let task = h.runner.task(&s.task).unwrap();
    let spec = task.spec.unwrap();
    assert_eq!(
        spec.image.pinned(),
        image.pinned(),
        "the task runs repository@sha256:…"
    );
    assert!(spec.image.pinned().contains("@sha256:"));
    assert_eq!(spec.idempotency_token, s.id.to_string());
    // Labels mark it as ours, with server, session and expiry.
    let labels = task.labels.unwrap();
    assert_eq!(labels.server_id, h.id("time"));
    assert_eq!(labels.expires_at, s.expires_at);
    assert!(
        matches!(labels.purpose, toolshed_core::domain::TaskPurpose::Playground { ref session_id } if *session_id == s.id)
    );
    // Launches never build nor prepare.
    assert_eq!(h.builder.builds_started(), 1);
    assert_eq!(
        h.runner.prepare_calls(),
        1,
        "only the verification prepared"
    );
}

#[tokio::test]
async fn a_retried_launch_with_the_same_key_returns_the_same_session_and_task() {
    let h = Harness::new();
    h.verified("time").await;
    let starts = h.runner.start_calls();
    let a = h
        .toolshed
        .launch_session(&h.id("time"), key("req-1"))
        .await
        .unwrap();
    let b = h
        .toolshed
        .launch_session(&h.id("time"), key("req-1"))
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        h.runner.start_calls(),
        starts + 1,
        "the retry found the session: no second start"
    );
    let c = h
        .toolshed
        .launch_session(&h.id("time"), key("req-2"))
        .await
        .unwrap();
    assert_ne!(a.id, c.id);
    assert_ne!(a.task, c.task);
    let live = h
        .toolshed
        .list_sessions(&h.id("time"), true, 10)
        .await
        .unwrap();
    assert_eq!(live.len(), 2);
}

#[tokio::test]
async fn concurrent_launches_with_one_key_start_one_task() {
    let h = Harness::new();
    h.verified("time").await;
    let before = h.runner.live_tasks().len();
    let id = h.id("time");
    let launches = (0..10).map(|_| h.toolshed.launch_session(&id, key("same")));
    let results = futures::future::join_all(launches).await;
    let first = results[0].as_ref().unwrap().clone();
    for r in &results {
        assert_eq!(r.as_ref().unwrap().id, first.id);
        assert_eq!(r.as_ref().unwrap().task, first.task);
    }
    assert_eq!(
        h.runner.live_tasks().len(),
        before + 1,
        "one task for one key"
    );
}

#[tokio::test]
async fn the_per_server_cap_refuses_and_leaves_nothing_running() {
    let h = Harness::with_config(|c| {
        c.session_caps.per_server = 2;
        c.session_caps.total = 10;
    });
    h.verified("time").await;
    h.verified("other").await;
    for _ in 0..2 {
        h.toolshed
            .launch_session(&h.id("time"), LaunchRequest::default())
            .await
            .unwrap();
    }
    let tasks_before = h.runner.tasks().len();
    let e = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::CapReached {
                scope: CapScope::PerServer,
                limit: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("per-server session cap of 2"), "{e}");
    assert_eq!(
        h.runner.tasks().len(),
        tasks_before,
        "pre-check: no task started"
    );
    // Another server is not affected; stopping one frees a place.
    h.toolshed
        .launch_session(&h.id("other"), LaunchRequest::default())
        .await
        .unwrap();
    let live = h
        .toolshed
        .list_sessions(&h.id("time"), true, 10)
        .await
        .unwrap();
    h.toolshed.stop_session(&live[0].id).await.unwrap();
    h.toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_total_cap_refuses() {
    let h = Harness::with_config(|c| {
        c.session_caps.per_server = 5;
        c.session_caps.total = 3;
    });
    h.verified("a").await;
    h.verified("b").await;
    for id in ["a", "a", "b"] {
        h.toolshed
            .launch_session(&h.id(id), LaunchRequest::default())
            .await
            .unwrap();
    }
    let e = h
        .toolshed
        .launch_session(&h.id("b"), LaunchRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::CapReached {
                scope: CapScope::Total,
                limit: 3,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_launches_never_pass_the_cap_and_stop_refused_tasks() {
    let h = Harness::with_config(|c| {
        c.session_caps.per_server = 3;
        c.session_caps.total = 100;
    });
    h.verified("time").await;
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let t = h.toolshed.clone();
            tokio::spawn(async move {
                t.launch_session(&Harness::id_static("time"), LaunchRequest::default())
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for handle in handles {
        match handle.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::CapReached { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 3, "exactly the cap");
    let live_sessions = h
        .toolshed
        .list_sessions(&h.id("time"), true, 100)
        .await
        .unwrap();
    assert_eq!(live_sessions.len(), 3);
    // Every task that lost the race at the insert was stopped: only the 3 sessions' tasks run.
    let live_tasks = h.runner.live_tasks();
    assert_eq!(live_tasks.len(), 3, "{live_tasks:?}");
}

#[tokio::test]
async fn ttls_are_bounded() {
    let h = Harness::new();
    h.verified("time").await;
    let s = h
        .toolshed
        .launch_session(
            &h.id("time"),
            LaunchRequest {
                ttl: Some(Duration::from_secs(3600)),
                idempotency_key: None,
                settings: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(s.expires_at - s.created_at, chrono::Duration::hours(1));
    for bad in [
        Duration::from_secs(5),
        MAX_SESSION_TTL + Duration::from_secs(1),
    ] {
        let e = h
            .toolshed
            .launch_session(
                &h.id("time"),
                LaunchRequest {
                    ttl: Some(bad),
                    idempotency_key: None,
                    settings: Default::default(),
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput { field: "ttl", .. }), "{e}");
        assert!(e.to_string().contains("outside 60-86400 s"), "{e}");
    }
    let s = h
        .toolshed
        .launch_session(
            &h.id("time"),
            LaunchRequest {
                ttl: Some(MAX_SESSION_TTL),
                idempotency_key: None,
                settings: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(s.expires_at - s.created_at, chrono::Duration::hours(24));
}

#[tokio::test]
async fn status_reports_the_endpoint_once_running_and_marks_exited_tasks() {
    // Every poll describes here (the record-first answers are in `status.rs`).
    let h = Harness::with_config(|c| c.status_freshness = Duration::ZERO);
    h.verified("time").await;
    h.runner.set_pending_describes(1);
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    let pending = h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(pending.state, SessionState::Starting);
    assert_eq!(pending.endpoint, None);
    let running = h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(running.state, SessionState::Running);
    let endpoint = running.endpoint.clone().unwrap();
    assert_eq!(endpoint.path, "/mcp");
    // Unchanged: no write.
    let again = h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(again.version, running.version);

    h.runner.exit_task(&s.task);
    let exited = h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(exited.state, SessionState::Stopped);
    assert_eq!(exited.stop_reason, Some(StopReason::TaskExited));
}

#[tokio::test]
async fn stop_is_idempotent() {
    let h = Harness::new();
    h.verified("time").await;
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    let stopped = h.toolshed.stop_session(&s.id).await.unwrap();
    assert_eq!(stopped.state, SessionState::Stopped);
    assert_eq!(stopped.stop_reason, Some(StopReason::Requested));
    assert!(matches!(
        h.runner.task(&s.task).unwrap().state,
        TaskState::Stopped { .. }
    ));
    let again = h.toolshed.stop_session(&s.id).await.unwrap();
    assert_eq!(again, stopped);
    assert_eq!(
        h.toolshed
            .list_sessions(&h.id("time"), true, 10)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        h.toolshed
            .list_sessions(&h.id("time"), false, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let e = h
        .toolshed
        .stop_session(&toolshed_core::domain::SessionId::new("s-unknown-session").unwrap())
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn execute_tool_calls_through_the_probe_with_schema_and_deadline() {
    let h = Harness::new();
    h.verified("time").await;
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    let mut args = serde_json::Map::new();
    args.insert("timezone".into(), "Europe/Paris".into());
    h.probe.set_tool_result(
        "get_current_time",
        ToolCallOutput {
            content: vec![serde_json::json!({"type": "text", "text": "12:00"})],
            structured: None,
            is_error: false,
            truncated: false,
        },
    );
    // A Starting session is waited for first.
    let out = h
        .toolshed
        .execute_tool(
            &s.id,
            ToolCall::new("get_current_time", args.clone()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(out.content[0]["text"], "12:00");
    let calls = h.probe.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].deadline, h.config.tool_call_deadline);
    assert_eq!(
        calls[0].input_schema.as_ref().unwrap()["required"][0],
        "timezone",
        "the tool's input schema is passed for checking"
    );
    // Missing required argument: refused by the schema check.
    let e = h
        .toolshed
        .execute_tool(
            &s.id,
            ToolCall::new("get_current_time", Default::default()).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidToolArguments { .. }), "{e}");
    // Unknown tool: refused before any call.
    let e = h
        .toolshed
        .execute_tool(&s.id, ToolCall::new("rm_rf", Default::default()).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnknownTool { ref tool, .. } if tool == "rm_rf"),
        "{e}"
    );
    assert_eq!(h.probe.calls().len(), 2);
}

#[tokio::test]
async fn execute_tool_hints_the_era_the_verification_recorded() {
    use toolshed_core::domain::conformance::ProtocolEra;
    use toolshed_core::services::VerifyOptions;
    use toolshed_core::testing::FakeMcpProbe;

    let h = Harness::new();
    h.verified("time").await;
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    let mut args = serde_json::Map::new();
    args.insert("timezone".into(), "UTC".into());
    let call = ToolCall::new("get_current_time", args).unwrap();
    let era_of_last_call = || h.probe.calls().last().map(|c| c.era);
    h.toolshed.execute_tool(&s.id, call.clone()).await.unwrap();
    assert_eq!(era_of_last_call(), Some(Some(ProtocolEra::Initialize)));
    // Verified again in the discover era: the hint follows the record.
    let mut report = FakeMcpProbe::time_server_report();
    report.listing.era = ProtocolEra::Discover;
    h.probe.set_default_report(report);
    h.toolshed
        .verify_server(&h.id("time"), VerifyOptions { force: true })
        .await
        .unwrap();
    h.toolshed.execute_tool(&s.id, call.clone()).await.unwrap();
    assert_eq!(era_of_last_call(), Some(Some(ProtocolEra::Discover)));
    // A record from before conformance reports were kept gives no hint.
    let mut server = h.repo_get("time").await;
    server.tools.conformance = None;
    h.repo_update(server).await;
    h.toolshed.execute_tool(&s.id, call).await.unwrap();
    assert_eq!(era_of_last_call(), Some(None));
}

#[tokio::test]
async fn execute_tool_needs_a_running_session() {
    // No wait for readiness: a starting session answers at once.
    let h = Harness::with_config(|c| c.session_ready_deadline = Duration::ZERO);
    h.verified("time").await;
    h.runner.set_pending_describes(5);
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    let call = ToolCall::new("get_current_time", Default::default()).unwrap();
    let e = h
        .toolshed
        .execute_tool(&s.id, call.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::SessionStarting { ref session_id, retry_after, .. } if *session_id == s.id.as_str() && !retry_after.is_zero()),
        "{e}"
    );
    h.toolshed.stop_session(&s.id).await.unwrap();
    let e = h.toolshed.execute_tool(&s.id, call).await.unwrap_err();
    assert!(
        matches!(e, Error::SessionNotRunning { ref state, .. } if state == "stopped: requested"),
        "{e}"
    );
    assert!(h.probe.calls().is_empty());
}

#[tokio::test]
async fn a_failed_task_start_stores_no_session() {
    let h = Harness::new();
    h.verified("time").await;
    h.runner.fail_next_start("capacity unavailable");
    let e = h
        .toolshed
        .launch_session(&h.id("time"), key("k1"))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(h
        .toolshed
        .list_sessions(&h.id("time"), false, 10)
        .await
        .unwrap()
        .is_empty());
    // The retry with the same key succeeds.
    let s = h
        .toolshed
        .launch_session(&h.id("time"), key("k1"))
        .await
        .unwrap();
    assert_eq!(s.state, SessionState::Starting);
}
