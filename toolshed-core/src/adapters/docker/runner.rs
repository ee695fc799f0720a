//! [`TaskRunner`] on the Docker engine, and the lifecycle of long-running instances.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum,
    ContainerSummaryStateEnum, HostConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use serde::{Deserialize, Serialize};

use super::error::{engine, status, DockerError};
use crate::domain::{
    effective_user, DeploymentId, Egress, Endpoint, ImageRef, ServerId, TaskHandle, TaskLabels,
    TaskResources, LABEL_DEPLOYMENT, LABEL_MANAGED, LABEL_PURPOSE, LABEL_SERVER,
};
use crate::error::{EntityKind, Error, Result};
use crate::ports::{
    TaskPage, TaskRunner, TaskSpec, TaskState, TaskStatus, TaskSummary, OUT_OF_MEMORY,
};

/// Label with the container port serving MCP (to find the published host port again).
pub const LABEL_PORT: &str = "toolshed.port";
/// Label with the MCP path.
pub const LABEL_PATH: &str = "toolshed.path";
/// Label with the instance id (long-running instances; their purpose label is `instance`).
pub const LABEL_INSTANCE: &str = "toolshed.instance";
/// Label with the container's egress policy (`none` or `internet`).
pub const LABEL_EGRESS: &str = "toolshed.egress";

/// Limits and defaults of the containers the runner starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// The deployment whose containers these are: every container is labelled with it, and the
    /// runner lists, inspects, stops and removes only containers carrying it. Two runners with
    /// different ids share one engine without touching each other's containers.
    pub deployment: DeploymentId,
    /// Host address ports are published on. Loopback only by default: a playground server must
    /// not be reachable from the network.
    pub host_ip: String,
    /// Host name put in endpoints.
    pub endpoint_host: String,
    /// Most processes per container.
    pub pids_limit: i64,
    /// Size of the tmpfs mounted on `/tmp` (the root filesystem is read-only).
    pub tmpfs_size_mib: u32,
    /// The engine network of containers whose egress is [`Egress::None`]: created on first use
    /// as an *internal* bridge network, so the engine forwards nothing from it to any other
    /// network. Such containers publish no port (the engine cannot publish from an internal
    /// network); their endpoint is their address on this network, reachable from the host only.
    pub no_egress_network: String,
    /// Grace period between SIGTERM and SIGKILL when [`TaskRunner::stop`] stops a container.
    pub default_drain: Duration,
}

impl RunnerConfig {
    /// The defaults (loopback ports, 256 processes, 64 MiB `/tmp`, 10 s drain) for `deployment`.
    /// There is deliberately no `Default`: a shared default owner would let two deployments on
    /// one engine take each other's containers for orphans.
    pub fn new(deployment: DeploymentId) -> Self {
        Self {
            deployment,
            host_ip: "127.0.0.1".into(),
            endpoint_host: "127.0.0.1".into(),
            pids_limit: 256,
            tmpfs_size_mib: 64,
            no_egress_network: "toolshed-no-egress".into(),
            default_drain: Duration::from_secs(10),
        }
    }
}

/// A long-running instance of a verified image, as opposed to a playground session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Instance id: 1-63 characters of `a-z`, `0-9` and `-`.
    pub instance_id: String,
    /// The server.
    pub server_id: ServerId,
    /// The image, pinned by digest.
    pub image: ImageRef,
    /// Container port serving MCP.
    pub container_port: u16,
    /// MCP path.
    pub mcp_path: String,
    /// CPU / memory.
    pub resources: TaskResources,
    /// Environment (`KEY=value`), e.g. a server's configuration.
    #[serde(default)]
    pub env: Vec<String>,
    /// Arguments passed to the image's entrypoint (empty: the image's own command).
    #[serde(default)]
    pub args: Vec<String>,
}

impl InstanceSpec {
    /// Validates the id (it becomes part of a container name and a label).
    ///
    /// # Errors
    /// `InvalidInput { field: "instance_id" }`.
    pub fn validate(&self) -> Result<()> {
        let id = &self.instance_id;
        let ok = !id.is_empty()
            && id.len() <= 63
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !id.starts_with('-');
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "instance_id",
                format!("{id:?} must be 1-63 characters of a-z, 0-9 and '-'"),
            ))
        }
    }
}

