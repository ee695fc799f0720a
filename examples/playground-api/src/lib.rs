//! # toolshed-playground-api
//!
//! The playground API (registration, re-verification, docs, playground sessions and tool calls)
//! as an axum service over [`toolshed_core::services::Toolshed`]. [`router`] builds the whole
//! service from a `Toolshed`, so tests serve it on `127.0.0.1:0` over any backend; [`backend`]
//! composes the `Toolshed` of the binary (local by default, AWS when configured).
//!
//! Every error answers `{code, message, details}` (see [`error`]); the OpenAPI document, generated
//! from the handlers and completed with every constraint and answer (see [`schema`]), is served at
//! `/openapi.json`. The edge ([`edge`]) checks `Host`, JSON bodies, CORS and rate limits before
//! any handler runs.
#![warn(missing_docs)]

pub mod auth;
pub mod backend;
pub mod dto;
pub mod edge;
pub mod error;
pub mod extract;
pub mod handlers;
mod middleware;
pub mod refresh;
pub mod resume;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use toolshed_core::services::Toolshed;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::edge::{AllowedHosts, PrincipalId, RateLimit};
use crate::error::ApiError;

/// Settings of the HTTP layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Deadline of one request (a tool call may wait the service's `session_ready_deadline` for a
    /// starting session, then take its `tool_call_deadline`: keep this longer than both).
    pub request_timeout: Duration,
    /// The backend's name, reported by `/healthz`.
    pub backend: String,
    /// Whether registrations may point at `file://` repositories (the local backend's own
    /// machine). Off by default: on a shared deployment it would let callers read local paths.
    pub allow_file_repos: bool,
    /// Whether stdio servers can be verified, reported by `/healthz` (`None`: not reported).
    pub stdio_servers: Option<dto::StdioSupport>,
    /// The `Host` values answered; anything else is 421 (DNS rebinding).
    pub allowed_hosts: AllowedHosts,
    /// Origins allowed to call the API from a browser (CORS); empty: no CORS headers at all.
    pub cors_origins: Vec<HeaderValue>,
    /// Requests per client (principal, else peer address); `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Authentication, JWT verification and per-principal quotas.
    pub auth: auth::AuthSettings,
}

impl Default for ApiConfig {
    /// 64 KiB bodies, 60 s per request, backend `custom`, no `file://` repositories, loopback
    /// host names only, no CORS, [`RateLimit::default`] per client, API keys required.
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(60),
            backend: "custom".to_owned(),
            allow_file_repos: false,
            stdio_servers: None,
            allowed_hosts: AllowedHosts::default(),
            cors_origins: Vec::new(),
            rate_limit: Some(RateLimit::default()),
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
        (name = "instances", description = "Long-running instances of verified servers"),
        (name = "api-keys", description = "API-key management (admins)"),
        (name = "health", description = "Liveness"),
    )
)]
struct ApiDoc;

/// The routes and the OpenAPI document generated from their handlers.
fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use handlers::{
        api_keys, docs, execute, health, instances, playground, review, servers, verification,
        warm_pool,
    };
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(servers::register_server, servers::list_servers))
        .routes(routes!(servers::import_server))
        .routes(routes!(servers::get_server))
        .routes(routes!(servers::get_drift))
        .routes(routes!(docs::get_docs))
        .routes(routes!(verification::reverify))
        .routes(routes!(verification::verification_status))
        .routes(routes!(review::approve))
        .routes(routes!(review::reject))
        .routes(routes!(warm_pool::set_warm_pool))
        .routes(routes!(playground::launch))
        .routes(routes!(playground::status))
        .routes(routes!(playground::stop_for_server))
        .routes(routes!(playground::delete_session))
        .routes(routes!(execute::execute))
        .routes(routes!(
            instances::create_instance,
            instances::list_instances
        ))
        .routes(routes!(instances::instance_status))
        .routes(routes!(instances::stop_instance))
        .routes(routes!(instances::restart_instance))
        .routes(routes!(instances::instance_logs))
        .routes(routes!(api_keys::create_api_key, api_keys::list_api_keys))
        .routes(routes!(api_keys::revoke_api_key))
        .routes(routes!(health::healthz))
        .split_for_parts();
    auth::document_security(&mut doc);
    (routes, doc)
}

/// The OpenAPI document as generated from the handlers (without the completions of
/// [`openapi_document`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().1
}

/// The OpenAPI document served at `/openapi.json` by a router built with `config` over
/// `toolshed`: every constraint, answer and security scheme included.
pub fn openapi_document(toolshed: &Toolshed, config: &ApiConfig) -> serde_json::Value {
    schema::complete_document(&openapi(), &doc_settings(toolshed, config))
}

fn doc_settings(toolshed: &Toolshed, config: &ApiConfig) -> schema::DocSettings {
    let bounds = toolshed.config().ttl_bounds;
    let min = bounds.min.as_secs() + u64::from(bounds.min.subsec_nanos() > 0);
    schema::DocSettings {
        allow_file_repos: config.allow_file_repos,
        ttl_seconds: (min, bounds.max.as_secs()),
        // With authentication off, requests without credentials are served.
        anonymous: config.auth.mode == auth::AuthMode::Off,
        body_limit: config.body_limit,
    }
}

/// The service with [`ApiConfig::default`].
pub fn router(toolshed: Toolshed) -> Router {
    router_with(toolshed, ApiConfig::default())
}

/// The service: routes, `/openapi.json`, JSON 404/405 fallbacks, body limit, request timeout,
/// the edge (Host allow-list, JSON-only bodies, CORS, rate limits), request ids and a `tracing`
/// span per request.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: rate limits are kept per
/// peer address (without it, every client shares one limit).
pub fn router_with(toolshed: Toolshed, config: ApiConfig) -> Router {
    let (routes, _) = api_routes();
    let doc = Arc::new(openapi_document(&toolshed, &config));
    let authenticator = auth::Authenticator::new(&config.auth, toolshed.clone());
    let state = AppState {
        toolshed,
        backend: config.backend.clone(),
        allow_file_repos: config.allow_file_repos,
        stdio_servers: config.stdio_servers.clone(),
    };
    let mut app = routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            middleware::RequestTimeout(config.request_timeout),
            middleware::timeout,
        ))
        .layer(axum::middleware::from_fn(edge::require_json));
    // Outermost first on the way in: Host, then CORS (a preflight is answered before the
    // credential and JSON checks, which it would fail), then authentication (which sets the
    // principal the rate limit is kept per), then the rate limit.
    if let Some(limit) = config.rate_limit {
        app = app.layer(axum::middleware::from_fn_with_state(
            edge::RateLimiter::new(limit),
            edge::rate_limit,
        ));
    }
    app = app.layer(axum::middleware::from_fn_with_state(
        authenticator,
        auth::authenticate,
    ));
    if let Some(cors) = edge::cors(&config.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn_with_state(
        Arc::new(config.allowed_hosts.clone()),
        edge::check_host,
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
