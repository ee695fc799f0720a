//! `bootstrap`: the Toolshed session sweep on AWS Lambda (`provided.al2023`).
//!
//! Environment (the same settings as the service; see `toolshed_aws::AwsSettings::from_env`):
//! `AWS_REGION` (set by Lambda), `PLAYGROUND_CLUSTER` (or `AWS_ECS_CLUSTER`), `AWS_SUBNETS`,
//! `AWS_SECURITY_GROUP_ID`, `TOOLSHED_SERVERS_TABLE`, `TOOLSHED_SESSIONS_TABLE`,
//! `TOOLSHED_ECR_REPOSITORY_URI`, `TOOLSHED_CODEBUILD_PROJECT`, `TOOLSHED_DOCS_BUCKET`,
//! `TOOLSHED_TASK_EXECUTION_ROLE_ARN`, `TOOLSHED_LOG_GROUP`; optional `TOOLSHED_TASK_ROLE_ARN`,
//! `TOOLSHED_ASSIGN_PUBLIC_IP`, `TOOLSHED_TASK_FAMILY_PREFIX`; `RUST_LOG` (default `info`).
//!
//! Build for `provided.al2023` (see this package's README):
//! `cargo build --release -p toolshed-cleanup-lambda --target x86_64-unknown-linux-gnu`, then
//! `zip -j cleanup-lambda.zip target/x86_64-unknown-linux-gnu/release/bootstrap`.

use lambda_runtime::{service_fn, LambdaEvent};
use toolshed_core::services::SweepLimits;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        // CloudWatch shows colour codes as text.
        .with_ansi(false)
        .init();
    // Built once per execution environment, shared by every invocation.
    let toolshed = toolshed_cleanup_lambda::sweeper_from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let toolshed = toolshed.clone();
        async move {
            toolshed_cleanup_lambda::handle_for_runtime(&toolshed, SweepLimits::default(), event)
                .await
        }
    }))
    .await
}
