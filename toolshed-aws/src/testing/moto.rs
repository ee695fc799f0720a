//! A moto account per test: clients with an `x-moto-account-id` header, and the resources the
//! adapters need (tables, cluster, VPC with DNS hostnames, subnet, security group, repository,
//! bucket, CodeBuild project), created through the SDK and, for EC2, moto's Query API.
//!
//! Set-up failures panic with what failed: this code runs inside tests and benchmarks only.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use toolshed_core::domain::SessionCaps;
use toolshed_core::services::{Toolshed, ToolshedConfig};
use toolshed_core::testing::{
    FakeMcpProbe, HeuristicMetadataGenerator, InMemorySourceRepository, ManualClock,
};

use crate::{
    AwsAdapters, AwsAdaptersBuilder, AwsSettings, CallCounter, EcrRepository, StaticHeader,
    SweepAdapters, SweepSettings,
};

/// The region every moto account is set up in.
pub const REGION: &str = "us-east-1";

/// The moto endpoint from `TOOLSHED_TEST_MOTO_ENDPOINT`, or `None` after printing why the test
/// is skipped.
///
/// # Panics
/// When the variable is unset but `TOOLSHED_REQUIRE_BACKENDS=1` (the test command sets it, so a
/// missing backend fails instead of skipping).
pub fn moto_endpoint() -> Option<String> {
    match std::env::var("TOOLSHED_TEST_MOTO_ENDPOINT") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("TOOLSHED_REQUIRE_BACKENDS").as_deref() == Ok("1") {
                panic!("TOOLSHED_TEST_MOTO_ENDPOINT is not set but TOOLSHED_REQUIRE_BACKENDS=1");
            }
            println!("skipped: TOOLSHED_TEST_MOTO_ENDPOINT is not set (no moto server)");
            None
        }
    }
}

/// A fresh 12-digit moto account id.
fn account() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000;
    format!("{n:012}")
}

/// One test's isolated moto account with everything the adapters need created in it.
#[derive(Debug)]
pub struct MotoEnv {
    /// The moto server.
    pub endpoint: String,
    /// The 12-digit account id sent as `x-moto-account-id`.
    pub account: String,
    /// Region, endpoint and static credentials.
    pub sdk: SdkConfig,
    /// The settings naming this account's resources.
    pub settings: AwsSettings,
    /// Counts the adapters' calls by operation.
    pub calls: CallCounter,
    /// The adapters on this account (retries cut short, calls counted).
    pub adapters: AwsAdapters,
    http: reqwest::Client,
}

impl MotoEnv {
    /// Creates the account's resources, or `None` when moto is not configured.
    pub async fn new() -> Option<Self> {
        let endpoint = moto_endpoint()?;
        Some(Self::create(endpoint).await)
    }

    /// Like [`Self::new`] on the test process's serialized moto (see [`super::SerializedMoto`]),
    /// for checks of conditions under concurrency.
    pub async fn serialized() -> Option<Self> {
        moto_endpoint()?;
        let endpoint = super::serialized::shared_endpoint().await?;
        Some(Self::create(endpoint).await)
    }

