//! Serves a stdio-only MCP server over streamable HTTP.
//!
//! ```text
//! mcp-stdio-bridge [--port 8000] [--host 0.0.0.0] [--path /mcp] -- <command> [args…]
//! ```
//!
//! Spawns the command and initializes it, then opens the port (an open port means ready) and
//! prints `listening on <address>` on stdout, with the address actually bound (`--port 0` lets the
//! system pick a free port, which callers read from that line). Logs forwarded requests (debug)
//! and the child's stderr (info) on stderr. When the child exits, every request still waiting for
//! it is answered with a JSON-RPC error saying so (with the exit status), then the bridge exits
//! with status 1; it exits with 0 on SIGTERM / Ctrl-C.
//!
//! Environment: `RUST_LOG` (default `info,rmcp=warn`).
//!
//! The verification build copies this binary into the images of stdio servers, whatever their base
//! image, so build it statically linked:
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo install --path examples/mcp-stdio-bridge
//! --target x86_64-unknown-linux-gnu` (the local backend finds it next to the `toolshed` or
//! `playground-api` executable, on `PATH`, or through `TOOLSHED_STDIO_BRIDGE`).

use std::net::IpAddr;
use std::process::ExitCode;

use toolshed_core::adapters::mcp::{
    init_tracing, termination_signal, BridgeConfig, BridgeExit, StdioBridge,
};

const USAGE: &str =
    "usage: mcp-stdio-bridge [--port 8000] [--host 0.0.0.0] [--path /mcp] -- <command> [args…]";

/// Parses `[--port N] [--host IP] [--path P] -- command args…`.
fn parse(args: &[String]) -> Result<BridgeConfig, String> {
    let split = args.iter().position(|a| a == "--").ok_or(USAGE)?;
    let (options, command) = (&args[..split], args[split + 1..].to_vec());
    if command.is_empty() {
        return Err(format!("no server command after --\n{USAGE}"));
    }
    let mut config = BridgeConfig::new(command);
    let (mut host, mut port) = (config.host, config.port);
    let mut options = options.iter();
    while let Some(flag) = options.next() {
        let value = options.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            "--host" => {
                host = value
                    .parse::<IpAddr>()
                    .map_err(|e| format!("--host {value}: {e}"))?
            }
            "--path" => config = config.with_path(value.clone()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(config.with_listen(host, port))
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let outcome = match StdioBridge::start(config).await {
        Ok(bridge) => {
            // The ready line: the one thing this program writes on stdout.
            println!("listening on {}", bridge.local_addr());
            bridge.run_until(termination_signal()).await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(BridgeExit::Shutdown) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!(error = %e, "stdio bridge failed");
            ExitCode::FAILURE
        }
    }
}
