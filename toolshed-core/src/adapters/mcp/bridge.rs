//! [`StdioBridge`]: serves a stdio-only MCP server over streamable HTTP.
//!
//! Design: the bridge is an rmcp *client* of the child (over its stdin/stdout) and an rmcp
//! *server* on HTTP whose handler forwards every request to that one client session. rmcp does
//! the JSON-RPC framing, id mapping and HTTP session handling on both sides, so the bridge holds
//! no protocol logic of its own. The child is initialized once, before the port opens (an open
//! port therefore means "ready"), and every HTTP session is answered with the child's own
//! initialize result. Requests and notifications are logged at debug level, the child's stderr
//! line by line at info level (target `mcp_child`). Server-to-client requests of the child
//! (sampling, roots, elicitation) are refused: a bridge has no user to ask.
//!
//! When the child exits, every request still waiting for it (and any that arrives before the
//! port closes) is answered at once with a JSON-RPC internal error saying that the server process
//! exited and with which status or signal; the bridge lets those answers out, then ends the HTTP
//! sessions and stops ([`BridgeExit::ChildExited`]). The bridge owns the child process itself so
//! it knows that status.

use std::borrow::Cow;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

#[allow(deprecated)]
// Logging notifications are deprecated upstream, but servers still send them.
use rmcp::model::LoggingMessageNotificationParam;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig,
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ServerConfig,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, NotificationContext, RequestContext, RunningService,
    RunningServiceCancellationToken,
};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ClientHandler, ErrorData, Peer, RoleClient, RoleServer, ServerHandler, ServiceError};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::child_era::{child_era, ChildEra};
use super::http_server::InFlight;

use crate::domain::Endpoint;
use crate::error::{Error, Result};

/// How the bridge is started.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// The server command and its arguments.
    pub command: Vec<String>,
    /// Address to listen on (default `0.0.0.0`).
    pub host: IpAddr,
    /// Port to listen on (default 8000; 0 picks a free one).
    pub port: u16,
    /// MCP path (default `/mcp`).
    pub path: String,
    /// How long the child may take to answer `initialize` (default 60 s), a second start
    /// included.
    pub startup_timeout: Duration,
    /// How long the child may take to answer `server/discover` (default 15 s) before it is
    /// started again and asked only `initialize`: long enough for a slow start, short enough
    /// that a server which hangs on a method it does not know (Python SDK up to mcp 1.9.3) is
    /// soon served. A slow dual-era server past it only costs a second start.
    pub discover_wait: Duration,
}

impl BridgeConfig {
    /// Defaults around `command`.
    pub fn new(command: Vec<String>) -> Self {
        Self {
            command,
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: crate::domain::DEFAULT_MCP_PORT,
            path: crate::domain::DEFAULT_MCP_PATH.to_owned(),
            startup_timeout: Duration::from_secs(60),
            discover_wait: Duration::from_secs(15),
        }
    }

    /// Sets the listen address.
    pub fn with_listen(mut self, host: IpAddr, port: u16) -> Self {
        self.host = host;
        self.port = port;
        self
    }

    /// Sets the MCP path.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets the start-up deadline of the child.
    pub fn with_startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Sets how long the child may take to answer `server/discover`.
    pub fn with_discover_wait(mut self, wait: Duration) -> Self {
        self.discover_wait = wait;
        self
    }
}

/// How long a child may take to exit by itself: after its stdout closed, and, when the bridge
/// stops, after its stdin closed and then after SIGTERM.
const CHILD_EXIT_GRACE: Duration = Duration::from_secs(3);

/// How long the answers in flight may take to get out once the child exited, and then the HTTP
/// connections to close, before the bridge stops regardless (a client that stopped reading must
/// not keep it up).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a bridge stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeExit {
    /// The child closed its stdout or exited: the bridge answered the requests in flight with
    /// an error and has nothing left to serve.
    ChildExited,
    /// [`StdioBridge::shutdown`] was called (e.g. on SIGTERM).
    Shutdown,
}

