//! Unit tests of the adapters against `aws-smithy-mocks` clients: request shapes, error mapping
//! and the call budget of a full core launch.

mod codebuild;
mod dynamodb;
mod ecr_s3;
mod ecs;
mod launch;
mod secret_store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use toolshed_aws::EcsSettings;
use toolshed_core::domain::{
    ImageDigest, ImageRef, ImageTag, ServerId, SessionId, TaskLabels, TaskPurpose, TaskResources,
};
use toolshed_core::ports::TaskSpec;

/// Retries on, with a tiny backoff, as the adapters' builder configures them.
pub fn fast_retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
}

/// Keeps the last request a rule saw.
#[derive(Clone)]
pub struct Captured<T>(Arc<Mutex<Option<T>>>);

impl<T> Default for Captured<T> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(None)))
    }
}

impl<T: Clone> Captured<T> {
    pub fn put(&self, v: &T) -> bool {
        *self.0.lock().unwrap() = Some(v.clone());
        true
    }
    pub fn get(&self) -> T {
        self.0.lock().unwrap().clone().expect("a captured request")
    }
}

/// The deployment id of the mocked runner: tasks must carry it to be ours.
pub const DEPLOYMENT: &str = "staging";

pub fn ecs_settings() -> EcsSettings {
    EcsSettings {
        cluster: "playground".to_owned(),
        subnets: vec!["subnet-a".to_owned(), "subnet-b".to_owned()],
        security_groups: vec!["sg-1".to_owned()],
        no_egress_security_groups: vec!["sg-none".to_owned()],
        assign_public_ip: false,
        execution_role_arn: "arn:aws:iam::123456789012:role/exec".to_owned(),
        task_role_arn: Some("arn:aws:iam::123456789012:role/task".to_owned()),
        log_group: "/toolshed/tasks".to_owned(),
        log_region: "eu-west-1".to_owned(),
        family_prefix: "toolshed".to_owned(),
        deployment: toolshed_core::domain::DeploymentId::new(DEPLOYMENT).unwrap(),
    }
}

pub const REPO: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/toolshed/mcp-servers";

pub fn digest() -> ImageDigest {
    ImageDigest::new(format!("sha256:{}", "0123456789abcdef".repeat(4))).unwrap()
}

pub fn spec() -> TaskSpec {
    let server_id = ServerId::new("time").unwrap();
    let session = SessionId::new("s-0123456789abcdef").unwrap();
    TaskSpec {
        server_id: server_id.clone(),
        image: ImageRef::new(REPO, ImageTag::new("time-aaaaaaaaaaaa").unwrap(), digest()).unwrap(),
        container_port: 8000,
        mcp_path: "/mcp".to_owned(),
        resources: TaskResources::default(),
        labels: TaskLabels {
            server_id,
            purpose: TaskPurpose::Playground {
                session_id: session.clone(),
            },
            expires_at: chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
        },
        idempotency_token: session.to_string(),
        env: Default::default(),
    }
}

/// An HTTP client that answers every request after 20 ms, so that calls a service issues
/// concurrently really overlap in time (the mocks' own client answers at once, which would make
/// concurrent calls look sequential to the call counter).
pub fn slow_http() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

    #[derive(Debug)]
    struct Slow;
    impl HttpConnector for Slow {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            HttpConnectorFuture::new(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(aws_smithy_runtime_api::http::Response::new(
                    418.try_into().expect("status"),
                    aws_smithy_types::body::SdkBody::from("slow mock"),
                ))
            })
        }
    }
    impl HttpClient for Slow {
        fn http_connector(
            &self,
            _settings: &HttpConnectorSettings,
            _components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(Slow)
        }
    }
    SharedHttpClient::new(Slow)
}
