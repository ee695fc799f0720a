//! Session status answered from the record: a fresh observation costs no runner call, a stale
//! one costs one describe; task events and the batched refresher keep records fresh.

mod common;

use std::time::Duration;

use common::Harness;
use futures::future::join_all;
use toolshed_core::domain::{
    ObservedTaskState, PlaygroundSession, SessionState, StopReason, ToolCall,
};
use toolshed_core::ports::{Clock, ServerRepository, TaskState};
use toolshed_core::services::{LaunchRequest, RefreshLimits, TaskEvent};
use toolshed_core::Error;

#[tokio::test]
async fn a_fresh_record_answers_a_thousand_polls_without_the_runner() {
    let h = Harness::new();
    h.verified("time").await;
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    // The first poll has nothing observed yet: one (batched) describe, stored with the session.
    let before = h.runner.describe_many_calls();
    let singles = h.runner.describe_calls();
    let first = h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(h.runner.describe_many_calls(), before + 1);
    assert_eq!(first.state, SessionState::Running);
    let observed = first.observed.clone().expect("the describe is recorded");
    assert_eq!(observed.state, ObservedTaskState::Running);
    assert_eq!(observed.observed_at, h.clock.now());

    for _ in 0..1_000 {
        let polled = h.toolshed.session_status(&s.id).await.unwrap();
        assert_eq!(polled.state, SessionState::Running);
    }
    assert_eq!(
        h.runner.describe_many_calls(),
        before + 1,
        "a fresh record answers without the runner"
    );

    // Once stale (15 s by default), one poll costs one describe and refreshes the record.
    h.clock.advance(Duration::from_secs(15));
    h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(h.runner.describe_many_calls(), before + 2);
    for _ in 0..10 {
        h.toolshed.session_status(&s.id).await.unwrap();
    }
    assert_eq!(h.runner.describe_many_calls(), before + 2, "fresh again");
    assert_eq!(
        h.runner.describe_calls(),
        singles,
        "polls never describe one task alone"
    );
    let stored = h.repo.get_session(&s.id).await.unwrap();
    assert_eq!(stored.observed.unwrap().observed_at, h.clock.now());
}

#[tokio::test]
async fn a_task_that_ends_is_seen_by_the_first_poll_after_its_record_goes_stale() {
    let h = Harness::new();
    h.verified("time").await;
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    h.toolshed.session_status(&s.id).await.unwrap();
    h.runner.exit_task(&s.task);
    let polled = h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(
        polled.state,
        SessionState::Running,
        "without an event, the fresh record is what a poll says"
    );
    h.clock.advance(Duration::from_secs(16));
    let polled = h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(polled.state, SessionState::Stopped);
    assert_eq!(polled.stop_reason, Some(StopReason::TaskExited));
}

#[tokio::test]
async fn a_session_whose_task_ended_says_how() {
    let h = Harness::new();
    h.verified("time").await;
    let launch = || async {
        h.toolshed
            .launch_session(&h.id("time"), LaunchRequest::default())
            .await
            .unwrap()
    };
    let (crashed, starved) = (launch().await, launch().await);
    h.runner.exit_task(&crashed.task);
    h.runner.kill_task_for_memory(&starved.task);
    h.clock.advance(Duration::from_secs(16));
    let expect = [
        (&crashed, Some(1), false, "exited with status 1"),
        (&starved, Some(137), true, "more memory than its limit"),
    ];
    for (s, exit_code, out_of_memory, words) in expect {
        let polled = h.toolshed.session_status(&s.id).await.unwrap();
        assert_eq!(polled.stop_reason, Some(StopReason::TaskExited));
        let exit = polled.task_exit().expect("how the task ended");
        assert_eq!(
            (exit.exit_code, exit.out_of_memory),
            (exit_code, out_of_memory)
        );
        assert_eq!(
            h.repo.get_session(&s.id).await.unwrap().task_exit(),
            Some(exit),
            "kept with the ended record"
        );
        let err = h
            .toolshed
            .execute_tool(&s.id, ToolCall::new("now", serde_json::Map::new()).unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::SessionNotRunning { state, .. } if state.contains(words)),
            "{err}"
        );
    }
    // A session stopped by hand has no task exit to tell.
    let stopped = launch().await;
    let stopped = h.toolshed.stop_session(&stopped.id).await.unwrap();
    assert_eq!(stopped.task_exit(), None);
}

