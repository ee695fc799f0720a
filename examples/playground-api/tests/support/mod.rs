//! Serving the router on 127.0.0.1:0 and a small JSON client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
    /// The served OpenAPI document, fetched on the first call: every answer of `call` is
    /// checked against the response schema it declares.
    document: tokio::sync::OnceCell<Value>,
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
            document: tokio::sync::OnceCell::new(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method_name = method.as_str().to_ascii_lowercase();
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
        if !text.is_empty() && path != "/openapi.json" {
            let doc = self
                .document
                .get_or_init(|| async {
                    let resp = self
                        .raw
                        .get(format!("{}/openapi.json", self.base))
                        .send()
                        .await
                        .unwrap();
                    resp.json::<Value>().await.unwrap()
                })
                .await;
            assert_conforms(doc, &method_name, path, status.as_u16(), &json);
        }
        (status, json)
    }

    /// Polls the verification status at `path` until no run is in progress and its state is
    /// no longer `unverified`, for at most `deadline` (pausing a 500th of it between polls);
    /// that last answer.
    ///
    /// # Panics
    /// When the verification has not ended by then.
    pub async fn settled_verification(&self, path: &str, deadline: Duration) -> Value {
        let until = Instant::now() + deadline;
        loop {
            let (_, v) = self.get(path).await;
            if v["in_progress"] == false && v["state"] != "unverified" {
                return v;
            }
            assert!(
                Instant::now() < until,
                "the verification at {path} did not end within {deadline:?}: {v}"
            );
            tokio::time::sleep(deadline / 500).await;
        }
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

/// The document's path template for a concrete path (query removed): literal segments must
/// match, `{…}` segments match any; the template with the fewest parameters wins.
fn template<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .filter(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segments.len()
                && ts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
        })
        .min_by_key(|t| t.matches('{').count())
        .map(String::as_str)
}

/// Asserts `body` matches the JSON schema the document declares for this answer (formats such as
/// `date-time` included), when it declares one.
pub fn assert_conforms(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let Some(t) = template(doc, path) else {
        return;
    };
    let schema = &doc["paths"][t][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    let Some(schema) = schema.as_object() else {
        return;
    };
    let mut root = schema.clone();
    root.insert("components".to_owned(), doc["components"].clone());
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&Value::Object(root))
        .unwrap_or_else(|e| panic!("{method} {t} {status}: the declared schema is invalid: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} answered {status} outside its documented schema: {errors:?}\n{body}"
    );
}
