//! Calling a tool of a running session.

use super::Toolshed;
use crate::domain::{SessionId, SessionState, ToolCall, ToolCallOutput};
use crate::error::{Error, Result};

impl Toolshed {
    /// Calls a tool on a running session through the MCP probe, with the tool's input schema
    /// (checked before anything is sent) and the configured per-call deadline. A `Launching`
    /// session is refreshed from the runner first.
    ///
    /// # Errors
    /// `SessionNotRunning` (also when the call fails because the task has ended meanwhile, with
    /// the stop reason in its state); `UnknownTool` when the server's tools were listed and the name is
    /// not among them; `InvalidToolArguments`; `Probe`.
    pub async fn execute_tool(
        &self,
        session_id: &SessionId,
        call: ToolCall,
    ) -> Result<ToolCallOutput> {
        let p = &self.ports;
        let mut session = p.repository.get_session(session_id).await?;
        if session.state == SessionState::Launching {
            session = self.session_status(session_id).await?;
        }
        let endpoint = match (&session.state, &session.endpoint) {
            (SessionState::Running, Some(e)) => e.clone(),
            (state, _) => {
                return Err(Error::SessionNotRunning {
                    session_id: session_id.to_string(),
                    state: state.to_string(),
                })
            }
        };
        let server = p.repository.get_server(&session.server_id).await?;
        let tools_listed =
            server.tools.server_info.is_some() && server.tools.gated_reason.is_none();
        let schema = match server.tools.tools.iter().find(|t| t.name == call.name) {
            Some(tool) => Some(tool.input_schema.clone()),
            None if tools_listed => {
                return Err(Error::UnknownTool {
                    server_id: server.id.to_string(),
                    tool: call.name.clone(),
                })
            }
            // Gated tools: nothing to check against; the server decides.
            None => None,
        };
        match p
            .probe
            .call_tool(&endpoint, &call, schema, self.config.tool_call_deadline)
            .await
        {
            // The task may have ended since the session was last read (killed, crashed): ask the
            // runner, and say the session ended rather than "unreachable".
            Err(e @ Error::Probe { .. }) => {
                let refreshed = match self.session_status(session_id).await {
                    Ok(s) => s,
                    Err(_) => return Err(e),
                };
                if refreshed.state.is_live() {
                    return Err(e);
                }
                Err(Error::SessionNotRunning {
                    session_id: session_id.to_string(),
                    state: match refreshed.stop_reason {
                        Some(reason) => format!("{}: {reason}", refreshed.state),
                        None => refreshed.state.to_string(),
                    },
                })
            }
            other => other,
        }
    }
}
