//! Classifying handshake failures into [`ProbeFailureKind`]s.
//!
//! rmcp reports an HTTP peer that is not MCP in several shapes (transport error, closed
//! connection, unexpected content type), depending on where its worker noticed. Rather than
//! depend on those internals, a failed handshake that is not plainly a JSON-RPC-level failure is
//! followed by one plain `initialize` POST ("sniff") whose answer decides: JSON-RPC or an SSE
//! stream means the peer speaks MCP and broke the protocol; anything else means it is not MCP.

use std::time::Duration;

use rmcp::service::ClientInitializeError;
use serde_json::{json, Value};

use crate::error::ProbeFailureKind;

/// What the handshake error says by itself, when that is enough.
pub(crate) fn classify_init_error(err: &ClientInitializeError) -> Option<ProbeFailureKind> {
    match err {
        ClientInitializeError::JsonRpcError(_)
        | ClientInitializeError::ExpectedInitResponse(_)
        | ClientInitializeError::ExpectedInitResult(_)
        | ClientInitializeError::ConflictInitResponseId(..)
        | ClientInitializeError::UncorrelatedErrorResponse { .. }
        | ClientInitializeError::NoCompatibleProtocolVersion { .. } => {
            Some(ProbeFailureKind::Protocol)
        }
        _ => None,
    }
}

/// Most body bytes `sniff` reads: enough to tell JSON-RPC from anything else, never the whole
/// answer of a hostile peer.
pub(crate) const SNIFF_MAX_BYTES: usize = 4 * 1024;

/// Sends one bare `initialize` POST and classifies what comes back.
///
/// The client must not follow redirects (the probe's client is built with
/// `redirect::Policy::none()`): a redirect is classified here and never fetched, so a server
/// cannot make the prober reach another address and read the answer back. At most
/// [`SNIFF_MAX_BYTES`] of the body are read, and no byte of it ever goes into the returned
/// detail: the detail names the status and content type only.
pub(crate) async fn sniff(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> (ProbeFailureKind, String) {
    let body = json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "toolshed-probe", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    let response = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .timeout(timeout)
        .send()
        .await;
    let mut response = match response {
        Ok(response) => response,
        Err(err) if err.is_timeout() => {
            return (
                ProbeFailureKind::HandshakeTimeout,
                "no answer to initialize before the deadline".to_owned(),
            );
        }
        Err(err) if err.is_connect() => {
            return (
                ProbeFailureKind::Unreachable,
                "connect to the endpoint failed".to_owned(),
            )
        }
        Err(err) => {
            tracing::debug!(error = %err, "sniff: no usable HTTP answer");
            return (
                ProbeFailureKind::NotMcp,
                "no usable HTTP answer to initialize".to_owned(),
            );
        }
    };
    let status = response.status();
    if status.is_redirection() {
        return (
            ProbeFailureKind::NotMcp,
            format!(
                "answered HTTP {} redirect; redirects are not followed",
                status.as_u16()
            ),
        );
    }
    let content_type = content_type(&response);
    if content_type.starts_with("text/event-stream") {
        return (
            ProbeFailureKind::Protocol,
            format!(
                "answered HTTP {} with an SSE stream, but the MCP handshake failed",
                status.as_u16()
            ),
        );
    }
    let bytes = read_capped(&mut response, SNIFF_MAX_BYTES, timeout).await;
    if content_type.starts_with("application/json") && looks_like_json_rpc(&bytes) {
        return (
            ProbeFailureKind::Protocol,
            format!(
                "answered HTTP {} with JSON-RPC, but the MCP handshake failed",
                status.as_u16()
            ),
        );
    }
    let shown = if content_type.is_empty() {
        "without a content type".to_owned()
    } else {
        content_type
    };
    (
        ProbeFailureKind::NotMcp,
        format!("answered HTTP {} {shown}, not MCP", status.as_u16()),
    )
}

/// The media type of a response, lower case, without parameters; only printable ASCII token
/// characters are kept so a hostile header cannot smuggle text into an error.
fn content_type(response: &reqwest::Response) -> String {
    let raw = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    raw.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/+-.".contains(*c))
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Reads at most `max` bytes of the body, chunk by chunk, within `timeout`; whatever arrived
/// by then (possibly nothing).
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    max: usize,
    timeout: Duration,
) -> Vec<u8> {
    let mut kept = Vec::new();
    let read = async {
        while kept.len() < max {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = max - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    kept
}

/// Whether the start of a body is a JSON-RPC message. A body cut at the cap is not parseable
/// JSON; then the `"jsonrpc"` member near the start decides.
fn looks_like_json_rpc(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => value.get("jsonrpc").is_some(),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            text.trim_start().starts_with('{') && text.contains("\"jsonrpc\"")
        }
    }
}
