//! The composition root: the binary's settings, read once ([`ServiceConfig::from_env`]), and the
//! adapters they select ([`compose`]).
//!
//! `TOOLSHED_BACKEND=local|aws` chooses explicitly. Without it, the AWS backend is chosen when the
//! playground cluster is configured (`PLAYGROUND_CLUSTER` or `AWS_ECS_CLUSTER`), the local backend
//! otherwise.
//!
//! - local: `toolshed_core::local::LocalConfig::from_env` (Docker engine, SQLite under
//!   `TOOLSHED_DATA_DIR`, git CLI, rmcp probe, heuristic metadata; `TOOLSHED_REGISTRY` to push to
//!   an OCI registry; `TOOLSHED_STDIO_BRIDGE`).
//! - aws: `toolshed_aws::AwsSettings::from_env` (ECS Fargate, DynamoDB, CodeBuild, ECR, S3; the
//!   default credentials chain; `AWS_ENDPOINT_URL` for an emulator), git CLI, rmcp probe, and
//!   OpenAI metadata generation when `OPENAI_API_KEY` is set (`toolshed_openai`), the heuristic
//!   generator otherwise.

use std::fmt;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use axum::http::HeaderValue;
use toolshed_aws::SecretsManagerSecret;
use toolshed_aws::{AwsAdapters, AwsSettings};
use toolshed_core::adapters::git::GitCliSource;
use toolshed_core::adapters::heuristic::HeuristicMetadataGenerator;
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::domain::PromotionPolicy;
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::ports::{Clock, MetadataGenerator, SystemClock};
use toolshed_core::services::{
    promotion_policy_from, remote_access_from, RemoteAccessSettings, Toolshed, ToolshedConfig,
};
use toolshed_openai::{ApiKey, KeyProvider, OpenAiMetadataGeneratorBuilder};

use crate::auth::{AuthMode, AuthSettings};
use crate::dto::StdioSupport;
use crate::edge::{parse_origins, AllowedHosts, RateLimit};
use crate::refresh::status_refresher_from;
use crate::resume::ResumeWorkerConfig;

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

/// The settings of the backend.
// Read once at start and moved once: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// The local backend's settings.
    Local(LocalConfig),
    /// The AWS backend's settings, and OpenAI's when `OPENAI_API_KEY` or
    /// `TOOLSHED_OPENAI_SECRET_ARN` is set.
    Aws {
        /// The AWS adapters' settings.
        settings: AwsSettings,
        /// OpenAI metadata generation (`None`: the heuristic generator).
        openai: Option<OpenAiMetadataGeneratorBuilder>,
        /// `TOOLSHED_OPENAI_SECRET_ARN`: the Secrets Manager secret holding the OpenAI API key,
        /// read when generation needs it (cached for a few minutes, so a rotation is picked
        /// up); `OPENAI_API_KEY`, when also set, wins.
        openai_secret_arn: Option<String>,
        /// The promotion policy (`TOOLSHED_PROMOTION_POLICY`; the local backend reads it into
        /// its own service settings).
        promotion_policy: PromotionPolicy,
        /// How imported remote servers are reached (`TOOLSHED_REMOTE_ALLOWED_NETWORKS`,
        /// `TOOLSHED_REMOTE_CA_BUNDLE`).
        remote_access: RemoteAccessSettings,
    },
}

impl BackendConfig {
    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendConfig::Local(_) => BackendKind::Local,
            BackendConfig::Aws { .. } => BackendKind::Aws,
        }
    }
}

/// Every setting of the `playground-api` binary.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `TOOLSHED_API_ADDR` (default `127.0.0.1:8080`).
    pub addr: String,
    /// The backend and its settings.
    pub backend: BackendConfig,
    /// The resume worker (`TOOLSHED_RESUME_INTERVAL_SECS`, default 30; `0` turns it off).
    pub resume: Option<ResumeWorkerConfig>,
    /// Whether the status refresh worker runs (`TOOLSHED_STATUS_REFRESHER`, `on` by default;
    /// see [`crate::refresh`]).
    pub status_refresher: bool,
    /// `TOOLSHED_API_ALLOWED_HOSTS`: `*` or comma-separated `host[:port]` (default: the listen
    /// address, and `localhost`, `127.0.0.1`, `[::1]` with its port).
    pub allowed_hosts: AllowedHosts,
    /// `TOOLSHED_API_CORS_ORIGINS`: comma-separated origins allowed from browsers (default none:
    /// CORS off).
    pub cors_origins: Vec<HeaderValue>,
    /// `TOOLSHED_API_RATE_LIMIT`: `<per second>/<burst>` per client, or `off` (default `20/60`).
    pub rate_limit: Option<RateLimit>,
    /// Authentication (API keys required by default; `TOOLSHED_API_AUTH=off` only on loopback),
    /// JWT verification and per-principal quotas (see [`AuthSettings::from_lookup`]).
    pub auth: AuthSettings,
}

