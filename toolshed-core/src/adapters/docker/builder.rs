//! [`ImageBuilder`] on the Docker engine: git checkout → build context tar (the build spec's
//! folder) → engine build (its Dockerfile and arguments) → push.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;

use super::sanitize::sanitize_lines;
use crate::adapters::git::GitCliSource;
use crate::domain::{BuildId, Transport, DEFAULT_MCP_PATH, DEFAULT_MCP_PORT};
use crate::error::{EntityKind, Error, Result};
use crate::ports::{BuildRequest, BuildStatus, ImageBuilder};

/// Build log lines kept for a failure reason.
const LOG_TAIL_LINES: usize = 20;

type Builds = Arc<Mutex<HashMap<BuildId, BuildStatus>>>;

/// Bounds of one engine build: an untrusted Dockerfile's `RUN` steps get this much memory and
/// CPU, and the whole build this much time.
#[derive(Debug, Clone, PartialEq)]
pub struct BuilderConfig {
    /// Memory of each build step's container, in MiB (swap is not allowed on top). At most 2047:
    /// the engine API client takes the limit as a 32-bit number of bytes.
    pub memory_mib: u32,
    /// CPUs of each build step's container (`1.0` = one core), as a CFS quota.
    pub cpus: f64,
    /// A build still running after this long is stopped and fails (retryable).
    pub timeout: Duration,
}

impl Default for BuilderConfig {
    fn default() -> Self {
        Self {
            memory_mib: 1536,
            cpus: 1.0,
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// The CFS period the CPU quota of builds is expressed against (the engine's default, 100 ms).
const CPU_PERIOD_US: i32 = 100_000;

impl BuilderConfig {
    /// The memory limit in bytes, as the engine API takes it.
    fn memory_bytes(&self) -> i32 {
        i32::try_from(u64::from(self.memory_mib) * 1024 * 1024).unwrap_or(i32::MAX)
    }

    /// The CPU quota per [`CPU_PERIOD_US`], at least 1 ms.
    fn cpu_quota_us(&self) -> i32 {
        let quota = (self.cpus.max(0.01) * f64::from(CPU_PERIOD_US)).round();
        // Bounded above by 1024 cores' worth, so the cast cannot overflow.
        quota.min(1024.0 * f64::from(CPU_PERIOD_US)) as i32
    }
}

/// Builds a repository's Dockerfile through the engine.
///
/// Every build is bounded ([`BuilderConfig`]): its step containers get a memory limit without
/// swap and a CPU quota, and a build running past the timeout, or cancelled with
/// [`ImageBuilder::cancel_build`], is stopped in the engine (no build container remains).
///
/// The build runs in a background task; [`ImageBuilder::build_status`] reports it. Build output
/// goes to `tracing` (target `toolshed::build`, info level). A repository whose name carries a
/// registry host (`127.0.0.1:5000/toolshed`) is pushed there after the build; otherwise the image
/// stays in the engine's store (see [`super::EngineImageStore`]).
///
/// **Stdio servers** ([`Transport::Stdio`]): with [`Self::with_stdio_bridge`] the repository's
/// image is built as a base, and a second stage copies the (static) stdio bridge binary into it
/// as the entrypoint, serving the server's command on [`DEFAULT_MCP_PORT`] at
/// [`DEFAULT_MCP_PATH`]. Without a bridge binary such builds fail with a non-retryable reason.
#[derive(Debug, Clone)]
pub struct DockerImageBuilder {
    docker: Docker,
    git: GitCliSource,
    bridge: Option<PathBuf>,
    package_ca: Option<PathBuf>,
    config: BuilderConfig,
    builds: Builds,
    tokens: Arc<Mutex<HashMap<String, BuildId>>>,
    /// The tasks of running builds: aborting one drops its engine connection, which makes the
    /// engine stop the build and remove its step container.
    running: Arc<Mutex<HashMap<BuildId, tokio::task::AbortHandle>>>,
}

impl DockerImageBuilder {
    /// A builder on `docker`, checking sources out with `git`.
    pub fn new(docker: Docker, git: GitCliSource) -> Self {
        Self {
            docker,
            git,
            bridge: None,
            package_ca: None,
            config: BuilderConfig::default(),
            builds: Arc::default(),
            tokens: Arc::default(),
            running: Arc::default(),
        }
    }

    /// Replaces the build bounds (memory, CPU, timeout).
    pub fn with_config(mut self, config: BuilderConfig) -> Self {
        self.config = config;
        self
    }

    /// The static stdio bridge binary (`mcp-stdio-bridge`) that stdio servers are wrapped with.
    pub fn with_stdio_bridge(mut self, binary: impl Into<PathBuf>) -> Self {
        self.bridge = Some(binary.into());
        self
    }
}

impl DockerImageBuilder {
    /// The CA bundle added as `ca-certificates.crt` to the context of generated package builds
    /// (see [`BuildRequest::dockerfile`]), for a package index that answers with a private CA
    /// (the generated Dockerfile copies it when the deployment's
    /// [`PackageBuildSettings::with_ca_bundle`](crate::domain::server_json::PackageBuildSettings)
    /// is set).
    pub fn with_package_ca_bundle(mut self, bundle: impl Into<PathBuf>) -> Self {
        self.package_ca = Some(bundle.into());
        self
    }
}

/// The context of a generated package build: its Dockerfile and, when given, the CA bundle.
fn inline_context(dockerfile: &str, ca_bundle: Option<&[u8]>) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut files = vec![("Dockerfile", dockerfile.as_bytes())];
    if let Some(bundle) = ca_bundle {
        files.push(("ca-certificates.crt", bundle));
    }
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, data)?;
    }
    tar.into_inner()
}

