//! [`RmcpProbe`]: the [`McpProbe`] port on rmcp's streamable HTTP client.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ErrorCode,
    Implementation, PaginatedRequestParams, ProtocolVersion, RequestMetaObject,
};
use rmcp::service::{ClientInitializeError, ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceError};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::egress::{self, EgressResolver};
use super::{classify, convert, output, schema};
use crate::domain::conformance::{ListingFacts, ProtocolEra, SecondListing};
use crate::domain::drift::tools_digest;
use crate::domain::poisoning;
use crate::domain::{
    check_remote_url, Endpoint, InstanceEnv, McpPrompt, McpTool, ProbeReport, RemoteEgressPolicy,
    RemoteTarget, ToolCall, ToolCallOutput, ToolsOutcome,
};
use crate::error::{Error, ProbeFailureKind, Result};
use crate::ports::McpProbe;
use crate::services::{RemoteAccessSettings, ENV_REMOTE_CA_BUNDLE};

/// A connected MCP client session.
type Session = RunningService<RoleClient, ClientConfig>;

/// How long closing a session may take before it is abandoned (the server's problem then).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the first handshake (`server/discover`, or the era a call was hinted) may go
/// unanswered before the probe tries the other era (a server of the other era should refuse it
/// at once, but one that ignores it must still be reachable); what is left of the deadline then
/// goes to the second handshake.
const FIRST_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most supported versions kept from a `server/discover` answer.
const MAX_SUPPORTED_VERSIONS: usize = 20;

/// Longest supported version kept, in characters.
const MAX_VERSION_CHARS: usize = 32;

/// A connected MCP client session and the era it was opened in.
struct Connection {
    session: Session,
    era: ProtocolEra,
}

/// Longest server-provided text kept in an error detail.
const MAX_DETAIL_CHARS: usize = 300;

/// Longest cursor kept in a conformance fact.
const MAX_CURSOR_CHARS: usize = 80;

/// One complete `tools/list`: the tools and what was seen on the way.
#[derive(Debug, Default)]
struct Listing {
    tools: Vec<McpTool>,
    pages: u32,
    repeated_cursor: Option<String>,
    output_schemas: BTreeMap<String, serde_json::Value>,
}

/// Tunables of [`RmcpProbe`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RmcpProbeConfig {
    /// Largest tool output kept, in serialized bytes (default 256 KiB); beyond it the output is
    /// cut and flagged `truncated`.
    pub max_output_bytes: usize,
    /// First pause of [`McpProbe::wait_ready`] between attempts (default 50 ms); doubles each time.
    pub initial_backoff: Duration,
    /// Longest pause between readiness attempts (default 1 s).
    pub max_backoff: Duration,
    /// Longest single handshake attempt inside `wait_ready` (default 10 s), so one stuck attempt
    /// cannot use the whole readiness deadline.
    pub attempt_timeout: Duration,
    /// Most tools a server may list (default 1000); more fails with `LimitExceeded`.
    pub max_tools: usize,
    /// Most `tools/list` pages followed (default 100); more fails with `LimitExceeded`.
    pub max_tool_pages: usize,
    /// Largest JSON of one tool (name, description, schemas; default 64 KiB); a larger tool
    /// fails with `LimitExceeded`.
    pub max_tool_bytes: usize,
}

impl Default for RmcpProbeConfig {
    fn default() -> Self {
        Self {
            max_output_bytes: 256 * 1024,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(10),
            max_tools: 1000,
            max_tool_pages: 100,
            max_tool_bytes: 64 * 1024,
        }
    }
}

impl RmcpProbeConfig {
    /// Sets [`Self::max_output_bytes`].
    pub fn with_max_output_bytes(mut self, bytes: usize) -> Self {
        self.max_output_bytes = bytes;
        self
    }

    /// Sets [`Self::initial_backoff`] and [`Self::max_backoff`].
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets [`Self::max_tools`], [`Self::max_tool_pages`] and [`Self::max_tool_bytes`].
    pub fn with_tool_limits(mut self, tools: usize, pages: usize, tool_bytes: usize) -> Self {
        self.max_tools = tools;
        self.max_tool_pages = pages;
        self.max_tool_bytes = tool_bytes;
        self
    }

    /// Sets [`Self::attempt_timeout`].
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }
}

