//! The use cases: register, verify (and its stepwise form), playground sessions, tool calls,
//! the sweep and metadata.
//!
//! Everything hangs off [`Toolshed`], which holds the ports ([`Ports`], each an `Arc<dyn Port>`)
//! and a typed [`ToolshedConfig`]; each use case lives in its own module as an `impl Toolshed`
//! block. Composition roots (CLI, HTTP API, Lambda) build one `Toolshed` and share it.

mod access;
mod api_keys;
mod config;
mod execute;
mod heartbeat;
mod import;
mod instances;
mod metadata;
mod playground;
mod promotion;
mod register;
mod runs;
mod settings;
mod status;
mod status_batch;
mod sweep;
mod verify;
mod warm;

use std::sync::Arc;

pub use access::{Caller, InstanceListing, OWNED_SCAN_PAGES};
pub use api_keys::ApiKeyCheck;
pub use config::{
    package_build_from, promotion_policy_from, remote_access_from, RemoteAccessSettings,
    ToolshedConfig, ENV_NODE_BASE_IMAGE, ENV_PACKAGE_CA_BUNDLE, ENV_PIP_INDEX_URL,
    ENV_PROMOTION_POLICY, ENV_PYTHON_BASE_IMAGE, ENV_REMOTE_ALLOWED_NETWORKS, ENV_REMOTE_CA_BUNDLE,
};
pub use import::{ImportOptions, Imported, REGISTRY_SITE};
pub use instances::{InstanceHealth, InstanceStatus, InstanceStatusView, DEFAULT_DRAIN, MAX_DRAIN};
pub use metadata::{MetadataOutcome, ServerDocs};
pub use playground::LaunchRequest;
pub use runs::{BackgroundStart, ResumedRun, RunStatus, VerificationRunHandle, VerificationStatus};
pub use status::{
    observation_of, observed_state, RefreshLimits, RefreshReport, StatusRefresher, TaskEvent,
    TaskEventsReport, MIN_REFRESH_PERIOD,
};
pub use sweep::{SweepLimits, SweepReport, Sweeper};
pub use verify::{StartOutcome, StepOutcome, VerifyOptions, VerifyOutcome};
pub use warm::WarmPoolReport;

use crate::error::Result;
use crate::ports::{
    Clock, DocsStore, ImageBuilder, ImageStore, McpProbe, MetadataGenerator, SecretStore,
    ServerRepository, SourceRepository, TaskRunner,
};

/// The adapters the services use.
#[derive(Debug, Clone)]
pub struct Ports {
    /// Servers, leases, sessions.
    pub repository: Arc<dyn ServerRepository>,
    /// Where built images live.
    pub images: Arc<dyn ImageStore>,
    /// Builds images.
    pub builder: Arc<dyn ImageBuilder>,
    /// Runs check tasks and sessions.
    pub runner: Arc<dyn TaskRunner>,
    /// Speaks MCP.
    pub probe: Arc<dyn McpProbe>,
    /// Reads git repositories.
    pub source: Arc<dyn SourceRepository>,
    /// Fills missing metadata
    /// ([`HeuristicMetadataGenerator`](crate::adapters::heuristic::HeuristicMetadataGenerator)
    /// when no LLM is configured).
    pub metadata: Arc<dyn MetadataGenerator>,
    /// Long docs.
    pub docs: Arc<dyn DocsStore>,
    /// Secret setting values kept between uses (verification test values, instances).
    pub secrets: Arc<dyn SecretStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// The services of the Toolshed SDK. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Toolshed {
    ports: Ports,
    config: Arc<ToolshedConfig>,
    /// Serializes this process's warm-pool top-ups (a claim's background top-up and the
    /// sweep's), so they do not both start a session for the same free place.
    warm_top_up: Arc<tokio::sync::Mutex<()>>,
    /// Coalesces the describes of this process's stale status polls.
    status_batch: Arc<status_batch::StatusBatcher>,
}

impl Toolshed {
    /// Wires the services.
    ///
    /// # Errors
    /// `InvalidInput` if the configuration is inconsistent (see [`ToolshedConfig::validate`]).
    pub fn new(ports: Ports, config: ToolshedConfig) -> Result<Self> {
        config.validate()?;
        let status_batch = Arc::new(status_batch::StatusBatcher::new(
            ports.repository.clone(),
            ports.runner.clone(),
            ports.clock.clone(),
            config.status_freshness,
        ));
        Ok(Self {
            ports,
            config: Arc::new(config),
            warm_top_up: Arc::default(),
            status_batch,
        })
    }

    /// The ports.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The configuration.
    pub fn config(&self) -> &ToolshedConfig {
        &self.config
    }

    /// The services' time (their clock), e.g. for "starting for N s" in answers.
    pub fn now(&self) -> crate::domain::Timestamp {
        self.ports.clock.now()
    }
}
