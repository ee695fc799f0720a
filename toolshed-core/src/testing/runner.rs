//! A scriptable task runner.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::clock::lock;
use crate::domain::{Endpoint, TaskHandle, TaskLabels, Timestamp};
use crate::error::{EntityKind, Error, Result};
use crate::ports::{
    Clock, TaskPage, TaskRunner, TaskSpec, TaskState, TaskStatus, TaskSummary, MAX_LOG_TAIL,
};

/// A task the fake runner knows.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTask {
    /// Handle.
    pub handle: TaskHandle,
    /// The spec it was started with (`None` for foreign tasks).
    pub spec: Option<TaskSpec>,
    /// Labels (`None`: not ours, never listed by `list_managed`).
    pub labels: Option<TaskLabels>,
    /// State.
    pub state: TaskState,
    /// Endpoint while running.
    pub endpoint: Option<Endpoint>,
    /// When it was started.
    pub started_at: Timestamp,
    /// `describe` calls still answered `Pending` before it runs.
    pub pending_describes: u32,
    /// Why it was stopped through `stop`.
    pub stop_reason: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: BTreeMap<TaskHandle, FakeTask>,
    by_token: HashMap<String, TaskHandle>,
    start_failures: VecDeque<String>,
    /// Failures the next describes (single or batched) answer, in order.
    describe_failures: VecDeque<String>,
    pending_describes: u32,
    /// Endpoint given to new tasks instead of an invented one.
    endpoint: Option<Endpoint>,
    next_id: u64,
    prepare_calls: u32,
    start_calls: u32,
    describe_calls: u32,
    /// Batched describes, and the size of the largest.
    describe_many_calls: u32,
    largest_describe_batch: usize,
    stop_calls: u32,
    list_calls: u32,
    /// Output lines per task, as tests wrote them.
    logs: HashMap<TaskHandle, Vec<String>>,
    /// Graceful stops, in order: task and drain timeout.
    drains: Vec<(TaskHandle, Duration)>,
}

impl Inner {
    /// A task's status as a describe sees it (a pending task moves on).
    fn status_of(&mut self, task: &TaskHandle) -> TaskStatus {
        let Some(t) = self.tasks.get_mut(task) else {
            return TaskStatus {
                state: TaskState::Missing,
                endpoint: None,
            };
        };
        if t.state == TaskState::Pending {
            if t.pending_describes > 0 {
                t.pending_describes -= 1;
                return TaskStatus {
                    state: TaskState::Pending,
                    endpoint: None,
                };
            }
            t.state = TaskState::Running;
        }
        TaskStatus {
            state: t.state.clone(),
            endpoint: if t.state == TaskState::Running {
                t.endpoint.clone()
            } else {
                None
            },
        }
    }
}

/// A [`TaskRunner`] over a map of tasks. Tasks start `Running` with an endpoint on
/// `127.0.0.1:<port>` (or `Pending` for the first N describes, see
/// [`FakeTaskRunner::set_pending_describes`]); tests can fail starts, add foreign tasks and make
/// tasks exit by themselves.
#[derive(Debug)]
pub struct FakeTaskRunner {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl FakeTaskRunner {
    /// A runner stamping tasks with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// New tasks answer `Pending` (no endpoint) to their first `n` describes.
    pub fn set_pending_describes(&self, n: u32) {
        lock(&self.inner).pending_describes = n;
    }

    /// New tasks report `endpoint` once running, instead of an invented `127.0.0.1:<port>`:
    /// tests point it at a real MCP server, or at a port where one starts listening only later
    /// (a task whose endpoint is known before its server answers).
    pub fn set_task_endpoint(&self, endpoint: Option<Endpoint>) {
        lock(&self.inner).endpoint = endpoint;
    }

    /// Makes the next `start` fail with a retryable `Backend` error.
    pub fn fail_next_start(&self, reason: &str) {
        lock(&self.inner)
            .start_failures
            .push_back(reason.to_owned());
    }

    /// Makes the next describe (single or batched) fail with a retryable `Backend` error, as a
    /// throttled backend would.
    pub fn fail_next_describe(&self, reason: &str) {
        lock(&self.inner)
            .describe_failures
            .push_back(reason.to_owned());
    }

    fn new_handle(inner: &mut Inner) -> Result<TaskHandle> {
        inner.next_id += 1;
        TaskHandle::new(format!("task-{:06}", inner.next_id))
    }

