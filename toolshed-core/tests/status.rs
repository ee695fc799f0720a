//! Session status answered from the record: a fresh observation costs no runner call, a stale
//! one costs one describe; task events and the batched refresher keep records fresh.

mod common;

use std::time::Duration;

use common::Harness;
use toolshed_core::domain::{ObservedTaskState, SessionState, StopReason};
use toolshed_core::ports::{Clock, ServerRepository, TaskState};
use toolshed_core::services::{LaunchRequest, RefreshLimits, TaskEvent};

#[tokio::test]
async fn a_fresh_record_answers_a_thousand_polls_without_the_runner() {
    let h = Harness::new();
    h.verified("time").await;
    let s = h
        .toolshed
        .launch_session(&h.id("time"), LaunchRequest::default())
        .await
        .unwrap();
    // The first poll has nothing observed yet: one describe, stored with the session.
    let before = h.runner.describe_calls();
    let first = h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(h.runner.describe_calls(), before + 1);
    assert_eq!(first.state, SessionState::Running);
    let observed = first.observed.clone().expect("the describe is recorded");
    assert_eq!(observed.state, ObservedTaskState::Running);
    assert_eq!(observed.observed_at, h.clock.now());

    for _ in 0..1_000 {
        let polled = h.toolshed.session_status(&s.id).await.unwrap();
        assert_eq!(polled.state, SessionState::Running);
    }
    assert_eq!(
        h.runner.describe_calls(),
        before + 1,
        "a fresh record answers without the runner"
    );

    // Once stale (15 s by default), one poll costs one describe and refreshes the record.
    h.clock.advance(Duration::from_secs(15));
    h.toolshed.session_status(&s.id).await.unwrap();
    assert_eq!(h.runner.describe_calls(), before + 2);
    for _ in 0..10 {
        h.toolshed.session_status(&s.id).await.unwrap();
    }
    assert_eq!(h.runner.describe_calls(), before + 2, "fresh again");
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
    for s in sessions.iter().skip(8).take(50) {
        h.toolshed.session_status(&s.id).await.unwrap();
    }
    assert_eq!(h.runner.describe_calls(), describes);
    // Half the freshness later the refresher renews them before polls would see them stale.
    h.clock.advance(Duration::from_secs(8));
    let renewed = h
        .toolshed
        .refresh_stale_sessions(RefreshLimits::default())
        .await;
    assert_eq!((renewed.stale, renewed.describe_calls), (249, 3));
    h.clock.advance(Duration::from_secs(8));
    h.toolshed.session_status(&sessions[9].id).await.unwrap();
    assert_eq!(
        h.runner.describe_calls(),
        describes,
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
    let before = h.runner.describe_calls();
    for _ in 0..3 {
        h.toolshed.session_status(&s.id).await.unwrap();
    }
    assert_eq!(h.runner.describe_calls(), before + 3);
}