/// A running bridge: the child is initialized and the HTTP port is open.
#[derive(Debug)]
pub struct StdioBridge {
    addr: SocketAddr,
    path: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<BridgeExit>>,
}

impl StdioBridge {
    /// Spawns the child, initializes it, then opens the HTTP port and serves.
    ///
    /// # Errors
    /// `InvalidInput` for an empty command or bad path; `Backend` (backend `mcp-bridge`) when the
    /// child cannot be spawned, does not complete `initialize` within the start-up deadline, or
    /// the port cannot be bound.
    pub async fn start(config: BridgeConfig) -> Result<Self> {
        crate::domain::validate_http_path(&config.path)?;
        let Some((program, args)) = config.command.split_first() else {
            return Err(Error::invalid(
                "command",
                "the stdio bridge needs a command",
            ));
        };
        let deadline = tokio::time::Instant::now() + config.startup_timeout;
        let timed_out = || Error::Timeout {
            operation: "stdio bridge child initialize",
            id: Some(program.clone()),
            after_ms: u64::try_from(config.startup_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let (mut process, stdout, stdin) = spawn_child(program, args)?;
        let era_wait = Some(config.discover_wait);
        let child = match open_child_session(stdout, stdin, deadline, era_wait).await {
            Ok(child) => child,
            // Servers of older SDKs exit or hang on a method they do not know, some ignore it: a
            // child that cannot take the question is started again and asked only `initialize`.
            Err(ChildOpen::EraUnanswered(reason)) => {
                tracing::warn!(
                    command = %program,
                    %reason,
                    "the child did not answer server/discover; starting it again with initialize"
                );
                if let Err(e) = process.kill().await {
                    tracing::warn!(error = %e, "could not stop the first child");
                }
                let (again, stdout, stdin) = spawn_child(program, args)?;
                process = again;
                open_child_session(stdout, stdin, deadline, None)
                    .await
                    .map_err(|e| e.into_error(program, timed_out))?
            }
            Err(e) => return Err(e.into_error(program, timed_out)),
        };
        let info = child.peer_info().ok_or_else(|| {
            bridge_error(
                "initialize child",
                Some(program.clone()),
                "no initialize result",
            )
        })?;
        let mut init = ServerConfig::new(info.capabilities.clone())
            .with_protocol_version(info.protocol_version.clone());
        if let Some(server_info) = info.server_info.clone() {
            init = init.with_server_info(server_info);
        }
        if let Some(instructions) = info.instructions.clone() {
            init = init.with_instructions(instructions);
        }
        tracing::info!(
            command = %program,
            protocol = %info.protocol_version,
            era = if info.protocol_version.has_initialize() { "initialize" } else { "discover" },
            server = info.server_info.as_ref().map(|s| s.name.as_str()).unwrap_or("?"),
            "child MCP server initialized"
        );
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .map_err(|e| {
                bridge_error("bind", Some(format!("{}:{}", config.host, config.port)), e)
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| bridge_error("bind", None, e))?;
        let (ended_tx, ended_rx) = watch::channel(None);
        let forwarder = Forwarder {
            child: child.peer().clone(),
            init: Arc::new(init),
            ended: ended_rx,
        };
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let path = config.path.clone();
        let child = ChildServer {
            process,
            session: child,
            ended: ended_tx,
        };
        let task = tokio::spawn(run(listener, path, forwarder, child, shutdown_rx));
        tracing::info!(%addr, path = %config.path, "stdio bridge serving streamable HTTP");
        Ok(Self {
            addr,
            path: config.path,
            shutdown: Some(shutdown_tx),
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint to reach the bridge from this host (an unspecified listen address becomes
    /// loopback).
    ///
    /// # Errors
    /// `InvalidInput` if the address cannot form an endpoint (never for a bound socket).
    pub fn endpoint(&self) -> Result<Endpoint> {
        let ip = match self.addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Endpoint::new(ip.to_string(), self.addr.port(), self.path.clone())
    }

    /// Asks the bridge to stop: close the MCP sessions, then stop the child.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The receiver is gone only when the bridge already stopped.
            let _ = tx.send(());
        }
    }

    /// Serves until the child exits or `stop` completes (then shuts down cleanly).
    ///
    /// # Errors
    /// `Backend` if serving HTTP failed.
    pub async fn run_until(
        mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<BridgeExit> {
        tokio::select! {
            outcome = &mut self.task => return join_outcome(outcome),
            () = stop => {}
        }
        self.shutdown();
        self.wait().await
    }

    /// Waits until the bridge stops.
    ///
    /// # Errors
    /// `Backend` if serving HTTP failed.
    pub async fn wait(mut self) -> Result<BridgeExit> {
        let shutdown = self.shutdown.take();
        let outcome = (&mut self.task).await;
        drop(shutdown);
        join_outcome(outcome)
    }
}

/// The bridge task's result as the crate's.
fn join_outcome(
    outcome: std::result::Result<std::io::Result<BridgeExit>, tokio::task::JoinError>,
) -> Result<BridgeExit> {
    match outcome {
        Ok(Ok(exit)) => Ok(exit),
        Ok(Err(e)) => Err(bridge_error("serve", None, e)),
        Err(e) => Err(bridge_error("serve", None, e)),
    }
}

/// Spawns the server command with piped stdio (its stderr logged line by line). It is killed
/// when its handle is dropped, so no early return leaves it running.
fn spawn_child(program: &str, args: &[String]) -> Result<(Child, ChildStdout, ChildStdin)> {
    let mut process = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| bridge_error("spawn", Some(program.to_owned()), e))?;
    let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
        return Err(bridge_error(
            "spawn",
            Some(program.to_owned()),
            "the child's stdin and stdout are not pipes",
        ));
    };
    if let Some(stderr) = process.stderr.take() {
        tokio::spawn(log_stderr(stderr));
    }
    Ok((process, stdout, stdin))
}

/// Why the session with a child did not open.
#[derive(Debug)]
enum ChildOpen {
    /// The child closed its output, or said nothing within the wait, instead of answering
    /// `server/discover`: a child started again may still take `initialize`.
    EraUnanswered(String),
    /// The start-up deadline passed.
    TimedOut,
    /// The handshake failed.
    Failed(String),
}

impl ChildOpen {
    /// The crate error, naming the child's `program`.
    fn into_error(self, program: &str, timed_out: impl FnOnce() -> Error) -> Error {
        match self {
            Self::TimedOut => timed_out(),
            Self::EraUnanswered(reason) | Self::Failed(reason) => {
                bridge_error("initialize child", Some(program.to_owned()), reason)
            }
        }
    }
}

/// Opens the MCP session with the child over its pipes, in the child's own era. With
/// `era_wait`, it is asked `server/discover` once and given that long to answer (a slow start is
/// not a refusal, so this is not rmcp's fixed 10 s), then the session opens with discover or, for
/// a server of the `initialize` era (the common case: Python servers), with `initialize` on the
/// same pipes. Without, it is asked nothing but `initialize`. Everything ends by `deadline`.
async fn open_child_session<R, W>(
    stdout: R,
    stdin: W,
    deadline: tokio::time::Instant,
    era_wait: Option<Duration>,
) -> std::result::Result<RunningService<RoleClient, ChildLink>, ChildOpen>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut pipes = AsyncRwTransport::new_client(stdout, stdin);
    let link = ChildLink;
    let era = match era_wait {
        Some(wait) => {
            let until = deadline.min(tokio::time::Instant::now() + wait);
            let client = link.get_info();
            let asked = child_era(&mut pipes, &client, ProtocolVersion::LATEST);
            match tokio::time::timeout_at(until, asked).await {
                Ok(Ok(era)) => era,
                Ok(Err(reason)) => return Err(ChildOpen::EraUnanswered(reason)),
                Err(_) if until < deadline => {
                    return Err(ChildOpen::EraUnanswered(format!(
                        "no answer to server/discover within {} s",
                        wait.as_secs()
                    )))
                }
                Err(_) => return Err(ChildOpen::TimedOut),
            }
        }
        None => ChildEra::Initialize,
    };
    let lifecycle = match era {
        ChildEra::Discover => ClientLifecycleMode::Discover {
            preferred_versions: ProtocolVersion::KNOWN_VERSIONS
                .iter()
                .rev()
                .cloned()
                .collect(),
        },
        ChildEra::Initialize => ClientLifecycleMode::Initialize,
    };
    match tokio::time::timeout_at(deadline, link.serve_with_lifecycle(pipes, lifecycle)).await {
        Ok(Ok(child)) => Ok(child),
        Ok(Err(e)) => Err(ChildOpen::Failed(e.to_string())),
        Err(_) => Err(ChildOpen::TimedOut),
    }
}

/// The child: its process, the MCP session with it, and where its end is announced.
struct ChildServer {
    process: Child,
    session: RunningService<RoleClient, ChildLink>,
    /// Set once, when the child is gone; the forwarders wait on it.
    ended: watch::Sender<Option<ChildEnd>>,
}

/// Serves until the child goes away or shutdown is asked, then stops the child.
async fn run(
    listener: TcpListener,
    path: String,
    forwarder: Forwarder,
    child: ChildServer,
    shutdown: oneshot::Receiver<()>,
) -> std::io::Result<BridgeExit> {
    let ChildServer {
        mut process,
        session,
        ended,
    } = child;
    let session_token = session.cancellation_token();
    let in_flight = InFlight::new();
    // The HTTP side stops when asked to (or the bridge handle is dropped), or when the child is
    // gone and the answers in flight are out.
    let (child_gone_tx, child_gone_rx) = oneshot::channel::<()>();
    let serve = super::http_server::serve_mcp(
        listener,
        &path,
        move || Ok(forwarder.clone()),
        in_flight.clone(),
        async move {
            tokio::select! {
                _ = shutdown => {}
                _ = child_gone_rx => {}
            }
        },
    );
    tokio::pin!(serve);
    let session_ended = session.waiting();
    tokio::pin!(session_ended);
    let end = tokio::select! {
        served = &mut serve => {
            served?;
            tracing::info!("stdio bridge shutting down; stopping the child");
            stop_child(&mut process, session_token).await;
            return Ok(BridgeExit::Shutdown);
        }
        status = process.wait() => ChildEnd::from_wait(status),
        _ = &mut session_ended => {
            // Its stdout closed: a child normally exits right after. One that stays is stopped
            // (it can no longer answer anything).
            match tokio::time::timeout(CHILD_EXIT_GRACE, process.wait()).await {
                Ok(status) => ChildEnd::from_wait(status),
                Err(_) => {
                    if let Err(e) = process.kill().await {
                        tracing::warn!(error = %e, "could not kill the child MCP server");
                    }
                    ChildEnd::OutputClosed
                }
            }
        }
    };
    tracing::warn!(
        child = %end.describe(),
        "child MCP server exited; answering the requests in flight, then stopping the bridge"
    );
    // Every forwarder waiting for the child answers now, with the exit status.
    ended.send_replace(Some(end));
    session_token.cancel();
    if tokio::time::timeout(DRAIN_TIMEOUT, in_flight.idle())
        .await
        .is_err()
    {
        tracing::warn!(
            after_s = DRAIN_TIMEOUT.as_secs(),
            "answers still in flight; closing the port regardless"
        );
    }
    let _ = child_gone_tx.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut serve).await {
        Ok(served) => served?,
        Err(_) => tracing::warn!(
            after_s = DRAIN_TIMEOUT.as_secs(),
            "HTTP connections still open; stopping regardless"
        ),
    }
    Ok(BridgeExit::ChildExited)
}

/// Stops the child the way the MCP stdio transport describes: close its stdin (ending the MCP
/// session does), wait, SIGTERM, wait, then kill.
async fn stop_child(process: &mut Child, session: RunningServiceCancellationToken) {
    session.cancel();
    if let Ok(status) = tokio::time::timeout(CHILD_EXIT_GRACE, process.wait()).await {
        tracing::info!(child = %ChildEnd::from_wait(status).describe(), "child MCP server stopped");
        return;
    }
    #[cfg(unix)]
    if let Some(pid) = process.id().and_then(|pid| i32::try_from(pid).ok()) {
        use nix::sys::signal::{kill, Signal};
        match kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM) {
            Ok(()) => {
                if let Ok(status) = tokio::time::timeout(CHILD_EXIT_GRACE, process.wait()).await {
                    tracing::info!(child = %ChildEnd::from_wait(status).describe(), "child MCP server stopped on SIGTERM");
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not send SIGTERM to the child MCP server"),
        }
    }
    tracing::warn!("child MCP server did not stop; killing it");
    if let Err(e) = process.kill().await {
        tracing::warn!(error = %e, "could not kill the child MCP server");
    }
}

/// How the child ended, as the bridge reports it to its callers.
#[derive(Debug, Clone)]
enum ChildEnd {
    /// The process exited (by itself or on someone else's signal).
    Exited(ExitStatus),
    /// It closed its stdout but kept running, so the bridge killed it.
    OutputClosed,
    /// Waiting for the process failed: it is gone for the bridge, its status unknown.
    Unknown(String),
}

impl ChildEnd {
    fn from_wait(status: std::io::Result<ExitStatus>) -> Self {
        match status {
            Ok(status) => Self::Exited(status),
            Err(e) => Self::Unknown(e.to_string()),
        }
    }

    /// What happened, completing "the MCP server process …".
    fn describe(&self) -> String {
        match self {
            Self::Exited(status) => match (status.code(), signal_of(status)) {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(signal)) => format!("was killed by signal {signal}"),
                (None, None) => format!("exited ({status})"),
            },
            Self::OutputClosed => "closed its standard output and was stopped".to_owned(),
            Self::Unknown(reason) => format!("ended (its exit status is unknown: {reason})"),
        }
    }

    /// The JSON-RPC error answering `method`, which the child will never answer.
    fn error(&self, method: &str) -> ErrorData {
        let data = match self {
            Self::Exited(status) => match (status.code(), signal_of(status)) {
                (Some(code), _) => Some(serde_json::json!({ "exitStatus": code })),
                (None, Some(signal)) => Some(serde_json::json!({ "signal": signal })),
                (None, None) => None,
            },
            Self::OutputClosed | Self::Unknown(_) => None,
        };
        ErrorData::internal_error(
            format!(
                "stdio bridge: the MCP server process {} before answering {method}",
                self.describe()
            ),
            data,
        )
    }
}

/// The signal that ended a process, where there are signals.
fn signal_of(status: &ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    {
        std::os::unix::process::ExitStatusExt::signal(status)
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        None
    }
}

/// Completes with the child's end once it is announced; never, if the bridge stopped without
/// announcing one (nothing then waits for the answer anyway).
async fn child_end(ended: &mut watch::Receiver<Option<ChildEnd>>) -> ChildEnd {
    let end = match ended.wait_for(Option::is_some).await {
        Ok(end) => end.clone(),
        Err(_) => None,
    };
    match end {
        Some(end) => end,
        None => std::future::pending().await,
    }
}

/// Logs the child's stderr, line by line.
async fn log_stderr(stderr: ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "mcp_child", "{line}");
    }
}

