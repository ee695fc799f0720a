//! The instance routes over real HTTP against the in-memory doubles: create, list, status with
//! health, stop with a drain, restart, log tail, their error statuses, and environment values that
//! never appear in a response.

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{assert_error, Served};
use toolshed_core::domain::{
    CommitSha, ImageDigest, ImageRef, ImageTag, RepoUrl, Server, ServerId, ServerRegistration,
    TaskHandle, Timestamp, VerificationState, VerifiedImage,
};
use toolshed_core::ports::{Clock, ServerRepository};
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::{InMemoryPorts, ManualClock};

fn server(id: &str, verified: bool, at: Timestamp) -> Server {
    let mut s = Server::register(
        ServerRegistration::new(
            ServerId::new(id).unwrap(),
            RepoUrl::new(format!("https://github.com/example/{id}")).unwrap(),
        ),
        at,
    )
    .unwrap();
    if verified {
        s.image = Some(VerifiedImage {
            image: ImageRef::new(
                "registry.test/servers",
                ImageTag::new(format!("{id}-1")).unwrap(),
                ImageDigest::new(format!("sha256:{}", "d".repeat(64))).unwrap(),
            )
            .unwrap(),
            commit: CommitSha::new("e".repeat(40)).unwrap(),
            verified_at: at,
        });
        s.state = VerificationState::Verified;
    }
    s
}

async fn setup() -> (InMemoryPorts, Served) {
    let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
    let now = doubles.clock.now();
    for (id, verified) in [("time", true), ("raw", false)] {
        doubles
            .repository
            .insert_server(&server(id, verified, now))
            .await
            .unwrap();
    }
    let toolshed = Toolshed::new(doubles.ports(), ToolshedConfig::default()).unwrap();
    let api = Served::start(toolshed).await;
    (doubles, api)
}

fn create_body(name: &str) -> Value {
    json!({ "server_id": "time", "name": name, "env": { "API_TOKEN": "hunter2-secret", "MODE": "prod" } })
}

