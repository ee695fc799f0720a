//! API-key management over real HTTP: an admin creates, lists and revokes keys through the API
//! (any backend), the secret is answered once, no hash is ever answered, and a revoked key is
//! refused on the next request.

mod support;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::Served;
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::ManualClock;

/// The API with authentication required; `api`'s client carries an admin key.
struct Keys {
    api: Served,
}

impl Keys {
    async fn start() -> Self {
        let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
        let toolshed = Toolshed::new(doubles.ports(), ToolshedConfig::default()).unwrap();
        // Authentication is required by default.
        Self {
            api: Served::start_with(toolshed, support::generous()).await,
        }
    }

    async fn send(
        &self,
        method: &Method,
        path: &str,
        credential: Option<&str>,
        _body: Option<Value>,
    ) -> (StatusCode, Value, ()) {
        let mut req = self
            .api
            .raw
            .request(method.clone(), format!("{}{path}", self.api.base));
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
        (status, value, ())
    }
}

#[tokio::test]
async fn admins_manage_api_keys_over_the_api() {
    let h = Keys::start().await;
    // The served client carries an admin key.
    let (status, created) = h
        .api
        .post(
            "/api/api-keys",
            json!({"name": "erin-ci", "scopes": ["read"], "owner": "erin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("tsk_{id}_")), "{created}");
    assert_eq!(created["key"]["scopes"], json!(["read"]));

    // The new key works, within its scope.
    let (status, _, _) = h
        .send(&Method::GET, "/api/servers", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = h
        .send(&Method::GET, "/api/api-keys", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["details"]["required_scope"], "admin");

    // Listed without secret or hash.
    let (status, list) = h.api.get("/api/api-keys?owner=erin").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{list}");
    assert_eq!(keys[0]["id"], id.as_str());
    let text = list.to_string();
    assert!(!text.contains(&secret[secret.len() - 64..]), "{text}");
    assert!(!text.contains("sha256"), "{text}");

    // Revoked over the API: refused on the very next request.
    let (status, revoked) = h
        .api
        .post(&format!("/api/api-keys/{id}/revoke"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, _, _) = h
        .send(&Method::GET, "/api/servers", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = h
        .api
        .post("/api/api-keys/0000000000000000/revoke", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = h
        .api
        .post(
            "/api/api-keys",
            json!({"name": "x", "scopes": ["root"], "owner": "erin"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