/// Runs containers on the Docker engine.
#[derive(Debug, Clone)]
pub struct DockerTaskRunner {
    pub(super) docker: Docker,
    pub(super) config: RunnerConfig,
}

/// What a container is created from.
struct Launch<'a> {
    name: String,
    image: &'a ImageRef,
    port: u16,
    resources: TaskResources,
    labels: HashMap<String, String>,
    env: Vec<String>,
    args: Vec<String>,
}

/// Whether a container is marked managed **and** belongs to `deployment`.
fn is_ours(c: &ContainerInspectResponse, deployment: &DeploymentId) -> bool {
    let labels = c.config.as_ref().and_then(|cfg| cfg.labels.as_ref());
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    label(LABEL_MANAGED) == Some("true") && label(LABEL_DEPLOYMENT) == Some(deployment.as_str())
}

fn labels_of(c: &ContainerInspectResponse) -> HashMap<String, String> {
    c.config
        .as_ref()
        .and_then(|cfg| cfg.labels.clone())
        .unwrap_or_default()
}

/// A Docker container name from the deployment and an idempotency token: same token, same name
/// (so a repeated start meets the first container), and two deployments launching with equal
/// tokens (an idempotency key is derived from the server and the caller's key) never collide.
fn container_name(deployment: &DeploymentId, token: &str) -> String {
    let clean: String = token
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("toolshed-{deployment}-{clean}")
}

/// The container configuration of a playground or check task, as [`DockerTaskRunner::start`]
/// creates it: the hardening every task gets (a non-root user unless the server runs as root,
/// read-only root with a `noexec` tmpfs on `/tmp`, all capabilities dropped, no new privileges,
/// a process limit, memory and CPU from the spec) and its network (a port published on
/// [`RunnerConfig::host_ip`], or the internal no-egress network and no published port).
///
/// `image_user` is the user the image names, if any (the runner reads it from the engine).
pub fn container_config(
    config: &RunnerConfig,
    spec: &TaskSpec,
    image_user: Option<&str>,
) -> ContainerCreateBody {
    render(
        config,
        launch_of(spec, &config.deployment),
        spec.image.pinned(),
        image_user,
    )
}

fn launch_of<'a>(spec: &'a TaskSpec, deployment: &DeploymentId) -> Launch<'a> {
    let mut labels: HashMap<String, String> = spec.labels.to_pairs().into_iter().collect();
    labels.insert(LABEL_PATH.into(), spec.mcp_path.clone());
    Launch {
        name: container_name(deployment, &spec.idempotency_token),
        image: &spec.image,
        port: spec.container_port,
        resources: spec.resources,
        labels,
        env: spec
            .env
            .exposed()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        args: Vec::new(),
    }
}

fn render(
    config: &RunnerConfig,
    l: Launch<'_>,
    image: String,
    image_user: Option<&str>,
) -> ContainerCreateBody {
    let port_key = format!("{}/tcp", l.port);
    let mut labels = l.labels;
    labels.insert(LABEL_PORT.into(), l.port.to_string());
    labels.insert(LABEL_EGRESS.into(), l.resources.egress.to_string());
    let (port_bindings, network_mode) = match l.resources.egress {
        Egress::Internet => (
            Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some(config.host_ip.clone()),
                    // Empty: the engine picks a free host port.
                    host_port: Some(String::new()),
                }]),
            )])),
            None,
        ),
        Egress::None => (None, Some(config.no_egress_network.clone())),
    };
    let host_config = HostConfig {
        port_bindings,
        network_mode,
        memory: Some(i64::from(l.resources.memory_mib) * 1024 * 1024),
        nano_cpus: Some(i64::from(l.resources.cpu_units) * 1_000_000_000 / 1024),
        pids_limit: Some(config.pids_limit),
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        cap_drop: Some(vec!["ALL".into()]),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_owned(),
            format!("rw,noexec,nosuid,size={}m", config.tmpfs_size_mib),
        )])),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image),
        labels: Some(labels),
        exposed_ports: Some(vec![port_key]),
        env: Some(l.env),
        cmd: (!l.args.is_empty()).then_some(l.args),
        // Root (or no user) becomes the fixed non-root user unless the server runs as root;
        // `None` keeps the image's own user.
        user: effective_user(l.resources.run_as_root, image_user),
        host_config: Some(host_config),
        ..Default::default()
    }
}

