//! DynamoDB [`ServerRepository`]: servers with their verification lease in one table, sessions
//! and live-session counters in another (layout in [`codec`]).
//!
//! - Every write is conditional: versions for optimistic concurrency, the lease token for
//!   fencing, caps in the same `TransactWriteItems` as the session insert / end. Failed conditions
//!   return the old item (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) so errors say why.
//! - Expiry is decided by the caller's `now` in conditions and queries (index `live-by-expiry`),
//!   never by DynamoDB TTL, which may delete days late. `ttl` only cleans up ended sessions: it is
//!   written in the transaction that ends a session (and decrements its counters) and never
//!   carried by a live one, so TTL cannot delete a session whose cap slot is still taken.
//! - No query combines `Limit` with a filter: DynamoDB counts `Limit` before filtering, so such a
//!   query reads the items it filters out one page at a time. Subsets are sparse indexes
//!   instead (`live-by-expiry`, `live-by-server`, `leases-by-expiry`, `instances-by-name`).
//! - `list_servers` scans the servers table (a catalogue of at most thousands of items) and
//!   sorts by id; every other read is a key lookup or an index query.
//! - `list_stale_verifications` queries the sparse index `leases-by-expiry` of the servers
//!   table, which holds only servers with a held lease (a handful: one per running
//!   verification), so one call costs one small query (0.5 read unit per 4 KB returned,
//!   eventually consistent) whatever the size of the catalogue. Each heartbeat of a held lease
//!   also writes that index entry (one more write unit).

mod api_keys;
pub mod codec;
mod instances;
mod warm;

pub use instances::INDEX_INSTANCES_BY_NAME;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    KeysAndAttributes, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;
use toolshed_core::domain::{
    ApiKey, ApiKeyId, Instance, InstanceId, InstanceName, LiveSessionCounts, PlaygroundSession,
    PrincipalId, QuotaKind, Server, ServerId, SessionCaps, SessionId, SessionState, StopReason,
    Timestamp, VerificationFailure, VerificationLease, VerificationRun, WarmClaim,
};
use toolshed_core::error::{CapScope, EntityKind};
use toolshed_core::ports::{
    newest_per_session, ServerRepository, SessionEnd, SessionInsert, SessionObservation,
    VerificationCompletion, SESSION_BATCH,
};
use toolshed_core::{Error, Result};

use codec::{attr, count, get_s, ms, n, s, Item};

use crate::error::{sdk_error, unexpected};

/// How often a read-modify-write retries after losing a version race.
const MAX_RACE_RETRIES: usize = 8;

/// The two table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoTables {
    /// Servers (and their leases).
    pub servers: String,
    /// Sessions and live-session counters.
    pub sessions: String,
}

/// Servers, leases and sessions in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoServerRepository {
    client: Client,
    tables: DynamoTables,
}

fn key_server(id: &ServerId) -> (String, aws_sdk_dynamodb::types::AttributeValue) {
    (attr::SERVER_ID.to_owned(), s(id.as_str()))
}

fn key_session(id: &str) -> (String, aws_sdk_dynamodb::types::AttributeValue) {
    (attr::SESSION_ID.to_owned(), s(id))
}

fn build_err(op: &'static str, e: impl std::fmt::Display) -> Error {
    unexpected("dynamodb", op, None, e.to_string())
}

impl DynamoServerRepository {
    /// A repository on `client` over `tables`.
    pub fn new(client: Client, tables: DynamoTables) -> Self {
        Self { client, tables }
    }

    /// The table names.
    pub fn tables(&self) -> &DynamoTables {
        &self.tables
    }

    async fn get_server_item(&self, id: &ServerId) -> Result<Option<Item>> {
        self.get_item(&self.tables.servers, key_server(id), id.as_str())
            .await
    }

    async fn get_session_item(&self, id: &str) -> Result<Option<Item>> {
        self.get_item(&self.tables.sessions, key_session(id), id)
            .await
    }

