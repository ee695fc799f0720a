//! CodeBuild [`ImageBuilder`]: StartBuild on the configured project, status from BatchGetBuilds.
//!
//! The project's buildspec reads `IMAGE_TAG` (`build-<serverId>-<sha12>`, or
//! `build-<serverId>_<spec10>-<sha12>` for a non-default build spec), `SERVER_ID`,
//! `REPOSITORY_URI`, `MCP_TRANSPORT` (`http` | `stdio`), for stdio servers `MCP_STDIO_COMMAND`
//! (a JSON array), and the build spec: `BUILD_CONTEXT` (a folder of the repository),
//! `DOCKERFILE` (relative to it) and `BUILD_ARGS` (a JSON object); it pushes
//! `$REPOSITORY_URI:$IMAGE_TAG`. Every value travels as a plain environment variable, which the
//! buildspec only ever expands quoted: none is ever run as shell code.
//!
//! A server imported from a `pypi` or `npm` package has no repository: its generated Dockerfile
//! travels base64-encoded in `INLINE_DOCKERFILE_B64` (at most
//! [`MAX_INLINE_DOCKERFILE_B64`] characters), the package fingerprint that stands in for the
//! commit in `SOURCE_FINGERPRINT`, and the build runs without a source
//! (`sourceTypeOverride: NO_SOURCE`). CodeBuild takes no project buildspec for a build without a
//! source, so such a build carries the same buildspec as a `buildspecOverride`: the file the
//! verification Terraform module installs, compiled in ([`BUILDSPEC`]).

use async_trait::async_trait;
use aws_sdk_codebuild::types::{
    BuildPhase, EnvironmentVariable, EnvironmentVariableType, SourceType, StatusType,
};
use aws_sdk_codebuild::Client;
use toolshed_core::domain::server_json::PackageBuildSettings;
use toolshed_core::domain::{BuildId, Transport};
use toolshed_core::error::EntityKind;
use toolshed_core::ports::{BuildRequest, BuildStatus, ImageBuilder};
use toolshed_core::services::{
    ENV_NODE_BASE_IMAGE, ENV_PACKAGE_CA_BUNDLE, ENV_PIP_INDEX_URL, ENV_PYTHON_BASE_IMAGE,
};
use toolshed_core::{Error, Result};

use crate::error::{sdk_error, unexpected, AwsError};

/// The verification project's buildspec, sent as the `buildspecOverride` of package builds, which
/// have no source and so no project buildspec. Repository builds use the project's own copy,
/// installed by the Terraform module. The crate carries its own copy so that it builds from its
/// published package; a test keeps it identical to the module's file.
pub const BUILDSPEC: &str = include_str!("verification_buildspec.yml");

/// The longest `INLINE_DOCKERFILE_B64` value a package build sends (the buildspec refuses longer
/// ones too). AWS documents no bound for one StartBuild environment override, so this one is
/// ours and conservative: a generated Dockerfile is well under 1 KiB, and 8 KiB of base64 holds
/// a 6 KiB Dockerfile.
pub const MAX_INLINE_DOCKERFILE_B64: usize = 8 * 1024;

/// The base image of PyPI package builds on CodeBuild when `TOOLSHED_PYTHON_BASE_IMAGE` is unset:
/// Docker's official image through ECR Public, which CodeBuild pulls without Docker Hub's
/// anonymous rate limit.
pub const DEFAULT_PYTHON_BASE_IMAGE: &str = "public.ecr.aws/docker/library/python:3.12-slim";
/// The base image of npm package builds on CodeBuild when `TOOLSHED_NODE_BASE_IMAGE` is unset
/// (ECR Public, like [`DEFAULT_PYTHON_BASE_IMAGE`]).
pub const DEFAULT_NODE_BASE_IMAGE: &str = "public.ecr.aws/docker/library/node:22-slim";

