//! Serving the router on 127.0.0.1:0 and a small JSON client.
#![allow(dead_code)]

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use toolshed_core::domain::{ApiKey, NewApiKey, PrincipalId, Scope};
use toolshed_core::services::Toolshed;
use toolshed_playground_api::auth::AuthMode;
use toolshed_playground_api::{router_with, ApiConfig, RateLimit};

/// Stores a new API key of `owner` with `scopes` and returns it in clear.
pub async fn create_key(toolshed: &Toolshed, owner: &str, scopes: &[Scope]) -> String {
    let (key, secret) = ApiKey::generate(
        NewApiKey {
            name: format!("{owner}-key"),
            scopes: scopes.iter().copied().collect(),
            owner: PrincipalId::new(owner).unwrap(),
        },
        toolshed.ports().clock.now(),
    )
    .unwrap();
    toolshed
        .ports()
        .repository
        .insert_api_key(&key)
        .await
        .unwrap();
    secret.expose().to_owned()
}

/// A served API. Its `http` client sends an admin API key with every request (when
/// authentication is on); `raw` sends none.
pub struct Served {
    pub base: String,
    pub http: reqwest::Client,
    pub raw: reqwest::Client,
    pub toolshed: Toolshed,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    /// Serves with the default configuration, but a rate limit that polling tests stay under.
    pub async fn start(toolshed: Toolshed) -> Self {
        Self::start_with(toolshed, generous()).await
    }

    pub async fn start_with(toolshed: Toolshed, config: ApiConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut headers = reqwest::header::HeaderMap::new();
        if config.auth.mode == AuthMode::Required {
            let key = create_key(&toolshed, "test-admin", &[Scope::Admin]).await;
            headers.insert("x-api-key", key.parse().unwrap());
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        let app = router_with(toolshed.clone(), config);
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            base: format!("http://{addr}"),
            http,
            raw: reqwest::Client::new(),
            toolshed,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Stops accepting and waits for the server task (graceful shutdown).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

/// Asserts the error shape and code; returns the details.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) -> Value {
    assert_eq!(status.as_u16(), want_status, "status of {body}");
    assert_eq!(body["code"], want_code, "code of {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message of {body}"
    );
    assert!(body["details"].is_object(), "details of {body}");
    body["details"].clone()
}

/// Skips (or panics under TOOLSHED_REQUIRE_BACKENDS=1) when `var` is unset.
pub fn required_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("TOOLSHED_REQUIRE_BACKENDS").as_deref() == Ok("1") {
                panic!("{var} is not set but TOOLSHED_REQUIRE_BACKENDS=1");
            }
            println!("skipped: {var} is not set ({what})");
            None
        }
    }
}

/// [`ApiConfig::default`] with a rate limit that polling tests stay under.
pub fn generous() -> ApiConfig {
    ApiConfig {
        rate_limit: RateLimit::new(10_000, 10_000),
        ..ApiConfig::default()
    }
}
