//! `tools/list` is bounded: a server cannot make the prober hold unbounded tools, follow pages
//! forever or keep huge schemas (rmcp servers in this process, over loopback HTTP).
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mcp_support::endpoint;
use rmcp::model::{
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::domain::ToolsOutcome;
use toolshed_core::ports::McpProbe;
use toolshed_core::Error;

/// Lists `per_page` tools a page, `pages` pages (`None`: a next cursor forever), each tool
/// with a description of `description_bytes`.
#[derive(Debug, Clone)]
struct Lister {
    per_page: usize,
    pages: Option<usize>,
    description_bytes: usize,
}

impl ServerHandler for Lister {
    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let page: usize = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let schema: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({"type": "object"})).unwrap();
        let schema = Arc::new(schema);
        let tools = (0..self.per_page)
            .map(|i| {
                Tool::new(
                    format!("tool_{page}_{i}"),
                    "d".repeat(self.description_bytes),
                    schema.clone(),
                )
            })
            .collect();
        let mut result = ListToolsResult::with_all_items(tools);
        if self.pages.is_none_or(|n| page + 1 < n) {
            result.next_cursor = Some((page + 1).to_string());
        }
        Ok(result)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

async fn serve(lister: Lister) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    let service: StreamableHttpService<Lister, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(lister.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn probe(lister: Lister) -> toolshed_core::Result<toolshed_core::domain::ProbeReport> {
    let addr = serve(lister).await;
    RmcpProbe::new()
        .unwrap()
        .probe(&endpoint(addr), Duration::from_secs(60))
        .await
}

fn limit_unit(err: &Error) -> &'static str {
    match err {
        Error::LimitExceeded {
            what: "tools/list",
            unit,
            ..
        } => unit,
        other => panic!("not a tools/list limit: {other:?}"),
    }
}

#[tokio::test]
async fn a_server_within_the_limits_lists_every_page() {
    let report = probe(Lister {
        per_page: 10,
        pages: Some(3),
        description_bytes: 100,
    })
    .await
    .unwrap();
    let ToolsOutcome::Listed { tools } = report.tools else {
        panic!("{:?}", report.tools)
    };
    assert_eq!(tools.len(), 30);
}

#[tokio::test]
async fn too_many_tools_is_a_typed_error() {
    let err = probe(Lister {
        per_page: 600,
        pages: Some(2),
        description_bytes: 10,
    })
    .await
    .unwrap_err();
    assert_eq!(limit_unit(&err), "tools", "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn endless_pages_are_a_typed_error() {
    let err = probe(Lister {
        per_page: 1,
        pages: None,
        description_bytes: 10,
    })
    .await
    .unwrap_err();
    assert_eq!(limit_unit(&err), "pages", "{err}");
}

#[tokio::test]
async fn a_huge_tool_is_a_typed_error() {
    let err = probe(Lister {
        per_page: 1,
        pages: Some(1),
        description_bytes: 200 * 1024,
    })
    .await
    .unwrap_err();
    assert_eq!(limit_unit(&err), "bytes of JSON for one tool", "{err}");
    assert!(err.to_string().len() < 500, "the tool was quoted: {err}");
}