fn bridge_error(
    operation: &'static str,
    id: Option<String>,
    source: impl Into<crate::error::BoxError>,
) -> Error {
    Error::backend("mcp-bridge", operation, id, false, source)
}

/// The versions the bridge serves over HTTP for a child that agreed to `child`: every version of
/// the `server/discover` era, and those of the `initialize` era up to the child's (all of them
/// when the child is of the new era itself).
fn bridge_versions(child: &ProtocolVersion) -> Vec<ProtocolVersion> {
    let versions: Vec<ProtocolVersion> = ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .filter(|v| !v.has_initialize() || v.as_str() <= child.as_str())
        .cloned()
        .collect();
    if versions.iter().any(ProtocolVersion::has_initialize) {
        versions
    } else {
        // A child of an unknown older version: its own, so `initialize` clients still get in.
        let mut versions = versions;
        versions.insert(0, child.clone());
        versions
    }
}

/// The bridge as a client of the child: logs what the child sends on its own.
#[derive(Debug, Clone, Default)]
struct ChildLink;

impl ClientHandler for ChildLink {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("toolshed-stdio-bridge", env!("CARGO_PKG_VERSION")),
        )
        // What `initialize` asks a child of that era for (the child picks); the discover era
        // negotiates from the bridge's own list.
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        tracing::debug!(target: "mcp_child", level = ?params.level, logger = ?params.logger, data = %params.data, "log notification");
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        tracing::debug!(target: "mcp_child", progress = params.progress, total = ?params.total, "progress notification");
    }
}

