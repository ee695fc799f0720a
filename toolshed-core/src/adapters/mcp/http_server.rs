//! Serving an rmcp server over streamable HTTP on axum (shared by the bridge and the example).

use std::future::Future;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServerHandler;
use tokio::net::TcpListener;

/// Serves the MCP service made by `factory` (one instance per session) at `path` until
/// `shutdown` completes, then ends the MCP sessions so open SSE streams close.
///
/// The `Host` check of rmcp is off: servers run in containers and are reached by task IP, so
/// the DNS-rebinding defence (which needs a browser on the same host) does not apply.
pub(crate) async fn serve_mcp<S, F>(
    listener: TcpListener,
    path: &str,
    factory: F,
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
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            sessions.cancel();
        })
        .await
}
