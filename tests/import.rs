//! Servers imported from `server.json` on the real engine: a PyPI package (`mcp-server-time`,
//! stdio) built from the generated Dockerfile (installed from the package index through the
//! host's CA bundle, FROM the local Python image), verified through the stdio bridge and its tool
//! called; and an `oci` image pushed to the test registry, imported by tag (pinned to its digest
//! once), verified by digest without a build.
//!
//! Gated on `TOOLSHED_TEST_DOCKER`, plus `TOOLSHED_TEST_PYTHON_IMAGE` (the base of the PyPI
//! build, made by `scripts/python-base-image.sh`) or `TOOLSHED_TEST_REGISTRY` (`host:port`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use toolshed_core::domain::server_json::PackageSource;
use toolshed_core::domain::{ServerId, VerificationState};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::services::{ImportOptions, LaunchRequest, VerifyOptions, VerifyOutcome};
use toolshed_core::testing::fixtures;
use toolshed_tests::{backend, call_when_running, TempDir};

const SCHEMA: &str = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";
/// The host's CA bundle: inside containers the package index answers through a proxy that
/// only it trusts.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pypi_server_json_is_built_verified_and_its_tool_called() {
    let test = "a_pypi_server_json_is_built_verified_and_its_tool_called";
    if !backend("TOOLSHED_TEST_DOCKER", test) || !backend("TOOLSHED_TEST_PYTHON_IMAGE", test) {
        return;
    }
    let base = std::env::var("TOOLSHED_TEST_PYTHON_IMAGE").unwrap();
    let bridge = tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-stdio-bridge"))
        .await
        .unwrap()
        .expect("static stdio bridge");
    let data = TempDir::new("toolshed-import-pypi");
    let mut config = LocalConfig {
        stdio_bridge: Some(bridge),
        package_ca_bundle: Some(PathBuf::from(HOST_CA_BUNDLE)),
        ..LocalConfig::new(data.0.join("state"))
    };
    config.service.package_build.python_base_image = base;
    config.service.package_build.with_ca_bundle = true;
    let backend = LocalBackend::connect(config).await.unwrap();
    let ts = &backend.toolshed;

    let document = json!({
        "$schema": SCHEMA,
        "name": "io.github.modelcontextprotocol/time",
        "description": "Time and time zone conversion",
        "version": "2026.10.19",
        "packages": [{
            "registryType": "pypi", "identifier": "mcp-server-time", "version": "2026.10.19",
            "transport": {"type": "stdio"},
            "packageArguments": [{"type": "named", "name": "--local-timezone", "value": "UTC"}]
        }]
    });
    let id = ServerId::new(format!("import-time-{}", suffix())).unwrap();
    let imported = ts
        .import_server(
            document.to_string().as_bytes(),
            ImportOptions {
                id: Some(id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        imported.server.origin.package(),
        Some(PackageSource::Pypi { .. })
    ));

    let started = Instant::now();
    let outcome = ts
        .verify_server(&id, VerifyOptions::default())
        .await
        .expect("the PyPI package builds and verifies");
    println!(
        "pypi import verified (build + check) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let server = outcome.server().clone();
    assert_eq!(server.state, VerificationState::Verified);
    let mut tools: Vec<&str> = server.tools.tools.iter().map(|t| t.name.as_str()).collect();
    tools.sort_unstable();
    assert_eq!(tools, ["convert_time", "get_current_time"]);

    // The same package version again: nothing rebuilt.
    let again = ts
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(again, VerifyOutcome::UpToDate(_)), "{again:?}");

    let session = ts
        .launch_session(&id, LaunchRequest::default())
        .await
        .unwrap();
    let mut arguments = serde_json::Map::new();
    arguments.insert("timezone".into(), "Asia/Tokyo".into());
    let output = call_when_running(
        ts,
        &session.id,
        "get_current_time",
        arguments,
        Duration::from_secs(90),
    )
    .await;
    ts.stop_session(&session.id).await.unwrap();
    assert!(!output.is_error, "{output:?}");
    let text = output
        .content
        .iter()
        .find_map(|c| c.get("text").and_then(|t| t.as_str()))
        .expect("a text answer");
    let answer: serde_json::Value = serde_json::from_str(text).expect("JSON answer");
    assert_eq!(answer["timezone"], "Asia/Tokyo", "{answer}");
    let datetime = answer["datetime"].as_str().expect("datetime");
    let parsed = chrono::DateTime::parse_from_rfc3339(datetime).expect("RFC 3339 datetime");
    assert_eq!(parsed.offset().local_minus_utc(), 9 * 3600, "{datetime}");
}

