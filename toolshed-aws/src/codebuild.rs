//! CodeBuild [`ImageBuilder`]: StartBuild on the configured project, status from BatchGetBuilds.
//!
//! The project's buildspec reads `IMAGE_TAG` (`build-<serverId>-<sha12>`, or
//! `build-<serverId>_<spec10>-<sha12>` for a non-default build spec), `SERVER_ID`,
//! `REPOSITORY_URI`, `MCP_TRANSPORT` (`http` | `stdio`), for stdio servers `MCP_STDIO_COMMAND`
//! (a JSON array), and the build spec: `BUILD_CONTEXT` (a folder of the repository),
//! `DOCKERFILE` (relative to it) and `BUILD_ARGS` (a JSON object); it pushes
//! `$REPOSITORY_URI:$IMAGE_TAG`. Every value travels as a plain environment variable, which the
//! buildspec only ever expands quoted: none is ever run as shell code.

use async_trait::async_trait;
use aws_sdk_codebuild::types::{
    BuildPhase, EnvironmentVariable, EnvironmentVariableType, StatusType,
};
use aws_sdk_codebuild::Client;
use toolshed_core::domain::{BuildId, Transport};
use toolshed_core::error::EntityKind;
use toolshed_core::ports::{BuildRequest, BuildStatus, ImageBuilder};
use toolshed_core::{Error, Result};

use crate::error::{sdk_error, unexpected};

/// What the CodeBuild builder needs from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBuildSettings {
    /// The project name.
    pub project: String,
    /// The ECR repository URI builds push to.
    pub repository_uri: String,
    /// The region (for console links).
    pub region: String,
}

/// Builds images with CodeBuild.
#[derive(Debug, Clone)]
pub struct CodeBuildImageBuilder {
    client: Client,
    settings: CodeBuildSettings,
}

impl CodeBuildImageBuilder {
    /// A builder on `client` with `settings`.
    pub fn new(client: Client, settings: CodeBuildSettings) -> Self {
        Self { client, settings }
    }

    /// The console page of a build (its log tab).
    pub fn console_url(&self, build: &BuildId) -> String {
        let region = &self.settings.region;
        let encoded = build.as_str().replace(':', "%3A");
        format!(
            "https://{region}.console.aws.amazon.com/codesuite/codebuild/projects/{}/build/{encoded}/log?region={region}",
            self.settings.project
        )
    }
}

fn env(name: &str, value: impl Into<String>) -> Result<EnvironmentVariable> {
    EnvironmentVariable::builder()
        .name(name)
        .value(value)
        .r#type(EnvironmentVariableType::Plaintext)
        .build()
        .map_err(|e| unexpected("codebuild", "StartBuild", None, e.to_string()))
}

/// The environment overrides of a build request.
///
/// # Errors
/// `InvalidInput { field: "build" }` for a generated package build (a server imported from
/// a `pypi` or `npm` package): the project's buildspec builds repositories only, so such
/// servers are verified on the Docker builder.
pub(crate) fn overrides(request: &BuildRequest) -> Result<Vec<EnvironmentVariable>> {
    if request.dockerfile.is_some() {
        return Err(Error::invalid(
            "build",
            format!(
                "server {} is imported from a package; this deployment's CodeBuild project builds git repositories only",
                request.server_id
            ),
        ));
    }
    let mut vars = vec![
        env("IMAGE_TAG", request.tag.as_str())?,
        env("SERVER_ID", request.server_id.as_str())?,
        env("REPOSITORY_URI", request.repository.as_str())?,
    ];
    let args = serde_json::to_string(&request.build.args)
        .map_err(|e| unexpected("codebuild", "StartBuild", None, e.to_string()))?;
    vars.push(env("BUILD_CONTEXT", request.build.context.as_str())?);
    vars.push(env("DOCKERFILE", request.build.dockerfile.as_str())?);
    vars.push(env("BUILD_ARGS", args)?);
    match &request.transport {
        Transport::Http { .. } => vars.push(env("MCP_TRANSPORT", "http")?),
        Transport::Stdio { command } => {
            vars.push(env("MCP_TRANSPORT", "stdio")?);
            let json = serde_json::to_string(command)
                .map_err(|e| unexpected("codebuild", "StartBuild", None, e.to_string()))?;
            vars.push(env("MCP_STDIO_COMMAND", json)?);
        }
    }
    Ok(vars)
}

