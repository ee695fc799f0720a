//! Importing a remote (a server someone else runs) and verifying it by handshake: a real rmcp
//! server behind a real TLS listener on loopback, with a certificate from a test CA. Allowed
//! network and trusted CA: verified, tools listed, era recorded, the declared header sent.
//! Default policy: refused with `EgressRefused`, nothing verified. Launches: refused before any
//! task starts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use toolshed_core::adapters::mcp::{serve_example_server, ExampleServer, RmcpProbe};
use toolshed_core::domain::conformance::ProtocolEra;
use toolshed_core::domain::server_json::PackageSource;
use toolshed_core::domain::{
    InstanceEnv, InstanceName, InstanceRequest, RemoteEgressPolicy, ServerOrigin,
    VerificationState, WarmPool,
};
use toolshed_core::ports::{SecretOwner, SecretStore};
use toolshed_core::services::{
    ImportOptions, LaunchRequest, Ports, Toolshed, ToolshedConfig, VerifyOptions, VerifyOutcome,
};
use toolshed_core::testing::{InMemoryPorts, ManualClock};
use toolshed_core::Error;

const SCHEMA: &str = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

/// Most request bytes the TLS listener keeps for the header assertion.
const KEPT_BYTES: usize = 64 * 1024;

/// A test CA, a certificate it issued for `localhost` and `127.0.0.1`, and its key.
struct TestPki {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: Vec<u8>,
}

fn test_pki() -> TestPki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "toolshed remote test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    TestPki {
        ca_pem: ca_cert.pem(),
        leaf: leaf.der().clone(),
        leaf_key: leaf_key.serialize_der(),
    }
}

/// The example MCP server on plain loopback HTTP behind a TLS listener that forwards each
/// connection to it, keeping the decrypted request bytes (to see the headers sent).
struct RemoteServer {
    tls_addr: SocketAddr,
    requests: Arc<Mutex<Vec<u8>>>,
    _stop: oneshot::Sender<()>,
}

async fn start_remote(pki: &TestPki) -> RemoteServer {
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = plain.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = serve_example_server(ExampleServer::new(), plain, "/mcp", async move {
            let _ = stopped.await;
        })
        .await;
    });
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.leaf.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.leaf_key.clone())),
        )
        .expect("TLS server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let kept = requests.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let kept = kept.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(upstream) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let (mut client_read, mut client_write) = tokio::io::split(tls);
                let (mut up_read, mut up_write) = upstream.into_split();
                let to_server = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 || up_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let mut kept = kept.lock().unwrap();
                        if kept.len() < KEPT_BYTES {
                            kept.extend_from_slice(&buf[..n]);
                        }
                    }
                    let _ = up_write.shutdown().await;
                };
                let to_client = async move {
                    let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(to_server, to_client);
            });
        }
    });
    RemoteServer {
        tls_addr,
        requests,
        _stop: stop,
    }
}

fn remote_document(url: &str) -> Vec<u8> {
    json!({
        "$schema": SCHEMA,
        "name": "io.github.example/remote-example",
        "description": "The example server, run by someone else",
        "version": "1.0.0",
        "remotes": [{
            "type": "streamable-http",
            "url": url,
            "headers": [{"name": "X-Api-Key", "description": "API key", "isSecret": true}]
        }]
    })
    .to_string()
    .into_bytes()
}

/// The in-memory ports with the real rmcp probe under `policy`, trusting `ca_pem`.
fn toolshed(policy: RemoteEgressPolicy, ca_pem: &str) -> (Toolshed, InMemoryPorts) {
    let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
    let mut ports = doubles.ports();
    let probe = RmcpProbe::new()
        .unwrap()
        .with_remote_access(policy, Some(ca_pem.as_bytes()))
        .unwrap();
    ports.probe = Arc::new(probe);
    let config = ToolshedConfig {
        readiness_deadline: Duration::from_secs(60),
        ..ToolshedConfig::default()
    };
    (Toolshed::new(ports, config).unwrap(), doubles)
}

