//! RmcpProbe against an rmcp server in the same process (the example server on loopback HTTP).
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::net::SocketAddr;
use std::time::Duration;

use mcp_support::{call, endpoint, text, ClosedPort};
use serde_json::json;
use tokio::sync::oneshot;
use toolshed_core::adapters::mcp::{
    serve_example_server, ExampleServer, RmcpProbe, RmcpProbeConfig,
};
use toolshed_core::domain::ToolsOutcome;
use toolshed_core::error::ProbeFailureKind;
use toolshed_core::ports::McpProbe;
use toolshed_core::Error;

/// Deadline of every operation: far longer than any takes, even on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// Serves a fresh example server; dropping the sender stops it.
async fn start() -> (ExampleServer, SocketAddr, oneshot::Sender<()>) {
    let server = ExampleServer::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let served = server.clone();
    tokio::spawn(async move {
        let _ = serve_example_server(served, listener, "/mcp", async move {
            let _ = rx.await;
        })
        .await;
    });
    (server, addr, tx)
}

#[tokio::test]
async fn probe_reports_server_and_all_tools_with_schemas() {
    let (_server, addr, _stop) = start().await;
    let report = RmcpProbe::new()
        .unwrap()
        .probe(&endpoint(addr), DEADLINE)
        .await
        .unwrap();
    assert_eq!(report.server.name.as_deref(), Some("toolshed-example"));
    assert!(!report.server.protocol_version.is_empty());
    assert!(
        report.server.capabilities.get("tools").is_some(),
        "{:?}",
        report.server.capabilities
    );
    let ToolsOutcome::Listed { tools } = &report.tools else {
        panic!("tools gated: {:?}", report.tools)
    };
    let mut names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "echo", "word_count"]);
    let add = tools.iter().find(|t| t.name == "add").unwrap();
    assert_eq!(add.description.as_deref(), Some("Adds two numbers."));
    assert!(
        add.input_schema["properties"]["a"].is_object(),
        "{}",
        add.input_schema
    );
    assert!(
        add.input_schema["properties"]["b"].is_object(),
        "{}",
        add.input_schema
    );
}

#[tokio::test]
async fn calls_tools_and_maps_tool_errors_and_unknown_tools() {
    let (server, addr, _stop) = start().await;
    let probe = RmcpProbe::new().unwrap();
    let ep = endpoint(addr);

    let out = probe
        .call_tool(&ep, &call("add", json!({"a": 2, "b": 3.5})), None, DEADLINE)
        .await
        .unwrap();
    assert!(!out.is_error);
    assert_eq!(text(&out), "5.5");

    let out = probe
        .call_tool(
            &ep,
            &call("word_count", json!({"text": "one two  three"})),
            None,
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(text(&out), "3");

    // A failing tool is a result, not an error.
    let out = probe
        .call_tool(
            &ep,
            &call("add", json!({"a": 1e308, "b": 1e308})),
            None,
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(out.is_error, "{out:?}");
    assert!(text(&out).contains("not a finite number"));

    let err = probe
        .call_tool(&ep, &call("nope", json!({})), None, DEADLINE)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTool { tool, .. } if tool == "nope"),
        "{err:?}"
    );
    assert_eq!(server.calls(), 4);
}

#[tokio::test]
async fn schema_violations_are_rejected_before_anything_is_sent() {
    let (server, addr, _stop) = start().await;
    let probe = RmcpProbe::new().unwrap();
    let ep = endpoint(addr);
    let report = probe.probe(&ep, DEADLINE).await.unwrap();
    let schema = report
        .tools()
        .iter()
        .find(|t| t.name == "add")
        .unwrap()
        .input_schema
        .clone();
    let before = server.calls();

    let err = probe
        .call_tool(
            &ep,
            &call("add", json!({"a": "two", "b": 1})),
            Some(schema.clone()),
            DEADLINE,
        )
        .await
        .unwrap_err();
    match &err {
        Error::InvalidToolArguments { tool, pointer, .. } => {
            assert_eq!(tool, "add");
            assert_eq!(pointer, "/a");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = probe
        .call_tool(
            &ep,
            &call("add", json!({"a": 1})),
            Some(schema.clone()),
            DEADLINE,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidToolArguments { .. }), "{err:?}");
    assert_eq!(server.calls(), before, "a rejected call reached the server");

    // The same schema lets a valid call through.
    let out = probe
        .call_tool(
            &ep,
            &call("add", json!({"a": 1, "b": 1})),
            Some(schema),
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(text(&out), "2");
    assert_eq!(server.calls(), before + 1);
}

#[tokio::test]
async fn output_is_capped_and_flagged() {
    let (_server, addr, _stop) = start().await;
    let probe =
        RmcpProbe::with_config(RmcpProbeConfig::default().with_max_output_bytes(200)).unwrap();
    let long = "word ".repeat(1000);
    let out = probe
        .call_tool(
            &endpoint(addr),
            &call("echo", json!({"text": long})),
            None,
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(out.truncated);
    let kept = text(&out);
    assert!(!kept.is_empty() && kept.len() < 200, "{}", kept.len());
    assert!(long.starts_with(&kept));

    let out = probe
        .call_tool(
            &endpoint(addr),
            &call("echo", json!({"text": "short"})),
            None,
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(!out.truncated);
    assert_eq!(text(&out), "short");
}

/// Connections the server-to-be closes unanswered before it serves: the TCP check and the
/// `initialize` request of the first readiness attempt.
const FIRST_ATTEMPT_CONNECTIONS: usize = 2;

#[tokio::test]
async fn wait_ready_retries_until_the_server_comes_up() {
    let port = ClosedPort::new();
    let ep = port.endpoint();
    let probe = RmcpProbe::new().unwrap();
    // Nothing listens yet: a single probe is Unreachable.
    let err = probe.probe(&ep, DEADLINE).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Probe {
                kind: ProbeFailureKind::Unreachable,
                ..
            }
        ),
        "{err:?}"
    );

    // The port opens, but the first readiness attempt's connections are closed unanswered (a
    // server still starting); only then does the MCP server answer, on the same listener. So
    // the readiness wait can only succeed by trying again after a failed attempt.
    let listener = port.listen();
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(async move {
        for _ in 0..FIRST_ATTEMPT_CONNECTIONS {
            let (connection, _) = listener.accept().await.unwrap();
            drop(connection);
        }
        let _ = closed_tx.send(());
        let _ = serve_example_server(
            ExampleServer::new(),
            listener,
            "/mcp",
            std::future::pending(),
        )
        .await;
    });
    let report = probe.wait_ready(&ep, DEADLINE).await.unwrap();
    assert_eq!(report.tools().len(), 3);
    // The connections of the first attempt really were closed unanswered.
    closed_rx.await.unwrap();
}
