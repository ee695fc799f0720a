//! Instances: long-running tasks of a verified server's image (pinned by digest at creation),
//! with a graceful stop, restarts, status with health and log tails.
//!
//! The lifecycle rules are [`Instance`]'s methods; this module sequences the runner and the
//! repository around them. Every write is versioned: a concurrent change is re-read and, where
//! the operation is still meaningful, applied again.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::Toolshed;
use crate::domain::{
    resolve_settings, without_secret_values, Instance, InstanceId, InstanceName, InstanceRequest,
    InstanceState, InstanceView, ServerId, TaskHandle, Timestamp,
};
use crate::error::{EntityKind, Error, Result};
use crate::ports::{TaskSpec, TaskState, TaskStatus};

/// Drain timeout when the caller gives none.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// Longest accepted drain timeout.
pub const MAX_DRAIN: Duration = Duration::from_secs(300);

/// How long a health check may wait for the MCP handshake.
const HEALTH_PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// How often [`Toolshed::wait_instance_ready`] checks a starting instance.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Health of an instance's task, as the runner and an MCP handshake see it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceHealth {
    /// The task runs.
    pub live: bool,
    /// The server completed an MCP handshake (a bare TCP connect proves nothing).
    pub ready: bool,
    /// The runner's view of the task (`pending`, `running`, `stopped`, `missing`).
    pub task_state: String,
    /// Why it is not ready, when it is not.
    pub detail: Option<String>,
    /// When this check ran.
    pub checked_at: Timestamp,
}

/// An instance and, when it holds a task, the task's health.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStatus {
    /// The instance after the check (a task found ended marks it `Failed`).
    pub instance: Instance,
    /// Health, when the instance holds a task.
    pub health: Option<InstanceHealth>,
}

/// [`InstanceStatus`] for output: the instance's redacted view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatusView {
    /// The instance (environment values redacted).
    pub instance: InstanceView,
    /// Health, when the instance holds a task.
    pub health: Option<InstanceHealth>,
}

impl InstanceStatus {
    /// The printable form.
    pub fn view(&self) -> InstanceStatusView {
        InstanceStatusView {
            instance: self.instance.view(),
            health: self.health.clone(),
        }
    }
}

fn check_drain(drain: Option<Duration>) -> Result<Duration> {
    let drain = drain.unwrap_or(DEFAULT_DRAIN);
    if drain > MAX_DRAIN {
        return Err(Error::invalid(
            "drain_timeout",
            format!("must be at most {} s", MAX_DRAIN.as_secs()),
        ));
    }
    Ok(drain)
}

fn task_state_name(state: &TaskState) -> &'static str {
    match state {
        TaskState::Pending => "pending",
        TaskState::Running => "running",
        TaskState::Stopped { .. } => "stopped",
        TaskState::Missing => "missing",
    }
}

impl Toolshed {
    /// Creates an instance of a verified server and starts its task: recorded `Requested`, then
    /// `Creating`, then `Starting` with its task (or `Failed` with the runner's error, which is
    /// also returned); a status check whose MCP handshake succeeds makes it `Created`
    /// ([`Self::instance_status`], [`Self::wait_instance_ready`]). The instance runs the server's verified image pinned by digest, now and on
    /// every restart.
    ///
    /// # Errors
    /// `NotFound` (server); `NotVerified`; `NotLaunchable` (a remote); `AlreadyExists` (kind
    /// `Instance`) for a taken name;
    /// `InvalidInput` for a bad owner or an environment that does not match the server's
    /// declared settings; secret store, runner and repository errors.
    pub async fn create_instance(
        &self,
        server_id: &ServerId,
        request: InstanceRequest,
    ) -> Result<Instance> {
        let p = &self.ports;
        let server = p.repository.get_server(server_id).await?;
        // A remote runs at its own URL: refused before anything is stored or started.
        server.ensure_launchable()?;
        // Checked before anything is stored or started; the record keeps secret values as
        // names only, the values go to the secret store.
        let env = resolve_settings(&server.settings, &request.env)?;
        let request = InstanceRequest {
            env: without_secret_values(&server.settings, &env),
            ..request
        };
        let instance = Instance::request(InstanceId::random(), &server, request, p.clock.now())?;
        self.keep_instance_values(&server, &instance, &env).await?;
        let mut instance = match p.repository.insert_instance(&instance).await {
            Ok(stored) => stored,
            Err(e) => {
                self.forget_instance_values(&instance.id).await;
                return Err(e);
            }
        };
        instance.begin_creating(p.clock.now())?;
        let instance = p.repository.update_instance(&instance).await?;
        self.start_instance_task(instance).await
    }

