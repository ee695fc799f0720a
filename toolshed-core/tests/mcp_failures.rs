//! Failure classification of RmcpProbe against peers that are not (working) MCP servers.
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcp_support::{endpoint, ClosedPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::error::ProbeFailureKind;
use toolshed_core::ports::McpProbe;
use toolshed_core::Error;

/// Deadline of the operations whose outcome comes at once (a refusal, an HTML page): far longer
/// than they take, even on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn kind(err: &Error) -> ProbeFailureKind {
    match err {
        Error::Probe { kind, .. } => *kind,
        other => panic!("not a probe error: {other:?}"),
    }
}

/// A plain HTTP server answering every request with an HTML page and `status`.
async fn plain_http(status: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // One request per connection is enough for the probe; read what is there.
                let _ = socket.read(&mut buf).await;
                let body = "<html><body><h1>It works!</h1></body></html>";
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_plain_web_server_is_not_mcp() {
    for status in ["200 OK", "404 Not Found", "405 Method Not Allowed"] {
        let addr = plain_http(status).await;
        let err = RmcpProbe::new()
            .unwrap()
            .probe(&endpoint(addr), DEADLINE)
            .await
            .unwrap_err();
        assert_eq!(kind(&err), ProbeFailureKind::NotMcp, "{status}: {err}");
    }
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_readiness_gives_up_at_the_deadline() {
    let port = ClosedPort::new();
    let ep = port.endpoint();
    let probe = RmcpProbe::new().unwrap();
    let err = probe.probe(&ep, DEADLINE).await.unwrap_err();
    assert_eq!(kind(&err), ProbeFailureKind::Unreachable, "{err}");

    let readiness = Duration::from_millis(800);
    let started = Instant::now();
    let err = tokio::time::timeout(DEADLINE, probe.wait_ready(&ep, readiness))
        .await
        .unwrap_or_else(|_| {
            panic!("wait_ready({readiness:?}) still polling a closed port after {DEADLINE:?}")
        })
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(kind(&err), ProbeFailureKind::Unreachable, "{err}");
    // It kept polling until its deadline instead of failing on the first refusal. (A lower
    // bound only: a loaded machine can make this later, never earlier.)
    assert!(elapsed >= readiness, "gave up after {elapsed:?}");
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_times_out_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accepted, never read, never answered
        }
    });
    let probe = RmcpProbe::new().unwrap();
    // The deadlines are what is tested, so they are short: nothing ever answers, so a loaded
    // machine cannot change the outcome, only make it later.
    let err = probe
        .probe(&endpoint(addr), Duration::from_millis(800))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), ProbeFailureKind::HandshakeTimeout, "{err}");
    assert!(err.is_retryable());

    let err = probe
        .wait_ready(&endpoint(addr), Duration::from_millis(1500))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), ProbeFailureKind::HandshakeTimeout, "{err}");
}

#[tokio::test]
async fn a_tool_call_to_a_closed_port_is_unreachable() {
    let port = ClosedPort::new();
    let err = RmcpProbe::new()
        .unwrap()
        .call_tool(
            &port.endpoint(),
            &mcp_support::call("echo", serde_json::json!({"text": "x"})),
            None,
            DEADLINE,
        )
        .await
        .unwrap_err();
    assert_eq!(kind(&err), ProbeFailureKind::Unreachable, "{err}");
}
