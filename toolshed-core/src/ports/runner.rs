//! Running images as short-lived tasks (ECS Fargate, Docker containers).

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{
    Endpoint, ImageRef, Instance, InstanceEnv, Server, ServerId, SessionId, TaskExit, TaskHandle,
    TaskLabels, TaskPurpose, TaskResources, Timestamp,
};

/// Most tasks one [`TaskRunner::describe_many`] backend call describes (ECS DescribeTasks).
pub const DESCRIBE_BATCH: usize = 100;

/// The [`TaskState::Stopped`] reason of a task the runner knows was killed for using more memory
/// than its limit, whatever the backend's own wording (so the services can say so).
pub const OUT_OF_MEMORY: &str = "out of memory";

/// Most log lines [`TaskRunner::tail_logs`] returns at once.
pub const MAX_LOG_TAIL: usize = 10_000;
use crate::error::Result;

/// What to run. The image is an [`ImageRef`], which always carries a digest; runners run
/// [`ImageRef::pinned`], never a tag and never anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The server.
    pub server_id: ServerId,
    /// The image, pinned by digest.
    pub image: ImageRef,
    /// Container port serving MCP.
    pub container_port: u16,
    /// MCP path (for the endpoint).
    pub mcp_path: String,
    /// CPU / memory.
    pub resources: TaskResources,
    /// Labels / tags marking the task as ours.
    pub labels: TaskLabels,
    /// Makes a retried start return the same task (ECS `clientToken`, ≤ 64 ASCII characters).
    pub idempotency_token: String,
    /// Environment of the task: an instance's, empty for sessions and checks. Its values may be
    /// secrets, so it is never serialised.
    #[serde(skip)]
    pub env: InstanceEnv,
}

impl TaskSpec {
    /// The spec of a playground session: always the server's verified image, so a session can
    /// never run anything else.
    ///
    /// # Errors
    /// `NotVerified` when the server has no verified image.
    pub fn for_session(
        server: &Server,
        session_id: &SessionId,
        expires_at: Timestamp,
    ) -> Result<Self> {
        let image = server.launchable_image()?.image.clone();
        Ok(Self::new(
            server,
            image,
            TaskPurpose::Playground {
                session_id: session_id.clone(),
            },
            expires_at,
            session_id.to_string(),
        ))
    }

    /// The spec of a verification's check task, for the image just built.
    ///
    /// `lease_token` is the fencing token of the lease that starts it: a worker that takes over a
    /// run (after a crash) gets a fresh runner idempotency token, so it can start a new check task
    /// instead of being handed back the previous holder's task, which may already be stopped.
    pub fn for_check(
        server: &Server,
        image: ImageRef,
        run_id: &str,
        lease_token: u64,
        expires_at: Timestamp,
    ) -> Self {
        // clientToken must be ≤ 64 chars: "check-" + a 32-hex run id + "-" + the token fits;
        // an unusually long run id is cut, keeping the token at the end.
        let suffix = format!("-{lease_token}");
        let run: String = run_id.chars().take(64 - 6 - suffix.len()).collect();
        let token = format!("check-{run}{suffix}");
        Self::new(
            server,
            image,
            TaskPurpose::Verification {
                run_id: run_id.to_owned(),
            },
            expires_at,
            token,
        )
    }

    /// The spec of an instance's current start: the image pinned when the instance was created
    /// (a restart never picks up a newer verification), the instance's environment, and a token
    /// unique to this start ([`Instance::start_token`]).
    pub fn for_instance(server: &Server, instance: &Instance) -> Self {
        let mut spec = Self::new(
            server,
            instance.image.clone(),
            TaskPurpose::Instance {
                instance_id: instance.id.clone(),
            },
            TaskLabels::never(),
            instance.start_token(),
        );
        spec.env = instance.env.clone();
        spec
    }

    fn new(
        server: &Server,
        image: ImageRef,
        purpose: TaskPurpose,
        expires_at: Timestamp,
        idempotency_token: String,
    ) -> Self {
        Self {
            server_id: server.id.clone(),
            image,
            container_port: server.transport.container_port(),
            mcp_path: server.transport.path().to_owned(),
            resources: server.resources,
            labels: TaskLabels {
                server_id: server.id.clone(),
                purpose,
                expires_at,
            },
            idempotency_token,
            env: InstanceEnv::new(),
        }
    }
}

/// Lifecycle of a task as the runner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Accepted, not running yet (provisioning, pulling).
    Pending,
    /// Running.
    Running,
    /// Stopped or stopping.
    Stopped {
        /// Why, when the runner says.
        reason: Option<String>,
        /// Exit code of the main container, when known.
        exit_code: Option<i64>,
    },
    /// The runner does not know the task (never existed, or forgotten).
    Missing,
}

