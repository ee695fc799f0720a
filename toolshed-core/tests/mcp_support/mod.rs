//! Helpers shared by the `mcp_*` integration tests.
//!
//! Ports: servers bind port 0 themselves and the tests read the bound port back (a process prints
//! `listening on <address>` on stdout, an in-process server gets its `TcpListener` handed over),
//! so no port is picked, released and bound again later by someone else. A port that must refuse
//! connections is held bound but not listening ([`ClosedPort`]).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
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

/// A loopback port held by the test with nothing listening on it: connections are refused, and
/// no other process can take the port while it is held. [`ClosedPort::listen`] opens it later,
/// on the same port.
pub struct ClosedPort {
    socket: tokio::net::TcpSocket,
    /// The held port.
    pub port: u16,
}

impl ClosedPort {
    /// Binds a socket on 127.0.0.1:0 without listening.
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind 127.0.0.1:0");
        let port = socket.local_addr().expect("bound address").port();
        Self { socket, port }
    }

    /// The endpoint at this port and `/mcp`.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new("127.0.0.1", self.port, "/mcp").expect("endpoint")
    }

    /// Starts listening on the held port.
    pub fn listen(self) -> tokio::net::TcpListener {
        self.socket.listen(1024).expect("listen")
    }
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

/// Generous readiness deadline for server processes on a loaded 2-core machine (Python imports,
/// a child to initialize behind the bridge).
pub const READY: Duration = Duration::from_secs(60);

/// Generous readiness deadline for Python servers on a loaded 2-core machine.
pub const PYTHON_READY: Duration = READY;

/// A server process started by a test, listening at `addr`. Killed when dropped; what it wrote
/// (stderr, and stdout after the ready line) is kept for failure messages.
pub struct ServerProcess {
    /// The process.
    pub child: tokio::process::Child,
    /// The address it reported as bound, loopback when it listens on all addresses.
    pub addr: SocketAddr,
    output: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// The loopback endpoint at the reported port and `/mcp`.
    pub fn endpoint(&self) -> Endpoint {
        endpoint(self.addr)
    }

    /// What the process wrote so far (stderr, and stdout after the ready line).
    pub fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is still running")
    }

    /// Sends `signal` (a name `kill` knows: TERM, KILL) to the process.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// Waits for the process to exit; panics (with its output) when it has not within `deadline`.
    pub async fn exit_status(&mut self, deadline: Duration) -> ExitStatus {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => status.expect("wait for the process"),
            Err(_) => panic!(
                "the process did not exit within {deadline:?}; its output:\n{}",
                self.output()
            ),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Sends `signal` (a name `kill` knows: TERM, KILL) to process `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// Appends everything `stream` yields to `output`, line by line, until it closes.
fn keep_output(stream: impl AsyncRead + Unpin + Send + 'static, output: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut output = output.lock().expect("output lock");
            output.push_str(&line);
            output.push('\n');
        }
    });
}

/// Starts `command` (stdin closed, stdout and stderr piped, killed on drop) and waits up to
/// `deadline` for its ready line `listening on <address>` on stdout. Panics with what the
/// process wrote when it exits first or the deadline passes.
pub async fn spawn_listening(
    mut command: tokio::process::Command,
    what: &str,
    deadline: Duration,
) -> ServerProcess {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let output = Arc::new(Mutex::new(String::new()));
    keep_output(child.stderr.take().expect("piped stderr"), output.clone());
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let until = tokio::time::Instant::now() + deadline;
    let mut line = String::new();
    let addr = loop {
        line.clear();
        match tokio::time::timeout_at(until, stdout.read_line(&mut line)).await {
            Ok(Ok(0)) => {
                let status = child.wait().await.expect("wait for the process");
                panic!(
                    "{what} exited ({status}) before reporting its address; its output:\n{}",
                    output.lock().expect("output lock")
                );
            }
            Ok(Ok(_)) => {
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    let addr: SocketAddr = addr
                        .parse()
                        .unwrap_or_else(|e| panic!("{what} reported {addr:?}: {e}"));
                    break addr;
                }
                output.lock().expect("output lock").push_str(&line);
            }
            Ok(Err(e)) => panic!("reading the stdout of {what}: {e}"),
            Err(_) => panic!(
                "{what} did not report its address within {deadline:?}; its output:\n{}",
                output.lock().expect("output lock")
            ),
        }
    };
    // Keep reading stdout, so the process never blocks on (or dies of) a full or closed pipe.
    keep_output(stdout.into_inner(), output.clone());
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
    } else {
        addr
    };
    ServerProcess {
        child,
        addr,
        output,
    }
}

/// Starts `tests/mcp_servers/<script>` with the test Python on a port it picks (`--port 0`) and
/// waits for it to report that port.
pub async fn spawn_python_server(
    python: &PathBuf,
    script: &str,
    env: &[(&str, &str)],
) -> ServerProcess {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/mcp_servers")
        .join(script);
    let mut command = tokio::process::Command::new(python);
    command
        .arg(path)
        .args(["--port", "0", "--host", "127.0.0.1"])
        .env_remove("GATED_API_KEY");
    for (key, value) in env {
        command.env(key, value);
    }
    spawn_listening(command, script, PYTHON_READY).await
}
