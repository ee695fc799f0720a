//! Settings and the builder that turns an [`SdkConfig`] plus [`AwsSettings`] into adapters.
//!
//! Every client gets retry mode *standard* and an operation timeout, whatever the given
//! `SdkConfig` says (a hand-built `SdkConfig` has retries off). Emulator endpoints come from the
//! standard `AWS_ENDPOINT_URL` (read by `aws_config`), never from a code branch here.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use toolshed_core::domain::server_json::PackageBuildSettings;
use toolshed_core::domain::DeploymentId;
use toolshed_core::ports::{Clock, McpProbe, MetadataGenerator, SourceRepository};
use toolshed_core::services::{Ports, StatusRefresher, Sweeper};

use crate::codebuild::{package_build_from, CodeBuildImageBuilder, CodeBuildSettings};
use crate::dynamodb::{DynamoServerRepository, DynamoTables};
use crate::ecr::EcrImageStore;
use crate::ecs::{EcsSettings, EcsTaskRunner, TaskSecrets};
use crate::error::AwsError;
use crate::s3::S3DocsStore;
use crate::secret_store::{SecretsManagerStore, DEFAULT_SECRETS_PREFIX};
use crate::secrets::SecretsManagerSecret;

/// Default operation timeout of every AWS call (all attempts included).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default task family prefix.
pub const DEFAULT_FAMILY_PREFIX: &str = "toolshed";

/// The typed settings of the AWS adapters. See [`AwsSettings::from_env`] for the variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// `AWS_REGION`.
    pub region: String,
    /// `PLAYGROUND_CLUSTER`, falling back to `AWS_ECS_CLUSTER`.
    pub cluster: String,
    /// `AWS_SUBNETS`, comma-separated.
    pub subnets: Vec<String>,
    /// `AWS_SECURITY_GROUP_ID`, comma-separated: the groups of tasks with internet egress.
    pub security_groups: Vec<String>,
    /// `TOOLSHED_NO_EGRESS_SECURITY_GROUP_ID`, comma-separated, optional: the groups of tasks of
    /// servers registered with egress `none` (empty: such servers cannot be launched).
    pub no_egress_security_groups: Vec<String>,
    /// `TOOLSHED_SERVERS_TABLE`.
    pub servers_table: String,
    /// `TOOLSHED_SESSIONS_TABLE`.
    pub sessions_table: String,
    /// `TOOLSHED_ECR_REPOSITORY_URI`, parsed.
    pub repository: EcrRepository,
    /// `TOOLSHED_CODEBUILD_PROJECT`.
    pub codebuild_project: String,
    /// `TOOLSHED_DOCS_BUCKET`.
    pub docs_bucket: String,
    /// `TOOLSHED_TASK_EXECUTION_ROLE_ARN` (pulls the image, writes logs).
    pub task_execution_role_arn: String,
    /// `TOOLSHED_TASK_ROLE_ARN` (the role the MCP server runs as); optional.
    pub task_role_arn: Option<String>,
    /// `TOOLSHED_LOG_GROUP`.
    pub log_group: String,
    /// `TOOLSHED_ASSIGN_PUBLIC_IP` (`true`/`false`, default `false`).
    pub assign_public_ip: bool,
    /// `TOOLSHED_TASK_FAMILY_PREFIX` (default `toolshed`).
    pub task_family_prefix: String,
    /// `TOOLSHED_DEPLOYMENT_ID` (default: the task family prefix): the owner id of the tasks
    /// this deployment starts; deployments sharing a cluster must use different ids.
    pub deployment_id: DeploymentId,
    /// `TOOLSHED_S3_FORCE_PATH_STYLE` (`true`/`false`, default `false`): path-style S3 URLs, for
    /// emulators without virtual-host buckets (moto, LocalStack).
    pub s3_force_path_style: bool,
    /// `TOOLSHED_SECRETS_PREFIX` (default `toolshed`): Secrets Manager names of kept values
    /// (`<prefix>/servers/…`, `<prefix>/instances/…`) and of per-task secrets
    /// (`<prefix>/tasks/…`); the IAM policies are scoped to it.
    pub secrets_prefix: String,
    /// How servers imported from a `pypi` or `npm` package are built on CodeBuild
    /// (`TOOLSHED_PYTHON_BASE_IMAGE`, `TOOLSHED_NODE_BASE_IMAGE`, `TOOLSHED_PIP_INDEX_URL`; see
    /// [`crate::codebuild::package_build_from`]): the composition root hands it to the services.
    pub package_build: PackageBuildSettings,
}

