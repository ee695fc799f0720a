//! A server under test cannot make the prober fetch another address and read the answer back:
//! redirects are never followed, answered bodies never reach errors or records, and `sniff`
//! reads a bounded prefix of a body.
#![cfg(feature = "mcp-server")]

mod common;
mod mcp_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use common::Harness;
use mcp_support::{call, endpoint};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::domain::{Endpoint, TaskHandle, VerificationState};
use toolshed_core::error::ProbeFailureKind;
use toolshed_core::ports::{McpProbe, TaskPage, TaskRunner, TaskSpec, TaskStatus};
use toolshed_core::services::{LaunchRequest, Ports, Toolshed, VerifyOptions};
use toolshed_core::Error;

/// What the internal server answers: it must appear nowhere.
const INTERNAL_SECRET: &str = "INTERNAL-CREDENTIALS-7f3a";
/// What the redirecting server puts in its own body: it must appear nowhere either.
const REDIRECT_BODY: &str = "REDIRECT-BODY-91c2";

/// An "internal" HTTP server that counts every request it receives.
async fn internal_server() -> (SocketAddr, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            (
                [(header::CONTENT_TYPE, "application/json")],
                format!(r#"{{"jsonrpc":"2.0","id":0,"result":{{"secret":"{INTERNAL_SECRET}"}}}}"#),
            )
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

/// A server answering every request (any method, any path) with `302` to `target`.
async fn redirecting_server(target: SocketAddr) -> SocketAddr {
    let location = format!("http://{target}/internal/credentials");
    let app = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move {
            (
                StatusCode::FOUND,
                [
                    (header::LOCATION, location),
                    (header::CONTENT_TYPE, "text/plain".to_owned()),
                ],
                REDIRECT_BODY,
            )
                .into_response()
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn assert_clean(text: &str) {
    assert!(
        !text.contains(INTERNAL_SECRET),
        "internal answer leaked: {text}"
    );
    assert!(
        !text.contains(REDIRECT_BODY),
        "answered body leaked: {text}"
    );
}

fn probe_detail(err: &Error) -> (ProbeFailureKind, String) {
    match err {
        Error::Probe { kind, detail, .. } => (*kind, detail.clone()),
        other => panic!("not a probe error: {other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_is_classified_and_never_followed() {
    let (internal, hits) = internal_server().await;
    let redirector = redirecting_server(internal).await;
    let probe = RmcpProbe::new().unwrap();
    let ep = endpoint(redirector);

    let err = probe.probe(&ep, Duration::from_secs(10)).await.unwrap_err();
    let (kind, detail) = probe_detail(&err);
    assert_eq!(kind, ProbeFailureKind::NotMcp, "{err}");
    assert!(
        detail.contains("answered HTTP 302 redirect; redirects are not followed"),
        "{detail}"
    );
    assert_clean(&err.to_string());

    // Readiness keeps the server's answer as the reason, not a timeout at the deadline.
    let err = probe
        .wait_ready(&ep, Duration::from_millis(1500))
        .await
        .unwrap_err();
    let (kind, detail) = probe_detail(&err);
    assert_eq!(kind, ProbeFailureKind::NotMcp, "{err}");
    assert!(detail.contains("redirects are not followed"), "{detail}");
    assert_clean(&err.to_string());

    let err = probe
        .call_tool(
            &ep,
            &call("echo", json!({"text": "x"})),
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(probe_detail(&err).0, ProbeFailureKind::NotMcp, "{err}");
    assert_clean(&err.to_string());

    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
}

/// A server answering `200 text/html` with `body_len` bytes of `fill` (streamed), counting how
/// many bytes it managed to write in total.
async fn html_server(body_len: u64) -> (SocketAddr, Arc<AtomicU64>) {
    let written = Arc::new(AtomicU64::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n"
                );
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("<p>{REDIRECT_BODY}</p>").repeat(4096);
                let mut left = body_len;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if socket.write_all(&chunk.as_bytes()[..n]).await.is_err() {
                        return;
                    }
                    counter.fetch_add(n as u64, Ordering::SeqCst);
                    left -= n as u64;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    (addr, written)
}

#[tokio::test]
async fn a_web_page_is_not_mcp_and_its_body_is_neither_quoted_nor_read_whole() {
    let (addr, _) = html_server(300).await;
    let err = RmcpProbe::new()
        .unwrap()
        .probe(&endpoint(addr), Duration::from_secs(10))
        .await
        .unwrap_err();
    let (kind, detail) = probe_detail(&err);
    assert_eq!(kind, ProbeFailureKind::NotMcp, "{err}");
    assert!(
        detail.contains("answered HTTP 200 text/html, not MCP"),
        "{detail}"
    );
    assert_clean(&err.to_string());

    // A 4 GiB page: the prober stops reading after a few KiB and drops the connection, so the
    // server cannot push more than what socket buffers hold.
    let (addr, written) = html_server(4 << 30).await;
    let err = RmcpProbe::new()
        .unwrap()
        .probe(&endpoint(addr), Duration::from_secs(20))
        .await
        .unwrap_err();
    assert_eq!(probe_detail(&err).0, ProbeFailureKind::NotMcp, "{err}");
    assert_clean(&err.to_string());
    // Give the server's writer a moment to notice the closed connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total = written.load(Ordering::SeqCst);
    assert!(
        total < 64 << 20,
        "the prober read {total} bytes of the page"
    );
}

/// A runner that starts tasks through the fake but reports every endpoint at `target` (the
/// server under test), path kept.
#[derive(Debug)]
struct RedirectedRunner {
    inner: Arc<dyn TaskRunner>,
    target: SocketAddr,
}

#[async_trait]
impl TaskRunner for RedirectedRunner {
    async fn prepare(&self, spec: &TaskSpec) -> toolshed_core::Result<()> {
        self.inner.prepare(spec).await
    }
    async fn start(&self, spec: &TaskSpec) -> toolshed_core::Result<TaskHandle> {
        self.inner.start(spec).await
    }
    async fn describe(&self, task: &TaskHandle) -> toolshed_core::Result<TaskStatus> {
        let mut status = self.inner.describe(task).await?;
        if let Some(ep) = &status.endpoint {
            status.endpoint = Some(Endpoint::new(
                "127.0.0.1",
                self.target.port(),
                ep.path.clone(),
            )?);
        }
        Ok(status)
    }
    async fn stop(&self, task: &TaskHandle, reason: &str) -> toolshed_core::Result<()> {
        self.inner.stop(task, reason).await
    }
    async fn stop_gracefully(
        &self,
        task: &TaskHandle,
        drain: Duration,
        reason: &str,
    ) -> toolshed_core::Result<()> {
        self.inner.stop_gracefully(task, drain, reason).await
    }
    async fn tail_logs(
        &self,
        task: &TaskHandle,
        tail: usize,
    ) -> toolshed_core::Result<Vec<String>> {
        self.inner.tail_logs(task, tail).await
    }
    async fn list_managed(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> toolshed_core::Result<TaskPage> {
        self.inner.list_managed(cursor, limit).await
    }
}

#[tokio::test]
async fn verification_and_tool_calls_through_the_service_never_reach_the_redirect_target() {
    let (internal, hits) = internal_server().await;
    let redirector = redirecting_server(internal).await;
    let h = Harness::with_config(|c| {
        c.readiness_deadline = Duration::from_secs(2);
        c.session_ready_deadline = Duration::from_millis(500);
    });
    let ports = Ports {
        probe: Arc::new(RmcpProbe::new().unwrap()),
        runner: Arc::new(RedirectedRunner {
            inner: h.runner.clone(),
            target: redirector,
        }),
        ..h.ports.clone()
    };
    let toolshed = Toolshed::new(ports, h.config.clone()).unwrap();

    // Verification: the check task "is" the redirecting server.
    h.register("redirects", None).await;
    let err = toolshed
        .verify_server(&h.id("redirects"), VerifyOptions::default())
        .await
        .unwrap_err();
    assert_clean(&err.to_string());
    let server = toolshed.get_server(&h.id("redirects")).await.unwrap();
    assert_eq!(server.state, VerificationState::Failed);
    let failure = server.last_failure.as_ref().expect("a recorded failure");
    assert!(
        failure.reason.contains("redirects are not followed"),
        "{}",
        failure.reason
    );
    assert!(
        !failure.reason.contains("connect did not complete"),
        "{}",
        failure.reason
    );
    assert_clean(&serde_json::to_string(&server).unwrap());

    // A tool call in a session of a (fake-)verified server that now redirects: its endpoint
    // never answers MCP, so the session never becomes ready and the call is refused as still
    // starting once its deadline passed — without following the redirect.
    h.verified("sessions").await;
    let session = toolshed
        .launch_session(&h.id("sessions"), LaunchRequest::default())
        .await
        .unwrap();
    let err = toolshed
        .execute_tool(
            &session.id,
            call("get_current_time", json!({"timezone": "UTC"})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SessionStarting { .. }),
        "not refused as starting: {err:?}"
    );
    assert_clean(&err.to_string());
    for record in [
        serde_json::to_string(&toolshed.get_server(&h.id("sessions")).await.unwrap()).unwrap(),
        serde_json::to_string(&toolshed.session_status(&session.id).await.unwrap()).unwrap(),
    ] {
        assert_clean(&record);
    }

    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
}
