//! SQLite failures and their mapping to the core error.

use crate::error::Error;

/// What went wrong inside the SQLite adapter.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// SQLite refused.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A stored record could not be (de)serialised.
    #[error("stored record is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// The data directory could not be created.
    #[error("cannot create the data directory: {0}")]
    Io(#[source] std::io::Error),
    /// The blocking task died.
    #[error("blocking task failed: {0}")]
    Join(#[source] tokio::task::JoinError),
}

impl SqliteError {
    /// Maps to [`Error::Backend`]; a busy or locked database is retryable.
    pub fn into_error(self, operation: &'static str) -> Error {
        let retryable = matches!(
            &self,
            SqliteError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        Error::backend("sqlite", operation, None, retryable, self)
    }
}

/// Shorthand used inside closures: maps any adapter failure for `operation`.
pub(super) fn db<E: Into<SqliteError>>(operation: &'static str) -> impl Fn(E) -> Error {
    move |e| e.into().into_error(operation)
}
