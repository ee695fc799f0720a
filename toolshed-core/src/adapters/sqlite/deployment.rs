//! The deployment id of a local database: made once, on first use, and kept in a `settings` row,
//! so every process using this data directory labels and recognises the same containers, and a
//! process with another data directory never takes them for orphans.

use rusqlite::OptionalExtension;

use super::error::db;
use super::SqliteServerRepository;
use crate::domain::DeploymentId;
use crate::error::{Error, Result};

/// Key of the deployment id in the `settings` table.
const DEPLOYMENT_KEY: &str = "deployment_id";

impl SqliteServerRepository {
    /// The deployment id stored in this database; the first call creates a random one. Two
    /// processes opening a new file at once agree on one id (the insert is conditional, in an
    /// immediate transaction).
    ///
    /// # Errors
    /// `Backend` (backend `sqlite`), also when the stored value is not a valid id (a file edited
    /// by hand).
    pub async fn deployment_id(&self) -> Result<DeploymentId> {
        const OP: &str = "deployment_id";
        self.with_conn(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db(OP))?;
            tx.execute(
                "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                [],
            )
            .map_err(db(OP))?;
            let stored: Option<String> = tx
                .query_row(
                    "SELECT value FROM settings WHERE key = ?1",
                    [DEPLOYMENT_KEY],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db(OP))?;
            let id = match stored {
                Some(v) => DeploymentId::new(v).map_err(|e| {
                    Error::backend("sqlite", OP, None, false, format!("stored {e}"))
                })?,
                None => {
                    let id = DeploymentId::random();
                    tx.execute(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2)",
                        [DEPLOYMENT_KEY, id.as_str()],
                    )
                    .map_err(db(OP))?;
                    id
                }
            };
            tx.commit().map_err(db(OP))?;
            Ok(id)
        })
        .await
    }
}
