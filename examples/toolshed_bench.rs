//! Side-by-side figures of the hosting path: the sweep's repository calls per unchanged live
//! session on moto (1,000 and 10,000 sessions), launch → first tool call on the Docker engine
//! for the example server, cold and claimed from a warm pool of one, AWS calls of a cold and a warm
//! launch on moto, and verification time against a plain `docker build` of the same repository,
//! with the median of each verification phase and the build phase's work done by hand (shallow
//! fetch of the commit, `git archive`, `docker build -`), so the difference is accounted for. With
//! `TOOLSHED_TEST_PYTHON_IMAGE` set, the same cold and warm launch figures for a Python MCP SDK
//! server (streamable HTTP) built `FROM` that image, side by side with the example server's.
//! Ends with one JSON line:
//! `warm_ready_p50_ms`, `cold_ready_p50_ms`, `describe_tasks_per_s_at_1000_polls`,
//! `sweep_calls_per_unchanged_session`, `verify_over_docker_build` (the whole verification over
//! a cached `docker build` of the working tree: unlike work), `build_phase_over_fetch_archive_build`
//! (the verification's build phase over the same fetch, archive and cached build done by hand),
//! `python_cold_ready_p50_ms`, `python_warm_ready_p50_ms` (`null` when not measured).
//!
//! Environment:
//! - `TOOLSHED_TEST_MOTO_ENDPOINT` (required): `http://127.0.0.1:PORT` of a moto server.
//! - A Docker engine (the local backend's), and `git`.
//! - `BENCH_SWEEP_SIZES` (default `1000,10000`): live sessions before each sweep.
//! - `BENCH_SEED_BUDGET_SECS` (default 300): time allowed to start each sweep's tasks on moto;
//!   the sweep then runs over what was made and says so.
//! - `BENCH_LAUNCHES` (default 20): cold launches, then as many warm ones, on the Docker engine.
//! - `BENCH_VERIFIES` (default 3): forced re-verifications (and plain builds) timed.
//! - `TOOLSHED_TEST_PYTHON_IMAGE` (optional): a local image with Python and PyPI's `mcp` 2.x
//!   (`scripts/python-base-image.sh` makes it); unset, the Python figures print "not measured".
//! - `BENCH_PYTHON_LAUNCHES` (default 10): cold launches, then as many warm ones, of the Python
//!   server (each start imports the SDK, seconds on a loaded machine).
//! - `BENCH_STATUS_SECS` (default 40, past two refresh periods of the default 15 s freshness):
//!   how long 100 live sessions are polled at ~1,000 polls/s, once with the scheduled status
//!   refresher running as the playground API runs it (`describe_tasks_per_s_at_1000_polls`) and
//!   once with polls alone (stale polls share batched describes).
//! - `BENCH_STATUS_FAST_SECS` (default 10; 0 skips it): the same with the refresher at 2 s
//!   freshness (the local backend's), `describe_tasks_per_s_at_1000_polls_2s_freshness`.
//!
//! - `RUST_LOG` (optional): logs to stderr at that filter, e.g. `toolshed::build=info` for the
//!   verification builds' output.
//!
//! Run: `cargo run -p toolshed-aws --features bench --example toolshed_bench`
//! (`toolshed_bench serve-example --port N` is the example server the image runs.)

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use toolshed_aws::testing::{MotoEnv, MotoServices};
use toolshed_core::domain::{
    CommitSha, GitRef, ImageTag, PhaseTimings, PlaygroundSession, RepoUrl, RepoUrlPolicy, Server,
    ServerId, ServerRegistration, SessionCaps, SessionState, ToolCall, VerificationPhase, WarmPool,
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
        .register_server(ServerRegistration::new(id.clone(), repo))
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

/// Launch → first tool call of one server on the Docker engine, cold and claimed from a warm pool
/// of one.
struct LaunchFigures {
    cold: Vec<Duration>,
    warm: Vec<Duration>,
}

impl LaunchFigures {
    fn cold_sorted(&self) -> Vec<Duration> {
        sorted(&self.cold)
    }

    fn warm_sorted(&self) -> Vec<Duration> {
        sorted(&self.warm)
    }
}

fn sorted(v: &[Duration]) -> Vec<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Launch → first tool call figures, and verify vs `docker build`, on the Docker engine.
struct EngineFigures {
    example: LaunchFigures,
    /// `None` when no Python image was given.
    python: Option<LaunchFigures>,
    verify: Vec<Duration>,
    /// The phase timings each forced re-verification recorded.
    verify_phases: Vec<PhaseTimings>,
    docker_build: Vec<Duration>,
    docker_build_no_cache: Vec<Duration>,
    /// The build phase's own work done by hand: a shallow fetch of the commit into an empty
    /// repository and `git archive` of its tree...
    fetch_archive: Vec<Duration>,
    /// ...then `docker build -` of that archive (cache used).
    archive_build: Vec<Duration>,
}

/// The Python MCP SDK server the bench launches: `MCPServer` (FastMCP's 2.x name) over
/// streamable HTTP on port 8000 at `/mcp`, with the example server's `add` tool so both are
/// called alike.
const PYTHON_SERVER: &str = "from mcp.server.mcpserver import MCPServer\n\n\
app = MCPServer(\"bench-python\")\n\n\n\
@app.tool(description=\"Adds two integers.\")\n\
def add(a: int, b: int) -> int:\n    return a + b\n\n\n\
if __name__ == \"__main__\":\n    \
app.run(\"streamable-http\", host=\"0.0.0.0\", port=8000, streamable_http_path=\"/mcp\")\n";

/// A git repository at `dir` (one commit on `main`) with a Dockerfile `FROM image` and
/// [`PYTHON_SERVER`], as a `file://` URL.
fn python_repo(dir: &std::path::Path, image: &str) -> Result<RepoUrl> {
    std::fs::create_dir_all(dir).context("create the Python repository")?;
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {image}\nCOPY server.py /app/server.py\nCMD [\"python3\", \"/app/server.py\"]\n"
        ),
    )
    .context("write the Python Dockerfile")?;
    std::fs::write(dir.join("server.py"), PYTHON_SERVER).context("write server.py")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
            "commit",
            "-q",
            "-m",
            "Python MCP server",
        ],
    ] {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .context("run git")?;
        anyhow::ensure!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let canonical = dir
        .canonicalize()
        .context("resolve the Python repository")?;
    Ok(RepoUrl::parse(
        &format!("file://{}", canonical.display()),
        RepoUrlPolicy::ALLOW_FILE,
    )?)
}

