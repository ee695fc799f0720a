//! The quickstart: the whole flow on the local backend, with no AWS account.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Puts the example MCP server in a local git repository with a `FROM scratch` Dockerfile, then:
//! register → verify (build → store → container → MCP
//! handshake → tools recorded → heuristic metadata) → playground session → one tool call →
//! stop → sweep, printing each step with its time. A second run skips the re-verify (the state
//! is in SQLite under the data directory).
//!
//! The example server in the image is this very program (`quickstart serve-example --port N`
//! serves it), copied with the C library and loader it links against: the first run compiles
//! nothing twice. (The `mcp-example-server` package is the same server as a binary of its own,
//! which the tests build statically.)
//!
//! Environment: `TOOLSHED_DATA_DIR` (default `~/.local/share/toolshed`), `TOOLSHED_REGISTRY`
//! (`host:port` of an OCI registry; default: the engine's image store), `RUST_LOG`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use toolshed_core::domain::{ServerId, ServerRegistration, ToolCall};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::ports::McpProbe;
use toolshed_core::services::{LaunchRequest, SweepLimits, VerifyOptions, VerifyOutcome};
use toolshed_core::testing::fixtures;

const SERVER: &str = "quickstart-example";

fn step(t: Instant, what: &str) {
    println!("[{:>7.2} s] {what}", t.elapsed().as_secs_f64());
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-example") {
        return serve_example(&args[1..]).await;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rmcp::transport::worker=off".into()),
        )
        // Logs on stderr, the steps on stdout; colour only for a person at a terminal.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let start = Instant::now();
    let opts = LocalConfig::from_env()?;
    println!(
        "data dir {}; images in {}",
        opts.data_dir.display(),
        opts.registry
            .as_deref()
            .unwrap_or("the engine's image store")
    );

    let t = Instant::now();
    let binary = std::env::current_exe().context("cannot find this program's executable")?;
    let runtime = fixtures::dynamic_runtime_files(&binary)?;
    step(
        t,
        &format!(
            "example MCP server: this program and {} runtime files",
            runtime.len()
        ),
    );

    let t = Instant::now();
    let repo_dir = opts.data_dir.join("quickstart-repo");
    let repo = fixtures::write_server_repo_with_runtime(
        &repo_dir,
        &binary,
        &runtime,
        fixtures::DYNAMIC_EXAMPLE_DOCKERFILE,
    )?;
    step(t, &format!("git repository {repo}"));

    let backend = LocalBackend::connect(opts).await?;
    let ts = &backend.toolshed;
    let id = ServerId::new(SERVER)?;

    let t = Instant::now();
    match ts.get_server(&id).await {
        Ok(_) => step(t, &format!("server {id} already registered")),
        Err(e) if e.is_not_found() => {
            ts.register_server(ServerRegistration::new(id.clone(), repo))
                .await?;
            step(t, &format!("registered server {id}"));
        }
        Err(e) => return Err(e.into()),
    }

    let t = Instant::now();
    let outcome = ts
        .verify_server(&id, VerifyOptions::default())
        .await
        .context("verification failed")?;
    match &outcome {
        VerifyOutcome::UpToDate(s) => step(
            t,
            &format!(
                "re-verify skipped: commit {} unchanged and its image still stored",
                s.last_verified_commit().map_or("?", |c| c.short())
            ),
        ),
        VerifyOutcome::Verified { server, .. } => step(
            t,
            &format!(
                "verified: built, stored as {}, MCP handshake done",
                server
                    .image
                    .as_ref()
                    .map_or("?".into(), |i| i.image.pinned())
            ),
        ),
    }
    let server = outcome.server();
    let tools: Vec<&str> = server.tools.tools.iter().map(|t| t.name.as_str()).collect();
    println!("           tools: {}", tools.join(", "));
    if let Some(d) = &server.metadata.description {
        println!("           description: {}", d.value);
    }
    if let Some(l) = &server.metadata.language {
        println!("           language: {}", l.value);
    }

    // Figure: the server process's own start-up time, outside any container.
    let t = Instant::now();
    let native = native_startup(&backend, &binary).await?;
    step(
        t,
        &format!("native start-up of the server process: {native:?} (spawn → handshake)"),
    );

    let t = Instant::now();
    let session = ts.launch_session(&id, LaunchRequest::default()).await?;
    let session = loop {
        let s = ts.session_status(&session.id).await?;
        if s.endpoint.is_some() || !s.state.is_live() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let endpoint = session
        .endpoint
        .clone()
        .context("the session's container stopped before it served MCP")?;
    backend
        .probe
        .wait_ready(&endpoint, Duration::from_secs(30))
        .await?;
    step(
        t,
        &format!(
            "playground session {} ready at {endpoint} (launch → handshake)",
            session.id
        ),
    );

    let t = Instant::now();
    let mut args = serde_json::Map::new();
    args.insert("a".into(), 2.into());
    args.insert("b".into(), 40.into());
    let out = ts
        .execute_tool(&session.id, ToolCall::new("add", args)?)
        .await?;
    let text: Vec<String> = out
        .content
        .iter()
        .filter_map(|c| c.get("text").and_then(|t| t.as_str()).map(str::to_owned))
        .collect();
    step(
        t,
        &format!("tools/call add(a=2, b=40) → {}", text.join(" ")),
    );

    let t = Instant::now();
    let stopped = ts.stop_session(&session.id).await?;
    step(t, &format!("session stopped ({})", stopped.state));

    let t = Instant::now();
    let report = ts.sweep_expired_sessions(SweepLimits::default()).await;
    step(
        t,
        &format!(
            "sweep: {} expired stopped, {} orphans stopped, {} tasks seen, {} errors",
            report.expired_stopped,
            report.orphans_stopped,
            report.tasks_seen,
            report.errors.len()
        ),
    );
    println!(
        "done in {:.1} s — run it again to see the re-verify skip",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Spawns the binary on a free loopback port and times spawn → MCP handshake.
async fn native_startup(
    backend: &LocalBackend,
    binary: &std::path::Path,
) -> anyhow::Result<Duration> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let t = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .args(["serve-example", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let endpoint = toolshed_core::domain::Endpoint::new("127.0.0.1", port, "/mcp")?;
    let ready = backend
        .probe
        .wait_ready(&endpoint, Duration::from_secs(20))
        .await;
    let elapsed = t.elapsed();
    let _ = child.kill().await;
    ready?;
    Ok(elapsed)
}

/// `serve-example [--port N]`: the example MCP server on 0.0.0.0:N (default 8000) at `/mcp`, until
/// SIGTERM; what the quickstart's image runs.
async fn serve_example(args: &[String]) -> anyhow::Result<()> {
    use toolshed_core::adapters::mcp::{
        init_tracing, serve_example_server, termination_signal, ExampleServer,
    };
    init_tracing();
    let port: u16 = match args {
        [] => 8000,
        [flag, port] if flag == "--port" => port.parse().context("--port takes a number")?,
        _ => anyhow::bail!("usage: quickstart serve-example [--port N]"),
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on port {port}"))?;
    serve_example_server(ExampleServer::new(), listener, "/mcp", termination_signal()).await?;
    Ok(())
}