/// The context of a generated Dockerfile, with the package CA bundle when configured; the
/// failure status otherwise.
async fn generated_context(
    dockerfile: &str,
    package_ca: Option<&std::path::Path>,
) -> Result<Vec<u8>, BuildStatus> {
    let bundle = match package_ca {
        Some(path) => match tokio::fs::read(path).await {
            Ok(b) => Some(b),
            Err(e) => {
                return Err(failed(
                    "DOWNLOAD_SOURCE",
                    format!("cannot read the package CA bundle {}: {e}", path.display()),
                    false,
                ))
            }
        },
        None => None,
    };
    inline_context(dockerfile, bundle.as_deref()).map_err(|e| {
        failed(
            "DOWNLOAD_SOURCE",
            format!("cannot pack the generated context: {e}"),
            false,
        )
    })
}

/// The second-stage build context of a stdio server: the bridge binary and a Dockerfile that
/// makes it the entrypoint around the server's command.
fn bridge_context(base: &str, bridge: &[u8], command: &[String]) -> std::io::Result<Vec<u8>> {
    let entrypoint: Vec<String> = [
        "/toolshed-stdio-bridge",
        "--port",
        &DEFAULT_MCP_PORT.to_string(),
        "--host",
        "0.0.0.0",
        "--path",
        DEFAULT_MCP_PATH,
        "--",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(command.iter().cloned())
    .collect();
    let entrypoint = serde_json::to_string(&entrypoint).map_err(std::io::Error::other)?;
    let dockerfile = format!(
        "FROM {base}\nCOPY toolshed-stdio-bridge /toolshed-stdio-bridge\nEXPOSE {DEFAULT_MCP_PORT}\nENTRYPOINT {entrypoint}\nCMD []\n"
    );
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in [
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        ("toolshed-stdio-bridge", bridge, 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, name, data)?;
    }
    tar.into_inner()
}

fn set(builds: &Builds, id: &BuildId, status: BuildStatus) {
    builds
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.clone(), status);
}

fn failed(phase: &str, reason: String, retryable: bool) -> BuildStatus {
    BuildStatus::Failed {
        phase: Some(phase.to_owned()),
        reason,
        log_url: None,
        retryable,
    }
}

/// Whether the repository's first component is a registry host (so the image is pushed).
fn has_registry_host(repository: &str) -> bool {
    match repository.split_once('/') {
        Some((host, _)) => host.contains(['.', ':']) || host == "localhost",
        None => false,
    }
}

struct Tail(VecDeque<String>);

impl Tail {
    fn push(&mut self, raw: &str) {
        for line in sanitize_lines(raw) {
            if self.0.len() == LOG_TAIL_LINES {
                self.0.pop_front();
            }
            self.0.push_back(line);
        }
    }