    /// Adds a running task without our labels (somebody else's), which the runner must never
    /// list nor the sweep stop.
    pub fn add_foreign_task(&self) -> Result<TaskHandle> {
        self.add_task(None)
    }

    /// Adds a running task carrying `labels`, as if started by a process that then crashed.
    pub fn add_managed_task(&self, labels: TaskLabels) -> Result<TaskHandle> {
        self.add_task(Some(labels))
    }

    fn add_task(&self, labels: Option<TaskLabels>) -> Result<TaskHandle> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        let handle = Self::new_handle(&mut inner)?;
        let port = 20_000 + (inner.next_id % 40_000) as u16;
        let task = FakeTask {
            handle: handle.clone(),
            spec: None,
            labels,
            state: TaskState::Running,
            endpoint: Some(Endpoint::new("127.0.0.1", port, "/mcp")?),
            started_at: now,
            pending_describes: 0,
            stop_reason: None,
        };
        inner.tasks.insert(handle.clone(), task);
        Ok(handle)
    }

    /// Makes a task exit by itself (exit code 1).
    pub fn exit_task(&self, handle: &TaskHandle) {
        if let Some(t) = lock(&self.inner).tasks.get_mut(handle) {
            t.state = TaskState::Stopped {
                reason: Some("Essential container in task exited".to_owned()),
                exit_code: Some(1),
            };
            t.endpoint = None;
        }
    }

    /// Makes a task end the way a server killed for its memory does (exit code 137).
    pub fn kill_task_for_memory(&self, handle: &TaskHandle) {
        if let Some(t) = lock(&self.inner).tasks.get_mut(handle) {
            t.state = TaskState::Stopped {
                reason: Some(crate::ports::OUT_OF_MEMORY.to_owned()),
                exit_code: Some(137),
            };
            t.endpoint = None;
        }
    }

    /// Forgets a task entirely (`describe` then answers `Missing`).
    pub fn forget_task(&self, handle: &TaskHandle) {
        lock(&self.inner).tasks.remove(handle);
    }

    /// A task by handle.
    pub fn task(&self, handle: &TaskHandle) -> Option<FakeTask> {
        lock(&self.inner).tasks.get(handle).cloned()
    }

    /// Every task.
    pub fn tasks(&self) -> Vec<FakeTask> {
        lock(&self.inner).tasks.values().cloned().collect()
    }

    /// Tasks still pending or running.
    pub fn live_tasks(&self) -> Vec<FakeTask> {
        lock(&self.inner)
            .tasks
            .values()
            .filter(|t| t.state.is_live())
            .cloned()
            .collect()
    }

    /// Calls to `prepare`.
    pub fn prepare_calls(&self) -> u32 {
        lock(&self.inner).prepare_calls
    }

    /// Calls to `start` (idempotent repeats included).
    pub fn start_calls(&self) -> u32 {
        lock(&self.inner).start_calls
    }

    /// Calls to `describe`.
    pub fn describe_calls(&self) -> u32 {
        lock(&self.inner).describe_calls
    }

    /// Batched describes (one per [`crate::ports::DESCRIBE_BATCH`] tasks asked about).
    pub fn describe_many_calls(&self) -> u32 {
        lock(&self.inner).describe_many_calls
    }

    /// The most tasks one batched describe asked about.
    pub fn largest_describe_batch(&self) -> usize {
        lock(&self.inner).largest_describe_batch
    }

    /// Calls to `stop`.
    pub fn stop_calls(&self) -> u32 {
        lock(&self.inner).stop_calls
    }

    /// Calls to `list_managed`.
    pub fn list_calls(&self) -> u32 {
        lock(&self.inner).list_calls
    }

    /// Appends a line to a task's output (what `tail_logs` returns).
    pub fn write_log(&self, handle: &TaskHandle, line: &str) {
        lock(&self.inner)
            .logs
            .entry(handle.clone())
            .or_default()
            .push(line.to_owned());
    }

    /// Graceful stops so far, in order: the task and its drain timeout.
    pub fn drains(&self) -> Vec<(TaskHandle, Duration)> {
        lock(&self.inner).drains.clone()
    }
}

/// The retryable error of a scripted describe failure.
fn describe_failure(task: Option<String>, reason: String) -> Error {
    Error::backend("fake-runner", "DescribeTasks", task, true, reason)
}

