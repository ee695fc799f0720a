//! `toolshed`: the command line of the local backend (Docker engine, SQLite, git).
//!
//! Install: `cargo install --path examples/toolshed-cli` (and, for stdio servers, the static
//! `mcp-stdio-bridge` next to it; `toolshed doctor` says what is missing).
//!
//! ```text
//! toolshed servers add time --repo file:///path/to/repo
//! toolshed servers verify time
//! toolshed playground start time
//! toolshed playground exec <session> add --args '{"a":1,"b":2}'
//! toolshed instances start time --name web-1
//! toolshed instances logs web-1 -f --tail 50
//! toolshed sweep
//! toolshed api-keys create --name ci --scope sessions,read
//! ```
//!
//! Human output by default, `-o json` for scripts. Exit codes: 0 success, 1 other error,
//! 2 usage, 3 not found, 4 busy (verification in progress, cap reached, conflict), 5 verification
//! failed, 6 backend unavailable (engine, database), 7 invalid input, 8 instance unhealthy.
//!
//! Environment: `TOOLSHED_DATA_DIR` (state; default `~/.local/share/toolshed`),
//! `TOOLSHED_REGISTRY` (`host:port` of an OCI registry; default the engine's image store),
//! `RUST_LOG` (default `warn,toolshed::build=info`: build output is shown on stderr as progress).

mod api_keys;
mod commands;
mod instances;
mod output;
mod settings;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use output::Format;

/// The `toolshed` CLI.
#[derive(Debug, Parser)]
#[command(
    name = "toolshed",
    version,
    about = "Host MCP servers from their git repositories, locally on Docker"
)]
struct Cli {
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Human)]
    output: Format,
    /// Data directory (SQLite state).
    #[arg(long, global = true, env = "TOOLSHED_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// OCI registry `host:port` to push images to (default: the engine's image store).
    #[arg(long, global = true, env = "TOOLSHED_REGISTRY")]
    registry: Option<String>,
    #[command(subcommand)]
    command: commands::Command,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never in files, pipes or CI logs.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rmcp::transport::worker=off,toolshed::build=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let format = cli.output;
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = output::exit_code(&e);
            output::error(format, &e, code);
            ExitCode::from(code)
        }
    }
}