/// How long connecting to a remote server may take (TCP and TLS).
const REMOTE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one HTTP request to a remote server may take, its answer included.
const REMOTE_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers a remote's declared settings may not set: the MCP transport's own.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "connection",
    "content-length",
    "content-type",
    "host",
    "last-event-id",
    "mcp-protocol-version",
    "mcp-session-id",
    "transfer-encoding",
];

/// Speaks MCP over streamable HTTP with rmcp. One short-lived session per operation, always
/// closed, so a probe never leaves state behind in the server.
///
/// HTTP proxies from the environment are ignored: endpoints are task or container addresses,
/// and remote servers are reached directly through the egress policy.
#[derive(Debug, Clone)]
pub struct RmcpProbe {
    config: RmcpProbeConfig,
    http: reqwest::Client,
    remote: RemoteAccess,
    /// Set on the one-probe copy that reaches a remote: the https URL sessions open instead of
    /// the endpoint's plain HTTP one, with `http` the remote's guarded client.
    target_url: Option<String>,
}

/// What a probe of a remote server may reach: the egress policy, and the certificate
/// authorities trusted on top of the built-in roots.
#[derive(Debug, Clone, Default)]
struct RemoteAccess {
    policy: Arc<RemoteEgressPolicy>,
    #[cfg(feature = "tls")]
    roots: Vec<reqwest::Certificate>,
}

impl RmcpProbe {
    /// A probe with the default [`RmcpProbeConfig`].
    ///
    /// # Errors
    /// `Backend` if the HTTP client cannot be built (TLS initialisation).
    pub fn new() -> Result<Self> {
        Self::with_config(RmcpProbeConfig::default())
    }

