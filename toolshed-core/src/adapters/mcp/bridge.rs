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

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
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
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{
    ClientHandler, ErrorData, Peer, RoleClient, RoleServer, ServerHandler, ServiceError, ServiceExt,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::ChildStderr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
    /// How long the child may take to answer `initialize` (default 60 s).
    pub startup_timeout: Duration,
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
}

/// Why a bridge stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeExit {
    /// The child closed its stdout or exited: the bridge has nothing left to serve.
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
        let mut command = tokio::process::Command::new(program);
        command.args(args);
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| bridge_error("spawn", Some(program.clone()), e))?;
        if let Some(stderr) = stderr {
            tokio::spawn(log_stderr(stderr));
        }
        let link = ChildLink;
        let child: RunningService<RoleClient, ChildLink> =
            match tokio::time::timeout(config.startup_timeout, link.serve(transport)).await {
                Ok(Ok(child)) => child,
                Ok(Err(e)) => {
                    return Err(bridge_error("initialize child", Some(program.clone()), e))
                }
                Err(_) => {
                    return Err(Error::Timeout {
                        operation: "stdio bridge child initialize",
                        id: Some(program.clone()),
                        after_ms: u64::try_from(config.startup_timeout.as_millis())
                            .unwrap_or(u64::MAX),
                    })
                }
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
        let forwarder = Forwarder {
            child: child.peer().clone(),
            init: Arc::new(init),
        };
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let path = config.path.clone();
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

/// Serves until the child goes away or shutdown is asked, then stops the child.
async fn run(
    listener: TcpListener,
    path: String,
    forwarder: Forwarder,
    child: RunningService<RoleClient, ChildLink>,
    shutdown: oneshot::Receiver<()>,
) -> std::io::Result<BridgeExit> {
    let child_gone = child.cancellation_token();
    let serve =
        super::http_server::serve_mcp(listener, &path, move || Ok(forwarder.clone()), async move {
            // A dropped sender (bridge handle dropped) also means stop.
            let _ = shutdown.await;
        });
    let waiting = child.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        served = serve => {
            served?;
            tracing::info!("stdio bridge shutting down; stopping the child");
            child_gone.cancel();
            // Bounded: a child that ignores the close is killed when the transport drops.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut waiting).await;
            Ok(BridgeExit::Shutdown)
        }
        quit = &mut waiting => {
            tracing::warn!(reason = ?quit.ok(), "child MCP server exited; stopping the bridge");
            Ok(BridgeExit::ChildExited)
        }
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

/// The bridge as a client of the child: logs what the child sends on its own.
#[derive(Debug, Clone, Default)]
struct ChildLink;

impl ClientHandler for ChildLink {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("toolshed-stdio-bridge", env!("CARGO_PKG_VERSION")),
        )
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
}

/// The child's answer as the HTTP client's answer.
fn relay<T>(
    method: &'static str,
    answer: std::result::Result<T, ServiceError>,
) -> std::result::Result<T, ErrorData> {
    answer.map_err(|e| match e {
        ServiceError::McpError(error) => error,
        other => {
            tracing::warn!(method, error = %other, "forwarding to the child failed");
            ErrorData::internal_error(
                format!("stdio bridge: {method} could not reach the server: {other}"),
                None,
            )
        }
    })
}

impl ServerHandler for Forwarder {
    fn get_info(&self) -> ServerConfig {
        self.init.as_ref().clone()
    }

    // Versions up to the one the child agreed to: an older client is answered with its own
    // version (the messages the bridge relays are the same), a newer one with the child's, never
    // with a version the child did not accept. ISO dates compare lexically.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        let child = self.init.protocol_version.as_str();
        let versions: Vec<ProtocolVersion> = ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .filter(|v| v.as_str() <= child)
            .cloned()
            .collect();
        if versions.is_empty() {
            Cow::Owned(vec![self.init.protocol_version.clone()])
        } else {
            Cow::Owned(versions)
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, ErrorData> {
        tracing::debug!(tool = %request.name, "forwarding tools/call");
        relay("tools/call", self.child.call_tool(request).await).map(CallToolResponse::from)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, ErrorData> {
        tracing::debug!("forwarding tools/list");
        relay("tools/list", self.child.list_tools(request).await)
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ListPromptsResult, ErrorData> {
        tracing::debug!("forwarding prompts/list");
        relay("prompts/list", self.child.list_prompts(request).await)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<GetPromptResponse, ErrorData> {
        tracing::debug!(prompt = %request.name, "forwarding prompts/get");
        relay("prompts/get", self.child.get_prompt(request).await).map(GetPromptResponse::from)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ListResourcesResult, ErrorData> {
        tracing::debug!("forwarding resources/list");
        relay("resources/list", self.child.list_resources(request).await)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ListResourceTemplatesResult, ErrorData> {
        tracing::debug!("forwarding resources/templates/list");
        relay(
            "resources/templates/list",
            self.child.list_resource_templates(request).await,
        )
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<ReadResourceResponse, ErrorData> {
        tracing::debug!(uri = %request.uri, "forwarding resources/read");
        relay("resources/read", self.child.read_resource(request).await)
            .map(ReadResourceResponse::from)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _: RequestContext<RoleServer>,
    ) -> std::result::Result<CompleteResult, ErrorData> {
        tracing::debug!("forwarding completion/complete");
        relay("completion/complete", self.child.complete(request).await)
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
