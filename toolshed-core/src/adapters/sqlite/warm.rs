//! Warm-pool claims on SQLite: candidates are read and one is taken by a conditional
//! `UPDATE … WHERE version = … AND live = 1 RETURNING` inside an immediate transaction (the
//! database's write lock), so two claims, even from two processes, never take the same session.

use rusqlite::{params, OptionalExtension};

use super::api_keys::live_of;
use super::error::db;
use super::repo::{immediate, json, ns, parse};
use super::SqliteServerRepository;
use crate::domain::{PlaygroundSession, QuotaKind, ServerId, WarmClaim};
use crate::error::{Error, Result};

/// The live warm sessions of a server, oldest first (the server's live sessions only).
const WARM_OF_SERVER: &str = "SELECT json FROM sessions
     WHERE server_id = ?1 AND live = 1 AND json_extract(json, '$.warm') = 1
     ORDER BY created_at_ns, id LIMIT ?2";

fn warm_of(
    conn: &rusqlite::Connection,
    server_id: &ServerId,
    limit: usize,
    op: &'static str,
) -> Result<Vec<PlaygroundSession>> {
    let mut stmt = conn.prepare_cached(WARM_OF_SERVER).map_err(db(op))?;
    let rows = stmt
        .query_map(
            params![server_id.as_str(), i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| r.get::<_, String>(0),
        )
        .map_err(db(op))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(parse(&row.map_err(db(op))?, op)?);
    }
    Ok(out)
}

impl SqliteServerRepository {
    pub(super) async fn claim_warm_session_impl(
        &self,
        claim: &WarmClaim,
    ) -> Result<Option<PlaygroundSession>> {
        let claim = claim.clone();
        self.with_conn("claim_warm_session", move |conn| {
            const OP: &str = "claim_warm_session";
            let tx = immediate(conn, OP)?;
            if let Some(quota) = claim.live_quota {
                let owner = claim.owner.as_ref().ok_or_else(|| {
                    Error::invalid("owner", "a live-session quota needs an owner")
                })?;
                if live_of(&tx, owner, OP)? >= quota {
                    return Err(Error::QuotaExceeded {
                        principal: owner.to_string(),
                        quota: QuotaKind::LiveSessions,
                        limit: quota,
                        retry_after_secs: None,
                    });
                }
            }
            let mut candidates: Vec<PlaygroundSession> = warm_of(&tx, &claim.server_id, 1000, OP)?
                .into_iter()
                .filter(|s| s.is_claimable_by(&claim))
                .collect();
            candidates.sort_by(|a, b| a.ready_at.cmp(&b.ready_at).then_with(|| a.id.cmp(&b.id)));
            for mut session in candidates {
                let expected = session.version;
                session.apply_claim(&claim);
                session.version = expected + 1;
                let taken: Option<String> = tx
                    .query_row(
                        "UPDATE sessions SET json = ?1, version = ?2, expires_at_ns = ?3
                         WHERE id = ?4 AND version = ?5 AND live = 1
                           AND json_extract(json, '$.warm') = 1
                         RETURNING id",
                        params![
                            json(&session, OP)?,
                            i64::try_from(session.version).unwrap_or(i64::MAX),
                            ns(session.expires_at),
                            session.id.as_str(),
                            i64::try_from(expected).unwrap_or(i64::MAX),
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db(OP))?;
                if taken.is_some() {
                    tx.commit().map_err(db(OP))?;
                    return Ok(Some(session));
                }
            }
            Ok(None)
        })
        .await
    }

    pub(super) async fn list_warm_sessions_impl(
        &self,
        server_id: &ServerId,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let server_id = server_id.clone();
        self.with_conn("list_warm_sessions", move |conn| {
            warm_of(conn, &server_id, limit, "list_warm_sessions")
        })
        .await
    }
}