    /// A probe with the given tunables.
    ///
    /// # Errors
    /// `Backend` if the HTTP client cannot be built (TLS initialisation).
    pub fn with_config(config: RmcpProbeConfig) -> Result<Self> {
        // Never follow redirects: a server under test could otherwise point the prober at any
        // address reachable from where it runs (instance metadata, internal services).
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::backend("mcp", "build HTTP client", None, false, e))?;
        Ok(Self {
            config,
            http,
            remote: RemoteAccess::default(),
            target_url: None,
        })
    }

    /// Sets how remote servers are reached ([`McpProbe::probe_remote`]): `policy` (by default
    /// every non-public address is refused) and a PEM bundle of certificate authorities trusted
    /// on top of the built-in roots (a private deployment's, or a test's).
    ///
    /// # Errors
    /// `InvalidInput { field: "config" }` for a bundle without a readable certificate, or a
    /// bundle given to a build without the `tls` feature.
    pub fn with_remote_access(
        mut self,
        policy: RemoteEgressPolicy,
        ca_bundle_pem: Option<&[u8]>,
    ) -> Result<Self> {
        self.remote.policy = Arc::new(policy);
        if let Some(pem) = ca_bundle_pem {
            #[cfg(feature = "tls")]
            {
                let roots = reqwest::Certificate::from_pem_bundle(pem)
                    .ok()
                    .filter(|roots| !roots.is_empty())
                    .ok_or_else(|| {
                        Error::invalid("config", "the remote CA bundle holds no PEM certificate")
                    })?;
                self.remote.roots = roots;
            }
            #[cfg(not(feature = "tls"))]
            {
                let _ = pem;
                return Err(Error::invalid(
                    "config",
                    "a remote CA bundle needs the probe's tls feature",
                ));
            }
        }
        Ok(self)
    }

    /// [`Self::with_remote_access`] from the deployment's settings (the CA bundle read from
    /// its file).
    ///
    /// # Errors
    /// `InvalidInput { field: "config" }` naming the setting when the bundle cannot be read or
    /// holds no certificate.
    pub fn with_remote_settings(self, settings: &RemoteAccessSettings) -> Result<Self> {
        let pem = match &settings.ca_bundle {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Error::invalid(
                    "config",
                    format!("{ENV_REMOTE_CA_BUNDLE}: cannot read the file: {}", e.kind()),
                )
            })?),
            None => None,
        };
        self.with_remote_access(settings.policy.clone(), pem.as_deref())
            .map_err(|e| match e {
                Error::InvalidInput { reason, .. } => {
                    Error::invalid("config", format!("{ENV_REMOTE_CA_BUNDLE}: {reason}"))
                }
                other => other,
            })
    }

    /// The one-probe copy that reaches `remote`: its own HTTP client with the declared
    /// headers, the egress policy as DNS resolver, https only, no redirects, and timeouts.
    fn for_remote(&self, remote: &RemoteTarget) -> Result<Self> {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .dns_resolver(Arc::new(EgressResolver::new(self.remote.policy.clone())))
            .connect_timeout(REMOTE_CONNECT_TIMEOUT)
            .timeout(REMOTE_REQUEST_TIMEOUT)
            .default_headers(remote_headers(&remote.headers)?);
        #[cfg(feature = "tls")]
        let builder = builder.tls_certs_merge(self.remote.roots.iter().cloned());
        let http = builder
            .build()
            .map_err(|e| Error::backend("mcp", "build HTTP client", None, false, e))?;
        Ok(Self {
            config: self.config.clone(),
            http,
            remote: self.remote.clone(),
            target_url: Some(remote.url.clone()),
        })
    }

    /// Opens the TCP port (Unreachable on failure), then opens a session within what is left of
    /// `until`, in the era `first` (`server/discover` when nothing is known: the 2026-07-28
    /// era). When the server refuses that handshake the way a server of the other era does
    /// (see [`refuses_era`]) or leaves it unanswered for [`FIRST_HANDSHAKE_TIMEOUT`], the other
    /// handshake is tried once, on a new transport.
    async fn connect(
        &self,
        endpoint: &Endpoint,
        until: Instant,
        first: ProtocolEra,
    ) -> Result<Connection> {
        let url = self.target_url.clone().unwrap_or_else(|| endpoint.url());
        self.reach(endpoint, until).await?;
        let first_until = until.min(Instant::now() + FIRST_HANDSHAKE_TIMEOUT);
        let refused = match tokio::time::timeout_at(first_until, self.handshake(&url, first)).await
        {
            Ok(Ok(session)) => {
                return Ok(Connection {
                    session,
                    era: first,
                })
            }
            Ok(Err(err)) if refuses_era(first, &err) => {
                tracing::debug!(endpoint = %url, error = %err, "{} refused; trying the other era", method(first));
                format!(
                    "{} refused ({})",
                    method(first),
                    bounded(&err.to_string(), 120)
                )
            }
            Ok(Err(err)) => return Err(self.handshake_error(endpoint, &url, until, err).await),
            Err(_) if Instant::now() < until => {
                tracing::debug!(endpoint = %url, "{} unanswered; trying the other era", method(first));
                format!("{} unanswered", method(first))
            }
            Err(_) => {
                return Err(probe_error(
                    ProbeFailureKind::HandshakeTimeout,
                    endpoint,
                    format!(
                        "connection accepted but {} was not answered before the deadline",
                        method(first)
                    ),
                ))
            }
        };
        let second = other_era(first);
        match tokio::time::timeout_at(until, self.handshake(&url, second)).await {
            Ok(Ok(session)) => Ok(Connection {
                session,
                era: second,
            }),
            Ok(Err(err)) => match self.handshake_error(endpoint, &url, until, err).await {
                Error::Probe {
                    kind,
                    endpoint,
                    detail,
                } => Err(Error::Probe {
                    kind,
                    endpoint,
                    detail: format!("{refused}; {}: {detail}", method(second)),
                }),
                other => Err(other),
            },
            Err(_) => Err(probe_error(
                ProbeFailureKind::HandshakeTimeout,
                endpoint,
                format!(
                    "{refused}; {} was not answered before the deadline",
                    method(second)
                ),
            )),
        }
    }

    /// One handshake of `era` on a fresh transport to `url`.
    async fn handshake(
        &self,
        url: &str,
        era: ProtocolEra,
    ) -> std::result::Result<Session, ClientInitializeError> {
        match era {
            ProtocolEra::Discover => {
                let discover = ClientLifecycleMode::Discover {
                    preferred_versions: preferred_versions(),
                };
                client_config()
                    .serve_with_lifecycle(self.transport(url), discover)
                    .await
            }
            ProtocolEra::Initialize => {
                client_config()
                    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
                    .serve_with_lifecycle(self.transport(url), ClientLifecycleMode::Initialize)
                    .await
            }
        }
    }

    /// A fresh streamable HTTP transport to `url` (each handshake attempt gets its own).
    fn transport(&self, url: &str) -> StreamableHttpClientTransport<reqwest::Client> {
        StreamableHttpClientTransport::with_client(
            self.http.clone(),
            StreamableHttpClientTransportConfig::with_uri(url.to_owned())
                .reinit_on_expired_session(false),
        )
    }

    /// The probe error of a failed handshake.
    async fn handshake_error(
        &self,
        endpoint: &Endpoint,
        url: &str,
        until: Instant,
        err: ClientInitializeError,
    ) -> Error {
        tracing::debug!(endpoint = %url, error = %err, "MCP handshake failed");
        let (kind, detail) = match classify::classify_init_error(&err) {
            // A JSON-RPC-level failure: the server's own words about the handshake.
            Some(kind) => (kind, bounded(&err.to_string(), MAX_DETAIL_CHARS)),
            // rmcp's transport errors may quote the answered body: only the sniff's
            // classification (status and content type) is kept.
            None => {
                let left = until
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(500));
                classify::sniff(&self.http, url, left).await
            }
        };
        probe_error(kind, endpoint, detail)
    }

    /// The versions a `server/discover` server announces (escaped, bounded), asked on the open
    /// session; `None` when it does not answer (the probe goes on without them).
    async fn supported_versions(&self, session: &Session, until: Instant) -> Option<Vec<String>> {
        let info = session.peer_info()?;
        let own = client_config();
        let meta = RequestMetaObject::with_client_context(
            info.protocol_version.clone(),
            own.client_info,
            own.capabilities,
        );
        match tokio::time::timeout_at(until, session.discover(meta)).await {
            Ok(Ok(result)) => Some(
                result
                    .supported_versions
                    .iter()
                    .take(MAX_SUPPORTED_VERSIONS)
                    .map(|v| bounded(&poisoning::escape(v.as_str()), MAX_VERSION_CHARS))
                    .collect(),
            ),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "a second server/discover failed");
                None
            }
            Err(_) => None,
        }
    }

    /// Reads the handshake result and all tool pages of a connected session.
    async fn describe(
        &self,
        connection: &Connection,
        endpoint: &Endpoint,
        until: Instant,
    ) -> Result<ProbeReport> {
        let session = &connection.session;
        let info = session.peer_info().ok_or_else(|| {
            probe_error(
                ProbeFailureKind::Protocol,
                endpoint,
                "no handshake result recorded".into(),
            )
        })?;
        let server = convert::server_info(&info);
        let mut listing = ListingFacts {
            era: connection.era,
            ..ListingFacts::default()
        };
        if connection.era == ProtocolEra::Discover {
            listing.supported_versions = self.supported_versions(session, until).await;
        }
        let tools = match tokio::time::timeout_at(until, self.list_tools(session, endpoint)).await {
            Ok(Ok(Ok(page))) => {
                listing.pages = page.pages;
                listing.repeated_cursor = page.repeated_cursor;
                listing.output_schemas = page.output_schemas;
                listing.second_listing = Some(self.list_again(session, endpoint, until).await);
                if info.capabilities.prompts.is_some() {
                    listing.prompts = self.list_prompts(session, until).await;
                }
                ToolsOutcome::Listed { tools: page.tools }
            }
            Ok(Ok(Err(limit))) => return Err(limit),
            // The gating rule (module docs): a JSON-RPC error after a good handshake.
            Ok(Err(ServiceError::McpError(err))) => {
                let declared = info.capabilities.tools.is_some();
                let reason = if declared {
                    err.message.to_string()
                } else {
                    format!(
                        "server declares no tools capability; tools/list: {}",
                        err.message
                    )
                };
                ToolsOutcome::Gated { reason }
            }
            Ok(Err(err)) => {
                return Err(probe_error(
                    ProbeFailureKind::Protocol,
                    endpoint,
                    format!("tools/list failed: {err}"),
                ));
            }
            Err(_) => {
                return Err(probe_error(
                    ProbeFailureKind::HandshakeTimeout,
                    endpoint,
                    "initialize answered but tools/list did not finish before the deadline".into(),
                ));
            }
        };
        Ok(ProbeReport {
            server,
            tools,
            listing,
        })
    }

    /// A second listing on the same session, for the conformance report: its digest, or why it
    /// failed. Never an error of the probe.
    async fn list_again(
        &self,
        session: &Session,
        endpoint: &Endpoint,
        until: Instant,
    ) -> SecondListing {
        let reason = match tokio::time::timeout_at(until, self.list_tools(session, endpoint)).await
        {
            Ok(Ok(Ok(page))) => {
                return SecondListing::Listed {
                    digest: tools_digest(&page.tools),
                    tools: page.tools.len(),
                }
            }
            Ok(Ok(Err(limit))) => limit.to_string(),
            Ok(Err(ServiceError::McpError(err))) => format!("tools/list: {}", err.message),
            Ok(Err(err)) => format!("tools/list failed: {err}"),
            Err(_) => "tools/list did not finish before the deadline".to_owned(),
        };
        SecondListing::Failed {
            reason: bounded(&reason, MAX_DETAIL_CHARS),
        }
    }

    /// Every tool page, within the configured limits: the outer error is the server's
    /// (transport, JSON-RPC), the inner one a limit it went past (`LimitExceeded`). A cursor the
    /// server already sent ends the listing (recorded, for the conformance report) instead of
    /// reading the same pages again until the page limit.
    async fn list_tools(
        &self,
        session: &Session,
        endpoint: &Endpoint,
    ) -> std::result::Result<Result<Listing>, ServiceError> {
        let limit = |unit: &'static str, limit: usize| Error::LimitExceeded {
            what: "tools/list",
            id: Some(endpoint.to_string()),
            limit: u64::try_from(limit).unwrap_or(u64::MAX),
            unit,
        };
        let mut listing = Listing::default();
        let mut seen_cursors: HashSet<String> = HashSet::new();
        let mut cursor = None;
        for _ in 0..self.config.max_tool_pages {
            let page = session
                .list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor)))
                .await?;
            listing.pages += 1;
            if listing.tools.len() + page.tools.len() > self.config.max_tools {
                return Ok(Err(limit("tools", self.config.max_tools)));
            }
            for tool in &page.tools {
                let bytes = serde_json::to_vec(tool).map_or(usize::MAX, |b| b.len());
                if bytes > self.config.max_tool_bytes {
                    return Ok(Err(limit(
                        "bytes of JSON for one tool",
                        self.config.max_tool_bytes,
                    )));
                }
                let converted = convert::tool(tool);
                if let Some(schema) = convert::output_schema(tool) {
                    listing
                        .output_schemas
                        .entry(converted.name.clone())
                        .or_insert(schema);
                }
                listing.tools.push(converted);
            }
            match page.next_cursor {
                Some(next) if !seen_cursors.insert(next.clone()) => {
                    listing.repeated_cursor =
                        Some(bounded(&poisoning::escape(&next), MAX_CURSOR_CHARS));
                    return Ok(Ok(listing));
                }
                Some(next) => cursor = Some(next),
                None => return Ok(Ok(listing)),
            }
        }
        Ok(Err(limit("pages", self.config.max_tool_pages)))
    }

    /// The prompts a server lists, for the tool-poisoning scan: bounded like tools (pages,
    /// count, bytes of one prompt; an oversized prompt is skipped), never an error of the probe
    /// (a server whose prompts cannot be listed is scanned without them).
    async fn list_prompts(&self, session: &Session, until: Instant) -> Vec<McpPrompt> {
        let mut prompts = Vec::new();
        let mut seen_cursors: HashSet<String> = HashSet::new();
        let mut cursor = None;
        for _ in 0..self.config.max_tool_pages {
            let request =
                session.list_prompts(Some(PaginatedRequestParams::default().with_cursor(cursor)));
            let Ok(Ok(page)) = tokio::time::timeout_at(until, request).await else {
                return prompts;
            };
            for prompt in &page.prompts {
                if prompts.len() >= self.config.max_tools {
                    return prompts;
                }
                let bytes = serde_json::to_vec(prompt).map_or(usize::MAX, |b| b.len());
                if bytes <= self.config.max_tool_bytes {
                    prompts.push(convert::prompt(prompt));
                }
            }
            match page.next_cursor {
                Some(next) if seen_cursors.insert(next.clone()) => cursor = Some(next),
                _ => return prompts,
            }
        }
        prompts
    }

    /// One probe attempt ending at `until`.
    async fn probe_until(&self, endpoint: &Endpoint, until: Instant) -> Result<ProbeReport> {
        let connection = self.connect(endpoint, until, ProtocolEra::Discover).await?;
        let report = self.describe(&connection, endpoint, until).await;
        close(connection.session).await;
        report
    }

    /// Whether the server lists `name` (None when it cannot list tools).
    async fn offers_tool(
        &self,
        session: &Session,
        endpoint: &Endpoint,
        name: &str,
        until: Instant,
    ) -> Option<bool> {
        match tokio::time::timeout_at(until, self.list_tools(session, endpoint)).await {
            Ok(Ok(Ok(listing))) => Some(listing.tools.iter().any(|t| t.name == name)),
            _ => None,
        }
    }

    /// Sends the call on a connected session and maps the answer.
    async fn call_on(
        &self,
        session: &Session,
        endpoint: &Endpoint,
        call: &ToolCall,
        until: Instant,
    ) -> Result<ToolCallOutput> {
        let params =
            CallToolRequestParams::new(call.name.clone()).with_arguments(call.arguments.clone());
        let answer = match tokio::time::timeout_at(until, session.call_tool(params)).await {
            Ok(answer) => answer,
            Err(_) => {
                return Err(probe_error(
                    ProbeFailureKind::CallTimeout,
                    endpoint,
                    format!("tool {:?} did not answer before the deadline", call.name),
                ))
            }
        };
        let unknown = || Error::UnknownTool {
            server_id: endpoint.to_string(),
            tool: call.name.clone(),
        };
        match answer {
            Ok(result) => {
                let is_error = result.is_error == Some(true);
                // Some servers and proxies answer an unknown tool with an error *result*: ask the
                // server's own list rather than guess from the wording, when it can list.
                if is_error {
                    let offered = self.offers_tool(session, endpoint, &call.name, until).await;
                    let says_unknown = mentions_unknown_tool(&result_text(&result), &call.name);
                    if offered == Some(false) || (offered.is_none() && says_unknown) {
                        return Err(unknown());
                    }
                }
                Ok(self.cap(result))
            }
            Err(ServiceError::McpError(err))
                if err.code == ErrorCode::INVALID_PARAMS
                    || err.code == ErrorCode::METHOD_NOT_FOUND =>
            {
                let offered = self.offers_tool(session, endpoint, &call.name, until).await;
                let says_unknown = mentions_unknown_tool(&err.message, &call.name);
                if offered == Some(false) || (offered.is_none() && says_unknown) {
                    Err(unknown())
                } else if err.code == ErrorCode::INVALID_PARAMS {
                    // The server's own validation refused the arguments.
                    Err(Error::InvalidToolArguments {
                        tool: call.name.clone(),
                        pointer: String::new(),
                        reason: err.message.to_string(),
                    })
                } else {
                    Err(probe_error(
                        ProbeFailureKind::Protocol,
                        endpoint,
                        format!("tools/call: {}", err.message),
                    ))
                }
            }
            Err(ServiceError::McpError(err)) => Err(probe_error(
                ProbeFailureKind::Protocol,
                endpoint,
                format!(
                    "tools/call answered JSON-RPC error {}: {}",
                    err.code.0, err.message
                ),
            )),
            Err(ServiceError::Timeout { .. }) => Err(probe_error(
                ProbeFailureKind::CallTimeout,
                endpoint,
                format!("tool {:?} timed out", call.name),
            )),
            Err(err) => Err(probe_error(
                ProbeFailureKind::Protocol,
                endpoint,
                format!("tools/call failed: {err}"),
            )),
        }
    }

    /// Domain output of a result, capped.
    fn cap(&self, result: CallToolResult) -> ToolCallOutput {
        let is_error = result.is_error == Some(true);
        let content = result
            .content
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        output::cap_output(
            content,
            result.structured_content,
            is_error,
            self.config.max_output_bytes,
        )
    }
}

