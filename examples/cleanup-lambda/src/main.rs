//! `bootstrap`: the Toolshed session sweep on AWS Lambda (`provided.al2023`).
//!
//! Environment (see `toolshed_aws::SweepSettings::from_env`): `AWS_REGION` (set by Lambda),
//! `PLAYGROUND_CLUSTER` (or `AWS_ECS_CLUSTER`), `TOOLSHED_SERVERS_TABLE`,
//! `TOOLSHED_SESSIONS_TABLE`; optional `TOOLSHED_TASK_FAMILY_PREFIX`, `TOOLSHED_DEPLOYMENT_ID`
//! (must match the service's, so the sweep touches only this deployment's tasks); `RUST_LOG`
//! (default `info`), `TOOLSHED_STATUS_FRESHNESS_SECS` (default 15). Nothing else is read: the sweep
//! needs no network, image or build settings.
//!
//! Build for `provided.al2023` (see this package's README):
//! `cargo build --release -p toolshed-cleanup-lambda --target x86_64-unknown-linux-gnu`, then
//! `zip -j cleanup-lambda.zip target/x86_64-unknown-linux-gnu/release/bootstrap`.

use lambda_runtime::{service_fn, LambdaEvent};
use toolshed_core::services::{RefreshLimits, SweepLimits};

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
    let handlers = toolshed_cleanup_lambda::handlers_from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let handlers = handlers.clone();
        async move {
            toolshed_cleanup_lambda::dispatch_for_runtime(
                &handlers,
                SweepLimits::default(),
                RefreshLimits::default(),
                event,
            )
            .await
        }
    }))
    .await
}