fn docker(args: &[&str], dir: Option<&std::path::Path>) -> String {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd.output().expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_server_json_runs_the_pushed_image_by_digest_without_a_build() {
    let test = "an_oci_server_json_runs_the_pushed_image_by_digest_without_a_build";
    if !backend("TOOLSHED_TEST_DOCKER", test) || !backend("TOOLSHED_TEST_REGISTRY", test) {
        return;
    }
    let registry = std::env::var("TOOLSHED_TEST_REGISTRY").unwrap();
    let binary =
        tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-example-server"))
            .await
            .unwrap()
            .expect("example server binary");
    // The publisher's image, in another repository of the registry than the one builds push to.
    let data = TempDir::new("toolshed-import-oci");
    let context = data.0.join("image");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy(&binary, context.join("server")).unwrap();
    std::fs::write(context.join("Dockerfile"), fixtures::EXAMPLE_DOCKERFILE).unwrap();
    let tag = suffix();
    let reference = format!("{registry}/import-test/example:{tag}");
    docker(&["build", "-q", "-t", &reference, "."], Some(&context));
    docker(&["push", "-q", &reference], None);
    let repo_digest = docker(
        &[
            "image",
            "inspect",
            "--format",
            "{{index .RepoDigests 0}}",
            &reference,
        ],
        None,
    );
    let digest = repo_digest.rsplit('@').next().unwrap().to_owned();
    // The local tag is ours to remove; the registry keeps the image.
    docker(&["image", "rm", "-f", &reference], None);

    let backend = LocalBackend::connect(LocalConfig {
        registry: Some(registry.clone()),
        ..LocalConfig::new(data.0.join("state"))
    })
    .await
    .unwrap();
    let ts = &backend.toolshed;
    let document = json!({
        "$schema": SCHEMA,
        "name": "io.github.example/example",
        "description": "The example MCP server",
        "version": "1.0.0",
        "packages": [{
            "registryType": "oci", "identifier": reference,
            "transport": {"type": "streamable-http", "url": "http://localhost:8000/mcp"}
        }]
    });
    let id = ServerId::new(format!("import-oci-{tag}")).unwrap();
    let imported = ts
        .import_server(
            document.to_string().as_bytes(),
            ImportOptions {
                id: Some(id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The tag was resolved once, to the registry's digest.
    assert_eq!(
        imported.server.origin.package(),
        Some(&PackageSource::Oci {
            reference: format!("{reference}@{digest}")
        })
    );

    let started = Instant::now();
    let outcome = ts
        .verify_server(&id, VerifyOptions::default())
        .await
        .expect("the published image verifies");
    println!(
        "oci import verified (pull + check, no build) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let server = outcome.server();
    assert_eq!(server.state, VerificationState::Verified);
    assert!(!server.tools.tools.is_empty());
    let image = &server.image.as_ref().unwrap().image;
    assert_eq!(
        image.pinned(),
        format!("{registry}/import-test/example@{digest}"),
        "run by the pinned digest"
    );
    // No build happened: the record names the publisher's repository, not the builds' one.
    assert_ne!(image.repository(), format!("{registry}/toolshed"));
}
