//! Protocol eras: the probe opens sessions with `server/discover` (2026-07-28) and falls back to
//! `initialize` when a server refuses it. rmcp servers in this process on loopback HTTP, each
//! narrowed to one era: one that speaks only 2026-07-28 (it refuses `initialize`), and one that
//! speaks only 2025-06-18 and refuses `server/discover` either as a JSON-RPC "method not found"
//! or, like older HTTP servers, with a plain HTTP 400. Each test first shows with a plain rmcp
//! client that the server really refuses the other era, so a probe that ignored eras would fail.
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_support::{call, endpoint, text};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ContentBlock, DiscoverResult, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::domain::conformance::{self, Outcome, ProtocolEra};
use toolshed_core::ports::McpProbe;

const DEADLINE: Duration = Duration::from_secs(60);

/// Which era a test server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    /// 2026-07-28 only: `server/discover`, no `initialize`.
    DiscoverOnly,
    /// 2025-06-18 only; `server/discover` is a JSON-RPC "method not found".
    InitializeOnly,
    /// 2025-06-18 only; a `server/discover` POST is answered HTTP 400 before any JSON-RPC.
    InitializeOnlyHttp400,
    /// rmcp's default: every version it knows, both eras.
    Both,
}

#[derive(Debug, Clone)]
struct Adder {
    era: Era,
}

fn schema() -> Arc<JsonObject> {
    Arc::new(
        serde_json::from_value(json!({
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"]
        }))
        .unwrap(),
    )
}

impl ServerHandler for Adder {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new(format!("adder-{:?}", self.era), "1.0.0"),
        )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        match self.era {
            Era::DiscoverOnly => Cow::Owned(vec![ProtocolVersion::V_2026_07_28]),
            Era::InitializeOnly | Era::InitializeOnlyHttp400 => {
                Cow::Owned(vec![ProtocolVersion::V_2025_06_18])
            }
            Era::Both => Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS),
        }
    }

    async fn discover(&self, _: RequestContext<RoleServer>) -> Result<DiscoverResult, ErrorData> {
        match self.era {
            // What a server that predates the method answers.
            Era::InitializeOnly | Era::InitializeOnlyHttp400 => Err(ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "Method not found: server/discover",
                None,
            )),
            Era::DiscoverOnly | Era::Both => Ok(DiscoverResult::from_server_info(
                self.supported_protocol_versions().into_owned(),
                self.get_info(),
            )),
        }
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "add",
            "Adds two integers.",
            schema(),
        )]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != "add" {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {}", request.name),
                None,
            ));
        }
        let args = request.arguments.unwrap_or_default();
        let int = |k: &str| args.get(k).and_then(serde_json::Value::as_i64);
        let result = match (int("a"), int("b")) {
            (Some(a), Some(b)) => {
                CallToolResult::success(vec![ContentBlock::text((a + b).to_string())])
            }
            _ => CallToolResult::error(vec![ContentBlock::text("a and b must be integers")]),
        };
        Ok(CallToolResponse::from(result))
    }
}

/// Answers a `server/discover` POST with a plain HTTP 400, as HTTP servers of the `initialize`
/// era do for any request without a session that is not `initialize`.
async fn refuse_discover(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let is_discover = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .is_some_and(|m| m["method"] == "server/discover");
    if is_discover {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "Bad Request: Session ID is required",
        )
            .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The JSON-RPC methods a server received, in order.
type Methods = Arc<std::sync::Mutex<Vec<String>>>;

/// Records the method of each JSON-RPC request (or notification) POSTed to the server.
async fn record_method(methods: Methods, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    if let Some(method) = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|m| m["method"].as_str().map(str::to_owned))
    {
        methods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(method);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Like [`serve`], recording the methods the server receives.
async fn serve_recording(era: Era) -> (SocketAddr, Methods) {
    let methods = Methods::default();
    let recorded = methods.clone();
    let addr = serve_with(era, move |router| {
        router.layer(axum::middleware::from_fn(move |request, next| {
            record_method(recorded.clone(), request, next)
        }))
    })
    .await;
    (addr, methods)
}

async fn serve(era: Era) -> SocketAddr {
    serve_with(era, |router| router).await
}

/// Serves the adder of `era` at `/mcp`, with `outer` applied to the router last (its layers see
/// every request first).
async fn serve_with(era: Era, outer: impl FnOnce(axum::Router) -> axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Adder { era };
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    let service: StreamableHttpService<Adder, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut router = axum::Router::new().nest_service("/mcp", service);
    if era == Era::InitializeOnlyHttp400 {
        router = router.layer(axum::middleware::from_fn(refuse_discover));
    }
    let router = outer(router);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn client() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("era-test", "1"),
    )
}

fn transport(addr: SocketAddr) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp")),
    )
}

