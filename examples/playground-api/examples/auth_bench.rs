//! The latency authentication adds to a request: the same `GET /api/servers` over real HTTP
//! against the in-memory backend with authentication off, with an API key and with a JWT
//! (verified against a JWKS served on 127.0.0.1:0). Prints p50/p95 per mode and the ratio to
//! no authentication. A benchmark, not a test: it asserts nothing about time.
//!
//! `cargo run --release -p toolshed-playground-api --example auth_bench [-- REQUESTS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use toolshed_core::domain::{NewApiKey, PrincipalId, Scope};
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::{
    FakeImageBuilder, FakeMcpProbe, FakeTaskRunner, HeuristicMetadataGenerator, InMemoryDocsStore,
    InMemoryImageStore, InMemoryServerRepository, InMemorySourceRepository, ManualClock,
};
use toolshed_playground_api::auth::{AuthMode, AuthSettings, JwtSettings};
use toolshed_playground_api::{router_with, ApiConfig};

fn toolshed() -> anyhow::Result<Toolshed> {
    let clock = Arc::new(ManualClock::fixed());
    let images = Arc::new(InMemoryImageStore::default());
    let ports = Ports {
        repository: Arc::new(InMemoryServerRepository::new()),
        images: images.clone(),
        builder: Arc::new(FakeImageBuilder::new(images)),
        runner: Arc::new(FakeTaskRunner::new(clock.clone())),
        probe: Arc::new(FakeMcpProbe::new()),
        source: Arc::new(InMemorySourceRepository::new()),
        metadata: Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
        docs: Arc::new(InMemoryDocsStore::new()),
        secrets: Arc::new(toolshed_core::testing::InMemorySecretStore::new()),
        clock,
    };
    Ok(Toolshed::new(ports, ToolshedConfig::default())?)
}

async fn serve(app: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// A JWKS server and a token it verifies.
async fn identity_provider() -> anyhow::Result<(String, String)> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("key generation failed"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("key parsing failed"))?;
    let point = pair.public_key().as_ref().to_vec();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "bench",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let base = serve(app).await?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("bench".into());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "https://idp.bench", "aud": "toolshed", "sub": "bench",
        "scope": "read", "iat": now, "exp": now + 3600});
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8.as_ref()))?;
    Ok((format!("{base}/jwks"), token))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn measure(base: &str, credential: Option<&str>, n: usize) -> anyhow::Result<Vec<Duration>> {
    let http = reqwest::Client::new();
    let url = format!("{base}/api/servers");
    let send = |http: &reqwest::Client| {
        let mut req = http.get(&url);
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        req.send()
    };
    // Warm up: connections, the JWKS cache.
    for _ in 0..50 {
        let r = send(&http).await?;
        anyhow::ensure!(r.status().is_success(), "warm-up answered {}", r.status());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let r = send(&http).await?;
        let status = r.status();
        r.bytes().await?;
        out.push(start.elapsed());
        anyhow::ensure!(status.is_success(), "answered {status}");
    }
    out.sort();
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);

    let off = toolshed()?;
    let base_off = serve(router_with(
        off,
        ApiConfig {
            auth: AuthSettings {
                mode: AuthMode::Off,
                ..AuthSettings::default()
            },
            ..ApiConfig::default()
        },
    ))
    .await?;

    let (jwks_url, token) = identity_provider().await?;
    let on = toolshed()?;
    let (_, key) = on
        .create_api_key(NewApiKey {
            name: "bench".into(),
            scopes: [Scope::Read].into(),
            owner: PrincipalId::new("bench")?,
        })
        .await?;
    let base_on = serve(router_with(
        on,
        ApiConfig {
            auth: AuthSettings {
                jwt: Some(JwtSettings::new(jwks_url, "https://idp.bench", "toolshed")),
                ..AuthSettings::default()
            },
            ..ApiConfig::default()
        },
    ))
    .await?;

    let none = measure(&base_off, None, n).await?;
    let api_key = measure(&base_on, Some(key.expose()), n).await?;
    let jwt = measure(&base_on, Some(&token), n).await?;

    let (p50_0, p95_0) = (percentile(&none, 0.5), percentile(&none, 0.95));
    println!("GET /api/servers, {n} sequential requests per mode, in-memory backend, 127.0.0.1");
    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>12} {:>9} {:>9}",
        "mode", "p50 µs", "p95 µs", "+p50 µs", "+p95 µs", "p50 ×", "p95 ×"
    );
    for (name, d) in [("none", &none), ("api key", &api_key), ("jwt", &jwt)] {
        let (p50, p95) = (percentile(d, 0.5), percentile(d, 0.95));
        println!(
            "{:<10} {:>10} {:>10} {:>12} {:>12} {:>9.2} {:>9.2}",
            name,
            p50.as_micros(),
            p95.as_micros(),
            p50.as_micros() as i128 - p50_0.as_micros() as i128,
            p95.as_micros() as i128 - p95_0.as_micros() as i128,
            p50.as_secs_f64() / p50_0.as_secs_f64(),
            p95.as_secs_f64() / p95_0.as_secs_f64(),
        );
    }
    Ok(())
}
