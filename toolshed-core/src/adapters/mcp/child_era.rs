//! Which protocol era the stdio bridge's child speaks, asked once with no deadline of its own.
//!
//! rmcp's automatic lifecycle asks `server/discover` and, when the answer takes more than 10 s,
//! sends `initialize` on the same pipes. A child that is merely slow to start (a Python server
//! importing its SDK on a quarter of a CPU) then reads both requests and answers both: the
//! handshake takes the late discover answer for a broken server, or the child, now serving the
//! new era on that connection, refuses the `initialize`. Either way the bridge exits and the task
//! with it. So the bridge asks the era itself, with a wait of its own choosing, and then opens
//! the session in that era alone.

use rmcp::model::{
    ClientConfig, ClientJsonRpcMessage, ClientRequest, DiscoverRequest, DiscoverRequestParams,
    ErrorCode, ProtocolVersion, RequestId, RequestMetaObject, ServerJsonRpcMessage,
};
use rmcp::transport::Transport;
use rmcp::RoleClient;

/// The era a child answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChildEra {
    /// It answered `server/discover` (revision 2026-07-28 and later), or refused it the way
    /// only a server of that era does (a version or capability it wants): open with discover.
    Discover,
    /// It refused `server/discover` the way older servers do (e.g. "method not found"): open
    /// with `initialize`.
    Initialize,
}

/// The id of the era question: a string, so it never meets the numbered ids of the session
/// that follows on the same pipes.
const ERA_REQUEST_ID: &str = "toolshed-bridge-era";

/// Sends one `server/discover` (for `preferred`, as `client`) and waits for its answer, skipping
/// whatever else the child says first (log notifications of a starting server). Bound it with a
/// timeout: this waits as long as the child takes.
///
/// # Errors
/// What went wrong, when the request cannot be written or the child closes its output before
/// answering (the caller names the child).
pub(super) async fn child_era<T>(
    pipes: &mut T,
    client: &ClientConfig,
    preferred: ProtocolVersion,
) -> Result<ChildEra, String>
where
    T: Transport<RoleClient>,
{
    let id = RequestId::String(ERA_REQUEST_ID.into());
    let mut discover = DiscoverRequest::new(DiscoverRequestParams {});
    discover
        .extensions
        .insert(RequestMetaObject::with_client_context(
            preferred,
            client.client_info.clone(),
            client.capabilities.clone(),
        ));
    pipes
        .send(ClientJsonRpcMessage::request(
            ClientRequest::DiscoverRequest(discover),
            id.clone(),
        ))
        .await
        .map_err(|e| format!("could not send server/discover: {e}"))?;
    loop {
        let closed = "the child closed its output before answering server/discover";
        match pipes.receive().await.ok_or(closed)? {
            ServerJsonRpcMessage::Response(answer) if answer.id == id => {
                return Ok(ChildEra::Discover)
            }
            ServerJsonRpcMessage::Error(refusal) if refusal.id.as_ref() == Some(&id) => {
                return Ok(era_of_refusal(refusal.error.code));
            }
            // An error it could not tie to a request: it could not read the new era's request.
            ServerJsonRpcMessage::Error(refusal) if refusal.id.is_none() => {
                return Ok(ChildEra::Initialize)
            }
            other => tracing::debug!(
                message = ?other,
                "the child said something before answering server/discover; skipped"
            ),
        }
    }
}

/// The era of a server that refused `server/discover` with `code`: only the new era refuses it
/// over a version, a missing capability or a header (rmcp then negotiates or reports); anything
/// else is how older servers refuse a method they do not know.
fn era_of_refusal(code: ErrorCode) -> ChildEra {
    if code == ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
        || code == ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        || code == ErrorCode::HEADER_MISMATCH
    {
        ChildEra::Discover
    } else {
        ChildEra::Initialize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_new_eras_refusals_keep_the_discover_era() {
        for code in [
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION,
            ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
            ErrorCode::HEADER_MISMATCH,
        ] {
            assert_eq!(era_of_refusal(code), ChildEra::Discover, "{code:?}");
        }
        for code in [
            ErrorCode::METHOD_NOT_FOUND,
            ErrorCode::INVALID_REQUEST,
            ErrorCode::INTERNAL_ERROR,
        ] {
            assert_eq!(era_of_refusal(code), ChildEra::Initialize, "{code:?}");
        }
    }
}
