//! Serving an rmcp server over streamable HTTP on axum (shared by the bridge and the example).

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServerHandler;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Counts the HTTP requests still being answered, so a server can let their answers out before
/// it ends the MCP sessions. A request counts until its response body has been handed over in
/// full: with streamable HTTP, the answer to a JSON-RPC request travels on the event stream of
/// its POST, after the headers. The GET event streams are not counted: they last as long as their
/// session, and ending the sessions is what closes them.
#[derive(Debug, Clone)]
pub(crate) struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    /// No request in flight yet.
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    /// Counts one request until the returned guard is dropped.
    fn enter(&self) -> InFlightGuard {
        self.0.send_modify(|n| *n += 1);
        InFlightGuard(self.0.clone())
    }

    /// Completes when no request is in flight.
    pub(crate) async fn idle(&self) {
        let mut count = self.0.subscribe();
        // The sender lives in `self`: waiting cannot fail while it is borrowed.
        let _ = count.wait_for(|n| *n == 0).await;
    }
}

/// One request in flight.
struct InFlightGuard(Arc<watch::Sender<usize>>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Middleware: counts each request but the GET streams in `in_flight` until its response body is
/// finished (or dropped with its connection).
async fn track(State(in_flight): State<InFlight>, request: Request, next: Next) -> Response {
    if request.method() == Method::GET {
        return next.run(request).await;
    }
    let guard = in_flight.enter();
    let response = next.run(request).await;
    if response.body().size_hint().exact().is_some() {
        // A body already in memory: nothing is left to wait for.
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
        // The guard lives as long as the stream, which the server drops once it is finished.
        let _counted = &guard;
        chunk
    }));
    Response::from_parts(parts, body)
}

/// Serves the MCP service made by `factory` (one instance per session) at `path` until
/// `shutdown` completes, then ends the MCP sessions so open SSE streams close. Requests being
/// answered are counted in `in_flight`.
///
/// The `Host` check of rmcp is off: servers run in containers and are reached by task IP, so
/// the DNS-rebinding defence (which needs a browser on the same host) does not apply.
pub(crate) async fn serve_mcp<S, F>(
    listener: TcpListener,
    path: &str,
    factory: F,
    in_flight: InFlight,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> Result<S, std::io::Error> + Send + Sync + 'static,
{
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    let sessions = config.cancellation_token.clone();
    let service: StreamableHttpService<S, LocalSessionManager> =
        StreamableHttpService::new(factory, Arc::new(LocalSessionManager::default()), config);
    // axum 0.8 cannot nest at the root.
    let router = if path == "/" {
        axum::Router::new().fallback_service(service)
    } else {
        axum::Router::new().nest_service(path, service)
    };
    let router = router.layer(axum::middleware::from_fn_with_state(in_flight, track));
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            sessions.cancel();
        })
        .await
}
