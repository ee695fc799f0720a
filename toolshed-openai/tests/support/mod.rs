//! Shared fixtures of the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};
use toolshed_core::domain::{CommitSha, McpTool, RepoSnapshot, RepoUrl, ServerId, Timestamp};
use toolshed_core::ports::{Clock, MetadataRequest};

/// The key the tests configure; it must never show up in errors or Debug output.
pub const TEST_KEY: &str = "sk-test-0123456789SECRET";

/// A clock fixed at one instant, so provenance times can be asserted.
#[derive(Debug)]
pub struct FixedClock(pub Timestamp);

#[async_trait::async_trait]
impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
    async fn sleep(&self, _duration: Duration) {}
}

pub fn fixed_time() -> Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-11-21T06:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// What the core would gather for the reference `mcp-server-time`.
pub fn time_server_request() -> MetadataRequest {
    MetadataRequest {
        server_id: ServerId::new("time-server").unwrap(),
        repo: RepoUrl::new("https://github.com/modelcontextprotocol/servers").unwrap(),
        commit: CommitSha::new("0123456789abcdef0123456789abcdef01234567").unwrap(),
        snapshot: RepoSnapshot {
            readme: Some(
                "# Time MCP Server\n\n[![PyPI](https://img.shields.io/pypi/v/mcp-server-time)](https://pypi.org)\n\n\
                 A Model Context Protocol server that provides time and timezone conversion \
                 capabilities. It lets LLMs get current time information and perform timezone \
                 conversions using IANA timezone names, with automatic system timezone detection.\n\n\
                 <!-- maintainers: keep this short -->\n\n\n\
                 ## Available Tools\n\n- `get_current_time` - Get current time in a specific timezone\n\
                 - `convert_time` - Convert time between timezones\n\n## Installation\n\n\
                 ```bash\npip install mcp-server-time\npython -m mcp_server_time\n```\n"
                    .to_owned(),
            ),
            files: vec![
                "src/mcp_server_time/server.py".into(),
                "src/mcp_server_time/__init__.py".into(),
                "src/mcp_server_time/__main__.py".into(),
                "test/time_server_test.py".into(),
                "pyproject.toml".into(),
                "uv.lock".into(),
                "Dockerfile".into(),
                "README.md".into(),
                "LICENSE".into(),
            ],
            manifests: vec![(
                "pyproject.toml".into(),
                "[project]\nname = \"mcp-server-time\"\nversion = \"2026.10.19\"\n\
                 description = \"A Model Context Protocol server providing tools for time queries and timezone conversions for LLMs\"\n\
                 requires-python = \">=3.10\"\ndependencies = [\"mcp>=1.0.0\", \"pydantic>=2.0.0\", \"tzdata>=2024.2\"]\n\n\
                 [project.scripts]\nmcp-server-time = \"mcp_server_time:main\"\n"
                    .into(),
            )],
            dockerfile: Some(
                "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nRUN pip install --no-cache-dir .\n\
                 ENTRYPOINT [\"mcp-server-time\"]\n"
                    .into(),
            ),
            truncated: false,
        },
        tools: vec![
            McpTool {
                name: "get_current_time".into(),
                description: Some("Get current time in a specific timezones".into()),
                input_schema: json!({
                    "type": "object",
                    "properties": {"timezone": {"type": "string", "description": "IANA timezone name (e.g., 'America/New_York', 'Europe/London'). Use 'UTC' as local timezone if no timezone provided by the user."}},
                    "required": ["timezone"]
                }),
            },
            McpTool {
                name: "convert_time".into(),
                description: Some("Convert time between timezones".into()),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "source_timezone": {"type": "string", "description": "Source IANA timezone name"},
                        "time": {"type": "string", "description": "Time to convert in 24-hour format (HH:MM)"},
                        "target_timezone": {"type": "string", "description": "Target IANA timezone name"}
                    },
                    "required": ["source_timezone", "time", "target_timezone"]
                }),
            },
        ],
        findings: Vec::new(),
    }
}

/// A good answer from the model, as the `content` string.
pub fn good_answer(language: &str) -> String {
    json!({
        "enough_information": true,
        "description": "Time MCP Server gives language models the current time in any IANA timezone. It also converts times between timezones.",
        "primary_language": language,
        "docs_markdown": "### get_current_time\nReturns the current time.\n\n- `timezone` (string, required)\n\n### convert_time\nConverts a time.\n"
    })
    .to_string()
}

/// A chat completion whose message has `content`.
pub fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_763_700_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 812, "completion_tokens": 143, "total_tokens": 955}
    })
}

/// A chat completion with a refusal.
pub fn refusal(text: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": null, "refusal": text},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 800, "completion_tokens": 9, "total_tokens": 809}
    })
}
