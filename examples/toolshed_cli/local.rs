//! The local backend: Docker engine (builder, runner, engine store or a registry), SQLite under
//! the data directory, git, the rmcp probe and the heuristic metadata generator.
//!
//! Environment:
//! - `TOOLSHED_DATA_DIR`: where the SQLite file lives (default `~/.local/share/toolshed`).
//! - `TOOLSHED_REGISTRY`: `host:port` of an OCI registry to push to (default: none, the
//!   engine's own image store).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use toolshed_core::adapters::docker::{
    self, DockerImageBuilder, DockerTaskRunner, EngineImageStore, RegistryImageStore, RunnerConfig,
};
use toolshed_core::adapters::files::FileDocsStore;
use toolshed_core::adapters::git::GitCliSource;
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::adapters::sqlite::{default_data_dir, SqliteServerRepository, DB_FILE};
use toolshed_core::domain::{RepoUrl, RepoUrlPolicy};
use toolshed_core::ports::{Clock, ImageStore, SystemClock};
use toolshed_core::services::{HeuristicMetadataGenerator, Ports, Toolshed, ToolshedConfig};

/// Repository name of locally built images in the engine store.
pub const ENGINE_REPOSITORY: &str = "toolshed/servers";
/// Repository name inside a registry.
pub const REGISTRY_NAME: &str = "toolshed";

/// How to wire the local backend.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Data directory (the SQLite file lives there).
    pub data_dir: PathBuf,
    /// `host:port` of a registry, or `None` for the engine store.
    pub registry: Option<String>,
    /// Service configuration.
    pub config: ToolshedConfig,
    /// The static stdio bridge binary stdio servers are wrapped with (`None`: stdio servers
    /// cannot be verified).
    pub stdio_bridge: Option<PathBuf>,
}

impl LocalOptions {
    /// From `TOOLSHED_DATA_DIR` / `TOOLSHED_REGISTRY`, with [`local_config`].
    pub fn from_env() -> Self {
        Self {
            data_dir: default_data_dir(),
            registry: std::env::var("TOOLSHED_REGISTRY")
                .ok()
                .filter(|r| !r.is_empty()),
            config: local_config(),
            stdio_bridge: Some(stdio_bridge_path()).filter(|p| p.exists()),
        }
    }
}

/// Service timings suited to a local engine: fast polls, short deadlines.
pub fn local_config() -> ToolshedConfig {
    ToolshedConfig {
        build_poll_interval: Duration::from_millis(200),
        build_timeout: Duration::from_secs(15 * 60),
        task_poll_interval: Duration::from_millis(100),
        task_start_timeout: Duration::from_secs(60),
        readiness_deadline: Duration::from_secs(30),
        ..ToolshedConfig::default()
    }
}

/// The wired local backend.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    /// The services.
    pub toolshed: Toolshed,
    /// The runner (instances, logs, health beyond the port).
    pub runner: Arc<DockerTaskRunner>,
    /// The SQLite repository (instances table beyond the port).
    pub repository: Arc<SqliteServerRepository>,
    /// The probe.
    pub probe: Arc<RmcpProbe>,
    /// The image store.
    pub images: Arc<dyn ImageStore>,
}

impl LocalBackend {
    /// Connects to the engine, opens the database and wires the services.
    ///
    /// # Errors
    /// When no engine answers, the database cannot be opened or the configuration is invalid.
    pub async fn connect(opts: LocalOptions) -> anyhow::Result<Self> {
        let engine = docker::connect().await.context(
            "cannot reach the Docker engine; start it (or set DOCKER_HOST) and try again",
        )?;
        let repository = Arc::new(
            SqliteServerRepository::open(opts.data_dir.join(DB_FILE))
                .await
                .with_context(|| {
                    format!("cannot open the database in {}", opts.data_dir.display())
                })?,
        );
        let images: Arc<dyn ImageStore> = match &opts.registry {
            Some(registry) => Arc::new(RegistryImageStore::new(registry.clone(), REGISTRY_NAME)?),
            None => Arc::new(EngineImageStore::new(engine.clone(), ENGINE_REPOSITORY)?),
        };
        let git = GitCliSource::from_env();
        let runner = Arc::new(DockerTaskRunner::new(
            engine.clone(),
            RunnerConfig::default(),
        ));
        let probe = Arc::new(RmcpProbe::new()?);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ports = Ports {
            repository: repository.clone(),
            images: images.clone(),
            builder: Arc::new(match &opts.stdio_bridge {
                Some(bridge) => {
                    DockerImageBuilder::new(engine, git.clone()).with_stdio_bridge(bridge)
                }
                None => DockerImageBuilder::new(engine, git.clone()),
            }),
            runner: runner.clone(),
            probe: probe.clone(),
            source: Arc::new(git),
            metadata: Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
            // Docs live beside the database: <data dir>/docs/<serverId>/<commit>.md.
            docs: Arc::new(FileDocsStore::new(&opts.data_dir)),
            clock,
        };
        let toolshed = Toolshed::new(ports, opts.config)?;
        Ok(Self {
            toolshed,
            runner,
            repository,
            probe,
            images,
        })
    }
}

