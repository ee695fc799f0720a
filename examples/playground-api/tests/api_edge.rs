//! The API's edge over real HTTP: JSON-only bodies (415), the Host allow-list (421), CORS off
//! unless configured, rate limits (429 with `Retry-After`), and answers that carry no SDK type
//! name, internal address or ARN — an execute against a server answering garbage (the real rmcp
//! probe), and a verification failure whose builder message holds an ARN.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{assert_error, generous, Served};
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::domain::{
    CommitSha, Endpoint, GitRef, ProbeReport, RemoteTarget, RepoSnapshot, RepoUrl, ToolCall,
    ToolCallOutput,
};
use toolshed_core::ports::McpProbe;
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::{
    BuildScript, FakeImageBuilder, FakeMcpProbe, FakeTaskRunner, HeuristicMetadataGenerator,
    InMemoryDocsStore, InMemoryImageStore, InMemoryServerRepository, InMemorySourceRepository,
    ManualClock,
};
use toolshed_playground_api::{AllowedHosts, ApiConfig, RateLimit};

struct Parts {
    toolshed: Toolshed,
    builder: Arc<FakeImageBuilder>,
}

fn parts(probe: Arc<dyn McpProbe>) -> Parts {
    let clock = Arc::new(ManualClock::fixed());
    let images = Arc::new(InMemoryImageStore::default());
    let source = Arc::new(InMemorySourceRepository::new());
    let builder = Arc::new(FakeImageBuilder::new(images.clone()));
    for id in ["time", "broken"] {
        let repo = RepoUrl::new(format!("https://github.com/example/{id}")).unwrap();
        let sha = CommitSha::new("a".repeat(40)).unwrap();
        source.set_commit(&repo, &GitRef::main(), &sha);
        source.set_snapshot(
            &repo,
            &sha,
            RepoSnapshot {
                readme: Some(format!("# {id}\n\nAn MCP server.\n")),
                files: vec![],
                manifests: vec![],
                dockerfile: Some("FROM scratch\n".into()),
                truncated: false,
            },
        );
    }
    let ports = Ports {
        repository: Arc::new(InMemoryServerRepository::new()),
        images,
        builder: builder.clone(),
        runner: Arc::new(FakeTaskRunner::new(clock.clone())),
        probe,
        source,
        metadata: Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
        docs: Arc::new(InMemoryDocsStore::new()),
        secrets: Arc::new(toolshed_core::testing::InMemorySecretStore::new()),
        clock,
    };
    let config = ToolshedConfig {
        worker_id: "edge-test".to_owned(),
        ..ToolshedConfig::default()
    };
    Parts {
        toolshed: Toolshed::new(ports, config).unwrap(),
        builder,
    }
}