#[async_trait]
impl McpProbe for RmcpProbe {
    async fn probe(&self, endpoint: &Endpoint, deadline: Duration) -> Result<ProbeReport> {
        self.probe_until(endpoint, Instant::now() + deadline).await
    }

    async fn probe_remote(&self, remote: &RemoteTarget, deadline: Duration) -> Result<ProbeReport> {
        let until = Instant::now() + deadline;
        let url = url::Url::parse(&remote.url)
            .map_err(|_| Error::invalid("url", "the remote URL does not parse"))?;
        check_remote_url(&url)?;
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(Error::invalid("url", "a remote URL needs a host")),
        };
        let port = url.port_or_known_default().unwrap_or(443);
        // The endpoint only carries host and port for the reachability check; sessions open
        // the remote's own URL.
        let endpoint = Endpoint::new(host, port, "/")?;
        let label = remote.public_url();
        let probe = self.for_remote(remote)?;
        probe
            .probe_until(&endpoint, until)
            .await
            .map_err(|e| relabel(e, &label))
    }

    async fn wait_ready(&self, endpoint: &Endpoint, deadline: Duration) -> Result<ProbeReport> {
        let until = Instant::now() + deadline;
        let mut backoff = self.config.initial_backoff;
        let mut attempts = 0u32;
        let mut reported: Option<Error> = None;
        loop {
            attempts += 1;
            let attempt_until = until.min(Instant::now() + self.config.attempt_timeout);
            let err = match self.probe_until(endpoint, attempt_until).await {
                Ok(report) => {
                    tracing::debug!(endpoint = %endpoint, attempts, "MCP server ready");
                    return Ok(report);
                }
                Err(err) => err,
            };
            let err = more_telling(reported.take(), err);
            tracing::trace!(endpoint = %endpoint, attempts, error = %err, "MCP server not ready yet");
            let now = Instant::now();
            if now < until {
                tokio::time::sleep_until((now + backoff).min(until)).await;
            }
            // No attempt starts at the deadline: it could only time out, and that timeout would
            // hide what the server answered before.
            if Instant::now() >= until {
                tracing::debug!(endpoint = %endpoint, attempts, error = %err, "MCP server not ready by the deadline");
                return Err(err);
            }
            reported = Some(err);
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    async fn call_tool(
        &self,
        endpoint: &Endpoint,
        call: &ToolCall,
        input_schema: Option<serde_json::Value>,
        deadline: Duration,
    ) -> Result<ToolCallOutput> {
        self.call_tool_in_era(endpoint, call, input_schema, deadline, None)
            .await
    }

    async fn call_tool_in_era(
        &self,
        endpoint: &Endpoint,
        call: &ToolCall,
        input_schema: Option<serde_json::Value>,
        deadline: Duration,
        era: Option<ProtocolEra>,
    ) -> Result<ToolCallOutput> {
        let until = Instant::now() + deadline;
        if let Some(schema) = input_schema.as_ref() {
            schema::validate_arguments(&call.name, schema, &call.arguments)?;
        }
        // The call is made in the era the server speaks: the hinted one first, otherwise
        // discover first, as for a probe.
        let first = era.unwrap_or(ProtocolEra::Discover);
        let connection = self.connect(endpoint, until, first).await?;
        let output = self
            .call_on(&connection.session, endpoint, call, until)
            .await;
        close(connection.session).await;
        output
    }
}

impl RmcpProbe {
    /// Checks that the endpoint accepts TCP connections before `until`; for a remote, only at
    /// addresses the egress policy allows (`EgressRefused` otherwise, before anything is sent).
    async fn reach(&self, endpoint: &Endpoint, until: Instant) -> Result<()> {
        if self.target_url.is_none() {
            return tcp_check(endpoint, until).await;
        }
        let addrs =
            egress::checked_addrs(&self.remote.policy, &endpoint.host, endpoint.port).await?;
        match tokio::time::timeout_at(until, TcpStream::connect(&addrs[..])).await {
            Ok(Ok(_stream)) => Ok(()),
            Ok(Err(err)) => Err(probe_error(
                ProbeFailureKind::Unreachable,
                endpoint,
                format!("connect: {}", err.kind()),
            )),
            Err(_) => Err(probe_error(
                ProbeFailureKind::Unreachable,
                endpoint,
                "connect did not complete before the deadline".into(),
            )),
        }
    }
}

/// The declared headers of a remote as HTTP headers (values marked sensitive, so they are
/// never printed).
///
/// # Errors
/// `InvalidInput { field: "settings" }` for a name that is no header or is the transport's
/// own, or a value that cannot be a header value.
fn remote_headers(values: &InstanceEnv) -> Result<reqwest::header::HeaderMap> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in values.exposed() {
        let header_name = name.replace('_', "-").to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&header_name.as_str()) {
            return Err(Error::invalid(
                "settings",
                format!("{name} would set the transport's own header {header_name}"),
            ));
        }
        let header = reqwest::header::HeaderName::from_bytes(header_name.as_bytes())
            .map_err(|_| Error::invalid("settings", format!("{name} is not a header name")))?;
        let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
            Error::invalid(
                "settings",
                format!("the value of {name} cannot be sent as a header"),
            )
        })?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(headers)
}

