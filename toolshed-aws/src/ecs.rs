//! ECS Fargate [`TaskRunner`].
//!
//! - One task definition per (server, digest): family `<prefix>-<serverId>-<digest12>`, container
//!   `mcp` running [`ImageRef::pinned`](toolshed_core::domain::ImageRef::pinned) — the image is
//!   never a tag and never overridden, so a task can never run a placeholder image instead. `prepare`
//!   registers it at verification; launches run the family name (latest ACTIVE revision) with 0
//!   RegisterTaskDefinition calls, falling back to register-then-retry once if it is missing.
//! - RunTask: Fargate, awsvpc from settings, `startedBy` = the deployment id, the `toolshed.*`
//!   tags (`toolshed.deployment` among them) and `clientToken` = the spec's idempotency token.
//! - Ownership: ListTasks cannot filter by tag, but it filters by `startedBy`, so listing asks for
//!   this deployment's tasks only, and every described task's `toolshed.deployment` tag is checked
//!   as well; describe treats another deployment's task as missing and stop leaves it alone, so
//!   two deployments sharing a cluster (staging and production) never stop each other's tasks.
//! - Logs: awslogs to the configured group, stream prefix `<serverId>`; each session's stream is
//!   `<serverId>/mcp/<task id>` (the session record holds the task ARN).
//! - Environment: a task with environment variables gets them from its own Secrets Manager
//!   secret through a per-task task definition, never through RunTask overrides (see
//!   [`task_secrets`]).
//! - Endpoint: the private IPv4 of the task's ENI. With `assign_public_ip`, the public address is
//!   an attribute of the ENI, not of the task: ECS does not return it, so the endpoint stays the
//!   private IP (reachable from inside the VPC, where the embedding service runs); see the README.

use async_trait::async_trait;
use aws_sdk_ecs::error::SdkError;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::run_task::RunTaskError;
use aws_sdk_ecs::operation::stop_task::StopTaskError;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, DesiredStatus,
    KernelCapabilities, LaunchType, LinuxParameters, LogConfiguration, LogDriver, MountPoint,
    NetworkConfiguration, NetworkMode, PortMapping, Tag, Task, TaskField, TransportProtocol,
    Volume,
};
use aws_sdk_ecs::Client;
use toolshed_core::domain::{
    effective_user, DeploymentId, Egress, Endpoint, TaskHandle, TaskLabels, DEFAULT_MCP_PATH,
    DEFAULT_MCP_PORT, LABEL_DEPLOYMENT, LABEL_MANAGED, LABEL_SERVER,
};
use toolshed_core::ports::{
    TaskPage, TaskRunner, TaskSpec, TaskState, TaskStatus, TaskSummary, OUT_OF_MEMORY,
};
use toolshed_core::{Error, Result};

use crate::error::{sdk_error, unexpected, AwsError};

pub mod task_secrets;

pub use task_secrets::TaskSecrets;

/// The container name in every task definition.
pub const CONTAINER_NAME: &str = "mcp";
/// Extra tag: the container port serving MCP (for the endpoint).
pub const TAG_PORT: &str = "toolshed.port";
/// Extra tag: the MCP path (for the endpoint).
pub const TAG_PATH: &str = "toolshed.path";
/// DescribeTasks accepts at most this many tasks per call.
pub const DESCRIBE_BATCH: usize = 100;
/// The task volume mounted writable on `/tmp` (the root filesystem is read-only; Fargate has no
/// tmpfs, so it is a bind-mount volume on the task's ephemeral storage).
pub const TMP_VOLUME: &str = "tmp";

/// What the ECS runner needs from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsSettings {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Subnets of the awsvpc network configuration.
    pub subnets: Vec<String>,
    /// Security groups of tasks with [`Egress::Internet`] (HTTPS to public addresses only).
    pub security_groups: Vec<String>,
    /// Security groups of tasks with [`Egress::None`] (no egress rule at all). Empty: this
    /// deployment cannot run such servers, and their launches fail with `InvalidInput`.
    pub no_egress_security_groups: Vec<String>,
    /// Whether tasks get a public IP.
    pub assign_public_ip: bool,
    /// The task execution role (pulls from ECR, writes logs).
    pub execution_role_arn: String,
    /// The task role, given only to the tasks of servers that ask for one
    /// ([`TaskResources::task_role`](toolshed_core::domain::TaskResources::task_role)).
    pub task_role_arn: Option<String>,
    /// CloudWatch Logs group.
    pub log_group: String,
    /// Region of the log group.
    pub log_region: String,
    /// Family prefix.
    pub family_prefix: String,
    /// The deployment owning the tasks this runner starts (`startedBy` and the
    /// `toolshed.deployment` tag); the runner lists, describes and stops only its own.
    pub deployment: DeploymentId,
}

