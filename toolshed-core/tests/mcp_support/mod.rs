//! Helpers shared by the `mcp_*` integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use toolshed_core::domain::{Endpoint, ToolCall};

/// Reads a backend variable; `None` (after printing why) when the test must be skipped.
/// Panics instead when `TOOLSHED_REQUIRE_BACKENDS=1`.
pub fn backend_var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            if std::env::var("TOOLSHED_REQUIRE_BACKENDS").as_deref() == Ok("1") {
                panic!("{name} is not set but TOOLSHED_REQUIRE_BACKENDS=1");
            }
            println!("skipped: {name} is not set");
            None
        }
    }
}

/// The venv's bin directory (`TOOLSHED_TEST_VENV_BIN`), if set.
pub fn venv_bin() -> Option<PathBuf> {
    backend_var("TOOLSHED_TEST_VENV_BIN").map(PathBuf::from)
}

/// The test Python (`TOOLSHED_TEST_PYTHON`), if set.
pub fn python() -> Option<PathBuf> {
    backend_var("TOOLSHED_TEST_PYTHON").map(PathBuf::from)
}

/// A loopback endpoint at `addr` and `/mcp`.
pub fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::new("127.0.0.1", addr.port(), "/mcp").expect("endpoint")
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A tool call from a JSON object literal.
pub fn call(name: &str, args: serde_json::Value) -> ToolCall {
    let serde_json::Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    ToolCall::new(name, map).expect("tool call")
}

/// The text items of an output, joined.
pub fn text(output: &toolshed_core::domain::ToolCallOutput) -> String {
    output
        .content
        .iter()
        .filter_map(|c| c.get("text").and_then(|t| t.as_str()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A child process killed on drop.
pub struct ChildGuard(pub tokio::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Starts `tests/mcp_servers/<script>` with the test Python on `port`.
pub fn spawn_python_server(
    python: &PathBuf,
    script: &str,
    port: u16,
    env: &[(&str, &str)],
) -> ChildGuard {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/mcp_servers")
        .join(script);
    let mut command = tokio::process::Command::new(python);
    command
        .arg(path)
        .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
        .env_remove("GATED_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    ChildGuard(command.spawn().expect("spawn python MCP server"))
}

/// Generous readiness deadline for Python servers on a loaded 2-core machine.
pub const PYTHON_READY: Duration = Duration::from_secs(60);
