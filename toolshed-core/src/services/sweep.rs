//! The sweep: stop expired sessions and orphaned tasks, mark sessions whose task ended.
//!
//! Idempotent (stops and ends are idempotent, and counts only what this call changed) and safe
//! from two places at once; every part is bounded by [`SweepLimits`].
//!
//! Reads come in batches: the live sessions a page of 100 records at a time, the sessions of a
//! page of tasks the listing does not vouch for in one batched read, the tasks a page at a time
//! from the runner. Writes happen only for what changed. So a sweep over `N` unchanged live
//! sessions costs about `N/50` repository calls, whatever `N`.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, StreamExt};
use tracing::{info, warn};

use std::sync::Arc;
use std::time::Duration;

use super::config::since;
use super::{Toolshed, ToolshedConfig};
use crate::domain::{PlaygroundSession, SessionId, TaskHandle, TaskPurpose, Timestamp};
use crate::ports::{Clock, ServerRepository, TaskRunner};
use crate::ports::{SessionEnd, TaskState, TaskSummary, SESSION_BATCH};

/// Bounds of one sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepLimits {
    /// Most expired sessions stopped.
    pub max_expired: usize,
    /// Tasks per `list_managed` page.
    pub task_page_size: usize,
    /// Most `list_managed` pages read.
    pub max_task_pages: usize,
    /// Most live sessions read (whole records, 100 per query). They settle the orphan check of
    /// their own tasks without a read each, and are checked for a task that ended by itself.
    /// Tasks of sessions beyond this are judged on a batched read (one per page of tasks).
    pub max_live_checked: usize,
    /// Backend calls in flight at once. Each changed item costs a round trip or two (stop the
    /// task, end the session); an unchanged session costs none of its own (its record comes
    /// with a page of the live listing).
    pub concurrency: usize,
}