/// Runs MCP server images as ECS Fargate tasks.
#[derive(Debug, Clone)]
pub struct EcsTaskRunner {
    client: Client,
    settings: EcsSettings,
    /// Per-task secrets of tasks with an environment; without it such tasks are refused.
    task_secrets: Option<TaskSecrets>,
}

impl EcsTaskRunner {
    /// A runner on `client` with `settings`. It refuses tasks with environment variables until
    /// given [`Self::with_task_secrets`].
    pub fn new(client: Client, settings: EcsSettings) -> Self {
        Self {
            client,
            settings,
            task_secrets: None,
        }
    }

    /// Gives tasks with environment variables their values through per-task secrets (see
    /// [`task_secrets`]), and lets [`TaskRunner::remove_leftovers`] remove what stopped tasks
    /// left.
    pub fn with_task_secrets(mut self, secrets: TaskSecrets) -> Self {
        self.task_secrets = Some(secrets);
        self
    }

    /// The cluster its tasks run in.
    pub fn cluster(&self) -> &str {
        &self.settings.cluster
    }

    /// The deployment owning its tasks.
    pub fn deployment(&self) -> &DeploymentId {
        &self.settings.deployment
    }

    /// The task definition family of a spec: `<prefix>-<serverId>-<digest first 12 hex>`.
    pub fn family(&self, spec: &TaskSpec) -> String {
        format!(
            "{}-{}-{}",
            self.settings.family_prefix,
            spec.server_id,
            spec.image.digest().short()
        )
    }
}

/// The parts of a task definition that decide what a task may do: its container, its volumes
/// and its task role.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDefinitionParts {
    /// The `mcp` container.
    pub container: ContainerDefinition,
    /// Task volumes (the writable `/tmp`).
    pub volumes: Vec<Volume>,
    /// The task role, when the server asks for one and the deployment has one.
    pub task_role_arn: Option<String>,
}

impl EcsTaskRunner {
    /// The container, volumes and task role registered for `spec`: the same hardening as local
    /// containers. A non-root user ([`NON_ROOT_USER`](toolshed_core::domain::NON_ROOT_USER)
    /// unless the server runs as root: ECS cannot read the image's user before running it), a
    /// read-only root filesystem with a writable `/tmp` volume, every Linux capability dropped,
    /// and no task role unless the server asks for one. (`no-new-privileges` is a Docker
    /// security option Fargate does not accept; without capabilities and as non-root there is
    /// nothing to gain.)
    ///
    /// # Errors
    /// `Backend` (not retryable) if a part cannot be built.
    pub fn task_definition_parts(&self, spec: &TaskSpec) -> Result<TaskDefinitionParts> {
        let s = &self.settings;
        let family = self.family(spec);
        let log = LogConfiguration::builder()
            .log_driver(LogDriver::Awslogs)
            .options("awslogs-group", &s.log_group)
            .options("awslogs-region", &s.log_region)
            .options("awslogs-stream-prefix", spec.server_id.as_str())
            .build()
            .map_err(|e| {
                unexpected(
                    "ecs",
                    "RegisterTaskDefinition",
                    Some(family.clone()),
                    e.to_string(),
                )
            })?;
        let container = ContainerDefinition::builder()
            .name(CONTAINER_NAME)
            .image(spec.image.pinned())
            .essential(true)
            .set_user(effective_user(spec.resources.run_as_root, None))
            .readonly_root_filesystem(true)
            .mount_points(
                MountPoint::builder()
                    .source_volume(TMP_VOLUME)
                    .container_path("/tmp")
                    .read_only(false)
                    .build(),
            )
            .linux_parameters(
                LinuxParameters::builder()
                    .capabilities(KernelCapabilities::builder().drop("ALL").build())
                    .init_process_enabled(true)
                    .build(),
            )
            // Container-level memory equal to the task's: required by moto, harmless on Fargate.
            .memory(i32::try_from(spec.resources.memory_mib).unwrap_or(i32::MAX))
            .port_mappings(
                PortMapping::builder()
                    .container_port(i32::from(spec.container_port))
                    .protocol(TransportProtocol::Tcp)
                    .build(),
            )
            .log_configuration(log)
            .build();
        let volumes = vec![Volume::builder().name(TMP_VOLUME).build()];
        let task_role_arn = s.task_role_arn.clone().filter(|_| spec.resources.task_role);
        Ok(TaskDefinitionParts {
            container,
            volumes,
            task_role_arn,
        })
    }