#[tokio::test]
async fn task_events_update_sessions_without_a_runner_call() {
    let h = Harness::new();
    h.verified("time").await;
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    let task = h.runner.task(&s.task).unwrap();
    let endpoint = task.endpoint.clone().unwrap();
    let describes = h.runner.describe_calls();
    let at = h.clock.now();

    // Running, with only the task's address (as ECS events carry it): the endpoint is
    // completed from the server's transport; the poll then only checks readiness.
    let running = TaskEvent {
        session_id: s.id.clone(),
        task: s.task.clone(),
        state: TaskState::Running,
        endpoint: None,
        address: Some(endpoint.host.clone()),
        observed_at: at,
    };
    let report = h
        .toolshed
        .apply_task_events(std::slice::from_ref(&running))
        .await
        .unwrap();
    assert_eq!(
        (report.received, report.recorded, report.ignored),
        (1, 1, 0)
    );
    let stored = h.repo.get_session(&s.id).await.unwrap();
    let seen = stored.observed.clone().unwrap();
    assert_eq!(seen.state, ObservedTaskState::Running);
    let ep = seen.endpoint.unwrap();
    assert_eq!((ep.host.as_str(), ep.port), (endpoint.host.as_str(), 8000));
    let polled = h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(polled.state, SessionState::Running);
    assert_eq!(h.runner.describe_calls(), describes, "no describe");

    // The same event again, an older one, another task's, an unknown session's: nothing.
    let mut older = running.clone();
    older.state = TaskState::Pending;
    older.observed_at = at - chrono::Duration::seconds(5);
    let mut foreign = running.clone();
    foreign.task = toolshed_core::domain::TaskHandle::new("someone-else").unwrap();
    foreign.state = TaskState::Missing;
    let mut unknown = running.clone();
    unknown.session_id = toolshed_core::domain::SessionId::new("s-unknown-1").unwrap();
    let report = h
        .toolshed
        .apply_task_events(&[running.clone(), older, foreign, unknown])
        .await
        .unwrap();
    assert_eq!((report.recorded, report.ended, report.ignored), (0, 0, 2));
    assert_eq!(
        h.repo.get_session(&s.id).await.unwrap().state,
        SessionState::Running
    );

    // The task stops: the session ends, no poll needed.
    let stopped = TaskEvent {
        state: TaskState::Stopped {
            reason: Some("Essential container in task exited".into()),
            exit_code: Some(1),
        },
        address: None,
        observed_at: at + chrono::Duration::seconds(30),
        ..running
    };
    let report = h
        .toolshed
        .apply_task_events(std::slice::from_ref(&stopped))
        .await
        .unwrap();
    assert_eq!((report.recorded, report.ended), (1, 1));
    let ended = h.repo.get_session(&s.id).await.unwrap();
    assert_eq!(ended.state, SessionState::Stopped);
    assert_eq!(ended.stop_reason, Some(StopReason::TaskExited));
    // Delivered twice: nothing more.
    let again = h.toolshed.apply_task_events(&[stopped]).await.unwrap();
    assert_eq!((again.recorded, again.ended, again.ignored), (0, 0, 1));
    assert_eq!(h.runner.describe_calls(), describes);
}

#[tokio::test]
async fn the_refresher_describes_stale_sessions_a_hundred_per_call() {
    let h = Harness::with_config(|c| {
        c.session_caps.per_server = 500;
        c.session_caps.total = 500;
    });
    h.verified("time").await;
    let mut sessions = Vec::new();
    for _ in 0..250 {
        sessions.push(
            h.toolshed
                .launch_session(&h.id("time"), LaunchRequest::default())
                .await
                .unwrap(),
        );
    }
    h.runner.exit_task(&sessions[7].task);
    let describes = h.runner.describe_calls();
    let report = h
        .toolshed
        .refresh_stale_sessions(RefreshLimits::default())
        .await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.checked, report.stale), (250, 250));
    assert_eq!(report.describe_calls, 3, "⌈250/100⌉");
    assert_eq!(h.runner.describe_many_calls(), 3);
    assert_eq!(h.runner.largest_describe_batch(), 100);
    assert_eq!(h.runner.describe_calls(), describes, "no single describes");
    assert_eq!((report.recorded, report.ended), (250, 1));
    assert_eq!(
        h.repo.get_session(&sessions[7].id).await.unwrap().state,
        SessionState::Stopped
    );

    // Right after: everything is fresh, polls and a second refresh cost nothing.
    let again = h
        .toolshed
        .refresh_stale_sessions(RefreshLimits::default())
        .await;
    assert_eq!(
        (again.checked, again.stale, again.describe_calls),
        (249, 0, 0)
    );
    let batched = h.runner.describe_many_calls();
    for s in sessions.iter().skip(8).take(50) {
        h.toolshed.session_status(&s.id).await.unwrap();
    }
    assert_eq!(h.runner.describe_calls(), describes);
    assert_eq!(h.runner.describe_many_calls(), batched);
    // Half the freshness later the refresher renews them before polls would see them stale.
    h.clock.advance(Duration::from_secs(8));
    let renewed = h
        .toolshed
        .refresh_stale_sessions(RefreshLimits::default())
        .await;
    assert_eq!((renewed.stale, renewed.describe_calls), (249, 3));
    h.clock.advance(Duration::from_secs(8));
    let batched = h.runner.describe_many_calls();
    h.toolshed.session_status(&sessions[9].id).await.unwrap();
    assert_eq!(
        (h.runner.describe_calls(), h.runner.describe_many_calls()),
        (describes, batched),
        "still fresh for polls"
    );
}

