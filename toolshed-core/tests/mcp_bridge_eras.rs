//! The stdio bridge serves both protocol eras on HTTP whatever its child speaks: a client of the
//! 2026-07-28 era (`server/discover`, the version in every request) and one of the `initialize`
//! era (2025-06-18) both list and call the tools of the real `mcp-server-time`, and the probe
//! records the bridge's own answer. The child runs twice: as installed (its SDK serves both eras,
//! so the bridge discovers it), and behind a line filter that answers `server/discover` with
//! "method not found" the way servers of the `initialize` era do (the common case), so the bridge
//! must fall back to `initialize` with its child. Needs `TOOLSHED_TEST_VENV_BIN`.
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mcp_support::{call, text, venv_bin};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;
use toolshed_core::adapters::mcp::{BridgeConfig, RmcpProbe, StdioBridge};
use toolshed_core::domain::conformance::{self, Outcome, ProtocolEra};
use toolshed_core::domain::Endpoint;
use toolshed_core::ports::McpProbe;

const DEADLINE: Duration = Duration::from_secs(30);

/// Passes stdio through to the command in its arguments after the first, except
/// `server/discover`, which it answers itself with JSON-RPC "method not found" (what a server of
/// the `initialize` era says) when the first argument is `refuse`, or on which it exits with
/// status 1 when it is `die` (what servers of the Python SDK up to mcp 1.9.3 do with a request
/// they cannot validate).
const LEGACY_FILTER: &str = r#"
import json, subprocess, sys, threading
lock = threading.Lock()
mode = sys.argv[1]
child = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def write(line):
    with lock:
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
def pump():
    for line in child.stdout:
        write(line)
threading.Thread(target=pump, daemon=True).start()
for line in sys.stdin.buffer:
    try:
        msg = json.loads(line)
    except ValueError:
        msg = None
    if isinstance(msg, dict) and msg.get("method") == "server/discover":
        if mode == "die":
            sys.stderr.write("legacy filter: died on server/discover\n")
            child.kill()
            sys.exit(1)
        sys.stderr.write("legacy filter: refused server/discover\n")
        if "id" in msg:
            error = {"code": -32601, "message": "Method not found"}
            write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": error}).encode() + b"\n")
        continue
    child.stdin.write(line)
    child.stdin.flush()
child.stdin.close()
sys.exit(child.wait())
"#;

fn client(version: ProtocolVersion) -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bridge-era-test", "1"),
    )
    .with_protocol_version(version)
}

fn transport(ep: &Endpoint) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(ep.url()),
    )
}

/// Opens a session in `lifecycle`, checks the negotiated version, lists the tools and asks the
/// time in Tokyo.
async fn list_and_call(
    ep: &Endpoint,
    config: ClientConfig,
    lifecycle: ClientLifecycleMode,
    expected_version: &str,
) {
    let session = tokio::time::timeout(
        DEADLINE,
        config.serve_with_lifecycle(transport(ep), lifecycle),
    )
    .await
    .expect("handshake answered")
    .expect("handshake succeeded");
    let info = session.peer_info().expect("peer info");
    assert_eq!(info.protocol_version.as_str(), expected_version);
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("mcp-time")
    );
    let tools = session.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, ["convert_time", "get_current_time"]);
    let args = serde_json::from_value(json!({"timezone": "Asia/Tokyo"})).unwrap();
    let result = session
        .call_tool(CallToolRequestParams::new("get_current_time").with_arguments(args))
        .await
        .expect("tools/call");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let body: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    assert!(
        body.contains("Asia/Tokyo") && body.contains("+09:00"),
        "{body}"
    );
    let _ = session.cancel().await;
}

async fn both_eras_through(command: Vec<String>) {
    let mut bridge = StdioBridge::start(
        BridgeConfig::new(command)
            .with_listen(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
            .with_startup_timeout(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let ep = bridge.endpoint().unwrap();

    list_and_call(
        &ep,
        client(ProtocolVersion::V_2026_07_28),
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
        "2026-07-28",
    )
    .await;
    list_and_call(
        &ep,
        client(ProtocolVersion::V_2025_06_18),
        ClientLifecycleMode::Initialize,
        "2025-06-18",
    )
    .await;

    // The probe opens the newer era and records what the bridge announces.
    let probe = RmcpProbe::new().unwrap();
    let report = probe.probe(&ep, DEADLINE).await.unwrap();
    assert_eq!(report.listing.era, ProtocolEra::Discover);
    assert_eq!(report.server.protocol_version, "2026-07-28");
    let supported = report
        .listing
        .supported_versions
        .clone()
        .unwrap_or_default();
    for version in ["2025-06-18", "2026-07-28"] {
        assert!(supported.iter().any(|v| v == version), "{supported:?}");
    }
    assert_eq!(conformance::assess(&report).overall(), Outcome::Pass);
    let schema = report
        .tools()
        .iter()
        .find(|t| t.name == "get_current_time")
        .map(|t| t.input_schema.clone());
    let out = probe
        .call_tool(
            &ep,
            &call("get_current_time", json!({"timezone": "UTC"})),
            schema,
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(!out.is_error && text(&out).contains("UTC"), "{out:?}");

    bridge.shutdown();
    bridge.wait().await.unwrap();
}

/// `mcp-server-time` behind [`LEGACY_FILTER`] in `mode`.
async fn both_eras_through_the_legacy_filter(mode: &str) {
    let Some(bin) = venv_bin() else { return };
    let filter = std::env::temp_dir().join(format!(
        "toolshed-legacy-filter-{mode}-{}.py",
        std::process::id()
    ));
    std::fs::write(&filter, LEGACY_FILTER).unwrap();
    both_eras_through(vec![
        bin.join("python3").to_string_lossy().into_owned(),
        filter.to_string_lossy().into_owned(),
        mode.to_owned(),
        bin.join("mcp-server-time").to_string_lossy().into_owned(),
        "--local-timezone".into(),
        "UTC".into(),
    ])
    .await;
    let _ = std::fs::remove_file(&filter);
}

#[tokio::test]
async fn both_eras_through_the_bridge_to_a_child_of_the_initialize_era() {
    both_eras_through_the_legacy_filter("refuse").await;
}

/// A child that exits on `server/discover` is started again and asked only `initialize`.
#[tokio::test]
async fn both_eras_through_the_bridge_to_a_child_that_dies_on_discover() {
    both_eras_through_the_legacy_filter("die").await;
}

#[tokio::test]
async fn both_eras_through_the_bridge_to_a_child_as_installed() {
    let Some(bin) = venv_bin() else { return };
    both_eras_through(vec![
        bin.join("mcp-server-time").to_string_lossy().into_owned(),
        "--local-timezone".into(),
        "UTC".into(),
    ])
    .await;
}

/// A child slower to start than the bridge's 10 s wait for its `server/discover` answer (a
/// Python server on a quarter of a CPU on a loaded host): `mcp-server-time` starts 11 s late,
/// then reads the discover request and the `initialize` the bridge sent meanwhile and answers
/// both. The bridge keeps the late discover answer out of its `initialize` handshake, opens, and
/// serves both eras.
#[tokio::test]
async fn both_eras_through_the_bridge_to_a_child_slower_than_the_discover_wait() {
    let Some(bin) = venv_bin() else { return };
    let server = bin.join("mcp-server-time").to_string_lossy().into_owned();
    both_eras_through(vec![
        "sh".into(),
        "-c".into(),
        format!("sleep 11 && exec '{server}' --local-timezone UTC"),
    ])
    .await;
}