/// An ECR repository, from its URI `<registry>.dkr.ecr.<region>.amazonaws.com/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrRepository {
    /// The full URI (what images are pinned against).
    pub uri: String,
    /// The repository name (the path after the host).
    pub name: String,
    /// The registry (account) id, when the host is an ECR host.
    pub registry_id: Option<String>,
}

impl EcrRepository {
    /// Parses a repository URI.
    ///
    /// ```
    /// use toolshed_aws::EcrRepository;
    /// let r = EcrRepository::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/toolshed/mcp-servers").unwrap();
    /// assert_eq!(r.name, "toolshed/mcp-servers");
    /// assert_eq!(r.registry_id.as_deref(), Some("123456789012"));
    /// ```
    ///
    /// # Errors
    /// [`AwsError::InvalidSetting`] naming `TOOLSHED_ECR_REPOSITORY_URI`.
    pub fn parse(uri: &str) -> Result<Self, AwsError> {
        let invalid = |reason: &str| AwsError::InvalidSetting {
            var: "TOOLSHED_ECR_REPOSITORY_URI",
            reason: format!("{uri:?} {reason}"),
        };
        toolshed_core::domain::validate_repository(uri)
            .map_err(|e| invalid(&format!("is not a repository: {e}")))?;
        let (host, name) = uri
            .split_once('/')
            .ok_or_else(|| invalid("must be <registry host>/<repository name>"))?;
        if name.is_empty() {
            return Err(invalid("has no repository name"));
        }
        let first = host.split('.').next().unwrap_or_default();
        let registry_id = (host.contains(".dkr.ecr.")
            && first.len() == 12
            && first.chars().all(|c| c.is_ascii_digit()))
        .then(|| first.to_owned());
        Ok(Self {
            uri: uri.to_owned(),
            name: name.to_owned(),
            registry_id,
        })
    }
}

