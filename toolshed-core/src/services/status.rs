//! Session status kept fresh without a runner call per poll.
//!
//! Each session record carries the last observation of its task ([`TaskObservation`]). A status
//! poll answers from it while it is younger than [`ToolshedConfig::status_freshness`]; the polls
//! that find their record stale share one batched describe (the service's status batcher, which
//! also renews the other live sessions about to go stale). Records are kept fresh by two writers:
//! - task events ([`StatusRefresher::apply_task_events`]): ECS task state changes delivered by
//!   EventBridge, Docker's event stream locally, parsed by the adapters into [`TaskEvent`]s;
//! - the batched refresher ([`StatusRefresher::refresh_stale_sessions`]), run on a schedule,
//!   which describes the tasks of live sessions whose observation is ageing, up to
//!   [`DESCRIBE_BATCH`] per runner call; long-running processes keep it going with
//!   [`StatusRefresher::refresh_on_schedule`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tracing::{debug, info, warn};

use super::{Toolshed, ToolshedConfig};
use crate::domain::{
    Endpoint, ObservedTaskState, PlaygroundSession, ServerId, SessionId, StopReason, TaskExit,
    TaskHandle, TaskObservation, Timestamp,
};
use crate::error::Result;
use crate::ports::{
    Clock, ServerRepository, SessionEnd, SessionObservation, TaskRunner, TaskState, TaskStatus,
    DESCRIBE_BATCH, OUT_OF_MEMORY, SESSION_BATCH,
};

/// Session ends in flight at once while applying events.
const END_CONCURRENCY: usize = 16;

/// The shortest period of [`StatusRefresher::refresh_on_schedule`] (a zero freshness would
/// otherwise make it spin).
pub const MIN_REFRESH_PERIOD: Duration = Duration::from_millis(100);

/// One task state change, as an adapter parsed it from the runner's event source. Untrusted:
/// it is applied only to a live session whose task it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// The session the task serves (from the task's labels, or its ECS `group`).
    pub session_id: SessionId,
    /// The task.
    pub task: TaskHandle,
    /// Its new state.
    pub state: TaskState,
    /// Where MCP answers, when the event carries the whole endpoint (Docker, after an inspect).
    pub endpoint: Option<Endpoint>,
    /// The task's address alone (ECS events carry its private IP, not the port or path): the
    /// endpoint is completed from the server's transport.
    pub address: Option<String>,
    /// When the runner says the change happened.
    pub observed_at: Timestamp,
}

/// What [`StatusRefresher::apply_task_events`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskEventsReport {
    /// Events received.
    pub received: u32,
    /// Sessions whose record took an observation.
    pub recorded: u32,
    /// Sessions ended because their task ended.
    pub ended: u32,
    /// Events about no live session running their task (unknown, ended, another task).
    pub ignored: u32,
    /// Errors on single sessions (the others were applied).
    pub errors: Vec<String>,
}

/// Bounds of one [`StatusRefresher::refresh_stale_sessions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLimits {
    /// Most live sessions read (100 per repository query).
    pub max_sessions: usize,
    /// Session ends in flight at once.
    pub concurrency: usize,
}

impl Default for RefreshLimits {
    fn default() -> Self {
        Self {
            max_sessions: 1_000,
            concurrency: 16,
        }
    }
}

/// What [`StatusRefresher::refresh_stale_sessions`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Live sessions read.
    pub checked: u32,
    /// Of those, sessions whose observation was old enough to refresh.
    pub stale: u32,
    /// Batched runner describes made (one per [`DESCRIBE_BATCH`] stale sessions).
    pub describe_calls: u32,
    /// Sessions whose record took a new observation.
    pub recorded: u32,
    /// Sessions ended because their task had ended.
    pub ended: u32,
    /// Whether live sessions were left unread (`max_sessions`).
    pub truncated: bool,
    /// Errors met (the refresh goes on after each).
    pub errors: Vec<String>,
}

/// The observed form of a runner state.
pub fn observed_state(state: &TaskState) -> ObservedTaskState {
    match state {
        TaskState::Pending => ObservedTaskState::Pending,
        TaskState::Running => ObservedTaskState::Running,
        TaskState::Stopped { .. } => ObservedTaskState::Stopped,
        TaskState::Missing => ObservedTaskState::Missing,
    }
}

