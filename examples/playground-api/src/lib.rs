//! # toolshed-playground-api
//!
//! The playground API (registration, re-verification, docs, playground sessions and tool calls)
//! as an axum service over [`toolshed_core::services::Toolshed`]. [`router`] builds the whole
//! service from a `Toolshed`, so tests serve it on `127.0.0.1:0` over any backend; [`backend`]
//! composes the `Toolshed` of the binary (local by default, AWS when configured).
//!
//! Every error answers `{code, message, details}` (see [`error`]); the OpenAPI document, generated
//! from the handlers, is served at `/openapi.json`.
#![warn(missing_docs)]

pub mod auth;
pub mod backend;
pub mod dto;
pub mod error;
pub mod extract;
pub mod handlers;
mod middleware;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use toolshed_core::services::Toolshed;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

/// Settings of the HTTP layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Deadline of one request (a tool call may take the service's `tool_call_deadline`).
    pub request_timeout: Duration,
    /// The backend's name, reported by `/healthz`.
    pub backend: String,
    /// Whether registrations may point at `file://` repositories (the local backend's own
    /// machine). Off by default: on a shared deployment it would let callers read local paths.
    pub allow_file_repos: bool,
    /// Whether stdio servers can be verified, reported by `/healthz` (`None`: not reported).
    pub stdio_servers: Option<dto::StdioSupport>,
    /// Authentication, JWT verification and per-principal quotas.
    pub auth: auth::AuthSettings,
}

impl Default for ApiConfig {
    /// 64 KiB bodies, 60 s per request, backend `custom`, no `file://` repositories, API keys
    /// required.
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(60),
            backend: "custom".to_owned(),
            allow_file_repos: false,
            stdio_servers: None,
            auth: auth::AuthSettings::default(),
        }
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The services.
    pub toolshed: Toolshed,
    /// The backend's name.
    pub backend: String,
    /// See [`ApiConfig::allow_file_repos`].
    pub allow_file_repos: bool,
    /// See [`ApiConfig::stdio_servers`].
    pub stdio_servers: Option<dto::StdioSupport>,
}

/// The OpenAPI document's header; the paths come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Toolshed playground API",
        description = "Register MCP servers, verify them, launch playground sessions from the verified image and call their tools. Errors answer {code, message, details}."
    ),
    tags(
        (name = "servers", description = "Registration, reading and docs"),
        (name = "verification", description = "Re-verification"),
        (name = "playground", description = "Sessions and tool calls"),
        (name = "health", description = "Liveness"),
    )
)]
struct ApiDoc;

/// The routes and the OpenAPI document generated from their handlers.
fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use handlers::{docs, execute, health, playground, servers, verification};
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(servers::register_server, servers::list_servers))
        .routes(routes!(servers::get_server))
        .routes(routes!(docs::get_docs))
        .routes(routes!(verification::reverify))
        .routes(routes!(verification::verification_status))
        .routes(routes!(playground::launch))
        .routes(routes!(playground::status))
        .routes(routes!(playground::stop_for_server))
        .routes(routes!(playground::delete_session))
        .routes(routes!(execute::execute))
        .routes(routes!(health::healthz))
        .split_for_parts();
    auth::document_security(&mut doc);
    (routes, doc)
}

/// The OpenAPI document served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().1
}

/// The service with [`ApiConfig::default`].
pub fn router(toolshed: Toolshed) -> Router {
    router_with(toolshed, ApiConfig::default())
}

/// The service: routes, `/openapi.json`, JSON 404/405 fallbacks, body limit, request timeout,
/// request ids and a `tracing` span per request.
pub fn router_with(toolshed: Toolshed, config: ApiConfig) -> Router {
    let (routes, doc) = api_routes();
    let doc = Arc::new(doc);
    let authenticator = auth::Authenticator::new(
        &config.auth,
        toolshed.ports().repository.clone(),
        toolshed.ports().clock.clone(),
    );
    let state = AppState {
        toolshed,
        backend: config.backend.clone(),
        allow_file_repos: config.allow_file_repos,
        stdio_servers: config.stdio_servers.clone(),
    };
    routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            authenticator,
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            middleware::RequestTimeout(config.request_timeout),
            middleware::timeout,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(middleware::request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

async fn route_not_found(method: Method, uri: Uri) -> impl IntoResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