    /// Creates a fresh account's resources on the moto server at `endpoint`.
    ///
    /// # Panics
    /// When moto refuses a set-up call (the message names it).
    pub async fn create(endpoint: String) -> Self {
        let account = account();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .load()
            .await;
        let http = reqwest::Client::new();
        let env_tmp = Self::raw_clients(&sdk, &account);
        // EC2 through moto's Query API (aws-sdk-ec2 is too large to compile for three calls).
        let vpc = ec2(
            &http,
            &endpoint,
            &account,
            &[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")],
            "vpcId",
        )
        .await;
        ec2(
            &http,
            &endpoint,
            &account,
            &[
                ("Action", "ModifyVpcAttribute"),
                ("VpcId", &vpc),
                ("EnableDnsHostnames.Value", "true"),
            ],
            "requestId",
        )
        .await;
        let subnet = ec2(
            &http,
            &endpoint,
            &account,
            &[
                ("Action", "CreateSubnet"),
                ("VpcId", &vpc),
                ("CidrBlock", "10.0.1.0/24"),
            ],
            "subnetId",
        )
        .await;
        let sg = ec2(
            &http,
            &endpoint,
            &account,
            &[
                ("Action", "CreateSecurityGroup"),
                ("VpcId", &vpc),
                ("GroupName", "toolshed-tasks"),
                ("GroupDescription", "toolshed tasks"),
            ],
            "groupId",
        )
        .await;
        env_tmp
            .0
            .create_cluster()
            .cluster_name("playground")
            .send()
            .await
            .expect("CreateCluster");
        create_tables(&env_tmp.1).await;
        let repo = env_tmp
            .2
            .create_repository()
            .repository_name("toolshed/mcp-servers")
            .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable)
            .send()
            .await
            .expect("CreateRepository");
        let repo_uri = repo
            .repository()
            .and_then(|r| r.repository_uri())
            .expect("repository uri")
            .to_owned();
        env_tmp
            .3
            .create_bucket()
            .bucket(format!("toolshed-docs-{account}"))
            .send()
            .await
            .expect("CreateBucket");
        env_tmp
            .4
            .create_project()
            .name("toolshed-build")
            .source(
                aws_sdk_codebuild::types::ProjectSource::builder()
                    .r#type(aws_sdk_codebuild::types::SourceType::Github)
                    .location("https://github.com/example/placeholder")
                    .build()
                    .expect("source"),
            )
            .artifacts(
                aws_sdk_codebuild::types::ProjectArtifacts::builder()
                    .r#type(aws_sdk_codebuild::types::ArtifactsType::NoArtifacts)
                    .build()
                    .expect("artifacts"),
            )
            .environment(
                aws_sdk_codebuild::types::ProjectEnvironment::builder()
                    .r#type(aws_sdk_codebuild::types::EnvironmentType::LinuxContainer)
                    .image("aws/codebuild/standard:7.0")
                    .compute_type(aws_sdk_codebuild::types::ComputeType::BuildGeneral1Small)
                    .privileged_mode(true)
                    .build()
                    .expect("environment"),
            )
            .service_role(format!("arn:aws:iam::{account}:role/codebuild"))
            .send()
            .await
            .expect("CreateProject");
        let settings = AwsSettings {
            region: REGION.to_owned(),
            cluster: "playground".to_owned(),
            subnets: vec![subnet],
            security_groups: vec![sg],
            no_egress_security_groups: Vec::new(),
            servers_table: "toolshed-servers".to_owned(),
            sessions_table: "toolshed-sessions".to_owned(),
            repository: EcrRepository::parse(&repo_uri).expect("repository uri parses"),
            codebuild_project: "toolshed-build".to_owned(),
            docs_bucket: format!("toolshed-docs-{account}"),
            task_execution_role_arn: format!("arn:aws:iam::{account}:role/exec"),
            task_role_arn: Some(format!("arn:aws:iam::{account}:role/task")),
            log_group: "/toolshed/tasks".to_owned(),
            assign_public_ip: false,
            task_family_prefix: "toolshed".to_owned(),
            deployment_id: toolshed_core::domain::DeploymentId::new("toolshed")
                .expect("a valid deployment id"),
            s3_force_path_style: true,
            secrets_prefix: "toolshed".to_owned(),
            package_build: crate::codebuild::package_build_from(|_| None)
                .expect("the default package build settings are valid"),
        };
        let calls = CallCounter::new();
        let adapters = Self::adapters_with(&sdk, &account, settings.clone(), &calls);
        Self {
            endpoint,
            account,
            sdk,
            settings,
            calls,
            adapters,
            http,
        }
    }

    /// Adapters for this account with `settings`, counting calls in `calls`.
    pub fn adapters_with(
        sdk: &SdkConfig,
        account: &str,
        settings: AwsSettings,
        calls: &CallCounter,
    ) -> AwsAdapters {
        Self::builder(sdk, account, settings, calls).build()
    }

    /// The sweep-only adapters of this account, built from `settings` as the cleanup function
    /// builds them (only the sweep settings), counting calls in [`Self::calls`].
    pub fn sweep_adapters(&self, settings: SweepSettings) -> SweepAdapters {
        Self::builder(&self.sdk, &self.account, settings, &self.calls).build()
    }