    fn text(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Files of this deployment that builds may add to a context.
#[derive(Debug, Clone)]
struct BuildFiles {
    bridge: Option<PathBuf>,
    package_ca: Option<PathBuf>,
}

async fn run_build(
    docker: Docker,
    git: GitCliSource,
    files: BuildFiles,
    config: BuilderConfig,
    req: BuildRequest,
    id: BuildId,
    builds: Builds,
) {
    // Dropping the build future on timeout closes its engine connection: the engine then stops
    // the build and removes the step container.
    let status = match tokio::time::timeout(
        config.timeout,
        build(&docker, &git, &files, &config, &req, &id, &builds),
    )
    .await
    {
        Ok(status) => status,
        Err(_) => failed(
            "BUILD",
            format!(
                "build did not finish within {} s and was stopped",
                config.timeout.as_secs()
            ),
            true,
        ),
    };
    match &status {
        BuildStatus::Failed { reason, .. } => {
            tracing::warn!(target: "toolshed::build", build = %id, server = %req.server_id, %reason, "build failed")
        }
        _ => {
            tracing::info!(target: "toolshed::build", build = %id, server = %req.server_id, "build succeeded")
        }
    }
    set(&builds, &id, status);
}

/// One engine build of `context` tagged `image`; the failure status on error.
async fn engine_build(
    docker: &Docker,
    config: &BuilderConfig,
    id: &BuildId,
    image: &str,
    context: Vec<u8>,
    dockerfile: &str,
    args: &HashMap<String, String>,
) -> Result<(), BuildStatus> {
    // No `labels`: the classic builder turns each into an extra `LABEL` step (a container and a
    // commit each, seconds per build), and the tag already names the server and the commit.
    // Build arguments go to the engine as a JSON map, never through a shell.
    let options = BuildImageOptionsBuilder::default()
        .dockerfile(dockerfile)
        .buildargs(args)
        .t(image)
        .rm(true)
        .forcerm(true)
        .memory(config.memory_bytes())
        .memswap(config.memory_bytes())
        .cpuperiod(CPU_PERIOD_US)
        .cpuquota(config.cpu_quota_us())
        .build();
    let mut tail = Tail(VecDeque::new());
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                    for line in sanitize_lines(text) {
                        tracing::info!(target: "toolshed::build", build = %id, "{line}");
                    }
                    tail.push(text);
                }
                if let Some(err) = info.error_detail {
                    tail.push(err.message.as_deref().unwrap_or("build failed"));
                    return Err(failed("BUILD", tail.text(), false));
                }
            }
            Err(e) => {
                // The engine reports a failed Dockerfile step as a stream error in some versions.
                let retryable = !matches!(e, bollard::errors::Error::DockerStreamError { .. });
                tail.push(&e.to_string());
                return Err(failed("BUILD", tail.text(), retryable));
            }
        }
    }
    Ok(())
}

async fn build(
    docker: &Docker,
    git: &GitCliSource,
    files: &BuildFiles,
    config: &BuilderConfig,
    req: &BuildRequest,
    id: &BuildId,
    builds: &Builds,
) -> BuildStatus {
    let (bridge, package_ca) = (files.bridge.as_deref(), files.package_ca.as_deref());
    let stdio = match (&req.transport, bridge) {
        (Transport::Stdio { command }, Some(bridge)) => Some((command.clone(), bridge.to_owned())),
        (Transport::Stdio { .. }, None) => {
            return failed(
                "BUILD",
                "stdio servers need the mcp-stdio-bridge binary, which this deployment does not \
                 have (`toolshed doctor` and the API's /healthz say why); or serve MCP over \
                 streamable HTTP"
                    .to_owned(),
                false,
            )
        }
        (Transport::Http { .. }, _) => None,
    };
    set(
        builds,
        id,
        BuildStatus::InProgress {
            phase: Some("DOWNLOAD_SOURCE".into()),
        },
    );
    // The context is the spec's folder of the commit, resolved in its tree: a symbolic link
    // leading outside the repository (or a Dockerfile outside the context) fails the build
    // before the engine sees anything. A generated Dockerfile needs no checkout.
    let (context, dockerfile) = if let Some(text) = &req.dockerfile {
        match generated_context(text, package_ca).await {
            Ok(context) => (context, "Dockerfile".to_owned()),
            Err(status) => return status,
        }
    } else {
        match git.checkout(&req.repo, &req.commit).await {
            Ok(checkout) => {
                let resolved = match checkout.resolve_build(&req.build).await {
                    Ok(r) => r,
                    Err(e) => return failed("DOWNLOAD_SOURCE", e.to_string(), e.is_retryable()),
                };
                match checkout.archive_dir(resolved.context.as_deref()).await {
                    Ok(tar) => (tar, resolved.dockerfile),
                    Err(e) => return failed("DOWNLOAD_SOURCE", e.to_string(), e.is_retryable()),
                }
            }
            Err(e) => return failed("DOWNLOAD_SOURCE", e.to_string(), e.is_retryable()),
        }
    };
    // A generated Dockerfile takes no build arguments.
    let args: HashMap<String, String> = if req.dockerfile.is_some() {
        HashMap::new()
    } else {
        req.build.args.clone().into_iter().collect()
    };

    set(
        builds,
        id,
        BuildStatus::InProgress {
            phase: Some("BUILD".into()),
        },
    );
    let image = format!("{}:{}", req.repository, req.tag);
    match stdio {
        None => {
            if let Err(status) =
                engine_build(docker, config, id, &image, context, &dockerfile, &args).await
            {
                return status;
            }
        }
        Some((command, bridge)) => {
            let base = format!("{image}-stdio-base");
            if let Err(status) =
                engine_build(docker, config, id, &base, context, &dockerfile, &args).await
            {
                return status;
            }
            let bridge_bin = match tokio::fs::read(&bridge).await {
                Ok(b) => b,
                Err(e) => {
                    return failed(
                        "BUILD",
                        format!("cannot read the stdio bridge {}: {e}", bridge.display()),
                        false,
                    )
                }
            };
            let context = match bridge_context(&base, &bridge_bin, &command) {
                Ok(c) => c,
                Err(e) => {
                    return failed("BUILD", format!("cannot pack the bridge stage: {e}"), false)
                }
            };
            // The bridge stage is ours: its own Dockerfile, no repository arguments.
            let no_args = HashMap::new();
            let stage = engine_build(docker, config, id, &image, context, "Dockerfile", &no_args);
            if let Err(status) = stage.await {
                return status;
            }
        }
    }

    if has_registry_host(&req.repository) {
        set(
            builds,
            id,
            BuildStatus::InProgress {
                phase: Some("POST_BUILD".into()),
            },
        );
        let options = PushImageOptionsBuilder::new().tag(req.tag.as_str()).build();
        let mut stream = docker.push_image(&req.repository, Some(options), None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error_detail {
                        let msg = err.message.unwrap_or_else(|| "push failed".into());
                        return failed(
                            "POST_BUILD",
                            format!("push of {image} failed: {msg}"),
                            true,
                        );
                    }
                }
                Err(e) => {
                    return failed("POST_BUILD", format!("push of {image} failed: {e}"), true);
                }
            }
        }
    }
    BuildStatus::Succeeded
}

