//! The real `mcp-server-time` (stdio only) served over streamable HTTP by the stdio bridge,
//! probed and called with RmcpProbe. Needs `TOOLSHED_TEST_VENV_BIN`.
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mcp_support::{call, text, venv_bin};
use serde_json::json;
use toolshed_core::adapters::mcp::{BridgeConfig, BridgeExit, RmcpProbe, StdioBridge};
use toolshed_core::domain::ToolsOutcome;
use toolshed_core::error::ProbeFailureKind;
use toolshed_core::ports::McpProbe;
use toolshed_core::Error;

const DEADLINE: Duration = Duration::from_secs(10);

fn config(command: Vec<String>) -> BridgeConfig {
    BridgeConfig::new(command)
        .with_listen(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
        .with_startup_timeout(Duration::from_secs(60))
}

#[tokio::test]
async fn mcp_server_time_through_the_bridge() {
    let Some(bin) = venv_bin() else { return };
    let server = bin.join("mcp-server-time").to_string_lossy().into_owned();
    let mut bridge = StdioBridge::start(config(vec![
        server,
        "--local-timezone".into(),
        "UTC".into(),
    ]))
    .await
    .unwrap();
    let ep = bridge.endpoint().unwrap();
    let probe = RmcpProbe::new().unwrap();

    let report = probe.wait_ready(&ep, DEADLINE).await.unwrap();
    assert_eq!(report.server.name.as_deref(), Some("mcp-time"));
    let ToolsOutcome::Listed { tools } = &report.tools else {
        panic!("expected listed tools, got {:?}", report.tools)
    };
    let mut names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["convert_time", "get_current_time"]);
    let get_time = tools.iter().find(|t| t.name == "get_current_time").unwrap();
    assert!(
        get_time.input_schema["properties"]["timezone"].is_object(),
        "{}",
        get_time.input_schema
    );
    let convert = tools.iter().find(|t| t.name == "convert_time").unwrap();
    assert!(
        convert.input_schema["properties"]["target_timezone"].is_object(),
        "{}",
        convert.input_schema
    );

    let out = probe
        .call_tool(
            &ep,
            &call("get_current_time", json!({"timezone": "UTC"})),
            Some(get_time.input_schema.clone()),
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(!out.is_error, "{out:?}");
    let utc = current_time(&text(&out));
    assert_eq!(utc.0, "UTC");
    assert_eq!(utc.1.offset().local_minus_utc(), 0, "{utc:?}");
    // The server's own clock, read through the bridge: not an echo of the request, and not some
    // fixed answer (generous bounds: this is about content, not speed).
    let skew = (chrono::Utc::now() - utc.1.with_timezone(&chrono::Utc)).num_seconds();
    assert!(skew.abs() < 600, "server time is {skew} s off: {utc:?}");

    // Another zone than the server's local one (UTC): the arguments really reach the server.
    let out = probe
        .call_tool(
            &ep,
            &call("get_current_time", json!({"timezone": "Asia/Tokyo"})),
            Some(get_time.input_schema.clone()),
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(!out.is_error, "{out:?}");
    let tokyo = current_time(&text(&out));
    assert_eq!(tokyo.0, "Asia/Tokyo");
    assert_eq!(tokyo.1.offset().local_minus_utc(), 9 * 3600, "{tokyo:?}");

    let out = probe
        .call_tool(
            &ep,
            &call("get_current_time", json!({"timezone": "Mars/Olympus_Mons"})),
            None,
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(out.is_error, "{out:?}");

    let err = probe
        .call_tool(&ep, &call("get_weather", json!({})), None, DEADLINE)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTool { tool, .. } if tool == "get_weather"),
        "{err:?}"
    );

    let err = probe
        .call_tool(
            &ep,
            &call("get_current_time", json!({"timezone": 5})),
            Some(get_time.input_schema.clone()),
            DEADLINE,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidToolArguments { pointer, .. } if pointer == "/timezone"),
        "{err:?}"
    );

    bridge.shutdown();
    assert_eq!(bridge.wait().await.unwrap(), BridgeExit::Shutdown);
}

/// `(timezone, datetime)` of a `get_current_time` answer (a JSON object as text).
fn current_time(answer: &str) -> (String, chrono::DateTime<chrono::FixedOffset>) {
    let v: serde_json::Value =
        serde_json::from_str(answer).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
    let zone = v["timezone"]
        .as_str()
        .unwrap_or_else(|| panic!("no timezone: {answer}"));
    let at = v["datetime"]
        .as_str()
        .unwrap_or_else(|| panic!("no datetime: {answer}"));
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .unwrap_or_else(|e| panic!("datetime {at:?} is not RFC 3339 ({e}): {answer}"));
    (zone.to_owned(), at)
}

/// A small stdio MCP server on the venv's `mcp` package: `echo` answers, `crash` kills the
/// process in the middle of the call (before any answer).
const CRASHING_SERVER: &str = r#"
import os
from mcp.server.mcpserver import MCPServer

app = MCPServer("crash-test")

@app.tool()
def echo(text: str) -> str:
    return text

@app.tool()
def crash() -> str:
    os._exit(3)

app.run("stdio")
"#;

#[tokio::test]
async fn a_child_that_crashes_during_a_call_fails_the_call_and_stops_the_bridge() {
    let Some(bin) = venv_bin() else { return };
    let dir =
        std::env::temp_dir().join(format!("toolshed-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("server.py");
    std::fs::write(&script, CRASHING_SERVER).unwrap();
    let python = bin.join("python").to_string_lossy().into_owned();
    // The bridge waits for the child's `initialize` answer (up to the start-up timeout), so a
    // slow Python start on a loaded machine is waited for, not raced.
    let bridge = StdioBridge::start(config(vec![python, script.to_string_lossy().into_owned()]))
        .await
        .unwrap();
    let ep = bridge.endpoint().unwrap();
    let running = tokio::spawn(bridge.run_until(std::future::pending()));
    let probe = RmcpProbe::new().unwrap();
    probe.wait_ready(&ep, DEADLINE).await.unwrap();
    let out = probe
        .call_tool(
            &ep,
            &call("echo", json!({"text": "still here"})),
            None,
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(text(&out), "still here");

    // The child dies with the call in flight: the bridge answers the call with a JSON-RPC error
    // that says how the server process ended, and stops. The deadline is far longer than the
    // bridge needs: a call left waiting would end in a timeout error, not this answer.
    let err = probe
        .call_tool(
            &ep,
            &call("crash", json!({})),
            None,
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    match &err {
        Error::Probe {
            kind: ProbeFailureKind::Protocol,
            detail,
            ..
        } => assert!(
            detail.contains("the MCP server process exited with status 3"),
            "{detail}"
        ),
        other => panic!("expected the bridge's answer, got {other:?}"),
    }
    let exit = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the bridge did not stop within 60 s after its child exited")
        .unwrap()
        .unwrap();
    assert_eq!(exit, BridgeExit::ChildExited);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_command_that_is_not_an_mcp_server_fails_to_start() {
    let err = StdioBridge::start(config(vec!["true".into()]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "mcp-bridge",
                ..
            }
        ),
        "{err:?}"
    );
    let err = StdioBridge::start(config(vec!["/nonexistent/server".into()]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "mcp-bridge",
                operation: "spawn",
                ..
            }
        ),
        "{err:?}"
    );
}