impl AwsSettings {
    /// Reads the settings from the environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `AWS_REGION` | region (required) |
    /// | `PLAYGROUND_CLUSTER` or `AWS_ECS_CLUSTER` | ECS cluster (required) |
    /// | `AWS_SUBNETS` | comma-separated subnet ids (required) |
    /// | `AWS_SECURITY_GROUP_ID` | comma-separated security group ids of tasks with internet egress (required) |
    /// | `TOOLSHED_NO_EGRESS_SECURITY_GROUP_ID` | comma-separated security group ids of tasks with egress `none` (optional) |
    /// | `TOOLSHED_SERVERS_TABLE`, `TOOLSHED_SESSIONS_TABLE` | DynamoDB tables (required) |
    /// | `TOOLSHED_ECR_REPOSITORY_URI` | full ECR repository URI (required) |
    /// | `TOOLSHED_CODEBUILD_PROJECT` | CodeBuild project (required) |
    /// | `TOOLSHED_DOCS_BUCKET` | S3 bucket of long docs (required) |
    /// | `TOOLSHED_TASK_EXECUTION_ROLE_ARN` | task execution role (required) |
    /// | `TOOLSHED_TASK_ROLE_ARN` | task role (optional) |
    /// | `TOOLSHED_LOG_GROUP` | CloudWatch Logs group (required) |
    /// | `TOOLSHED_ASSIGN_PUBLIC_IP` | `true`/`false` (default `false`) |
    /// | `TOOLSHED_TASK_FAMILY_PREFIX` | default `toolshed` |
    /// | `TOOLSHED_S3_FORCE_PATH_STYLE` | `true`/`false` (default `false`) |
    /// | `TOOLSHED_DEPLOYMENT_ID` | owner id of this deployment's tasks (default: the family prefix) |
    /// | `TOOLSHED_SECRETS_PREFIX` | Secrets Manager name prefix (default `toolshed`) |
    /// | `TOOLSHED_PYTHON_BASE_IMAGE`, `TOOLSHED_NODE_BASE_IMAGE` | base images of package builds (default: Docker's official images on ECR Public) |
    /// | `TOOLSHED_PIP_INDEX_URL` | https PyPI index of package builds (default: the public index) |
    /// | `TOOLSHED_PACKAGE_CA_BUNDLE` | refused: a CodeBuild build cannot read a file of this host |
    ///
    /// # Errors
    /// [`AwsError::MissingSetting`] / [`AwsError::InvalidSetting`] naming the variable.
    pub fn from_env() -> Result<Self, AwsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `lookup` (testable without touching
    /// the process environment).
    ///
    /// # Errors
    /// As [`Self::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AwsError> {
        let vars = Vars(lookup);
        let arn = |var: &'static str, v: String| -> Result<String, AwsError> {
            if v.starts_with("arn:") {
                Ok(v)
            } else {
                Err(AwsError::InvalidSetting {
                    var,
                    reason: format!("{v:?} is not an ARN"),
                })
            }
        };
        let owner = vars.owner()?;
        Ok(Self {
            region: owner.region,
            cluster: owner.cluster,
            subnets: vars.list("AWS_SUBNETS")?,
            security_groups: vars.list("AWS_SECURITY_GROUP_ID")?,
            no_egress_security_groups: match vars.get("TOOLSHED_NO_EGRESS_SECURITY_GROUP_ID") {
                Some(_) => vars.list("TOOLSHED_NO_EGRESS_SECURITY_GROUP_ID")?,
                None => Vec::new(),
            },
            servers_table: owner.servers_table,
            sessions_table: owner.sessions_table,
            repository: EcrRepository::parse(&vars.req("TOOLSHED_ECR_REPOSITORY_URI")?)?,
            codebuild_project: vars.req("TOOLSHED_CODEBUILD_PROJECT")?,
            docs_bucket: vars.req("TOOLSHED_DOCS_BUCKET")?,
            task_execution_role_arn: arn(
                "TOOLSHED_TASK_EXECUTION_ROLE_ARN",
                vars.req("TOOLSHED_TASK_EXECUTION_ROLE_ARN")?,
            )?,
            task_role_arn: vars
                .get("TOOLSHED_TASK_ROLE_ARN")
                .map(|v| arn("TOOLSHED_TASK_ROLE_ARN", v))
                .transpose()?,
            log_group: vars.req("TOOLSHED_LOG_GROUP")?,
            assign_public_ip: vars.flag("TOOLSHED_ASSIGN_PUBLIC_IP")?,
            task_family_prefix: owner.task_family_prefix,
            deployment_id: owner.deployment_id,
            s3_force_path_style: vars.flag("TOOLSHED_S3_FORCE_PATH_STYLE")?,
            secrets_prefix: owner.secrets_prefix,
            package_build: package_build_from(&vars.0)?,
        })
    }

    /// The part a sweep needs (see [`SweepSettings`]).
    pub fn sweep(&self) -> SweepSettings {
        SweepSettings {
            region: self.region.clone(),
            cluster: self.cluster.clone(),
            servers_table: self.servers_table.clone(),
            sessions_table: self.sessions_table.clone(),
            task_family_prefix: self.task_family_prefix.clone(),
            deployment_id: self.deployment_id.clone(),
            secrets_prefix: self.secrets_prefix.clone(),
        }
    }

    /// The ECS part.
    pub fn ecs(&self) -> EcsSettings {
        EcsSettings {
            cluster: self.cluster.clone(),
            subnets: self.subnets.clone(),
            security_groups: self.security_groups.clone(),
            no_egress_security_groups: self.no_egress_security_groups.clone(),
            assign_public_ip: self.assign_public_ip,
            execution_role_arn: self.task_execution_role_arn.clone(),
            task_role_arn: self.task_role_arn.clone(),
            log_group: self.log_group.clone(),
            log_region: self.region.clone(),
            family_prefix: self.task_family_prefix.clone(),
            deployment: self.deployment_id.clone(),
        }
    }
}

