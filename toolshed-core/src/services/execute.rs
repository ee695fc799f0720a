//! Calling a tool of a running session.

use super::playground::not_running;
use super::Toolshed;
use crate::domain::{SessionId, SessionState, ToolCall, ToolCallOutput};
use crate::error::{Error, Result};

impl Toolshed {
    /// Calls a tool on a running session through the MCP probe, with the tool's input schema
    /// (checked before anything is sent) and the configured per-call deadline. A session that is
    /// still `Starting` is waited for, up to the configured `session_ready_deadline`, until its
    /// MCP endpoint answers (see [`Self::wait_session_ready`]).
    ///
    /// # Errors
    /// `SessionStarting` when the session did not become ready in time (nothing was sent);
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
        if session.state == SessionState::Starting {
            session = self
                .await_ready(session, self.config.session_ready_deadline)
                .await?;
        }
        let endpoint = match (&session.state, &session.endpoint) {
            (SessionState::Running, Some(e)) => e.clone(),
            _ => return Err(not_running(&session)),
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
        // The era the verification found: the call opens its session in it first.
        let era = server.tools.conformance.as_ref().map(|c| c.era);
        match p
            .probe
            .call_tool_in_era(
                &endpoint,
                &call,
                schema,
                self.config.tool_call_deadline,
                era,
            )
            .await
        {
            // The task may have ended since the session was last read (killed, crashed): ask the
            // runner, and say the session ended rather than "unreachable".
            Err(e @ Error::Probe { .. }) => {
                let refreshed = match self.session_status_from_runner(session_id).await {
                    Ok(s) => s,
                    Err(_) => return Err(e),
                };
                if refreshed.state.is_live() {
                    return Err(e);
                }
                Err(not_running(&refreshed))
            }
            other => other,
        }
    }
}