#[tokio::test]
async fn lifecycle_over_http() {
    let (d, api) = setup().await;

    let (status, body) = api.post("/api/instances", create_body("web-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let inst = &body["instance"];
    assert_eq!(inst["state"], "starting", "created only once MCP answers");
    assert_eq!(inst["name"], "web-1");
    assert_eq!(inst["server_id"], "time");
    assert!(inst["image"].as_str().unwrap().contains("@sha256:"));
    assert_eq!(
        inst["env"],
        json!({ "API_TOKEN": "<redacted>", "MODE": "<redacted>" })
    );
    assert!(!body.to_string().contains("hunter2"), "{body}");
    let id = inst["id"].as_str().unwrap().to_owned();
    assert_eq!(body["status_url"], format!("/api/instances/{id}"));

    // The runner got the values.
    let task = TaskHandle::new(inst["task"].as_str().unwrap()).unwrap();
    let spec = d.runner.task(&task).unwrap().spec.unwrap();
    assert_eq!(
        spec.env.exposed().collect::<Vec<_>>(),
        [("API_TOKEN", "hunter2-secret"), ("MODE", "prod")]
    );

    // Status with health.
    let (status, body) = api.get(&format!("/api/instances/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["health"]["live"], true);
    assert_eq!(body["health"]["ready"], true);
    assert_eq!(body["health"]["task_state"], "running");
    assert_eq!(
        body["instance"]["state"], "created",
        "the answered handshake is recorded"
    );
    assert!(!body.to_string().contains("hunter2"));

    // Logs.
    for n in 1..=3 {
        d.runner.write_log(&task, &format!("line {n}"));
    }
    let (status, body) = api.get(&format!("/api/instances/{id}/logs?tail=2")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["lines"], json!(["line 2", "line 3"]));
    let (status, body) = api
        .get(&format!("/api/instances/{id}/logs?tail=10001"))
        .await;
    assert_error(status, &body, 422, "invalid_input");

    // Restart with a drain, then stop with a drain.
    let (status, body) = api
        .post(
            &format!("/api/instances/{id}/restart"),
            json!({ "drain_timeout_seconds": 4 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instance"]["restart_count"], 1);
    assert_eq!(body["instance"]["state"], "starting");
    assert_ne!(body["instance"]["task"], json!(task.as_str()));
    assert_eq!(d.runner.drains(), [(task.clone(), Duration::from_secs(4))]);

    let (status, body) = api
        .post(
            &format!("/api/instances/{id}/stop"),
            json!({ "drain_timeout_seconds": 3 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instance"]["state"], "stopped");
    assert_eq!(d.runner.drains().last().unwrap().1, Duration::from_secs(3));
    // Stop again (no body): idempotent.
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/instances/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instance"]["state"], "stopped");
    assert_eq!(d.runner.drains().len(), 2);

    let (status, body) = api
        .post(
            &format!("/api/instances/{id}/stop"),
            json!({ "drain_timeout_seconds": 301 }),
        )
        .await;
    assert_error(status, &body, 422, "invalid_input");
}

#[tokio::test]
async fn list_pages_by_name() {
    let (_d, api) = setup().await;
    for name in ["c-inst", "a-inst", "b-inst"] {
        let (status, body) = api.post("/api/instances", create_body(name)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = api.get("/api/instances").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-inst", "b-inst", "c-inst"]);
    assert!(!body.to_string().contains("hunter2"));
    assert_eq!(body["next"], Value::Null);

    let (_, page) = api.get("/api/instances?limit=2").await;
    assert_eq!(page["instances"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], "b-inst");
    let (_, rest) = api.get("/api/instances?limit=2&after=b-inst").await;
    assert_eq!(rest["instances"][0]["name"], "c-inst");
    assert_eq!(rest["instances"].as_array().unwrap().len(), 1);

    let (status, body) = api.get("/api/instances?limit=0").await;
    assert_error(status, &body, 422, "invalid_input");
    let (status, body) = api.get("/api/instances?limit=x").await;
    assert_error(status, &body, 400, "invalid_query");
}

#[tokio::test]
async fn errors() {
    let (d, api) = setup().await;
    let (status, body) = api.post("/api/instances", create_body("dup")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api.post("/api/instances", create_body("dup")).await;
    assert_error(status, &body, 409, "already_exists");

    let mut unverified = create_body("raw-1");
    unverified["server_id"] = json!("raw");
    let (status, body) = api.post("/api/instances", unverified).await;
    assert_error(status, &body, 412, "not_verified");

    let mut unknown = create_body("nope-1");
    unknown["server_id"] = json!("nope");
    let (status, body) = api.post("/api/instances", unknown).await;
    assert_error(status, &body, 404, "not_found");

    let (status, body) = api.post("/api/instances", create_body("Bad Name")).await;
    assert_error(status, &body, 422, "invalid_input");
    assert!(!body.to_string().contains("hunter2"));

    let (status, body) = api
        .post(
            "/api/instances",
            json!({ "server_id": "time", "name": "env-1", "env": { "1BAD": "hunter2-secret" } }),
        )
        .await;
    assert_error(status, &body, 422, "invalid_input");
    assert!(!body.to_string().contains("hunter2"), "{body}");

    let (status, body) = api
        .post("/api/instances", json!({ "server_id": "time" }))
        .await;
    assert_error(status, &body, 422, "invalid_input");

    let (status, body) = api.get("/api/instances/i-0000000000000000").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = api.get("/api/instances/BAD").await;
    assert_error(status, &body, 400, "invalid_path_parameter");

    // A failed start answers the runner's error and records the instance failed; logs of an
    // instance that never had a task are a 409.
    d.runner.fail_next_start("no capacity");
    let (status, body) = api.post("/api/instances", create_body("failing")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (_, list) = api.get("/api/instances").await;
    let failed = list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "failing")
        .unwrap()
        .clone();
    assert_eq!(failed["state"], "failed");
    let id = failed["id"].as_str().unwrap();
    let (status, body) = api.get(&format!("/api/instances/{id}/logs")).await;
    assert_error(status, &body, 409, "invalid_state");
}

#[tokio::test]
async fn openapi_documents_the_routes() {
    let (_d, api) = setup().await;
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = &doc["paths"];
    for (path, method) in [
        ("/api/instances", "post"),
        ("/api/instances", "get"),
        ("/api/instances/{instance_id}", "get"),
        ("/api/instances/{instance_id}/stop", "post"),
        ("/api/instances/{instance_id}/restart", "post"),
        ("/api/instances/{instance_id}/logs", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
}
