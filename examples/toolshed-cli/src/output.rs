//! Output: human text or JSON, errors with a next step, exit codes.

use serde::Serialize;
use toolshed_core::Error;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text for people.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// Prints `value` as JSON, or `human` for people.
pub fn print<T: Serialize>(format: Format, value: &T, human: impl FnOnce() -> String) {
    match format {
        Format::Json => match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot serialise the output: {e}"),
        },
        Format::Human => println!("{}", human()),
    }
}

/// The documented exit code of an error.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Unhealthy>().is_some() {
        return 8;
    }
    match e.downcast_ref::<Error>() {
        Some(Error::NotFound { .. }) => 3,
        Some(
            Error::VerificationInProgress { .. }
            | Error::CapReached { .. }
            | Error::Conflict { .. }
            | Error::AlreadyExists { .. },
        ) => 4,
        Some(Error::VerificationFailed { .. } | Error::NotVerified { .. }) => 5,
        Some(Error::Backend { .. } | Error::Timeout { .. } | Error::PermissionDenied { .. }) => 6,
        Some(
            Error::InvalidInput { .. }
            | Error::InvalidToolArguments { .. }
            | Error::UnknownTool { .. },
        ) => 7,
        _ => 1,
    }
}

/// What to do next, for the errors where there is something to say.
fn hint(e: &anyhow::Error) -> Option<String> {
    Some(match e.downcast_ref::<Error>()? {
        Error::NotFound { kind, .. } => match kind.to_string().as_str() {
            "server" => "list servers with `toolshed servers list`, or add one with `toolshed servers add`".into(),
            "session" => "list sessions with `toolshed playground status <session>` ids from `playground start`".into(),
            _ => "check the id".into(),
        },
        Error::NotVerified { server_id } => format!("run `toolshed servers verify {server_id}` first"),
        Error::VerificationInProgress { expires_at, .. } => {
            format!("wait for it to finish, or retry after {expires_at}")
        }
        Error::VerificationFailed { server_id, .. } => format!(
            "see `toolshed servers show {server_id}` for the failure; fix the repository and run `toolshed servers verify {server_id}` again"
        ),
        Error::CapReached { .. } => "stop a session (`toolshed playground stop <session>`) or run `toolshed sweep`".into(),
        Error::SessionNotRunning { session_id, .. } => {
            format!("check `toolshed playground status {session_id}`; start a new session if it ended")
        }
        Error::Backend { backend: "docker", .. } => "is the Docker engine running? (`docker info`)".into(),
        Error::Backend { backend: "sqlite", .. } => "check the data directory (--data-dir / TOOLSHED_DATA_DIR) is writable".into(),
        Error::UnknownTool { server_id, .. } => format!("see the tools with `toolshed servers show {server_id}`"),
        _ => return None,
    })
}

/// Prints an error (stderr, or a JSON object on stdout with `-o json`).
pub fn error(format: Format, e: &anyhow::Error, code: u8) {
    let hint = hint(e);
    match format {
        Format::Json => {
            let v =
                serde_json::json!({ "error": format!("{e:#}"), "hint": hint, "exit_code": code });
            println!("{v}");
        }
        Format::Human => {
            eprintln!("error: {e:#}");
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
        }
    }
}

/// An instance failed its health check (exit code 8).
#[derive(Debug)]
pub struct Unhealthy(pub String);

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "instance {} is unhealthy", self.0)
    }
}

impl std::error::Error for Unhealthy {}
