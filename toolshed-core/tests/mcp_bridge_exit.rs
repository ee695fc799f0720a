//! The `mcp-stdio-bridge` binary (its static build, brought up to date first) in front of a
//! Python stdio MCP server that dies in the middle of tool calls: every call still waiting for the
//! child is answered with a JSON-RPC error saying the server process exited and how, then the
//! bridge exits with status 1. Needs `TOOLSHED_TEST_PYTHON` (a Python with the `mcp` package).
//!
//! The calls get a 60 s deadline: a bridge that leaves them waiting fails these tests with a
//! timeout error instead of the exit message, whatever the machine's load.
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_support::{call, python, spawn_listening, text, ServerProcess, READY};
use serde_json::json;
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::domain::Endpoint;
use toolshed_core::error::ProbeFailureKind;
use toolshed_core::ports::McpProbe;
use toolshed_core::testing::fixtures;
use toolshed_core::Error;

/// Deadline of every call: far longer than the bridge needs to answer.
const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// A stdio MCP server on the `mcp` package. `hang` creates a file named after its argument in
/// `$MARKERS` (so the test knows the call reached the server), then never answers; `crash` ends
/// the process at once with the given status, before answering; `pid` answers the process id.
const DYING_SERVER: &str = r#"
import os

import anyio
from mcp.server.mcpserver import MCPServer

app = MCPServer("dying-server")
markers = os.environ["MARKERS"]


@app.tool()
def echo(text: str) -> str:
    return text


@app.tool()
def pid() -> str:
    return str(os.getpid())


@app.tool()
async def hang(name: str) -> str:
    open(os.path.join(markers, name), "w").close()
    await anyio.sleep_forever()
    return "never"


@app.tool()
def crash(status: int) -> str:
    os._exit(status)


app.run("stdio")
"#;

/// A scratch directory holding the server script and the markers of `hang`, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "toolshed-bridge-exit-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("markers")).unwrap();
        std::fs::write(dir.join("server.py"), DYING_SERVER).unwrap();
        Self(dir)
    }

    fn markers(&self) -> PathBuf {
        self.0.join("markers")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bridge binary serving the dying server on a port it picks, once it reported that port.
async fn start_bridge(python: &Path, scratch: &Scratch) -> ServerProcess {
    let binary = tokio::task::spawn_blocking(|| fixtures::build_static_binary("mcp-stdio-bridge"))
        .await
        .unwrap()
        .expect("static bridge build");
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["--host", "127.0.0.1", "--port", "0", "--"])
        .arg(python)
        .arg(scratch.0.join("server.py"))
        .env("MARKERS", scratch.markers())
        .env("RUST_LOG", "info");
    spawn_listening(command, "mcp-stdio-bridge", READY).await
}

/// Waits until `hang` created its marker: the call is in the server's hands.
async fn wait_for_marker(scratch: &Scratch, name: &str) {
    let marker = scratch.markers().join(name);
    let waited = tokio::time::timeout(READY, async {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the hang call {name:?} did not reach the server within {READY:?}"
    );
}

/// Starts a call in the background.
fn call_in_background(
    probe: &RmcpProbe,
    ep: &Endpoint,
    tool: &str,
    args: serde_json::Value,
) -> tokio::task::JoinHandle<toolshed_core::Result<toolshed_core::domain::ToolCallOutput>> {
    let (probe, ep, call) = (probe.clone(), ep.clone(), call(tool, args));
    tokio::spawn(async move { probe.call_tool(&ep, &call, None, CALL_DEADLINE).await })
}

/// The detail of a call that the bridge answered with a JSON-RPC internal error.
fn answered_error(
    what: &str,
    answer: toolshed_core::Result<toolshed_core::domain::ToolCallOutput>,
    bridge: &ServerProcess,
) -> String {
    match answer {
        Err(Error::Probe {
            kind: ProbeFailureKind::Protocol,
            detail,
            ..
        }) => {
            assert!(
                detail.contains("JSON-RPC error -32603"),
                "{what}: not an internal error: {detail}"
            );
            detail
        }
        other => panic!(
            "{what}: expected the bridge's JSON-RPC error, got {other:?}; bridge output:\n{}",
            bridge.output()
        ),
    }
}

/// The message says what happened to the server process, in words, without internals.
fn assert_says_exited(what: &str, detail: &str, how: &str) {
    assert!(
        detail.contains("the MCP server process") && detail.contains(how),
        "{what}: the answer does not say the server process {how}: {detail}"
    );
    for internal in [
        "TransportClosed",
        "ServiceError",
        "Transport closed",
        "JoinError",
    ] {
        assert!(
            !detail.contains(internal),
            "{what}: the answer names an internal error ({internal}): {detail}"
        );
    }
}

#[tokio::test]
async fn every_call_in_flight_is_answered_when_the_child_exits() {
    let Some(python) = python() else { return };
    let scratch = Scratch::new();
    let mut bridge = start_bridge(&python, &scratch).await;
    let ep = bridge.endpoint();
    let probe = RmcpProbe::new().unwrap();
    let out = probe
        .call_tool(
            &ep,
            &call("echo", json!({"text": "still here"})),
            None,
            CALL_DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(text(&out), "still here");

    // One call waits in the server; a second one makes the server exit with status 3 before
    // answering. Both are in flight when the process ends.
    let waiting = call_in_background(&probe, &ep, "hang", json!({"name": "first"}));
    wait_for_marker(&scratch, "first").await;
    let crashing = probe
        .call_tool(
            &ep,
            &call("crash", json!({"status": 3})),
            None,
            CALL_DEADLINE,
        )
        .await;
    let detail = answered_error("the crash call", crashing, &bridge);
    assert_says_exited("the crash call", &detail, "exited with status 3");
    let detail = answered_error("the waiting call", waiting.await.unwrap(), &bridge);
    assert_says_exited("the waiting call", &detail, "exited with status 3");

    let status = bridge.exit_status(READY).await;
    assert_eq!(
        status.code(),
        Some(1),
        "bridge exit: {status}; output:\n{}",
        bridge.output()
    );
}

#[tokio::test]
async fn a_child_killed_during_a_call_is_reported_with_its_signal() {
    let Some(python) = python() else { return };
    let scratch = Scratch::new();
    let mut bridge = start_bridge(&python, &scratch).await;
    let ep = bridge.endpoint();
    let probe = RmcpProbe::new().unwrap();
    let out = probe
        .call_tool(&ep, &call("pid", json!({})), None, CALL_DEADLINE)
        .await
        .unwrap();
    let child_pid: u32 = text(&out)
        .parse()
        .unwrap_or_else(|e| panic!("pid answer {:?}: {e}", text(&out)));

    let waiting = call_in_background(&probe, &ep, "hang", json!({"name": "killed"}));
    wait_for_marker(&scratch, "killed").await;
    mcp_support::send_signal(child_pid, "KILL");
    let detail = answered_error("the waiting call", waiting.await.unwrap(), &bridge);
    assert_says_exited("the waiting call", &detail, "was killed by signal 9");

    let status = bridge.exit_status(READY).await;
    assert_eq!(
        status.code(),
        Some(1),
        "bridge exit: {status}; output:\n{}",
        bridge.output()
    );
}
