//! The [`ServerRepository`] implementation.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::error::db;
use super::SqliteServerRepository;
use crate::domain::{
    next_version, ApiKey, ApiKeyId, Instance, InstanceId, InstanceName, LiveSessionCounts,
    PlaygroundSession, PrincipalId, QuotaKind, Server, ServerId, SessionCaps, SessionId,
    SessionState, StopReason, Timestamp, VerificationFailure, VerificationLease, VerificationRun,
    WarmClaim,
};
use crate::error::{EntityKind, Error, Result};
use crate::ports::{
    newest_per_session, ServerRepository, SessionEnd, SessionInsert, SessionObservation,
    VerificationCompletion,
};

/// Nanoseconds since the epoch: sortable, and precise enough that expiry comparisons agree with
/// the caller's clock (millisecond rounding could expire a session early).
pub(super) fn ns(t: Timestamp) -> i64 {
    t.timestamp_nanos_opt()
        .unwrap_or_else(|| t.timestamp_millis().saturating_mul(1_000_000))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn immediate<'c>(
    conn: &'c mut rusqlite::Connection,
    op: &'static str,
) -> Result<Transaction<'c>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db(op))
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(json: &str, op: &'static str) -> Result<T> {
    serde_json::from_str(json).map_err(db(op))
}

pub(super) fn json<T: serde::Serialize>(v: &T, op: &'static str) -> Result<String> {
    serde_json::to_string(v).map_err(db(op))
}

fn load_server(tx: &rusqlite::Connection, id: &ServerId, op: &'static str) -> Result<Server> {
    let row: Option<String> = tx
        .query_row(
            "SELECT json FROM servers WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(db(op))?;
    match row {
        Some(j) => parse(&j, op),
        None => Err(Error::not_found(EntityKind::Server, id)),
    }
}

fn store_server(tx: &rusqlite::Connection, server: &Server, op: &'static str) -> Result<()> {
    tx.execute(
        "UPDATE servers SET version = ?2, json = ?3 WHERE id = ?1",
        params![
            server.id.as_str(),
            to_i64(server.version),
            json(server, op)?
        ],
    )
    .map_err(db(op))?;
    Ok(())
}

/// `(last_token, current lease)` of a server.
fn load_lease(
    tx: &rusqlite::Connection,
    id: &ServerId,
    op: &'static str,
) -> Result<(u64, Option<VerificationLease>)> {
    let row: Option<(i64, Option<String>)> = tx
        .query_row(
            "SELECT last_token, json FROM leases WHERE server_id = ?1",
            [id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db(op))?;
    match row {
        None => Ok((0, None)),
        Some((token, None)) => Ok((u64::try_from(token).unwrap_or(0), None)),
        Some((token, Some(j))) => Ok((u64::try_from(token).unwrap_or(0), Some(parse(&j, op)?))),
    }
}

/// The stored lease `lease` holds, or `LeaseLost`.
fn current_lease(
    tx: &rusqlite::Connection,
    lease: &VerificationLease,
    op: &'static str,
) -> Result<VerificationLease> {
    let cur = load_lease(tx, &lease.server_id, op)?
        .1
        .ok_or_else(|| lease.lost())?;
    cur.ensure_token(lease)?;
    Ok(cur)
}

/// Ends a run in one transaction: checks the token, applies `change` to the server, bumps its
/// version and releases the lease.
fn finish_verification(
    conn: &mut rusqlite::Connection,
    lease: &VerificationLease,
    change: impl FnOnce(&mut Server),
    op: &'static str,
) -> Result<Server> {
    let tx = immediate(conn, op)?;
    current_lease(&tx, lease, op)?;
    let mut server = load_server(&tx, &lease.server_id, op)?;
    change(&mut server);
    server.version += 1;
    store_server(&tx, &server, op)?;
    tx.execute(
        "UPDATE leases SET json = NULL, expires_at_ns = NULL WHERE server_id = ?1",
        [lease.server_id.as_str()],
    )
    .map_err(db(op))?;
    tx.commit().map_err(db(op))?;
    Ok(server)
}

pub(super) fn load_session(
    tx: &rusqlite::Connection,
    id: &SessionId,
    op: &'static str,
) -> Result<Option<PlaygroundSession>> {
    let row: Option<String> = tx
        .query_row(
            "SELECT json FROM sessions WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(db(op))?;
    row.map(|j| parse(&j, op)).transpose()
}

pub(super) fn upsert_session(
    tx: &rusqlite::Connection,
    s: &PlaygroundSession,
    op: &'static str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO sessions (id, server_id, live, expires_at_ns, created_at_ns, version, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(id) DO UPDATE SET server_id = excluded.server_id, live = excluded.live,
           expires_at_ns = excluded.expires_at_ns, created_at_ns = excluded.created_at_ns,
           version = excluded.version, json = excluded.json",
        params![
            s.id.as_str(),
            s.server_id.as_str(),
            i64::from(s.state.is_live()),
            ns(s.expires_at),
            ns(s.created_at),
            to_i64(s.version),
            json(s, op)?
        ],
    )
    .map_err(db(op))?;
    Ok(())
}

fn query_sessions(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    op: &'static str,
) -> Result<Vec<PlaygroundSession>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db(op))?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(db(op))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(parse(&row.map_err(db(op))?, op)?);
    }
    Ok(out)
}