impl Default for SweepLimits {
    fn default() -> Self {
        Self {
            max_expired: 100,
            task_page_size: 100,
            max_task_pages: 10,
            max_live_checked: 1_000,
            concurrency: 16,
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired sessions this sweep stopped and ended.
    pub expired_stopped: u32,
    /// Managed tasks without a live session (or expired check tasks) this sweep stopped.
    pub orphans_stopped: u32,
    /// Live sessions whose task had stopped by itself, now ended.
    pub exited_marked: u32,
    /// Stopped tasks the runner still kept (exited containers) whose session has ended, removed.
    pub exited_removed: u32,
    /// Managed tasks listed.
    pub tasks_seen: u32,
    /// Orphan candidates left alone because they are younger than the grace period.
    pub young_tasks_skipped: u32,
    /// Tasks whose leftovers (resources the runner keeps per task, e.g. per-task secrets) this
    /// sweep removed.
    pub leftovers_removed: u32,
    /// Whether more task pages were left unread (the next sweep continues).
    pub tasks_truncated: bool,
    /// Errors met (the sweep goes on after each).
    pub errors: Vec<String>,
    /// The warm-pool pass of [`Toolshed::sweep_expired_sessions`] (retire pools of other
    /// digests, top up to size); empty from a [`Sweeper`] alone, which cannot start sessions.
    /// Warm sessions idle past their deadline are among `expired_stopped`.
    pub warm: super::WarmPoolReport,
}

impl SweepReport {
    /// Whether this sweep changed nothing.
    pub fn is_noop(&self) -> bool {
        self.expired_stopped == 0
            && self.orphans_stopped == 0
            && self.exited_marked == 0
            && self.exited_removed == 0
            && self.leftovers_removed == 0
            && self.warm.started == 0
            && self.warm.retired == 0
    }
}

impl Toolshed {
    /// One sweep (see [`Sweeper::sweep_expired_sessions`]) with this service's ports and
    /// orphan grace, then one pass over the warm pools ([`Toolshed::maintain_warm_pools`]):
    /// warm sessions idle past their TTL end with the expired ones, pools of re-verified
    /// servers are retired, and pools are topped up to their size.
    pub async fn sweep_expired_sessions(&self, limits: SweepLimits) -> SweepReport {
        let mut report = self.sweeper().sweep_expired_sessions(limits).await;
        report.warm = self.maintain_warm_pools().await;
        report
    }

    /// The sweep on this service's repository, runner and clock.
    pub fn sweeper(&self) -> Sweeper {
        Sweeper::new(
            self.ports.repository.clone(),
            self.ports.runner.clone(),
            self.ports.clock.clone(),
        )
        .with_orphan_grace(self.config.orphan_grace)
    }
}

/// The sweep on its own: it needs only the repository, the task runner and the clock, so a
/// process that only sweeps (the cleanup function) wires just those three.
#[derive(Debug, Clone)]
pub struct Sweeper {
    repository: Arc<dyn ServerRepository>,
    runner: Arc<dyn TaskRunner>,
    clock: Arc<dyn Clock>,
    orphan_grace: Duration,
}

impl Sweeper {
    /// A sweeper with the default orphan grace ([`ToolshedConfig::orphan_grace`]).
    pub fn new(
        repository: Arc<dyn ServerRepository>,
        runner: Arc<dyn TaskRunner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            repository,
            runner,
            clock,
            orphan_grace: ToolshedConfig::default().orphan_grace,
        }
    }

    /// The sweep never stops a task younger than `grace` (a launch records its session just
    /// after starting the task).
    pub fn with_orphan_grace(mut self, grace: Duration) -> Self {
        self.orphan_grace = grace;
        self
    }

    /// One sweep. Errors of single items are collected in the report; the sweep itself only
    /// returns what it did.
    pub async fn sweep_expired_sessions(&self, limits: SweepLimits) -> SweepReport {
        let mut report = SweepReport::default();
        let now = self.clock.now();
        let ended_now = self.stop_expired(now, limits, &mut report).await;
        let live = self.read_live_sessions(limits, &mut report).await;
        // What the listing says about each live session settles only "keep"; a session just
        // ended above, or one the listing does not vouch for, is read again before its task is
        // judged (the listing may lag, a stop is decided on a fresh read).
        let known: HashMap<&SessionId, &PlaygroundSession> = live
            .iter()
            .filter(|s| !ended_now.contains(&s.task))
            .map(|s| (&s.id, s))
            .collect();
        let live_tasks = self.stop_orphans(now, limits, &known, &mut report).await;
        self.mark_exited(now, limits, &live, &live_tasks, &ended_now, &mut report)
            .await;
        // Last, so the resources of tasks stopped above go in this very sweep when stopping
        // them could not remove them; at most a page of tasks' worth.
        match self
            .runner
            .remove_leftovers(self.orphan_grace, limits.task_page_size)
            .await
        {
            Ok(n) => report.leftovers_removed = n,
            Err(e) => report.errors.push(format!("remove leftovers: {e}")),
        }
        info!(?report, "sweep done");
        report
    }

    async fn stop_expired(
        &self,
        now: Timestamp,
        limits: SweepLimits,
        report: &mut SweepReport,
    ) -> HashSet<TaskHandle> {
        let p = self;
        let mut ended = HashSet::new();
        let expired = match p
            .repository
            .list_expired_sessions(now, limits.max_expired)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                report.errors.push(format!("list expired sessions: {e}"));
                return ended;
            }
        };
        let outcomes: Vec<ExpiredOutcome> = stream::iter(expired)
            .map(|s| async move {
                if let Err(e) = p.runner.stop(&s.task, "toolshed: session expired").await {
                    return ExpiredOutcome::StopFailed(format!(
                        "stop task {} of session {}: {e}",
                        s.task, s.id
                    ));
                }
                let end = p
                    .repository
                    .end_session(&s.id, crate::domain::StopReason::Expired, now)
                    .await;
                match end {
                    Ok(SessionEnd::Ended(_)) => ExpiredOutcome::Ended(s.task),
                    // Another sweeper (or a stop) got there first.
                    Ok(SessionEnd::AlreadyEnded(_)) => ExpiredOutcome::AlreadyEnded(s.task),
                    Err(e) => {
                        ExpiredOutcome::EndFailed(s.task, format!("end session {}: {e}", s.id))
                    }
                }
            })
            .buffer_unordered(limits.concurrency.max(1))
            .collect()
            .await;
        for outcome in outcomes {
            match outcome {
                ExpiredOutcome::Ended(task) => {
                    report.expired_stopped += 1;
                    ended.insert(task);
                }
                ExpiredOutcome::AlreadyEnded(task) => {
                    ended.insert(task);
                }
                ExpiredOutcome::EndFailed(task, e) => {
                    ended.insert(task);
                    report.errors.push(e);
                }
                ExpiredOutcome::StopFailed(e) => report.errors.push(e),
            }
        }
        ended
    }

    /// The live sessions, whole records, page by page (a page of 100 is one query), at most
    /// `max_live_checked`. A failed page ends the listing: what was read is still used.
    async fn read_live_sessions(
        &self,
        limits: SweepLimits,
        report: &mut SweepReport,
    ) -> Vec<PlaygroundSession> {
        let mut live: Vec<PlaygroundSession> = Vec::new();
        while live.len() < limits.max_live_checked {
            let want = (limits.max_live_checked - live.len()).min(SESSION_BATCH);
            let after = live.last().map(|s| s.id.clone());
            match self.repository.list_live_sessions(after, want).await {
                Ok(page) if page.is_empty() => break,
                Ok(page) => {
                    let last_page = page.len() < want;
                    live.extend(page);
                    if last_page {
                        break;
                    }
                }
                Err(e) => {
                    report.errors.push(format!("list live sessions: {e}"));
                    break;
                }
            }
        }
        live
    }

    /// Stops managed tasks that no live session owns. Returns the handles of the managed tasks
    /// left running (all of them only when the listing was complete: `mark_exited` confirms
    /// with `describe` before ending anything, so a partial set is safe).
    async fn stop_orphans(
        &self,
        now: Timestamp,
        limits: SweepLimits,
        known: &HashMap<&SessionId, &PlaygroundSession>,
        report: &mut SweepReport,
    ) -> HashSet<TaskHandle> {
        let p = self;
        let mut running = HashSet::new();
        let mut cursor = None;
        let mut complete = false;
        for _ in 0..limits.max_task_pages.max(1) {
            let page = match p
                .runner
                .list_managed(cursor.clone(), limits.task_page_size)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    report.errors.push(format!("list managed tasks: {e}"));
                    return running;
                }
            };
            report.tasks_seen += page.tasks.len() as u32;
            let sessions = self.session_reads(&page.tasks, known).await;
            let sessions = &sessions;
            let verdicts: Vec<(TaskSummary, Verdict)> = stream::iter(page.tasks)
                .map(|task| async move {
                    let verdict = self.judge_task(now, &task, sessions).await;
                    (task, verdict)
                })
                .buffer_unordered(limits.concurrency.max(1))
                .collect()
                .await;
            let mut orphans = Vec::new();
            let mut exited = Vec::new();
            for (task, verdict) in verdicts {
                match verdict {
                    Verdict::Orphan => orphans.push(task),
                    Verdict::Exited => exited.push(task),
                    Verdict::YoungOrphan => {
                        report.young_tasks_skipped += 1;
                        running.insert(task.handle);
                    }
                    Verdict::Keep => {
                        running.insert(task.handle);
                    }
                    Verdict::Unknown(e) => {
                        report.errors.push(e);
                        running.insert(task.handle);
                    }
                }
            }
            let stops: Vec<(TaskSummary, crate::Result<()>)> = stream::iter(orphans)
                .map(|task| async move {
                    let stopped = p.runner.stop(&task.handle, "toolshed: orphaned task").await;
                    (task, stopped)
                })
                .buffer_unordered(limits.concurrency.max(1))
                .collect()
                .await;
            self.end_exited(now, exited, limits, report).await;
            for (task, stopped) in stops {
                match stopped {
                    Ok(()) if !task.state.is_live() => {
                        info!(task = %task.handle, server = %task.labels.server_id, "removed stopped task");
                        report.exited_removed += 1;
                    }
                    Ok(()) => {
                        warn!(task = %task.handle, server = %task.labels.server_id, "stopped orphaned task");
                        report.orphans_stopped += 1;
                    }
                    Err(e) => report
                        .errors
                        .push(format!("stop orphan {}: {e}", task.handle)),
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => {
                    complete = true;
                    break;
                }
            }
        }
        report.tasks_truncated = !complete;
        running
    }

    /// The sessions of a page of playground tasks: the listed record when it vouches for the
    /// task (live, holding this very task), otherwise one batched read of all the others.
    async fn session_reads(
        &self,
        tasks: &[TaskSummary],
        known: &HashMap<&SessionId, &PlaygroundSession>,
    ) -> SessionReads {
        let mut reads = SessionReads {
            known: HashMap::new(),
            fresh: Ok(HashMap::new()),
        };
        let mut unsettled = Vec::new();
        for task in tasks {
            let TaskPurpose::Playground { session_id } = &task.labels.purpose else {
                continue;
            };
            match known.get(session_id) {
                Some(s) if s.task == task.handle => {
                    reads.known.insert(session_id.clone(), (*s).clone());
                }
                _ => unsettled.push(session_id.clone()),
            }
        }
        if !unsettled.is_empty() {
            reads.fresh = match self.repository.get_sessions(&unsettled).await {
                Ok(found) => Ok(found.into_iter().map(|s| (s.id.clone(), s)).collect()),
                Err(e) => Err(format!("read {} sessions: {e}", unsettled.len())),
            };
        }
        reads
    }

    /// Whether a managed task is an orphan, from its session as read for its page; never
    /// mutates anything.
    async fn judge_task(
        &self,
        now: Timestamp,
        task: &TaskSummary,
        sessions: &SessionReads,
    ) -> Verdict {
        // A launch records its session just after starting the task: never judge a task
        // younger than the grace period (or of unknown age, unless its label expiry passed).
        let young = match task.started_at {
            Some(started) => since(now, started) < self.orphan_grace,
            None => task.labels.expires_at > now,
        };
        let stopped = matches!(task.state, TaskState::Stopped { .. });
        let mut young = young;
        let orphan = match &task.labels.purpose {
            TaskPurpose::Playground { session_id } => {
                match sessions.get(session_id) {
                    Ok(Some(s)) => {
                        let ended = !s.state.is_live();
                        // The grace period protects a launch whose session is not recorded yet;
                        // a stopped task of a session that has ended needs none.
                        if stopped && ended && s.task == task.handle {
                            young = false;
                        }
                        ended || s.task != task.handle
                    }
                    Ok(None) => true,
                    Err(e) => return Verdict::Unknown(format!("session {session_id}: {e}")),
                }
            }
            // A check task is stopped by its verification; one still running past its label
            // expiry belongs to a run that crashed.
            TaskPurpose::Verification { .. } => task.labels.expires_at < now,
            // An instance runs until stopped; its task is an orphan once the instance is gone,
            // no longer holds a task, or holds another one (a restart replaced it).
            TaskPurpose::Instance { instance_id } => {
                match self.repository.get_instance(instance_id).await {
                    Ok(i) => {
                        !i.state.holds_task() || i.task.as_ref().is_some_and(|t| *t != task.handle)
                    }
                    Err(e) if e.is_not_found() => true,
                    Err(e) => return Verdict::Unknown(format!("read instance {instance_id}: {e}")),
                }
            }
        };
        match (orphan, young) {
            (true, true) => Verdict::YoungOrphan,
            (true, false) => Verdict::Orphan,
            // A stopped task (a container the runner keeps after it exited) of a live session.
            (false, _)
                if stopped && matches!(task.labels.purpose, TaskPurpose::Playground { .. }) =>
            {
                Verdict::Exited
            }
            (false, _) => Verdict::Keep,
        }
    }

    /// Ends the live sessions of listed tasks that stopped by themselves (`TaskExited`), then
    /// removes the tasks. A task whose session could not be ended stays for the next sweep.
    async fn end_exited(
        &self,
        now: Timestamp,
        exited: Vec<TaskSummary>,
        limits: SweepLimits,
        report: &mut SweepReport,
    ) {
        let p = self;
        let outcomes: Vec<(bool, Result<(), String>)> = stream::iter(exited)
            .map(|task| async move {
                let TaskPurpose::Playground { session_id } = &task.labels.purpose else {
                    return (false, Ok(()));
                };
                let ended = match p
                    .repository
                    .end_session(session_id, crate::domain::StopReason::TaskExited, now)
                    .await
                {
                    Ok(SessionEnd::Ended(_)) => true,
                    Ok(SessionEnd::AlreadyEnded(_)) => false,
                    Err(e) => return (false, Err(format!("end session {session_id}: {e}"))),
                };
                let removed = p
                    .runner
                    .stop(&task.handle, "toolshed: task exited")
                    .await
                    .map_err(|e| format!("remove stopped task {}: {e}", task.handle));
                (ended, removed)
            })
            .buffer_unordered(limits.concurrency.max(1))
            .collect()
            .await;
        for (ended, removed) in outcomes {
            if ended {
                report.exited_marked += 1;
            }
            match removed {
                Ok(()) => report.exited_removed += 1,
                Err(e) => report.errors.push(e),
            }
        }
    }

    /// Ends the live sessions (as listed at the start of the sweep) whose task is not among
    /// the live managed tasks and which the runner confirms stopped. A session whose task is
    /// listed running costs nothing here.
    async fn mark_exited(
        &self,
        now: Timestamp,
        limits: SweepLimits,
        live: &[PlaygroundSession],
        live_tasks: &HashSet<TaskHandle>,
        ended_now: &HashSet<TaskHandle>,
        report: &mut SweepReport,
    ) {
        let p = self;
        // Not among the live managed tasks: confirm with the runner before ending it.
        let candidates: Vec<PlaygroundSession> = live
            .iter()
            .filter(|s| !live_tasks.contains(&s.task) && !ended_now.contains(&s.task))
            .cloned()
            .collect();
        let outcomes: Vec<Option<Result<bool, String>>> = stream::iter(candidates)
            .map(|s| async move {
                match p.runner.describe(&s.task).await {
                    Ok(status) if !status.state.is_live() => Some(
                        match p
                            .repository
                            .end_session(&s.id, crate::domain::StopReason::TaskExited, now)
                            .await
                        {
                            Ok(SessionEnd::Ended(_)) => Ok(true),
                            Ok(SessionEnd::AlreadyEnded(_)) => Ok(false),
                            Err(e) => Err(format!("end session {}: {e}", s.id)),
                        },
                    ),
                    Ok(_) => None,
                    Err(e) => Some(Err(format!("describe task {}: {e}", s.task))),
                }
            })
            .buffer_unordered(limits.concurrency.max(1))
            .collect()
            .await;
        for outcome in outcomes.into_iter().flatten() {
            match outcome {
                Ok(true) => report.exited_marked += 1,
                Ok(false) => {}
                Err(e) => report.errors.push(e),
            }
        }
    }
}

