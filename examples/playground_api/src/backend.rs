//! The composition root's backend switch: which adapters the binary wires.
//!
//! `TOOLSHED_BACKEND=local|aws` chooses explicitly. Without it, the AWS backend is chosen when
//! seed 001's cluster setting is present (`PLAYGROUND_CLUSTER` or `AWS_ECS_CLUSTER`), the local
//! backend otherwise.
//!
//! - local: Docker engine (builds, sessions), SQLite under `TOOLSHED_DATA_DIR`, git CLI, rmcp
//!   probe, heuristic metadata; `TOOLSHED_REGISTRY` to push to an OCI registry.
//! - aws: `toolshed_aws::AwsSettings::from_env` (ECS Fargate, DynamoDB, CodeBuild, ECR, S3; the
//!   default credentials chain; `AWS_ENDPOINT_URL` for an emulator), git CLI, rmcp probe, and
//!   OpenAI metadata generation when `OPENAI_API_KEY` is set (`toolshed_openai`), the heuristic
//!   generator otherwise.

use std::fmt;
use std::sync::Arc;

use anyhow::{bail, Context};
use toolshed_aws::AwsAdapters;
use toolshed_core::adapters::git::GitCliSource;
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::ports::{Clock, McpProbe, MetadataGenerator, SourceRepository, SystemClock};
use toolshed_core::services::{HeuristicMetadataGenerator, Ports, Toolshed, ToolshedConfig};
use toolshed_examples::local::{LocalBackend, LocalOptions};

/// Which adapters the binary runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Docker engine, SQLite, git.
    Local,
    /// ECS Fargate, DynamoDB, CodeBuild, ECR, S3.
    Aws,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Local => "local",
            BackendKind::Aws => "aws",
        })
    }
}

/// The backend the environment (read through `lookup`) asks for.
///
/// # Errors
/// When `TOOLSHED_BACKEND` is neither `local` nor `aws`.
pub fn select_backend(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<BackendKind> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    match set("TOOLSHED_BACKEND").as_deref().map(str::trim) {
        Some("local") => Ok(BackendKind::Local),
        Some("aws") => Ok(BackendKind::Aws),
        Some(other) => bail!("TOOLSHED_BACKEND must be `local` or `aws`, not {other:?}"),
        None if set("PLAYGROUND_CLUSTER").is_some() || set("AWS_ECS_CLUSTER").is_some() => {
            Ok(BackendKind::Aws)
        }
        None => Ok(BackendKind::Local),
    }
}

/// The adapters the AWS backend takes besides `toolshed-aws`'s.
#[derive(Debug, Clone)]
pub struct AwsExtras {
    /// Speaks MCP to check tasks and sessions.
    pub probe: Arc<dyn McpProbe>,
    /// Resolves commits and reads snapshots.
    pub source: Arc<dyn SourceRepository>,
    /// Fills missing metadata.
    pub metadata: Arc<dyn MetadataGenerator>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// The services on the AWS adapters and `extras`.
///
/// # Errors
/// `InvalidInput` when `config` is inconsistent.
pub fn aws_toolshed(
    adapters: &AwsAdapters,
    extras: AwsExtras,
    config: ToolshedConfig,
) -> toolshed_core::Result<Toolshed> {
    let ports = Ports {
        repository: Arc::new(adapters.repository.clone()),
        images: Arc::new(adapters.images.clone()),
        builder: Arc::new(adapters.builder.clone()),
        runner: Arc::new(adapters.tasks.clone()),
        probe: extras.probe,
        source: extras.source,
        metadata: extras.metadata,
        docs: Arc::new(adapters.docs.clone()),
        clock: extras.clock,
    };
    Toolshed::new(ports, config)
}

/// OpenAI when `OPENAI_API_KEY` is set (the switch is read through `lookup`; the OpenAI settings
/// themselves, key included, from the environment), the heuristic generator otherwise.
///
/// # Errors
/// An invalid OpenAI setting (`TOOLSHED_OPENAI_*`), naming it.
pub fn metadata_generator(
    lookup: impl Fn(&str) -> Option<String>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn MetadataGenerator>> {
    if lookup("OPENAI_API_KEY").is_some_and(|k| !k.trim().is_empty()) {
        let generator = toolshed_openai::OpenAiMetadataGenerator::from_env()
            .context("OpenAI metadata generation settings")?;
        Ok(Arc::new(generator))
    } else {
        Ok(Arc::new(HeuristicMetadataGenerator::new(clock)))
    }
}

/// The services of the backend the environment selects.
///
/// # Errors
/// A missing or malformed setting (naming the variable), an unreachable Docker engine, an
/// unopenable database.
pub async fn toolshed_from_env() -> anyhow::Result<(Toolshed, BackendKind)> {
    let kind = select_backend(|name| std::env::var(name).ok())?;
    let toolshed = match kind {
        BackendKind::Local => {
            LocalBackend::connect(LocalOptions::from_env())
                .await?
                .toolshed
        }
        BackendKind::Aws => {
            let adapters = AwsAdapters::from_env()
                .await
                .context("AWS backend settings")?;
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let extras = AwsExtras {
                probe: Arc::new(RmcpProbe::new()?),
                source: Arc::new(GitCliSource::new()),
                metadata: metadata_generator(|name| std::env::var(name).ok(), clock.clone())?,
                clock,
            };
            aws_toolshed(&adapters, extras, ToolshedConfig::default())?
        }
    };
    Ok((toolshed, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(vars: &[(&str, &str)]) -> anyhow::Result<BackendKind> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        select_backend(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn local_by_default_aws_when_the_cluster_is_set_explicit_wins() {
        assert_eq!(pick(&[]).unwrap(), BackendKind::Local);
        assert_eq!(
            pick(&[("PLAYGROUND_CLUSTER", "pg")]).unwrap(),
            BackendKind::Aws
        );
        assert_eq!(
            pick(&[("AWS_ECS_CLUSTER", "pg")]).unwrap(),
            BackendKind::Aws
        );
        assert_eq!(
            pick(&[("PLAYGROUND_CLUSTER", " ")]).unwrap(),
            BackendKind::Local
        );
        assert_eq!(
            pick(&[("TOOLSHED_BACKEND", "local"), ("PLAYGROUND_CLUSTER", "pg")]).unwrap(),
            BackendKind::Local
        );
        assert_eq!(
            pick(&[("TOOLSHED_BACKEND", "aws")]).unwrap(),
            BackendKind::Aws
        );
        let err = pick(&[("TOOLSHED_BACKEND", "gcp")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TOOLSHED_BACKEND"), "{err}");
    }
}