/// The settings a sweep needs, and nothing else: the sweep lists and stops this deployment's
/// tasks and ends sessions, so it reads only the region, the cluster, the two tables and the
/// owner id. A process that only sweeps (the cleanup function) needs no network, image, build,
/// docs or role settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSettings {
    /// `AWS_REGION`.
    pub region: String,
    /// `PLAYGROUND_CLUSTER`, falling back to `AWS_ECS_CLUSTER`.
    pub cluster: String,
    /// `TOOLSHED_SERVERS_TABLE`.
    pub servers_table: String,
    /// `TOOLSHED_SESSIONS_TABLE`.
    pub sessions_table: String,
    /// `TOOLSHED_TASK_FAMILY_PREFIX` (default `toolshed`).
    pub task_family_prefix: String,
    /// `TOOLSHED_DEPLOYMENT_ID` (default: the task family prefix): the sweep touches only the
    /// tasks this owner started.
    pub deployment_id: DeploymentId,
    /// `TOOLSHED_SECRETS_PREFIX` (default `toolshed`): the sweep removes the leftover per-task
    /// secrets `<prefix>/tasks/…` of this deployment.
    pub secrets_prefix: String,
}

impl SweepSettings {
    /// Reads the settings from the environment: `AWS_REGION`, `PLAYGROUND_CLUSTER` (or
    /// `AWS_ECS_CLUSTER`), `TOOLSHED_SERVERS_TABLE` and `TOOLSHED_SESSIONS_TABLE` (required);
    /// `TOOLSHED_TASK_FAMILY_PREFIX`, `TOOLSHED_DEPLOYMENT_ID` and `TOOLSHED_SECRETS_PREFIX`
    /// (optional, as for
    /// [`AwsSettings::from_env`]). Other variables are ignored.
    ///
    /// # Errors
    /// [`AwsError::MissingSetting`] / [`AwsError::InvalidSetting`] naming the variable.
    pub fn from_env() -> Result<Self, AwsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// As [`Self::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AwsError> {
        Vars(lookup).owner()
    }

    /// The ECS settings of a runner that only lists and stops tasks: no subnets, security
    /// groups or roles, so a launch through it fails with `InvalidInput` instead of reaching ECS.
    pub fn ecs(&self) -> EcsSettings {
        EcsSettings {
            cluster: self.cluster.clone(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            no_egress_security_groups: Vec::new(),
            assign_public_ip: false,
            execution_role_arn: String::new(),
            task_role_arn: None,
            log_group: String::new(),
            log_region: self.region.clone(),
            family_prefix: self.task_family_prefix.clone(),
            deployment: self.deployment_id.clone(),
        }
    }

    fn tables(&self) -> DynamoTables {
        DynamoTables {
            servers: self.servers_table.clone(),
            sessions: self.sessions_table.clone(),
        }
    }
}

