//! The sweep: stop expired sessions and orphaned tasks, mark sessions whose task ended.
//!
//! Idempotent (stops and ends are idempotent, and counts only what this call changed) and safe
//! from two places at once; every part is bounded by [`SweepLimits`].

use std::collections::HashSet;

use tracing::{info, warn};

use super::config::since;
use super::Toolshed;
use crate::domain::{TaskHandle, TaskPurpose, Timestamp};
use crate::ports::{SessionEnd, TaskSummary};

/// Bounds of one sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepLimits {
    /// Most expired sessions stopped.
    pub max_expired: usize,
    /// Tasks per `list_managed` page.
    pub task_page_size: usize,
    /// Most `list_managed` pages read.
    pub max_task_pages: usize,
    /// Most live sessions checked for a task that ended by itself.
    pub max_live_checked: usize,
}

impl Default for SweepLimits {
    fn default() -> Self {
        Self {
            max_expired: 100,
            task_page_size: 100,
            max_task_pages: 10,
            max_live_checked: 500,
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
    /// Managed tasks listed.
    pub tasks_seen: u32,
    /// Orphan candidates left alone because they are younger than the grace period.
    pub young_tasks_skipped: u32,
    /// Whether more task pages were left unread (the next sweep continues).
    pub tasks_truncated: bool,
    /// Errors met (the sweep goes on after each).
    pub errors: Vec<String>,
}

impl SweepReport {
    /// Whether this sweep changed nothing.
    pub fn is_noop(&self) -> bool {
        self.expired_stopped == 0 && self.orphans_stopped == 0 && self.exited_marked == 0
    }
}

impl Toolshed {
    /// One sweep. Errors of single items are collected in the report; the sweep itself only
    /// returns what it did.
    pub async fn sweep_expired_sessions(&self, limits: SweepLimits) -> SweepReport {
        let mut report = SweepReport::default();
        let now = self.ports.clock.now();
        let ended_now = self.stop_expired(now, limits, &mut report).await;
        let live_tasks = self.stop_orphans(now, limits, &mut report).await;
        self.mark_exited(now, limits, &live_tasks, &ended_now, &mut report)
            .await;
        info!(?report, "sweep done");
        report
    }

    async fn stop_expired(
        &self,
        now: Timestamp,
        limits: SweepLimits,
        report: &mut SweepReport,
    ) -> HashSet<TaskHandle> {
        let p = &self.ports;
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
        for s in expired {
            if let Err(e) = p.runner.stop(&s.task, "toolshed: session expired").await {
                report
                    .errors
                    .push(format!("stop task {} of session {}: {e}", s.task, s.id));
                continue;
            }
            ended.insert(s.task.clone());
            match p
                .repository
                .end_session(&s.id, crate::domain::StopReason::Expired, now)
                .await
            {
                Ok(SessionEnd::Ended(_)) => report.expired_stopped += 1,
                // Another sweeper (or a stop) got there first.
                Ok(SessionEnd::AlreadyEnded(_)) => {}
                Err(e) => report.errors.push(format!("end session {}: {e}", s.id)),
            }
        }
        ended
    }

    /// Stops managed tasks that no live session owns. Returns the handles of the managed tasks
    /// left running (all of them only when the listing was complete: `mark_exited` confirms
    /// with `describe` before ending anything, so a partial set is safe).
    async fn stop_orphans(
        &self,
        now: Timestamp,
        limits: SweepLimits,
        report: &mut SweepReport,
    ) -> HashSet<TaskHandle> {
        let p = &self.ports;
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
            for task in page.tasks {
                report.tasks_seen += 1;
                if self.is_orphan(now, &task, report).await {
                    match p.runner.stop(&task.handle, "toolshed: orphaned task").await {
                        Ok(()) => {
                            warn!(task = %task.handle, server = %task.labels.server_id, "stopped orphaned task");
                            report.orphans_stopped += 1;
                        }
                        Err(e) => report
                            .errors
                            .push(format!("stop orphan {}: {e}", task.handle)),
                    }
                } else {
                    running.insert(task.handle);
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

    async fn is_orphan(
        &self,
        now: Timestamp,
        task: &TaskSummary,
        report: &mut SweepReport,
    ) -> bool {
        // A launch records its session just after starting the task: never judge a task
        // younger than the grace period (or of unknown age, unless its label expiry passed).
        let young = match task.started_at {
            Some(started) => since(now, started) < self.config.orphan_grace,
            None => task.labels.expires_at > now,
        };
        let orphan = match &task.labels.purpose {
            TaskPurpose::Playground { session_id } => {
                match self.ports.repository.get_session(session_id).await {
                    Ok(s) => !s.state.is_live() || s.task != task.handle,
                    Err(e) if e.is_not_found() => true,
                    Err(e) => {
                        report
                            .errors
                            .push(format!("read session {session_id}: {e}"));
                        false
                    }
                }
            }
            // A check task is stopped by its verification; one still running past its label
            // expiry belongs to a run that crashed.
            TaskPurpose::Verification { .. } => task.labels.expires_at < now,
        };
        if orphan && young {
            report.young_tasks_skipped += 1;
            return false;
        }
        orphan
    }

    async fn mark_exited(
        &self,
        now: Timestamp,
        limits: SweepLimits,
        live_tasks: &HashSet<TaskHandle>,
        ended_now: &HashSet<TaskHandle>,
        report: &mut SweepReport,
    ) {
        let p = &self.ports;
        let mut after = None;
        let mut checked = 0usize;
        while checked < limits.max_live_checked {
            let want = (limits.max_live_checked - checked).min(100);
            let page = match p.repository.list_live_sessions(after.clone(), want).await {
                Ok(page) => page,
                Err(e) => {
                    report.errors.push(format!("list live sessions: {e}"));
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            after = Some(last.id.clone());
            for s in page {
                checked += 1;
                if live_tasks.contains(&s.task) || ended_now.contains(&s.task) {
                    continue;
                }
                // Not among the live managed tasks: confirm with the runner before ending it.
                match p.runner.describe(&s.task).await {
                    Ok(status) if !status.state.is_live() => {
                        match p
                            .repository
                            .end_session(&s.id, crate::domain::StopReason::TaskExited, now)
                            .await
                        {
                            Ok(SessionEnd::Ended(_)) => report.exited_marked += 1,
                            Ok(SessionEnd::AlreadyEnded(_)) => {}
                            Err(e) => report.errors.push(format!("end session {}: {e}", s.id)),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => report.errors.push(format!("describe task {}: {e}", s.task)),
                }
            }
        }
    }
}