    async fn register(&self, spec: &TaskSpec) -> Result<()> {
        self.register_definition(spec, &self.family(spec), None, None)
            .await
            .map(|_| ())
    }

    /// Registers a revision of `family` for `spec` (with container `secrets` and an extra tag
    /// when given); returns the revision's ARN when ECS names it.
    async fn register_definition(
        &self,
        spec: &TaskSpec,
        family: &str,
        secrets: Option<Vec<aws_sdk_ecs::types::Secret>>,
        extra_tag: Option<Tag>,
    ) -> Result<Option<String>> {
        let s = &self.settings;
        let mut parts = self.task_definition_parts(spec)?;
        if secrets.is_some() {
            parts.container.secrets = secrets;
        }
        let mut req = self
            .client
            .register_task_definition()
            .family(family)
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu(spec.resources.cpu_units.to_string())
            .memory(spec.resources.memory_mib.to_string())
            .execution_role_arn(&s.execution_role_arn)
            .container_definitions(parts.container)
            .set_volumes(Some(parts.volumes))
            .tags(Tag::builder().key(LABEL_MANAGED).value("true").build())
            .tags(
                Tag::builder()
                    .key(LABEL_SERVER)
                    .value(spec.server_id.as_str())
                    .build(),
            );
        if let Some(role) = parts.task_role_arn {
            req = req.task_role_arn(role);
        }
        if let Some(tag) = extra_tag {
            req = req.tags(tag);
        }
        let out = req
            .send()
            .await
            .map_err(|e| sdk_error("ecs", "RegisterTaskDefinition", Some(family.to_owned()), e))?;
        tracing::info!(family, image = %spec.image, "registered task definition");
        Ok(out
            .task_definition()
            .and_then(|d| d.task_definition_arn())
            .map(str::to_owned))
    }

    /// The security groups of a task: one set per egress policy.
    ///
    /// # Errors
    /// `InvalidInput` (field `egress`) for [`Egress::None`] when no such group is configured.
    pub fn security_groups(&self, egress: Egress) -> Result<&[String]> {
        let s = &self.settings;
        match egress {
            Egress::Internet => Ok(&s.security_groups),
            Egress::None if s.no_egress_security_groups.is_empty() => Err(Error::invalid(
                "egress",
                "this deployment has no security group for servers without egress \
                 (TOOLSHED_NO_EGRESS_SECURITY_GROUP_ID)",
            )),
            Egress::None => Ok(&s.no_egress_security_groups),
        }
    }