    /// A strongly consistent read: leases, versions and caps are decided on what it returns.
    async fn get_item(
        &self,
        table: &str,
        key: (String, aws_sdk_dynamodb::types::AttributeValue),
        id: &str,
    ) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some([key].into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("dynamodb", "GetItem", Some(id.to_owned()), e))?;
        Ok(out.item)
    }

    /// Writes a new server record and releases the lease, if `lease` is still current; retries
    /// when somebody else updated the server record in between.
    async fn finish_verification(
        &self,
        lease: &VerificationLease,
        change: impl Fn(&mut Server),
    ) -> Result<Server> {
        let lost = || Error::LeaseLost {
            server_id: lease.server_id.clone(),
            token: lease.token,
        };
        for _ in 0..MAX_RACE_RETRIES {
            let item = self
                .get_server_item(&lease.server_id)
                .await?
                .ok_or_else(lost)?;
            if codec::lease_token(&item) != Some(lease.token) {
                return Err(lost());
            }
            let mut server = codec::server_from_item(&item)?;
            let expected = server.version;
            change(&mut server);
            server.version = expected + 1;
            let res = self
                .client
                .update_item()
                .table_name(&self.tables.servers)
                .set_key(Some([key_server(&lease.server_id)].into()))
                .update_expression("SET #r = :r, #v = :nv REMOVE #h, #t, #e, #a, #run, #lh")
                .condition_expression("#t = :t AND attribute_exists(#h) AND #v = :v")
                .expression_attribute_names("#r", attr::RECORD)
                .expression_attribute_names("#v", attr::VERSION)
                .expression_attribute_names("#h", attr::LEASE_HOLDER)
                .expression_attribute_names("#t", attr::LEASE_TOKEN)
                .expression_attribute_names("#e", attr::LEASE_EXPIRES_AT)
                .expression_attribute_names("#a", attr::LEASE_ACQUIRED_AT)
                .expression_attribute_names("#run", attr::LEASE_RUN)
                .expression_attribute_names("#lh", attr::LEASE_HELD)
                .expression_attribute_values(":r", codec::to_json(&server)?)
                .expression_attribute_values(":nv", n(server.version))
                .expression_attribute_values(":v", n(expected))
                .expression_attribute_values(":t", n(lease.token))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match res {
                Ok(_) => return Ok(server),
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        let old = c.item().cloned().unwrap_or_default();
                        if codec::lease_token(&old) != Some(lease.token) {
                            return Err(lost());
                        }
                        // Only the version moved: somebody updated the server; re-read.
                    }
                    _ => {
                        return Err(sdk_error(
                            "dynamodb",
                            "UpdateItem",
                            Some(lease.server_id.to_string()),
                            e,
                        ))
                    }
                },
            }
        }
        Err(Error::Conflict {
            kind: EntityKind::Server,
            id: lease.server_id.to_string(),
            expected: 0,
        })
    }

    /// The transaction item that moves a live-session counter by `delta`, with a cap when
    /// incrementing.
    fn counter_update(
        &self,
        key: String,
        delta: i64,
        cap: Option<u32>,
    ) -> Result<TransactWriteItem> {
        let mut u = Update::builder()
            .table_name(&self.tables.sessions)
            .key(attr::SESSION_ID, s(key))
            .expression_attribute_names("#c", attr::COUNT);
        u = match cap {
            Some(cap) => u
                .update_expression("SET #c = if_not_exists(#c, :zero) + :d")
                .condition_expression("(attribute_not_exists(#c) AND :zero < :cap) OR #c < :cap")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":cap", n(cap))
                .expression_attribute_values(":d", n(delta)),
            // Decrements never fail: ending a session must not be blocked by a counter.
            None => u
                .update_expression("ADD #c :d")
                .expression_attribute_values(":d", n(delta)),
        };
        Ok(TransactWriteItem::builder()
            .update(u.build().map_err(|e| build_err("TransactWriteItems", e))?)
            .build())
    }

    /// Runs index queries page by page until `limit` items or the end. `req` must not carry a
    /// filter expression: `Limit` counts items before the filter, so a filtered page could be
    /// empty and the loop would read the whole partition one page at a time.
    async fn query_sessions(
        &self,
        mut req: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        loop {
            let page_limit = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let page = req
                .clone()
                .limit(page_limit)
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb", "Query", None, e))?;
            for item in page.items() {
                out.push(codec::session_from_item(item)?);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => req = req.set_exclusive_start_key(Some(k)),
                _ => return Ok(out),
            }
        }
    }

    /// Reads up to [`SESSION_BATCH`] session items with one `BatchGetItem` (strongly
    /// consistent). Keys DynamoDB leaves unprocessed (throttling) are asked again, a bounded
    /// number of times with a short back-off; an empty answer for a key means it does not exist.
    async fn batch_get_sessions(&self, ids: &[&str]) -> Result<Vec<Item>> {
        let mut items = Vec::with_capacity(ids.len());
        let keys: Vec<Item> = ids.iter().map(|id| [key_session(id)].into()).collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| build_err("BatchGetItem", e))?,
        );
        for attempt in 0..MAX_RACE_RETRIES {
            let Some(keys) = request.take() else {
                return Ok(items);
            };
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.tables.sessions, keys)
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb", "BatchGetItem", None, e))?;
            items.extend(
                out.responses
                    .and_then(|mut r| r.remove(&self.tables.sessions))
                    .unwrap_or_default(),
            );
            request = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.tables.sessions))
                .filter(|k| !k.keys().is_empty());
        }
        if request.is_none() {
            return Ok(items);
        }
        Err(Error::backend(
            "dynamodb",
            "BatchGetItem",
            None,
            true,
            crate::AwsError::unexpected("BatchGetItem", "keys left unprocessed (throttled)"),
        ))
    }

    fn sessions_query(
        &self,
        index: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.tables.sessions)
            .index_name(index)
    }
}

