//! A scriptable MCP probe.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::clock::lock;
use crate::domain::conformance::ProtocolEra;
use crate::domain::{
    Endpoint, ListingFacts, McpServerInfo, McpTool, ProbeReport, RemoteTarget, ToolCall,
    ToolCallOutput, ToolsOutcome,
};
use crate::error::{Error, ProbeFailureKind, Result};
use crate::ports::McpProbe;

/// A recorded `call_tool`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    /// Where.
    pub endpoint: Endpoint,
    /// What.
    pub call: ToolCall,
    /// The schema the service passed.
    pub input_schema: Option<serde_json::Value>,
    /// The deadline the service passed.
    pub deadline: Duration,
    /// The era hint the service passed (`None` also through plain `call_tool`).
    pub era: Option<ProtocolEra>,
}

#[derive(Debug, Default)]
struct Inner {
    default_report: Option<ProbeReport>,
    reports: HashMap<String, ProbeReport>,
    failures: HashMap<String, (ProbeFailureKind, String)>,
    fail_all: Option<(ProbeFailureKind, String)>,
    tool_results: HashMap<String, ToolCallOutput>,
    probe_calls: u32,
    wait_ready_calls: u32,
    remote_probes: Vec<RemoteTarget>,
    calls: Vec<RecordedCall>,
}

/// An [`McpProbe`] answering from scripts: a report per endpoint (default:
/// [`FakeMcpProbe::time_server_report`]), failures per endpoint or for all, and tool results per
/// tool name (default: the arguments echoed back as text).
#[derive(Debug, Default)]
pub struct FakeMcpProbe {
    inner: Mutex<Inner>,
}

impl FakeMcpProbe {
    /// A probe where every endpoint is a healthy time server.
    pub fn new() -> Self {
        Self::default()
    }

    /// The report of a server offering one tool, `get_current_time(timezone: string)`.
    pub fn time_server_report() -> ProbeReport {
        let tools = vec![McpTool {
            name: "get_current_time".to_owned(),
            description: Some("Get the current time in a timezone".to_owned()),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {"timezone": {"type": "string", "description": "IANA name"}},
                "required": ["timezone"]
            }),
        }];
        ProbeReport {
            server: McpServerInfo {
                protocol_version: "2025-06-18".to_owned(),
                name: Some("mcp-time".to_owned()),
                version: Some("1.0.0".to_owned()),
                capabilities: serde_json::json!({"tools": {}}),
                instructions: None,
            },
            listing: ListingFacts::one_stable_page(&tools),
            tools: ToolsOutcome::Listed { tools },
        }
    }

    /// The report every endpoint without its own script gets.
    pub fn set_default_report(&self, report: ProbeReport) {
        lock(&self.inner).default_report = Some(report);
    }

    /// The report of one endpoint.
    pub fn set_report(&self, endpoint: &Endpoint, report: ProbeReport) {
        lock(&self.inner).reports.insert(endpoint.url(), report);
    }

    /// Makes probes of one endpoint fail.
    pub fn fail_endpoint(&self, endpoint: &Endpoint, kind: ProbeFailureKind, detail: &str) {
        lock(&self.inner)
            .failures
            .insert(endpoint.url(), (kind, detail.to_owned()));
    }

    /// Makes every probe fail (or succeed again with `None`).
    pub fn fail_all(&self, failure: Option<(ProbeFailureKind, &str)>) {
        lock(&self.inner).fail_all = failure.map(|(k, d)| (k, d.to_owned()));
    }

    /// The result of calls to `tool`.
    pub fn set_tool_result(&self, tool: &str, output: ToolCallOutput) {
        lock(&self.inner)
            .tool_results
            .insert(tool.to_owned(), output);
    }

    /// Calls to `probe`.
    pub fn probe_calls(&self) -> u32 {
        lock(&self.inner).probe_calls
    }

    /// Calls to `wait_ready`.
    pub fn wait_ready_calls(&self) -> u32 {
        lock(&self.inner).wait_ready_calls
    }

    /// Every `probe_remote` target, in order (header values included, for assertions).
    pub fn remote_probes(&self) -> Vec<RemoteTarget> {
        lock(&self.inner).remote_probes.clone()
    }

    /// Every `call_tool`, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.inner).calls.clone()
    }

    fn answer(&self, endpoint: &Endpoint) -> Result<ProbeReport> {
        self.answer_url(endpoint.url())
    }

    /// The scripted answer for a URL (an endpoint's, or a remote's as registered).
    fn answer_url(&self, url: String) -> Result<ProbeReport> {
        let inner = lock(&self.inner);
        if let Some((kind, detail)) = inner.failures.get(&url).or(inner.fail_all.as_ref()) {
            return Err(Error::Probe {
                kind: *kind,
                endpoint: url,
                detail: detail.clone(),
            });
        }
        Ok(inner
            .reports
            .get(&url)
            .or(inner.default_report.as_ref())
            .cloned()
            .unwrap_or_else(Self::time_server_report))
    }
}

#[async_trait]
impl McpProbe for FakeMcpProbe {
    async fn probe(&self, endpoint: &Endpoint, _deadline: Duration) -> Result<ProbeReport> {
        lock(&self.inner).probe_calls += 1;
        self.answer(endpoint)
    }

    async fn wait_ready(&self, endpoint: &Endpoint, _deadline: Duration) -> Result<ProbeReport> {
        lock(&self.inner).wait_ready_calls += 1;
        self.answer(endpoint)
    }

    async fn probe_remote(
        &self,
        remote: &RemoteTarget,
        _deadline: Duration,
    ) -> Result<ProbeReport> {
        lock(&self.inner).remote_probes.push(remote.clone());
        self.answer_url(remote.url.clone())
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
        let mut inner = lock(&self.inner);
        inner.calls.push(RecordedCall {
            endpoint: endpoint.clone(),
            call: call.clone(),
            input_schema: input_schema.clone(),
            deadline,
            era,
        });
        if let Some((kind, detail)) = inner
            .failures
            .get(&endpoint.url())
            .or(inner.fail_all.as_ref())
        {
            return Err(Error::Probe {
                kind: *kind,
                endpoint: endpoint.url(),
                detail: detail.clone(),
            });
        }
        // A minimal schema check, like the real adapter's: required properties must be present.
        if let Some(required) = input_schema
            .as_ref()
            .and_then(|s| s.get("required"))
            .and_then(|r| r.as_array())
        {
            for name in required.iter().filter_map(|v| v.as_str()) {
                if !call.arguments.contains_key(name) {
                    return Err(Error::InvalidToolArguments {
                        tool: call.name.clone(),
                        pointer: String::new(),
                        reason: format!("missing required property {name:?}"),
                    });
                }
            }
        }
        Ok(inner
            .tool_results
            .get(&call.name)
            .cloned()
            .unwrap_or_else(|| ToolCallOutput {
                content: vec![serde_json::json!({
                    "type": "text",
                    "text": serde_json::Value::Object(call.arguments.clone()).to_string(),
                })],
                structured: None,
                is_error: false,
                truncated: false,
            }))
    }
}