/// The edge settings from the environment (read through `lookup`) for a listen address.
///
/// # Errors
/// A malformed setting, naming the variable.
pub fn edge_settings(
    lookup: impl Fn(&str) -> Option<String>,
    addr: &str,
) -> anyhow::Result<(AllowedHosts, Vec<HeaderValue>, Option<RateLimit>)> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let hosts = match set("TOOLSHED_API_ALLOWED_HOSTS") {
        Some(raw) => {
            AllowedHosts::parse(&raw).map_err(|e| anyhow!("TOOLSHED_API_ALLOWED_HOSTS: {e}"))?
        }
        None => AllowedHosts::for_listen_addr(addr),
    };
    let origins = match set("TOOLSHED_API_CORS_ORIGINS") {
        Some(raw) => parse_origins(&raw).map_err(|e| anyhow!("TOOLSHED_API_CORS_ORIGINS: {e}"))?,
        None => Vec::new(),
    };
    let rate = match set("TOOLSHED_API_RATE_LIMIT") {
        Some(raw) => RateLimit::parse(&raw).map_err(|e| anyhow!("TOOLSHED_API_RATE_LIMIT: {e}"))?,
        None => Some(RateLimit::default()),
    };
    Ok((hosts, origins, rate))
}

impl ServiceConfig {
    /// Reads every setting from the process environment, once.
    ///
    /// # Errors
    /// A missing or malformed setting, naming the variable.
    pub fn from_env() -> anyhow::Result<Self> {
        let lookup = |name: &str| std::env::var(name).ok();
        let backend = match select_backend(lookup)? {
            BackendKind::Local => BackendConfig::Local(LocalConfig::from_env()?),
            BackendKind::Aws => {
                let key_set = lookup("OPENAI_API_KEY").is_some_and(|k| !k.trim().is_empty());
                let openai_secret_arn = lookup("TOOLSHED_OPENAI_SECRET_ARN")
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty() && !key_set);
                if let Some(arn) = &openai_secret_arn {
                    if !arn.starts_with("arn:") {
                        bail!("TOOLSHED_OPENAI_SECRET_ARN must be a Secrets Manager ARN");
                    }
                }
                BackendConfig::Aws {
                    settings: AwsSettings::from_env().context("AWS backend settings")?,
                    openai: (key_set || openai_secret_arn.is_some())
                        .then(OpenAiMetadataGeneratorBuilder::from_env),
                    openai_secret_arn,
                    promotion_policy: promotion_policy_from(lookup)?.unwrap_or_default(),
                    remote_access: remote_access_from(lookup)?,
                }
            }
        };
        let resume = match lookup("TOOLSHED_RESUME_INTERVAL_SECS").filter(|v| !v.trim().is_empty()) {
            None => Some(ResumeWorkerConfig::default()),
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(0) => None,
                Ok(secs) => Some(ResumeWorkerConfig {
                    interval: std::time::Duration::from_secs(secs),
                    ..ResumeWorkerConfig::default()
                }),
                Err(_) => bail!(
                    "TOOLSHED_RESUME_INTERVAL_SECS must be a whole number of seconds (0 turns the resume worker off), not {raw:?}"
                ),
            },
        };
        let status_refresher = status_refresher_from(lookup)?;
        let addr = lookup("TOOLSHED_API_ADDR")
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let (allowed_hosts, cors_origins, rate_limit) = edge_settings(lookup, &addr)?;
        let auth = AuthSettings::from_lookup(lookup)?;
        check_auth_and_address(&auth, &addr)?;
        Ok(Self {
            resume,
            status_refresher,
            addr,
            backend,
            allowed_hosts,
            cors_origins,
            rate_limit,
            auth,
        })
    }
}

/// The OpenAI API key from a Secrets Manager secret.
#[derive(Debug)]
struct SecretKey(SecretsManagerSecret);

#[async_trait::async_trait]
impl KeyProvider for SecretKey {
    async fn api_key(&self) -> toolshed_core::Result<ApiKey> {
        ApiKey::new(self.0.value().await?.expose())
    }
}

/// Refuses authentication `off` with a listen address other than loopback: without
/// credentials, anyone who reaches the port could build and run code.
///
/// # Errors
/// `off` with a non-loopback (or unparsable) address.
pub fn check_auth_and_address(auth: &AuthSettings, addr: &str) -> anyhow::Result<()> {
    if auth.mode != AuthMode::Off {
        return Ok(());
    }
    let loopback = match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => addr
            .rsplit_once(':')
            .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
    };
    if !loopback {
        bail!(
            "TOOLSHED_API_AUTH=off is accepted only with a loopback TOOLSHED_API_ADDR (127.0.0.1, [::1] or localhost), not {addr}"
        );
    }
    Ok(())
}

