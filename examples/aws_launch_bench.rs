//! Launch-path benchmark of the AWS adapters against moto: calls per launch, launches per second
//! from one process with 50 in flight, and the sweep's time and DescribeTasks count for 1,000 and
//! 10,000 live sessions.
//!
//! Environment:
//! - `TOOLSHED_TEST_MOTO_ENDPOINT` (required): `http://127.0.0.1:PORT` of a moto server.
//! - `TOOLSHED_TEST_PYTHON` (recommended): the venv python with moto; the bench then runs its own
//!   moto that serializes requests, because moto's threaded server corrupts DynamoDB transactions
//!   under concurrent load (HTTP 500 "dictionary changed size during iteration").
//! - `BENCH_LAUNCHES` (default 500): launches of the throughput run.
//! - `BENCH_IN_FLIGHT` (default 50): launches in flight at once.
//! - `BENCH_SWEEP_SIZES` (default `1000,10000`): live sessions before each sweep.
//! - `BENCH_SEED_BUDGET_SECS` (default 240): time allowed to start each sweep's tasks; the sweep
//!   then runs over what was created and says so.
//!
//! Run: `cargo run -p toolshed-aws --example aws_launch_bench`

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use toolshed_aws::testing::{shared_serialized_endpoint, MotoEnv, MotoServices};
use toolshed_core::domain::{
    CommitSha, GitRef, ImageTag, RepoUrl, ServerId, ServerRegistration, SessionCaps,
};
use toolshed_core::services::{LaunchRequest, SweepLimits, VerifyOptions};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const BIG_CAPS: SessionCaps = SessionCaps {
    per_server: 1_000_000,
    total: 1_000_000,
};

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh moto account with one verified server.
async fn setup(endpoint: &str) -> Result<(MotoEnv, MotoServices, ServerId)> {
    let moto = MotoEnv::create(endpoint.to_owned()).await;
    moto.manual_task_transitions().await;
    let svc = moto.services(BIG_CAPS);
    let id = ServerId::new("bench")?;
    let repo = RepoUrl::new("https://github.com/example/bench")?;
    let commit = CommitSha::new(COMMIT)?;
    svc.source.set_commit(&repo, &GitRef::main(), &commit);
    svc.toolshed
        .register_server(ServerRegistration::new(id.clone(), repo))
        .await?;
    moto.push_image(ImageTag::for_build(&id, &commit).as_str(), "bench")
        .await;
    svc.toolshed
        .verify_server(&id, VerifyOptions::default())
        .await?;
    Ok((moto, svc, id))
}

/// Launches `n` sessions with `in_flight` at once (stopping at `deadline`); returns how many
/// succeeded and the elapsed time.
async fn launch_many(
    svc: &MotoServices,
    id: &ServerId,
    n: usize,
    in_flight: usize,
    ttl_of: impl Fn(usize) -> u64,
    deadline: Instant,
) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let mut done = 0;
    let mut launches = futures::stream::iter(0..n)
        .take_while(|_| futures::future::ready(Instant::now() < deadline))
        .map(|i| {
            let req = LaunchRequest {
                ttl: Some(Duration::from_secs(ttl_of(i))),
                idempotency_key: None,
                settings: Default::default(),
            };
            async move { svc.toolshed.launch_session(id, req).await }
        })
        .buffer_unordered(in_flight);
    while let Some(r) = launches.next().await {
        r.context("launch")?;
        done += 1;
    }
    Ok((done, started.elapsed()))
}