    fn network(&self, egress: Egress) -> Result<NetworkConfiguration> {
        let s = &self.settings;
        if s.subnets.is_empty() {
            // A runner built for sweeping only (no network settings) must not launch.
            return Err(Error::invalid(
                "subnets",
                "this task runner only lists and stops tasks: no subnets are configured \
                 (AWS_SUBNETS)",
            ));
        }
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(s.subnets.clone()))
            .set_security_groups(Some(self.security_groups(egress)?.to_vec()))
            .assign_public_ip(if s.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            })
            .build()
            .map_err(|e| unexpected("ecs", "RunTask", None, e.to_string()))?;
        Ok(NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build())
    }

    /// RunTask of `task_definition` (a family or a revision ARN) for `spec`. Never with
    /// overrides: environment values go through [`task_secrets`].
    async fn run(
        &self,
        spec: &TaskSpec,
        task_definition: String,
    ) -> std::result::Result<TaskHandle, RunError> {
        let tags = spec
            .labels
            .to_pairs()
            .into_iter()
            .chain([
                (TAG_PORT.to_owned(), spec.container_port.to_string()),
                (TAG_PATH.to_owned(), spec.mcp_path.clone()),
                (
                    LABEL_DEPLOYMENT.to_owned(),
                    self.settings.deployment.as_str().to_owned(),
                ),
            ])
            .map(|(k, v)| Tag::builder().key(k).value(v).build());
        let out = self
            .client
            .run_task()
            .cluster(&self.settings.cluster)
            .task_definition(task_definition)
            .launch_type(LaunchType::Fargate)
            .count(1)
            .started_by(self.settings.deployment.as_str())
            .set_group(crate::ecs_events::session_group(spec))
            .client_token(&spec.idempotency_token)
            .network_configuration(
                self.network(spec.resources.egress)
                    .map_err(RunError::Core)?,
            )
            .set_tags(Some(tags.collect()))
            .send()
            .await
            .map_err(|e| RunError::Sdk(Box::new(e)))?;
        if let Some(task) = out.tasks().first() {
            let arn = task.task_arn().ok_or_else(|| {
                RunError::Core(unexpected("ecs", "RunTask", None, "task without ARN"))
            })?;
            return TaskHandle::new(arn).map_err(RunError::Core);
        }
        Err(RunError::Core(match out.failures().first() {
            Some(f) => run_failure(
                f.arn().unwrap_or_default(),
                f.reason().unwrap_or("unknown"),
                f.detail(),
            ),
            None => unexpected("ecs", "RunTask", None, "neither a task nor a failure"),
        }))
    }

    async fn describe_batch(
        &self,
        arns: &[String],
        with_tags: bool,
    ) -> Result<DescribeTasksOutput> {
        let mut req = self
            .client
            .describe_tasks()
            .cluster(&self.settings.cluster)
            .set_tasks(Some(arns.to_vec()));
        if with_tags {
            req = req.include(TaskField::Tags);
        }
        req.send()
            .await
            .map_err(|e| sdk_error("ecs", "DescribeTasks", None, e))
    }
}

/// RunTask's outcome before mapping, so the missing-family fallback can inspect it.
pub(crate) enum RunError {
    Sdk(Box<SdkError<RunTaskError, aws_smithy_runtime_api::http::Response>>),
    Core(Error),
}

/// Maps an entry of RunTask's `failures` array to a typed error.
pub(crate) fn run_failure(arn: &str, reason: &str, detail: Option<&str>) -> Error {
    let source = AwsError::RunTaskFailure {
        arn: arn.to_owned(),
        reason: reason.to_owned(),
        detail: detail.map(str::to_owned),
    };
    let upper = reason.to_ascii_uppercase();
    // Capacity, agent and throttling failures pass; MISSING / ATTRIBUTE / bad input do not.
    let retryable = upper.starts_with("RESOURCE")
        || upper.contains("CAPACITY")
        || upper.contains("AGENT")
        || upper.contains("THROTTL");
    if upper == "MISSING" || upper.starts_with("ATTRIBUTE") {
        return Error::invalid("task_spec", source.to_string());
    }
    Error::backend("ecs", "RunTask", Some(arn.to_owned()), retryable, source)
}

/// Whether a RunTask error says the task definition family does not exist.
fn is_missing_family(err: &SdkError<RunTaskError, aws_smithy_runtime_api::http::Response>) -> bool {
    let msg = match err.as_service_error() {
        Some(RunTaskError::ClientException(e)) => e.message(),
        Some(RunTaskError::InvalidParameterException(e)) => e.message(),
        _ => None,
    };
    msg.map(str::to_ascii_lowercase).is_some_and(|m| {
        (m.contains("task definition") || m.contains("taskdefinition"))
            && (m.contains("not found")
                || m.contains("unable to")
                || m.contains("missing")
                || m.contains("inactive")
                || m.contains("does not exist"))
    })
}