pub(super) fn count_live(
    conn: &rusqlite::Connection,
    server: &ServerId,
    op: &'static str,
) -> Result<LiveSessionCounts> {
    let (server_n, total): (i64, i64) = conn
        .query_row(
            "SELECT COALESCE(SUM(server_id = ?1), 0), COUNT(*) FROM sessions WHERE live = 1",
            [server.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db(op))?;
    Ok(LiveSessionCounts {
        server: u32::try_from(server_n).unwrap_or(u32::MAX),
        total: u32::try_from(total).unwrap_or(u32::MAX),
    })
}

#[async_trait]
impl ServerRepository for SqliteServerRepository {
    async fn insert_server(&self, server: &Server) -> Result<Server> {
        let mut stored = server.clone();
        stored.version = 1;
        self.with_conn("insert_server", move |conn| {
            const OP: &str = "insert_server";
            let tx = immediate(conn, OP)?;
            let changed = tx
                .execute(
                    "INSERT INTO servers (id, version, json) VALUES (?1, 1, ?2)
                     ON CONFLICT(id) DO NOTHING",
                    params![stored.id.as_str(), json(&stored, OP)?],
                )
                .map_err(db(OP))?;
            if changed == 0 {
                return Err(Error::AlreadyExists {
                    kind: EntityKind::Server,
                    id: stored.id.to_string(),
                });
            }
            tx.commit().map_err(db(OP))?;
            Ok(stored)
        })
        .await
    }

    async fn get_server(&self, id: &ServerId) -> Result<Server> {
        let id = id.clone();
        self.with_conn("get_server", move |conn| {
            load_server(conn, &id, "get_server")
        })
        .await
    }

    async fn list_servers(&self, after: Option<ServerId>, limit: usize) -> Result<Vec<Server>> {
        self.with_conn("list_servers", move |conn| {
            const OP: &str = "list_servers";
            let after = after.map(String::from).unwrap_or_default();
            let mut stmt = conn
                .prepare_cached("SELECT json FROM servers WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(db(OP))?;
            let rows = stmt
                .query_map(params![after, limit_i64(limit)], |r| r.get::<_, String>(0))
                .map_err(db(OP))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(parse(&row.map_err(db(OP))?, OP)?);
            }
            Ok(out)
        })
        .await
    }

    async fn update_server(&self, server: &Server) -> Result<Server> {
        let server = server.clone();
        self.with_conn("update_server", move |conn| {
            const OP: &str = "update_server";
            let tx = immediate(conn, OP)?;
            let stored = load_server(&tx, &server.id, OP)?;
            let mut next = server;
            next.version = next_version(
                EntityKind::Server,
                next.id.as_str(),
                stored.version,
                next.version,
            )?;
            store_server(&tx, &next, OP)?;
            tx.commit().map_err(db(OP))?;
            Ok(next)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        server_id: &ServerId,
        holder: &str,
        run: Option<VerificationRun>,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<VerificationLease> {
        let server_id = server_id.clone();
        let holder = holder.to_owned();
        self.with_conn("acquire_lease", move |conn| {
            const OP: &str = "acquire_lease";
            let tx = immediate(conn, OP)?;
            load_server(&tx, &server_id, OP)?;
            let (last_token, current) = load_lease(&tx, &server_id, OP)?;
            let lease = VerificationLease::grant(
                &server_id,
                current.as_ref(),
                last_token,
                &holder,
                run,
                now,
                expires_at,
            )?;
            tx.execute(
                "INSERT INTO leases (server_id, last_token, json, expires_at_ns)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(server_id) DO UPDATE SET last_token = excluded.last_token,
                   json = excluded.json, expires_at_ns = excluded.expires_at_ns",
                params![
                    server_id.as_str(),
                    to_i64(lease.token),
                    json(&lease, OP)?,
                    ns(lease.expires_at)
                ],
            )
            .map_err(db(OP))?;
            tx.commit().map_err(db(OP))?;
            Ok(lease)
        })
        .await
    }

    async fn get_lease(&self, server_id: &ServerId) -> Result<Option<VerificationLease>> {
        let server_id = server_id.clone();
        self.with_conn("get_lease", move |conn| {
            Ok(load_lease(conn, &server_id, "get_lease")?.1)
        })
        .await
    }

    async fn list_stale_verifications(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<VerificationLease>> {
        self.with_conn("list_stale_verifications", move |conn| {
            const OP: &str = "list_stale_verifications";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT json FROM leases INDEXED BY leases_held_expiry
                     WHERE json IS NOT NULL AND expires_at_ns <= ?1
                     ORDER BY expires_at_ns, server_id LIMIT ?2",
                )
                .map_err(db(OP))?;
            let rows = stmt
                .query_map(params![ns(now), limit_i64(limit)], |r| {
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

    async fn save_progress(&self, lease: &VerificationLease) -> Result<VerificationLease> {
        let lease = lease.clone();
        self.with_conn("save_progress", move |conn| {
            const OP: &str = "save_progress";
            let tx = immediate(conn, OP)?;
            let mut cur = current_lease(&tx, &lease, OP)?;
            cur.heartbeat(&lease)?;
            tx.execute(
                "UPDATE leases SET json = ?2, expires_at_ns = ?3 WHERE server_id = ?1",
                params![cur.server_id.as_str(), json(&cur, OP)?, ns(cur.expires_at)],
            )
            .map_err(db(OP))?;
            tx.commit().map_err(db(OP))?;
            Ok(cur)
        })
        .await
    }

    async fn complete_verification(
        &self,
        lease: &VerificationLease,
        completion: &VerificationCompletion,
        now: Timestamp,
    ) -> Result<Server> {
        let lease = lease.clone();
        let completion = completion.clone();
        self.with_conn("complete_verification", move |conn| {
            finish_verification(
                conn,
                &lease,
                |s| s.record_verified(&completion, now),
                "complete_verification",
            )
        })
        .await
    }

    async fn fail_verification(
        &self,
        lease: &VerificationLease,
        failure: &VerificationFailure,
    ) -> Result<Server> {
        let lease = lease.clone();
        let failure = failure.clone();
        self.with_conn("fail_verification", move |conn| {
            finish_verification(
                conn,
                &lease,
                |s| s.record_failure(&failure),
                "fail_verification",
            )
        })
        .await
    }

    async fn create_session(
        &self,
        session: &PlaygroundSession,
        caps: SessionCaps,
    ) -> Result<SessionInsert> {
        let mut stored = session.clone();
        stored.version = 1;
        self.with_conn("create_session", move |conn| {
            const OP: &str = "create_session";
            let tx = immediate(conn, OP)?;
            if let Some(existing) = load_session(&tx, &stored.id, OP)? {
                return Ok(SessionInsert::Existing(existing));
            }
            caps.admit(&stored.server_id, count_live(&tx, &stored.server_id, OP)?)?;
            upsert_session(&tx, &stored, OP)?;
            tx.commit().map_err(db(OP))?;
            Ok(SessionInsert::Created(stored))
        })
        .await
    }

    async fn get_session(&self, id: &SessionId) -> Result<PlaygroundSession> {
        let id = id.clone();
        self.with_conn("get_session", move |conn| {
            load_session(conn, &id, "get_session")?
                .ok_or_else(|| Error::not_found(EntityKind::Session, &id))
        })
        .await
    }

    async fn get_sessions(&self, ids: &[SessionId]) -> Result<Vec<PlaygroundSession>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // One statement whatever the number of ids: the ids travel as one JSON array parameter
        // (no limit on bound variables), `IN` reads each stored row once.
        let wanted: Vec<&str> = ids.iter().map(SessionId::as_str).collect();
        let wanted = json(&wanted, "get_sessions")?;
        self.with_conn("get_sessions", move |conn| {
            query_sessions(
                conn,
                "SELECT json FROM sessions WHERE id IN (SELECT value FROM json_each(?1))",
                [wanted],
                "get_sessions",
            )
        })
        .await
    }

    async fn update_session(&self, session: &PlaygroundSession) -> Result<PlaygroundSession> {
        if session.state == SessionState::Stopped {
            return Err(Error::invalid(
                "session_state",
                "a session is ended with end_session, not update_session",
            ));
        }
        let session = session.clone();
        self.with_conn("update_session", move |conn| {
            const OP: &str = "update_session";
            let tx = immediate(conn, OP)?;
            let stored = load_session(&tx, &session.id, OP)?
                .ok_or_else(|| Error::not_found(EntityKind::Session, &session.id))?;
            if !stored.state.is_live() {
                // An ended session is final: updating it is a conflict like a stale version.
                return Err(Error::Conflict {
                    kind: EntityKind::Session,
                    id: session.id.to_string(),
                    expected: session.version,
                });
            }
            let mut next = session;
            next.version = next_version(
                EntityKind::Session,
                next.id.as_str(),
                stored.version,
                next.version,
            )?;
            upsert_session(&tx, &next, OP)?;
            tx.commit().map_err(db(OP))?;
            Ok(next)
        })
        .await
    }

    async fn record_task_observations(
        &self,
        observations: &[SessionObservation],
    ) -> Result<Vec<PlaygroundSession>> {
        if observations.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<SessionObservation> = newest_per_session(observations)
            .into_iter()
            .cloned()
            .collect();
        // One transaction for the batch: each session is read and written under the same lock.
        self.with_conn("record_task_observations", move |conn| {
            const OP: &str = "record_task_observations";
            let tx = immediate(conn, OP)?;
            let mut changed = Vec::new();
            for o in wanted {
                let Some(mut stored) = load_session(&tx, &o.session_id, OP)? else {
                    continue;
                };
                if stored.task != o.task || !stored.observe(o.observation) {
                    continue;
                }
                stored.version += 1;
                upsert_session(&tx, &stored, OP)?;
                changed.push(stored);
            }
            tx.commit().map_err(db(OP))?;
            Ok(changed)
        })
        .await
    }

    async fn end_session(
        &self,
        id: &SessionId,
        reason: StopReason,
        at: Timestamp,
    ) -> Result<SessionEnd> {
        let id = id.clone();
        self.with_conn("end_session", move |conn| {
            const OP: &str = "end_session";
            let tx = immediate(conn, OP)?;
            let stored = load_session(&tx, &id, OP)?
                .ok_or_else(|| Error::not_found(EntityKind::Session, &id))?;
            let mut ended = stored.clone();
            if !ended.end(reason, at) {
                return Ok(SessionEnd::AlreadyEnded(stored));
            }
            ended.version += 1;
            upsert_session(&tx, &ended, OP)?;
            tx.commit().map_err(db(OP))?;
            Ok(SessionEnd::Ended(ended))
        })
        .await
    }

    async fn list_sessions_for_server(
        &self,
        server_id: &ServerId,
        live_only: bool,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let server_id = server_id.clone();
        self.with_conn("list_sessions_for_server", move |conn| {
            query_sessions(
                conn,
                "SELECT json FROM sessions WHERE server_id = ?1 AND (live = 1 OR ?2 = 0)
                 ORDER BY created_at_ns DESC, id DESC LIMIT ?3",
                params![server_id.as_str(), i64::from(live_only), limit_i64(limit)],
                "list_sessions_for_server",
            )
        })
        .await
    }

    async fn list_expired_sessions(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        self.with_conn("list_expired_sessions", move |conn| {
            query_sessions(
                conn,
                "SELECT json FROM sessions INDEXED BY sessions_live_expiry
                 WHERE live = 1 AND expires_at_ns <= ?1
                 ORDER BY expires_at_ns, id LIMIT ?2",
                params![ns(now), limit_i64(limit)],
                "list_expired_sessions",
            )
        })
        .await
    }

    async fn list_live_sessions(
        &self,
        after: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        self.with_conn("list_live_sessions", move |conn| {
            let after = after.map(String::from).unwrap_or_default();
            query_sessions(
                conn,
                "SELECT json FROM sessions WHERE live = 1 AND id > ?1 ORDER BY id LIMIT ?2",
                params![after, limit_i64(limit)],
                "list_live_sessions",
            )
        })
        .await
    }

    async fn count_live_sessions(&self, server_id: &ServerId) -> Result<LiveSessionCounts> {
        let server_id = server_id.clone();
        self.with_conn("count_live_sessions", move |conn| {
            count_live(conn, &server_id, "count_live_sessions")
        })
        .await
    }

    async fn claim_warm_session(&self, claim: &WarmClaim) -> Result<Option<PlaygroundSession>> {
        self.claim_warm_session_impl(claim).await
    }

    async fn list_warm_sessions(
        &self,
        server_id: &ServerId,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        self.list_warm_sessions_impl(server_id, limit).await
    }

    async fn insert_instance(&self, instance: &Instance) -> Result<Instance> {
        self.insert_instance_row(instance).await
    }

    async fn get_instance(&self, id: &InstanceId) -> Result<Instance> {
        self.get_instance_row(id).await
    }

    async fn get_instance_by_name(&self, name: &InstanceName) -> Result<Instance> {
        self.get_instance_row_by_name(name).await
    }

    async fn list_instances(
        &self,
        after: Option<InstanceName>,
        limit: usize,
    ) -> Result<Vec<Instance>> {
        self.list_instance_rows(after, limit).await
    }

    async fn update_instance(&self, instance: &Instance) -> Result<Instance> {
        self.update_instance_row(instance).await
    }

    async fn delete_instance(&self, id: &InstanceId) -> Result<bool> {
        self.delete_instance_row(id).await
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<ApiKey> {
        self.insert_api_key_impl(key).await
    }

    async fn get_api_key(&self, id: &ApiKeyId) -> Result<ApiKey> {
        self.get_api_key_impl(id).await
    }

    async fn list_api_keys(&self, owner: Option<PrincipalId>) -> Result<Vec<ApiKey>> {
        self.list_api_keys_impl(owner).await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<ApiKey> {
        self.revoke_api_key_impl(id, at).await
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        self.touch_api_key_impl(id, at).await
    }

    async fn create_owned_session(
        &self,
        session: &PlaygroundSession,
        caps: SessionCaps,
        live_quota: u32,
    ) -> Result<SessionInsert> {
        self.create_owned_session_impl(session, caps, live_quota)
            .await
    }

    async fn count_live_sessions_of(&self, owner: &PrincipalId) -> Result<u32> {
        self.count_live_sessions_of_impl(owner).await
    }

    async fn take_quota(
        &self,
        principal: &PrincipalId,
        kind: QuotaKind,
        window_start: Timestamp,
        limit: u32,
    ) -> Result<u32> {
        self.take_quota_impl(principal, kind, window_start, limit)
            .await
    }
}