/// Variables read through a lookup, trimmed, empty meaning unset.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, var: &'static str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn req(&self, var: &'static str) -> Result<String, AwsError> {
        self.get(var).ok_or(AwsError::MissingSetting { var })
    }

    fn list(&self, var: &'static str) -> Result<Vec<String>, AwsError> {
        let raw = self.req(var)?;
        let items: Vec<String> = raw.split(',').map(|s| s.trim().to_owned()).collect();
        if items
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(AwsError::InvalidSetting {
                var,
                reason: format!("{raw:?} must be a comma-separated list of ids"),
            });
        }
        Ok(items)
    }

    fn flag(&self, var: &'static str) -> Result<bool, AwsError> {
        match self.get(var).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("false") | Some("0") | Some("no") => Ok(false),
            Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(other) => Err(AwsError::InvalidSetting {
                var,
                reason: format!("{other:?} is not true or false"),
            }),
        }
    }

    /// What says where this deployment's state and tasks are, and who owns them.
    fn owner(&self) -> Result<SweepSettings, AwsError> {
        let cluster = self
            .get("PLAYGROUND_CLUSTER")
            .or_else(|| self.get("AWS_ECS_CLUSTER"))
            .ok_or(AwsError::MissingSetting {
                var: "PLAYGROUND_CLUSTER",
            })?;
        let task_family_prefix = self
            .get("TOOLSHED_TASK_FAMILY_PREFIX")
            .unwrap_or_else(|| DEFAULT_FAMILY_PREFIX.to_owned());
        let prefix_ok = task_family_prefix.len() <= 64
            && task_family_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !prefix_ok {
            return Err(AwsError::InvalidSetting {
                var: "TOOLSHED_TASK_FAMILY_PREFIX",
                reason: "must be at most 64 letters, digits, '-' or '_'".to_owned(),
            });
        }
        let secrets_prefix = self
            .get("TOOLSHED_SECRETS_PREFIX")
            .unwrap_or_else(|| DEFAULT_SECRETS_PREFIX.to_owned());
        let secrets_prefix_ok = secrets_prefix.len() <= 64
            && !secrets_prefix.starts_with('/')
            && !secrets_prefix.ends_with('/')
            && !secrets_prefix.contains("//")
            && secrets_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/'));
        if !secrets_prefix_ok {
            return Err(AwsError::InvalidSetting {
                var: "TOOLSHED_SECRETS_PREFIX",
                reason: "must be at most 64 letters, digits, '-', '_' or inner '/'".to_owned(),
            });
        }
        let deployment_id = DeploymentId::new(
            self.get("TOOLSHED_DEPLOYMENT_ID")
                .unwrap_or_else(|| task_family_prefix.clone()),
        )
        .map_err(|e| AwsError::InvalidSetting {
            var: "TOOLSHED_DEPLOYMENT_ID",
            reason: e.to_string(),
        })?;
        Ok(SweepSettings {
            region: self.req("AWS_REGION")?,
            cluster,
            servers_table: self.req("TOOLSHED_SERVERS_TABLE")?,
            sessions_table: self.req("TOOLSHED_SESSIONS_TABLE")?,
            task_family_prefix,
            deployment_id,
            secrets_prefix,
        })
    }
}

/// Every adapter of this crate, sharing one configuration.
#[derive(Debug, Clone)]
pub struct AwsAdapters {
    /// ECS Fargate `TaskRunner`.
    pub tasks: EcsTaskRunner,
    /// DynamoDB `ServerRepository`.
    pub repository: DynamoServerRepository,
    /// CodeBuild `ImageBuilder`.
    pub builder: CodeBuildImageBuilder,
    /// ECR `ImageStore`.
    pub images: EcrImageStore,
    /// S3 `DocsStore`.
    pub docs: S3DocsStore,
    /// Secrets Manager `SecretStore` (kept values of servers and instances).
    pub secret_store: SecretsManagerStore,
    /// Secrets Manager, for the service's own secrets (see [`Self::secret`]).
    secrets: aws_sdk_secretsmanager::Client,
}

impl AwsAdapters {
    /// Loads the default AWS configuration (credentials chain, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`…) and the settings from the environment.
    ///
    /// # Errors
    /// A missing or malformed setting, naming the variable.
    pub async fn from_env() -> Result<Self, AwsError> {
        Ok(Self::from_settings(AwsSettings::from_env()?).await)
    }

    /// Loads the default AWS configuration (credentials chain, `AWS_ENDPOINT_URL`…) for
    /// `settings.region` and builds the adapters over it.
    pub async fn from_settings(settings: AwsSettings) -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .load()
            .await;
        AwsAdaptersBuilder::new(sdk, settings).build()
    }

    /// A secret of the service itself (e.g. `TOOLSHED_OPENAI_SECRET_ARN`), read by ARN or name
    /// on the same configuration as the adapters.
    pub fn secret(&self, id: impl Into<String>) -> SecretsManagerSecret {
        SecretsManagerSecret::new(self.secrets.clone(), id)
    }

    /// The services' ports: these six adapters (shared clones), plus the ports no AWS service
    /// provides — the MCP probe, the git source, the metadata generator and the clock.
    pub fn ports(
        &self,
        probe: Arc<dyn McpProbe>,
        source: Arc<dyn SourceRepository>,
        metadata: Arc<dyn MetadataGenerator>,
        clock: Arc<dyn Clock>,
    ) -> Ports {
        Ports {
            repository: Arc::new(self.repository.clone()),
            images: Arc::new(self.images.clone()),
            builder: Arc::new(self.builder.clone()),
            runner: Arc::new(self.tasks.clone()),
            docs: Arc::new(self.docs.clone()),
            secrets: Arc::new(self.secret_store.clone()),
            probe,
            source,
            metadata,
            clock,
        }
    }
}

