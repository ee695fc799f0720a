//! The trust boundary over real HTTP: every route of the OpenAPI document against missing,
//! expired and wrongly signed credentials, the wrong scope and another principal's session;
//! revocation; per-principal quotas under concurrency (in memory and on SQLite); and no secret
//! in the logs. JWTs come from a test identity provider: an EC key pair made per test, its JWKS
//! served on 127.0.0.1:0.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{create_key, Served};
use toolshed_core::domain::{
    CommitSha, GitRef, PrincipalId, PrincipalQuotas, RepoSnapshot, RepoUrl, Scope,
};
use toolshed_core::ports::ServerRepository;
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::{
    FakeImageBuilder, FakeMcpProbe, FakeTaskRunner, HeuristicMetadataGenerator, InMemoryDocsStore,
    InMemoryImageStore, InMemoryServerRepository, InMemorySourceRepository, ManualClock,
};
use toolshed_playground_api::auth::{AuthSettings, JwtSettings};
use toolshed_playground_api::ApiConfig;

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "toolshed-api";
const SERVER: &str = "auth-srv";

/// A test identity provider: a P-256 key pair and its JWKS on 127.0.0.1:0.
struct Idp {
    kid: String,
    pkcs8: Vec<u8>,
    jwks_url: String,
    fetches: Arc<AtomicUsize>,
}

fn new_pkcs8() -> Vec<u8> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap()
        .as_ref()
        .to_vec()
}

impl Idp {
    async fn start() -> Self {
        let pkcs8 = new_pkcs8();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 65, "uncompressed P-256 point");
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let kid = format!("k-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        }]});
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            kid,
            pkcs8,
            jwks_url: format!("http://{addr}/jwks"),
            fetches,
        }
    }

    fn settings(&self) -> JwtSettings {
        JwtSettings::new(&self.jwks_url, ISSUER, AUDIENCE)
    }

    /// A token for `sub` with `scope`, expiring `exp_in` seconds from now, signed by `pkcs8`.
    fn token_signed(&self, pkcs8: &[u8], sub: &str, scope: &str, exp_in: i64) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope,
            "iat": now, "exp": now + exp_in,
        });
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8)).unwrap()
    }

    fn token(&self, sub: &str, scope: &str) -> String {
        self.token_signed(&self.pkcs8, sub, scope, 600)
    }
}

/// The API over in-memory doubles (or another repository), with a verified server.
struct Harness {
    api: Served,
    toolshed: Toolshed,
}

impl Harness {
    async fn start(repository: Arc<dyn ServerRepository>, auth: AuthSettings) -> Self {
        let clock = Arc::new(ManualClock::fixed());
        let images = Arc::new(InMemoryImageStore::default());
        let source = Arc::new(InMemorySourceRepository::new());
        let ports = Ports {
            repository,
            images: images.clone(),
            builder: Arc::new(FakeImageBuilder::new(images)),
            runner: Arc::new(FakeTaskRunner::new(clock.clone())),
            probe: Arc::new(FakeMcpProbe::new()),
            source: source.clone(),
            metadata: Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
            docs: Arc::new(InMemoryDocsStore::new()),
            secrets: Arc::new(toolshed_core::testing::InMemorySecretStore::new()),
            clock,
        };
        let mut config = ToolshedConfig {
            worker_id: "auth-test".to_owned(),
            ..ToolshedConfig::default()
        };
        config.session_caps.per_server = 1000;
        config.session_caps.total = 1000;
        let toolshed = Toolshed::new(ports, config).unwrap();
        let api = Served::start_with(
            toolshed.clone(),
            ApiConfig {
                auth,
                ..ApiConfig::default()
            },
        )
        .await;
        let h = Self { api, toolshed };
        h.verified(&source).await;
        h
    }

    async fn memory(auth: AuthSettings) -> Self {
        Self::start(Arc::new(InMemoryServerRepository::new()), auth).await
    }

