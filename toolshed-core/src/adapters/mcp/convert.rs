//! rmcp model → domain types. Nothing of rmcp leaves this module family.

use rmcp::model::{ServerPeerInfo, Tool};
use serde_json::Value;

use crate::domain::{McpPrompt, McpPromptArgument, McpServerInfo, McpTool};

/// The handshake result as the core records it.
pub(crate) fn server_info(info: &ServerPeerInfo) -> McpServerInfo {
    McpServerInfo {
        protocol_version: info.protocol_version.to_string(),
        name: info.server_info.as_ref().map(|i| i.name.clone()),
        version: info.server_info.as_ref().map(|i| i.version.clone()),
        capabilities: serde_json::to_value(&info.capabilities).unwrap_or(Value::Null),
        instructions: info.instructions.clone(),
    }
}

/// One listed tool.
pub(crate) fn tool(tool: &Tool) -> McpTool {
    McpTool {
        name: tool.name.to_string(),
        description: tool.description.as_ref().map(|d| d.to_string()),
        input_schema: Value::Object(tool.input_schema.as_ref().clone()),
    }
}

/// A listed prompt: its name, description and arguments' descriptions (what the scan reads).
pub(crate) fn prompt(prompt: &rmcp::model::Prompt) -> McpPrompt {
    McpPrompt {
        name: prompt.name.clone(),
        description: prompt.description.clone(),
        arguments: prompt
            .arguments
            .iter()
            .flatten()
            .map(|a| McpPromptArgument {
                name: a.name.clone(),
                description: a.description.clone(),
            })
            .collect(),
    }
}

/// A listed tool's output schema, when it declares one.
pub(crate) fn output_schema(tool: &Tool) -> Option<Value> {
    tool.output_schema
        .as_ref()
        .map(|schema| Value::Object(schema.as_ref().clone()))
}