#[tokio::test]
async fn zero_freshness_describes_on_every_poll() {
    let h = Harness::with_config(|c| c.status_freshness = Duration::ZERO);
    h.verified("time").await;
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    let before = h.runner.describe_many_calls();
    for _ in 0..3 {
        h.toolshed.session_status(&s.id).await.unwrap();
    }
    assert_eq!(h.runner.describe_many_calls(), before + 3);
}

/// A harness with `n` launched sessions of one verified server (caps raised to fit).
async fn launched(n: usize) -> (Harness, Vec<PlaygroundSession>) {
    let h = Harness::with_config(|c| {
        c.session_caps.per_server = 500;
        c.session_caps.total = 500;
    });
    h.verified("time").await;
    let mut sessions = Vec::new();
    for _ in 0..n {
        sessions.push(
            h.toolshed
                .launch_session(&h.id("time"), LaunchRequest::default())
                .await
                .unwrap(),
        );
    }
    (h, sessions)
}

/// Polls every session at once; each poll's answer, in order (none may hang).
async fn poll_all(
    h: &Harness,
    sessions: &[PlaygroundSession],
) -> Vec<toolshed_core::Result<PlaygroundSession>> {
    tokio::time::timeout(
        Duration::from_secs(30),
        join_all(sessions.iter().map(|s| h.toolshed.session_status(&s.id))),
    )
    .await
    .expect("every poll is answered")
}

#[tokio::test]
async fn fifty_concurrent_stale_polls_share_one_batched_describe() {
    let (h, sessions) = launched(50).await;
    // One task ended without an event: its poll sees it end.
    h.runner.exit_task(&sessions[13].task);
    let batched = h.runner.describe_many_calls();
    let singles = h.runner.describe_calls();

    let polled = poll_all(&h, &sessions).await;

    assert_eq!(
        h.runner.describe_many_calls(),
        batched + 1,
        "one batched describe"
    );
    assert_eq!(h.runner.largest_describe_batch(), 50);
    assert_eq!(
        h.runner.describe_calls(),
        singles,
        "no describe of one task alone"
    );
    for (i, (asked, answer)) in sessions.iter().zip(polled).enumerate() {
        let answer = answer.unwrap();
        assert_eq!(answer.id, asked.id, "each poll gets its own session");
        assert_eq!(answer.task, asked.task);
        if i == 13 {
            assert_eq!(answer.state, SessionState::Stopped);
            assert_eq!(answer.stop_reason, Some(StopReason::TaskExited));
        } else {
            assert_eq!(answer.state, SessionState::Running, "session {i}");
            let seen = answer.observed.expect("the observation is stored");
            assert_eq!(seen.observed_at, h.clock.now());
        }
    }
    let stored = h.repo.get_session(&sessions[13].id).await.unwrap();
    assert_eq!(stored.state, SessionState::Stopped, "the batch ended it");

    // Fresh records now: a thousand polls, no runner call.
    for i in 0..1_000 {
        h.toolshed
            .session_status(&sessions[i % 50].id)
            .await
            .unwrap();
    }
    assert_eq!(h.runner.describe_many_calls(), batched + 1, "fresh records");
    assert_eq!(h.runner.describe_calls(), singles);
}

