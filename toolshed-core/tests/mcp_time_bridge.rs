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
    let answer = text(&out);
    assert!(
        answer.contains("\"timezone\": \"UTC\"") || answer.contains("UTC"),
        "{answer}"
    );
    assert!(answer.contains("datetime"), "{answer}");

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

#[tokio::test]
async fn the_bridge_stops_when_its_child_exits() {
    let Some(bin) = venv_bin() else { return };
    let server = bin.join("mcp-server-time").to_string_lossy().into_owned();
    // coreutils `timeout` ends the server a few seconds after it started.
    let bridge = StdioBridge::start(config(vec!["timeout".into(), "4".into(), server]))
        .await
        .unwrap();
    let exit = tokio::time::timeout(
        Duration::from_secs(30),
        bridge.run_until(std::future::pending()),
    )
    .await
    .expect("bridge did not stop after its child exited")
    .unwrap();
    assert_eq!(exit, BridgeExit::ChildExited);
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
