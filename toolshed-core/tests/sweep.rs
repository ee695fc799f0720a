//! The sweep: expired sessions, orphans, exited tasks; never a foreign task; idempotent.

mod common;

use std::time::Duration;

use common::Harness;
use toolshed_core::domain::{SessionId, SessionState, StopReason, TaskLabels, TaskPurpose};
use toolshed_core::ports::{Clock, TaskState};
use toolshed_core::services::{LaunchRequest, SweepLimits, SweepReport};

fn ttl(secs: u64) -> LaunchRequest {
    LaunchRequest {
        ttl: Some(Duration::from_secs(secs)),
        idempotency_key: None,
        settings: Default::default(),
    }
}

#[tokio::test]
async fn sweep_stops_only_expired_sessions_and_orphans_and_is_idempotent() {
    let h = Harness::new();
    h.verified("time").await;
    let short = h
        .toolshed
        .launch_session(&h.id("time"), ttl(60))
        .await
        .unwrap();
    let long = h
        .toolshed
        .launch_session(&h.id("time"), ttl(3600))
        .await
        .unwrap();
    let foreign = h.runner.add_foreign_task().unwrap();
    // An orphan: a task carrying our labels whose session was never recorded (a crash between
    // the start and the insert).
    let orphan = h
        .runner
        .add_managed_task(TaskLabels {
            server_id: h.id("time"),
            purpose: TaskPurpose::Playground {
                session_id: SessionId::new("s-crashed-launch").unwrap(),
            },
            expires_at: h.clock.now() + chrono::Duration::minutes(15),
        })
        .unwrap();

    h.advance(Duration::from_secs(5 * 60));
    let report = h
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert_eq!(report.expired_stopped, 1, "{report:?}");
    assert_eq!(report.orphans_stopped, 1, "{report:?}");
    assert_eq!(report.exited_marked, 0, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");

    let s = h.toolshed.get_session(&short.id).await.unwrap();
    assert_eq!(s.state, SessionState::Stopped);
    assert_eq!(s.stop_reason, Some(StopReason::Expired));
    assert!(!h.runner.task(&short.task).unwrap().state.is_live());
    assert!(!h.runner.task(&orphan).unwrap().state.is_live());
    // Untouched: the live session's task and the foreign task.
    assert_eq!(
        h.toolshed.get_session(&long.id).await.unwrap().state,
        SessionState::Starting
    );
    assert!(h.runner.task(&long.task).unwrap().state.is_live());
    assert_eq!(h.runner.task(&foreign).unwrap().state, TaskState::Running);
    assert_eq!(h.runner.task(&foreign).unwrap().stop_reason, None);

    let stops = h.runner.stop_calls();
    let again = h
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert!(
        again.is_noop(),
        "second sweep must change nothing: {again:?}"
    );
    assert_eq!(
        again,
        SweepReport {
            tasks_seen: again.tasks_seen,
            ..Default::default()
        }
    );
    assert_eq!(h.runner.stop_calls(), stops, "second sweep stopped nothing");
}

#[tokio::test]
async fn sweep_never_stops_a_task_younger_than_the_grace_period() {
    let h = Harness::new();
    h.verified("time").await;
    let young = h
        .runner
        .add_managed_task(TaskLabels {
            server_id: h.id("time"),
            purpose: TaskPurpose::Playground {
                session_id: SessionId::new("s-being-launched").unwrap(),
            },
            expires_at: h.clock.now() + chrono::Duration::minutes(15),
        })
        .unwrap();
    let report = h
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert_eq!(report.orphans_stopped, 0, "{report:?}");
    assert_eq!(report.young_tasks_skipped, 1, "{report:?}");
    assert!(h.runner.task(&young).unwrap().state.is_live());
    h.advance(h.config.orphan_grace + Duration::from_secs(1));
    let report = h
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert_eq!(report.orphans_stopped, 1, "{report:?}");
}

#[tokio::test]
async fn sweep_stops_tasks_of_ended_sessions_and_expired_check_tasks() {
    let h = Harness::new();
    h.verified("time").await;
    // A session ended in the store but whose task stop failed.
    let s = h
        .toolshed
        .launch_session(&h.id("time"), ttl(3600))
        .await
        .unwrap();
    h.repo_end(&s.id).await;
    // A check task of a crashed verification, and one still within its TTL.
    let crashed = h
        .runner
        .add_managed_task(TaskLabels {
            server_id: h.id("time"),
            purpose: TaskPurpose::Verification {
                run_id: "run-crashed".into(),
            },
            expires_at: h.clock.now() + chrono::Duration::minutes(10),
        })
        .unwrap();
    h.advance(Duration::from_secs(11 * 60));
    let current = h
        .runner
        .add_managed_task(TaskLabels {
            server_id: h.id("time"),
            purpose: TaskPurpose::Verification {
                run_id: "run-now".into(),
            },
            expires_at: h.clock.now() + chrono::Duration::minutes(30),
        })
        .unwrap();
    h.advance(h.config.orphan_grace + Duration::from_secs(1));
    let report = h
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert_eq!(report.orphans_stopped, 2, "{report:?}");
    assert!(!h.runner.task(&s.task).unwrap().state.is_live());
    assert!(!h.runner.task(&crashed).unwrap().state.is_live());
    assert!(h.runner.task(&current).unwrap().state.is_live());
}

#[tokio::test]
async fn sweep_marks_sessions_whose_task_exited_by_itself() {
    let h = Harness::new();
    h.verified("time").await;
    let exited = h
        .toolshed
        .launch_session(&h.id("time"), ttl(3600))
        .await
        .unwrap();
    let vanished = h
        .toolshed
        .launch_session(&h.id("time"), ttl(3600))
        .await
        .unwrap();
    let fine = h
        .toolshed
        .launch_session(&h.id("time"), ttl(3600))
        .await
        .unwrap();
    h.runner.exit_task(&exited.task);
    h.runner.forget_task(&vanished.task);
    let report = h
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert_eq!(report.exited_marked, 2, "{report:?}");
    assert_eq!(report.orphans_stopped, 0);
    for id in [&exited.id, &vanished.id] {
        let s = h.toolshed.get_session(id).await.unwrap();
        assert_eq!(s.stop_reason, Some(StopReason::TaskExited));
    }
    assert_eq!(
        h.toolshed.get_session(&fine.id).await.unwrap().state,
        SessionState::Starting
    );
    let again = h
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert!(again.is_noop(), "{again:?}");
}

#[tokio::test]
async fn sweep_work_is_bounded_per_call() {
    let h = Harness::with_config(|c| c.session_caps.per_server = 50);
    h.verified("time").await;
    for _ in 0..7 {
        h.toolshed
            .launch_session(&h.id("time"), ttl(60))
            .await
            .unwrap();
    }
    h.advance(Duration::from_secs(120));
    let limits = SweepLimits {
        max_expired: 3,
        task_page_size: 2,
        max_task_pages: 1,
        max_live_checked: 10,
        concurrency: 4,
    };
    let first = h.toolshed.sweep_expired_sessions(limits).await;
    assert_eq!(first.expired_stopped, 3, "{first:?}");
    assert!(first.tasks_seen <= 2, "{first:?}");
    assert!(first.tasks_truncated);
    let mut total = first.expired_stopped;
    for _ in 0..5 {
        total += h
            .toolshed
            .sweep_expired_sessions(limits)
            .await
            .expired_stopped;
    }
    assert_eq!(total, 7, "later sweeps finish the work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sweeps_at_once_count_each_session_once() {
    let h = Harness::with_config(|c| c.session_caps.per_server = 50);
    h.verified("time").await;
    for _ in 0..20 {
        h.toolshed
            .launch_session(&h.id("time"), ttl(60))
            .await
            .unwrap();
    }
    h.advance(Duration::from_secs(120));
    let (a, b) = tokio::join!(
        tokio::spawn({
            let t = h.toolshed.clone();
            async move { t.sweep_expired_sessions(SweepLimits::default()).await }
        }),
        tokio::spawn({
            let t = h.worker("worker-b");
            async move { t.sweep_expired_sessions(SweepLimits::default()).await }
        }),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.expired_stopped + b.expired_stopped, 20, "{a:?} {b:?}");
    assert!(a.errors.is_empty() && b.errors.is_empty());
    assert!(h.runner.live_tasks().is_empty());
}