/// The bridge as an HTTP MCP server: forwards each request to the child.
#[derive(Debug, Clone)]
struct Forwarder {
    child: Peer<RoleClient>,
    init: Arc<ServerConfig>,
    /// The child's end, once it is gone.
    ended: watch::Receiver<Option<ChildEnd>>,
}

impl Forwarder {
    /// The child's answer to `request` as the HTTP client's answer; if the child ends first, an
    /// error saying how it ended, at once.
    async fn relay<T>(
        &self,
        method: &'static str,
        request: impl Future<Output = std::result::Result<T, ServiceError>>,
    ) -> std::result::Result<T, ErrorData> {
        let mut ended = self.ended.clone();
        let failure = tokio::select! {
            // A child known to be gone answers without anything being sent to it.
            biased;
            end = child_end(&mut ended) => return Err(end.error(method)),
            answer = request => match answer {
                Ok(answer) => return Ok(answer),
                Err(ServiceError::McpError(error)) => return Err(error),
                Err(other) => other,
            },
        };
        // The link to the child broke, nearly always because it is exiting: its exit status,
        // announced a moment later, tells the caller more than the broken link.
        match tokio::time::timeout(CHILD_EXIT_GRACE, child_end(&mut ended)).await {
            Ok(end) => Err(end.error(method)),
            Err(_) => {
                tracing::warn!(method, error = %failure, "forwarding to the child failed");
                Err(ErrorData::internal_error(
                    format!("stdio bridge: {method} could not reach the MCP server ({failure})"),
                    None,
                ))
            }
        }
    }
}

