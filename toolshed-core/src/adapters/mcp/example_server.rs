//! [`ExampleServer`]: a small deterministic MCP server (the `mcp-example-server` binary).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use tokio::net::TcpListener;

/// Arguments of `echo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

/// Arguments of `add`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// First addend.
    a: f64,
    /// Second addend.
    b: f64,
}

/// Arguments of `word_count`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct WordCountArgs {
    /// The text whose words are counted.
    text: String,
}

/// An MCP server with three deterministic tools: `echo` {text}, `add` {a, b} and `word_count`
/// {text}. `add` answers a tool error (not a protocol error) when the sum is not finite.
///
/// It counts the `tools/call` requests it receives ([`ExampleServer::calls`]), shared by clones,
/// so tests can prove a rejected call never reached it.
#[derive(Debug, Clone)]
pub struct ExampleServer {
    tool_router: ToolRouter<Self>,
    calls: Arc<AtomicU64>,
}

impl Default for ExampleServer {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router]
impl ExampleServer {
    /// A fresh server with its call counter at zero.
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many `tools/call` requests reached this server (all clones together).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    #[tool(description = "Returns the text it is given.")]
    fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    #[tool(description = "Adds two numbers.")]
    fn add(
        &self,
        Parameters(AddArgs { a, b }): Parameters<AddArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let sum = a + b;
        if sum.is_finite() {
            Ok(CallToolResult::success(vec![ContentBlock::text(
                sum.to_string(),
            )]))
        } else {
            Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "{a} + {b} is not a finite number"
            ))]))
        }
    }

    #[tool(description = "Counts the whitespace-separated words of a text.")]
    fn word_count(&self, Parameters(args): Parameters<WordCountArgs>) -> String {
        args.text.split_whitespace().count().to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ExampleServer {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "toolshed-example",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Deterministic demo tools: echo, add, word_count.")
    }
}

/// Serves `server` over streamable HTTP at `path` on `listener` until `shutdown` completes.
///
/// # Errors
/// The I/O error that ended the HTTP server.
pub async fn serve_example_server(
    server: ExampleServer,
    listener: TcpListener,
    path: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    super::http_server::serve_mcp(
        listener,
        path,
        move || Ok(server.clone()),
        super::http_server::InFlight::new(),
        shutdown,
    )
    .await
}
