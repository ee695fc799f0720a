//! The [`McpProbe`](crate::ports::McpProbe) adapter on `rmcp`, the official Rust MCP SDK.
//!
//! - [`RmcpProbe`]: probe (handshake + all tool pages), readiness with backoff, and tool calls
//!   with arguments checked against the tool's JSON schema before anything is sent.
//! - `StdioBridge` (feature `mcp-server`): serves a stdio-only MCP server over streamable HTTP,
//!   so every verified image answers the same way (the `mcp-stdio-bridge` package).
//! - `ExampleServer` (feature `mcp-server`): a small deterministic MCP server
//!   (the `mcp-example-server` package).
//!
//! rmcp types never leave this module: the core sees only [`crate::domain`] types.
//!
//! ## Protocol eras
//! Every session (probe, readiness, tool call) opens with `server/discover` (revision
//! 2026-07-28: the server announces its versions, the version then travels in each request's
//! `_meta`, there is no `initialize`). A server that refuses it the way older servers do — a
//! JSON-RPC error such as "method not found", or an HTTP 4xx that rmcp turns into one — or leaves
//! it unanswered for 10 s, is opened again with `initialize` (2025-11-25 asked; the server picks).
//! The probe report records the era (`ListingFacts::era`), the negotiated version and, in the
//! discover era, the announced versions (`ListingFacts::supported_versions`).
//!
//! ## Failure classification
//! | what happened | result |
//! |---|---|
//! | TCP connect refused or timed out | `Probe { kind: Unreachable }` |
//! | connected, neither `server/discover` nor `initialize` answered before the deadline | `Probe { kind: HandshakeTimeout }` |
//! | an HTTP server answered something that is not JSON-RPC / SSE | `Probe { kind: NotMcp }` |
//! | it answered a redirect (never followed: the prober fetches nothing a server points it at) | `Probe { kind: NotMcp }` |
//! | JSON-RPC spoken but the handshake broke (error, wrong result, bad version) | `Probe { kind: Protocol }` |
//! | handshake ok, `tools/list` answered with a JSON-RPC error | `Ok`, `ToolsOutcome::Gated { reason }` |
//! | `tools/list` past its bounds (tools, pages, bytes of one tool; `RmcpProbeConfig`) | `LimitExceeded` |
//!
//! Error details name what was answered (status, content type), never the bytes of an answered
//! body: a server cannot use the prober to read something back through an error.
//!
//! **Tools gated** is the rule for servers that need configuration (an API key, an environment
//! variable) before they can list tools: the server completed `initialize`, so it speaks MCP and
//! the image is verified, but its `tools/list` answered with a JSON-RPC error (whatever the code,
//! whether or not it declared the `tools` capability). The error message is the recorded reason.
//! A `tools/list` that breaks at the transport level or times out is a failure, not gating.
//!
//! ## Remote servers
//! [`McpProbe::probe_remote`](crate::ports::McpProbe::probe_remote) reaches a server someone else
//! runs (an imported remote) at its https URL: a client of its own per probe, with the declared
//! headers (values marked sensitive), https only, no redirects, connect and request timeouts, and
//! a DNS resolver that applies the deployment's [`RemoteEgressPolicy`](crate::domain::RemoteEgressPolicy):
//! a host any of whose addresses is refused is `EgressRefused` (naming the host only) before
//! anything is sent, and connections go only to checked addresses. Extra trusted roots and
//! allowed networks come from [`RmcpProbe::with_remote_access`]. The probe itself is the same as
//! for a task (discover, else initialize; tools; conformance facts).
//!
//! ## How a server's transport reaches HTTP
//! A registration says how the image speaks MCP (`domain::Transport`):
//! - `Transport::Http { port, path }`: the image serves streamable HTTP itself; the probe talks to
//!   `http://<task>:port/path`.
//! - `Transport::Stdio { command }`: the server speaks stdio only. The verification build adds the
//!   static stdio bridge and makes it the entrypoint, so the image serves `:8000/mcp` like any
//!   other:
//!
//! ```dockerfile
//! COPY toolshed-stdio-bridge /toolshed-stdio-bridge
//! EXPOSE 8000
//! # the registered command follows "--", one JSON array element per argument
//! ENTRYPOINT ["/toolshed-stdio-bridge", "--port", "8000", "--host", "0.0.0.0", "--path", "/mcp", "--", "mcp-server-time"]
//! CMD []
//! ```
//!
//! The bridge serves both eras on HTTP whatever its child speaks (it answers `server/discover`
//! itself and relays requests to its one session with the child, which it opens like the probe:
//! `server/discover`, else `initialize`; it gives the child 15 s to answer discover, since on
//! pipes a slow start is no refusal and a second request would meet the late answer to the first,
//! and starts a child that exits on, hangs on or ignores discover again with `initialize` alone). It opens its port only after the child answered, so readiness
//! (`wait_ready`: poll the port, then the handshake, with backoff) needs no fixed sleep. It exits
//! when the child exits, so the task stops with its server.

mod classify;
mod convert;
mod egress;
mod output;
mod probe;
mod schema;

#[cfg(feature = "mcp-server")]
mod bridge;
#[cfg(feature = "mcp-server")]
mod child_era;
#[cfg(feature = "mcp-server")]
mod example_server;
#[cfg(feature = "mcp-server")]
mod http_server;
#[cfg(feature = "mcp-server")]
mod process;

pub use probe::{RmcpProbe, RmcpProbeConfig};
pub use schema::validate_arguments;

#[cfg(feature = "mcp-server")]
pub use bridge::{BridgeConfig, BridgeExit, StdioBridge};
#[cfg(feature = "mcp-server")]
pub use example_server::{serve_example_server, ExampleServer};
#[cfg(feature = "mcp-server")]
pub use process::{init_tracing, termination_signal};