/// The sessions of one page of tasks, as [`Sweeper::session_reads`] found them.
struct SessionReads {
    /// Live sessions the listing vouches for.
    known: HashMap<SessionId, PlaygroundSession>,
    /// The batched read of the others (a missing id: no such session), or why it failed.
    fresh: Result<HashMap<SessionId, PlaygroundSession>, String>,
}

impl SessionReads {
    /// A session as read: `Ok(None)` when it does not exist.
    fn get(&self, id: &SessionId) -> Result<Option<&PlaygroundSession>, &str> {
        if let Some(s) = self.known.get(id) {
            return Ok(Some(s));
        }
        match &self.fresh {
            Ok(found) => Ok(found.get(id)),
            Err(e) => Err(e.as_str()),
        }
    }
}

/// The outcome of stopping one expired session.
enum ExpiredOutcome {
    /// This sweep ended it.
    Ended(TaskHandle),
    /// Somebody else ended it first (the task was stopped all the same).
    AlreadyEnded(TaskHandle),
    /// The task was stopped but ending the session failed.
    EndFailed(TaskHandle, String),
    /// The task could not be stopped; the session stays live for the next sweep.
    StopFailed(String),
}

/// What the orphan check decided for one managed task.
enum Verdict {
    /// Owned by a live session (or a running verification): leave it.
    Keep,
    /// No live session owns it: stop it.
    Orphan,
    /// Would be an orphan, but younger than the grace period: leave it for now.
    YoungOrphan,
    /// Stopped by itself while its session is still live: end the session, remove the task.
    Exited,
    /// Its session could not be read: leave it, report the error.
    Unknown(String),
}