/// The failing phase and its messages.
fn failed_phase(phases: &[BuildPhase]) -> Option<(String, String)> {
    phases
        .iter()
        .find(|p| {
            matches!(
                p.phase_status(),
                Some(
                    StatusType::Failed
                        | StatusType::Fault
                        | StatusType::TimedOut
                        | StatusType::Stopped
                )
            )
        })
        .map(|p| {
            let name = p
                .phase_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default();
            let why = p
                .contexts()
                .iter()
                .filter_map(|c| match (c.status_code(), c.message()) {
                    (Some(code), Some(msg)) => Some(format!("{code}: {msg}")),
                    (None, Some(msg)) => Some(msg.to_owned()),
                    (Some(code), None) => Some(code.to_owned()),
                    (None, None) => None,
                })
                .collect::<Vec<_>>()
                .join("; ");
            (name, why)
        })
}

/// Phases whose failure is the platform's, not the repository's: a rebuild may pass.
const INFRA_PHASES: &[&str] = &[
    "SUBMITTED",
    "QUEUED",
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
];

#[async_trait]
impl ImageBuilder for CodeBuildImageBuilder {
    async fn start_build(&self, request: &BuildRequest) -> Result<BuildId> {
        let token: String = request.idempotency_token.chars().take(64).collect();
        let out = self
            .client
            .start_build()
            .project_name(&self.settings.project)
            .source_location_override(request.repo.as_str())
            .source_version(request.commit.as_str())
            .set_environment_variables_override(Some(overrides(request)?))
            .idempotency_token(token)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    "codebuild",
                    "StartBuild",
                    Some(request.server_id.to_string()),
                    e,
                )
            })?;
        let id = out
            .build_value()
            .and_then(|b| b.id())
            .ok_or_else(|| unexpected("codebuild", "StartBuild", None, "no build id"))?;
        tracing::info!(server = %request.server_id, build = id, commit = %request.commit, "started build");
        BuildId::new(id)
    }

    async fn build_status(&self, build: &BuildId) -> Result<BuildStatus> {
        let out = self
            .client
            .batch_get_builds()
            .ids(build.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("codebuild", "BatchGetBuilds", Some(build.to_string()), e))?;
        let Some(b) = out.builds().iter().find(|b| b.id() == Some(build.as_str())) else {
            return Err(Error::not_found(EntityKind::Build, build));
        };
        // CloudWatch's deep link when CodeBuild gives one, else the build's console page.
        let log_url = b
            .logs()
            .and_then(|l| l.deep_link())
            .map(str::to_owned)
            .or_else(|| Some(self.console_url(build)));
        Ok(match b.build_status() {
            Some(StatusType::Succeeded) => BuildStatus::Succeeded,
            Some(StatusType::InProgress) | None => BuildStatus::InProgress {
                phase: b.current_phase().map(str::to_owned),
            },
            Some(status) => {
                let (phase, why) = failed_phase(b.phases()).unzip();
                let phase = phase.or_else(|| b.current_phase().map(str::to_owned));
                let retryable = matches!(status, StatusType::Fault | StatusType::TimedOut)
                    || phase.as_deref().is_some_and(|p| INFRA_PHASES.contains(&p));
                let why = why.filter(|w| !w.is_empty());
                let reason = match (&phase, why) {
                    (Some(p), Some(w)) => format!("build {} in phase {p}: {w}", status.as_str()),
                    (Some(p), None) => format!("build {} in phase {p}", status.as_str()),
                    (None, Some(w)) => format!("build {}: {w}", status.as_str()),
                    (None, None) => format!("build {}", status.as_str()),
                };
                BuildStatus::Failed {
                    phase,
                    reason,
                    log_url,
                    retryable,
                }
            }
        })
    }

    async fn cancel_build(&self, build: &BuildId) -> Result<()> {
        match self.client.stop_build().id(build.as_str()).send().await {
            Ok(_) => {
                tracing::info!(build = %build, "stopped build");
                Ok(())
            }
            // A finished or unknown build: nothing left to stop.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(
                        aws_sdk_codebuild::operation::stop_build::StopBuildError::InvalidInputException(_)
                            | aws_sdk_codebuild::operation::stop_build::StopBuildError::ResourceNotFoundException(_)
                    )
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("codebuild", "StopBuild", Some(build.to_string()), e)),
        }
    }
}
