//! `playground-api`: the Toolshed playground HTTP API.
//!
//! Environment:
//! - `TOOLSHED_API_ADDR`: listen address (default `127.0.0.1:8080`).
//! - `TOOLSHED_BACKEND`: `local` or `aws`; without it, `aws` when `PLAYGROUND_CLUSTER` (or
//!   `AWS_ECS_CLUSTER`) is set, `local` otherwise.
//! - local backend: `TOOLSHED_DATA_DIR`, `TOOLSHED_REGISTRY`, `TOOLSHED_STDIO_BRIDGE`,
//!   `TOOLSHED_GIT_TOKEN`, `DOCKER_HOST`.
//! - aws backend: `AWS_REGION`, `PLAYGROUND_CLUSTER`/`AWS_ECS_CLUSTER`, `AWS_SUBNETS`,
//!   `AWS_SECURITY_GROUP_ID`, `TOOLSHED_SERVERS_TABLE`, `TOOLSHED_SESSIONS_TABLE`,
//!   `TOOLSHED_ECR_REPOSITORY_URI`, `TOOLSHED_CODEBUILD_PROJECT`, `TOOLSHED_DOCS_BUCKET`,
//!   `TOOLSHED_TASK_EXECUTION_ROLE_ARN`, `TOOLSHED_LOG_GROUP` (see `toolshed_aws::AwsSettings`).
//! - `TOOLSHED_API_ALLOWED_HOSTS`: `Host` values answered (default: the listen address and
//!   `localhost`/`127.0.0.1`/`[::1]` with its port; `*` behind a proxy that checks hosts).
//! - `TOOLSHED_API_CORS_ORIGINS`: origins allowed from browsers (default none: CORS off).
//! - `TOOLSHED_API_RATE_LIMIT`: `<per second>/<burst>` per client, or `off` (default `20/60`).
//! - `TOOLSHED_RESUME_INTERVAL_SECS`: how often verifications whose process died are resumed
//!   (default 30; `0` turns the resume worker off, e.g. when another process resumes them).
//! - `TOOLSHED_STATUS_REFRESHER`: `on` (the default) renews the task observations of live
//!   sessions every half status freshness, so status polls answer from records; `off` leaves it
//!   to another process.
//! - authentication: `TOOLSHED_API_AUTH` (`required`, the default: API keys, and JWTs when
//!   `TOOLSHED_API_JWKS_URL`, `TOOLSHED_API_JWT_ISSUER` and `TOOLSHED_API_JWT_AUDIENCE` are set;
//!   `off` only with a loopback address), `TOOLSHED_API_JWT_ALGORITHMS`,
//!   `TOOLSHED_API_JWT_SCOPE_CLAIM`, `TOOLSHED_API_QUOTA_LIVE_SESSIONS`,
//!   `TOOLSHED_API_QUOTA_LAUNCHES_PER_MINUTE`, `TOOLSHED_API_QUOTA_VERIFICATIONS_PER_HOUR`.
//! - `RUST_LOG`: log filter (default `info`); logs go to stderr.

use std::io::IsTerminal;

use std::net::SocketAddr;

use anyhow::Context;
use toolshed_playground_api::backend::{compose, BackendKind, ServiceConfig};
use toolshed_playground_api::refresh::StatusRefreshWorker;
use toolshed_playground_api::resume::ResumeWorker;
use toolshed_playground_api::{router_with, ApiConfig};
use tracing::info;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour only for a person at a terminal, never in container or service logs.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = ServiceConfig::from_env()?;
    let addr = config.addr.clone();
    let auth = config.auth.clone();
    let backend = compose(config.backend).await?;
    let kind = backend.kind;
    // Kept alive for the life of the process: dropping it stops the worker.
    let _resume_worker = config
        .resume
        .map(|c| ResumeWorker::start(backend.toolshed.clone(), c));
    let _status_refresher = config
        .status_refresher
        .then(|| StatusRefreshWorker::start(&backend.toolshed));
    let app = router_with(
        backend.toolshed,
        ApiConfig {
            backend: kind.to_string(),
            // Local repositories make sense only where the API runs on the developer's machine.
            allow_file_repos: kind == BackendKind::Local,
            stdio_servers: backend.stdio_servers,
            allowed_hosts: config.allowed_hosts,
            cors_origins: config.cors_origins,
            rate_limit: config.rate_limit,
            auth: auth.clone(),
            ..ApiConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    info!(%addr, backend = %kind, auth = ?auth.mode, jwt = auth.jwt.is_some(), "serving the playground API");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    info!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, finish in-flight requests, exit. Re-verifications still
/// running keep their lease until it expires; the resume worker of the next process (or
/// `toolshed servers resume`) continues them.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    info!("shutting down");
}