impl DockerTaskRunner {
    /// Creates the internal no-egress network unless it exists.
    async fn ensure_no_egress_network(&self) -> Result<()> {
        let name = &self.config.no_egress_network;
        match self.docker.inspect_network(name, None).await {
            Ok(net) if net.internal == Some(true) => return Ok(()),
            Ok(_) => {
                return Err(Error::PermissionDenied {
                    backend: "docker",
                    operation: "CreateNetwork",
                    detail: format!(
                        "network {name} exists but is not internal; refusing to run containers \
                         without egress on it"
                    ),
                })
            }
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => {
                return Err(Error::backend(
                    "docker",
                    "InspectNetwork",
                    Some(name.clone()),
                    true,
                    e,
                ))
            }
        }
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            internal: Some(true),
            labels: Some(HashMap::from([(
                LABEL_MANAGED.to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // 409: created meanwhile by a concurrent launch.
            Err(e) if status(&e) == Some(409) => Ok(()),
            Err(e) => Err(Error::backend(
                "docker",
                "CreateNetwork",
                Some(name.clone()),
                true,
                e,
            )),
        }
    }

    /// A runner on `docker` with `config`.
    pub fn new(docker: Docker, config: RunnerConfig) -> Self {
        Self { docker, config }
    }

    /// The engine client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The deployment whose containers this runner manages.
    pub fn deployment(&self) -> &DeploymentId {
        &self.config.deployment
    }

    /// Inspects a container, `None` when it does not exist **or is not ours** (unlabelled, or
    /// another deployment's): such a container is indistinguishable from a missing one, so
    /// nothing here can act on it.
    async fn inspect_managed(&self, handle: &str) -> Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(handle, None).await {
            Ok(c) if is_ours(&c, &self.config.deployment) => Ok(Some(c)),
            Ok(_) => {
                tracing::warn!(
                    container = handle,
                    "refusing to act on a container without {LABEL_MANAGED}=true and {LABEL_DEPLOYMENT}={}",
                    self.config.deployment
                );
                Ok(None)
            }
            Err(e) => {
                let e = DockerError::from(e);
                if e.status() == Some(404) {
                    Ok(None)
                } else {
                    Err(e.into_error("InspectContainer", Some(handle.to_owned())))
                }
            }
        }
    }

    /// The reference to create a container from, and the image's own user. Registry images run
    /// as `repository@digest`; engine-store images (whose digest is the image id) run by id. Both
    /// pin content; a tag is never used.
    async fn resolve_image(&self, image: &ImageRef) -> Result<(String, Option<String>)> {
        let pinned = image.pinned();
        for candidate in [pinned.as_str(), image.digest().as_str()] {
            match self.docker.inspect_image(candidate).await {
                Ok(img) => {
                    let user = img.config.and_then(|c| c.user).filter(|u| !u.is_empty());
                    return Ok((candidate.to_owned(), user));
                }
                Err(e) => {
                    let e = DockerError::from(e);
                    if e.status() != Some(404) {
                        return Err(e.into_error("InspectImage", Some(candidate.to_owned())));
                    }
                }
            }
        }
        // Not local: pull by digest from its registry.
        use futures::StreamExt;
        let opts = bollard::query_parameters::CreateImageOptionsBuilder::default()
            .from_image(&pinned)
            .build();
        let mut pull = self.docker.create_image(Some(opts), None, None);
        while let Some(item) = pull.next().await {
            if let Err(e) = item {
                return Err(Error::not_found(
                    EntityKind::Image,
                    format!("{pinned} ({e})"),
                ));
            }
        }
        let img = engine(
            self.docker.inspect_image(&pinned).await,
            "InspectImage",
            &pinned,
        )?;
        let user = img.config.and_then(|c| c.user).filter(|u| !u.is_empty());
        Ok((pinned, user))
    }

    async fn launch(&self, l: Launch<'_>) -> Result<TaskHandle> {
        let (image, image_user) = self.resolve_image(l.image).await?;
        if l.resources.egress == Egress::None {
            self.ensure_no_egress_network().await?;
        }
        let mut l = l;
        l.labels.insert(
            LABEL_DEPLOYMENT.into(),
            self.config.deployment.as_str().to_owned(),
        );
        let name = l.name.clone();
        let body = render(&self.config, l, image, image_user.as_deref());
        let opts = CreateContainerOptionsBuilder::new().name(&name).build();
        let id = match self.docker.create_container(Some(opts), body).await {
            Ok(created) => created.id,
            Err(e) => {
                let e = DockerError::from(e);
                if e.status() != Some(409) {
                    return Err(e.into_error("CreateContainer", Some(name)));
                }
                // Same idempotency token: the container exists already; reuse it if it is ours.
                match self.inspect_managed(&name).await? {
                    Some(c) => c.id.unwrap_or_default(),
                    None => {
                        return Err(Error::AlreadyExists {
                            kind: EntityKind::Task,
                            id: name,
                        })
                    }
                }
            }
        };
        match self.docker.start_container(&id, None).await {
            Ok(()) => {}
            // 304: already started (a repeated start).
            Err(e) if status(&e) == Some(304) => {}
            Err(e) => {
                let _ = self.remove(&id).await;
                return Err(Error::backend(
                    "docker",
                    "StartContainer",
                    Some(id),
                    false,
                    e,
                ));
            }
        }
        tracing::info!(container = %id, name = %name, "container started");
        TaskHandle::new(id)
    }

    /// Starts a long-running instance. Its labels mark it ours but not a playground
    /// or check task, so the session sweep never lists it.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id, `AlreadyExists` when an instance with this id runs, `Backend`.
    pub async fn start_instance(&self, spec: &InstanceSpec) -> Result<TaskHandle> {
        spec.validate()?;
        let labels = HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_SERVER.to_owned(), spec.server_id.to_string()),
            (LABEL_PURPOSE.to_owned(), "instance".to_owned()),
            (LABEL_INSTANCE.to_owned(), spec.instance_id.clone()),
            (LABEL_PATH.to_owned(), spec.mcp_path.clone()),
        ]);
        self.launch(Launch {
            name: format!(
                "toolshed-{}-instance-{}",
                self.config.deployment, spec.instance_id
            ),
            image: &spec.image,
            port: spec.container_port,
            resources: spec.resources,
            labels,
            env: spec.env.clone(),
            args: spec.args.clone(),
        })
        .await
    }

    /// Stops a container with a drain timeout: the engine sends the image's stop signal
    /// (SIGTERM by default), waits up to `drain`, then SIGKILLs; the container is then removed.
    /// Unknown containers succeed (idempotent); unlabelled ones are refused.
    ///
    /// # Errors
    /// `PermissionDenied` for a container that is not ours; `Backend`.
    pub async fn stop_with_drain(&self, task: &TaskHandle, drain: Duration) -> Result<()> {
        let id = task.as_str();
        match self.docker.inspect_container(id, None).await {
            Ok(c) if is_ours(&c, &self.config.deployment) => {}
            Ok(_) => {
                return Err(Error::PermissionDenied {
                    backend: "docker",
                    operation: "StopContainer",
                    detail: format!(
                        "container {id} does not carry {LABEL_MANAGED}=true and {LABEL_DEPLOYMENT}={}; not touching it",
                        self.config.deployment
                    ),
                })
            }
            Err(e) if status(&e) == Some(404) => return Ok(()),
            Err(e) => {
                return Err(Error::backend(
                    "docker",
                    "InspectContainer",
                    Some(id.into()),
                    true,
                    e,
                ))
            }
        }
        let secs = i32::try_from(drain.as_secs()).unwrap_or(i32::MAX);
        let opts = StopContainerOptionsBuilder::new().t(secs).build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => {}
            Err(e) => {
                let e = DockerError::from(e);
                // 304: already stopped; 404: gone meanwhile.
                if !matches!(e.status(), Some(304 | 404)) {
                    return Err(e.into_error("StopContainer", Some(id.to_owned())));
                }
            }
        }
        self.remove(id).await
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::new()
            .v(true)
            .force(true)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = DockerError::from(e);
                // 404: gone; 409: removal already in progress.
                if matches!(e.status(), Some(404 | 409)) {
                    Ok(())
                } else {
                    Err(e.into_error("RemoveContainer", Some(id.to_owned())))
                }
            }
        }
    }

    /// Restarts an instance with the same configuration: its image, environment, labels, port
    /// and limits are read back from the old container, which is stopped with `drain`, and a new
    /// container is started from them.
    ///
    /// # Errors
    /// `NotFound` (kind `Task`) for an unknown or unmanaged container; `Backend`.
    pub async fn restart_instance(&self, task: &TaskHandle, drain: Duration) -> Result<TaskHandle> {
        let old = self
            .inspect_managed(task.as_str())
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Task, task))?;
        let cfg = old.config.clone().unwrap_or_default();
        let host = old.host_config.clone().unwrap_or_default();
        let name = old.name.clone().unwrap_or_default();
        let name = name.trim_start_matches('/').to_owned();
        let mut body = ContainerCreateBody {
            image: old.image.clone(),
            labels: cfg.labels,
            exposed_ports: cfg.exposed_ports,
            env: cfg.env,
            user: cfg.user,
            cmd: cfg.cmd,
            entrypoint: cfg.entrypoint,
            stop_signal: cfg.stop_signal,
            ..Default::default()
        };
        body.host_config = Some(HostConfig {
            port_bindings: host.port_bindings,
            network_mode: host.network_mode,
            memory: host.memory,
            nano_cpus: host.nano_cpus,
            pids_limit: host.pids_limit,
            security_opt: host.security_opt,
            cap_drop: host.cap_drop,
            readonly_rootfs: host.readonly_rootfs,
            tmpfs: host.tmpfs,
            ..Default::default()
        });
        self.stop_with_drain(task, drain).await?;
        let opts = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = engine(
            self.docker.create_container(Some(opts), body).await,
            "CreateContainer",
            &name,
        )?;
        engine(
            self.docker.start_container(&created.id, None).await,
            "StartContainer",
            &created.id,
        )?;
        TaskHandle::new(created.id)
    }

    /// The managed container's labels, its endpoint (when running) and its state.
    ///
    /// # Errors
    /// `Backend`.
    pub async fn inspect(
        &self,
        task: &TaskHandle,
    ) -> Result<Option<(HashMap<String, String>, TaskStatus)>> {
        let Some(c) = self.inspect_managed(task.as_str()).await? else {
            return Ok(None);
        };
        let status = self.status_of(&c);
        Ok(Some((labels_of(&c), status)))
    }

    fn status_of(&self, c: &ContainerInspectResponse) -> TaskStatus {
        let labels = labels_of(c);
        let state = c.state.clone().unwrap_or_default();
        let task_state = match state.status {
            Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::PAUSED) => {
                TaskState::Running
            }
            Some(ContainerStateStatusEnum::CREATED | ContainerStateStatusEnum::RESTARTING) => {
                TaskState::Pending
            }
            _ => TaskState::Stopped {
                reason: Some(if state.oom_killed == Some(true) {
                    OUT_OF_MEMORY.to_owned()
                } else {
                    state
                        .error
                        .clone()
                        .filter(|e| !e.is_empty())
                        .unwrap_or_else(|| "exited".to_owned())
                }),
                exit_code: state.exit_code,
            },
        };
        let no_egress = labels.get(LABEL_EGRESS).map(String::as_str) == Some(Egress::None.as_str());
        let endpoint = if task_state == TaskState::Running && no_egress {
            // No published port: the container's address on the internal network.
            labels.get(LABEL_PORT).and_then(|port| {
                let ip = c
                    .network_settings
                    .as_ref()?
                    .networks
                    .as_ref()?
                    .get(&self.config.no_egress_network)?
                    .ip_address
                    .clone()
                    .filter(|ip| !ip.is_empty())?;
                let path = labels.get(LABEL_PATH).map_or("/mcp", String::as_str);
                Endpoint::new(ip, port.parse::<u16>().ok()?, path).ok()
            })
        } else if task_state == TaskState::Running {
            labels.get(LABEL_PORT).and_then(|port| {
                let host_port = c
                    .network_settings
                    .as_ref()?
                    .ports
                    .as_ref()?
                    .get(&format!("{port}/tcp"))?
                    .as_ref()?
                    .first()?
                    .host_port
                    .as_ref()?
                    .parse::<u16>()
                    .ok()?;
                let path = labels.get(LABEL_PATH).map_or("/mcp", String::as_str);
                Endpoint::new(&self.config.endpoint_host, host_port, path).ok()
            })
        } else {
            None
        };
        TaskStatus {
            state: task_state,
            endpoint,
        }
    }
}

