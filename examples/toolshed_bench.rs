//! Side-by-side figures of the hosting path: the sweep's repository calls per unchanged live
//! session on moto (1,000 and 10,000 sessions), launch → first tool call on the Docker engine
//! for the example server (cold; warm pools do not exist yet), and verification time against a
//! plain `docker build` of the same repository. Ends with one JSON line:
//! `warm_ready_p50_ms`, `cold_ready_p50_ms`, `describe_tasks_per_s_at_1000_polls`,
//! `sweep_calls_per_unchanged_session`, `verify_over_docker_build` (`null` when not measured).
//!
//! Environment:
//! - `TOOLSHED_TEST_MOTO_ENDPOINT` (required): `http://127.0.0.1:PORT` of a moto server.
//! - A Docker engine (the local backend's), and `git`.
//! - `BENCH_SWEEP_SIZES` (default `1000,10000`): live sessions before each sweep.
//! - `BENCH_SEED_BUDGET_SECS` (default 300): time allowed to start each sweep's tasks on moto;
//!   the sweep then runs over what was made and says so.
//! - `BENCH_LAUNCHES` (default 20): cold launches on the Docker engine.
//! - `BENCH_VERIFIES` (default 3): forced re-verifications (and plain builds) timed.
//!
//! Run: `cargo run -p toolshed-aws --features bench --example toolshed_bench`
//! (`toolshed_bench serve-example --port N` is the example server the image runs.)

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use toolshed_aws::testing::MotoEnv;
use toolshed_core::domain::{
    CommitSha, GitRef, ImageTag, RepoUrl, ServerId, ServerRegistration, SessionCaps, ToolCall,
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
    let moto = MotoEnv::create(endpoint.to_owned()).await;
    moto.manual_task_transitions().await;
    let svc = moto.services(SessionCaps {
        per_server: 1_000_000,
        total: 1_000_000,
    });
    let id = ServerId::new("bench")?;
    let repo = RepoUrl::new("https://github.com/example/bench")?;
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
    moto.push_image(ImageTag::for_build(&id, &commit).as_str(), "bench")
        .await;
    let server = svc
        .toolshed
        .verify_server(&id, VerifyOptions::default())
        .await?
        .server()
        .clone();
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

/// Launch → first tool call figures, and verify vs `docker build`, on the Docker engine.
struct EngineFigures {
    cold: Vec<Duration>,
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
    println!("Docker engine: {launches} cold launches, {verifies} forced verifications");
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
    let mut cold = engine.cold.clone();
    cold.sort();
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        quantile_ms(&v, 0.5)
    };
    println!(
        "{:<58} {:>14}",
        "launch → first tool call, warm p50 / p95", "n/a / n/a"
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
        "warm_ready_p50_ms": serde_json::Value::Null,
        "cold_ready_p50_ms": quantile_ms(&cold, 0.5),
        "describe_tasks_per_s_at_1000_polls": serde_json::Value::Null,
        "sweep_calls_per_unchanged_session": per_session,
        "verify_over_docker_build": ratio,
    });
    println!("{json}");
    Ok(())
}