#[async_trait]
impl TaskRunner for FakeTaskRunner {
    async fn prepare(&self, _spec: &TaskSpec) -> Result<()> {
        lock(&self.inner).prepare_calls += 1;
        Ok(())
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        inner.start_calls += 1;
        if let Some(reason) = inner.start_failures.pop_front() {
            return Err(Error::backend(
                "fake-runner",
                "RunTask",
                Some(spec.server_id.to_string()),
                true,
                reason,
            ));
        }
        if let Some(h) = inner.by_token.get(&spec.idempotency_token) {
            return Ok(h.clone());
        }
        let handle = Self::new_handle(&mut inner)?;
        let port = 20_000 + (inner.next_id % 40_000) as u16;
        let pending = inner.pending_describes;
        let task = FakeTask {
            handle: handle.clone(),
            spec: Some(spec.clone()),
            labels: Some(spec.labels.clone()),
            state: if pending > 0 {
                TaskState::Pending
            } else {
                TaskState::Running
            },
            endpoint: Some(match &inner.endpoint {
                Some(e) => e.clone(),
                None => Endpoint::new("127.0.0.1", port, spec.mcp_path.clone())?,
            }),
            started_at: now,
            pending_describes: pending,
            stop_reason: None,
        };
        inner.tasks.insert(handle.clone(), task);
        inner
            .by_token
            .insert(spec.idempotency_token.clone(), handle.clone());
        Ok(handle)
    }

    async fn describe(&self, task: &TaskHandle) -> Result<TaskStatus> {
        let mut inner = lock(&self.inner);
        inner.describe_calls += 1;
        if let Some(reason) = inner.describe_failures.pop_front() {
            return Err(describe_failure(Some(task.to_string()), reason));
        }
        Ok(inner.status_of(task))
    }

    async fn describe_many(&self, tasks: &[TaskHandle]) -> Result<Vec<(TaskHandle, TaskStatus)>> {
        let mut inner = lock(&self.inner);
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for chunk in tasks.chunks(crate::ports::DESCRIBE_BATCH) {
            inner.describe_many_calls += 1;
            inner.largest_describe_batch = inner.largest_describe_batch.max(chunk.len());
            if let Some(reason) = inner.describe_failures.pop_front() {
                return Err(describe_failure(None, reason));
            }
            for task in chunk {
                if seen.insert(task) {
                    out.push((task.clone(), inner.status_of(task)));
                }
            }
        }
        Ok(out)
    }

    async fn stop(&self, task: &TaskHandle, reason: &str) -> Result<()> {
        let mut inner = lock(&self.inner);
        inner.stop_calls += 1;
        if let Some(t) = inner.tasks.get_mut(task) {
            if t.state.is_live() {
                t.state = TaskState::Stopped {
                    reason: Some(reason.to_owned()),
                    exit_code: None,
                };
                t.stop_reason = Some(reason.to_owned());
            }
        }
        Ok(())
    }

    async fn stop_gracefully(
        &self,
        task: &TaskHandle,
        drain: Duration,
        reason: &str,
    ) -> Result<()> {
        lock(&self.inner).drains.push((task.clone(), drain));
        self.stop(task, reason).await
    }

    async fn tail_logs(&self, task: &TaskHandle, tail: usize) -> Result<Vec<String>> {
        if tail > MAX_LOG_TAIL {
            return Err(Error::invalid(
                "tail",
                format!("must be at most {MAX_LOG_TAIL}"),
            ));
        }
        let inner = lock(&self.inner);
        if !inner.tasks.contains_key(task) {
            return Err(Error::not_found(EntityKind::Task, task));
        }
        let lines = inner.logs.get(task).map(Vec::as_slice).unwrap_or_default();
        Ok(lines[lines.len().saturating_sub(tail)..].to_vec())
    }

    async fn list_managed(&self, cursor: Option<String>, limit: usize) -> Result<TaskPage> {
        let mut inner = lock(&self.inner);
        inner.list_calls += 1;
        let limit = limit.max(1);
        let mut matching = inner.tasks.values().filter(|t| {
            t.state.is_live()
                && t.labels.is_some()
                && cursor.as_deref().is_none_or(|c| t.handle.as_str() > c)
        });
        let mut tasks = Vec::new();
        for t in matching.by_ref().take(limit) {
            if let Some(labels) = &t.labels {
                tasks.push(TaskSummary {
                    handle: t.handle.clone(),
                    labels: labels.clone(),
                    state: t.state.clone(),
                    started_at: Some(t.started_at),
                });
            }
        }
        let next = if matching.next().is_some() {
            tasks.last().map(|t| t.handle.to_string())
        } else {
            None
        };
        Ok(TaskPage { tasks, next })
    }
}