#[async_trait]
impl ServerRepository for DynamoServerRepository {
    async fn insert_server(&self, server: &Server) -> Result<Server> {
        let mut stored = server.clone();
        stored.version = 1;
        let res = self
            .client
            .put_item()
            .table_name(&self.tables.servers)
            .item(attr::SERVER_ID, s(stored.id.as_str()))
            .item(attr::RECORD, codec::to_json(&stored)?)
            .item(attr::VERSION, n(1))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", attr::SERVER_ID)
            .send()
            .await;
        match res {
            Ok(_) => Ok(stored),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(Error::AlreadyExists {
                    kind: EntityKind::Server,
                    id: server.id.to_string(),
                })
            }
            Err(e) => Err(sdk_error(
                "dynamodb",
                "PutItem",
                Some(server.id.to_string()),
                e,
            )),
        }
    }

    async fn get_server(&self, id: &ServerId) -> Result<Server> {
        match self.get_server_item(id).await? {
            Some(item) => codec::server_from_item(&item),
            None => Err(Error::not_found(EntityKind::Server, id)),
        }
    }

    async fn list_servers(&self, after: Option<ServerId>, limit: usize) -> Result<Vec<Server>> {
        let mut req = self
            .client
            .scan()
            .table_name(&self.tables.servers)
            .consistent_read(true)
            .projection_expression("#k, #r, #v")
            .expression_attribute_names("#k", attr::SERVER_ID)
            .expression_attribute_names("#r", attr::RECORD)
            .expression_attribute_names("#v", attr::VERSION);
        if let Some(after) = &after {
            req = req
                .filter_expression("#k > :after")
                .expression_attribute_values(":after", s(after.as_str()));
        }
        let mut servers = Vec::new();
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("dynamodb", "Scan", None, e))?;
            for item in page.items() {
                servers.push(codec::server_from_item(item)?);
            }
        }
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        servers.truncate(limit);
        Ok(servers)
    }

    async fn update_server(&self, server: &Server) -> Result<Server> {
        let mut stored = server.clone();
        stored.version = server.version + 1;
        let res = self
            .client
            .update_item()
            .table_name(&self.tables.servers)
            .set_key(Some([key_server(&server.id)].into()))
            .update_expression("SET #r = :r, #v = :nv")
            .condition_expression("attribute_exists(#k) AND #v = :v")
            .expression_attribute_names("#k", attr::SERVER_ID)
            .expression_attribute_names("#r", attr::RECORD)
            .expression_attribute_names("#v", attr::VERSION)
            .expression_attribute_values(":r", codec::to_json(&stored)?)
            .expression_attribute_values(":nv", n(stored.version))
            .expression_attribute_values(":v", n(server.version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        versioned_update(
            res,
            stored,
            EntityKind::Server,
            server.id.as_str(),
            server.version,
        )
    }

    async fn acquire_lease(
        &self,
        server_id: &ServerId,
        holder: &str,
        run: Option<VerificationRun>,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<VerificationLease> {
        let resume = run.is_none();
        let mut set = "SET #h = :h, #e = :exp, #a = :now, #lh = :held, #t = if_not_exists(#q, :zero) + :one, #q = if_not_exists(#q, :zero) + :one".to_owned();
        let mut cond =
            "attribute_exists(#k) AND (attribute_not_exists(#h) OR #e <= :now)".to_owned();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.servers)
            .set_key(Some([key_server(server_id)].into()))
            .expression_attribute_names("#k", attr::SERVER_ID)
            .expression_attribute_names("#h", attr::LEASE_HOLDER)
            .expression_attribute_names("#e", attr::LEASE_EXPIRES_AT)
            .expression_attribute_names("#a", attr::LEASE_ACQUIRED_AT)
            .expression_attribute_names("#t", attr::LEASE_TOKEN)
            .expression_attribute_names("#q", attr::LEASE_SEQ)
            .expression_attribute_names("#run", attr::LEASE_RUN)
            .expression_attribute_names("#lh", attr::LEASE_HELD)
            .expression_attribute_values(":held", s(codec::HELD))
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":exp", ms(expires_at))
            .expression_attribute_values(":now", ms(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        match &run {
            Some(run) => {
                set.push_str(", #run = :run");
                req = req.expression_attribute_values(":run", codec::to_json(run)?);
            }
            None => cond.push_str(" AND attribute_exists(#run)"),
        }
        let res = req
            .update_expression(set)
            .condition_expression(cond)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => {
                codec::lease_from_item(&out.attributes.unwrap_or_default())?.ok_or_else(|| {
                    unexpected(
                        "dynamodb",
                        "UpdateItem",
                        Some(server_id.to_string()),
                        "lease not stored",
                    )
                })
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    let Some(old) = c.item() else {
                        return Err(Error::not_found(EntityKind::Server, server_id));
                    };
                    if let Some(lease) = live_lease(old, now) {
                        return Err(Error::VerificationInProgress {
                            server_id: server_id.clone(),
                            holder: lease.0,
                            expires_at: lease.1,
                        });
                    }
                    if resume {
                        return Err(Error::not_found(EntityKind::Lease, server_id));
                    }
                    Err(unexpected(
                        "dynamodb",
                        "UpdateItem",
                        Some(server_id.to_string()),
                        "lease condition failed",
                    ))
                }
                _ => Err(sdk_error(
                    "dynamodb",
                    "UpdateItem",
                    Some(server_id.to_string()),
                    e,
                )),
            },
        }
    }

    async fn get_lease(&self, server_id: &ServerId) -> Result<Option<VerificationLease>> {
        match self.get_server_item(server_id).await? {
            Some(item) => codec::lease_from_item(&item),
            None => Err(Error::not_found(EntityKind::Server, server_id)),
        }
    }

    async fn list_stale_verifications(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<VerificationLease>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut req = self
            .client
            .query()
            .table_name(&self.tables.servers)
            .index_name(codec::INDEX_LEASES_BY_EXPIRY)
            .key_condition_expression("#lh = :held AND #e <= :now")
            .expression_attribute_names("#lh", attr::LEASE_HELD)
            .expression_attribute_names("#e", attr::LEASE_EXPIRES_AT)
            .expression_attribute_values(":held", s(codec::HELD))
            .expression_attribute_values(":now", ms(now))
            .scan_index_forward(true);
        loop {
            let page_limit = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let page = req
                .clone()
                .limit(page_limit)
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb", "Query", None, e))?;
            for item in page.items() {
                if let Some(lease) = codec::lease_from_item(item)? {
                    out.push(lease);
                }
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => req = req.set_exclusive_start_key(Some(k)),
                _ => return Ok(out),
            }
        }
    }

    async fn save_progress(&self, lease: &VerificationLease) -> Result<VerificationLease> {
        let res = self
            .client
            .update_item()
            .table_name(&self.tables.servers)
            .set_key(Some([key_server(&lease.server_id)].into()))
            .update_expression("SET #run = :run, #e = :exp")
            .condition_expression("attribute_exists(#h) AND #t = :t")
            .expression_attribute_names("#run", attr::LEASE_RUN)
            .expression_attribute_names("#e", attr::LEASE_EXPIRES_AT)
            .expression_attribute_names("#h", attr::LEASE_HOLDER)
            .expression_attribute_names("#t", attr::LEASE_TOKEN)
            .expression_attribute_values(":run", codec::to_json(&lease.run)?)
            .expression_attribute_values(":exp", ms(lease.expires_at))
            .expression_attribute_values(":t", n(lease.token))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                codec::lease_from_item(&out.attributes.unwrap_or_default())?.ok_or_else(|| {
                    Error::LeaseLost {
                        server_id: lease.server_id.clone(),
                        token: lease.token,
                    }
                })
            }
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(Error::LeaseLost {
                    server_id: lease.server_id.clone(),
                    token: lease.token,
                })
            }
            Err(e) => Err(sdk_error(
                "dynamodb",
                "UpdateItem",
                Some(lease.server_id.to_string()),
                e,
            )),
        }
    }

    async fn complete_verification(
        &self,
        lease: &VerificationLease,
        completion: &VerificationCompletion,
        now: Timestamp,
    ) -> Result<Server> {
        self.finish_verification(lease, |server| server.record_verified(completion, now))
            .await
    }

    async fn fail_verification(
        &self,
        lease: &VerificationLease,
        failure: &VerificationFailure,
    ) -> Result<Server> {
        self.finish_verification(lease, |server| server.record_failure(failure))
            .await
    }

    async fn create_session(
        &self,
        session: &PlaygroundSession,
        caps: SessionCaps,
    ) -> Result<SessionInsert> {
        let mut stored = session.clone();
        stored.version = 1;
        let put = Put::builder()
            .table_name(&self.tables.sessions)
            .set_item(Some(codec::session_item(&stored)?))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", attr::SESSION_ID)
            .build()
            .map_err(|e| build_err("TransactWriteItems", e))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if stored.state.is_live() {
            items.push(self.counter_update(
                codec::counter_key(&stored.server_id),
                1,
                Some(caps.per_server),
            )?);
            items.push(self.counter_update(
                codec::TOTAL_COUNTER.to_owned(),
                1,
                Some(caps.total),
            )?);
            // An owned session counts against its owner too (no quota on this path).
            if let Some(owner) = &stored.owner {
                items.push(self.counter_update(api_keys::owner_counter_key(owner), 1, None)?);
            }
        }
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match res {
            Ok(_) => return Ok(SessionInsert::Created(stored)),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(t)) =
            err.as_service_error()
        {
            let failed = |i: usize| {
                t.cancellation_reasons().get(i).and_then(|r| r.code())
                    == Some("ConditionalCheckFailed")
            };
            if failed(0) {
                let item = self
                    .get_session_item(session.id.as_str())
                    .await?
                    .ok_or_else(|| Error::Conflict {
                        kind: EntityKind::Session,
                        id: session.id.to_string(),
                        expected: 0,
                    })?;
                return Ok(SessionInsert::Existing(codec::session_from_item(&item)?));
            }
            for (i, scope) in [(1, CapScope::PerServer), (2, CapScope::Total)] {
                if failed(i) {
                    return Err(caps.reached(scope, &session.server_id));
                }
            }
        }
        Err(sdk_error(
            "dynamodb",
            "TransactWriteItems",
            Some(session.id.to_string()),
            err,
        ))
    }

    async fn get_session(&self, id: &SessionId) -> Result<PlaygroundSession> {
        match self.get_session_item(id.as_str()).await? {
            Some(item) => codec::session_from_item(&item),
            None => Err(Error::not_found(EntityKind::Session, id)),
        }
    }

    async fn get_sessions(&self, ids: &[SessionId]) -> Result<Vec<PlaygroundSession>> {
        // BatchGetItem refuses a request with a repeated key.
        let wanted: std::collections::BTreeSet<&str> = ids.iter().map(SessionId::as_str).collect();
        let wanted: Vec<&str> = wanted.into_iter().collect();
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(SESSION_BATCH) {
            for item in self.batch_get_sessions(chunk).await? {
                out.push(codec::session_from_item(&item)?);
            }
        }
        Ok(out)
    }

    async fn update_session(&self, session: &PlaygroundSession) -> Result<PlaygroundSession> {
        if session.state == SessionState::Stopped {
            return Err(Error::invalid("state", "use end_session to stop a session"));
        }
        let mut stored = session.clone();
        stored.version = session.version + 1;
        let res = self
            .client
            .update_item()
            .table_name(&self.tables.sessions)
            .set_key(Some([key_session(session.id.as_str())].into()))
            // The session is live (the condition): it must not carry `ttl`, and it belongs in
            // `live-by-server`. Items written before either rule held are put right here.
            .update_expression("SET #r = :r, #v = :nv, #x = :x, #lc = :lc REMOVE #ttl")
            .condition_expression("attribute_exists(#k) AND #v = :v AND attribute_exists(#l)")
            .expression_attribute_names("#k", attr::SESSION_ID)
            .expression_attribute_names("#r", attr::RECORD)
            .expression_attribute_names("#v", attr::VERSION)
            .expression_attribute_names("#x", attr::EXPIRES_AT)
            .expression_attribute_names("#lc", attr::LIVE_CREATED_AT)
            .expression_attribute_names("#ttl", attr::TTL)
            .expression_attribute_names("#l", attr::LIVE)
            .expression_attribute_values(":r", codec::to_json(&stored)?)
            .expression_attribute_values(":nv", n(stored.version))
            .expression_attribute_values(":v", n(session.version))
            .expression_attribute_values(":x", ms(stored.expires_at))
            .expression_attribute_values(":lc", ms(stored.created_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        versioned_update(
            res,
            stored,
            EntityKind::Session,
            session.id.as_str(),
            session.version,
        )
    }

    async fn record_task_observations(
        &self,
        observations: &[SessionObservation],
    ) -> Result<Vec<PlaygroundSession>> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let wanted = newest_per_session(observations);
        let ids: Vec<SessionId> = wanted.iter().map(|o| o.session_id.clone()).collect();
        // One BatchGetItem per 100 sessions, then a conditional write (version, live) for each
        // session that takes its observation.
        let stored: std::collections::HashMap<SessionId, PlaygroundSession> = self
            .get_sessions(&ids)
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let pairs: Vec<(SessionObservation, PlaygroundSession)> = wanted
            .into_iter()
            .filter_map(|o| Some((o.clone(), stored.get(&o.session_id)?.clone())))
            .collect();
        let writes = pairs
            .into_iter()
            .map(|(o, current)| async move { self.observe_session(&o, current).await });
        let changed: Vec<Option<PlaygroundSession>> = stream::iter(writes)
            .buffer_unordered(OBSERVATION_WRITES_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(changed.into_iter().flatten().collect())
    }

    async fn end_session(
        &self,
        id: &SessionId,
        reason: StopReason,
        at: Timestamp,
    ) -> Result<SessionEnd> {
        for _ in 0..MAX_RACE_RETRIES {
            let item = self
                .get_session_item(id.as_str())
                .await?
                .ok_or_else(|| Error::not_found(EntityKind::Session, id))?;
            let current = codec::session_from_item(&item)?;
            if get_s(&item, attr::LIVE).is_none() {
                return Ok(SessionEnd::AlreadyEnded(current));
            }
            let mut ended = current.clone();
            if !ended.end(reason, at) {
                return Ok(SessionEnd::AlreadyEnded(current));
            }
            ended.version = current.version + 1;
            let update = Update::builder()
                .table_name(&self.tables.sessions)
                .key(attr::SESSION_ID, s(id.as_str()))
                // `ttl` only now, in the transaction that also frees the cap slots: TTL may
                // delete the item from here on without losing a counter decrement.
                .update_expression("SET #r = :r, #v = :nv, #ttl = :ttl REMOVE #l, #lc")
                .condition_expression("#v = :v AND attribute_exists(#l)")
                .expression_attribute_names("#r", attr::RECORD)
                .expression_attribute_names("#v", attr::VERSION)
                .expression_attribute_names("#ttl", attr::TTL)
                .expression_attribute_names("#l", attr::LIVE)
                .expression_attribute_names("#lc", attr::LIVE_CREATED_AT)
                .expression_attribute_values(":r", codec::to_json(&ended)?)
                .expression_attribute_values(":nv", n(ended.version))
                .expression_attribute_values(":v", n(current.version))
                .expression_attribute_values(":ttl", codec::ended_ttl(&ended))
                .build()
                .map_err(|e| build_err("TransactWriteItems", e))?;
            let mut items = vec![
                TransactWriteItem::builder().update(update).build(),
                self.counter_update(codec::counter_key(&current.server_id), -1, None)?,
                self.counter_update(codec::TOTAL_COUNTER.to_owned(), -1, None)?,
            ];
            if let Some(owner) = &current.owner {
                items.push(self.counter_update(api_keys::owner_counter_key(owner), -1, None)?);
            }
            let res = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            match res {
                Ok(_) => return Ok(SessionEnd::Ended(ended)),
                Err(e) => match e.as_service_error() {
                    // Lost a race with another update or end: re-read and decide again.
                    Some(TransactWriteItemsError::TransactionCanceledException(t))
                        if t.cancellation_reasons().first().and_then(|r| r.code())
                            == Some("ConditionalCheckFailed") => {}
                    _ => {
                        return Err(sdk_error(
                            "dynamodb",
                            "TransactWriteItems",
                            Some(id.to_string()),
                            e,
                        ))
                    }
                },
            }
        }
        Err(Error::Conflict {
            kind: EntityKind::Session,
            id: id.to_string(),
            expected: 0,
        })
    }

    async fn list_sessions_for_server(
        &self,
        server_id: &ServerId,
        live_only: bool,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        // Live sessions come from their own sparse index: a filter on `by-server` would read
        // the server's whole history of ended sessions to find the few live ones.
        let index = if live_only {
            codec::INDEX_LIVE_BY_SERVER
        } else {
            codec::INDEX_BY_SERVER
        };
        let req = self
            .sessions_query(index)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", attr::SERVER_ID)
            .expression_attribute_values(":s", s(server_id.as_str()))
            .scan_index_forward(false);
        self.query_sessions(req, limit).await
    }

    async fn list_expired_sessions(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let req = self
            .sessions_query(codec::INDEX_LIVE_BY_EXPIRY)
            .key_condition_expression("#l = :live AND #x <= :now")
            .expression_attribute_names("#l", attr::LIVE)
            .expression_attribute_names("#x", attr::EXPIRES_AT)
            .expression_attribute_values(":live", s(codec::LIVE))
            .expression_attribute_values(":now", ms(now))
            .scan_index_forward(true);
        self.query_sessions(req, limit).await
    }

    async fn list_live_sessions(
        &self,
        after: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let mut req = self
            .sessions_query(codec::INDEX_LIVE_BY_EXPIRY)
            .key_condition_expression("#l = :live")
            .expression_attribute_names("#l", attr::LIVE)
            .expression_attribute_values(":live", s(codec::LIVE))
            .scan_index_forward(true);
        if let Some(after) = after {
            // The cursor is a session id; the index position needs its expiry too.
            let item = self
                .get_session_item(after.as_str())
                .await?
                .ok_or_else(|| Error::not_found(EntityKind::Session, &after))?;
            let expires = item.get(attr::EXPIRES_AT).cloned().ok_or_else(|| {
                unexpected(
                    "dynamodb",
                    "GetItem",
                    Some(after.to_string()),
                    "no expires_at",
                )
            })?;
            req = req.set_exclusive_start_key(Some(
                [
                    key_session(after.as_str()),
                    (attr::LIVE.to_owned(), s(codec::LIVE)),
                    (attr::EXPIRES_AT.to_owned(), expires),
                ]
                .into(),
            ));
        }
        self.query_sessions(req, limit).await
    }

    async fn count_live_sessions(&self, server_id: &ServerId) -> Result<LiveSessionCounts> {
        let server_key = codec::counter_key(server_id);
        let keys = KeysAndAttributes::builder()
            .keys([key_session(&server_key)].into())
            .keys([key_session(codec::TOTAL_COUNTER)].into())
            .consistent_read(true)
            .build()
            .map_err(|e| build_err("BatchGetItem", e))?;
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.tables.sessions, keys)
            .send()
            .await
            .map_err(|e| sdk_error("dynamodb", "BatchGetItem", Some(server_id.to_string()), e))?;
        if out.unprocessed_keys.as_ref().is_some_and(|u| !u.is_empty()) {
            // Throttled part-way: counts from half a batch would be wrong; let the caller retry.
            return Err(Error::backend(
                "dynamodb",
                "BatchGetItem",
                Some(server_id.to_string()),
                true,
                crate::AwsError::unexpected("BatchGetItem", "unprocessed keys (throttled)"),
            ));
        }
        let items = out
            .responses
            .and_then(|mut r| r.remove(&self.tables.sessions))
            .unwrap_or_default();
        let find = |key: &str| {
            items
                .iter()
                .find(|i| get_s(i, attr::SESSION_ID) == Some(key))
        };
        Ok(LiveSessionCounts {
            server: count(find(&server_key)),
            total: count(find(codec::TOTAL_COUNTER)),
        })
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
        self.insert_instance_item(instance).await
    }

    async fn get_instance(&self, id: &InstanceId) -> Result<Instance> {
        self.get_instance_record(id).await
    }

    async fn get_instance_by_name(&self, name: &InstanceName) -> Result<Instance> {
        self.get_instance_record_by_name(name).await
    }

    async fn list_instances(
        &self,
        after: Option<InstanceName>,
        limit: usize,
    ) -> Result<Vec<Instance>> {
        self.list_instance_records(after, limit).await
    }

    async fn update_instance(&self, instance: &Instance) -> Result<Instance> {
        self.update_instance_record(instance).await
    }

    async fn delete_instance(&self, id: &InstanceId) -> Result<bool> {
        self.delete_instance_record(id).await
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

/// Holder and expiry of a lease still live at `now`.
fn live_lease(item: &Item, now: Timestamp) -> Option<(String, Timestamp)> {
    let holder = get_s(item, attr::LEASE_HOLDER)?;
    let exp = codec::get_n(item, attr::LEASE_EXPIRES_AT)
        .and_then(chrono::DateTime::from_timestamp_millis)?;
    (exp > now).then(|| (holder.to_owned(), exp))
}

/// Maps the result of a versioned `UpdateItem` (condition "exists and `version = :v`", with
/// `ReturnValuesOnConditionCheckFailure = ALL_OLD`): a failed condition without an old item means
/// the record is gone (`NotFound`), with one it was changed concurrently (`Conflict`).
/// Conditional writes of [`ServerRepository::record_task_observations`] in flight at once.
const OBSERVATION_WRITES_IN_FLIGHT: usize = 16;

/// Version conflicts an observation write re-reads after before giving up (a busy session).
const OBSERVATION_RETRIES: usize = 5;

impl DynamoServerRepository {
    /// Stores one observation on `current` (the session as read) with the version check,
    /// re-reading after a conflict; `None` when the session does not take it.
    async fn observe_session(
        &self,
        o: &SessionObservation,
        mut current: PlaygroundSession,
    ) -> Result<Option<PlaygroundSession>> {
        for _ in 0..=OBSERVATION_RETRIES {
            let mut next = current.clone();
            if next.task != o.task || !next.observe(o.observation.clone()) {
                return Ok(None);
            }
            match self.update_session(&next).await {
                Ok(s) => return Ok(Some(s)),
                Err(Error::Conflict { .. }) => {
                    current = match self.get_session_item(o.session_id.as_str()).await? {
                        Some(item) => codec::session_from_item(&item)?,
                        None => return Ok(None),
                    };
                }
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            kind: EntityKind::Session,
            id: o.session_id.to_string(),
            expected: current.version,
        })
    }
}

fn versioned_update<T, R>(
    res: std::result::Result<
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
        aws_smithy_runtime_api::client::result::SdkError<UpdateItemError, R>,
    >,
    stored: T,
    kind: EntityKind,
    id: &str,
    expected: u64,
) -> Result<T>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match res {
        Ok(_) => Ok(stored),
        Err(e) => match e.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(c)) => Err(match c.item() {
                None => Error::not_found(kind, id),
                Some(_) => Error::Conflict {
                    kind,
                    id: id.to_owned(),
                    expected,
                },
            }),
            _ => Err(sdk_error("dynamodb", "UpdateItem", Some(id.to_owned()), e)),
        },
    }
}