/// Builds [`AwsAdapters`] (from [`AwsSettings`]) or [`SweepAdapters`] (from
/// [`SweepSettings`]) from an `SdkConfig` and settings.
#[derive(Debug, Clone)]
pub struct AwsAdaptersBuilder<S = AwsSettings> {
    sdk: SdkConfig,
    settings: S,
    retry: RetryConfig,
    operation_timeout: Duration,
    interceptors: Vec<SharedInterceptor>,
}

/// A client of one AWS service over the effective `SdkConfig`, with every interceptor.
macro_rules! client {
    ($sdk:expr, $interceptors:expr, $krate:ident $(, $extra:ident($arg:expr))*) => {{
        let mut b = $krate::config::Builder::from($sdk);
        for i in $interceptors {
            b.push_interceptor(i.clone());
        }
        $(let b = b.$extra($arg);)*
        $krate::Client::from_conf(b.build())
    }};
}

impl<S> AwsAdaptersBuilder<S> {
    /// Starts from a loaded `SdkConfig` (credentials, region, endpoint) and settings.
    pub fn new(sdk: SdkConfig, settings: S) -> Self {
        Self {
            sdk,
            settings,
            retry: RetryConfig::standard(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            interceptors: Vec::new(),
        }
    }

    /// Overrides the retry configuration (its mode stays what you give; default: standard).
    pub fn retry_config(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Overrides the operation timeout (default [`DEFAULT_OPERATION_TIMEOUT`]).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Adds an interceptor to every client (metrics, call counting, test headers).
    pub fn interceptor(mut self, interceptor: SharedInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// The effective `SdkConfig`: the given one with retry and timeout always set.
    pub fn sdk_config(&self) -> SdkConfig {
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(self.operation_timeout)
            .build();
        self.sdk
            .to_builder()
            .retry_config(self.retry.clone())
            .timeout_config(timeouts)
            .build()
    }
}

impl AwsAdaptersBuilder<AwsSettings> {
    /// Builds every adapter.
    pub fn build(self) -> AwsAdapters {
        let sdk = self.sdk_config();
        let s = &self.settings;
        let ecs = client!(&sdk, &self.interceptors, aws_sdk_ecs);
        let dynamo = client!(&sdk, &self.interceptors, aws_sdk_dynamodb);
        let codebuild = client!(&sdk, &self.interceptors, aws_sdk_codebuild);
        let ecr = client!(&sdk, &self.interceptors, aws_sdk_ecr);
        let s3 = client!(
            &sdk,
            &self.interceptors,
            aws_sdk_s3,
            force_path_style(s.s3_force_path_style)
        );
        let secrets = client!(&sdk, &self.interceptors, aws_sdk_secretsmanager);
        AwsAdapters {
            tasks: EcsTaskRunner::new(ecs, s.ecs())
                .with_task_secrets(TaskSecrets::new(secrets.clone(), &s.secrets_prefix)),
            repository: DynamoServerRepository::new(dynamo, s.sweep().tables()),
            builder: CodeBuildImageBuilder::new(
                codebuild,
                CodeBuildSettings {
                    project: s.codebuild_project.clone(),
                    repository_uri: s.repository.uri.clone(),
                    region: s.region.clone(),
                },
            ),
            images: EcrImageStore::new(ecr, s.repository.clone()),
            docs: S3DocsStore::new(s3, s.docs_bucket.clone()),
            secret_store: SecretsManagerStore::new(secrets.clone(), &s.secrets_prefix).with_tags([
                (
                    toolshed_core::domain::LABEL_MANAGED.to_owned(),
                    "true".to_owned(),
                ),
                (
                    toolshed_core::domain::LABEL_DEPLOYMENT.to_owned(),
                    s.deployment_id.as_str().to_owned(),
                ),
            ]),
            secrets,
        }
    }
}

impl AwsAdaptersBuilder<SweepSettings> {
    /// Builds the two adapters a sweep uses.
    pub fn build(self) -> SweepAdapters {
        let sdk = self.sdk_config();
        let s = &self.settings;
        let secrets = client!(&sdk, &self.interceptors, aws_sdk_secretsmanager);
        SweepAdapters {
            tasks: EcsTaskRunner::new(client!(&sdk, &self.interceptors, aws_sdk_ecs), s.ecs())
                .with_task_secrets(TaskSecrets::new(secrets, &s.secrets_prefix)),
            repository: DynamoServerRepository::new(
                client!(&sdk, &self.interceptors, aws_sdk_dynamodb),
                s.tables(),
            ),
        }
    }
}

/// The adapters of a process that only sweeps: the DynamoDB repository and an ECS runner that
/// lists and stops this deployment's tasks and removes their leftover per-task secrets and task
/// definitions (it cannot launch: it has no network settings).
#[derive(Debug, Clone)]
pub struct SweepAdapters {
    /// DynamoDB `ServerRepository`.
    pub repository: DynamoServerRepository,
    /// ECS `TaskRunner` for listing and stopping.
    pub tasks: EcsTaskRunner,
}

impl SweepAdapters {
    /// Loads the default AWS configuration and the [`SweepSettings`] from the environment.
    ///
    /// # Errors
    /// A missing or malformed setting, naming the variable.
    pub async fn from_env() -> Result<Self, AwsError> {
        Ok(Self::from_settings(SweepSettings::from_env()?).await)
    }

    /// Loads the default AWS configuration for `settings.region` and builds the adapters.
    pub async fn from_settings(settings: SweepSettings) -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .load()
            .await;
        AwsAdaptersBuilder::new(sdk, settings).build()
    }

    /// The sweep over these adapters and `clock` (the system clock in production).
    pub fn sweeper(&self, clock: Arc<dyn Clock>) -> Sweeper {
        Sweeper::new(
            Arc::new(self.repository.clone()),
            Arc::new(self.tasks.clone()),
            clock,
        )
    }

    /// The status refresher over these adapters and `clock` (default freshness).
    pub fn status_refresher(&self, clock: Arc<dyn Clock>) -> StatusRefresher {
        StatusRefresher::new(
            Arc::new(self.repository.clone()),
            Arc::new(self.tasks.clone()),
            clock,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ECS_CLUSTER", "play"),
            ("AWS_SUBNETS", "subnet-1, subnet-2"),
            ("AWS_SECURITY_GROUP_ID", "sg-1"),
            ("TOOLSHED_SERVERS_TABLE", "servers"),
            ("TOOLSHED_SESSIONS_TABLE", "sessions"),
            (
                "TOOLSHED_ECR_REPOSITORY_URI",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/toolshed/mcp-servers",
            ),
            ("TOOLSHED_CODEBUILD_PROJECT", "build"),
            ("TOOLSHED_DOCS_BUCKET", "docs"),
            (
                "TOOLSHED_TASK_EXECUTION_ROLE_ARN",
                "arn:aws:iam::123456789012:role/exec",
            ),
            ("TOOLSHED_LOG_GROUP", "/toolshed/tasks"),
        ])
    }

    fn load(env: &HashMap<&'static str, &'static str>) -> Result<AwsSettings, AwsError> {
        AwsSettings::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn reads_every_setting_with_defaults() {
        let s = load(&full()).unwrap();
        assert_eq!(s.cluster, "play");
        assert_eq!(s.subnets, vec!["subnet-1", "subnet-2"]);
        assert_eq!(s.repository.name, "toolshed/mcp-servers");
        assert_eq!(s.repository.registry_id.as_deref(), Some("123456789012"));
        assert!(!s.assign_public_ip);
        assert_eq!(s.task_family_prefix, "toolshed");
        assert_eq!(s.task_role_arn, None);
        assert_eq!(s.secrets_prefix, "toolshed");
    }

    #[test]
    fn playground_cluster_wins_over_ecs_cluster() {
        let mut env = full();
        env.insert("PLAYGROUND_CLUSTER", "pg");
        assert_eq!(load(&env).unwrap().cluster, "pg");
    }

    #[test]
    fn missing_and_malformed_settings_name_the_variable() {
        for var in [
            "AWS_REGION",
            "AWS_SUBNETS",
            "TOOLSHED_SESSIONS_TABLE",
            "TOOLSHED_LOG_GROUP",
        ] {
            let mut env = full();
            env.remove(var);
            let err = load(&env).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
        let mut env = full();
        env.remove("AWS_ECS_CLUSTER");
        assert!(load(&env)
            .unwrap_err()
            .to_string()
            .contains("PLAYGROUND_CLUSTER"));
        for (var, bad) in [
            ("TOOLSHED_ASSIGN_PUBLIC_IP", "maybe"),
            ("AWS_SUBNETS", "a,,b"),
            ("TOOLSHED_ECR_REPOSITORY_URI", "NotARepo"),
            ("TOOLSHED_TASK_EXECUTION_ROLE_ARN", "exec-role"),
            ("TOOLSHED_TASK_FAMILY_PREFIX", "bad prefix"),
            ("TOOLSHED_SECRETS_PREFIX", "/abs"),
            ("TOOLSHED_SECRETS_PREFIX", "a b"),
        ] {
            let mut env = full();
            env.insert(var, bad);
            let err = load(&env).unwrap_err();
            assert!(err.to_string().contains(var), "{var}: {err}");
            let core: toolshed_core::Error = err.into();
            assert!(matches!(core, toolshed_core::Error::InvalidInput { .. }));
        }
    }

    #[test]
    fn a_sweep_needs_only_the_cluster_the_tables_and_the_region() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("AWS_REGION", "eu-west-1"),
            ("PLAYGROUND_CLUSTER", "play"),
            ("TOOLSHED_SERVERS_TABLE", "servers"),
            ("TOOLSHED_SESSIONS_TABLE", "sessions"),
            ("TOOLSHED_DEPLOYMENT_ID", "staging"),
        ]);
        let lookup = |k: &str| env.get(k).map(|v| (*v).to_owned());
        // The service's settings are not enough here...
        assert!(AwsSettings::from_lookup(lookup).is_err());
        // ...but a sweep's are.
        let s = SweepSettings::from_lookup(lookup).unwrap();
        assert_eq!(s.cluster, "play");
        assert_eq!(s.deployment_id.to_string(), "staging");
        assert!(
            s.ecs().subnets.is_empty(),
            "a sweep-only runner cannot launch"
        );
        // The same variables give the same sweep settings as the service's.
        let full = load(&full()).unwrap();
        let from_full = SweepSettings::from_lookup(full_env_lookup).unwrap();
        assert_eq!(from_full, full.sweep());
        for var in [
            "AWS_REGION",
            "TOOLSHED_SESSIONS_TABLE",
            "PLAYGROUND_CLUSTER",
        ] {
            let mut env = env.clone();
            env.remove(var);
            let err = SweepSettings::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    fn full_env_lookup(k: &str) -> Option<String> {
        full().get(k).map(|v| (*v).to_owned())
    }

    #[test]
    fn non_ecr_repositories_have_no_registry_id() {
        let r = EcrRepository::parse("localhost.localstack.cloud:4510/toolshed").unwrap();
        assert_eq!(r.name, "toolshed");
        assert_eq!(r.registry_id, None);
    }

    #[test]
    fn sdk_config_always_has_retries_and_timeout() {
        let sdk = SdkConfig::builder().build();
        let b = AwsAdaptersBuilder::new(sdk, load(&full()).unwrap());
        let conf = b.sdk_config();
        assert_eq!(
            conf.retry_config().map(|r| r.mode()),
            Some(aws_config::retry::RetryMode::Standard)
        );
        assert_eq!(
            conf.timeout_config().and_then(|t| t.operation_timeout()),
            Some(DEFAULT_OPERATION_TIMEOUT)
        );
    }
}
