//! Conformance check of [`ServerRepository::record_task_observations`]: observations land only
//! on live sessions running the observed task, only when newer, with `version + 1`, in batches
//! larger than a backend's per-request limit.

use std::sync::Arc;

use super::{created, new_server, now, sample_session, secs, Must, NO_CAPS};
use crate::domain::{
    Endpoint, ObservedTaskState, SessionId, StopReason, TaskExit, TaskHandle, TaskObservation,
    Timestamp,
};
use crate::ports::{ServerRepository, SessionObservation, SESSION_BATCH};

type Repo = Arc<dyn ServerRepository>;

fn seen(state: ObservedTaskState, at: Timestamp) -> TaskObservation {
    TaskObservation {
        endpoint: (state == ObservedTaskState::Running)
            .then(|| Endpoint::new("10.0.0.9", 8000, "/mcp").must("endpoint")),
        state,
        observed_at: at,
        exit: None,
    }
}

/// Observations: newest wins, only the session's own task, only live sessions, unknown ids
/// skipped, batches beyond [`SESSION_BATCH`], and later writes keep what was recorded.
pub async fn check_record_task_observations(repo: Repo) {
    let t = now();
    let s = new_server(&repo, t).await;
    let mk = |suffix: &str| sample_session(&s.id, suffix, t, t + secs(900));
    let live = created(&repo, &mk("obs-live"), NO_CAPS).await;
    let other = created(&repo, &mk("obs-other"), NO_CAPS).await;
    let ended = created(&repo, &mk("obs-ended"), NO_CAPS).await;
    repo.end_session(&ended.id, StopReason::Requested, t)
        .await
        .must("end_session");
    let ended = repo.get_session(&ended.id).await.must("get_session");

    let none = repo
        .record_task_observations(&[])
        .await
        .must("record_task_observations of nothing");
    assert!(
        none.is_empty(),
        "conformance: no observations change nothing"
    );

    let obs = |id: &SessionId, task: &TaskHandle, o: TaskObservation| SessionObservation {
        session_id: id.clone(),
        task: task.clone(),
        observation: o,
    };
    let newest = seen(ObservedTaskState::Running, t + secs(2));
    let batch = vec![
        obs(
            &live.id,
            &live.task,
            seen(ObservedTaskState::Pending, t + secs(1)),
        ),
        obs(&live.id, &live.task, newest.clone()),
        // Another task naming this session (a stale or forged event) is ignored.
        obs(
            &other.id,
            &TaskHandle::new("task-somebody-else").must("task"),
            seen(ObservedTaskState::Stopped, t + secs(3)),
        ),
        obs(
            &ended.id,
            &ended.task,
            seen(ObservedTaskState::Running, t + secs(3)),
        ),
        obs(
            &SessionId::new(format!("{}-obs-missing", s.id)).must("id"),
            &live.task,
            seen(ObservedTaskState::Running, t + secs(3)),
        ),
    ];
    let changed = repo
        .record_task_observations(&batch)
        .await
        .must("record_task_observations");
    assert_eq!(
        changed.len(),
        1,
        "conformance: record_task_observations must change only the live session running the \
         task, got {changed:?}"
    );
    let got = &changed[0];
    assert_eq!(got.id, live.id);
    assert_eq!(
        got.observed.as_ref(),
        Some(&newest),
        "conformance: the newest observation of a session wins"
    );
    assert_eq!(
        got.version,
        live.version + 1,
        "conformance: an observation is a write (version + 1)"
    );
    assert_eq!(
        &repo.get_session(&live.id).await.must("get_session"),
        got,
        "conformance: record_task_observations returns the stored record"
    );
    let untouched = repo.get_session(&other.id).await.must("get_session");
    assert_eq!(
        untouched, other,
        "conformance: another task's observation is ignored"
    );
    assert_eq!(
        repo.get_session(&ended.id).await.must("get_session"),
        ended,
        "conformance: an ended session takes no observation"
    );

    // Older or same-time observations never replace a newer one.
    for at in [t + secs(1), t + secs(2)] {
        let again = repo
            .record_task_observations(&[obs(
                &live.id,
                &live.task,
                seen(ObservedTaskState::Stopped, at),
            )])
            .await
            .must("record_task_observations (older)");
        assert!(
            again.is_empty(),
            "conformance: an observation not newer than the stored one must be skipped"
        );
    }
    // The record keeps its observation through an update.
    let mut running = got.clone();
    running.mark_ready(Endpoint::new("10.0.0.9", 8000, "/mcp").must("endpoint"), t);
    let updated = repo.update_session(&running).await.must("update_session");
    assert_eq!(updated.observed.as_ref(), Some(&newest));
    // A stale version after an observation is a conflict: observations are writes.
    let later = seen(ObservedTaskState::Running, t + secs(5));
    repo.record_task_observations(&[obs(&live.id, &live.task, later.clone())])
        .await
        .must("record_task_observations (newer)");
    assert!(
        repo.update_session(&updated).await.is_err(),
        "conformance: update_session with the version before an observation must fail"
    );
    assert_eq!(
        repo.get_session(&live.id)
            .await
            .must("get_session")
            .observed,
        Some(later),
    );

    // How the task ended stays with the record through the session's end.
    let exit = TaskExit {
        exit_code: Some(137),
        out_of_memory: true,
    };
    let stopped = TaskObservation {
        exit: Some(exit),
        ..seen(ObservedTaskState::Stopped, t + secs(6))
    };
    repo.record_task_observations(&[obs(&live.id, &live.task, stopped.clone())])
        .await
        .must("record_task_observations (stopped)");
    repo.end_session(&live.id, StopReason::TaskExited, t + secs(7))
        .await
        .must("end_session");
    let ended_live = repo.get_session(&live.id).await.must("get_session");
    assert_eq!(
        ended_live.observed,
        Some(stopped),
        "conformance: a session's last observation, with how its task ended, is kept through \
         end_session"
    );
    assert_eq!(ended_live.task_exit(), Some(exit));

    // More sessions than one backend request holds.
    let mut many = Vec::new();
    for i in 0..SESSION_BATCH + 5 {
        many.push(created(&repo, &mk(&format!("obs-many-{i}")), NO_CAPS).await);
    }
    let batch: Vec<SessionObservation> = many
        .iter()
        .map(|m| {
            obs(
                &m.id,
                &m.task,
                seen(ObservedTaskState::Pending, t + secs(4)),
            )
        })
        .collect();
    let changed = repo
        .record_task_observations(&batch)
        .await
        .must("record_task_observations (large batch)");
    assert_eq!(
        changed.len(),
        many.len(),
        "conformance: record_task_observations must record every session of a large batch"
    );
    let stored = repo
        .get_sessions(&many.iter().map(|m| m.id.clone()).collect::<Vec<_>>())
        .await
        .must("get_sessions");
    assert!(
        stored
            .iter()
            .all(|m| m.observed.as_ref().map(|o| o.state) == Some(ObservedTaskState::Pending)),
        "conformance: every session of a large batch stores its observation"
    );
    for x in many.iter().chain([&live, &other]) {
        repo.end_session(&x.id, StopReason::Requested, t)
            .await
            .must("end_session");
    }
}
