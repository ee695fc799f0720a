//! Servers with settings over real HTTP against the in-memory doubles: declarations at
//! registration (shown in views, described by the document), test values the verification's
//! check task runs with (kept in the secret store), launch values checked before anything
//! starts, instances whose secret values stay out of their record — and a secret value that
//! appears in no answer.

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, Served};
use toolshed_core::domain::{CommitSha, GitRef, RepoSnapshot, RepoUrl, ServerId, TaskPurpose};
use toolshed_core::ports::{SecretOwner, SecretStore, ServerRepository};
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::{InMemoryPorts, ManualClock};

const SECRET: &str = "sk-live-needle-58213";
const TEST_SECRET: &str = "sk-test-needle-90417";

struct Harness {
    d: InMemoryPorts,
    api: Served,
    /// Every answer body seen, to scan for secret values at the end.
    seen: std::sync::Mutex<Vec<String>>,
}

impl Harness {
    async fn new() -> Self {
        let d = Ports::in_memory(Arc::new(ManualClock::fixed()));
        let config = ToolshedConfig {
            worker_id: "api-settings".to_owned(),
            ..ToolshedConfig::default()
        };
        let toolshed = Toolshed::new(d.ports(), config).unwrap();
        let api = Served::start(toolshed).await;
        Self {
            d,
            api,
            seen: std::sync::Mutex::new(Vec::new()),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, v) = self.api.call(method, path, body).await;
        self.seen.lock().unwrap().push(v.to_string());
        (status, v)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    fn push_commit(&self, id: &str) {
        let url = RepoUrl::new(format!("https://github.com/example/{id}")).unwrap();
        let sha = CommitSha::new("a".repeat(40)).unwrap();
        self.d.source.set_commit(&url, &GitRef::main(), &sha);
        self.d.source.set_snapshot(
            &url,
            &sha,
            RepoSnapshot {
                readme: Some("# gated\n\nAn MCP server behind an API key.\n".into()),
                files: vec!["Dockerfile".into()],
                manifests: vec![],
                dockerfile: Some("FROM scratch\n".into()),
                truncated: false,
            },
        );
    }

    async fn verify(&self, id: &str) {
        let (status, body) = self
            .post(&format!("/api/servers/{id}/reverify"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let url = body["status_url"].as_str().unwrap().to_owned();
        for _ in 0..500 {
            let (_, v) = self.get(&url).await;
            if v["in_progress"] == false && v["state"] == "verified" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} was not verified in time");
    }

    /// No answer seen so far contains a secret value.
    fn assert_no_secret_in_answers(&self) {
        let seen = self.seen.lock().unwrap();
        assert!(seen.len() >= 5, "too few answers scanned: {}", seen.len());
        for body in seen.iter() {
            for secret in [SECRET, TEST_SECRET] {
                assert!(!body.contains(secret), "an answer holds a secret: {body}");
            }
        }
    }
}

fn registration() -> Value {
    json!({
        "id": "gated",
        "repo": "https://github.com/example/gated",
        "git_ref": "main",
        "settings": [
            {"name": "GATED_API_KEY", "description": "Unlocks the tools", "required": true, "secret": true},
            {"name": "REGION", "default": "eu-west-1"},
            {"name": "DEBUG"},
        ],
        "test_values": {"GATED_API_KEY": TEST_SECRET},
    })
}

#[tokio::test]
async fn settings_from_registration_to_launch_never_leak() {
    let h = Harness::new().await;
    h.push_commit("gated");

    // Registration: declarations shown, the test value kept in the secret store.
    let (status, body) = h.post("/api/servers", registration()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let settings = &body["server"]["settings"];
    assert_eq!(settings.as_array().unwrap().len(), 3, "{body}");
    assert_eq!(settings[0]["name"], "GATED_API_KEY");
    assert_eq!(settings[0]["required"], true);
    assert_eq!(settings[0]["secret"], true);
    assert_eq!(settings[0]["description"], "Unlocks the tools");
    assert_eq!(settings[1]["default"], "eu-west-1");
    let owner = SecretOwner::ServerTestValues(ServerId::new("gated").unwrap());
    let stored = h.d.secrets.get(&owner).await.unwrap().expect("test values");
    assert_eq!(
        stored.exposed().collect::<Vec<_>>(),
        [("GATED_API_KEY", TEST_SECRET)]
    );

    // Verification: the check task starts with the test value and the default.
    h.verify("gated").await;
    let check =
        h.d.runner
            .tasks()
            .into_iter()
            .filter_map(|t| t.spec)
            .find(|s| matches!(s.labels.purpose, TaskPurpose::Verification { .. }))
            .expect("a check task");
    assert_eq!(
        check.env.exposed().collect::<Vec<_>>(),
        [("GATED_API_KEY", TEST_SECRET), ("REGION", "eu-west-1")]
    );
    // A re-verification reads them again.
    let (status, body) = h
        .post("/api/servers/gated/reverify?force=true", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // A launch without the required value: 422 naming it, before any task starts.
    let starts = h.d.runner.start_calls();
    let (status, body) = h
        .post(
            "/api/servers/gated/playground",
            json!({"settings": {"DEBUG": "1"}}),
        )
        .await;
    let _ = assert_error(status, &body, 422, "invalid_input");
    assert!(
        body["message"].as_str().unwrap().contains("GATED_API_KEY"),
        "{body}"
    );
    // An undeclared name: 422 naming it, never its value.
    let (status, body) = h
        .post(
            "/api/servers/gated/playground",
            json!({"settings": {"GATED_API_KEY": SECRET, "GATED_KEY": SECRET}}),
        )
        .await;
    let _ = assert_error(status, &body, 422, "invalid_input");
    assert!(
        body["message"].as_str().unwrap().contains("GATED_KEY"),
        "{body}"
    );
    assert_eq!(h.d.runner.start_calls(), starts, "nothing started");

    // A launch with the value: its task gets it (and the default), the session record not.
    let (status, body) = h
        .post(
            "/api/servers/gated/playground",
            json!({"settings": {"GATED_API_KEY": SECRET}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let session = body["session"]["id"].as_str().unwrap().to_owned();
    let spec =
        h.d.runner
            .tasks()
            .into_iter()
            .filter_map(|t| t.spec)
            .find(|s| s.idempotency_token == session)
            .expect("the session's task");
    assert_eq!(
        spec.env.exposed().collect::<Vec<_>>(),
        [("GATED_API_KEY", SECRET), ("REGION", "eu-west-1")]
    );
    let record =
        h.d.repository
            .get_session(&toolshed_core::domain::SessionId::new(session.clone()).unwrap())
            .await
            .unwrap();
    assert!(!format!("{record:?}").contains(SECRET));
    let (status, body) = h
        .get(&format!(
            "/api/servers/gated/playground/status?session_id={session}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An instance: the record keeps the secret's name only, the store its value; a restart
    // reads it back; removing the instance deletes it.
    let (status, body) = h
        .post(
            "/api/instances",
            json!({"server_id": "gated", "name": "gated-1", "env": {"GATED_API_KEY": SECRET, "DEBUG": "1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["instance"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        body["instance"]["env"],
        json!({"DEBUG": "<redacted>", "GATED_API_KEY": "<redacted>", "REGION": "<redacted>"})
    );
    let instance_id = toolshed_core::domain::InstanceId::new(id.clone()).unwrap();
    let record = h.d.repository.get_instance(&instance_id).await.unwrap();
    assert_eq!(
        record.env.exposed().collect::<Vec<_>>(),
        [
            ("DEBUG", "1"),
            ("GATED_API_KEY", "<redacted>"),
            ("REGION", "eu-west-1")
        ],
        "the record holds no secret value"
    );
    let (status, body) = h
        .post(&format!("/api/instances/{id}/restart"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task =
        toolshed_core::domain::TaskHandle::new(body["instance"]["task"].as_str().unwrap()).unwrap();
    let spec = h.d.runner.task(&task).unwrap().spec.unwrap();
    assert_eq!(spec.env.get("GATED_API_KEY").unwrap().expose(), SECRET);
    let owner = SecretOwner::Instance(instance_id);
    assert!(h.d.secrets.get(&owner).await.unwrap().is_some());
    // (The API has no removal route: the operator removes instances through the services.)
    let owner_id = match &owner {
        SecretOwner::Instance(i) => i.clone(),
        SecretOwner::ServerTestValues(_) => unreachable!(),
    };
    assert!(h
        .api
        .toolshed
        .remove_instance(&owner_id, Some(Duration::ZERO))
        .await
        .unwrap());
    assert_eq!(h.d.secrets.get(&owner).await.unwrap(), None);
    // An instance missing the required value is refused before anything is stored.
    let (status, body) = h
        .post(
            "/api/instances",
            json!({"server_id": "gated", "name": "gated-2", "env": {}}),
        )
        .await;
    let _ = assert_error(status, &body, 422, "invalid_input");
    assert!(body["message"].as_str().unwrap().contains("GATED_API_KEY"));

    // Views and listings.
    for path in [
        "/api/servers/gated",
        "/api/servers",
        "/api/instances",
        "/api/servers/gated/verification",
    ] {
        let _ = h.get(path).await;
    }
    h.assert_no_secret_in_answers();
}

#[tokio::test]
async fn bad_declarations_and_test_values_are_refused_without_echoing_values() {
    let h = Harness::new().await;
    let _ = h.get("/api/servers").await;
    let mut secret_default = registration();
    secret_default["settings"][0]["default"] = json!(SECRET);
    let mut unknown = registration();
    unknown["test_values"] = json!({"GATED_APIKEY": SECRET});
    let mut bad_name = registration();
    bad_name["settings"][1]["name"] = json!("1REGION");
    let mut twice = registration();
    twice["settings"][2]["name"] = json!("REGION");
    for (body, field, names) in [
        (secret_default, "settings", "GATED_API_KEY"),
        (unknown, "test_values", "GATED_APIKEY"),
        (bad_name, "settings", "1REGION"),
        (twice, "settings", "REGION"),
    ] {
        let (status, answer) = h.post("/api/servers", body).await;
        let details = assert_error(status, &answer, 422, "invalid_input");
        assert_eq!(details["field"], field, "{answer}");
        assert!(answer.to_string().contains(names), "{answer}");
    }
    // Nothing was registered or stored.
    let (_, page) = h.get("/api/servers").await;
    assert_eq!(page["servers"], json!([]));
    assert!(h.d.secrets.is_empty());
    h.assert_no_secret_in_answers();
}

#[tokio::test]
async fn the_document_describes_settings() {
    let h = Harness::new().await;
    let (_, doc) = h.api.get("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    let setting = &schemas["SettingBody"];
    assert_eq!(
        setting["properties"]["name"]["pattern"],
        "^[A-Za-z_][A-Za-z0-9_]{0,255}$"
    );
    assert!(
        setting["not"].is_object(),
        "a secret has no default: {setting}"
    );
    let register = &schemas["RegisterRequest"]["properties"];
    assert!(register["settings"].is_object(), "{register}");
    assert!(register["test_values"]
        .to_string()
        .contains("propertyNames"));
    assert!(schemas["LaunchBody"]["properties"]["settings"]
        .to_string()
        .contains("propertyNames"));
    assert!(schemas["ServerBody"]["properties"]["settings"].is_object());
    assert!(schemas["SettingView"]["properties"]["secret"].is_object());
}
