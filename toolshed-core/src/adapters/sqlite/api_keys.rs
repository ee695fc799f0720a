//! API keys and per-principal quotas on SQLite. Every check-and-write runs in one
//! `BEGIN IMMEDIATE` transaction, so quotas hold between processes sharing the file.

use rusqlite::{params, Connection, OptionalExtension};

use super::error::db;
use super::repo::{count_live, immediate, json, load_session, ns, parse, upsert_session};
use super::{SqliteError, SqliteServerRepository};
use crate::domain::{
    ApiKey, ApiKeyId, PlaygroundSession, PrincipalId, QuotaKind, SessionCaps, Timestamp,
};
use crate::error::{CapScope, EntityKind, Error, Result};
use crate::ports::SessionInsert;

/// Tables of API keys and quota windows, and the index that counts an owner's live sessions
/// (on the owner inside the session's JSON, so older databases need no column migration).
pub(super) fn migrate(conn: &Connection) -> Result<(), SqliteError> {
    conn.execute_batch(
        "
        CREATE TABLE IF NOT EXISTS api_keys (
            id    TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            json  TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS quota_windows (
            principal       TEXT NOT NULL,
            kind            TEXT NOT NULL,
            window_start_ns INTEGER NOT NULL,
            count           INTEGER NOT NULL,
            PRIMARY KEY (principal, kind, window_start_ns)
        );
        CREATE INDEX IF NOT EXISTS sessions_live_owner
            ON sessions(json_extract(json, '$.owner')) WHERE live = 1;
        ",
    )?;
    Ok(())
}

fn load_key(conn: &Connection, id: &ApiKeyId, op: &'static str) -> Result<ApiKey> {
    let row: Option<String> = conn
        .query_row(
            "SELECT json FROM api_keys WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(db(op))?;
    match row {
        Some(j) => parse(&j, op),
        None => Err(Error::not_found(EntityKind::ApiKey, id)),
    }
}

fn store_key(conn: &Connection, key: &ApiKey, op: &'static str) -> Result<()> {
    conn.execute(
        "UPDATE api_keys SET json = ?2 WHERE id = ?1",
        params![key.id.as_str(), json(key, op)?],
    )
    .map_err(db(op))?;
    Ok(())
}

pub(super) fn live_of(conn: &Connection, owner: &PrincipalId, op: &'static str) -> Result<u32> {
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sessions
             WHERE live = 1 AND json_extract(json, '$.owner') = ?1",
            [owner.as_str()],
            |r| r.get(0),
        )
        .map_err(db(op))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

impl SqliteServerRepository {
    pub(super) async fn insert_api_key_impl(&self, key: &ApiKey) -> Result<ApiKey> {
        let key = key.clone();
        self.with_conn("insert_api_key", move |conn| {
            const OP: &str = "insert_api_key";
            let inserted = conn
                .execute(
                    "INSERT INTO api_keys (id, owner, json) VALUES (?1, ?2, ?3)
                     ON CONFLICT(id) DO NOTHING",
                    params![key.id.as_str(), key.owner.as_str(), json(&key, OP)?],
                )
                .map_err(db(OP))?;
            if inserted == 0 {
                return Err(Error::AlreadyExists {
                    kind: EntityKind::ApiKey,
                    id: key.id.to_string(),
                });
            }
            Ok(key)
        })
        .await
    }

    pub(super) async fn get_api_key_impl(&self, id: &ApiKeyId) -> Result<ApiKey> {
        let id = id.clone();
        self.with_conn("get_api_key", move |conn| {
            load_key(conn, &id, "get_api_key")
        })
        .await
    }

    pub(super) async fn list_api_keys_impl(
        &self,
        owner: Option<PrincipalId>,
    ) -> Result<Vec<ApiKey>> {
        self.with_conn("list_api_keys", move |conn| {
            const OP: &str = "list_api_keys";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT json FROM api_keys WHERE ?1 IS NULL OR owner = ?1 ORDER BY id",
                )
                .map_err(db(OP))?;
            let rows = stmt
                .query_map([owner.as_ref().map(PrincipalId::as_str)], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(db(OP))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(parse(&row.map_err(db(OP))?, OP)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn revoke_api_key_impl(&self, id: &ApiKeyId, at: Timestamp) -> Result<ApiKey> {
        let id = id.clone();
        self.with_conn("revoke_api_key", move |conn| {
            const OP: &str = "revoke_api_key";
            let tx = immediate(conn, OP)?;
            let mut key = load_key(&tx, &id, OP)?;
            if key.revoked_at.is_none() {
                key.revoked_at = Some(at);
                store_key(&tx, &key, OP)?;
            }
            tx.commit().map_err(db(OP))?;
            Ok(key)
        })
        .await
    }

    pub(super) async fn touch_api_key_impl(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        let id = id.clone();
        self.with_conn("touch_api_key", move |conn| {
            const OP: &str = "touch_api_key";
            let tx = immediate(conn, OP)?;
            let mut key = load_key(&tx, &id, OP)?;
            if key.last_used_at.is_none_or(|last| last < at) {
                key.last_used_at = Some(at);
                store_key(&tx, &key, OP)?;
            }
            tx.commit().map_err(db(OP))?;
            Ok(())
        })
        .await
    }

    pub(super) async fn create_owned_session_impl(
        &self,
        session: &PlaygroundSession,
        caps: SessionCaps,
        live_quota: u32,
    ) -> Result<SessionInsert> {
        let owner = session
            .owner
            .clone()
            .ok_or_else(|| Error::invalid("owner", "an owned session needs an owner"))?;
        let mut stored = session.clone();
        stored.version = 1;
        self.with_conn("create_owned_session", move |conn| {
            const OP: &str = "create_owned_session";
            let tx = immediate(conn, OP)?;
            if let Some(existing) = load_session(&tx, &stored.id, OP)? {
                return Ok(SessionInsert::Existing(existing));
            }
            if live_of(&tx, &owner, OP)? >= live_quota {
                return Err(Error::QuotaExceeded {
                    principal: owner.to_string(),
                    quota: QuotaKind::LiveSessions,
                    limit: live_quota,
                    retry_after_secs: None,
                });
            }
            let counts = count_live(&tx, &stored.server_id, OP)?;
            if counts.server >= caps.per_server {
                return Err(Error::CapReached {
                    scope: CapScope::PerServer,
                    limit: caps.per_server,
                    server_id: stored.server_id.clone(),
                });
            }
            if counts.total >= caps.total {
                return Err(Error::CapReached {
                    scope: CapScope::Total,
                    limit: caps.total,
                    server_id: stored.server_id.clone(),
                });
            }
            upsert_session(&tx, &stored, OP)?;
            tx.commit().map_err(db(OP))?;
            Ok(SessionInsert::Created(stored))
        })
        .await
    }

    pub(super) async fn count_live_sessions_of_impl(&self, owner: &PrincipalId) -> Result<u32> {
        let owner = owner.clone();
        self.with_conn("count_live_sessions_of", move |conn| {
            live_of(conn, &owner, "count_live_sessions_of")
        })
        .await
    }

    pub(super) async fn take_quota_impl(
        &self,
        principal: &PrincipalId,
        kind: QuotaKind,
        window_start: Timestamp,
        limit: u32,
    ) -> Result<u32> {
        let principal = principal.clone();
        self.with_conn("take_quota", move |conn| {
            const OP: &str = "take_quota";
            let tx = immediate(conn, OP)?;
            let current: i64 = tx
                .query_row(
                    "SELECT count FROM quota_windows
                     WHERE principal = ?1 AND kind = ?2 AND window_start_ns = ?3",
                    params![principal.as_str(), kind.as_str(), ns(window_start)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db(OP))?
                .unwrap_or(0);
            if current >= i64::from(limit) {
                return Err(Error::QuotaExceeded {
                    principal: principal.to_string(),
                    quota: kind,
                    limit,
                    retry_after_secs: None,
                });
            }
            tx.execute(
                "INSERT INTO quota_windows (principal, kind, window_start_ns, count)
                 VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT(principal, kind, window_start_ns) DO UPDATE SET count = count + 1",
                params![principal.as_str(), kind.as_str(), ns(window_start)],
            )
            .map_err(db(OP))?;
            // Windows older than a day are never read again.
            tx.execute(
                "DELETE FROM quota_windows WHERE principal = ?1 AND window_start_ns < ?2",
                params![principal.as_str(), ns(window_start) - 86_400_000_000_000],
            )
            .map_err(db(OP))?;
            tx.commit().map_err(db(OP))?;
            Ok(u32::try_from(current + 1).unwrap_or(u32::MAX))
        })
        .await
    }
}
