//! [`ServerRepository`](crate::ports::ServerRepository) on an embedded SQLite database (`SqliteServerRepository`).
//!
//! Records are stored as JSON next to the columns that queries filter and order on (version,
//! liveness, expiry, creation time). Every write runs in a `BEGIN IMMEDIATE` transaction, so lease
//! and cap checks are atomic even between several processes sharing the file (the CLI). Blocking
//! SQLite calls run on tokio's blocking pool.

mod api_keys;
mod deployment;
mod error;
mod instances;
mod repo;
mod schema;
mod warm;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::error::Result;
pub use error::SqliteError;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "toolshed.sqlite3";

/// A [`ServerRepository`](crate::ports::ServerRepository) in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteServerRepository {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl SqliteServerRepository {
    /// Opens (creating if needed) the database at `path` and its parent directories.
    ///
    /// # Errors
    /// `Backend` (backend `sqlite`) when the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, SqliteError> {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(SqliteError::Io)?;
            }
            let conn = Connection::open(&p)?;
            schema::migrate(&conn)?;
            Ok(conn)
        })
        .await
        .map_err(SqliteError::Join)
        .and_then(|r| r)
        .map_err(|e| e.into_error("open"))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Some(path),
        })
    }

    /// A private in-memory database (tests, throwaway runs).
    ///
    /// # Errors
    /// `Backend` when SQLite cannot be initialised.
    pub fn in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory()
            .map_err(SqliteError::from)
            .and_then(|c| schema::migrate(&c).map(|()| c))
            .map_err(|e| e.into_error("open"))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: None,
        })
    }

    /// The database file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(crate) async fn with_conn<T, F>(&self, operation: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a transaction half applied (SQLite rolls
            // back an unfinished transaction when it is dropped), so a poisoned lock is safe.
            let mut guard = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| SqliteError::Join(e).into_error(operation))?
    }
}

#[cfg(test)]
mod tests;