/// A remote probe's error naming the remote URL instead of the internal endpoint it was made
/// with.
fn relabel(err: Error, label: &str) -> Error {
    match err {
        Error::Probe { kind, detail, .. } => Error::Probe {
            kind,
            endpoint: label.to_owned(),
            detail,
        },
        Error::LimitExceeded {
            what,
            limit,
            unit,
            id: Some(_),
        } => Error::LimitExceeded {
            what,
            id: Some(label.to_owned()),
            limit,
            unit,
        },
        other => other,
    }
}

/// What the probe says about itself in either handshake.
fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("toolshed-probe", env!("CARGO_PKG_VERSION")),
    )
}

/// The versions the probe asks for in `server/discover`, newest first: every revision rmcp
/// knows, so a server of the new era that still serves older revisions is understood too.
fn preferred_versions() -> Vec<ProtocolVersion> {
    let mut versions = ProtocolVersion::KNOWN_VERSIONS.to_vec();
    versions.reverse();
    versions
}

/// Whether a failed handshake of `era` means "a server of the other era". For
/// `server/discover`: a correlated JSON-RPC error (method not found, invalid request, or an
/// HTTP 4xx that rmcp turns into one) other than the rejections the 2026-07-28 era defines for
/// its own clients. For `initialize`: any correlated JSON-RPC error (a server of the new era
/// answers "unsupported protocol version"); transport failures say nothing about the era.
fn refuses_era(era: ProtocolEra, err: &ClientInitializeError) -> bool {
    match (era, err) {
        (ProtocolEra::Discover, ClientInitializeError::JsonRpcError(data)) => {
            data.code != ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
                && data.code != ErrorCode::HEADER_MISMATCH
        }
        (ProtocolEra::Initialize, ClientInitializeError::JsonRpcError(_)) => true,
        _ => false,
    }
}

