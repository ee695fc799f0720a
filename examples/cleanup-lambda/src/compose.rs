//! Composition of the sweeper from the AWS adapters.
//!
//! The sweep uses the repository (DynamoDB), the runner (ECS) and the clock. The verification
//! ports (builder, image store, probe, source, metadata, docs) are wired too because [`Ports`]
//! holds them all: the image store, builder and docs store with their AWS adapters (cheap
//! clients, never called by a sweep), and the MCP probe and git source with [`DisabledPort`],
//! which keeps rmcp and git out of the Lambda package.

use std::sync::Arc;

use async_trait::async_trait;
use toolshed_aws::AwsAdapters;
use toolshed_core::domain::{
    CommitSha, Endpoint, GitRef, ProbeReport, RepoSnapshot, RepoUrl, ToolCall, ToolCallOutput,
};
use toolshed_core::ports::{Clock, McpProbe, SnapshotLimits, SourceRepository, SystemClock};
use toolshed_core::services::{HeuristicMetadataGenerator, Toolshed, ToolshedConfig};
use toolshed_core::{Error, Result};

/// A port the sweeper never calls: every call fails with a non-retryable `Backend` error naming
/// the operation, so a wiring mistake is loud instead of silent.
#[derive(Debug, Clone, Copy, Default)]
pub struct DisabledPort;

fn disabled(operation: &'static str) -> Error {
    Error::backend(
        "cleanup-lambda",
        operation,
        None,
        false,
        "not wired in the cleanup Lambda (the sweep never verifies nor calls tools)",
    )
}

#[async_trait]
impl McpProbe for DisabledPort {
    async fn probe(&self, _: &Endpoint, _: std::time::Duration) -> Result<ProbeReport> {
        Err(disabled("probe"))
    }

    async fn wait_ready(&self, _: &Endpoint, _: std::time::Duration) -> Result<ProbeReport> {
        Err(disabled("wait_ready"))
    }

    async fn call_tool(
        &self,
        _: &Endpoint,
        _: &ToolCall,
        _: Option<serde_json::Value>,
        _: std::time::Duration,
    ) -> Result<ToolCallOutput> {
        Err(disabled("call_tool"))
    }
}

#[async_trait]
impl SourceRepository for DisabledPort {
    async fn resolve_commit(&self, _: &RepoUrl, _: &GitRef) -> Result<CommitSha> {
        Err(disabled("resolve_commit"))
    }

    async fn snapshot(
        &self,
        _: &RepoUrl,
        _: &CommitSha,
        _: SnapshotLimits,
    ) -> Result<RepoSnapshot> {
        Err(disabled("snapshot"))
    }
}

/// The sweeper's services over `adapters`, with `clock` (the system clock in production).
///
/// # Errors
/// `InvalidInput` when `config` is inconsistent.
pub fn sweeper_from_adapters(
    adapters: &AwsAdapters,
    clock: Arc<dyn Clock>,
    config: ToolshedConfig,
) -> Result<Toolshed> {
    let ports = adapters.ports(
        Arc::new(DisabledPort),
        Arc::new(DisabledPort),
        Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
        clock,
    );
    Toolshed::new(ports, config)
}

/// The sweeper from the environment: the settings of `toolshed_aws::AwsSettings::from_env`
/// (the same variables as the service), the default AWS credentials chain and the system clock.
///
/// # Errors
/// A missing or malformed setting, naming the variable.
pub async fn sweeper_from_env() -> anyhow::Result<Toolshed> {
    let adapters = AwsAdapters::from_env().await?;
    Ok(sweeper_from_adapters(
        &adapters,
        Arc::new(SystemClock),
        ToolshedConfig::default(),
    )?)
}