/// Seeds `n` live sessions faster than `launch_session` can on moto (whose transactions copy the
/// whole table): each task is started through the runner as a launch would, and the session
/// records are written with BatchWriteItem in the repository's own item layout.
async fn seed(
    moto: &MotoEnv,
    svc: &MotoServices,
    id: &ServerId,
    n: usize,
    in_flight: usize,
    deadline: Instant,
) -> Result<(usize, Duration)> {
    use toolshed_core::domain::{PlaygroundSession, SessionId, SessionState};
    use toolshed_core::ports::{Clock, ServerRepository, TaskRunner, TaskSpec};
    let started = Instant::now();
    let server = moto.adapters.repository.get_server(id).await?;
    let now = svc.clock.now();
    let sessions: Vec<Result<PlaygroundSession>> = futures::stream::iter(0..n)
        .take_while(|_| futures::future::ready(Instant::now() < deadline))
        .map(|i| {
            let server = &server;
            async move {
                // One session in ten expires before the sweep; the rest stay live.
                let ttl = if i % 10 == 0 { 60 } else { 3600 };
                let expires_at = now + chrono::Duration::seconds(ttl);
                let sid = SessionId::random();
                let spec = TaskSpec::for_session(server, &sid, expires_at)?;
                let task = moto.adapters.tasks.start(&spec).await?;
                Ok(PlaygroundSession {
                    id: sid,
                    server_id: id.clone(),
                    image: spec.image,
                    task,
                    endpoint: None,
                    state: SessionState::Starting,
                    stop_reason: None,
                    idempotency_key: None,
                    created_at: now,
                    expires_at,
                    stopped_at: None,
                    owner: None,
                    ready_at: None,
                    observed: None,
                    warm: false,
                    claimed_at: None,
                    version: 1,
                })
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let sessions = sessions.into_iter().collect::<Result<Vec<_>>>()?;
    let db = moto.dynamodb();
    for chunk in sessions.chunks(25) {
        let mut writes = Vec::new();
        for s in chunk {
            let item = toolshed_aws::dynamodb::codec::session_item(s)?;
            let put = aws_sdk_dynamodb::types::PutRequest::builder()
                .set_item(Some(item))
                .build()?;
            writes.push(
                aws_sdk_dynamodb::types::WriteRequest::builder()
                    .put_request(put)
                    .build(),
            );
        }
        db.batch_write_item()
            .request_items(&moto.settings.sessions_table, writes)
            .send()
            .await?;
    }
    Ok((sessions.len(), started.elapsed()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let shared = std::env::var("TOOLSHED_TEST_MOTO_ENDPOINT")
        .context("set TOOLSHED_TEST_MOTO_ENDPOINT to a moto server")?;
    let endpoint = match std::env::var("TOOLSHED_TEST_PYTHON") {
        Ok(_) => shared_serialized_endpoint()
            .await
            .context("start a serialized moto")?,
        Err(_) => shared,
    };
    println!("moto: {endpoint}");
    let launches: usize = var("BENCH_LAUNCHES", 500);
    let in_flight: usize = var("BENCH_IN_FLIGHT", 50);
    let budget = Duration::from_secs(var("BENCH_SEED_BUDGET_SECS", 240));
    let sizes: Vec<usize> = std::env::var("BENCH_SWEEP_SIZES")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();

    let (moto, svc, id) = setup(&endpoint).await?;
    moto.calls.reset();
    svc.toolshed
        .launch_session(&id, LaunchRequest::default())
        .await?;
    println!(
        "calls per launch: {} total, {} sequential round trips, {:?}",
        moto.calls.total(),
        moto.calls.sequential_round_trips(),
        moto.calls.counts()
    );

    let (n, took) = launch_many(
        &svc,
        &id,
        launches,
        in_flight,
        |_| 900,
        Instant::now() + budget,
    )
    .await?;
    println!(
        "launches: {n} with {in_flight} in flight in {:.2} s = {:.1} launches/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    for size in sizes {
        let (moto, svc, id) = setup(&endpoint).await?;
        let (made, seed_time) =
            seed(&moto, &svc, &id, size, in_flight, Instant::now() + budget).await?;
        svc.clock.advance(Duration::from_secs(120));
        moto.calls.reset();
        let started = Instant::now();
        let report = svc
            .toolshed
            .sweep_expired_sessions(SweepLimits::default())
            .await;
        let took = started.elapsed();
        println!(
            "sweep of {made} live sessions (asked {size}; seeded in {:.1} s): {:.2} s, {} DescribeTasks, {} ListTasks, {} StopTask, {} calls in all; expired stopped {}, exited marked {}, tasks seen {}, truncated {}, errors {}",
            seed_time.as_secs_f64(),
            took.as_secs_f64(),
            moto.calls.count("ECS.DescribeTasks"),
            moto.calls.count("ECS.ListTasks"),
            moto.calls.count("ECS.StopTask"),
            moto.calls.total(),
            report.expired_stopped,
            report.exited_marked,
            report.tasks_seen,
            report.tasks_truncated,
            report.errors.len()
        );
    }
    Ok(())
}
