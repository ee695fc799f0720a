//! The facts of the conformance report as the real probe gathers them from rmcp servers in this
//! process (over loopback HTTP), judged by the domain: a second listing, the pages and a cursor
//! that comes back, output schemas, and tool names and schemas a host would stumble on.
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcp_support::endpoint;
use rmcp::model::{
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::domain::conformance::{self, Outcome, ProtocolEra, SchemaState, SecondListing};
use toolshed_core::domain::{ConformanceReport, ProbeReport};
use toolshed_core::ports::McpProbe;

/// How a crafted server pages and shapes its tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Two pages of well-formed tools, the first with an output schema.
    Paged,
    /// Page 0 points at cursor `again`, which points at itself.
    CursorLoop,
    /// Each listing adds a tool.
    Growing,
    /// Names and schemas a host would stumble on.
    Sloppy,
}

#[derive(Debug, Clone)]
struct Crafted {
    shape: Shape,
    listings: Arc<AtomicUsize>,
}

fn object(value: serde_json::Value) -> Arc<JsonObject> {
    Arc::new(serde_json::from_value(value).unwrap())
}

fn tool(name: &str) -> Tool {
    Tool::new(
        name.to_owned(),
        "Does one thing.",
        object(json!({"type": "object", "properties": {"x": {"type": "string"}}})),
    )
}

impl ServerHandler for Crafted {
    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let cursor = request.and_then(|r| r.cursor);
        let (tools, next) = match (self.shape, cursor.as_deref()) {
            (Shape::Paged, None) => {
                let mut typed = tool("get_user");
                typed.output_schema = Some(object(json!({
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"]
                })));
                (vec![typed, tool("admin.tools.list")], Some("2"))
            }
            (Shape::Paged, Some(_)) => (vec![tool("DATA_EXPORT_v2")], None),
            (Shape::CursorLoop, None) => (vec![tool("first")], Some("again")),
            (Shape::CursorLoop, Some(_)) => (vec![tool("looped")], Some("again")),
            (Shape::Growing, _) => {
                let n = self.listings.fetch_add(1, Ordering::SeqCst);
                ((0..=n).map(|i| tool(&format!("tool_{i}"))).collect(), None)
            }
            (Shape::Sloppy, _) => {
                let mut untyped = tool("untyped");
                untyped.input_schema = object(json!({"properties": {"x": {"type": "strin"}}}));
                let mut bad_output = tool("bad_output");
                bad_output.output_schema = Some(object(json!({"type": "array"})));
                (
                    vec![
                        tool("read file"),
                        tool("dup"),
                        tool("dup"),
                        tool(&"n".repeat(129)),
                        untyped,
                        bad_output,
                    ],
                    None,
                )
            }
        };
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next.map(str::to_owned);
        Ok(result)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

async fn serve(shape: Shape) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let crafted = Crafted {
        shape,
        listings: Arc::new(AtomicUsize::new(0)),
    };
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    let service: StreamableHttpService<Crafted, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(crafted.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn probe(shape: Shape) -> (ProbeReport, ConformanceReport) {
    let addr = serve(shape).await;
    let report = RmcpProbe::new()
        .unwrap()
        .probe(&endpoint(addr), Duration::from_secs(60))
        .await
        .unwrap();
    let judged = conformance::assess(&report);
    (report, judged)
}

fn outcomes(r: &ConformanceReport) -> Vec<(&str, Outcome)> {
    r.checks
        .iter()
        .map(|c| (c.id.as_str(), c.outcome))
        .collect()
}

#[tokio::test]
async fn a_well_behaved_paged_server_passes_every_check() {
    let (report, judged) = probe(Shape::Paged).await;
    assert_eq!(report.listing.pages, 2);
    // rmcp's servers speak both eras: the probe takes the newer one.
    assert_eq!(report.listing.era, ProtocolEra::Discover);
    assert!(matches!(
        report.listing.second_listing,
        Some(SecondListing::Listed { tools: 3, .. })
    ));
    assert_eq!(judged.overall(), Outcome::Pass, "{judged:#?}");
    assert!(
        conformance::KNOWN_VERSIONS.contains(&judged.protocol_version.as_str()),
        "{}",
        judged.protocol_version
    );
    let known: Vec<String> = conformance::KNOWN_VERSIONS
        .iter()
        .map(|v| (*v).to_owned())
        .collect();
    assert_eq!(judged.supported_versions, Some(known));
    let output = |name: &str| {
        judged
            .tools
            .iter()
            .find(|t| t.tool == name)
            .map(|t| t.output_schema)
    };
    assert_eq!(output("get_user"), Some(SchemaState::Valid));
    assert_eq!(output("admin.tools.list"), Some(SchemaState::Absent));
    assert_eq!(output("DATA_EXPORT_v2"), Some(SchemaState::Absent));
    let detail = |id: &str| judged.check(id).map(|c| c.detail.clone()).unwrap();
    assert_eq!(detail("MCP-C008"), "2 pages followed to the end");
    assert!(detail("MCP-C007").starts_with("1 of 3 tools declare an output schema"));
}

#[tokio::test]
async fn a_cursor_that_comes_back_ends_the_listing_and_fails_pagination() {
    let (report, judged) = probe(Shape::CursorLoop).await;
    let names: Vec<&str> = report.tools().iter().map(|t| t.name.as_str()).collect();
    // The looped page is read once, then the repeated cursor stops the listing.
    assert_eq!(names, ["first", "looped"]);
    assert_eq!(report.listing.repeated_cursor.as_deref(), Some("again"));
    let check = judged.check("MCP-C008").unwrap();
    assert_eq!(check.outcome, Outcome::Fail, "{check:?}");
    assert!(check.detail.contains("\"again\""), "{check:?}");
    assert_eq!(judged.check("MCP-C002").unwrap().outcome, Outcome::Pass);
}

#[tokio::test]
async fn a_tool_list_that_changes_between_listings_fails_stability() {
    let (report, judged) = probe(Shape::Growing).await;
    assert_eq!(report.tools().len(), 1);
    assert!(matches!(
        report.listing.second_listing,
        Some(SecondListing::Listed { tools: 2, .. })
    ));
    let check = judged.check("MCP-C002").unwrap();
    assert_eq!(check.outcome, Outcome::Fail, "{check:?}");
    assert!(
        check.detail.starts_with("two listings differ: 1 tools"),
        "{check:?}"
    );
}

#[tokio::test]
async fn sloppy_names_and_schemas_are_reported_per_rule() {
    let (_, judged) = probe(Shape::Sloppy).await;
    assert_eq!(
        outcomes(&judged),
        [
            ("MCP-C001", Outcome::Pass),
            ("MCP-C002", Outcome::Pass),
            ("MCP-C003", Outcome::Warn),
            ("MCP-C004", Outcome::Warn),
            ("MCP-C005", Outcome::Warn),
            ("MCP-C006", Outcome::Fail),
            ("MCP-C007", Outcome::Fail),
            ("MCP-C008", Outcome::Pass),
        ],
        "{judged:#?}"
    );
    let detail = |id: &str| judged.check(id).map(|c| c.detail.clone()).unwrap();
    assert!(detail("MCP-C004").contains("\"read file\""));
    assert!(detail("MCP-C005").contains("\"dup\""));
    assert!(
        detail("MCP-C006").contains("\"untyped\""),
        "{}",
        detail("MCP-C006")
    );
    assert!(detail("MCP-C007").contains("\"bad_output\" has type \"array\""));
    assert_eq!(judged.overall(), Outcome::Fail);
}