fn test_network() -> RemoteEgressPolicy {
    RemoteEgressPolicy::parse_allowed("TOOLSHED_REMOTE_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
        .unwrap()
}

#[tokio::test]
async fn a_remote_on_an_allowed_network_with_a_trusted_ca_is_verified_by_handshake() {
    let pki = test_pki();
    let remote = start_remote(&pki).await;
    let url = format!("https://localhost:{}/mcp", remote.tls_addr.port());
    let (ts, doubles) = toolshed(test_network(), &pki.ca_pem);

    let imported = ts
        .import_server(&remote_document(&url), ImportOptions::default())
        .await
        .unwrap();
    let server = imported.server;
    assert!(matches!(
        &server.origin,
        ServerOrigin::Imported { source: PackageSource::Remote { url: u }, .. } if u == &url
    ));
    assert_eq!(server.settings[0].name.as_str(), "X_API_KEY");
    assert!(server.settings[0].secret);
    doubles
        .secrets
        .put(
            &SecretOwner::ServerTestValues(server.id.clone()),
            &InstanceEnv::from_exposed([("X_API_KEY", "test-key-4711")]).unwrap(),
        )
        .await
        .unwrap();

    let outcome = ts
        .verify_server(&server.id, VerifyOptions::default())
        .await
        .unwrap();
    let VerifyOutcome::Verified { server, .. } = outcome else {
        panic!("a remote is always probed: {outcome:?}");
    };
    assert_eq!(server.state, VerificationState::Verified);
    assert!(server.image.is_none(), "a remote has no image");
    assert_eq!(server.verification_count, 1);
    let mut names: Vec<_> = server.tools.tools.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "echo", "word_count"]);
    // The example server speaks the newest revision: the session opened with server/discover.
    let conformance = server
        .tools
        .conformance
        .as_ref()
        .expect("conformance report");
    assert_eq!(conformance.era, ProtocolEra::Discover);
    assert!(!conformance.protocol_version.is_empty());
    assert!(
        server.tools.digest.is_some(),
        "the tools digest is recorded"
    );
    // Nothing was built or run for it.
    assert!(doubles.builder.requests().is_empty());
    assert!(doubles.runner.tasks().is_empty());
    // The declared header carried the test value (header names are case-insensitive).
    let sent = String::from_utf8_lossy(&remote.requests.lock().unwrap()).to_lowercase();
    assert!(sent.contains("x-api-key: test-key-4711"), "{sent}");

    // A re-verification probes again: a remote's tools can change without a version.
    let again = ts
        .verify_server(&server.id, VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(again, VerifyOutcome::Verified { .. }), "{again:?}");
    assert_eq!(again.server().verification_count, 2);

    // Launches of every kind are refused before anything starts.
    let err = ts
        .launch_session(&server.id, LaunchRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotLaunchable { server_id, reason } if server_id == &server.id && reason.contains(&url)),
        "{err:?}"
    );
    let err = ts
        .create_instance(
            &server.id,
            InstanceRequest {
                name: InstanceName::new("remote-one").unwrap(),
                env: InstanceEnv::new(),
                owner: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotLaunchable { .. }), "{err:?}");
    let err = ts
        .set_warm_pool(
            &server.id,
            WarmPool {
                size: 1,
                idle_ttl: Duration::from_secs(600),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotLaunchable { .. }), "{err:?}");
    assert!(doubles.runner.tasks().is_empty(), "no task started");
    assert_eq!(doubles.runner.start_calls(), 0);
}

#[tokio::test]
async fn the_default_policy_refuses_a_remote_on_loopback_and_records_nothing_verified() {
    let pki = test_pki();
    let remote = start_remote(&pki).await;
    let (ts, doubles) = toolshed(RemoteEgressPolicy::default(), &pki.ca_pem);
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{}/mcp", remote.tls_addr.port());
        let id = toolshed_core::domain::ServerId::new(format!("remote-{}", host.replace('.', "-")))
            .unwrap();
        let server = ts
            .import_server(
                &remote_document(&url),
                ImportOptions {
                    id: Some(id),
                    ..ImportOptions::default()
                },
            )
            .await
            .unwrap()
            .server;
        let err = ts
            .verify_server(&server.id, VerifyOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::EgressRefused { host: h, .. } if h == host),
            "{host}: {err:?}"
        );
        let text = err.to_string();
        assert!(!text.contains("127.0.0.1") || host == "127.0.0.1", "{text}");
        let stored = ts.get_server(&server.id).await.unwrap();
        assert_eq!(stored.state, VerificationState::Failed);
        assert!(stored.image.is_none() && stored.tools.tools.is_empty());
        assert_eq!(stored.verification_count, 0);
        let failure = stored.last_failure.expect("the refusal is recorded");
        assert!(!failure.retryable);
    }
    assert!(
        remote.requests.lock().unwrap().is_empty(),
        "nothing reached the server"
    );
    assert!(doubles.runner.tasks().is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_check_without_verifying() {
    let pki = test_pki();
    let remote = start_remote(&pki).await;
    let other = test_pki();
    let (ts, _doubles) = toolshed(test_network(), &other.ca_pem);
    let url = format!("https://localhost:{}/mcp", remote.tls_addr.port());
    let server = ts
        .import_server(&remote_document(&url), ImportOptions::default())
        .await
        .unwrap()
        .server;
    let err = ts
        .verify_server(&server.id, VerifyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::VerificationFailed { .. }), "{err:?}");
    let stored = ts.get_server(&server.id).await.unwrap();
    assert_eq!(stored.state, VerificationState::Failed);
    assert!(stored.tools.tools.is_empty());
}

#[test]
fn the_remote_access_settings_are_read_and_a_bad_one_names_its_variable() {
    use toolshed_core::services::remote_access_from;
    let settings = remote_access_from(|name| match name {
        "TOOLSHED_REMOTE_ALLOWED_NETWORKS" => Some("10.20.0.0/16, fd00::/8".to_owned()),
        "TOOLSHED_REMOTE_CA_BUNDLE" => Some("/etc/toolshed/remote-ca.pem".to_owned()),
        _ => None,
    })
    .unwrap();
    assert_eq!(settings.policy.allowed().len(), 2);
    assert_eq!(settings.policy.refusal("10.20.1.2".parse().unwrap()), None);
    assert!(settings
        .policy
        .refusal("10.21.0.1".parse().unwrap())
        .is_some());
    assert_eq!(
        settings.ca_bundle.as_deref(),
        Some(std::path::Path::new("/etc/toolshed/remote-ca.pem"))
    );
    let defaults = remote_access_from(|_| None).unwrap();
    assert_eq!(defaults.policy, RemoteEgressPolicy::default());
    let err = remote_access_from(|name| {
        (name == "TOOLSHED_REMOTE_ALLOWED_NETWORKS").then(|| "10.0.0.0/8,intranet".to_owned())
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("TOOLSHED_REMOTE_ALLOWED_NETWORKS"),
        "{err}"
    );
    // A CA bundle that is not PEM is refused when the probe is built.
    let err = RmcpProbe::new()
        .unwrap()
        .with_remote_access(RemoteEgressPolicy::default(), Some(b"not a certificate"))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}