#[async_trait]
impl TaskRunner for DockerTaskRunner {
    async fn prepare(&self, spec: &TaskSpec) -> Result<()> {
        // Nothing to register locally; checking the image exists fails a bad verification early.
        self.resolve_image(&spec.image).await.map(|_| ())
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle> {
        self.launch(launch_of(spec, &self.config.deployment)).await
    }

    async fn describe(&self, task: &TaskHandle) -> Result<TaskStatus> {
        Ok(match self.inspect_managed(task.as_str()).await? {
            Some(c) => self.status_of(&c),
            None => TaskStatus {
                state: TaskState::Missing,
                endpoint: None,
            },
        })
    }

    async fn stop(&self, task: &TaskHandle, reason: &str) -> Result<()> {
        tracing::info!(container = %task, reason, "stopping container");
        match self.stop_with_drain(task, self.config.default_drain).await {
            // The trait treats a container that is not ours like an unknown one: nothing to do.
            Err(Error::PermissionDenied { .. }) => Ok(()),
            other => other,
        }
    }

    async fn stop_gracefully(
        &self,
        task: &TaskHandle,
        drain: Duration,
        reason: &str,
    ) -> Result<()> {
        tracing::info!(container = %task, reason, drain_secs = drain.as_secs(), "stopping container gracefully");
        self.stop_with_drain(task, drain).await
    }

    async fn tail_logs(&self, task: &TaskHandle, tail: usize) -> Result<Vec<String>> {
        use futures::TryStreamExt;
        let query = super::LogQuery {
            tail: Some(tail),
            since: None,
            follow: false,
        };
        self.logs(task, query).await?.try_collect().await
    }

    async fn list_managed(&self, cursor: Option<String>, limit: usize) -> Result<TaskPage> {
        // Exited and dead containers are listed too: the sweep removes them once their session
        // has ended, so a container that died (or was killed from outside) does not stay forever.
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_DEPLOYMENT}={}", self.config.deployment),
            ],
        )]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let mut found = engine(
            self.docker.list_containers(Some(opts)).await,
            "ListContainers",
            "",
        )?;
        found.sort_by(|a, b| a.id.cmp(&b.id));
        let mut tasks = Vec::new();
        let mut next = None;
        for c in found {
            let id = c.id.clone().unwrap_or_default();
            if cursor
                .as_ref()
                .is_some_and(|cur| id.as_str() <= cur.as_str())
            {
                continue;
            }
            let labels = c.labels.clone().unwrap_or_default();
            // Only what the domain recognises (playground and check tasks); instances and
            // anything else are never handed to the sweep.
            let Some(parsed) =
                TaskLabels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            else {
                continue;
            };
            if tasks.len() == limit.max(1) {
                next = tasks.last().map(|t: &TaskSummary| t.handle.to_string());
                break;
            }
            let state = match c.state {
                Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED) => {
                    TaskState::Running
                }
                Some(
                    ContainerSummaryStateEnum::CREATED | ContainerSummaryStateEnum::RESTARTING,
                ) => TaskState::Pending,
                // Exited, dead, being removed: the list reports no exit code (describe does).
                _ => TaskState::Stopped {
                    reason: c.status.clone(),
                    exit_code: None,
                },
            };
            tasks.push(TaskSummary {
                handle: TaskHandle::new(id)?,
                labels: parsed,
                state,
                started_at: c
                    .created
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0)),
            });
        }
        Ok(TaskPage { tasks, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_tokens() {
        let d = DeploymentId::new("dep1").unwrap();
        assert_eq!(container_name(&d, "s-0123abcd"), "toolshed-dep1-s-0123abcd");
        assert_eq!(
            container_name(&d, "check-a/b c"),
            "toolshed-dep1-check-a-b-c"
        );
    }

    #[test]
    fn instance_ids() {
        let mut spec = InstanceSpec {
            instance_id: "web-1".into(),
            server_id: ServerId::new("s").unwrap(),
            image: ImageRef::new(
                "toolshed",
                crate::domain::ImageTag::new("t").unwrap(),
                crate::domain::ImageDigest::new(format!("sha256:{}", "0".repeat(64))).unwrap(),
            )
            .unwrap(),
            container_port: 8000,
            mcp_path: "/mcp".into(),
            resources: TaskResources::default(),
            env: vec![],
            args: vec![],
        };
        assert!(spec.validate().is_ok());
        for bad in ["", "../etc", "A", "a b", "-x"] {
            spec.instance_id = bad.into();
            assert!(spec.validate().is_err(), "{bad}");
        }
    }
}