/// The composed backend.
#[derive(Debug, Clone)]
pub struct ComposedBackend {
    /// The services.
    pub toolshed: Toolshed,
    /// Which backend.
    pub kind: BackendKind,
    /// Whether stdio servers can be verified (local backend only; the AWS build project is given
    /// the bridge by Terraform).
    pub stdio_servers: Option<StdioSupport>,
}

/// Pause before the engine's event stream is watched again after it ended or failed.
const WATCH_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Wires the adapters `config` selects.
///
/// # Errors
/// An unreachable Docker engine, an unopenable database, invalid OpenAI settings.
pub async fn compose(config: BackendConfig) -> anyhow::Result<ComposedBackend> {
    match config {
        BackendConfig::Local(local) => {
            let backend = LocalBackend::connect(local).await?;
            // Session status follows the engine's container events (a killed container ends its
            // session without a poll); detached, it lives as long as the process.
            drop(
                backend
                    .runner
                    .spawn_status_watcher(backend.toolshed.status_refresher(), WATCH_RETRY),
            );
            let bridge = &backend.stdio_bridge;
            Ok(ComposedBackend {
                stdio_servers: Some(StdioSupport {
                    available: bridge.available(),
                    detail: bridge.problem.clone(),
                }),
                toolshed: backend.toolshed,
                kind: BackendKind::Local,
            })
        }
        BackendConfig::Aws {
            settings,
            openai,
            openai_secret_arn,
            promotion_policy,
            remote_access,
        } => {
            let package_build = settings.package_build.clone();
            let adapters = AwsAdapters::from_settings(settings).await;
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let metadata: Arc<dyn MetadataGenerator> = match openai {
                Some(builder) => Arc::new(
                    match openai_secret_arn {
                        Some(arn) => {
                            builder.with_key_provider(Arc::new(SecretKey(adapters.secret(arn))))
                        }
                        None => builder,
                    }
                    .with_clock(clock.clone())
                    .build()
                    .context("OpenAI metadata generation settings")?,
                ),
                None => Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
            };
            let ports = adapters.ports(
                Arc::new(RmcpProbe::new()?.with_remote_settings(&remote_access)?),
                Arc::new(GitCliSource::new()),
                metadata,
                clock,
            );
            Ok(ComposedBackend {
                toolshed: Toolshed::new(
                    ports,
                    ToolshedConfig {
                        promotion_policy,
                        package_build,
                        ..ToolshedConfig::default()
                    },
                )?,
                kind: BackendKind::Aws,
                stdio_servers: None,
            })
        }
    }
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
    fn authentication_off_is_refused_off_loopback() {
        let off = AuthSettings {
            mode: AuthMode::Off,
            ..AuthSettings::default()
        };
        for ok in ["127.0.0.1:8080", "[::1]:80", "localhost:8080"] {
            assert!(check_auth_and_address(&off, ok).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:8080", "10.0.0.5:80", "[::]:8080", "example.com:80"] {
            let err = check_auth_and_address(&off, bad).unwrap_err().to_string();
            assert!(err.contains("TOOLSHED_API_AUTH=off"), "{err}");
        }
        assert!(check_auth_and_address(&AuthSettings::default(), "0.0.0.0:8080").is_ok());
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

    fn edge(
        vars: &[(&str, &str)],
    ) -> anyhow::Result<(AllowedHosts, Vec<HeaderValue>, Option<RateLimit>)> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        edge_settings(
            |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            "127.0.0.1:8080",
        )
    }

    #[test]
    fn edge_defaults_follow_the_listen_address_and_settings_are_checked() {
        let (hosts, origins, rate) = edge(&[]).unwrap();
        assert!(hosts.allows("localhost:8080"));
        assert!(!hosts.allows("localhost:9999"));
        assert!(!hosts.allows("rebound.example:8080"));
        assert!(origins.is_empty(), "CORS is off by default");
        assert_eq!(rate, Some(RateLimit::default()));
        let (hosts, origins, rate) = edge(&[
            ("TOOLSHED_API_ALLOWED_HOSTS", "api.example.com"),
            ("TOOLSHED_API_CORS_ORIGINS", "https://app.example.com"),
            ("TOOLSHED_API_RATE_LIMIT", "off"),
        ])
        .unwrap();
        assert!(hosts.allows("api.example.com"));
        assert!(!hosts.allows("localhost:8080"));
        assert_eq!(origins.len(), 1);
        assert_eq!(rate, None);
        for (var, bad) in [
            ("TOOLSHED_API_ALLOWED_HOSTS", "a b"),
            ("TOOLSHED_API_CORS_ORIGINS", "*"),
            ("TOOLSHED_API_RATE_LIMIT", "lots"),
        ] {
            let err = edge(&[(var, bad)]).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
        }
    }
}
