//! Side-by-side figures of the hosting path: the sweep's repository calls per unchanged live
//! session on moto (1,000 and 10,000 sessions), launch → first tool call on the Docker engine
//! for the example server, cold and claimed from a warm pool of one, AWS calls of a cold and a warm
//! launch on moto, and verification time against a plain `docker build` of the same repository.
//! Ends with one JSON line:
//! `warm_ready_p50_ms`, `cold_ready_p50_ms`, `describe_tasks_per_s_at_1000_polls`,
//! `sweep_calls_per_unchanged_session`, `verify_over_docker_build` (`null` when not measured).
//!
//! Environment:
//! - `TOOLSHED_TEST_MOTO_ENDPOINT` (required): `http://127.0.0.1:PORT` of a moto server.
//! - A Docker engine (the local backend's), and `git`.
//! - `BENCH_SWEEP_SIZES` (default `1000,10000`): live sessions before each sweep.
//! - `BENCH_SEED_BUDGET_SECS` (default 300): time allowed to start each sweep's tasks on moto;
//!   the sweep then runs over what was made and says so.
//! - `BENCH_LAUNCHES` (default 20): cold launches, then as many warm ones, on the Docker engine.
//! - `BENCH_VERIFIES` (default 3): forced re-verifications (and plain builds) timed.
//! - `BENCH_STATUS_SECS` (default 40, past two refresh periods of the default 15 s freshness):
//!   how long 100 live sessions are polled at ~1,000 polls/s, once with the scheduled status
//!   refresher running as the playground API runs it (`describe_tasks_per_s_at_1000_polls`) and
//!   once with polls alone (stale polls share batched describes).
//! - `BENCH_STATUS_FAST_SECS` (default 10; 0 skips it): the same with the refresher at 2 s
//!   freshness (the local backend's), `describe_tasks_per_s_at_1000_polls_2s_freshness`.
//!
//! Run: `cargo run -p toolshed-aws --features bench --example toolshed_bench`
//! (`toolshed_bench serve-example --port N` is the example server the image runs.)

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use toolshed_aws::testing::{MotoEnv, MotoServices};
use toolshed_core::domain::{
    CommitSha, GitRef, ImageTag, PlaygroundSession, RepoUrl, Server, ServerId, ServerRegistration,
    SessionCaps, SessionState, ToolCall, WarmPool,
};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::ports::{Clock, McpProbe};
use toolshed_core::services::{LaunchRequest, SweepLimits, VerifyOptions};
use toolshed_core::testing::fixtures;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q`-quantile (nearest rank) of sorted durations, in ms.
fn quantile_ms(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(ms(sorted[rank - 1]))
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0} ms"))
}

/// A fresh moto account (tasks kept running), services on it with `caps`, and a server `name`
/// registered and verified there: the set-up every moto figure starts from.
async fn verified_on_moto(
    endpoint: &str,
    name: &str,
    caps: SessionCaps,
) -> Result<(MotoEnv, MotoServices, Server)> {
    let moto = MotoEnv::create(endpoint.to_owned()).await;
    moto.manual_task_transitions().await;
    let svc = moto.services(caps);
    let id = ServerId::new(name)?;
    let repo = RepoUrl::new(format!("https://github.com/example/{name}"))?;
    let commit = CommitSha::new(COMMIT)?;
    svc.source.set_commit(&repo, &GitRef::main(), &commit);
    svc.toolshed
        .register_server(ServerRegistration {
            origin: Default::default(),
            id: id.clone(),
            repo,
            git_ref: GitRef::main(),
            transport: Default::default(),
            resources: Default::default(),
            description: None,
            language: None,
            build: Default::default(),
            settings: Vec::new(),
        })
        .await?;
    moto.push_image(ImageTag::for_build(&id, &commit).as_str(), name)
        .await;
    let server = svc
        .toolshed
        .verify_server(&id, VerifyOptions::default())
        .await?
        .server()
        .clone();
    Ok((moto, svc, server))
}

/// What one sweep over `made` unchanged live sessions cost.
struct SweepFigures {
    made: usize,
    repository_calls: usize,
    all_calls: usize,
    describe_tasks: usize,
    changed: bool,
}

/// Seeds `size` live sessions on a fresh moto account, then times nothing and counts the calls of
/// one sweep over them (limits wide enough to cover every task and session).
async fn sweep_on_moto(endpoint: &str, size: usize, budget: Duration) -> Result<SweepFigures> {
    let (moto, svc, server) = verified_on_moto(
        endpoint,
        "bench",
        SessionCaps {
            per_server: 1_000_000,
            total: 1_000_000,
        },
    )
    .await?;
    let made = moto
        .seed_live_sessions(
            &server,
            size,
            32,
            svc.clock.now(),
            |_| Duration::from_secs(3600),
            Instant::now() + budget,
        )
        .await
        .len();
    // Past the orphan grace: every task is judged.
    svc.clock.advance(Duration::from_secs(120));
    let limits = SweepLimits {
        max_task_pages: made / 100 + 2,
        max_live_checked: made + 100,
        ..SweepLimits::default()
    };
    moto.calls.reset();
    let report = svc.toolshed.sweep_expired_sessions(limits).await;
    anyhow::ensure!(
        report.errors.is_empty(),
        "sweep errors: {:?}",
        report.errors
    );
    let counts = moto.calls.counts();
    println!("  sweep of {made} (asked {size}): {counts:?}");
    Ok(SweepFigures {
        made,
        repository_calls: counts
            .iter()
            .filter(|(op, _)| op.starts_with("DynamoDB."))
            .map(|(_, n)| n)
            .sum(),
        all_calls: moto.calls.total(),
        describe_tasks: moto.calls.count("ECS.DescribeTasks"),
        changed: !report.is_noop(),
    })
}

/// Live sessions polled in the status benchmark.
const POLLED_SESSIONS: usize = 100;

/// Status polls made per second in all, spread evenly over the polled sessions.
const POLLS_PER_S: u64 = 1_000;

/// One run of status polls on moto.
struct PollFigures {
    /// What was measured, for the table.
    label: String,
    freshness: Duration,
    secs: f64,
    polls: u64,
    failed: u64,
    describes: usize,
}

impl PollFigures {
    fn describes_per_s(&self) -> f64 {
        self.describes as f64 / self.secs.max(f64::EPSILON)
    }
}

/// Polls `sessions` for `run` at about [`POLLS_PER_S`] in all (one poller per session, each
/// on its own ticker; a poller that falls behind catches up, so the rate holds while moto
/// keeps up), on a service trusting observations for `freshness` and reading real time, with
/// the scheduled status refresher running (every half freshness) when `refresher` is set, as
/// the playground API runs it. Counts DescribeTasks.
async fn status_polls(
    moto: &MotoEnv,
    svc: &MotoServices,
    sessions: &[PlaygroundSession],
    freshness: Duration,
    refresher: bool,
    run: Duration,
) -> Result<PollFigures> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use toolshed_core::ports::SystemClock;
    use toolshed_core::services::{Ports, RefreshLimits, Toolshed, ToolshedConfig};

    let toolshed = Toolshed::new(
        Ports {
            clock: Arc::new(SystemClock),
            ..svc.toolshed.ports().clone()
        },
        ToolshedConfig {
            status_freshness: freshness,
            ..svc.toolshed.config().clone()
        },
    )?;
    let label = format!(
        "{} s freshness, {}",
        freshness.as_secs(),
        if refresher {
            "scheduled refresher"
        } else {
            "polls alone"
        }
    );
    moto.calls.reset();
    let background = refresher.then(|| {
        let refresher = toolshed.status_refresher();
        tokio::spawn(async move {
            refresher
                .refresh_on_schedule(RefreshLimits::default())
                .await
        })
    });
    let polls = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + run;
    let period = Duration::from_secs_f64(sessions.len() as f64 / POLLS_PER_S as f64);
    let mut pollers = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let toolshed = toolshed.clone();
        let (polls, failed) = (polls.clone(), failed.clone());
        let id = session.id.clone();
        // Spread over the period so the polls do not come in waves.
        let first = tokio::time::Instant::now() + period.mul_f64(i as f64 / sessions.len() as f64);
        pollers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(first, period);
            while Instant::now() < until {
                tick.tick().await;
                match toolshed.session_status(&id).await {
                    Ok(_) => polls.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for p in pollers {
        p.await?;
    }
    if let Some(b) = background {
        b.abort();
    }
    let secs = start.elapsed().as_secs_f64();
    let figures = PollFigures {
        label,
        freshness,
        secs,
        polls: polls.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        describes: moto.calls.count("ECS.DescribeTasks"),
    };
    println!(
        "  status, {}: {} polls ({:.0}/s, {} failed) in {secs:.1} s over {} sessions, {} DescribeTasks ({:.3}/s)",
        figures.label,
        figures.polls,
        figures.polls as f64 / secs,
        figures.failed,
        sessions.len(),
        figures.describes,
        figures.describes_per_s(),
    );
    Ok(figures)
}

/// DescribeTasks per second while [`POLLED_SESSIONS`] live sessions on moto are polled at about
/// [`POLLS_PER_S`]: at the default 15 s freshness for `run` with the scheduled refresher (the
/// headline figure) and with polls alone, then at 2 s freshness for `fast_run` (skipped when
/// zero).
async fn status_polls_on_moto(
    endpoint: &str,
    run: Duration,
    fast_run: Duration,
) -> Result<Vec<PollFigures>> {
    use toolshed_core::services::ToolshedConfig;

    let (moto, svc, server) = verified_on_moto(
        endpoint,
        "polled",
        SessionCaps {
            per_server: 1_000,
            total: 1_000,
        },
    )
    .await?;
    let sessions = moto
        .seed_live_sessions(
            &server,
            POLLED_SESSIONS,
            16,
            svc.clock.now(),
            |_| Duration::from_secs(3600),
            Instant::now() + Duration::from_secs(120),
        )
        .await;
    let freshness = ToolshedConfig::default().status_freshness;
    println!(
        "  status polls: {} sessions, ~{POLLS_PER_S} polls/s, {:.0} s per run at {} s freshness",
        sessions.len(),
        run.as_secs_f64(),
        freshness.as_secs()
    );
    let mut out = vec![
        status_polls(&moto, &svc, &sessions, freshness, true, run).await?,
        status_polls(&moto, &svc, &sessions, freshness, false, run).await?,
    ];
    if !fast_run.is_zero() {
        out.push(
            status_polls(
                &moto,
                &svc,
                &sessions,
                Duration::from_secs(2),
                true,
                fast_run,
            )
            .await?,
        );
    }
    Ok(out)
}

/// AWS calls of one launch on moto, cold and claimed from a warm pool of one.
struct LaunchCalls {
    cold: usize,
    /// Until the warm launch answered (the background replacement may have begun).
    warm_at_answer: usize,
    /// The warm launch and its background replacement, once settled.
    warm_with_replacement: usize,
}

async fn launch_calls_on_moto(endpoint: &str) -> Result<LaunchCalls> {
    let (moto, svc, server) =
        verified_on_moto(endpoint, "bench-warm", SessionCaps::default()).await?;
    let id = server.id;
    moto.calls.reset();
    let cold = svc
        .toolshed
        .launch_session(&id, LaunchRequest::default())
        .await?;
    let cold_calls = moto.calls.total();
    svc.toolshed.stop_session(&cold.id).await?;
    svc.toolshed
        .set_warm_pool(
            &id,
            WarmPool {
                size: 1,
                idle_ttl: Duration::from_secs(600),
            },
        )
        .await?;
    svc.toolshed.top_up_warm_pool(&id).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let warm = svc.toolshed.list_warm_sessions(&id).await?;
        if warm.iter().any(|s| s.state == SessionState::Running) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no warm session ready on moto");
        for s in warm {
            svc.toolshed.session_status(&s.id).await?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    moto.calls.reset();
    let warm = svc
        .toolshed
        .launch_session(&id, LaunchRequest::default())
        .await?;
    let warm_at_answer = moto.calls.total();
    anyhow::ensure!(warm.claimed_at.is_some(), "the warm launch did not claim");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warm_with_replacement = moto.calls.total();
    println!("  warm launch on moto: {:?}", moto.calls.counts());
    Ok(LaunchCalls {
        cold: cold_calls,
        warm_at_answer,
        warm_with_replacement,
    })
}

/// Launch → first tool call figures, and verify vs `docker build`, on the Docker engine.
struct EngineFigures {
    cold: Vec<Duration>,
    warm: Vec<Duration>,
    verify: Vec<Duration>,
    docker_build: Vec<Duration>,
    docker_build_no_cache: Vec<Duration>,
}

async fn docker_build(dir: &std::path::Path, no_cache: bool) -> Result<Duration> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(["build", "-q", "-t", "toolshed-bench-plain:latest"]);
    if no_cache {
        cmd.arg("--no-cache");
    }
    let t = Instant::now();
    let out = cmd.arg(dir).output().await.context("run docker build")?;
    let took = t.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "docker build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

async fn on_engine(launches: usize, verifies: usize) -> Result<EngineFigures> {
    let data_dir = std::env::temp_dir().join(format!("toolshed-bench-{}", std::process::id()));
    let config = LocalConfig::from_lookup(|name| match name {
        "TOOLSHED_DATA_DIR" => Some(data_dir.display().to_string()),
        _ => None,
    })?;
    let binary = std::env::current_exe().context("find this program")?;
    let runtime = fixtures::dynamic_runtime_files(&binary)?;
    let repo_dir = data_dir.join("repo");
    let repo = fixtures::write_server_repo_with_runtime(
        &repo_dir,
        &binary,
        &runtime,
        fixtures::DYNAMIC_EXAMPLE_DOCKERFILE,
    )?;
    let backend = LocalBackend::connect(config).await?;
    let ts = &backend.toolshed;
    let id = ServerId::new("bench-example")?;
    ts.register_server(ServerRegistration {
        origin: Default::default(),
        id: id.clone(),
        repo,
        git_ref: GitRef::main(),
        transport: Default::default(),
        resources: Default::default(),
        description: None,
        language: None,
        build: Default::default(),
        settings: Vec::new(),
    })
    .await?;
    let t = Instant::now();
    ts.verify_server(&id, VerifyOptions::default()).await?;
    println!("  first verification: {:.0} ms", ms(t.elapsed()));

    let mut figures = EngineFigures {
        cold: Vec::new(),
        warm: Vec::new(),
        verify: Vec::new(),
        docker_build: Vec::new(),
        docker_build_no_cache: Vec::new(),
    };
    for _ in 0..verifies {
        let t = Instant::now();
        ts.verify_server(&id, VerifyOptions { force: true }).await?;
        figures.verify.push(t.elapsed());
        figures
            .docker_build
            .push(docker_build(&repo_dir, false).await?);
        figures
            .docker_build_no_cache
            .push(docker_build(&repo_dir, true).await?);
    }

    for _ in 0..launches {
        let t = Instant::now();
        let session = ts.launch_session(&id, LaunchRequest::default()).await?;
        let endpoint = loop {
            let s = ts.session_status(&session.id).await?;
            if let Some(e) = s.endpoint {
                break e;
            }
            anyhow::ensure!(s.state.is_live(), "session {} ended", s.id);
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        backend
            .probe
            .wait_ready(&endpoint, Duration::from_secs(30))
            .await?;
        let mut args = serde_json::Map::new();
        args.insert("a".into(), 2.into());
        args.insert("b".into(), 40.into());
        ts.execute_tool(&session.id, ToolCall::new("add", args)?)
            .await?;
        figures.cold.push(t.elapsed());
        ts.stop_session(&session.id).await?;
    }

    // Warm: a pool of one; each launch claims the ready session (its replacement is waited for,
    // untimed, before the next launch).
    ts.set_warm_pool(
        &id,
        WarmPool {
            size: 1,
            idle_ttl: Duration::from_secs(600),
        },
    )
    .await?;
    ts.top_up_warm_pool(&id).await?;
    for _ in 0..launches {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let warm = ts.list_warm_sessions(&id).await?;
            if warm.iter().any(|s| s.state == SessionState::Running) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no warm session ready within 60 s"
            );
            for s in warm {
                ts.session_status(&s.id).await?;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = Instant::now();
        let session = ts.launch_session(&id, LaunchRequest::default()).await?;
        anyhow::ensure!(session.claimed_at.is_some(), "the launch did not claim");
        let mut args = serde_json::Map::new();
        args.insert("a".into(), 2.into());
        args.insert("b".into(), 40.into());
        ts.execute_tool(&session.id, ToolCall::new("add", args)?)
            .await?;
        figures.warm.push(t.elapsed());
        ts.stop_session(&session.id).await?;
    }
    ts.set_warm_pool(
        &id,
        WarmPool {
            size: 0,
            idle_ttl: Duration::from_secs(600),
        },
    )
    .await?;
    ts.top_up_warm_pool(&id).await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(figures)
}

/// `serve-example [--port N]`: the example MCP server the bench's image runs.
async fn serve_example(args: &[String]) -> Result<()> {
    use toolshed_core::adapters::mcp::{
        init_tracing, serve_example_server, termination_signal, ExampleServer,
    };
    init_tracing();
    let port: u16 = match args {
        [] => 8000,
        [flag, port] if flag == "--port" => port.parse().context("--port takes a number")?,
        _ => anyhow::bail!("usage: toolshed_bench serve-example [--port N]"),
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on port {port}"))?;
    serve_example_server(ExampleServer::new(), listener, "/mcp", termination_signal()).await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-example") {
        return serve_example(&args[1..]).await;
    }
    let endpoint = std::env::var("TOOLSHED_TEST_MOTO_ENDPOINT")
        .context("set TOOLSHED_TEST_MOTO_ENDPOINT to a moto server")?;
    let sizes: Vec<usize> = std::env::var("BENCH_SWEEP_SIZES")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let budget = Duration::from_secs(var("BENCH_SEED_BUDGET_SECS", 300));
    let launches: usize = var("BENCH_LAUNCHES", 20);
    let verifies: usize = var("BENCH_VERIFIES", 3);

    println!("moto: {endpoint}");
    let mut sweeps = Vec::new();
    for size in sizes {
        sweeps.push(sweep_on_moto(&endpoint, size, budget).await?);
    }
    let poll_run = Duration::from_secs(var("BENCH_STATUS_SECS", 40));
    let fast_run = Duration::from_secs(var("BENCH_STATUS_FAST_SECS", 10));
    let polled = status_polls_on_moto(&endpoint, poll_run, fast_run).await?;
    let launch_calls = launch_calls_on_moto(&endpoint).await?;
    println!("Docker engine: {launches} cold and {launches} warm launches, {verifies} forced verifications");
    let engine = on_engine(launches, verifies).await?;

    println!();
    println!("{:<58} {:>14}", "figure", "value");
    for s in &sweeps {
        println!(
            "{:<58} {:>14}",
            format!(
                "sweep of {}: repository calls per unchanged session",
                s.made
            ),
            format!(
                "{:.4} ({})",
                s.repository_calls as f64 / s.made.max(1) as f64,
                s.repository_calls
            )
        );
        println!(
            "{:<58} {:>14}",
            format!("sweep of {}: all AWS calls per unchanged session", s.made),
            format!(
                "{:.4} ({})",
                s.all_calls as f64 / s.made.max(1) as f64,
                s.all_calls
            )
        );
        println!(
            "{:<58} {:>14}",
            format!("sweep of {}: DescribeTasks", s.made),
            s.describe_tasks
        );
        if s.changed {
            println!(
                "  (that sweep changed something: the figure is not of unchanged sessions only)"
            );
        }
    }
    for p in &polled {
        println!(
            "{:<58} {:>14}",
            format!("DescribeTasks/s, {}", p.label),
            format!("{:.3} ({})", p.describes_per_s(), p.describes)
        );
        // Each poll reads its record: moto's pace may keep the rate below the target.
        println!(
            "{:<58} {:>14}",
            format!("  polls/s reached (target {POLLS_PER_S}), made / failed"),
            format!(
                "{:.0} ({} / {})",
                p.polls as f64 / p.secs.max(f64::EPSILON),
                p.polls,
                p.failed
            )
        );
    }
    // The headline: the default freshness, with the refresher the API runs.
    let describes_per_s = polled.first().map(PollFigures::describes_per_s);
    let describes_per_s_fast = polled
        .iter()
        .find(|p| p.freshness < Duration::from_secs(15))
        .map(PollFigures::describes_per_s);
    let mut cold = engine.cold.clone();
    cold.sort();
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        quantile_ms(&v, 0.5)
    };
    let mut warm = engine.warm.clone();
    warm.sort();
    println!(
        "{:<58} {:>14}",
        format!(
            "launch → first tool call, warm p50 / p95 (n={})",
            warm.len()
        ),
        format!(
            "{} / {}",
            show(quantile_ms(&warm, 0.5)),
            show(quantile_ms(&warm, 0.95))
        )
    );
    println!(
        "{:<58} {:>14}",
        "AWS calls per launch on moto: cold", launch_calls.cold
    );
    println!(
        "{:<58} {:>14}",
        "AWS calls per launch on moto: warm (answer / + replacement)",
        format!(
            "{} / {}",
            launch_calls.warm_at_answer, launch_calls.warm_with_replacement
        )
    );
    println!(
        "{:<58} {:>14}",
        format!(
            "launch → first tool call, cold p50 / p95 (n={})",
            cold.len()
        ),
        format!(
            "{} / {}",
            show(quantile_ms(&cold, 0.5)),
            show(quantile_ms(&cold, 0.95))
        )
    );
    let verify = median(&engine.verify);
    let build = median(&engine.docker_build);
    let build_nc = median(&engine.docker_build_no_cache);
    println!(
        "{:<58} {:>14}",
        "forced re-verify (build → store → start → handshake), p50",
        show(verify)
    );
    println!(
        "{:<58} {:>14}",
        "plain `docker build` of the same repository, p50",
        show(build)
    );
    println!(
        "{:<58} {:>14}",
        "plain `docker build --no-cache`, p50",
        show(build_nc)
    );
    let per_session = sweeps
        .iter()
        .map(|s| s.repository_calls as f64 / s.made.max(1) as f64)
        .fold(None, |acc: Option<f64>, v| {
            Some(acc.map_or(v, |a| a.max(v)))
        });
    let ratio = match (verify, build) {
        (Some(v), Some(b)) if b > 0.0 => Some(v / b),
        _ => None,
    };
    let json = serde_json::json!({
        "warm_ready_p50_ms": quantile_ms(&warm, 0.5),
        "cold_ready_p50_ms": quantile_ms(&cold, 0.5),
        "describe_tasks_per_s_at_1000_polls": describes_per_s,
        "describe_tasks_per_s_at_1000_polls_2s_freshness": describes_per_s_fast,
        "sweep_calls_per_unchanged_session": per_session,
        "verify_over_docker_build": ratio,
    });
    println!("{json}");
    Ok(())
}
