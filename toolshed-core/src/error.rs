//! The one error type of `toolshed-core`, shared by the services and the ports.
//!
//! Variants are grouped by *meaning* (not found, conflict, precondition, backend failure…) so an
//! HTTP layer can map them to statuses without knowing which adapter produced them, and every
//! variant says what failed, for which id, and — through [`Error::is_retryable`] — whether a retry
//! can help.

use std::fmt;

use crate::domain::{QuotaKind, Scope, ServerId, Timestamp, VerificationStep};

/// Boxed source error carried by backend failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of entity an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntityKind {
    /// A registered MCP server.
    Server,
    /// A playground session.
    Session,
    /// A container image.
    Image,
    /// A build.
    Build,
    /// A running task or container.
    Task,
    /// A stored document.
    Docs,
    /// A verification lease.
    Lease,
    /// An MCP tool.
    Tool,
    /// A long-running instance.
    Instance,
    /// An API key.
    ApiKey,
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntityKind::Server => "server",
            EntityKind::Session => "session",
            EntityKind::Image => "image",
            EntityKind::Build => "build",
            EntityKind::Task => "task",
            EntityKind::Docs => "docs",
            EntityKind::Lease => "verification lease",
            EntityKind::Tool => "tool",
            EntityKind::Instance => "instance",
            EntityKind::ApiKey => "API key",
        })
    }
}

/// Which session cap was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapScope {
    /// The per-server cap.
    PerServer,
    /// The platform-wide cap.
    Total,
}

impl fmt::Display for CapScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapScope::PerServer => "per-server",
            CapScope::Total => "total",
        })
    }
}

/// How an MCP probe or tool call failed. Adapters classify, services record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeFailureKind {
    /// Nothing accepted a connection at the endpoint (before the readiness deadline).
    Unreachable,
    /// Something answered, but not MCP (e.g. a plain web server).
    NotMcp,
    /// The connection was accepted but `initialize` did not complete in time.
    HandshakeTimeout,
    /// The peer spoke MCP but broke the protocol.
    Protocol,
    /// A tool call did not finish before its deadline.
    CallTimeout,
}

impl fmt::Display for ProbeFailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeFailureKind::Unreachable => "unreachable",
            ProbeFailureKind::NotMcp => "not an MCP server",
            ProbeFailureKind::HandshakeTimeout => "handshake timed out",
            ProbeFailureKind::Protocol => "MCP protocol error",
            ProbeFailureKind::CallTimeout => "tool call timed out",
        })
    }
}