#[tokio::test]
async fn a_failed_batched_describe_reaches_every_waiting_poll_and_the_next_poll_retries() {
    let (h, sessions) = launched(10).await;
    h.runner.fail_next_describe("throttled");

    let polled = poll_all(&h, &sessions).await;

    assert_eq!(h.runner.describe_many_calls(), 1, "one batch, which failed");
    for (asked, answer) in sessions.iter().zip(polled) {
        let err = answer.expect_err("the describe failed");
        assert!(err.is_retryable(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(asked.id.as_str()),
            "names its session: {text}"
        );
        assert!(text.contains("throttled"), "says why: {text}");
    }
    let stored = h.repo.get_session(&sessions[0].id).await.unwrap();
    assert!(stored.observed.is_none(), "nothing was recorded");

    // The next poll starts a new batch (which renews every other session too).
    let again = h.toolshed.session_status(&sessions[0].id).await.unwrap();
    assert_eq!(again.state, SessionState::Running);
    assert_eq!(h.runner.describe_many_calls(), 2);
    let other = h.repo.get_session(&sessions[7].id).await.unwrap();
    assert!(other.observed.is_some(), "the others were renewed with it");
    for answer in poll_all(&h, &sessions).await {
        assert_eq!(answer.unwrap().state, SessionState::Running);
    }
    assert_eq!(h.runner.describe_many_calls(), 2, "all fresh");
}

#[tokio::test]
async fn a_stale_poll_renews_the_sessions_about_to_go_stale_and_leaves_the_young_ones() {
    let (h, sessions) = launched(3).await;
    for answer in poll_all(&h, &sessions).await {
        answer.unwrap();
    }
    assert_eq!(h.runner.describe_many_calls(), 1);
    h.clock.advance(Duration::from_secs(5));
    let younger = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    // Observed 5 s after the others, which are younger than half the freshness (7.5 s): a
    // batch of one.
    h.toolshed.session_status(&younger.id).await.unwrap();
    assert_eq!(h.runner.describe_many_calls(), 2);
    assert_eq!(h.runner.largest_describe_batch(), 3);

    // 16 s after the first batch: the three are stale, the younger one 11 s old, past half
    // the freshness. One poll renews all four in one describe.
    h.clock.advance(Duration::from_secs(11));
    h.toolshed.session_status(&sessions[0].id).await.unwrap();
    assert_eq!(h.runner.describe_many_calls(), 3);
    assert_eq!(h.runner.largest_describe_batch(), 4);
    let all: Vec<PlaygroundSession> = sessions.iter().cloned().chain([younger]).collect();
    for s in &all {
        let stored = h.repo.get_session(&s.id).await.unwrap();
        assert_eq!(
            stored.observed.unwrap().observed_at,
            h.clock.now(),
            "aligned"
        );
    }
    for answer in poll_all(&h, &all).await {
        assert_eq!(answer.unwrap().state, SessionState::Running);
    }
    assert_eq!(h.runner.describe_many_calls(), 3, "every record is fresh");
}

#[tokio::test]
async fn a_poll_after_a_failed_call_still_asks_the_runner_for_its_task_alone() {
    let (h, sessions) = launched(3).await;
    for answer in poll_all(&h, &sessions).await {
        answer.unwrap();
    }
    let batched = h.runner.describe_many_calls();
    let singles = h.runner.describe_calls();
    // The record is fresh and says running, but the task is gone: its endpoint is unreachable.
    let running = h.repo.get_session(&sessions[1].id).await.unwrap();
    h.runner.exit_task(&sessions[1].task);
    h.probe.fail_endpoint(
        running.endpoint.as_ref().expect("running"),
        toolshed_core::error::ProbeFailureKind::Unreachable,
        "connection refused",
    );
    let mut args = serde_json::Map::new();
    args.insert("timezone".into(), "UTC".into());
    let call = toolshed_core::domain::ToolCall::new("get_current_time", args).unwrap();
    let err = h
        .toolshed
        .execute_tool(&sessions[1].id, call)
        .await
        .expect_err("the task ended");
    assert_eq!(
        h.runner.describe_calls(),
        singles + 1,
        "one describe of that task: {err}"
    );
    assert_eq!(h.runner.describe_many_calls(), batched, "no batch");
    let ended = h.repo.get_session(&sessions[1].id).await.unwrap();
    assert_eq!(ended.state, SessionState::Stopped);
}
