//! Engine failures and their mapping to the core error.

use crate::error::{EntityKind, Error};

/// What went wrong talking to the engine or the registry.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine refused or could not be reached.
    #[error(transparent)]
    Engine(#[from] bollard::errors::Error),
    /// The registry could not be reached or answered unexpectedly.
    #[error("registry: {0}")]
    Registry(String),
    /// A local I/O failure (build context, git).
    #[error("{0}")]
    Other(String),
}

impl DockerError {
    /// The engine's HTTP status, when it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            DockerError::Engine(bollard::errors::Error::DockerResponseServerError {
                status_code,
                ..
            }) => Some(*status_code),
            _ => None,
        }
    }

    /// Maps to the core error: 404 → `NotFound` (kind `Task`), 5xx and transport failures are
    /// retryable `Backend` errors, the rest non-retryable.
    pub fn into_error(self, operation: &'static str, id: Option<String>) -> Error {
        match self.status() {
            Some(404) => Error::not_found(EntityKind::Task, id.unwrap_or_default()),
            Some(403) => Error::PermissionDenied {
                backend: "docker",
                operation,
                detail: self.to_string(),
            },
            Some(s) => Error::backend("docker", operation, id, s >= 500, self),
            None => {
                let retryable = !matches!(self, DockerError::Other(_));
                Error::backend("docker", operation, id, retryable, self)
            }
        }
    }
}

/// Shorthand: maps a bollard result's error for `operation` on `id`.
pub(super) fn engine<T>(
    r: Result<T, bollard::errors::Error>,
    operation: &'static str,
    id: &str,
) -> crate::Result<T> {
    r.map_err(|e| DockerError::from(e).into_error(operation, Some(id.to_owned())))
}

/// The engine's HTTP status of a bollard error, when it answered with one.
pub(super) fn status(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}