/// The era a session falls back to when the server refuses `era`.
fn other_era(era: ProtocolEra) -> ProtocolEra {
    match era {
        ProtocolEra::Discover => ProtocolEra::Initialize,
        ProtocolEra::Initialize => ProtocolEra::Discover,
    }
}

/// The request that opens a session of `era`, as error details name it.
fn method(era: ProtocolEra) -> &'static str {
    match era {
        ProtocolEra::Discover => "server/discover",
        ProtocolEra::Initialize => "initialize",
    }
}

/// Checks that something accepts TCP connections at the endpoint before `until`.
async fn tcp_check(endpoint: &Endpoint, until: Instant) -> Result<()> {
    match tokio::time::timeout_at(
        until,
        TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
    )
    .await
    {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(err)) => Err(probe_error(
            ProbeFailureKind::Unreachable,
            endpoint,
            format!("connect: {err}"),
        )),
        Err(_) => Err(probe_error(
            ProbeFailureKind::Unreachable,
            endpoint,
            "connect did not complete before the deadline".into(),
        )),
    }
}

/// Ends a session (DELETE of the HTTP session), bounded in time.
async fn close(session: Session) {
    if tokio::time::timeout(CLOSE_TIMEOUT, session.cancel())
        .await
        .is_err()
    {
        tracing::debug!("closing the MCP session timed out");
    }
}

