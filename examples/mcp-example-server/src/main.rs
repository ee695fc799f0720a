//! A small MCP server over streamable HTTP with three deterministic tools: `echo` {text},
//! `add` {a, b} and `word_count` {text}.
//!
//! ```text
//! mcp-example-server [--port 8000] [--host 0.0.0.0]
//! ```
//!
//! Listens on 0.0.0.0 (or `--host`) at `/mcp` and prints `listening on <address>` on stdout with
//! the address actually bound (`--port 0` lets the system pick a free port, which callers read
//! from that line); exits cleanly on SIGTERM / Ctrl-C.
//!
//! Environment: `RUST_LOG` (default `info,rmcp=warn`).
//!
//! Static build (for a `FROM scratch` image):
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p mcp-example-server
//! --target x86_64-unknown-linux-gnu`

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;

use toolshed_core::adapters::mcp::{
    init_tracing, serve_example_server, termination_signal, ExampleServer,
};

/// `[--port N] [--host IP]`, defaults 8000 and 0.0.0.0.
fn listen(args: &[String]) -> Result<(IpAddr, u16), String> {
    let (mut host, mut port) = (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8000);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            "--host" => host = value.parse().map_err(|e| format!("--host {value}: {e}"))?,
            _ => return Err("usage: mcp-example-server [--port 8000] [--host 0.0.0.0]".into()),
        }
    }
    Ok((host, port))
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (host, port) = match listen(&args) {
        Ok(listen) => listen,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, port, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(error = %e, port, "cannot read the bound address");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%addr, "example MCP server listening at /mcp");
    // The ready line: the one thing this program writes on stdout.
    println!("listening on {addr}");
    match serve_example_server(ExampleServer::new(), listener, "/mcp", termination_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