impl TaskState {
    /// How a stopped task ended (its exit code; whether it ran out of memory); `None` while
    /// it is live or unknown.
    pub fn exit(&self) -> Option<TaskExit> {
        match self {
            TaskState::Stopped { reason, exit_code } => Some(TaskExit {
                exit_code: *exit_code,
                out_of_memory: reason.as_deref() == Some(OUT_OF_MEMORY),
            }),
            _ => None,
        }
    }

    /// Whether the task is (or will be) running.
    pub fn is_live(&self) -> bool {
        matches!(self, TaskState::Pending | TaskState::Running)
    }
}

/// A task's state and, once running, its endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// State.
    pub state: TaskState,
    /// Where MCP answers (only when running).
    pub endpoint: Option<Endpoint>,
}

/// One of our tasks, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// Handle.
    pub handle: TaskHandle,
    /// Its labels.
    pub labels: TaskLabels,
    /// State.
    pub state: TaskState,
    /// When the runner created it.
    pub started_at: Option<Timestamp>,
}

/// A page of tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPage {
    /// Tasks on this page.
    pub tasks: Vec<TaskSummary>,
    /// Cursor of the next page.
    pub next: Option<String>,
}

/// Starts, inspects and stops tasks.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TaskRunner: Send + Sync + Debug {
    /// Prepares to run `spec.image` (e.g. registers the ECS task definition for this server and
    /// digest). Called once per verification; idempotent. Launches never need to call it.
    async fn prepare(&self, spec: &TaskSpec) -> Result<()>;

    /// Starts a task. A repeat with the same `idempotency_token` must not start a second task
    /// (where the backend allows, it returns the first).
    ///
    /// # Errors
    /// `Backend` (retryable for capacity / throttling), `PermissionDenied`, `InvalidInput` for a
    /// spec the backend rejects.
    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle>;

    /// State and endpoint. An unknown task is `TaskState::Missing`, not an error.
    async fn describe(&self, task: &TaskHandle) -> Result<TaskStatus>;

    /// State and endpoint of many tasks, each once, in no particular order: every task asked
    /// about is answered (an unknown one as `TaskState::Missing`). Runners whose backend
    /// describes tasks in batches use one call per [`DESCRIBE_BATCH`] tasks (ECS); the default
    /// describes them one by one (Docker: an inspect each, which costs no throttled quota).
    ///
    /// # Errors
    /// As [`Self::describe`]; a failure fails the whole call (a retry is safe).
    async fn describe_many(&self, tasks: &[TaskHandle]) -> Result<Vec<(TaskHandle, TaskStatus)>> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            if seen.insert(task) {
                out.push((task.clone(), self.describe(task).await?));
            }
        }
        Ok(out)
    }

    /// Stops a task, and removes it where the backend keeps stopped tasks. Stopping a stopped or
    /// unknown task, or another deployment's, succeeds without touching it (idempotent).
    async fn stop(&self, task: &TaskHandle, reason: &str) -> Result<()>;

    /// Stops a task gracefully: its stop signal (SIGTERM unless the image names another), up to
    /// `drain` for it to exit, then a kill. Runners whose backend fixes the grace period (ECS:
    /// the task definition's `stopTimeout`) document that they ignore `drain`. Idempotent like
    /// [`Self::stop`].
    ///
    /// # Errors
    /// `Backend`; `PermissionDenied` for a task that is not ours.
    async fn stop_gracefully(&self, task: &TaskHandle, drain: Duration, reason: &str)
        -> Result<()>;

    /// The last `tail` lines a task wrote (stdout and stderr), oldest first, with terminal
    /// escape sequences and control characters stripped.
    ///
    /// # Errors
    /// `InvalidInput` for `tail` above [`MAX_LOG_TAIL`]; `NotFound` (kind `Task`) for an unknown
    /// task; `Unsupported` when the runner cannot read logs.
    async fn tail_logs(&self, task: &TaskHandle, tail: usize) -> Result<Vec<String>>;

    /// Lists this deployment's tasks carrying our labels (never another deployment's, never
    /// anything unlabelled), from `cursor`, about `limit` per page: live tasks, and stopped ones
    /// the backend keeps until removed (exited Docker containers), which the sweep removes via
    /// [`Self::stop`] once their session has ended.
    async fn list_managed(&self, cursor: Option<String>, limit: usize) -> Result<TaskPage>;

    /// Removes what the backend keeps on behalf of this deployment's tasks that no longer run
    /// and that [`Self::stop`] did not remove (a failed clean-up, a task that ended by itself):
    /// e.g. the per-task secret and task definition of an ECS task started with an environment.
    /// Never touches anything created less than `grace` ago (a start creates such resources
    /// just before its task exists), at most `limit` tasks' worth per call. Returns how many
    /// tasks' resources were removed. Runners that keep nothing per task have nothing to do
    /// (the default).
    ///
    /// # Errors
    /// `Backend` (retryable or not); what was removed before the error stays removed.
    async fn remove_leftovers(&self, grace: Duration, limit: usize) -> Result<u32> {
        let _ = (grace, limit);
        Ok(0)
    }
}
