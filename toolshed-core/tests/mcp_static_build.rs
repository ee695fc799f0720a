//! The static builds of the `mcp-stdio-bridge` and `mcp-example-server` packages (the test
//! command builds them before the tests; brought up to date here with cargo, which takes minutes
//! when they are missing or older than the sources), then the bridge in front of the real
//! `mcp-server-time`, and the example server, each on a port it picked and reported, each stopped
//! with SIGTERM.
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::path::Path;
use std::process::Command;

use mcp_support::{spawn_listening, ServerProcess, READY};
use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::ports::McpProbe;
use toolshed_core::testing::fixtures;

fn assert_static(binary: &Path) {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("statically linked") || text.contains("not a dynamic executable"),
        "{} is dynamic: {text}",
        binary.display()
    );
}

/// SIGTERM, then the exit status (within a generous deadline; a process still running then fails
/// the test with its output).
async fn terminate(mut process: ServerProcess) -> std::process::ExitStatus {
    process.signal("TERM");
    process.exit_status(READY).await
}

#[tokio::test]
async fn static_binaries_build_and_serve() {
    let Some(bin) = mcp_support::venv_bin() else {
        return;
    };
    // Brought up to date: what is asserted below (the ready line) is the binaries' own behaviour.
    let (bridge_bin, example_bin) = tokio::task::spawn_blocking(|| {
        (
            fixtures::build_static_binary("mcp-stdio-bridge").expect("static bridge"),
            fixtures::build_static_binary("mcp-example-server").expect("static example server"),
        )
    })
    .await
    .unwrap();
    assert_static(&bridge_bin);
    assert_static(&example_bin);
    let probe = RmcpProbe::new().unwrap();

    // Port 0: each binary binds a port the system picks and reports it on its ready line.
    let mut command = tokio::process::Command::new(&bridge_bin);
    command
        .args(["--host", "127.0.0.1", "--port", "0", "--"])
        .arg(bin.join("mcp-server-time"));
    let bridge = spawn_listening(command, "mcp-stdio-bridge", READY).await;
    let report = probe.wait_ready(&bridge.endpoint(), READY).await.unwrap();
    assert_eq!(report.tools().len(), 2);
    let status = terminate(bridge).await;
    assert!(status.success(), "bridge after SIGTERM: {status}");

    let mut command = tokio::process::Command::new(&example_bin);
    command.args(["--host", "127.0.0.1", "--port", "0"]);
    let server = spawn_listening(command, "mcp-example-server", READY).await;
    let report = probe.wait_ready(&server.endpoint(), READY).await.unwrap();
    assert_eq!(report.tools().len(), 3);
    let status = terminate(server).await;
    assert!(status.success(), "example server after SIGTERM: {status}");
}