impl ServerHandler for Forwarder {
    fn get_info(&self) -> ServerConfig {
        self.init.as_ref().clone()
    }

    // Both eras, whatever the child speaks: the bridge answers `server/discover` and
    // per-request versions itself (rmcp's HTTP server), and relays the requests to its one
    // session with the child. In the `initialize` era, versions up to the one the child agreed
    // to: an older client is answered with its own version (the messages the bridge relays are
    // the same), a newer one with the child's, never with one the child did not accept. ISO
    // dates compare lexically.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Owned(bridge_versions(&self.init.protocol_version))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, ErrorData> {
        tracing::debug!(tool = %request.name, "forwarding tools/call");
        self.relay("tools/call", self.child.call_tool(request))
            .await
            .map(CallToolResponse::from)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, ErrorData> {
        tracing::debug!("forwarding tools/list");
        self.relay("tools/list", self.child.list_tools(request))
            .await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ListPromptsResult, ErrorData> {
        tracing::debug!("forwarding prompts/list");
        self.relay("prompts/list", self.child.list_prompts(request))
            .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<GetPromptResponse, ErrorData> {
        tracing::debug!(prompt = %request.name, "forwarding prompts/get");
        self.relay("prompts/get", self.child.get_prompt(request))
            .await
            .map(GetPromptResponse::from)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ListResourcesResult, ErrorData> {
        tracing::debug!("forwarding resources/list");
        self.relay("resources/list", self.child.list_resources(request))
            .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ListResourceTemplatesResult, ErrorData> {
        tracing::debug!("forwarding resources/templates/list");
        self.relay(
            "resources/templates/list",
            self.child.list_resource_templates(request),
        )
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ReadResourceResponse, ErrorData> {
        tracing::debug!(uri = %request.uri, "forwarding resources/read");
        self.relay("resources/read", self.child.read_resource(request))
            .await
            .map(ReadResourceResponse::from)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<CompleteResult, ErrorData> {
        tracing::debug!("forwarding completion/complete");
        self.relay("completion/complete", self.child.complete(request))
            .await
    }

    async fn on_initialized(&self, _: NotificationContext<RoleServer>) {
        // The child was initialized once by the bridge; HTTP sessions only get logged.
        tracing::debug!("HTTP client initialized");
    }

    async fn on_roots_list_changed(&self, _: NotificationContext<RoleServer>) {
        tracing::debug!("forwarding notifications/roots/list_changed");
        if let Err(e) = self.child.notify_roots_list_changed().await {
            tracing::warn!(error = %e, "forwarding a notification to the child failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child on the other end of in-memory pipes that reads nothing for 12 s (a slow start;
    /// the tests run on a paused clock, so they take no time), then answers each request with
    /// `answer` (`None`: no answer; `{"exit": true}`: it closes its pipes, as a server that dies
    /// on a method it does not know) and records the methods it received.
    fn slow_child(
        answer: fn(&serde_json::Value) -> Option<serde_json::Value>,
    ) -> (
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<Vec<String>>,
    ) {
        use tokio::io::AsyncWriteExt;
        let (bridge_side, child_side) = tokio::io::duplex(64 * 1024);
        let child = tokio::spawn(async move {
            let (read, mut write) = tokio::io::split(child_side);
            let mut lines = BufReader::new(read).lines();
            let mut methods = Vec::new();
            tokio::time::sleep(Duration::from_secs(12)).await;
            while let Ok(Some(line)) = lines.next_line().await {
                let message: serde_json::Value = serde_json::from_str(&line).unwrap();
                methods.push(message["method"].as_str().unwrap_or("").to_owned());
                if methods
                    .last()
                    .is_some_and(|m| m == "notifications/initialized")
                {
                    break;
                }
                if let Some(mut reply) = answer(&message) {
                    if reply["exit"] == true {
                        break;
                    }
                    reply["jsonrpc"] = "2.0".into();
                    reply["id"] = message["id"].clone();
                    let line = format!("{reply}\n");
                    write.write_all(line.as_bytes()).await.unwrap();
                }
            }
            methods
        });
        (bridge_side, child)
    }

    /// How long the tests' children are given to answer `server/discover` (the bridge's default).
    const ASK_WAIT: Duration = Duration::from_secs(15);

    /// [`open_child_session`] over `pipes` with a 60 s deadline.
    async fn open(
        pipes: tokio::io::DuplexStream,
        era_wait: Option<Duration>,
    ) -> std::result::Result<RunningService<RoleClient, ChildLink>, ChildOpen> {
        let (read, write) = tokio::io::split(pipes);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        open_child_session(read, write, deadline, era_wait).await
    }

    fn initialize_result() -> serde_json::Value {
        serde_json::json!({"result": {
            "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "slow-child", "version": "1"}}})
    }

    /// A child that dies on `server/discover` (servers of older SDKs do) or ignores it: the
    /// question is reported unanswered (the bridge then starts it again with `initialize` alone).
    #[tokio::test(start_paused = true)]
    async fn a_child_that_dies_on_or_ignores_discover_leaves_the_era_unanswered() {
        let (pipes, _child) = slow_child(|message| match message["method"].as_str() {
            Some("server/discover") => Some(serde_json::json!({"exit": true})),
            _ => None,
        });
        match open(pipes, Some(ASK_WAIT)).await {
            Err(ChildOpen::EraUnanswered(reason)) => {
                assert!(reason.contains("closed its output"), "{reason}")
            }
            other => panic!("expected an unanswered era, got {:?}", other.map(|_| ())),
        }
        let (pipes, _child) = slow_child(|_| None);
        match open(pipes, Some(ASK_WAIT)).await {
            Err(ChildOpen::EraUnanswered(reason)) => {
                assert!(reason.contains("within 15 s"), "{reason}")
            }
            other => panic!("expected an unanswered era, got {:?}", other.map(|_| ())),
        }
    }

    /// Asked nothing but `initialize` (the second start): the child sees no discover.
    #[tokio::test(start_paused = true)]
    async fn a_child_started_again_is_only_initialized() {
        let (pipes, child) = slow_child(|message| match message["method"].as_str() {
            Some("initialize") => Some(initialize_result()),
            Some(_) => Some(serde_json::json!({"exit": true})),
            None => None,
        });
        let session = open(pipes, None).await.expect("initialized");
        assert_eq!(
            session.peer_info().map(|i| i.protocol_version.clone()),
            Some(ProtocolVersion::V_2025_06_18)
        );
        let methods = tokio::time::timeout(Duration::from_secs(5), child)
            .await
            .expect("the child saw the handshake end")
            .unwrap();
        assert_eq!(methods, ["initialize", "notifications/initialized"]);
        drop(session);
    }

    /// A child of the `initialize` era, slower to start than rmcp's 10 s wait for a discover
    /// answer: it is asked once, refuses discover, and is initialized; nothing reaches it twice.
    #[tokio::test(start_paused = true)]
    async fn a_slow_child_of_the_initialize_era_is_initialized() {
        let (pipes, child) = slow_child(|message| match message["method"].as_str() {
            Some("initialize") => Some(initialize_result()),
            Some(_) => Some(serde_json::json!({
                "error": {"code": -32601, "message": "Method not found"}})),
            None => None,
        });
        let session = open(pipes, Some(ASK_WAIT))
            .await
            .expect("the slow child is initialized");
        let info = session.peer_info().expect("the child's initialize result");
        assert_eq!(info.protocol_version, ProtocolVersion::V_2025_06_18);
        assert_eq!(
            info.server_info.as_ref().map(|s| s.name.as_str()),
            Some("slow-child")
        );
        let methods = tokio::time::timeout(Duration::from_secs(5), child)
            .await
            .expect("the child saw the handshake end")
            .unwrap();
        assert_eq!(
            methods,
            ["server/discover", "initialize", "notifications/initialized"]
        );
        drop(session);
    }

    /// A child of the discover era, as slow: it is never sent `initialize` (which such a server
    /// refuses once it has answered discover) and the session opens in its era.
    #[tokio::test(start_paused = true)]
    async fn a_slow_child_of_the_discover_era_is_discovered() {
        let (pipes, child) = slow_child(|message| match message["method"].as_str() {
            Some("server/discover") => Some(serde_json::json!({"result": {
                "resultType": "complete", "supportedVersions": ["2026-07-28"],
                "capabilities": {"tools": {}}, "ttlMs": 0, "cacheScope": "private"}})),
            Some(_) => Some(serde_json::json!({"error": {"code": -32022,
                "message": "connection is serving the 2026-07-28 protocol"}})),
            None => None,
        });
        let session = open(pipes, Some(ASK_WAIT))
            .await
            .expect("the slow child is discovered");
        let info = session.peer_info().expect("the child's discover result");
        assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);
        drop(session);
        let methods = tokio::time::timeout(Duration::from_secs(5), child)
            .await
            .expect("the pipes closed with the session")
            .unwrap();
        assert!(
            methods.iter().all(|m| m == "server/discover"),
            "{methods:?}"
        );
    }

    #[test]
    fn the_bridge_serves_both_eras_whatever_the_child_speaks() {
        let legacy = bridge_versions(&ProtocolVersion::V_2025_06_18);
        assert_eq!(
            legacy,
            vec![
                ProtocolVersion::V_2024_11_05,
                ProtocolVersion::V_2025_03_26,
                ProtocolVersion::V_2025_06_18,
                ProtocolVersion::V_2026_07_28,
            ]
        );
        let modern = bridge_versions(&ProtocolVersion::V_2026_07_28);
        assert_eq!(modern, ProtocolVersion::KNOWN_VERSIONS.to_vec());
    }
}