/// Concatenated text items of a result.
fn result_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether an error message says the tool does not exist (fallback when tools cannot be listed).
fn mentions_unknown_tool(message: &str, tool: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("unknown tool")
        || lower.contains("tool not found")
        || (lower.contains(&tool.to_lowercase())
            && (lower.contains("unknown") || lower.contains("not found")))
}

/// Of two readiness failures, the one to report: an answer from the server (not MCP, protocol
/// error) says more than a later attempt that could not connect or timed out at the deadline.
fn more_telling(earlier: Option<Error>, latest: Error) -> Error {
    let answered = |e: &Error| {
        matches!(
            e,
            Error::Probe {
                kind: ProbeFailureKind::NotMcp | ProbeFailureKind::Protocol,
                ..
            }
        )
    };
    match earlier {
        Some(earlier) if answered(&earlier) && !answered(&latest) => earlier,
        _ => latest,
    }
}

/// `text` cut to at most `max` characters (an ellipsis marks the cut).
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn probe_error(kind: ProbeFailureKind, endpoint: &Endpoint, detail: String) -> Error {
    Error::Probe {
        kind,
        endpoint: endpoint.to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tool_wording() {
        assert!(mentions_unknown_tool("Unknown tool: nope", "nope"));
        assert!(mentions_unknown_tool("Tool nope not found", "nope"));
        assert!(!mentions_unknown_tool(
            "invalid timezone 'Mars/X'",
            "get_current_time"
        ));
    }
}
