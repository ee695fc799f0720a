//! Tables and indexes. Idempotent: run on every open.

use rusqlite::Connection;

use super::SqliteError;

/// Current schema version (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

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
        CREATE TABLE IF NOT EXISTS instances (
            id         TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            json       TEXT NOT NULL
        );
        ",
    )?;
    super::api_keys::migrate(conn)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}
