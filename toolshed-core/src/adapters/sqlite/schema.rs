//! Tables and indexes. Idempotent: run on every open.

use rusqlite::Connection;

use super::SqliteError;

/// Current schema version (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

pub(super) fn migrate(conn: &Connection) -> Result<(), SqliteError> {
    // WAL lets readers proceed during a write; busy_timeout makes concurrent CLI processes wait for
    // the write lock instead of failing at once.
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(
        "
        CREATE TABLE IF NOT EXISTS servers (
            id      TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            json    TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS leases (
            server_id  TEXT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
            last_token INTEGER NOT NULL,
            json       TEXT
        );
        CREATE TABLE IF NOT EXISTS sessions (
            id            TEXT PRIMARY KEY,
            server_id     TEXT NOT NULL,
            live          INTEGER NOT NULL,
            expires_at_ns INTEGER NOT NULL,
            created_at_ns INTEGER NOT NULL,
            version       INTEGER NOT NULL,
            json          TEXT NOT NULL
        );
        -- Sparse expiry index of live sessions: the sweep never scans ended ones.
        CREATE INDEX IF NOT EXISTS sessions_live_expiry
            ON sessions(expires_at_ns, id) WHERE live = 1;
        CREATE INDEX IF NOT EXISTS sessions_server_created
            ON sessions(server_id, created_at_ns DESC, id DESC);
        ",
    )?;
    add_lease_expiry(conn)?;
    // Version 2: instances in typed columns (replacing the JSON table of version 1).
    super::instances::migrate(conn)?;
    super::api_keys::migrate(conn)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

/// The expiry of held leases as a column with a partial index, so that finding runs whose
/// holder stopped heartbeating reads only held leases. Added to databases created before it
/// (the column is filled from the stored leases).
fn add_lease_expiry(conn: &Connection) -> Result<(), SqliteError> {
    let has_column = conn
        .prepare("SELECT 1 FROM pragma_table_info('leases') WHERE name = 'expires_at_ns'")?
        .exists([])?;
    if !has_column {
        conn.execute_batch("ALTER TABLE leases ADD COLUMN expires_at_ns INTEGER")?;
        let held: Vec<(String, String)> = conn
            .prepare("SELECT server_id, json FROM leases WHERE json IS NOT NULL")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (server_id, json) in held {
            // A lease that cannot be read stays out of the index; reading it reports the error.
            if let Ok(lease) = serde_json::from_str::<crate::domain::VerificationLease>(&json) {
                conn.execute(
                    "UPDATE leases SET expires_at_ns = ?2 WHERE server_id = ?1",
                    rusqlite::params![server_id, super::repo::ns(lease.expires_at)],
                )?;
            }
        }
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS leases_held_expiry
            ON leases(expires_at_ns, server_id) WHERE json IS NOT NULL;",
    )?;
    Ok(())
}