/// The error of every service and port in `toolshed-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation; nothing was changed. Never retryable as is.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which field or parameter.
        field: &'static str,
        /// Why it was rejected, phrased for the caller.
        reason: String,
    },

    /// The entity does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked up.
        kind: EntityKind,
        /// Its id.
        id: String,
    },

    /// An entity with this id already exists.
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        /// What was created.
        kind: EntityKind,
        /// Its id.
        id: String,
    },

    /// An optimistic-concurrency check failed: somebody else changed the entity first.
    /// Re-read and retry.
    #[error("{kind} {id} was changed concurrently (expected version {expected})")]
    Conflict {
        /// What was updated.
        kind: EntityKind,
        /// Its id.
        id: String,
        /// The version the caller read.
        expected: u64,
    },

    /// A verification of this server is already running (its lease is held and not expired).
    #[error("verification of server {server_id} is already in progress (held by {holder} until {expires_at})")]
    VerificationInProgress {
        /// The server.
        server_id: ServerId,
        /// Who holds the lease.
        holder: String,
        /// When the lease expires and may be taken over.
        expires_at: Timestamp,
    },

    /// The caller's lease was taken over (fencing token is stale) or released; its work must stop.
    #[error("verification lease of server {server_id} with token {token} is no longer held")]
    LeaseLost {
        /// The server.
        server_id: ServerId,
        /// The stale fencing token.
        token: u64,
    },

    /// An approval or rejection named a candidate that is not the one pending review (it was
    /// replaced by a newer verification, or nothing is pending any more). Nothing was changed;
    /// re-read the server and review the candidate it shows.
    #[error("server {server_id}: {expected:?} is not the candidate pending review ({})", pending.as_deref().map_or_else(|| "none is pending".to_owned(), |p| format!("pending: {p}")))]
    ReviewMismatch {
        /// The server.
        server_id: ServerId,
        /// The digest or commit the caller named.
        expected: String,
        /// The digest of the candidate actually pending, if any.
        pending: Option<String>,
    },

    /// The server has no verified image yet: it cannot be launched.
    #[error("server {server_id} has no verified image; verify it first")]
    NotVerified {
        /// The server.
        server_id: ServerId,
    },

    /// The server is not run by this host (an imported remote runs at its own URL): no
    /// session, instance or warm pool of it can start.
    #[error("server {server_id} cannot be launched here: {reason}")]
    NotLaunchable {
        /// The server.
        server_id: ServerId,
        /// Why, for people (e.g. where the server runs instead).
        reason: String,
    },

    /// A connection to a remote server was refused by the deployment's egress policy before
    /// anything was sent (only https; every address the host resolves to must be public or in
    /// a network the deployment allows).
    #[error("connection to remote host {host} refused: {reason}")]
    EgressRefused {
        /// The host name of the URL (never a resolved address).
        host: String,
        /// Why, for people.
        reason: String,
    },

    /// The session is not running (yet, or any more), so the operation cannot be served.
    #[error("session {session_id} is not running ({state})")]
    SessionNotRunning {
        /// The session.
        session_id: String,
        /// Its current state, for the message.
        state: String,
    },

    /// The session's task was started but its MCP server has not answered yet, and did not
    /// within the time the caller was given. Retry after `retry_after`: nothing was sent.
    #[error("session {session_id} is still starting (for {} s): its MCP server has not answered yet; retry in {} s", starting_for.as_secs(), retry_after.as_secs())]
    SessionStarting {
        /// The session.
        session_id: String,
        /// How long it has been starting.
        starting_for: std::time::Duration,
        /// A suggested pause before the next attempt.
        retry_after: std::time::Duration,
    },

    /// A session cap is reached.
    #[error("{scope} session cap of {limit} reached for server {server_id}")]
    CapReached {
        /// Which cap.
        scope: CapScope,
        /// The cap.
        limit: u32,
        /// The server that asked.
        server_id: ServerId,
    },

    /// The caller lacks the scope the operation needs. Not retryable with the same credentials.
    #[error("principal {principal} lacks the scope {scope}")]
    Forbidden {
        /// Who asked.
        principal: String,
        /// The scope the operation needs.
        scope: Scope,
    },

    /// A per-principal quota is used up; nothing was changed. Retry after `retry_after_secs`
    /// (windowed quotas) or once a live session ends.
    #[error("quota of {limit} {quota} reached for principal {principal}")]
    QuotaExceeded {
        /// Whose quota.
        principal: String,
        /// Which quota.
        quota: QuotaKind,
        /// The limit.
        limit: u32,
        /// Seconds until the window resets (`None`: when a live session ends).
        retry_after_secs: Option<u64>,
    },

    /// A verification step failed; the last good image is untouched.
    #[error("verification of server {server_id} failed at step {step}: {reason}")]
    VerificationFailed {
        /// The server.
        server_id: ServerId,
        /// The step that failed.
        step: VerificationStep,
        /// Why.
        reason: String,
        /// Whether retrying the verification may succeed (e.g. a transient backend error).
        retryable: bool,
    },

    /// An MCP probe or tool call failed at the transport / protocol level.
    #[error("MCP {kind} at {endpoint}: {detail}")]
    Probe {
        /// Classification.
        kind: ProbeFailureKind,
        /// The endpoint URL.
        endpoint: String,
        /// Detail for humans.
        detail: String,
    },

    /// The tool is not offered by the server.
    #[error("server {server_id} has no tool named {tool:?}")]
    UnknownTool {
        /// The server.
        server_id: String,
        /// The tool name asked for.
        tool: String,
    },

    /// Tool arguments violate the tool's input schema; nothing was sent.
    #[error("arguments for tool {tool:?} are invalid at {pointer}: {reason}")]
    InvalidToolArguments {
        /// The tool.
        tool: String,
        /// JSON pointer of the offending field (`""` for the root).
        pointer: String,
        /// Why.
        reason: String,
    },

    /// A backend (AWS, Docker, SQLite, OpenAI, git…) call failed.
    #[error("{backend} {operation} failed{}: {source}", id.as_deref().map(|i| format!(" for {i}")).unwrap_or_default())]
    Backend {
        /// The backend, e.g. `"dynamodb"`, `"ecs"`, `"docker"`.
        backend: &'static str,
        /// The operation, e.g. `"RunTask"`.
        operation: &'static str,
        /// The id the call was about, when there is one.
        id: Option<String>,
        /// Whether retrying may help (throttling, timeouts, 5xx).
        retryable: bool,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The backend refused for lack of permission. Not retryable until the policy changes.
    #[error("{backend} {operation}: permission denied: {detail}")]
    PermissionDenied {
        /// The backend.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
        /// Detail.
        detail: String,
    },

    /// The entity's state does not allow the operation (e.g. restarting an instance that is
    /// still being created). Not retryable as is: the state must change first.
    #[error("{kind} {id} is {state}: cannot {action}")]
    InvalidState {
        /// What was acted on.
        kind: EntityKind,
        /// Its id.
        id: String,
        /// Its current state.
        state: String,
        /// What was refused.
        action: &'static str,
    },

    /// The backend does not offer this operation (e.g. container logs on a runner without a
    /// log reader). Not retryable.
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
    },

    /// Content from a server or repository under test went past a size or count limit; the
    /// rest of it was not read. Not retryable: the same content exceeds it again.
    #[error("{what} exceeds the limit of {limit} {unit}{}", id.as_deref().map(|i| format!(" for {i}")).unwrap_or_default())]
    LimitExceeded {
        /// What went past the limit, e.g. `"git archive output"`, `"tools/list"`.
        what: &'static str,
        /// The id concerned (a repository, an endpoint).
        id: Option<String>,
        /// The limit.
        limit: u64,
        /// Its unit, e.g. `"bytes"`, `"tools"`.
        unit: &'static str,
    },

    /// A build's context or Dockerfile resolves, through a symbolic link of the repository,
    /// outside the repository (or the Dockerfile outside the build context). Refused before
    /// anything is built; not retryable: the same commit resolves the same way.
    #[error("build {field} {path:?} resolves outside the {scope} (symbolic link to {target:?}): refused")]
    BuildPathEscape {
        /// `build.context` or `build.dockerfile`.
        field: &'static str,
        /// The path as registered, from the repository root.
        path: String,
        /// What it must stay inside: `repository` or `build context`.
        scope: &'static str,
        /// The link target that leads out.
        target: String,
    },

    /// An operation did not finish within its deadline.
    #[error("{operation} timed out after {after_ms} ms{}", id.as_deref().map(|i| format!(" for {i}")).unwrap_or_default())]
    Timeout {
        /// What timed out.
        operation: &'static str,
        /// The id concerned.
        id: Option<String>,
        /// The deadline in milliseconds.
        after_ms: u64,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(kind: EntityKind, id: impl fmt::Display) -> Self {
        Error::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    /// Shorthand for [`Error::Backend`].
    pub fn backend(
        backend: &'static str,
        operation: &'static str,
        id: Option<String>,
        retryable: bool,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            backend,
            operation,
            id,
            retryable,
            source: source.into(),
        }
    }

    /// Whether retrying the same call later may succeed.
    ///
    /// ```
    /// use toolshed_core::Error;
    /// assert!(!Error::invalid("server_id", "empty").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Conflict { .. }
            | Error::VerificationInProgress { .. }
            | Error::CapReached { .. }
            | Error::QuotaExceeded { .. }
            | Error::Timeout { .. }
            | Error::SessionNotRunning { .. }
            | Error::SessionStarting { .. } => true,
            Error::Backend { retryable, .. } => *retryable,
            Error::VerificationFailed { retryable, .. } => *retryable,
            Error::Probe { kind, .. } => matches!(
                kind,
                ProbeFailureKind::Unreachable
                    | ProbeFailureKind::HandshakeTimeout
                    | ProbeFailureKind::CallTimeout
            ),
            Error::InvalidInput { .. }
            | Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::LeaseLost { .. }
            | Error::NotVerified { .. }
            | Error::NotLaunchable { .. }
            | Error::EgressRefused { .. }
            | Error::ReviewMismatch { .. }
            | Error::UnknownTool { .. }
            | Error::InvalidToolArguments { .. }
            | Error::PermissionDenied { .. }
            | Error::InvalidState { .. }
            | Error::Unsupported { .. }
            | Error::LimitExceeded { .. }
            | Error::BuildPathEscape { .. }
            | Error::Forbidden { .. } => false,
        }
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
