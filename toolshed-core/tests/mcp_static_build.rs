//! The static builds of the `mcp-stdio-bridge` and `mcp-example-server` packages (the test
//! command builds them before the tests; built here with cargo when missing, which takes
//! minutes), then the bridge in front of the real `mcp-server-time`, and the example server, each
//! stopped with SIGTERM.
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use toolshed_core::adapters::mcp::RmcpProbe;
use toolshed_core::domain::Endpoint;
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

/// SIGTERM, then the exit status.
fn terminate(mut child: std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("did not exit within 10 s of SIGTERM");
}

#[tokio::test]
async fn static_binaries_build_and_serve() {
    let Some(bin) = mcp_support::venv_bin() else {
        return;
    };
    let bridge_bin = fixtures::ensure_static_binary("mcp-stdio-bridge").expect("static bridge");
    let example_bin =
        fixtures::ensure_static_binary("mcp-example-server").expect("static example server");
    assert_static(&bridge_bin);
    assert_static(&example_bin);
    let probe = RmcpProbe::new().unwrap();

    let port = mcp_support::free_port();
    let bridge = Command::new(&bridge_bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--"])
        .arg(bin.join("mcp-server-time"))
        .stdin(Stdio::null())
        .spawn()
        .expect("bridge");
    let ep = Endpoint::new("127.0.0.1", port, "/mcp").unwrap();
    let report = probe
        .wait_ready(&ep, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(report.tools().len(), 2);
    assert!(terminate(bridge).success());

    let port = mcp_support::free_port();
    let server = Command::new(&example_bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("example server");
    let ep = Endpoint::new("127.0.0.1", port, "/mcp").unwrap();
    let report = probe
        .wait_ready(&ep, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(report.tools().len(), 3);
    assert!(terminate(server).success());
}