/// The observation of a describe at `at` (an endpoint is kept only while running; how it ended,
/// once stopped).
pub fn observation_of(status: &TaskStatus, at: Timestamp) -> TaskObservation {
    let state = observed_state(&status.state);
    TaskObservation {
        endpoint: status
            .endpoint
            .clone()
            .filter(|_| state == ObservedTaskState::Running),
        state,
        observed_at: at,
        exit: status.state.exit(),
    }
}

/// The runner status an observation stands for.
pub(super) fn status_of(observation: &TaskObservation) -> TaskStatus {
    TaskStatus {
        state: match observation.state {
            ObservedTaskState::Pending => TaskState::Pending,
            ObservedTaskState::Running => TaskState::Running,
            ObservedTaskState::Stopped => {
                let exit = observation.exit.unwrap_or(TaskExit {
                    exit_code: None,
                    out_of_memory: false,
                });
                TaskState::Stopped {
                    reason: exit.out_of_memory.then(|| OUT_OF_MEMORY.to_owned()),
                    exit_code: exit.exit_code,
                }
            }
            ObservedTaskState::Missing => TaskState::Missing,
        },
        endpoint: observation.endpoint.clone(),
    }
}

impl Toolshed {
    /// The status refresher on this service's repository, runner, clock and freshness.
    pub fn status_refresher(&self) -> StatusRefresher {
        StatusRefresher::new(
            self.ports.repository.clone(),
            self.ports.runner.clone(),
            self.ports.clock.clone(),
        )
        .with_freshness(self.config.status_freshness)
    }

    /// [`StatusRefresher::apply_task_events`] with this service's ports.
    ///
    /// # Errors
    /// As [`StatusRefresher::apply_task_events`].
    pub async fn apply_task_events(&self, events: &[TaskEvent]) -> Result<TaskEventsReport> {
        self.status_refresher().apply_task_events(events).await
    }

    /// [`StatusRefresher::refresh_stale_sessions`] with this service's ports.
    pub async fn refresh_stale_sessions(&self, limits: RefreshLimits) -> RefreshReport {
        self.status_refresher().refresh_stale_sessions(limits).await
    }
}

/// Keeps session records' task observations fresh. Needs only the repository, the runner and the
/// clock, so the cleanup function wires it like the [`super::Sweeper`].
#[derive(Debug, Clone)]
pub struct StatusRefresher {
    repository: Arc<dyn ServerRepository>,
    runner: Arc<dyn TaskRunner>,
    clock: Arc<dyn Clock>,
    freshness: Duration,
    refresh_age: Duration,
}