/// The workspace root (two levels above this package's manifest).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn static_example(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target
        .join("x86_64-unknown-linux-gnu/release/examples")
        .join(name)
}

/// Where cargo puts the static example server.
pub fn example_server_path() -> PathBuf {
    static_example("mcp_example_server")
}

/// Where cargo puts the static stdio bridge (built like the example server, with
/// `--example mcp_stdio_bridge`).
pub fn stdio_bridge_path() -> PathBuf {
    static_example("mcp_stdio_bridge")
}

/// The statically linked example MCP server, built with cargo when missing (the shared target
/// directory is reused, so this is a no-op once built).
///
/// # Errors
/// When cargo fails.
pub fn ensure_example_server() -> anyhow::Result<PathBuf> {
    ensure_static_example("mcp_example_server")
}

/// The statically linked stdio bridge, built with cargo when missing.
///
/// # Errors
/// When cargo fails.
pub fn ensure_stdio_bridge() -> anyhow::Result<PathBuf> {
    ensure_static_example("mcp_stdio_bridge")
}

fn ensure_static_example(name: &str) -> anyhow::Result<PathBuf> {
    let path = static_example(name);
    if path.exists() {
        return Ok(path);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args([
            "build",
            "--release",
            "--example",
            name,
            "--features",
            "mcp-server",
            "-p",
            "toolshed-core",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .status()
        .with_context(|| format!("cannot run cargo to build {name}"))?;
    if !status.success() || !path.exists() {
        bail!("building {name} failed ({status}); see the cargo output above");
    }
    Ok(path)
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Toolshed",
            "-c",
            "user.email=toolshed@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        // Fixed dates: the same content gives the same commit, so a second run can skip.
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Creates (or updates) a git repository at `dir` holding `binary` as `server` and a
/// `FROM scratch` Dockerfile serving MCP on port 8000, and returns its `file://` URL. Same
/// binary, same commit.
///
/// # Errors
/// When files cannot be written or git fails.
pub fn write_server_repo(dir: &Path, binary: &Path, dockerfile: &str) -> anyhow::Result<RepoUrl> {
    std::fs::create_dir_all(dir)?;
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q", "-b", "main"])?;
    }
    let server = dir.join("server");
    std::fs::copy(binary, &server).with_context(|| format!("cannot copy {}", binary.display()))?;
    // Debug info makes the image ~10x larger; strip when the tool is there (deterministic).
    if let Err(e) = Command::new("strip").arg(&server).status() {
        tracing::debug!(error = %e, "strip unavailable; keeping the unstripped binary");
    }
    std::fs::write(dir.join("Dockerfile"), dockerfile)?;
    std::fs::write(
        dir.join("README.md"),
        "# Example MCP server\n\nA small MCP server with deterministic demo tools: echo, add \
         and word_count. Built from scratch with a static binary.\n",
    )?;
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"mcp-example-server\"\nversion = \"0.1.0\"\n",
    )?;
    git(dir, &["add", "-A"])?;
    if !git(dir, &["status", "--porcelain"])?.is_empty()
        || git(dir, &["rev-parse", "--verify", "-q", "HEAD"]).is_err()
    {
        git(dir, &["commit", "-q", "-m", "example MCP server"])?;
    }
    let url = format!("file://{}", dir.canonicalize()?.display());
    Ok(RepoUrl::parse(&url, RepoUrlPolicy::ALLOW_FILE)?)
}

/// The Dockerfile of the example server image.
pub const EXAMPLE_DOCKERFILE: &str = "FROM scratch\nCOPY server /server\nEXPOSE 8000\n\
    ENTRYPOINT [\"/server\", \"--port\", \"8000\"]\n";