pub(crate) fn map_run_error(
    err: SdkError<RunTaskError, aws_smithy_runtime_api::http::Response>,
) -> Error {
    match err.as_service_error() {
        Some(RunTaskError::InvalidParameterException(e)) => Error::invalid(
            "task_spec",
            e.message().unwrap_or("invalid parameter").to_owned(),
        ),
        Some(RunTaskError::AccessDeniedException(e)) => Error::PermissionDenied {
            backend: "ecs",
            operation: "RunTask",
            detail: e.message().unwrap_or("access denied").to_owned(),
        },
        _ => sdk_error("ecs", "RunTask", None, err),
    }
}

/// Whether a StopTask error says the task does not exist.
fn stop_target_missing(
    err: &SdkError<StopTaskError, aws_smithy_runtime_api::http::Response>,
) -> bool {
    let msg = match err.as_service_error() {
        Some(StopTaskError::InvalidParameterException(e)) => e.message(),
        Some(StopTaskError::ClientException(e)) => e.message(),
        _ => None,
    };
    msg.is_some_and(|m| m.to_ascii_lowercase().contains("not found"))
}

/// What an unknown task (or another deployment's) describes as.
const MISSING: TaskStatus = TaskStatus {
    state: TaskState::Missing,
    endpoint: None,
};

/// State and, while running, endpoint of a described task of ours.
fn task_status(t: &Task) -> Result<TaskStatus> {
    let state = task_state(t);
    let endpoint = if state == TaskState::Running {
        let (port, path) = endpoint_tags(t);
        match private_ip(t) {
            Some(ip) => Some(Endpoint::new(
                ip,
                port.unwrap_or(DEFAULT_MCP_PORT),
                path.unwrap_or_else(|| DEFAULT_MCP_PATH.to_owned()),
            )?),
            None => None,
        }
    } else {
        None
    };
    Ok(TaskStatus { state, endpoint })
}

/// The state of a described task.
pub(crate) fn task_state(task: &Task) -> TaskState {
    let last = task.last_status().unwrap_or("PENDING");
    let desired_stop = task.desired_status() == Some("STOPPED");
    match last {
        "STOPPED" | "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => stopped(task),
        _ if desired_stop => stopped(task),
        "RUNNING" => TaskState::Running,
        _ => TaskState::Pending,
    }
}

fn stopped(task: &Task) -> TaskState {
    let server = task
        .containers()
        .iter()
        .find(|c| c.name() == Some(CONTAINER_NAME));
    TaskState::Stopped {
        reason: stop_reason(task.stopped_reason(), server.and_then(|c| c.reason())),
        exit_code: server.and_then(|c| c.exit_code()).map(i64::from),
    }
}

/// A stopped task's reason: [`OUT_OF_MEMORY`] when ECS says its server container was killed for
/// its memory (the container's reason, `OutOfMemoryError: …`; the task's own reason then only
/// says that an essential container exited), else the task's reason.
pub(crate) fn stop_reason(task: Option<&str>, container: Option<&str>) -> Option<String> {
    if container.is_some_and(|r| r.starts_with("OutOfMemoryError")) {
        return Some(OUT_OF_MEMORY.to_owned());
    }
    task.map(str::to_owned)
}

/// The private IPv4 of the task's ENI.
pub(crate) fn private_ip(task: &Task) -> Option<String> {
    task.attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .map(str::to_owned)
}

/// Whether a described task carries `deployment`'s tag.
fn owned_by(task: &Task, deployment: &DeploymentId) -> bool {
    task.tags()
        .iter()
        .any(|t| t.key() == Some(LABEL_DEPLOYMENT) && t.value() == Some(deployment.as_str()))
}

fn labels(task: &Task) -> Option<TaskLabels> {
    TaskLabels::from_pairs(
        task.tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?))),
    )
}

