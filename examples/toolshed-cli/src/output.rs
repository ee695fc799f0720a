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

/// Lays `rows` out under `header` in columns as wide as their widest cell, two spaces apart (the
/// last column is not padded, so lines carry no trailing blanks).
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                let pad = width - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out
    };
    let mut out = line(header);
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
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
            | Error::AlreadyExists { .. }
            | Error::InvalidState { .. }
            | Error::NotLaunchable { .. }
            | Error::SessionStarting { .. },
        ) => 4,
        Some(Error::VerificationFailed { .. } | Error::NotVerified { .. }) => 5,
        Some(Error::Backend { .. } | Error::Timeout { .. } | Error::PermissionDenied { .. }) => 6,
        Some(
            Error::InvalidInput { .. }
            | Error::InvalidToolArguments { .. }
            | Error::EgressRefused { .. }
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
            "session" => "list sessions with `toolshed playground list`".into(),
            "instance" => "list instances with `toolshed instances list`".into(),
            _ => "check the id".into(),
        },
        Error::AlreadyExists {
            kind: toolshed_core::error::EntityKind::Instance,
            ..
        } => "names are unique: restart the existing instance (`toolshed instances restart <name>`), remove it (`toolshed instances rm <name>`), or pick another --name".into(),
        Error::InvalidState { .. } => "check `toolshed instances status <name>` and retry once it has settled".into(),
        Error::NotVerified { server_id } => format!("run `toolshed servers verify {server_id}` first"),
        Error::NotLaunchable { .. } => "a remote server runs at its own URL: connect an MCP client to it there (`toolshed servers show <id>` shows it)".into(),
        Error::EgressRefused { .. } => "remote servers must be on public addresses; a private deployment may allow networks with TOOLSHED_REMOTE_ALLOWED_NETWORKS".into(),
        Error::VerificationInProgress { expires_at, .. } => {
            format!("wait for it to finish, or retry after {expires_at}")
        }
        Error::VerificationFailed { server_id, .. } => format!(
            "see `toolshed servers show {server_id}` for the failure; fix the repository and run `toolshed servers verify {server_id}` again"
        ),
        Error::CapReached { .. } => "stop a session (`toolshed playground stop <session>`) or run `toolshed sweep`".into(),
        Error::SessionStarting { session_id, .. } => format!(
            "its server is still loading: retry, or wait with `toolshed playground status {session_id} --wait`"
        ),
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

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = [
            [
                "a-very-long-server-id".to_owned(),
                "verified".to_owned(),
                "x".to_owned(),
            ],
            ["t".to_owned(), "failed".to_owned(), "y".to_owned()],
        ];
        let out = table(["ID", "STATE", "REPOSITORY"], &rows);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "ID                     STATE     REPOSITORY",
                "a-very-long-server-id  verified  x",
                "t                      failed    y",
            ]
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let rows = [["é".to_owned(), "b".to_owned()]];
        assert_eq!(table(["A", "B"], &rows), "A  B\né  b");
    }
}