    /// Starts the task of an instance in state `Creating` and records the outcome.
    async fn start_instance_task(&self, mut instance: Instance) -> Result<Instance> {
        let p = &self.ports;
        let started = async {
            let server = p.repository.get_server(&instance.server_id).await?;
            let mut spec = TaskSpec::for_instance(&server, &instance);
            spec.env = self.instance_env(&instance).await?;
            p.runner.start(&spec).await
        }
        .await;
        match started {
            Ok(task) => {
                // The endpoint may be known at once (Docker) or only once the task runs (ECS);
                // status checks record it later.
                let endpoint = match p.runner.describe(&task).await {
                    Ok(status) => status.endpoint,
                    Err(e) => {
                        warn!(instance = %instance.id, %task, error = %e, "could not describe a new instance task");
                        None
                    }
                };
                instance.mark_created(task.clone(), endpoint, p.clock.now())?;
                match p.repository.update_instance(&instance).await {
                    Ok(stored) => {
                        info!(instance = %stored.id, name = %stored.name, %task, "instance created");
                        Ok(stored)
                    }
                    Err(e) => {
                        // Unrecorded, the task would run unseen: stop it (the sweep would too).
                        if let Err(stop) = p
                            .runner
                            .stop(&task, "toolshed: instance not recorded")
                            .await
                        {
                            warn!(%task, error = %stop, "could not stop an unrecorded instance task");
                        }
                        Err(e)
                    }
                }
            }
            Err(e) => {
                instance.mark_failed(e.to_string(), p.clock.now())?;
                if let Err(write) = p.repository.update_instance(&instance).await {
                    warn!(instance = %instance.id, error = %write, "could not record a failed instance start");
                }
                Err(e)
            }
        }
    }

    /// An instance by id.
    ///
    /// # Errors
    /// `NotFound` (kind `Instance`).
    pub async fn get_instance(&self, id: &InstanceId) -> Result<Instance> {
        self.ports.repository.get_instance(id).await
    }

    /// An instance by name.
    ///
    /// # Errors
    /// `NotFound` (kind `Instance`).
    pub async fn get_instance_by_name(&self, name: &InstanceName) -> Result<Instance> {
        self.ports.repository.get_instance_by_name(name).await
    }