async fn send(
    api: &Served,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = api.http.request(method, format!("{}{path}", api.base));
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
    }
    if let Some(b) = body {
        req = req.body(b.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_body_must_be_json_even_where_it_is_optional() {
    let p = parts(Arc::new(FakeMcpProbe::new()));
    let api = Served::start(p.toolshed).await;
    use reqwest::Method;
    for path in [
        "/api/servers",
        "/api/servers/time/reverify",
        "/api/servers/time/playground",
        "/api/servers/time/playground/stop",
        "/api/servers/time/execute",
    ] {
        // A cross-site form post: text/plain, or a form, or no content type at all.
        for (ct, body) in [
            (Some("text/plain"), "{}"),
            (Some("application/x-www-form-urlencoded"), "a=b"),
            (Some("multipart/form-data; boundary=x"), "--x--"),
            (None, "{}"),
        ] {
            let (status, body) = send(&api, Method::POST, path, ct, Some(body)).await;
            assert_error(status, &body, 415, "unsupported_media_type");
        }
    }
    // Optional bodies: no body and no content type still works (404: the server is unknown).
    for path in ["/api/servers/time/reverify", "/api/servers/time/playground"] {
        let (status, body) = send(&api, Method::POST, path, None, None).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = send(
            &api,
            Method::POST,
            path,
            Some("application/json; charset=utf-8"),
            Some("{}"),
        )
        .await;
        assert_error(status, &body, 404, "not_found");
    }
    // A GET with a foreign content type is refused too; a plain GET is served.
    let (status, body) = send(&api, Method::GET, "/api/servers", Some("text/plain"), None).await;
    assert_error(status, &body, 415, "unsupported_media_type");
    let (status, _) = send(&api, Method::GET, "/api/servers", None, None).await;
    assert_eq!(status, StatusCode::OK);
    api.stop().await;
}

#[tokio::test]
async fn foreign_hosts_are_misdirected_and_the_allow_list_is_configurable() {
    let p = parts(Arc::new(FakeMcpProbe::new()));
    let api = Served::start(p.toolshed.clone()).await;
    let port = api.base.rsplit(':').next().unwrap().to_owned();
    // A DNS name rebound to 127.0.0.1: the browser sends the attacker's name as Host.
    for host in [
        format!("rebound.attacker.example:{port}"),
        "rebound.attacker.example".to_owned(),
        format!("127.0.0.2:{port}"),
    ] {
        let resp = api
            .http
            .get(format!("{}/api/servers", api.base))
            .header("host", host.as_str())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_error(status, &body, 421, "misdirected_request");
    }
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let resp = api
            .http
            .get(format!("{}/healthz", api.base))
            .header("host", host.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{host}");
    }
    api.stop().await;

    // An explicit list: only that name.
    let api = Served::start_with(
        p.toolshed,
        ApiConfig {
            allowed_hosts: AllowedHosts::parse("api.example.com").unwrap(),
            ..generous()
        },
    )
    .await;
    let ok = api
        .http
        .get(format!("{}/healthz", api.base))
        .header("host", "api.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let (status, body) = api.get("/healthz").await;
    assert_error(status, &body, 421, "misdirected_request");
    api.stop().await;
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    let p = parts(Arc::new(FakeMcpProbe::new()));
    let preflight = |api: &Served, origin: &'static str| {
        api.http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/servers", api.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let api = Served::start(p.toolshed.clone()).await;
    let resp = preflight(&api, "https://app.example.com").await.unwrap();
    assert!(
        !resp.headers().contains_key("access-control-allow-origin"),
        "no CORS without configuration: {:?}",
        resp.headers()
    );
    let resp = api
        .http
        .get(format!("{}/api/servers", api.base))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    api.stop().await;

    let api = Served::start_with(
        p.toolshed,
        ApiConfig {
            cors_origins: toolshed_playground_api::edge::parse_origins("https://app.example.com")
                .unwrap(),
            ..generous()
        },
    )
    .await;
    let resp = preflight(&api, "https://app.example.com").await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let resp = preflight(&api, "https://evil.example").await.unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    let resp = api
        .http
        .get(format!("{}/api/servers", api.base))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_burst_over_the_limit_is_429_with_retry_after() {
    let p = parts(Arc::new(FakeMcpProbe::new()));
    let api = Served::start_with(
        p.toolshed,
        ApiConfig {
            rate_limit: RateLimit::new(1, 3),
            ..ApiConfig::default()
        },
    )
    .await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let resp = api
            .http
            .get(format!("{}/api/servers", api.base))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS && limited.is_none() {
            let retry_after: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body: Value = resp.json().await.unwrap();
            limited = Some((retry_after, body));
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let (retry_after, body) = limited.unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let details = assert_error(StatusCode::TOO_MANY_REQUESTS, &body, 429, "rate_limited");
    assert_eq!(details["retryable"], true);
    api.stop().await;
}

/// Verification and status from the fake probe; tool calls from the real rmcp probe, sent to a
/// local server that answers garbage.
#[derive(Debug)]
struct GarbageToolCalls {
    fake: FakeMcpProbe,
    real: RmcpProbe,
    garbage: Endpoint,
}

#[async_trait]
impl McpProbe for GarbageToolCalls {
    async fn probe(
        &self,
        endpoint: &Endpoint,
        deadline: Duration,
    ) -> toolshed_core::Result<ProbeReport> {
        self.fake.probe(endpoint, deadline).await
    }

    async fn wait_ready(
        &self,
        endpoint: &Endpoint,
        deadline: Duration,
    ) -> toolshed_core::Result<ProbeReport> {
        self.fake.wait_ready(endpoint, deadline).await
    }

    async fn probe_remote(
        &self,
        remote: &RemoteTarget,
        deadline: Duration,
    ) -> toolshed_core::Result<ProbeReport> {
        self.fake.probe_remote(remote, deadline).await
    }

    async fn call_tool(
        &self,
        _endpoint: &Endpoint,
        call: &ToolCall,
        _input_schema: Option<Value>,
        deadline: Duration,
    ) -> toolshed_core::Result<ToolCallOutput> {
        self.real
            .call_tool(&self.garbage, call, None, deadline)
            .await
    }
}

/// A TCP server answering every request with a 200 whose body is not MCP.
async fn garbage_server() -> (Endpoint, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = stream.read(&mut buf).await;
                let body = "<<garbage: this is not JSON-RPC>>";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (Endpoint::new("127.0.0.1", port, "/mcp").unwrap(), task)
}

/// What no answer may contain.
fn assert_no_internals(body: &Value) {
    let text = body.to_string();
    for leaked in [
        "rmcp",
        "reqwest",
        "WorkerTransport",
        "::",
        "127.0.0.1",
        "arn:aws",
        "123456789012",
    ] {
        assert!(!text.contains(leaked), "{leaked:?} leaked in {text}");
    }
}

#[tokio::test]
async fn an_execute_against_a_server_answering_garbage_names_no_sdk_type() {
    let (garbage, server) = garbage_server().await;
    let probe = Arc::new(GarbageToolCalls {
        fake: FakeMcpProbe::new(),
        real: RmcpProbe::new().unwrap(),
        garbage,
    });
    let p = parts(probe);
    let api = Served::start(p.toolshed.clone()).await;
    let (status, _) = api
        .post(
            "/api/servers",
            json!({"id": "time", "repo": "https://github.com/example/time", "git_ref": "main"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = toolshed_core::domain::ServerId::new("time").unwrap();
    p.toolshed
        .verify_server(&id, toolshed_core::services::VerifyOptions::default())
        .await
        .unwrap();
    let (status, launched) = api.post("/api/servers/time/playground", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{launched}");
    let (status, body) = api
        .post(
            "/api/servers/time/execute",
            json!({"tool": "get_current_time", "arguments": {"timezone": "UTC"}}),
        )
        .await;
    assert!(
        [502, 503, 504].contains(&status.as_u16()),
        "{status}: {body}"
    );
    assert!(
        body["code"].as_str().is_some_and(|c| c.starts_with("mcp_")),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("MCP")),
        "{body}"
    );
    assert_no_internals(&body);
    api.stop().await;
    server.abort();
}

#[tokio::test]
async fn a_verification_failure_with_an_arn_is_stored_and_answered_redacted() {
    let p = parts(Arc::new(FakeMcpProbe::new()));
    p.builder.push_script(BuildScript::fail(
        "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/toolshed-build/x is not authorized to perform: ecr:PutImage; pushing to 10.0.4.2:5000 failed\nStep 4/4 : RUN make\nmake: *** [all] Error 2",
    ));
    let api = Served::start(p.toolshed.clone()).await;
    let (status, _) = api
        .post(
            "/api/servers",
            json!({"id": "broken", "repo": "https://github.com/example/broken", "git_ref": "main"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = api.post("/api/servers/broken/reverify", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let last = api
        .settled_verification("/api/servers/broken/verification", Duration::from_secs(5))
        .await;
    assert_eq!(last["state"], "failed", "{last}");
    let failure = &last["last_failure"];
    assert_eq!(failure["step"], "build", "{last}");
    let reason = failure["reason"].as_str().unwrap();
    assert!(reason.contains("<arn>"), "{reason}");
    assert!(
        reason.contains("make: *** [all] Error 2"),
        "the log's tail stays: {reason}"
    );
    assert_no_internals(&last);
    // Stored redacted: the server record says the same.
    let (_, server) = api.get("/api/servers/broken").await;
    assert_eq!(server["server"]["last_failure"]["reason"], reason);
    assert_no_internals(&server);
    api.stop().await;
}

#[tokio::test]
async fn the_document_declares_every_constraint_answer_and_security_scheme() {
    let p = parts(Arc::new(FakeMcpProbe::new()));
    let api = Served::start(p.toolshed).await;
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-Api-Key");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let label = format!("{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            for status in ["421", "429", "503"] {
                assert!(responses.contains_key(status), "{label} lacks {status}");
            }
            if path != "/healthz" {
                for status in ["401", "403", "500"] {
                    assert!(responses.contains_key(status), "{label} lacks {status}");
                }
                let security = op["security"].to_string();
                assert!(
                    security.contains("bearer") && security.contains("api_key"),
                    "{label}: {security}"
                );
            }
            for error in responses
                .iter()
                .filter(|(s, _)| s.starts_with('4') || s.starts_with('5'))
            {
                assert_eq!(
                    error.1["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{label} {}",
                    error.0
                );
            }
            if let Some(body) = op.get("requestBody") {
                let schema = body["content"]["application/json"]["schema"].to_string();
                assert!(schema.contains("$ref"), "{label}: untyped body {schema}");
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{label} lacks {status}");
                }
            }
            for param in op["parameters"].as_array().into_iter().flatten() {
                let schema = &param["schema"];
                let name = param["name"].as_str().unwrap();
                match (param["in"].as_str().unwrap(), name) {
                    ("query", "limit") => {
                        assert_eq!(schema["minimum"], 1, "{label}");
                        assert_eq!(schema["maximum"], 1000, "{label}");
                    }
                    ("query", "force") => assert_eq!(schema["type"], "boolean"),
                    ("query", "package" | "remote") => assert_eq!(schema["minimum"], 0, "{label}"),
                    ("query", "tail") => {
                        assert_eq!(schema["minimum"], 0, "{label}");
                        assert_eq!(schema["maximum"], 10_000, "{label}");
                    }
                    _ => assert!(
                        schema["pattern"]
                            .as_str()
                            .is_some_and(|p| p.starts_with('^')),
                        "{label}: {name} has no pattern: {schema}"
                    ),
                }
            }
        }
    }
    // The servers (with docs and drift), verification, playground and health routes, the six
    // instance routes, the three API-key routes, the two review routes (approve, reject), the
    // warm-pool setting and the server.json import.
    assert_eq!(operations, 26);
    // Body constraints, including those that come from the service's configuration.
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["RegisterRequest"]["properties"]["repo"]["pattern"]
        .as_str()
        .unwrap()
        .starts_with("^https://"));
    assert_eq!(
        schemas["ResourcesBody"]["properties"]["cpu_units"]["minimum"],
        256
    );
    let ttl = &schemas["LaunchBody"]["properties"]["ttl_seconds"];
    let bounds = ToolshedConfig::default().ttl_bounds;
    assert_eq!(ttl["minimum"], bounds.min.as_secs());
    assert_eq!(ttl["maximum"], bounds.max.as_secs());
    assert!(schemas["StopRequest"]["anyOf"].is_array());
    assert_eq!(schemas["ExecuteRequest"]["required"], json!(["tool"]));
    api.stop().await;
}
