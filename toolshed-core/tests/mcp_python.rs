//! RmcpProbe against a Python MCP server on the PyPI `mcp` package (2.x) over streamable HTTP,
//! including the "handshake ok, tools gated" case. Needs `TOOLSHED_TEST_PYTHON`.
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::time::Duration;

use mcp_support::{call, python, spawn_python_server, text, PYTHON_READY};
use serde_json::json;
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::domain::ToolsOutcome;
use toolshed_core::ports::McpProbe;
use toolshed_core::Error;

/// Deadline of the calls that must succeed: far longer than a call takes, even on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn unconfigured_server_is_verified_with_tools_gated() {
    let Some(python) = python() else { return };
    let server = spawn_python_server(&python, "gated_server.py", &[]).await;
    let ep = server.endpoint();

    let report = RmcpProbe::new()
        .unwrap()
        .wait_ready(&ep, PYTHON_READY)
        .await
        .unwrap();
    assert_eq!(report.server.name.as_deref(), Some("toolshed-python-test"));
    assert_eq!(report.server.version.as_deref(), Some("1.2.3"));
    match &report.tools {
        ToolsOutcome::Gated { reason } => assert!(reason.contains("GATED_API_KEY"), "{reason}"),
        other => panic!("expected gated tools, got {other:?}"),
    }
    assert!(report.tools().is_empty());
}

#[tokio::test]
async fn configured_server_lists_and_runs_its_tools() {
    let Some(python) = python() else { return };
    let server =
        spawn_python_server(&python, "gated_server.py", &[("GATED_API_KEY", "test-key")]).await;
    let ep = server.endpoint();
    let probe = RmcpProbe::new().unwrap();

    let report = probe.wait_ready(&ep, PYTHON_READY).await.unwrap();
    let ToolsOutcome::Listed { tools } = &report.tools else {
        panic!("expected listed tools, got {:?}", report.tools)
    };
    let mut names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["divide", "greet", "wait"]);
    let divide = tools.iter().find(|t| t.name == "divide").unwrap();
    assert_eq!(divide.description.as_deref(), Some("Divides a by b."));
    assert!(
        divide.input_schema["properties"]["b"].is_object(),
        "{}",
        divide.input_schema
    );

    let out = probe
        .call_tool(&ep, &call("greet", json!({"name": "Ada"})), None, DEADLINE)
        .await
        .unwrap();
    assert!(!out.is_error);
    assert_eq!(text(&out), "Hello, Ada!");

    let out = probe
        .call_tool(
            &ep,
            &call("divide", json!({"a": 1, "b": 0})),
            None,
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(out.is_error, "{out:?}");
    assert!(text(&out).contains("division by zero"), "{}", text(&out));

    let err = probe
        .call_tool(&ep, &call("no_such_tool", json!({})), None, DEADLINE)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTool { tool, .. } if tool == "no_such_tool"),
        "{err:?}"
    );

    let err = probe
        .call_tool(
            &ep,
            &call("divide", json!({"a": 1, "b": "zero"})),
            Some(divide.input_schema.clone()),
            DEADLINE,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidToolArguments { pointer, .. } if pointer == "/b"),
        "{err:?}"
    );

    // The per-call deadline: the tool is still sleeping when it passes. Long enough for the
    // session's handshake on a loaded machine (which would otherwise be what times out); the tool
    // sleeps far longer than that.
    let err = probe
        .call_tool(
            &ep,
            &call("wait", json!({"seconds": 3600})),
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Probe {
                kind: toolshed_core::error::ProbeFailureKind::CallTimeout,
                ..
            }
        ),
        "{err:?}"
    );
    let out = probe
        .call_tool(&ep, &call("wait", json!({"seconds": 0.01})), None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(text(&out), "waited 0.01 s");
}
