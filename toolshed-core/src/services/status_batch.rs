//! Stale status polls coalesced into one batched describe.
//!
//! A poll whose session record is stale asks the [`StatusBatcher`] instead of the runner. The
//! first such poll makes a leader, a task of its own (so a poll its caller gives up abandons
//! nobody), which waits [`GATHER_WINDOW`] for more polls, then describes in one
//! [`TaskRunner::describe_many`] the tasks of every waiting poll's session and of every other
//! live session (one [`ServerRepository::list_live_sessions`] page) whose observation is at least
//! half the freshness old. It records every observation with one
//! [`ServerRepository::record_task_observations`], ends the sessions whose task ended, and
//! answers each poll. A poll arriving meanwhile about a session of that batch joins it; any
//! other waits for the next round, which the same leader runs. So the observations of a fleet
//! age together, and 100 sessions polled at any rate cost about one describe per freshness
//! period.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::status::observation_of;
use crate::domain::{
    PlaygroundSession, SessionId, StopReason, TaskHandle, TaskObservation, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::{
    Clock, ServerRepository, SessionEnd, SessionObservation, TaskRunner, TaskStatus,
    DESCRIBE_BATCH, SESSION_BATCH,
};

/// How long a leader waits for more stale polls before it describes: long enough for a burst
/// of concurrent polls to share the describe, short next to a describe's own latency.
pub(super) const GATHER_WINDOW: Duration = Duration::from_millis(5);

/// Session ends in flight at once after a batch.
const END_CONCURRENCY: usize = 16;

/// What a batch learned about one session's task.
#[derive(Debug, Clone)]
pub(super) struct BatchedStatus {
    /// The task's status as described.
    pub status: TaskStatus,
    /// The observation of that describe.
    pub observation: TaskObservation,
    /// The session as stored after the batch, when the batch changed it (the observation was
    /// recorded, or the session ended); `None` when the record took nothing (a newer
    /// observation was already there, or recording failed).
    pub stored: Option<PlaygroundSession>,
}

/// A batch's answer to one poll; the error is shared by every poll of the batch.
type Answer = std::result::Result<BatchedStatus, Arc<Error>>;

/// Where a waiting poll's answer goes.
type Waiter = oneshot::Sender<Answer>;

/// The polls waiting on batches.
#[derive(Debug, Default)]
struct Rounds {
    /// Sessions asked about since the current batch started (the next round), with their polls.
    queued: HashMap<SessionId, (PlaygroundSession, Vec<Waiter>)>,
    /// Sessions of the batch being described, with the polls that wait for it.
    in_flight: HashMap<SessionId, Vec<Waiter>>,
    /// Whether a leader is running: it runs rounds until none is queued.
    leading: bool,
}

/// Coalesces the describes of stale status polls (see the module documentation). One per
/// service: its clones share it.
#[derive(Debug)]
pub(super) struct StatusBatcher {
    repository: Arc<dyn ServerRepository>,
    runner: Arc<dyn TaskRunner>,
    clock: Arc<dyn Clock>,
    /// Other live sessions whose observation is at least this old join a batch (half the
    /// freshness): they would go stale before the next one.
    renew_age: Duration,
    gather: Duration,
    rounds: Mutex<Rounds>,
}

impl StatusBatcher {
    /// A batcher for polls that trust observations younger than `freshness`.
    pub(super) fn new(
        repository: Arc<dyn ServerRepository>,
        runner: Arc<dyn TaskRunner>,
        clock: Arc<dyn Clock>,
        freshness: Duration,
    ) -> Self {
        Self {
            repository,
            runner,
            clock,
            renew_age: freshness / 2,
            gather: GATHER_WINDOW,
            rounds: Mutex::default(),
        }
    }

    /// The waiting polls. A leader that panicked cannot leave them inconsistent (its guard
    /// resets them), so a poisoned lock is taken as is.
    fn rounds(&self) -> MutexGuard<'_, Rounds> {
        self.rounds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The status of `session`'s task from a batched describe, shared with every stale poll
    /// of the same moment.
    ///
    /// # Errors
    /// The runner's error when the batch's describe failed (every poll of the batch gets it,
    /// with its retry hint; the next poll starts a new batch); a retryable `Backend` error when
    /// the runner left the task undescribed or the batch was abandoned.
    pub(super) async fn status(
        self: &Arc<Self>,
        session: PlaygroundSession,
    ) -> Result<BatchedStatus> {
        let id = session.id.clone();
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut rounds = self.rounds();
            if let Some(waiters) = rounds.in_flight.get_mut(&id) {
                waiters.push(tx);
                false
            } else {
                rounds
                    .queued
                    .entry(id.clone())
                    .or_insert_with(|| (session, Vec::new()))
                    .1
                    .push(tx);
                !std::mem::replace(&mut rounds.leading, true)
            }
        };
        if lead {
            tokio::spawn(Arc::clone(self).lead());
        }
        match rx.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(shared)) => Err(for_waiter(&shared, &id)),
            Err(_) => Err(batch_error(&id, "the batched describe was abandoned")),
        }
    }

    /// Runs rounds until no poll is queued.
    async fn lead(self: Arc<Self>) {
        let mut guard = LeaderGuard {
            batcher: &self,
            done: false,
        };
        loop {
            tokio::time::sleep(self.gather).await;
            let asked: Vec<PlaygroundSession> = {
                let mut rounds = self.rounds();
                if rounds.queued.is_empty() {
                    // Under the lock: a poll queued after this starts a new leader.
                    rounds.leading = false;
                    guard.done = true;
                    return;
                }
                let queued = std::mem::take(&mut rounds.queued);
                queued
                    .into_iter()
                    .map(|(id, (session, waiters))| {
                        rounds.in_flight.insert(id, waiters);
                        session
                    })
                    .collect()
            };
            let mut batch = asked;
            self.add_ageing_sessions(&mut batch).await;
            let answers = self.describe_and_record(&batch).await;
            let waiters = std::mem::take(&mut self.rounds().in_flight);
            for (id, waiters) in waiters {
                let answer: Answer = match &answers {
                    Ok(by_session) => match by_session.get(&id) {
                        Some(a) => Ok(a.clone()),
                        None => Err(Arc::new(batch_error(
                            &id,
                            "the runner left the task undescribed",
                        ))),
                    },
                    Err(e) => Err(Arc::clone(e)),
                };
                for waiter in waiters {
                    // A poll given up by its caller no longer listens: nothing to do.
                    let _ = waiter.send(answer.clone());
                }
            }
        }
    }

    /// Adds to `batch` the other live sessions of one repository page whose observation is at
    /// least half the freshness old (or missing), up to [`DESCRIBE_BATCH`] sessions in all, and
    /// makes them part of the batch in flight (polls about them join it). A failed read only
    /// leaves them out.
    async fn add_ageing_sessions(&self, batch: &mut Vec<PlaygroundSession>) {
        let room = DESCRIBE_BATCH.saturating_sub(batch.len());
        if room == 0 {
            return;
        }
        let page = match self
            .repository
            .list_live_sessions(None, SESSION_BATCH)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                warn!(error = %e, "could not read live sessions to refresh with a stale poll's");
                return;
            }
        };
        let now = self.clock.now();
        let asked: HashSet<SessionId> = batch.iter().map(|s| s.id.clone()).collect();
        let ageing: Vec<PlaygroundSession> = page
            .into_iter()
            .filter(|s| s.state.is_live() && !asked.contains(&s.id) && !self.fresh_enough(s, now))
            .take(room)
            .collect();
        let mut rounds = self.rounds();
        for s in &ageing {
            // A poll queued about it meanwhile is answered by this batch.
            let waiters = rounds
                .queued
                .remove(&s.id)
                .map(|(_, w)| w)
                .unwrap_or_default();
            rounds.in_flight.insert(s.id.clone(), waiters);
        }
        drop(rounds);
        batch.extend(ageing);
    }

    /// Whether a session's observation is young enough to wait for the next batch.
    fn fresh_enough(&self, session: &PlaygroundSession, now: Timestamp) -> bool {
        session
            .observed
            .as_ref()
            .is_some_and(|o| o.is_fresh(now, self.renew_age))
    }

    /// Describes the tasks of `batch` in one runner call, records the observations in one
    /// repository call and ends the sessions whose task ended. What each session learned, by
    /// session; the runner's error when the describe failed. A failed record or end is only
    /// logged: the polls record and end their own sessions then.
    async fn describe_and_record(
        &self,
        batch: &[PlaygroundSession],
    ) -> std::result::Result<HashMap<SessionId, BatchedStatus>, Arc<Error>> {
        let tasks: Vec<TaskHandle> = batch.iter().map(|s| s.task.clone()).collect();
        let described = self.runner.describe_many(&tasks).await.map_err(|e| {
            warn!(error = %e, tasks = tasks.len(), "batched describe failed");
            Arc::new(e)
        })?;
        let at = self.clock.now();
        let by_task: HashMap<TaskHandle, TaskStatus> = described.into_iter().collect();
        let mut answers = HashMap::with_capacity(batch.len());
        let mut observations = Vec::with_capacity(batch.len());
        for s in batch {
            let Some(status) = by_task.get(&s.task) else {
                warn!(session = %s.id, "the runner left a task undescribed");
                continue;
            };
            let observation = observation_of(status, at);
            observations.push(SessionObservation {
                session_id: s.id.clone(),
                task: s.task.clone(),
                observation: observation.clone(),
            });
            answers.insert(
                s.id.clone(),
                BatchedStatus {
                    status: status.clone(),
                    observation,
                    stored: None,
                },
            );
        }
        match self
            .repository
            .record_task_observations(&observations)
            .await
        {
            Ok(changed) => {
                for s in changed {
                    if let Some(a) = answers.get_mut(&s.id) {
                        a.stored = Some(s);
                    }
                }
            }
            Err(e) => warn!(
                error = %e,
                sessions = observations.len(),
                "could not record a batch's task observations"
            ),
        }
        let ended: Vec<SessionId> = answers
            .iter()
            .filter(|(_, a)| a.observation.state.is_ended())
            .map(|(id, _)| id.clone())
            .collect();
        let now = self.clock.now();
        let ends: Vec<(SessionId, Result<SessionEnd>)> = stream::iter(ended)
            .map(|id| async move {
                let end = self
                    .repository
                    .end_session(&id, StopReason::TaskExited, now)
                    .await;
                (id, end)
            })
            .buffer_unordered(END_CONCURRENCY)
            .collect()
            .await;
        for (id, end) in ends {
            match end {
                Ok(end) => {
                    if let SessionEnd::Ended(s) = &end {
                        let exit = s.task_exit().map(|e| e.to_string());
                        info!(session = %id, task = exit.as_deref().unwrap_or("ended"), "session ended: its task ended");
                    }
                    if let Some(a) = answers.get_mut(&id) {
                        a.stored = Some(end.into_session());
                    }
                }
                Err(e) => {
                    warn!(session = %id, error = %e, "could not end a session whose task ended")
                }
            }
        }
        debug!(
            sessions = batch.len(),
            answered = answers.len(),
            "batched status refresh done"
        );
        Ok(answers)
    }
}