    fn builder<S>(
        sdk: &SdkConfig,
        account: &str,
        settings: S,
        calls: &CallCounter,
    ) -> AwsAdaptersBuilder<S> {
        AwsAdaptersBuilder::new(sdk.clone(), settings)
            // moto answers its own bugs with 500s: fail fast instead of retrying them.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(10)),
            )
            .operation_timeout(Duration::from_secs(30))
            .interceptor(StaticHeader::new("x-moto-account-id", account).interceptor())
            .interceptor(calls.interceptor())
    }

    fn raw_clients(
        sdk: &SdkConfig,
        account: &str,
    ) -> (
        aws_sdk_ecs::Client,
        aws_sdk_dynamodb::Client,
        aws_sdk_ecr::Client,
        aws_sdk_s3::Client,
        aws_sdk_codebuild::Client,
    ) {
        let h = || StaticHeader::new("x-moto-account-id", account.to_owned()).interceptor();
        macro_rules! c {
            ($k:ident $(, $m:ident($a:expr))*) => {{
                let mut b = $k::config::Builder::from(sdk);
                b.push_interceptor(h());
                $(let b = b.$m($a);)*
                $k::Client::from_conf(b.build())
            }};
        }
        (
            c!(aws_sdk_ecs),
            c!(aws_sdk_dynamodb),
            c!(aws_sdk_ecr),
            c!(aws_sdk_s3, force_path_style(true)),
            c!(aws_sdk_codebuild),
        )
    }

    /// Raw ECS client of this account (for test set-up and assertions).
    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        Self::raw_clients(&self.sdk, &self.account).0
    }

    /// Raw DynamoDB client.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        Self::raw_clients(&self.sdk, &self.account).1
    }

    /// Raw ECR client.
    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        Self::raw_clients(&self.sdk, &self.account).2
    }

    /// Raw CodeBuild client.
    pub fn codebuild(&self) -> aws_sdk_codebuild::Client {
        Self::raw_clients(&self.sdk, &self.account).4
    }

    /// Raw Secrets Manager client.
    pub fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        let mut b = aws_sdk_secretsmanager::config::Builder::from(&self.sdk);
        b.push_interceptor(
            StaticHeader::new("x-moto-account-id", self.account.clone()).interceptor(),
        );
        aws_sdk_secretsmanager::Client::from_conf(b.build())
    }

    /// Keeps moto's ECS tasks RUNNING (global to the moto server; every test wants it).
    pub async fn manual_task_transitions(&self) {
        let body = serde_json::json!({
            "model_name": "ecs::task",
            "transition": {"progression": "manual", "times": 1_000_000}
        });
        let r = self
            .http
            .post(format!(
                "{}/moto-api/state-manager/set-transition",
                self.endpoint
            ))
            .json(&body)
            .send()
            .await
            .expect("set-transition");
        assert!(r.status().is_success(), "set-transition: {}", r.status());
    }

    /// Plays a build's push: PutImage of a hand-written manifest under `tag`; returns the digest.
    pub async fn push_image(&self, tag: &str, seed: &str) -> String {
        let config_digest = format!("sha256:{}", sha256_hex(format!("config-{seed}").as_bytes()));
        let layer_digest = format!("sha256:{}", sha256_hex(format!("layer-{seed}").as_bytes()));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100, "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1000, "digest": layer_digest}]
        })
        .to_string();
        let out = self
            .ecr()
            .put_image()
            .repository_name(&self.settings.repository.name)
            .image_manifest(manifest)
            .image_tag(tag)
            .send()
            .await
            .expect("PutImage");
        out.image()
            .and_then(|i| i.image_id())
            .and_then(|i| i.image_digest())
            .expect("digest")
            .to_owned()
    }
}

/// Lower-case hex SHA-256 of `data` (digests of hand-written manifests and layers).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