#[async_trait]
impl ImageBuilder for DockerImageBuilder {
    async fn start_build(&self, request: &BuildRequest) -> Result<BuildId> {
        let id = {
            let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(id) = tokens.get(&request.idempotency_token) {
                return Ok(id.clone());
            }
            let id = BuildId::new(format!("local-{}", uuid::Uuid::new_v4().simple()))?;
            tokens.insert(request.idempotency_token.clone(), id.clone());
            id
        };
        set(
            &self.builds,
            &id,
            BuildStatus::InProgress {
                phase: Some("QUEUED".into()),
            },
        );
        tracing::info!(target: "toolshed::build", build = %id, server = %request.server_id, commit = %request.commit, "build started");
        let task = tokio::spawn(run_build(
            self.docker.clone(),
            self.git.clone(),
            BuildFiles {
                bridge: self.bridge.clone(),
                package_ca: self.package_ca.clone(),
            },
            self.config.clone(),
            request.clone(),
            id.clone(),
            Arc::clone(&self.builds),
        ));
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget finished builds so the map stays as small as the number of running ones.
        running.retain(|_, handle| !handle.is_finished());
        running.insert(id.clone(), task.abort_handle());
        Ok(id)
    }

    async fn build_status(&self, build: &BuildId) -> Result<BuildStatus> {
        self.builds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(build)
            .cloned()
            .ok_or_else(|| Error::not_found(EntityKind::Build, build))
    }

    async fn cancel_build(&self, build: &BuildId) -> Result<()> {
        let handle = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(build);
        if let Some(handle) = handle {
            handle.abort();
        }
        let mut builds = self.builds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status @ BuildStatus::InProgress { .. }) = builds.get_mut(build) {
            *status = failed("BUILD", "build cancelled".to_owned(), true);
            tracing::info!(target: "toolshed::build", build = %build, "build cancelled");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        assert!(has_registry_host("127.0.0.1:5000/toolshed"));
        assert!(has_registry_host("localhost/toolshed"));
        assert!(has_registry_host("registry.example.com/a/b"));
        assert!(!has_registry_host("toolshed/servers"));
        assert!(!has_registry_host("toolshed"));
    }

    #[test]
    fn tail_keeps_the_last_lines_sanitised() {
        let mut t = Tail(VecDeque::new());
        for i in 0..30 {
            t.push(&format!("\x1b[31mline {i}\x1b[0m\n"));
        }
        let text = t.text();
        assert!(text.starts_with("line 10\n"), "{text}");
        assert!(text.ends_with("line 29"));
        assert!(!text.contains('\x1b'));
    }
}
