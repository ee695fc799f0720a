//! The local backend on the Docker engine, through `bollard` (engine API 1.41 and later):
//!
//! - [`DockerImageBuilder`]: checks a repository out at a commit (git CLI), builds its Dockerfile
//!   through the engine (bounded memory, CPU and time), tags `<repository>:build-<serverId>-<sha12>`
//!   and pushes when the repository names a registry.
//! - [`RegistryImageStore`]: an OCI distribution registry (tag → digest over the distribution
//!   API); [`EngineImageStore`]: the engine's own image store when there is no registry.
//! - [`DockerTaskRunner`]: containers from the pinned digest, hardened ([`container_config`]:
//!   non-root, read-only root, no capabilities), published on 127.0.0.1 only (or, with egress
//!   `none`, on an internal network without a published port), labelled as ours; plus the lifecycle of long-running instances (drain-timeout stop, logs,
//!   health).
//!
//! Only containers carrying `toolshed.managed=true` are ever listed, stopped or removed.

mod builder;
mod error;
mod events;
mod health;
mod logs;
mod runner;
pub mod sanitize;
mod store;

use bollard::Docker;

pub use builder::{BuilderConfig, DockerImageBuilder};
pub use error::DockerError;
pub use events::{session_event, watch_session_status};
pub use health::{HealthReport, HealthTracker, Liveness};
pub use logs::{LogQuery, MAX_TAIL};
pub use runner::{container_config, DockerTaskRunner, InstanceSpec, RunnerConfig, LABEL_EGRESS};
pub use store::{EngineImageStore, RegistryImageStore};

use crate::error::Result;

/// Connects to the local engine (`DOCKER_HOST`, else the default socket) and negotiates the API
/// version, so engines as old as 20.10 (API 1.41) work.
///
/// # Errors
/// `Backend` (backend `docker`, retryable) when no engine answers.
pub async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_defaults()
        .map_err(|e| DockerError::from(e).into_error("connect", None))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| DockerError::from(e).into_error("connect", None))
}