#[async_trait]
impl TaskRunner for EcsTaskRunner {
    async fn prepare(&self, spec: &TaskSpec) -> Result<()> {
        let family = self.family(spec);
        let existing = self
            .client
            .describe_task_definition()
            .task_definition(&family)
            .send()
            .await;
        match existing {
            Ok(out) => {
                let def = out.task_definition();
                let active = def.and_then(|d| d.status()).map(|s| s.as_str()) == Some("ACTIVE");
                let image_ok = def
                    .map(|d| d.container_definitions())
                    .and_then(|c| c.first())
                    .and_then(|c| c.image())
                    == Some(spec.image.pinned().as_str());
                if active && image_ok {
                    return Ok(());
                }
                self.register(spec).await
            }
            // Any "not found" (ClientException) means: register it now.
            Err(e) if matches!(
                e.as_service_error(),
                Some(aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionError::ClientException(_))
            ) => self.register(spec).await,
            Err(e) => Err(sdk_error("ecs", "DescribeTaskDefinition", Some(family), e)),
        }
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle> {
        if !spec.env.is_empty() {
            return self.start_with_env(spec).await;
        }
        match self.run(spec, self.family(spec)).await {
            Ok(h) => Ok(h),
            Err(RunError::Sdk(e)) if is_missing_family(&e) => {
                tracing::warn!(
                    family = self.family(spec),
                    "task definition missing at launch; registering it"
                );
                self.register(spec).await?;
                match self.run(spec, self.family(spec)).await {
                    Ok(h) => Ok(h),
                    Err(RunError::Sdk(e)) => Err(map_run_error(*e)),
                    Err(RunError::Core(e)) => Err(e),
                }
            }
            Err(RunError::Sdk(e)) => Err(map_run_error(*e)),
            Err(RunError::Core(e)) => Err(e),
        }
    }

    async fn describe(&self, task: &TaskHandle) -> Result<TaskStatus> {
        let out = self.describe_batch(&[task.to_string()], true).await?;
        // AWS answers MISSING in `failures`; moto answers nothing: both mean unknown. Another
        // deployment's task is unknown to this one.
        match out
            .tasks()
            .first()
            .filter(|t| owned_by(t, &self.settings.deployment))
        {
            Some(t) => task_status(t),
            None => Ok(MISSING),
        }
    }

    /// One DescribeTasks per [`DESCRIBE_BATCH`] tasks (the API's limit), so a refresh of `N`
    /// sessions costs ⌈N/100⌉ calls of the throttled DescribeTasks quota.
    async fn describe_many(&self, tasks: &[TaskHandle]) -> Result<Vec<(TaskHandle, TaskStatus)>> {
        let unique: std::collections::BTreeSet<&TaskHandle> = tasks.iter().collect();
        let unique: Vec<&TaskHandle> = unique.into_iter().collect();
        let mut out = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(DESCRIBE_BATCH) {
            let arns: Vec<String> = chunk.iter().map(|t| t.to_string()).collect();
            let described = self.describe_batch(&arns, true).await?;
            let mut found: std::collections::HashMap<&str, &Task> = described
                .tasks()
                .iter()
                .filter(|t| owned_by(t, &self.settings.deployment))
                .filter_map(|t| Some((t.task_arn()?, t)))
                .collect();
            for handle in chunk {
                let status = match found.remove(handle.as_str()) {
                    Some(t) => task_status(t)?,
                    None => MISSING,
                };
                out.push(((*handle).clone(), status));
            }
        }
        Ok(out)
    }

    async fn stop(&self, task: &TaskHandle, reason: &str) -> Result<()> {
        // StopTask cannot be conditioned on a tag: check the owner first.
        let out = self.describe_batch(&[task.to_string()], true).await?;
        let definition = match out.tasks().first() {
            None => return Ok(()),
            Some(t) if !owned_by(t, &self.settings.deployment) => {
                tracing::warn!(
                    %task,
                    deployment = %self.settings.deployment,
                    "not stopping a task of another deployment"
                );
                return Ok(());
            }
            Some(t) => t.task_definition_arn().map(str::to_owned),
        };
        let reason: String = reason.chars().take(255).collect();
        let res = self
            .client
            .stop_task()
            .cluster(&self.settings.cluster)
            .task(task.as_str())
            .reason(reason)
            .send()
            .await;
        match res {
            Ok(_) => {}
            // "The referenced task was not found": already gone, which is what we want.
            Err(e) if stop_target_missing(&e) => {}
            Err(e) => return Err(sdk_error("ecs", "StopTask", Some(task.to_string()), e)),
        }
        // A stopped task needs its secret no more (values are read once, at start).
        self.clean_up_after_stop(definition.as_deref()).await;
        Ok(())
    }

    /// ECS sends SIGTERM and waits the task definition's `stopTimeout` (30 s by default) before
    /// SIGKILL; a per-call drain cannot be given, so `drain` is ignored.
    async fn stop_gracefully(
        &self,
        task: &TaskHandle,
        _drain: std::time::Duration,
        reason: &str,
    ) -> Result<()> {
        self.stop(task, reason).await
    }

    /// Task output goes to CloudWatch Logs (awslogs), which this runner does not read.
    async fn tail_logs(&self, _task: &TaskHandle, _tail: usize) -> Result<Vec<String>> {
        Err(toolshed_core::Error::Unsupported {
            backend: "ecs",
            operation: "tail_logs (task output is in CloudWatch Logs)",
        })
    }

    /// The secrets and task definitions of tasks with an environment that stopping did not
    /// remove (see [`task_secrets`]).
    async fn remove_leftovers(&self, grace: std::time::Duration, limit: usize) -> Result<u32> {
        self.remove_leftover_task_secrets(grace, limit).await
    }

    async fn list_managed(&self, cursor: Option<String>, limit: usize) -> Result<TaskPage> {
        let page = self
            .client
            .list_tasks()
            .cluster(&self.settings.cluster)
            .started_by(self.settings.deployment.as_str())
            .desired_status(DesiredStatus::Running)
            .max_results(i32::try_from(limit.clamp(1, DESCRIBE_BATCH)).unwrap_or(100))
            .set_next_token(cursor)
            .send()
            .await
            .map_err(|e| sdk_error("ecs", "ListTasks", None, e))?;
        let arns = page.task_arns().to_vec();
        let mut tasks = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_BATCH) {
            let out = self.describe_batch(chunk, true).await?;
            for t in out.tasks() {
                // ListTasks cannot filter by tag: keep only tasks carrying ours (managed, and this
                // deployment's, in case another started tasks with the same `startedBy`).
                if !owned_by(t, &self.settings.deployment) {
                    continue;
                }
                let (Some(labels), Some(arn)) = (labels(t), t.task_arn()) else {
                    continue;
                };
                tasks.push(TaskSummary {
                    handle: TaskHandle::new(arn)?,
                    labels,
                    state: task_state(t),
                    started_at: t
                        .created_at()
                        .and_then(|d| chrono::DateTime::from_timestamp(d.secs(), d.subsec_nanos())),
                });
            }
        }
        Ok(TaskPage {
            tasks,
            next: page.next_token().map(str::to_owned),
        })
    }
}

