//! The local composition (feature `local`): every local adapter wired into one [`Toolshed`] —
//! the Docker engine (builder, runner, the engine's image store or an OCI registry), SQLite under
//! the data directory, the git CLI, the rmcp probe, the heuristic metadata generator and docs on
//! the local file system, setting values in encrypted files.
//!
//! Binaries read their settings once, into a [`LocalConfig`] (usually [`LocalConfig::from_env`]),
//! and call [`LocalBackend::connect`]. Adapters never read the environment themselves.

mod bridge;
mod config;

use std::sync::Arc;

use crate::adapters::docker::{
    self, DockerImageBuilder, DockerTaskRunner, EngineImageStore, RegistryImageStore, RunnerConfig,
};
use crate::adapters::file_secrets::FileSecretStore;
use crate::adapters::files::FileDocsStore;
use crate::adapters::git::GitCliSource;
use crate::adapters::heuristic::HeuristicMetadataGenerator;
use crate::adapters::mcp::RmcpProbe;
use crate::adapters::sqlite::{SqliteServerRepository, DB_FILE};
use crate::error::{Error, Result};
use crate::ports::{Clock, ImageStore, SystemClock};
use crate::services::{Ports, Toolshed};

pub use bridge::{locate_stdio_bridge, BridgeFoundBy, StdioBridgeStatus, STDIO_BRIDGE_BINARY};
pub use config::{
    local_service_config, LocalConfig, SecretString, ENV_DATA_DIR, ENV_DEPLOYMENT_ID,
    ENV_GIT_TOKEN, ENV_REGISTRY, ENV_STDIO_BRIDGE,
};

/// Repository name of locally built images in the engine store.
pub const ENGINE_REPOSITORY: &str = "toolshed/servers";
/// Repository name inside a registry.
pub const REGISTRY_NAME: &str = "toolshed";

/// The wired local backend.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    /// The services.
    pub toolshed: Toolshed,
    /// The runner (instances, logs, health beyond the port).
    pub runner: Arc<DockerTaskRunner>,
    /// The SQLite repository.
    pub repository: Arc<SqliteServerRepository>,
    /// The probe.
    pub probe: Arc<RmcpProbe>,
    /// The image store.
    pub images: Arc<dyn ImageStore>,
    /// Whether stdio servers can be verified (the stdio bridge was found), and why not.
    pub stdio_bridge: StdioBridgeStatus,
}

impl LocalBackend {
    /// Connects to the engine, opens the database and wires the services.
    ///
    /// A missing stdio bridge is not an error: stdio servers then fail verification with a
    /// message saying so, and [`Self::stdio_bridge`] tells why (for `/healthz` and `doctor`).
    ///
    /// # Errors
    /// `Backend` when no engine answers or the database cannot be opened; `InvalidInput` when the
    /// configuration is inconsistent.
    pub async fn connect(config: LocalConfig) -> Result<Self> {
        let engine = docker::connect().await?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::backend(
                "sqlite",
                "create_data_dir",
                None,
                false,
                format!(
                    "cannot create the data directory {}: {e}",
                    config.data_dir.display()
                ),
            )
        })?;
        let repository =
            Arc::new(SqliteServerRepository::open(config.data_dir.join(DB_FILE)).await?);
        let images: Arc<dyn ImageStore> = match &config.registry {
            Some(registry) => Arc::new(RegistryImageStore::new(registry.clone(), REGISTRY_NAME)?),
            None => Arc::new(EngineImageStore::new(engine.clone(), ENGINE_REPOSITORY)?),
        };
        let git = match &config.git_token {
            Some(token) => {
                GitCliSource::new().with_token_for_host(token.expose(), &config.git_token_host)?
            }
            None => GitCliSource::new(),
        };
        // The owner label of every container this data directory starts: stored in the
        // database, so the CLI and the API on one data directory agree, and a backend with
        // another data directory never lists, stops or sweeps them.
        let deployment = match &config.deployment_id {
            Some(id) => id.clone(),
            None => repository.deployment_id().await?,
        };
        let runner = Arc::new(DockerTaskRunner::new(
            engine.clone(),
            RunnerConfig::new(deployment),
        ));
        let probe = Arc::new(RmcpProbe::new()?.with_remote_settings(&config.remote_access)?);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let stdio_bridge = locate_stdio_bridge(config.stdio_bridge.as_deref());
        let mut builder = match &stdio_bridge.path {
            Some(bridge) => DockerImageBuilder::new(engine, git.clone()).with_stdio_bridge(bridge),
            None => DockerImageBuilder::new(engine, git.clone()),
        };
        let mut service = config.service;
        if let Some(bundle) = &config.package_ca_bundle {
            builder = builder.with_package_ca_bundle(bundle);
            service.package_build.with_ca_bundle = true;
        }
        let ports = Ports {
            repository: repository.clone(),
            images: images.clone(),
            builder: Arc::new(builder),
            runner: runner.clone(),
            probe: probe.clone(),
            source: Arc::new(git),
            metadata: Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
            // Docs live beside the database: <data dir>/docs/<serverId>/<commit>.md.
            docs: Arc::new(FileDocsStore::new(&config.data_dir)),
            // Setting values encrypted at rest: <data dir>/secrets/ (key file and values, 0600).
            secrets: Arc::new(FileSecretStore::in_data_dir(&config.data_dir)),
            clock,
        };
        let toolshed = Toolshed::new(ports, service)?;
        Ok(Self {
            toolshed,
            runner,
            repository,
            probe,
            images,
            stdio_bridge,
        })
    }
}