impl StatusRefresher {
    /// A refresher with the default freshness ([`ToolshedConfig::status_freshness`]).
    pub fn new(
        repository: Arc<dyn ServerRepository>,
        runner: Arc<dyn TaskRunner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            repository,
            runner,
            clock,
            freshness: Duration::ZERO,
            refresh_age: Duration::ZERO,
        }
        .with_freshness(ToolshedConfig::default().status_freshness)
    }

    /// How long polls trust an observation. The refresher renews observations once they are
    /// half this old, so running it at least every `freshness / 2` keeps every poll off the
    /// runner.
    pub fn with_freshness(mut self, freshness: Duration) -> Self {
        self.freshness = freshness;
        self.refresh_age = freshness / 2;
        self
    }

    /// Applies task events to their sessions: each event's observation is recorded on a live
    /// session running that task when newer than what it holds, and a session whose task ended
    /// is ended (`TaskExited`). Events about anything else are counted as ignored. Costs one
    /// batched session read, a server read per server whose endpoint must be completed, one
    /// batched observation write and an end per ended session; never a runner call.
    ///
    /// # Errors
    /// `Backend` when the sessions cannot be read or the observations not written (a retry is
    /// safe: applying an event twice changes nothing); errors ending single sessions are in the
    /// report.
    pub async fn apply_task_events(&self, events: &[TaskEvent]) -> Result<TaskEventsReport> {
        let mut report = TaskEventsReport {
            received: u32::try_from(events.len()).unwrap_or(u32::MAX),
            ..TaskEventsReport::default()
        };
        let ids: Vec<SessionId> = events.iter().map(|e| e.session_id.clone()).collect();
        let mut sessions: HashMap<SessionId, PlaygroundSession> = HashMap::new();
        for chunk in ids.chunks(SESSION_BATCH) {
            for s in self.repository.get_sessions(chunk).await? {
                sessions.insert(s.id.clone(), s);
            }
        }
        let ours: Vec<(&TaskEvent, &PlaygroundSession)> = events
            .iter()
            .filter_map(|e| {
                let s = sessions.get(&e.session_id)?;
                (s.state.is_live() && s.task == e.task).then_some((e, s))
            })
            .collect();
        let transports = self.transports(&ours, &mut report).await;
        let mut observations = Vec::with_capacity(ours.len());
        for (event, session) in &ours {
            let mut status = TaskStatus {
                state: event.state.clone(),
                endpoint: event.endpoint.clone(),
            };
            if status.endpoint.is_none() && event.state == TaskState::Running {
                status.endpoint = match (&event.address, transports.get(&session.server_id)) {
                    (Some(address), Some((port, path))) => {
                        match Endpoint::new(address.clone(), *port, path.clone()) {
                            Ok(ep) => Some(ep),
                            Err(e) => {
                                report.errors.push(format!(
                                    "event of session {}: address rejected: {e}",
                                    session.id
                                ));
                                None
                            }
                        }
                    }
                    _ => None,
                };
            }
            observations.push(SessionObservation {
                session_id: session.id.clone(),
                task: session.task.clone(),
                observation: observation_of(&status, event.observed_at),
            });
        }
        let changed = self
            .repository
            .record_task_observations(&observations)
            .await?;
        report.recorded = u32::try_from(changed.len()).unwrap_or(u32::MAX);
        // Ended tasks end their session, whether this call recorded the observation or an
        // earlier delivery of the same event did (its end may have failed).
        let ended: BTreeSet<SessionId> = observations
            .iter()
            .filter(|o| o.observation.state.is_ended())
            .map(|o| o.session_id.clone())
            .collect();
        let (n, errors) = self
            .end_all(ended.into_iter().collect(), END_CONCURRENCY)
            .await;
        report.ended = n;
        report.errors.extend(errors);
        report.ignored = report
            .received
            .saturating_sub(u32::try_from(ours.len()).unwrap_or(u32::MAX));
        info!(?report, "task events applied");
        Ok(report)
    }

    /// Container port and MCP path of each server whose running events carry only an address.
    async fn transports(
        &self,
        ours: &[(&TaskEvent, &PlaygroundSession)],
        report: &mut TaskEventsReport,
    ) -> HashMap<ServerId, (u16, String)> {
        let mut out = HashMap::new();
        for (event, session) in ours {
            let needs = event.state == TaskState::Running
                && event.endpoint.is_none()
                && event.address.is_some();
            if !needs || out.contains_key(&session.server_id) {
                continue;
            }
            match self.repository.get_server(&session.server_id).await {
                Ok(server) => {
                    out.insert(
                        session.server_id.clone(),
                        (
                            server.transport.container_port(),
                            server.transport.path().to_owned(),
                        ),
                    );
                }
                Err(e) => report
                    .errors
                    .push(format!("server {} of an event: {e}", session.server_id)),
            }
        }
        out
    }

    /// One refresh: reads live sessions (a page of 100 per query, up to
    /// `limits.max_sessions`), describes the tasks of those whose observation is at least half
    /// the freshness old in batches of [`DESCRIBE_BATCH`], records what it saw, and ends the
    /// sessions whose task ended. Errors are collected in the report.
    pub async fn refresh_stale_sessions(&self, limits: RefreshLimits) -> RefreshReport {
        let mut report = RefreshReport::default();
        let now = self.clock.now();
        let mut stale: Vec<PlaygroundSession> = Vec::new();
        let mut after: Option<SessionId> = None;
        let mut read = 0usize;
        loop {
            let want = SESSION_BATCH.min(limits.max_sessions.saturating_sub(read));
            if want == 0 {
                report.truncated = true;
                break;
            }
            let page = match self
                .repository
                .list_live_sessions(after.clone(), want)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    report.errors.push(format!("list live sessions: {e}"));
                    break;
                }
            };
            read += page.len();
            let last = page.last().map(|s| s.id.clone());
            let full = page.len() == want;
            stale.extend(page.into_iter().filter(|s| {
                !s.observed
                    .as_ref()
                    .is_some_and(|o| o.is_fresh(now, self.refresh_age))
            }));
            if !full || last.is_none() {
                break;
            }
            after = last;
        }
        report.checked = u32::try_from(read).unwrap_or(u32::MAX);
        report.stale = u32::try_from(stale.len()).unwrap_or(u32::MAX);
        let mut observations = Vec::with_capacity(stale.len());
        let mut ended = Vec::new();
        for chunk in stale.chunks(DESCRIBE_BATCH) {
            let tasks: Vec<TaskHandle> = chunk.iter().map(|s| s.task.clone()).collect();
            report.describe_calls += 1;
            let described = match self.runner.describe_many(&tasks).await {
                Ok(d) => d,
                Err(e) => {
                    report
                        .errors
                        .push(format!("describe {} tasks: {e}", tasks.len()));
                    continue;
                }
            };
            let at = self.clock.now();
            let by_task: HashMap<TaskHandle, TaskStatus> = described.into_iter().collect();
            for s in chunk {
                let Some(status) = by_task.get(&s.task) else {
                    warn!(session = %s.id, "the runner left a task undescribed");
                    continue;
                };
                let observation = observation_of(status, at);
                if observation.state.is_ended() {
                    ended.push(s.id.clone());
                }
                observations.push(SessionObservation {
                    session_id: s.id.clone(),
                    task: s.task.clone(),
                    observation,
                });
            }
        }
        match self
            .repository
            .record_task_observations(&observations)
            .await
        {
            Ok(changed) => report.recorded = u32::try_from(changed.len()).unwrap_or(u32::MAX),
            Err(e) => report.errors.push(format!("record observations: {e}")),
        }
        let (n, errors) = self.end_all(ended, limits.concurrency).await;
        report.ended = n;
        report.errors.extend(errors);
        debug!(?report, "status refresh done");
        report
    }

    /// How often [`Self::refresh_on_schedule`] refreshes: half the freshness, so every
    /// observation is renewed before polls find it stale (at least [`MIN_REFRESH_PERIOD`]).
    pub fn schedule_period(&self) -> Duration {
        self.refresh_age.max(MIN_REFRESH_PERIOD)
    }

    /// Runs [`Self::refresh_stale_sessions`] every [`Self::schedule_period`], the first at once,
    /// until the future is dropped: the schedule a long-running process (the playground API)
    /// keeps so its polls answer from records. A refresh's errors are logged and the next
    /// refresh goes on; a refresh that overruns delays the next instead of piling up.
    pub async fn refresh_on_schedule(&self, limits: RefreshLimits) {
        let mut ticks = tokio::time::interval(self.schedule_period());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let report = self.refresh_stale_sessions(limits).await;
            if !report.errors.is_empty() {
                warn!(errors = ?report.errors, "scheduled status refresh met errors");
            }
        }
    }

    /// Ends sessions whose task ended (`TaskExited`); how many this call ended, and errors.
    async fn end_all(&self, ids: Vec<SessionId>, concurrency: usize) -> (u32, Vec<String>) {
        let now = self.clock.now();
        let outcomes: Vec<std::result::Result<bool, String>> = stream::iter(ids)
            .map(|id| async move {
                match self
                    .repository
                    .end_session(&id, StopReason::TaskExited, now)
                    .await
                {
                    Ok(SessionEnd::Ended(s)) => {
                        let exit = s.task_exit().map(|e| e.to_string());
                        info!(session = %id, task = exit.as_deref().unwrap_or("ended"), "session ended: its task ended");
                        Ok(true)
                    }
                    Ok(SessionEnd::AlreadyEnded(_)) => Ok(false),
                    Err(e) => Err(format!("end session {id}: {e}")),
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut n = 0;
        let mut errors = Vec::new();
        for o in outcomes {
            match o {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => errors.push(e),
            }
        }
        (n, errors)
    }
}
