//! Speaking MCP to a running server.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::conformance::ProtocolEra;
use crate::domain::{Endpoint, ProbeReport, RemoteTarget, ToolCall, ToolCallOutput};
use crate::error::Result;

/// Handshakes with, lists the tools of, and calls tools on an MCP server over streamable HTTP.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait McpProbe: Send + Sync + Debug {
    /// One attempt: `initialize`, then `tools/list` (all pages, then a second time for the
    /// conformance report's [`ListingFacts`](crate::domain::conformance::ListingFacts)), within
    /// `deadline`. A cursor the server sends twice ends the listing and is recorded there.
    ///
    /// # Errors
    /// `Probe` with kind `Unreachable`, `NotMcp`, `HandshakeTimeout` or `Protocol`. A server that
    /// completes the handshake but cannot list tools without configuration is **not** an error:
    /// it returns `ToolsOutcome::Gated`.
    async fn probe(&self, endpoint: &Endpoint, deadline: Duration) -> Result<ProbeReport>;

    /// Readiness after a start: polls the port, then the handshake, with backoff until `deadline`
    /// (never a fixed sleep), and returns the first successful probe.
    ///
    /// # Errors
    /// The last attempt's `Probe` error once the deadline passes (`Unreachable` if the port never
    /// opened, `HandshakeTimeout` if it never answered).
    async fn wait_ready(&self, endpoint: &Endpoint, deadline: Duration) -> Result<ProbeReport>;

    /// One probe of a server someone else runs, as [`Self::probe`]: over https only, through the
    /// deployment's egress policy (every address the host resolves to is checked, and only
    /// checked addresses are connected to), never following a redirect, with the declared
    /// headers sent.
    ///
    /// # Errors
    /// `EgressRefused` naming the host (nothing sent); `InvalidInput { field: "url" }` for a URL
    /// that is not https; otherwise as [`Self::probe`], with the remote URL (without its query)
    /// as the endpoint.
    async fn probe_remote(&self, remote: &RemoteTarget, deadline: Duration) -> Result<ProbeReport>;

    /// Calls a tool. `input_schema`, when given, is checked before anything is sent.
    ///
    /// # Errors
    /// `InvalidToolArguments` (nothing sent), `UnknownTool`, `Probe` with `CallTimeout` or a
    /// transport kind. A tool that fails is `Ok` with `is_error: true`.
    async fn call_tool(
        &self,
        endpoint: &Endpoint,
        call: &ToolCall,
        input_schema: Option<serde_json::Value>,
        deadline: Duration,
    ) -> Result<ToolCallOutput>;

    /// [`Self::call_tool`] with the era the server's verification recorded as a hint (`None`:
    /// not known). An adapter that uses it opens the session in that era first, so a server of
    /// the `initialize` era is not first asked for `server/discover` on every call, and tries
    /// the other era once when the server refuses the hinted one (it changed era since). The
    /// hint changes only the requests sent, never the outcome: this default, which ignores it,
    /// is a correct implementation.
    ///
    /// # Errors
    /// As [`Self::call_tool`].
    async fn call_tool_in_era(
        &self,
        endpoint: &Endpoint,
        call: &ToolCall,
        input_schema: Option<serde_json::Value>,
        deadline: Duration,
        era: Option<ProtocolEra>,
    ) -> Result<ToolCallOutput> {
        let _ = era;
        self.call_tool(endpoint, call, input_schema, deadline).await
    }
}