    /// Registers and verifies `SERVER` as the admin.
    async fn verified(&self, source: &InMemorySourceRepository) {
        let url = format!("https://github.com/example/{SERVER}");
        let (status, body) = self
            .api
            .post(
                "/api/servers",
                json!({"id": SERVER, "repo": url, "git_ref": "main"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let repo = RepoUrl::new(&url).unwrap();
        let sha = CommitSha::new("a".repeat(40)).unwrap();
        source.set_commit(&repo, &GitRef::main(), &sha);
        source.set_snapshot(
            &repo,
            &sha,
            RepoSnapshot {
                readme: Some("# auth\n\nAn MCP server.\n".into()),
                files: vec![],
                manifests: vec![],
                dockerfile: Some("FROM scratch\n".into()),
                truncated: false,
            },
        );
        let (status, body) = self
            .api
            .post(&format!("/api/servers/{SERVER}/reverify"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let run = self
            .api
            .settled_verification(
                &format!("/api/servers/{SERVER}/verification"),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(run["state"], "verified", "{SERVER}: {run}");
    }

    /// Sends `method path` with `credential` (an API key or a JWT as a bearer token; `None`:
    /// no credentials) and a JSON body for POSTs.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        credential: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .api
            .raw
            .request(method.clone(), format!("{}{path}", self.api.base));
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        } else if method == Method::POST {
            req = req.json(&json!({}));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value, headers)
    }

    async fn launch_as(&self, credential: &str) -> (StatusCode, Value) {
        let (s, v, _) = self
            .send(
                &Method::POST,
                &format!("/api/servers/{SERVER}/playground"),
                Some(credential),
                None,
            )
            .await;
        (s, v)
    }
}

/// Every path and method of the OpenAPI document, with its scope from the document itself.
fn documented_routes() -> Vec<(Method, String, Option<Scope>)> {
    let doc = serde_json::to_value(toolshed_playground_api::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(m) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let scope = op["security"].as_array().map(|_| {
                let d = op["description"].as_str().unwrap_or_default();
                Scope::ALL
                    .into_iter()
                    .find(|s| d.contains(&format!("`{s}`")))
                    .unwrap_or_else(|| panic!("{method} {path}: no scope in {d:?}"))
            });
            out.push((m, path.clone(), scope));
        }
    }
    assert!(out.len() >= 11, "the document lists every route: {out:?}");
    out
}

fn concrete(path: &str, session: &str, instance: &str) -> String {
    path.replace("{id}", SERVER)
        .replace("{session_id}", session)
        .replace("{instance_id}", instance)
}

/// What selects `session` on a session route: a query, a body or the path.
fn selecting(method: &Method, path: &str, session: &str) -> (String, Option<Value>) {
    let url = concrete(path, session, "");
    if path.ends_with("/status") {
        (format!("{url}?session_id={session}"), None)
    } else if path.ends_with("/execute") {
        (url, Some(json!({"session_id": session, "tool": "now"})))
    } else if *method == Method::POST {
        (url, Some(json!({"session_id": session})))
    } else {
        (url, None)
    }
}

#[tokio::test]
async fn every_protected_route_refuses_bad_credentials_wrong_scopes_and_foreign_sessions() {
    let idp = Idp::start().await;
    let auth = AuthSettings {
        jwt: Some(idp.settings()),
        ..AuthSettings::default()
    };
    let h = Harness::memory(auth).await;

    // Alice launches a session with a JWT; Bob (a key with every non-admin scope) must not
    // reach it.
    let alice = idp.token("alice", "sessions read");
    let (status, launched) = h.launch_as(&alice).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{launched}");
    let session = launched["session"]["id"].as_str().unwrap().to_owned();
    // And an instance.
    let (status, created, _) = h
        .send(
            &Method::POST,
            "/api/instances",
            Some(&alice),
            Some(json!({"server_id": SERVER, "name": "alice-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let instance = created["instance"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["instance"]["owner"], "alice");
    let bob = create_key(
        &h.toolshed,
        "bob",
        &[Scope::Sessions, Scope::Read, Scope::ServersWrite],
    )
    .await;

    let other_key = new_pkcs8();
    let expired = idp.token_signed(&idp.pkcs8, "alice", "sessions read servers:write", -3600);
    let forged = idp.token_signed(
        &other_key,
        "alice",
        "sessions read servers:write admin",
        600,
    );
    let mut checked = 0;
    for (method, path, scope) in documented_routes() {
        let url = concrete(&path, &session, &instance);
        let Some(scope) = scope else {
            let (status, _, _) = h.send(&method, &url, None, None).await;
            assert_eq!(status, StatusCode::OK, "{method} {path} is public");
            continue;
        };
        checked += 1;
        let (status, body, headers) = h.send(&method, &url, None, None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without credentials: {body}"
        );
        assert_eq!(body["code"], "unauthorized");
        assert_eq!(headers["www-authenticate"], "Bearer");
        for (what, token) in [("expired", &expired), ("wrongly signed", &forged)] {
            let (status, body, _) = h.send(&method, &url, Some(token), None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with an {what} JWT: {body}"
            );
        }
        let (status, _, _) = h
            .send(&method, &url, Some("tsk_0123456789abcdef_00"), None)
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a malformed key"
        );

        // Every other non-admin scope, by JWT and by API key: 403.
        let others: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|s| *s != scope && *s != Scope::Admin)
            .collect();
        let names: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
        let wrong_jwt = idp.token("carol", &names.join(" "));
        let wrong_key = create_key(&h.toolshed, "carol", &others).await;
        for credential in [&wrong_jwt, &wrong_key] {
            let (status, body, _) = h.send(&method, &url, Some(credential), None).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} without {scope}: {body}"
            );
            assert_eq!(body["code"], "forbidden");
            assert_eq!(body["details"]["required_scope"], scope.as_str());
        }

        // Another principal's session answers like a missing one: 404 when the URL names it,
        // 409 `session_not_found` when the body does (the server in the URL exists).
        // Another principal's instance answers like a missing one: 404.
        if path.starts_with("/api/instances/") {
            let (status, answer, _) = h.send(&method, &url, Some(&bob), None).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{method} {path} on alice's instance as bob: {answer}"
            );
            let missing = concrete(&path, &session, "i-00000000000000000000000000000000");
            let (mstatus, manswer, _) = h.send(&method, &missing, Some(&bob), None).await;
            assert_eq!(mstatus, StatusCode::NOT_FOUND, "{manswer}");
            assert_eq!(
                answer["code"], manswer["code"],
                "same answer as a missing instance"
            );
        } else if scope == Scope::Sessions
            && !path.ends_with("/playground")
            && !path.starts_with("/api/instances")
        {
            let (url, body) = selecting(&method, &path, &session);
            let missing_status = if body.is_some() {
                StatusCode::CONFLICT
            } else {
                StatusCode::NOT_FOUND
            };
            let (status, answer, _) = h.send(&method, &url, Some(&bob), body.clone()).await;
            assert_eq!(
                status, missing_status,
                "{method} {path} on alice's session as bob: {answer}"
            );
            let missing = "s-0000000000000000000000000000dead";
            let (murl, mbody) = selecting(&method, &path, missing);
            let (mstatus, manswer, _) = h.send(&method, &murl, Some(&bob), mbody).await;
            assert_eq!(mstatus, missing_status, "{manswer}");
            assert_eq!(
                answer["code"], manswer["code"],
                "same answer as a missing session"
            );
        }
    }
    assert!(checked >= 10, "protected routes checked: {checked}");

    // Bob's listing leaves alice's instance out; alice's and the admin's show it.
    let listed = |body: &Value| -> Vec<String> {
        body["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, body, _) = h
        .send(&Method::GET, "/api/instances", Some(&bob), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!listed(&body).contains(&instance), "{body}");
    let (_, body, _) = h
        .send(&Method::GET, "/api/instances", Some(&alice), None)
        .await;
    assert_eq!(listed(&body), vec![instance.clone()], "{body}");
    let (_, body) = h.api.get("/api/instances").await;
    assert!(listed(&body).contains(&instance), "admin: {body}");
    // Alice still reaches her instance.
    let (status, body, _) = h
        .send(
            &Method::GET,
            &format!("/api/instances/{instance}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Alice still reaches her own session; the admin reaches it too.
    let (status, body, _) = h
        .send(
            &Method::GET,
            &format!("/api/servers/{SERVER}/playground/status?session_id={session}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .api
        .get(&format!(
            "/api/servers/{SERVER}/playground/status?session_id={session}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "admin: {body}");
    assert_eq!(body["session"]["id"], session.as_str());
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let h = Harness::memory(AuthSettings::default()).await;
    let key = create_key(&h.toolshed, "dave", &[Scope::Read]).await;
    let (status, _, _) = h.send(&Method::GET, "/api/servers", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    // X-Api-Key works as well as the bearer form.
    let resp = h
        .api
        .raw
        .get(format!("{}/api/servers", h.api.base))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let id = key.split('_').nth(1).unwrap().parse().unwrap();
    let revoked = h.toolshed.revoke_api_key(&id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let (status, body, _) = h.send(&Method::GET, "/api/servers", Some(&key), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A key with a wrong secret but a real id is refused too.
    let other = create_key(&h.toolshed, "dave", &[Scope::Read]).await;
    let mut tampered = other.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let (status, _, _) = h
        .send(&Method::GET, "/api/servers", Some(&tampered), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Use is recorded (off the request path).
    let listed = h
        .toolshed
        .list_api_keys(Some(PrincipalId::new("dave").unwrap()))
        .await
        .unwrap();
    for _ in 0..200 {
        let keys = h
            .toolshed
            .list_api_keys(Some(PrincipalId::new("dave").unwrap()))
            .await
            .unwrap();
        if keys.iter().any(|k| k.last_used_at.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("last_used_at was never recorded: {listed:?}");
}

async fn fifty_concurrent_launches_respect_the_live_quota(repository: Arc<dyn ServerRepository>) {
    let auth = AuthSettings {
        quotas: PrincipalQuotas {
            live_sessions: 3,
            launches_per_minute: 1000,
            verifications_per_hour: 1000,
        },
        ..AuthSettings::default()
    };
    let h = Harness::start(repository.clone(), auth).await;
    let key = create_key(&h.toolshed, "erin", &[Scope::Sessions]).await;
    let h = Arc::new(h);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let h = h.clone();
            let key = key.clone();
            tokio::spawn(async move { h.launch_as(&key).await })
        })
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["code"], "quota_exceeded", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(accepted, 3, "exactly the quota of launches is accepted");
    assert_eq!(refused, 47);
    let erin = PrincipalId::new("erin").unwrap();
    assert_eq!(repository.count_live_sessions_of(&erin).await.unwrap(), 3);
    // Another principal is not affected by erin's quota.
    let frank = create_key(&h.toolshed, "frank", &[Scope::Sessions]).await;
    assert_eq!(h.launch_as(&frank).await.0, StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_session_quota_holds_under_50_concurrent_launches_in_memory() {
    fifty_concurrent_launches_respect_the_live_quota(Arc::new(InMemoryServerRepository::new()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_session_quota_holds_under_50_concurrent_launches_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("toolshed-auth-{}", uuid::Uuid::new_v4()));
    let repo =
        toolshed_core::adapters::sqlite::SqliteServerRepository::open(dir.join("state.sqlite3"))
            .await
            .unwrap();
    fifty_concurrent_launches_respect_the_live_quota(Arc::new(repo)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn launches_per_minute_answer_429_with_retry_after() {
    let auth = AuthSettings {
        quotas: PrincipalQuotas {
            live_sessions: 100,
            launches_per_minute: 2,
            verifications_per_hour: 1,
        },
        ..AuthSettings::default()
    };
    let h = Harness::memory(auth).await;
    let key = create_key(&h.toolshed, "gina", &[Scope::Sessions, Scope::ServersWrite]).await;
    assert_eq!(h.launch_as(&key).await.0, StatusCode::ACCEPTED);
    assert_eq!(h.launch_as(&key).await.0, StatusCode::ACCEPTED);
    let (status, body, headers) = h
        .send(
            &Method::POST,
            &format!("/api/servers/{SERVER}/playground"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["details"]["quota"], "launches");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Verifications per hour: the first passes the quota, the second is refused.
    let path = format!("/api/servers/{SERVER}/reverify");
    let (status, body, _) = h
        .send(
            &Method::POST,
            &path,
            Some(&key),
            Some(json!({"force": true})),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    // The first run may still hold the lease: wait for it to finish.
    for _ in 0..500 {
        let (_, v) = h
            .api
            .get(&format!("/api/servers/{SERVER}/verification"))
            .await;
        if v["in_progress"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body, _) = h
        .send(
            &Method::POST,
            &path,
            Some(&key),
            Some(json!({"force": true})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["details"]["quota"], "verifications");
}

/// A `Write` into a shared buffer, for a tracing subscriber.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn neither_keys_nor_tokens_appear_in_the_logs() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let idp = Idp::start().await;
    let auth = AuthSettings {
        jwt: Some(idp.settings()),
        ..AuthSettings::default()
    };
    let h = Harness::memory(auth).await;
    let key = create_key(&h.toolshed, "hank", &[Scope::Sessions, Scope::Read]).await;
    let jwt = idp.token("ivy", "sessions read");
    for credential in [&key, &jwt] {
        let (status, body) = h.launch_as(credential).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let session = body["session"]["id"].as_str().unwrap();
        let (status, _, _) = h
            .send(
                &Method::GET,
                &format!("/api/servers/{SERVER}/playground/status?session_id={session}"),
                Some(credential),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = h
            .send(
                &Method::DELETE,
                &format!("/api/playground/{session}"),
                Some(credential),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // Refused credentials are not logged either.
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push('x');
    let _ = h
        .send(&Method::GET, "/api/servers", Some(&wrong), None)
        .await;
    assert!(
        idp.fetches.load(Ordering::SeqCst) >= 1,
        "the JWKS was fetched"
    );

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("session launched"),
        "the flow was logged: {logs}"
    );
    let secret = key.rsplit('_').next().unwrap();
    let signature = jwt.rsplit('.').next().unwrap();
    for (what, needle) in [
        ("API key", key.as_str()),
        ("API key secret", secret),
        ("JWT", jwt.as_str()),
        ("JWT signature", signature),
        ("refused key", wrong.as_str()),
    ] {
        assert!(!logs.contains(needle), "the {what} appears in the logs");
    }
}

#[tokio::test]
async fn unknown_kids_refresh_the_jwks_at_most_once_per_interval() {
    let idp = Idp::start().await;
    let auth = AuthSettings {
        jwt: Some(JwtSettings {
            min_refresh_interval: Duration::from_secs(3600),
            ..idp.settings()
        }),
        ..AuthSettings::default()
    };
    let h = Harness::memory(auth).await;
    let good = idp.token("judy", "read");
    for _ in 0..3 {
        let (status, _, _) = h
            .send(&Method::GET, "/api/servers", Some(&good), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "keys are cached");
    let stranger = Idp {
        kid: "unknown-kid".into(),
        pkcs8: idp.pkcs8.clone(),
        jwks_url: idp.jwks_url.clone(),
        fetches: idp.fetches.clone(),
    };
    for _ in 0..5 {
        let t = stranger.token("judy", "read");
        let (status, _, _) = h.send(&Method::GET, "/api/servers", Some(&t), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        1,
        "unknown kids within the interval do not fetch again"
    );
}

#[tokio::test]
async fn with_authentication_off_every_caller_is_the_operator() {
    let auth = AuthSettings {
        mode: toolshed_playground_api::auth::AuthMode::Off,
        ..AuthSettings::default()
    };
    let h = Harness::memory(auth).await;
    let (status, body, _) = h.send(&Method::GET, "/api/servers", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