/// Resets the rounds when a leader stops without finishing (a panic, or the runtime shutting
/// down): the polls it held get an error instead of waiting forever, and the next poll leads.
struct LeaderGuard<'a> {
    batcher: &'a StatusBatcher,
    done: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut rounds = self.batcher.rounds();
        // Dropping the senders answers their polls with "abandoned".
        rounds.queued.clear();
        rounds.in_flight.clear();
        rounds.leading = false;
    }
}

/// A retryable error about one session's batched describe.
fn batch_error(session: &SessionId, why: &'static str) -> Error {
    Error::backend(
        "task runner",
        "batched describe",
        Some(format!("session {session}")),
        true,
        why,
    )
}

/// The shared error of a batch as one poll's own error: same meaning and retry hint, about
/// the poll's session.
fn for_waiter(shared: &Error, session: &SessionId) -> Error {
    let id = Some(format!("session {session}"));
    match shared {
        Error::Backend {
            backend,
            operation,
            retryable,
            source,
            ..
        } => Error::backend(backend, operation, id, *retryable, source.to_string()),
        Error::PermissionDenied {
            backend,
            operation,
            detail,
        } => Error::PermissionDenied {
            backend,
            operation,
            detail: detail.clone(),
        },
        Error::Timeout {
            operation,
            after_ms,
            ..
        } => Error::Timeout {
            operation,
            id,
            after_ms: *after_ms,
        },
        other => Error::backend(
            "task runner",
            "batched describe",
            id,
            other.is_retryable(),
            other.to_string(),
        ),
    }
}