    /// Instances ordered by name, after the name `after`, at most `limit`.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn list_instances(
        &self,
        after: Option<InstanceName>,
        limit: usize,
    ) -> Result<Vec<Instance>> {
        self.ports.repository.list_instances(after, limit).await
    }

    /// Stops an instance with a drain: its task gets the stop signal and up to `drain` (default
    /// [`DEFAULT_DRAIN`]) to exit before it is killed; then the instance is `Stopped`.
    /// Stopping a stopped instance changes nothing.
    ///
    /// # Errors
    /// `InvalidInput` for a drain above [`MAX_DRAIN`]; `NotFound`; runner and repository errors
    /// (the instance is not marked stopped when its task could not be stopped).
    pub async fn stop_instance(
        &self,
        id: &InstanceId,
        drain: Option<Duration>,
    ) -> Result<Instance> {
        let drain = check_drain(drain)?;
        let p = &self.ports;
        let mut stopped_task: Option<TaskHandle> = None;
        for _ in 0..=self.config.conflict_retries {
            let mut instance = p.repository.get_instance(id).await?;
            if instance.state == InstanceState::Stopped {
                return Ok(instance);
            }
            if let Some(task) = instance.task.clone() {
                if stopped_task.as_ref() != Some(&task) {
                    p.runner
                        .stop_gracefully(&task, drain, "toolshed: instance stopped")
                        .await?;
                    stopped_task = Some(task);
                }
            }
            instance.mark_stopped(p.clock.now());
            match p.repository.update_instance(&instance).await {
                Ok(stored) => {
                    info!(instance = %id, "instance stopped");
                    return Ok(stored);
                }
                // Changed meanwhile (e.g. a restart recorded a new task): re-read and stop that.
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            kind: EntityKind::Instance,
            id: id.to_string(),
            expected: 0,
        })
    }

    /// Restarts an instance with the same image and environment: its current task (if any) is
    /// stopped with `drain`, then a new task is started; `restart_count` grows by one. Works
    /// from `Created`, `Failed` and `Stopped`.
    ///
    /// # Errors
    /// `InvalidState` while the instance is being created; `InvalidInput` for a drain above
    /// [`MAX_DRAIN`]; `Conflict` when somebody else changed it meanwhile; `NotFound`; runner and
    /// repository errors.
    pub async fn restart_instance(
        &self,
        id: &InstanceId,
        drain: Option<Duration>,
    ) -> Result<Instance> {
        let drain = check_drain(drain)?;
        let p = &self.ports;
        let mut instance = p.repository.get_instance(id).await?;
        let old_task = instance.task.clone();
        // Checks the transition before touching the running task.
        instance.begin_restart(p.clock.now())?;
        if let Some(task) = &old_task {
            p.runner
                .stop_gracefully(task, drain, "toolshed: instance restarted")
                .await?;
        }
        let instance = p.repository.update_instance(&instance).await?;
        self.start_instance_task(instance).await
    }

    /// The instance with the health of its task: liveness from the runner, readiness from an
    /// MCP handshake. A `Starting` instance whose endpoint answers becomes `Created`; a
    /// `Starting` or `Created` instance whose task ended by itself becomes `Failed`; an endpoint
    /// learnt late is recorded.
    ///
    /// # Errors
    /// `NotFound`; runner and repository errors.
    pub async fn instance_status(&self, id: &InstanceId) -> Result<InstanceStatus> {
        let p = &self.ports;
        let mut instance = p.repository.get_instance(id).await?;
        let (Some(task), InstanceState::Starting | InstanceState::Created) =
            (instance.task.clone(), instance.state)
        else {
            return Ok(InstanceStatus {
                instance,
                health: None,
            });
        };
        let TaskStatus { state, endpoint } = p.runner.describe(&task).await?;
        let now = p.clock.now();
        let live = state == TaskState::Running;
        let (ready, detail) = match (&state, &endpoint) {
            (TaskState::Running, Some(ep)) => {
                match p.probe.probe(ep, HEALTH_PROBE_DEADLINE).await {
                    Ok(_) => (true, None),
                    Err(e) => (false, Some(e.to_string())),
                }
            }
            (TaskState::Running, None) => (false, Some("no endpoint yet".to_owned())),
            (TaskState::Pending, _) => (false, Some("task is starting".to_owned())),
            (TaskState::Stopped { reason, exit_code }, _) => (
                false,
                Some(format!(
                    "task ended ({}{})",
                    reason.as_deref().unwrap_or("no reason given"),
                    exit_code
                        .map(|c| format!(", exit code {c}"))
                        .unwrap_or_default()
                )),
            ),
            (TaskState::Missing, _) => (
                false,
                Some("the runner no longer knows the task".to_owned()),
            ),
        };
        let health = InstanceHealth {
            live,
            ready,
            task_state: task_state_name(&state).to_owned(),
            detail: detail.clone(),
            checked_at: now,
        };
        let changed = match (&state, endpoint) {
            (TaskState::Stopped { .. } | TaskState::Missing, _) => {
                instance.mark_failed(detail.unwrap_or_default(), now)?;
                true
            }
            (TaskState::Running, Some(ep)) => {
                let learnt = instance.record_endpoint(ep, now);
                let became_ready = ready && instance.mark_ready(now);
                learnt || became_ready
            }
            _ => false,
        };
        if changed {
            instance = match p.repository.update_instance(&instance).await {
                Ok(stored) => stored,
                // Somebody else changed it first (a stop, a restart): theirs wins.
                Err(Error::Conflict { .. }) => p.repository.get_instance(id).await?,
                Err(e) => return Err(e),
            };
        }
        Ok(InstanceStatus {
            instance,
            health: Some(health),
        })
    }

    /// Waits up to `deadline` for a `Starting` instance to answer MCP, checking its status
    /// (as [`Self::instance_status`]) about twice a second. Returns the status as it is then:
    /// `Created`, still `Starting` at the deadline, or whatever a stop or a failed task made it.
    ///
    /// # Errors
    /// As [`Self::instance_status`].
    pub async fn wait_instance_ready(
        &self,
        id: &InstanceId,
        deadline: Duration,
    ) -> Result<InstanceStatus> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let status = self.instance_status(id).await?;
            let now = tokio::time::Instant::now();
            if !status.instance.is_starting() || now >= until {
                return Ok(status);
            }
            tokio::time::sleep(READY_POLL_INTERVAL.min(until - now)).await;
        }
    }

    /// The last `tail` lines of the instance's current (or last) task output.
    ///
    /// # Errors
    /// `InvalidState` when no task was ever started; `InvalidInput` for a tail above
    /// [`crate::ports::MAX_LOG_TAIL`]; `NotFound` (kind `Task`) when the runner no longer has
    /// the task; `Unsupported` when the runner cannot read logs.
    pub async fn instance_logs(&self, id: &InstanceId, tail: usize) -> Result<Vec<String>> {
        let instance = self.ports.repository.get_instance(id).await?;
        let Some(task) = &instance.task else {
            return Err(Error::InvalidState {
                kind: EntityKind::Instance,
                id: id.to_string(),
                state: instance.state.to_string(),
                action: "read logs before a task was started",
            });
        };
        self.ports.runner.tail_logs(task, tail).await
    }

    /// Stops an instance (as [`Self::stop_instance`]) and deletes its record, freeing its name.
    /// Returns whether it existed.
    ///
    /// # Errors
    /// As [`Self::stop_instance`].
    pub async fn remove_instance(&self, id: &InstanceId, drain: Option<Duration>) -> Result<bool> {
        match self.stop_instance(id, drain).await {
            Ok(_) => {
                let deleted = self.ports.repository.delete_instance(id).await?;
                self.forget_instance_values(id).await;
                Ok(deleted)
            }
            Err(Error::NotFound {
                kind: EntityKind::Instance,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