/// The package build settings of a deployment whose builds run on CodeBuild, read through
/// `lookup`: `TOOLSHED_PYTHON_BASE_IMAGE` and `TOOLSHED_NODE_BASE_IMAGE` (default
/// [`DEFAULT_PYTHON_BASE_IMAGE`], [`DEFAULT_NODE_BASE_IMAGE`]) and `TOOLSHED_PIP_INDEX_URL`, with
/// the same checks as every backend's.
///
/// # Errors
/// [`AwsError::InvalidSetting`] naming the variable for a malformed value, and for
/// `TOOLSHED_PACKAGE_CA_BUNDLE`, which names a file of this host that a CodeBuild build cannot
/// read (a private index's CA belongs in the base image instead).
pub fn package_build_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<PackageBuildSettings, AwsError> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    if set(ENV_PACKAGE_CA_BUNDLE).is_some() {
        return Err(AwsError::InvalidSetting {
            var: ENV_PACKAGE_CA_BUNDLE,
            reason: "does not apply to CodeBuild builds, which cannot read a file of this host; use a base image that trusts the package index's CA".into(),
        });
    }
    toolshed_core::services::package_build_from(|name| {
        set(name).or_else(|| match name {
            ENV_PYTHON_BASE_IMAGE => Some(DEFAULT_PYTHON_BASE_IMAGE.to_owned()),
            ENV_NODE_BASE_IMAGE => Some(DEFAULT_NODE_BASE_IMAGE.to_owned()),
            _ => None,
        })
    })
    .map_err(|e| {
        // The core names the variable in its message; the typed error carries it too.
        let reason = e.to_string();
        let var = [ENV_PYTHON_BASE_IMAGE, ENV_NODE_BASE_IMAGE]
            .into_iter()
            .find(|v| reason.contains(v))
            .unwrap_or(ENV_PIP_INDEX_URL);
        AwsError::InvalidSetting { var, reason }
    })
}

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
/// a `pypi` or `npm` package) whose Dockerfile, base64-encoded, is longer than
/// [`MAX_INLINE_DOCKERFILE_B64`]: not retryable, the same package always gives the same
/// Dockerfile.
pub(crate) fn overrides(request: &BuildRequest) -> Result<Vec<EnvironmentVariable>> {
    let mut vars = vec![
        env("IMAGE_TAG", request.tag.as_str())?,
        env("SERVER_ID", request.server_id.as_str())?,
        env("REPOSITORY_URI", request.repository.as_str())?,
    ];
    match &request.dockerfile {
        Some(dockerfile) => {
            let encoded = aws_smithy_types::base64::encode(dockerfile.as_bytes());
            if encoded.len() > MAX_INLINE_DOCKERFILE_B64 {
                return Err(Error::invalid(
                    "build",
                    format!(
                        "the generated Dockerfile of server {} is {} bytes ({} in base64); a CodeBuild package build takes at most {MAX_INLINE_DOCKERFILE_B64} characters of base64",
                        request.server_id,
                        dockerfile.len(),
                        encoded.len()
                    ),
                ));
            }
            // No build spec: the context is the one generated file, which takes no arguments.
            vars.push(env("INLINE_DOCKERFILE_B64", encoded)?);
            vars.push(env("SOURCE_FINGERPRINT", request.commit.as_str())?);
        }
        None => {
            let args = serde_json::to_string(&request.build.args)
                .map_err(|e| unexpected("codebuild", "StartBuild", None, e.to_string()))?;
            vars.push(env("BUILD_CONTEXT", request.build.context.as_str())?);
            vars.push(env("DOCKERFILE", request.build.dockerfile.as_str())?);
            vars.push(env("BUILD_ARGS", args)?);
        }
    }
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
        let start = self
            .client
            .start_build()
            .project_name(&self.settings.project)
            .set_environment_variables_override(Some(overrides(request)?))
            .idempotency_token(token);
        let start = if request.dockerfile.is_some() {
            // A package build: nothing to clone, the buildspec writes the generated Dockerfile.
            start
                .source_type_override(SourceType::NoSource)
                .buildspec_override(BUILDSPEC)
        } else {
            start
                .source_location_override(request.repo.as_str())
                .source_version(request.commit.as_str())
        };
        let out = start.send().await.map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_s_buildspec_is_the_terraform_module_s() {
        let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../terraform/modules/verification/buildspec.yml");
        let installed = std::fs::read_to_string(&module).unwrap();
        assert!(
            installed == super::BUILDSPEC,
            "toolshed-aws/src/verification_buildspec.yml differs from {}: copy the module's file",
            module.display()
        );
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<PackageBuildSettings, AwsError> {
        package_build_from(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn package_builds_default_to_ecr_public_images() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.python_base_image, DEFAULT_PYTHON_BASE_IMAGE);
        assert_eq!(s.node_base_image, DEFAULT_NODE_BASE_IMAGE);
        assert_eq!(s.pip_index_url, None);
        assert!(!s.with_ca_bundle);

        let s = settings(&[
            (
                ENV_PYTHON_BASE_IMAGE,
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/python:3.12",
            ),
            (ENV_NODE_BASE_IMAGE, "  "),
            (ENV_PIP_INDEX_URL, "https://pypi.internal.example/simple/"),
        ])
        .unwrap();
        assert_eq!(
            s.python_base_image,
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/python:3.12"
        );
        assert_eq!(s.node_base_image, DEFAULT_NODE_BASE_IMAGE, "blank is unset");
        assert_eq!(
            s.pip_index_url.map(|u| u.to_string()).as_deref(),
            Some("https://pypi.internal.example/simple/")
        );
    }

    #[test]
    fn malformed_or_inapplicable_package_settings_name_their_variable() {
        for (var, value) in [
            (ENV_PYTHON_BASE_IMAGE, "python\nRUN id"),
            (ENV_NODE_BASE_IMAGE, "node 22"),
            (ENV_PIP_INDEX_URL, "http://pypi.example/simple/"),
            (ENV_PACKAGE_CA_BUNDLE, "/etc/ssl/certs/ca-certificates.crt"),
        ] {
            match settings(&[(var, value)]) {
                Err(AwsError::InvalidSetting { var: named, reason }) => {
                    assert_eq!(named, var, "{reason}");
                }
                other => panic!("{var}: {other:?}"),
            }
        }
    }
}