/// Whether a plain rmcp client gets a session in `lifecycle`.
async fn opens(addr: SocketAddr, lifecycle: ClientLifecycleMode) -> bool {
    let client = match lifecycle {
        ClientLifecycleMode::Initialize => {
            client().with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
        }
        _ => client(),
    };
    let opened = tokio::time::timeout(
        DEADLINE,
        client.serve_with_lifecycle(transport(addr), lifecycle),
    )
    .await
    .expect("the handshake is answered");
    match opened {
        Ok(session) => {
            let _ = session.cancel().await;
            true
        }
        Err(_) => false,
    }
}

fn discover_only() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28, ProtocolVersion::V_2025_06_18],
    }
}

/// Probes, checks the one tool, calls it twice (a sum, then a tool error) and returns the
/// report and its conformance judgement.
async fn probe_and_call(
    addr: SocketAddr,
) -> (
    toolshed_core::domain::ProbeReport,
    toolshed_core::domain::ConformanceReport,
) {
    let probe = RmcpProbe::new().unwrap();
    let ep = endpoint(addr);
    let report = probe.probe(&ep, DEADLINE).await.unwrap();
    let tools = report.tools();
    assert_eq!(tools.len(), 1, "{report:#?}");
    assert_eq!(tools[0].name, "add");
    assert_eq!(tools[0].input_schema["required"], json!(["a", "b"]));
    let schema = Some(tools[0].input_schema.clone());
    let out = probe
        .call_tool(
            &ep,
            &call("add", json!({"a": 40, "b": 2})),
            schema,
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(!out.is_error, "{out:?}");
    assert_eq!(text(&out), "42");
    let out = probe
        .call_tool(&ep, &call("add", json!({"a": "x", "b": 2})), None, DEADLINE)
        .await
        .unwrap();
    assert!(out.is_error, "{out:?}");
    let judged = conformance::assess(&report);
    (report, judged)
}

#[tokio::test]
async fn a_server_of_the_2026_era_only_is_verified_and_called_with_discover() {
    let addr = serve(Era::DiscoverOnly).await;
    assert!(
        !opens(addr, ClientLifecycleMode::Initialize).await,
        "the server must refuse initialize"
    );
    let (report, judged) = probe_and_call(addr).await;
    assert_eq!(report.listing.era, ProtocolEra::Discover);
    assert_eq!(report.server.protocol_version, "2026-07-28");
    assert_eq!(report.server.name.as_deref(), Some("adder-DiscoverOnly"));
    assert_eq!(
        report.listing.supported_versions,
        Some(vec!["2026-07-28".to_owned()])
    );
    assert_eq!(judged.era, ProtocolEra::Discover);
    assert_eq!(judged.overall(), Outcome::Pass, "{judged:#?}");
    assert_eq!(
        judged.check("MCP-C001").map(|c| c.detail.as_str()),
        Some("discover era; negotiated 2026-07-28; supports 2026-07-28")
    );
}

#[tokio::test]
async fn a_server_of_2025_06_18_only_is_verified_and_called_with_initialize() {
    for era in [Era::InitializeOnly, Era::InitializeOnlyHttp400] {
        let addr = serve(era).await;
        assert!(
            !opens(addr, discover_only()).await,
            "{era:?}: the server must refuse server/discover"
        );
        let (report, judged) = probe_and_call(addr).await;
        assert_eq!(report.listing.era, ProtocolEra::Initialize, "{era:?}");
        assert_eq!(report.server.protocol_version, "2025-06-18", "{era:?}");
        assert_eq!(report.listing.supported_versions, None, "{era:?}");
        assert_eq!(judged.overall(), Outcome::Pass, "{era:?}: {judged:#?}");
        assert_eq!(
            judged.check("MCP-C001").map(|c| c.detail.as_str()),
            Some("initialize era; negotiated 2025-06-18; supported versions not announced"),
            "{era:?}"
        );
    }
}

#[tokio::test]
async fn a_server_of_both_eras_is_probed_in_the_newer_one() {
    let addr = serve(Era::Both).await;
    assert!(opens(addr, ClientLifecycleMode::Initialize).await);
    let (report, judged) = probe_and_call(addr).await;
    assert_eq!(report.listing.era, ProtocolEra::Discover);
    assert_eq!(report.server.protocol_version, "2026-07-28");
    let supported = report.listing.supported_versions.clone().unwrap();
    assert_eq!(
        supported,
        [
            "2024-11-05",
            "2025-03-26",
            "2025-06-18",
            "2025-11-25",
            "2026-07-28"
        ]
    );
    assert_eq!(judged.overall(), Outcome::Pass, "{judged:#?}");
}

/// Takes the methods recorded so far.
fn drain(methods: &Methods) -> Vec<String> {
    std::mem::take(
        &mut *methods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

#[tokio::test]
async fn a_call_hinted_with_the_initialize_era_never_asks_for_server_discover() {
    for era in [Era::InitializeOnly, Era::InitializeOnlyHttp400] {
        let (addr, methods) = serve_recording(era).await;
        let probe = RmcpProbe::new().unwrap();
        let ep = endpoint(addr);
        let add = call("add", json!({"a": 40, "b": 2}));
        let out = probe
            .call_tool_in_era(&ep, &add, None, DEADLINE, Some(ProtocolEra::Initialize))
            .await
            .unwrap();
        assert_eq!(text(&out), "42", "{era:?}");
        let hinted = drain(&methods);
        assert!(
            !hinted.iter().any(|m| m == "server/discover"),
            "{era:?}: {hinted:?}"
        );
        assert_eq!(
            hinted.first().map(String::as_str),
            Some("initialize"),
            "{era:?}"
        );
        assert!(
            hinted.iter().any(|m| m == "tools/call"),
            "{era:?}: {hinted:?}"
        );
        // Without a hint (a server without a record) the call still works, after the refused
        // `server/discover` the hint saves.
        let out = probe.call_tool(&ep, &add, None, DEADLINE).await.unwrap();
        assert_eq!(text(&out), "42", "{era:?}");
        let unhinted = drain(&methods);
        assert_eq!(
            unhinted.first().map(String::as_str),
            Some("server/discover"),
            "{era:?}: {unhinted:?}"
        );
        assert!(unhinted.iter().any(|m| m == "initialize"), "{era:?}");
    }
}

#[tokio::test]
async fn a_call_hinted_with_the_discover_era_goes_straight_to_server_discover() {
    let (addr, methods) = serve_recording(Era::Both).await;
    let probe = RmcpProbe::new().unwrap();
    let out = probe
        .call_tool_in_era(
            &endpoint(addr),
            &call("add", json!({"a": 1, "b": 2})),
            None,
            DEADLINE,
            Some(ProtocolEra::Discover),
        )
        .await
        .unwrap();
    assert_eq!(text(&out), "3");
    let methods = drain(&methods);
    assert_eq!(
        methods.first().map(String::as_str),
        Some("server/discover"),
        "{methods:?}"
    );
    assert!(!methods.iter().any(|m| m == "initialize"), "{methods:?}");
}

#[tokio::test]
async fn a_server_that_left_the_hinted_era_is_called_in_the_other_one() {
    // Verified in the `initialize` era, since upgraded to 2026-07-28 only.
    let (addr, methods) = serve_recording(Era::DiscoverOnly).await;
    let probe = RmcpProbe::new().unwrap();
    let out = probe
        .call_tool_in_era(
            &endpoint(addr),
            &call("add", json!({"a": 2, "b": 2})),
            None,
            DEADLINE,
            Some(ProtocolEra::Initialize),
        )
        .await
        .unwrap();
    assert_eq!(text(&out), "4");
    let methods = drain(&methods);
    let opened: Vec<&str> = methods
        .iter()
        .map(String::as_str)
        .filter(|m| *m == "initialize" || *m == "server/discover")
        .collect();
    assert_eq!(opened, ["initialize", "server/discover"], "{methods:?}");
}
