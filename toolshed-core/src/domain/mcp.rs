//! What the core knows about MCP: endpoints, tools, probe reports and tool calls. No SDK types.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::conformance::ListingFacts;
use crate::error::{Error, Result};

/// Where a running MCP server answers streamable HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// HTTP path of the MCP endpoint, starting with `/` (usually `/mcp`).
    pub path: String,
}

impl Endpoint {
    /// Builds an endpoint; `path` must start with `/`.
    pub fn new(host: impl Into<String>, port: u16, path: impl Into<String>) -> Result<Self> {
        let host = host.into();
        let path = path.into();
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            return Err(Error::invalid(
                "endpoint_host",
                format!("{host:?} is not a host"),
            ));
        }
        if port == 0 {
            return Err(Error::invalid("endpoint_port", "must be 1-65535"));
        }
        validate_http_path(&path)?;
        Ok(Self { host, port, path })
    }

    /// `http://host:port/path` (IPv6 hosts bracketed).
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            format!("http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// A server someone else runs (an imported remote), as the probe reaches it: over https, through
/// the deployment's egress policy, never launched here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    /// Its streamable HTTP endpoint (an https URL from the imported document).
    pub url: String,
    /// Values of the headers the remote declared, by setting name (`X_API_KEY`); each is sent as
    /// the header of that name with `_` written `-` (header names are case-insensitive). Values
    /// never appear in `Debug` output.
    pub headers: super::InstanceEnv,
}

impl RemoteTarget {
    /// The URL without its query and fragment: what errors and logs may show.
    pub fn public_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut url) => {
                url.set_query(None);
                url.set_fragment(None);
                url.to_string()
            }
            Err(_) => "the remote URL".to_owned(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// Validates an MCP HTTP path: starts with `/`, at most 256 visible ASCII characters.
pub fn validate_http_path(path: &str) -> Result<()> {
    if path.starts_with('/') && path.len() <= 256 && path.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "mcp_path",
            format!("{path:?} must start with '/' and be at most 256 visible ASCII characters"),
        ))
    }
}

/// One tool a server offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    /// Tool name.
    pub name: String,
    /// Human description, when the server gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema of its arguments.
    #[serde(default)]
    pub input_schema: serde_json::Value,
}

/// One prompt a server offers (`prompts/list`): text a host may put before a model, so it is
/// scanned like a tool's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpPrompt {
    /// Prompt name.
    pub name: String,
    /// Its description, when the server gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<McpPromptArgument>,
}

/// One argument of a [`McpPrompt`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpPromptArgument {
    /// Argument name.
    pub name: String,
    /// Its description, when the server gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Who answered the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpServerInfo {
    /// Negotiated protocol version, e.g. `2025-06-18`.
    pub protocol_version: String,
    /// Server name from `initialize`.
    pub name: Option<String>,
    /// Server version from `initialize`.
    pub version: Option<String>,
    /// Capabilities as sent by the server.
    #[serde(default)]
    pub capabilities: serde_json::Value,
    /// The `instructions` of the server's `initialize` result: hosts hand them to the model,
    /// so the tool-poisoning scan reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// The tools part of a probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolsOutcome {
    /// `tools/list` answered (all pages).
    Listed {
        /// The tools.
        tools: Vec<McpTool>,
    },
    /// The handshake succeeded but the server cannot list tools without configuration
    /// (credentials, environment). Still verified: many real servers need a key first.
    Gated {
        /// What the server said.
        reason: String,
    },
}

/// What a successful probe found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Handshake result.
    pub server: McpServerInfo,
    /// Tools, or why they are gated.
    pub tools: ToolsOutcome,
    /// What the probe observed beyond the tools (protocol era, pages, a second listing, output
    /// schemas), for the [conformance report](super::conformance).
    #[serde(default)]
    pub listing: ListingFacts,
}

impl ProbeReport {
    /// The listed tools (empty when gated).
    pub fn tools(&self) -> &[McpTool] {
        match &self.tools {
            ToolsOutcome::Listed { tools } => tools,
            ToolsOutcome::Gated { .. } => &[],
        }
    }
}

/// A tool call to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Tool name.
    pub name: String,
    /// Arguments (a JSON object).
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

impl ToolCall {
    /// Builds a call; the name must be 1-128 visible characters.
    pub fn new(
        name: impl Into<String>,
        arguments: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self> {
        let name = name.into();
        if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control() || c == ' ') {
            return Err(Error::invalid(
                "tool",
                format!("{name:?} is not a tool name"),
            ));
        }
        Ok(Self { name, arguments })
    }
}

/// A tool's answer. A tool that fails answers with `is_error: true`; that is a result, not a
/// transport error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallOutput {
    /// MCP content items as sent (text, image, resource…).
    pub content: Vec<serde_json::Value>,
    /// Structured content, when the tool sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured: Option<serde_json::Value>,
    /// Whether the tool reported an error.
    pub is_error: bool,
    /// Whether the output was cut to the size cap.
    #[serde(default)]
    pub truncated: bool,
}