async fn ec2(
    http: &reqwest::Client,
    endpoint: &str,
    account: &str,
    params: &[(&str, &str)],
    field: &str,
) -> String {
    let mut form: Vec<(&str, &str)> = vec![("Version", "2016-11-15")];
    form.extend_from_slice(params);
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let resp = http
        .post(endpoint)
        .header("x-moto-account-id", account)
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=00"),
        )
        .body(body)
        .send()
        .await
        .expect("EC2 call");
    let status = resp.status();
    let text = resp.text().await.expect("EC2 body");
    assert!(status.is_success(), "EC2 {params:?}: {status} {text}");
    let open = format!("<{field}>");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("EC2 {params:?}: no {field} in {text}"))
        + open.len();
    let end = text[start..].find('<').expect("closing tag") + start;
    text[start..end].to_owned()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn create_tables(client: &aws_sdk_dynamodb::Client) {
    let attr = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .expect("attr")
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .expect("key")
    };
    let gsi = |name: &str, hash: &str, range: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash))
            .key_schema(key(range, KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .expect("gsi")
    };
    client
        .create_table()
        .table_name("toolshed-servers")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("server_id", ScalarAttributeType::S))
        .attribute_definitions(attr("lease_held", ScalarAttributeType::S))
        .attribute_definitions(attr("lease_expires_at", ScalarAttributeType::N))
        .key_schema(key("server_id", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("leases-by-expiry")
                .key_schema(key("lease_held", KeyType::Hash))
                .key_schema(key("lease_expires_at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .non_key_attributes("lease_holder")
                        .non_key_attributes("lease_token")
                        .non_key_attributes("lease_acquired_at")
                        .non_key_attributes("lease_run")
                        .build(),
                )
                .build()
                .expect("gsi"),
        )
        .send()
        .await
        .expect("CreateTable servers");
    client
        .create_table()
        .table_name("toolshed-sessions")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("session_id", ScalarAttributeType::S))
        .attribute_definitions(attr("server_id", ScalarAttributeType::S))
        .attribute_definitions(attr("created_at", ScalarAttributeType::N))
        .attribute_definitions(attr("live", ScalarAttributeType::S))
        .attribute_definitions(attr("expires_at", ScalarAttributeType::N))
        .attribute_definitions(attr("live_created_at", ScalarAttributeType::N))
        .attribute_definitions(attr("instances", ScalarAttributeType::S))
        .attribute_definitions(attr("instance_name", ScalarAttributeType::S))
        .key_schema(key("session_id", KeyType::Hash))
        .global_secondary_indexes(gsi("by-server", "server_id", "created_at"))
        .global_secondary_indexes(gsi("live-by-expiry", "live", "expires_at"))
        .global_secondary_indexes(gsi("live-by-server", "server_id", "live_created_at"))
        .global_secondary_indexes(gsi("instances-by-name", "instances", "instance_name"))
        .send()
        .await
        .expect("CreateTable sessions");
}

/// The core services wired to a moto account's adapters, with a manual clock at the real now
/// (moto stamps tasks with real time), a fake MCP probe and an in-memory git source.
#[derive(Debug)]
pub struct MotoServices {
    /// The services.
    pub toolshed: Toolshed,
    /// Their clock.
    pub clock: Arc<ManualClock>,
    /// Their MCP probe (scripted answers; nothing speaks MCP on moto).
    pub probe: Arc<FakeMcpProbe>,
    /// Their git source (the test sets commits).
    pub source: Arc<InMemorySourceRepository>,
}

impl MotoEnv {
    /// The services on these adapters, polling every 10 ms and with `caps` on sessions.
    ///
    /// # Panics
    /// When the configuration is refused (it is fixed here and valid).
    pub fn services(&self, caps: SessionCaps) -> MotoServices {
        let secs = chrono::Utc::now().timestamp();
        let clock = Arc::new(ManualClock::new(
            chrono::DateTime::from_timestamp(secs, 0).expect("now"),
        ));
        let probe = Arc::new(FakeMcpProbe::new());
        let source = Arc::new(InMemorySourceRepository::new());
        let ports = self.adapters.ports(
            probe.clone(),
            source.clone(),
            Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
            clock.clone(),
        );
        let config = ToolshedConfig {
            build_poll_interval: Duration::from_millis(10),
            task_poll_interval: Duration::from_millis(10),
            orphan_grace: Duration::from_secs(60),
            session_caps: caps,
            package_build: self.settings.package_build.clone(),
            ..ToolshedConfig::default()
        };
        MotoServices {
            toolshed: Toolshed::new(ports, config).expect("config"),
            clock,
            probe,
            source,
        }
    }
}