/// The MCP port and path we tag each task with (awsvpc tasks report no network bindings).
fn endpoint_tags(task: &Task) -> (Option<u16>, Option<String>) {
    let mut port = None;
    let mut path = None;
    for t in task.tags() {
        match (t.key(), t.value()) {
            (Some(TAG_PORT), Some(v)) => port = v.parse().ok(),
            (Some(TAG_PATH), Some(v)) => path = Some(v.to_owned()),
            _ => {}
        }
    }
    (port, path)
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::types::{Container, Task};

    use super::*;

    fn stopped_task(container_reason: Option<&str>, exit_code: i32) -> Task {
        Task::builder()
            .last_status("STOPPED")
            .desired_status("STOPPED")
            .stopped_reason("Essential container in task exited")
            .containers(
                Container::builder()
                    .name(CONTAINER_NAME)
                    .exit_code(exit_code)
                    .set_reason(container_reason.map(str::to_owned))
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_stopped_task_says_how_its_server_ended() {
        let oom = task_state(&stopped_task(
            Some("OutOfMemoryError: Container killed due to memory usage"),
            137,
        ));
        let exit = oom.exit().expect("stopped");
        assert!(exit.out_of_memory, "{oom:?}");
        assert_eq!(exit.exit_code, Some(137));

        let crashed = task_state(&stopped_task(None, 3));
        assert_eq!(
            crashed,
            TaskState::Stopped {
                reason: Some("Essential container in task exited".into()),
                exit_code: Some(3),
            }
        );
        assert!(!crashed.exit().expect("stopped").out_of_memory);
    }
}
