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

/// Sends one bare `initialize` POST and classifies what comes back.
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
    let response = match response {
        Ok(response) => response,
        Err(err) if err.is_timeout() => {
            return (
                ProbeFailureKind::HandshakeTimeout,
                format!("no answer to initialize: {err}"),
            );
        }
        Err(err) if err.is_connect() => return (ProbeFailureKind::Unreachable, err.to_string()),
        Err(err) => {
            return (
                ProbeFailureKind::NotMcp,
                format!("no usable HTTP answer: {err}"),
            )
        }
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        return (
            ProbeFailureKind::Protocol,
            format!("HTTP {status} with an SSE stream, but the MCP handshake failed"),
        );
    }
    let bytes = match tokio::time::timeout(timeout, response.bytes()).await {
        Ok(Ok(bytes)) => bytes,
        _ => Default::default(),
    };
    if content_type.starts_with("application/json") {
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            if value.get("jsonrpc").is_some() {
                return (
                    ProbeFailureKind::Protocol,
                    format!(
                        "HTTP {status}, JSON-RPC answer but the MCP handshake failed: {}",
                        preview(&bytes)
                    ),
                );
            }
        }
    }
    let shown = if content_type.is_empty() {
        "no content type"
    } else {
        content_type.as_str()
    };
    (
        ProbeFailureKind::NotMcp,
        format!(
            "HTTP {status} ({shown}) to an MCP initialize request: {}",
            preview(&bytes)
        ),
    )
}

/// The start of a body, for error details.
fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_owned()
}