impl MotoEnv {
    /// Seeds `n` live sessions of the verified `server` faster than `launch_session` can on moto
    /// (whose transactions copy the whole table): each task is started through the runner as a
    /// launch would (`in_flight` at once), and the session records are written with
    /// `BatchWriteItem` in the repository's own item layout. Session `i` expires `ttl_of(i)`
    /// after `now`. Stops early, with what it made, once `deadline` has passed.
    ///
    /// # Panics
    /// When moto refuses a call (the message names it), or `server` has no verified image.
    pub async fn seed_live_sessions(
        &self,
        server: &toolshed_core::domain::Server,
        n: usize,
        in_flight: usize,
        now: toolshed_core::domain::Timestamp,
        ttl_of: impl Fn(usize) -> Duration,
        deadline: std::time::Instant,
    ) -> Vec<toolshed_core::domain::PlaygroundSession> {
        use futures::StreamExt;
        use toolshed_core::domain::{PlaygroundSession, SessionId, SessionState};
        use toolshed_core::ports::{TaskRunner, TaskSpec};
        let ttl_of = &ttl_of;
        let sessions: Vec<PlaygroundSession> = futures::stream::iter(0..n)
            .take_while(|_| std::future::ready(std::time::Instant::now() < deadline))
            .map(|i| async move {
                let ttl = chrono::Duration::from_std(ttl_of(i)).expect("ttl");
                let expires_at = now + ttl;
                let sid = SessionId::random();
                let spec = TaskSpec::for_session(server, &sid, expires_at).expect("task spec");
                let task = self.adapters.tasks.start(&spec).await.expect("RunTask");
                PlaygroundSession {
                    id: sid,
                    server_id: server.id.clone(),
                    image: spec.image,
                    task,
                    endpoint: None,
                    state: SessionState::Starting,
                    ready_at: None,
                    observed: None,
                    warm: false,
                    claimed_at: None,
                    stop_reason: None,
                    idempotency_key: None,
                    created_at: now,
                    expires_at,
                    stopped_at: None,
                    owner: None,
                    version: 1,
                }
            })
            .buffer_unordered(in_flight.max(1))
            .collect()
            .await;
        let db = self.dynamodb();
        for chunk in sessions.chunks(25) {
            let writes = chunk
                .iter()
                .map(|s| {
                    let item = crate::dynamodb::codec::session_item(s).expect("session item");
                    let put = aws_sdk_dynamodb::types::PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .expect("put request");
                    aws_sdk_dynamodb::types::WriteRequest::builder()
                        .put_request(put)
                        .build()
                })
                .collect::<Vec<_>>();
            db.batch_write_item()
                .request_items(&self.settings.sessions_table, writes)
                .send()
                .await
                .expect("BatchWriteItem sessions");
        }
        sessions
    }
}

impl MotoEnv {
    /// A playground task of server `server` for session `session` (a valid session id) running
    /// an image in the test repository (never pushed: ECS on moto does not pull), 0.25 vCPU /
    /// 512 MiB, expiring in 15 minutes, with `env` as its environment.
    pub fn playground_task_spec(
        &self,
        server: &str,
        session: &str,
        env: toolshed_core::domain::InstanceEnv,
    ) -> toolshed_core::ports::TaskSpec {
        use toolshed_core::domain::{
            ImageDigest, ImageRef, ImageTag, ServerId, SessionId, TaskLabels, TaskPurpose,
            TaskResources,
        };
        let server_id = ServerId::new(server).expect("a valid server id");
        let digest = ImageDigest::new(format!("sha256:{}", sha256_hex(server.as_bytes())))
            .expect("a sha256 digest");
        let session_id = SessionId::new(session).expect("a valid session id");
        toolshed_core::ports::TaskSpec {
            server_id: server_id.clone(),
            image: ImageRef::new(
                &self.settings.repository.uri,
                ImageTag::new(format!("{server}-aaaaaaaaaaaa")).expect("a valid tag"),
                digest,
            )
            .expect("a valid image reference"),
            container_port: 8000,
            mcp_path: "/mcp".to_owned(),
            resources: TaskResources {
                cpu_units: 256,
                memory_mib: 512,
                ..TaskResources::default()
            },
            labels: TaskLabels {
                server_id,
                purpose: TaskPurpose::Playground {
                    session_id: session_id.clone(),
                },
                expires_at: chrono::DateTime::from_timestamp(
                    chrono::Utc::now().timestamp() + 900,
                    0,
                )
                .expect("a time in range"),
            },
            idempotency_token: session_id.to_string(),
            env,
        }
    }
}