/// Registers `id` from `repo` (streamable HTTP on the defaults) on `backend`.
async fn register(backend: &LocalBackend, id: &ServerId, repo: RepoUrl) -> Result<()> {
    backend
        .toolshed
        .register_server(ServerRegistration::new(id.clone(), repo))
        .await?;
    Ok(())
}

/// The bench's tool call, `add` {a: 2, b: 40}, which both servers serve.
fn add_call() -> Result<ToolCall> {
    let mut args = serde_json::Map::new();
    args.insert("a".into(), 2.into());
    args.insert("b".into(), 40.into());
    Ok(ToolCall::new("add", args)?)
}

/// `launches` cold launches of the verified server `id` (each timed from the launch to the first
/// tool call's answer, the server's readiness waited for within `ready`), then as many claimed
/// from a warm pool of one (the replacement is waited for, untimed, before the next launch).
async fn launch_figures(
    backend: &LocalBackend,
    id: &ServerId,
    launches: usize,
    ready: Duration,
) -> Result<LaunchFigures> {
    let ts = &backend.toolshed;
    let mut figures = LaunchFigures {
        cold: Vec::new(),
        warm: Vec::new(),
    };
    for _ in 0..launches {
        let t = Instant::now();
        let session = ts.launch_session(id, LaunchRequest::default()).await?;
        let endpoint = loop {
            let s = ts.session_status(&session.id).await?;
            if let Some(e) = s.endpoint {
                break e;
            }
            anyhow::ensure!(s.state.is_live(), "session {} ended", s.id);
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        backend.probe.wait_ready(&endpoint, ready).await?;
        ts.execute_tool(&session.id, add_call()?).await?;
        figures.cold.push(t.elapsed());
        ts.stop_session(&session.id).await?;
    }

    ts.set_warm_pool(
        id,
        WarmPool {
            size: 1,
            idle_ttl: Duration::from_secs(600),
        },
    )
    .await?;
    ts.top_up_warm_pool(id).await?;
    let replacement = ready + Duration::from_secs(30);
    for _ in 0..launches {
        let deadline = Instant::now() + replacement;
        loop {
            let warm = ts.list_warm_sessions(id).await?;
            if warm.iter().any(|s| s.state == SessionState::Running) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no warm session of {id} ready within {replacement:?}"
            );
            for s in warm {
                ts.session_status(&s.id).await?;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = Instant::now();
        let session = ts.launch_session(id, LaunchRequest::default()).await?;
        anyhow::ensure!(session.claimed_at.is_some(), "the launch did not claim");
        ts.execute_tool(&session.id, add_call()?).await?;
        figures.warm.push(t.elapsed());
        ts.stop_session(&session.id).await?;
    }
    ts.set_warm_pool(
        id,
        WarmPool {
            size: 0,
            idle_ttl: Duration::from_secs(600),
        },
    )
    .await?;
    ts.top_up_warm_pool(id).await?;
    Ok(figures)
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

/// Does by hand what the verification's build phase does with the local backend: fetch `commit`
/// of the repository at `repo_dir` (`--depth 1`, over the `file://` transport) into an empty
/// repository, `git archive` its tree, and `docker build -` that archive with the engine's cache.
/// Returns the fetch and archive time and the build time.
async fn fetch_archive_build(
    repo_dir: &std::path::Path,
    scratch: &std::path::Path,
) -> Result<(Duration, Duration)> {
    use tokio::process::Command;

    async fn git(dir: &std::path::Path, args: &[&str]) -> Result<Vec<u8>> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .await
            .context("run git")?;
        anyhow::ensure!(
            out.status.success(),
            "git {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out.stdout)
    }
    let head = git(repo_dir, &["rev-parse", "HEAD"]).await?;
    let commit = String::from_utf8_lossy(&head).trim().to_owned();
    let url = format!("file://{}", repo_dir.canonicalize()?.display());
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).context("create the scratch repository")?;
    let t = Instant::now();
    git(scratch, &["init", "-q"]).await?;
    git(
        scratch,
        &[
            "fetch",
            "-q",
            "--depth",
            "1",
            "--no-tags",
            "--",
            &url,
            &commit,
        ],
    )
    .await?;
    let tree = format!("{commit}^{{tree}}");
    let archive = git(scratch, &["archive", "--format=tar", &tree]).await?;
    let fetched = t.elapsed();
    let _ = std::fs::remove_dir_all(scratch);

    let t = Instant::now();
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", "toolshed-bench-plain:archive", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("run docker build")?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(&archive)
            .await
            .context("send the archive")?;
    }
    let out = child.wait_with_output().await.context("run docker build")?;
    let built = t.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "docker build - failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((fetched, built))
}

async fn on_engine(
    launches: usize,
    verifies: usize,
    python: Option<(String, usize)>,
) -> Result<EngineFigures> {
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
    register(&backend, &id, repo).await?;
    let t = Instant::now();
    ts.verify_server(&id, VerifyOptions::default()).await?;
    println!("  first verification: {:.0} ms", ms(t.elapsed()));

    let mut verify = Vec::new();
    let mut verify_phases = Vec::new();
    let mut docker_build_cached = Vec::new();
    let mut docker_build_no_cache = Vec::new();
    let mut fetch_archive = Vec::new();
    let mut archive_build = Vec::new();
    for _ in 0..verifies {
        let t = Instant::now();
        let outcome = ts.verify_server(&id, VerifyOptions { force: true }).await?;
        verify.push(t.elapsed());
        if let Some(timings) = &outcome.server().last_timings {
            verify_phases.push(timings.clone());
        }
        docker_build_cached.push(docker_build(&repo_dir, false).await?);
        docker_build_no_cache.push(docker_build(&repo_dir, true).await?);
        let (fetched, built) = fetch_archive_build(&repo_dir, &data_dir.join("fetched")).await?;
        fetch_archive.push(fetched);
        archive_build.push(built);
    }

    let example = launch_figures(&backend, &id, launches, Duration::from_secs(30)).await?;

    let python = match python {
        Some((image, python_launches)) => {
            let id = ServerId::new("bench-python")?;
            register(
                &backend,
                &id,
                python_repo(&data_dir.join("python"), &image)?,
            )
            .await?;
            let t = Instant::now();
            let outcome = ts.verify_server(&id, VerifyOptions::default()).await?;
            anyhow::ensure!(
                outcome.server().image.is_some(),
                "the Python server did not become launchable: {:?}",
                outcome.server().state
            );
            println!("  Python server verified: {:.0} ms", ms(t.elapsed()));
            // Python imports the SDK at each start (no `.pyc` on a read-only root): seconds.
            Some(launch_figures(&backend, &id, python_launches, Duration::from_secs(90)).await?)
        }
        None => None,
    };
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(EngineFigures {
        example,
        python,
        verify,
        verify_phases,
        docker_build: docker_build_cached,
        docker_build_no_cache,
        fetch_archive,
        archive_build,
    })
}

/// Cold and warm launch → first tool call, p50 / p95, of the example server and the Python
/// server in two columns ("not measured" without a Python image).
fn print_side_by_side(engine: &EngineFigures) {
    let cell = |v: &[Duration]| {
        if v.is_empty() {
            return "not measured".to_owned();
        }
        format!(
            "{} / {} (n={})",
            show(quantile_ms(v, 0.5)),
            show(quantile_ms(v, 0.95)),
            v.len()
        )
    };
    let python = |pick: fn(&LaunchFigures) -> Vec<Duration>| {
        engine
            .python
            .as_ref()
            .map_or_else(|| "not measured".to_owned(), |p| cell(&pick(p)))
    };
    println!(
        "{:<58} {:>24} {:>24}",
        "launch → first tool call p50 / p95", "example (Rust, static)", "Python MCP SDK (HTTP)"
    );
    println!(
        "{:<58} {:>24} {:>24}",
        "  cold",
        cell(&engine.example.cold_sorted()),
        python(LaunchFigures::cold_sorted)
    );
    println!(
        "{:<58} {:>24} {:>24}",
        "  warm (claimed from a pool of one)",
        cell(&engine.example.warm_sorted()),
        python(LaunchFigures::warm_sorted)
    );
}

/// Prints the median of each phase over the forced re-verifications (in the order phases ran)
/// and returns the build phase's median in ms.
fn print_phases(runs: &[PhaseTimings]) -> Option<f64> {
    let mut order: Vec<VerificationPhase> = Vec::new();
    for run in runs {
        for p in &run.phases {
            if !order.contains(&p.phase) {
                order.push(p.phase);
            }
        }
    }
    let median_of = |phase: VerificationPhase| {
        let v: Vec<Duration> = runs
            .iter()
            .filter_map(|r| r.millis(phase))
            .map(Duration::from_millis)
            .collect();
        quantile_ms(&sorted(&v), 0.5)
    };
    println!("forced re-verify phases, p50 (n={}):", runs.len());
    for phase in &order {
        println!(
            "{:<58} {:>14}",
            format!("  {phase}"),
            show(median_of(*phase))
        );
    }
    let totals: Vec<Duration> = runs
        .iter()
        .map(|r| Duration::from_millis(r.total_millis()))
        .collect();
    println!(
        "{:<58} {:>14}",
        "  all phases (recorded total)",
        show(quantile_ms(&sorted(&totals), 0.5))
    );
    median_of(VerificationPhase::Build)
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
    // Logs (build output included) only when asked for: the figures stay readable.
    if std::env::var_os("RUST_LOG").is_some() {
        toolshed_core::adapters::mcp::init_tracing();
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
    let python_image = std::env::var("TOOLSHED_TEST_PYTHON_IMAGE")
        .ok()
        .filter(|image| !image.trim().is_empty());
    let python_launches: usize = var("BENCH_PYTHON_LAUNCHES", 10);

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
    match &python_image {
        Some(image) => println!(
            "  Python server FROM {image}: {python_launches} cold and {python_launches} warm launches"
        ),
        None => println!("  Python server: not measured (TOOLSHED_TEST_PYTHON_IMAGE is not set)"),
    }
    let engine = on_engine(
        launches,
        verifies,
        python_image.map(|image| (image, python_launches)),
    )
    .await?;

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
    let cold = engine.example.cold_sorted();
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        quantile_ms(&v, 0.5)
    };
    let warm = engine.example.warm_sorted();
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
    print_side_by_side(&engine);
    let verify = median(&engine.verify);
    let build = median(&engine.docker_build);
    let build_nc = median(&engine.docker_build_no_cache);
    let build_phase = print_phases(&engine.verify_phases);
    let fetch_archive = median(&engine.fetch_archive);
    let archive_build = median(&engine.archive_build);
    let same_work = median(
        &engine
            .fetch_archive
            .iter()
            .zip(&engine.archive_build)
            .map(|(f, b)| *f + *b)
            .collect::<Vec<_>>(),
    );
    println!(
        "{:<58} {:>14}",
        "forced re-verify, whole (all phases above), p50",
        show(verify)
    );
    println!(
        "{:<58} {:>14}",
        "  its build phase (fetch commit, archive, cached build), p50",
        show(build_phase)
    );
    println!(
        "{:<58} {:>14}",
        "same by hand: `git fetch --depth 1` + `git archive`, p50",
        show(fetch_archive)
    );
    println!(
        "{:<58} {:>14}",
        "  then `docker build -` of the archive (cache used), p50",
        show(archive_build)
    );
    println!("{:<58} {:>14}", "  together, p50", show(same_work));
    println!(
        "{:<58} {:>14}",
        "plain `docker build` of the working tree (cache used), p50",
        show(build)
    );
    println!(
        "{:<58} {:>14}",
        "plain `docker build --no-cache` of the working tree, p50",
        show(build_nc)
    );
    let per_session = sweeps
        .iter()
        .map(|s| s.repository_calls as f64 / s.made.max(1) as f64)
        .fold(None, |acc: Option<f64>, v| {
            Some(acc.map_or(v, |a| a.max(v)))
        });
    let over = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    // Every build here uses the engine's cache. The working tree's `docker build` fetches
    // nothing and starts nothing, so against the whole verification it compares unlike work;
    // the build phase against the same fetch, archive and build by hand is like for like.
    let ratio = over(verify, build);
    let build_ratio = over(build_phase, same_work);
    let show_ratio = |r: Option<f64>| r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
    println!(
        "{:<58} {:>14}",
        "whole re-verify / working-tree `docker build` (unlike work)",
        show_ratio(ratio)
    );
    println!(
        "{:<58} {:>14}",
        "build phase / fetch + archive + `docker build -` (like work)",
        show_ratio(build_ratio)
    );
    let json = serde_json::json!({
        "warm_ready_p50_ms": quantile_ms(&warm, 0.5),
        "cold_ready_p50_ms": quantile_ms(&cold, 0.5),
        "describe_tasks_per_s_at_1000_polls": describes_per_s,
        "describe_tasks_per_s_at_1000_polls_2s_freshness": describes_per_s_fast,
        "sweep_calls_per_unchanged_session": per_session,
        "verify_over_docker_build": ratio,
        "build_phase_over_fetch_archive_build": build_ratio,
        "python_cold_ready_p50_ms": engine.python.as_ref().and_then(|p| quantile_ms(&p.cold_sorted(), 0.5)),
        "python_warm_ready_p50_ms": engine.python.as_ref().and_then(|p| quantile_ms(&p.warm_sorted(), 0.5)),
    });
    println!("{json}");
    Ok(())
}
