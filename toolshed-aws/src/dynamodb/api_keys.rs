//! API keys and per-principal quotas, as items of the sessions table (no extra table to run):
//!
//! - `#apikey#<id>`: `record` (the [`ApiKey`] as JSON: only the secret's hash) and `owner`.
//!   Revocation and `last_used_at` are conditional writes on the previous record. Listing scans
//!   the table for the prefix: an operator's occasional command, never a request path.
//! - `#owner#<principal>`: the owner's live-session counter (`count`), moved in the same
//!   transaction as the session insert and end, exactly like the per-server counters.
//! - `#quota#<kind>#<window ms>#<principal>`: a windowed quota counter, incremented with a
//!   condition `count < limit`; `ttl` lets DynamoDB delete it a day after its window.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};
use toolshed_core::domain::{
    ApiKey, ApiKeyId, PlaygroundSession, PrincipalId, QuotaKind, SessionCaps, Timestamp,
};
use toolshed_core::error::{CapScope, EntityKind};
use toolshed_core::ports::SessionInsert;
use toolshed_core::{Error, Result};

use super::codec::{self, attr, count, get_s, n, s, Item};
use super::{build_err, key_session, DynamoServerRepository, MAX_RACE_RETRIES};
use crate::error::{sdk_error, unexpected};

const API_KEY_PREFIX: &str = "#apikey#";
const OWNER_ATTR: &str = "owner";

fn api_key_key(id: &ApiKeyId) -> String {
    format!("{API_KEY_PREFIX}{id}")
}

/// The live-session counter item of an owner.
pub(crate) fn owner_counter_key(owner: &PrincipalId) -> String {
    format!("#owner#{owner}")
}

fn quota_key(principal: &PrincipalId, kind: QuotaKind, window_start: Timestamp) -> String {
    format!(
        "#quota#{}#{}#{principal}",
        kind.as_str(),
        window_start.timestamp_millis()
    )
}

fn key_from_item(item: &Item) -> Result<ApiKey> {
    let raw = get_s(item, attr::RECORD)
        .ok_or_else(|| unexpected("dynamodb", "decode", None, "API key item without record"))?;
    serde_json::from_str(raw)
        .map_err(|e| unexpected("dynamodb", "decode", None, format!("API key record: {e}")))
}

impl DynamoServerRepository {
    fn sessions_table(&self) -> &str {
        &self.tables().sessions
    }

    pub(super) async fn insert_api_key_impl(&self, key: &ApiKey) -> Result<ApiKey> {
        let item = Item::from([
            (attr::SESSION_ID.to_owned(), s(api_key_key(&key.id))),
            (attr::RECORD.to_owned(), codec::to_json(key)?),
            (OWNER_ATTR.to_owned(), s(key.owner.as_str())),
        ]);
        let res = self
            .client
            .put_item()
            .table_name(self.sessions_table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", attr::SESSION_ID)
            .send()
            .await;
        match res {
            Ok(_) => Ok(key.clone()),
            Err(e) => match e.as_service_error() {
                Some(
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_),
                ) => Err(Error::AlreadyExists {
                    kind: EntityKind::ApiKey,
                    id: key.id.to_string(),
                }),
                _ => Err(sdk_error("dynamodb", "PutItem", Some(key.id.to_string()), e)),
            },
        }
    }

    async fn api_key_item(&self, id: &ApiKeyId) -> Result<(Item, ApiKey)> {
        let item = self
            .get_item(
                self.sessions_table(),
                key_session(&api_key_key(id)),
                id.as_str(),
            )
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::ApiKey, id))?;
        let key = key_from_item(&item)?;
        Ok((item, key))
    }

    pub(super) async fn get_api_key_impl(&self, id: &ApiKeyId) -> Result<ApiKey> {
        Ok(self.api_key_item(id).await?.1)
    }

    pub(super) async fn list_api_keys_impl(
        &self,
        owner: Option<PrincipalId>,
    ) -> Result<Vec<ApiKey>> {
        let mut req = self
            .client
            .scan()
            .table_name(self.sessions_table())
            .consistent_read(true)
            .expression_attribute_names("#k", attr::SESSION_ID)
            .expression_attribute_values(":p", s(API_KEY_PREFIX));
        req = match &owner {
            Some(o) => req
                .filter_expression("begins_with(#k, :p) AND #o = :o")
                .expression_attribute_names("#o", OWNER_ATTR)
                .expression_attribute_values(":o", s(o.as_str())),
            None => req.filter_expression("begins_with(#k, :p)"),
        };
        let mut out = Vec::new();
        loop {
            let page = req
                .clone()
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb", "Scan", None, e))?;
            for item in page.items() {
                out.push(key_from_item(item)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => req = req.set_exclusive_start_key(Some(k)),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Rewrites a key's record if it is still the one read (`change` returns `false` when there
    /// is nothing to write).
    async fn change_api_key(
        &self,
        id: &ApiKeyId,
        change: impl Fn(&mut ApiKey) -> bool,
    ) -> Result<ApiKey> {
        for _ in 0..MAX_RACE_RETRIES {
            let (item, mut key) = self.api_key_item(id).await?;
            if !change(&mut key) {
                return Ok(key);
            }
            let old = item
                .get(attr::RECORD)
                .cloned()
                .ok_or_else(|| unexpected("dynamodb", "decode", None, "API key without record"))?;
            let res = self
                .client
                .update_item()
                .table_name(self.sessions_table())
                .set_key(Some([key_session(&api_key_key(id))].into()))
                .update_expression("SET #r = :r")
                .condition_expression("#r = :old")
                .expression_attribute_names("#r", attr::RECORD)
                .expression_attribute_values(":r", codec::to_json(&key)?)
                .expression_attribute_values(":old", old)
                .send()
                .await;
            match res {
                Ok(_) => return Ok(key),
                Err(e) => match e.as_service_error() {
                    // Somebody else wrote the record first: read again and decide again.
                    Some(UpdateItemError::ConditionalCheckFailedException(_)) => {}
                    _ => return Err(sdk_error("dynamodb", "UpdateItem", Some(id.to_string()), e)),
                },
            }
        }
        Err(Error::Conflict {
            kind: EntityKind::ApiKey,
            id: id.to_string(),
            expected: 0,
        })
    }

    pub(super) async fn revoke_api_key_impl(&self, id: &ApiKeyId, at: Timestamp) -> Result<ApiKey> {
        self.change_api_key(id, |key| {
            if key.revoked_at.is_some() {
                return false;
            }
            key.revoked_at = Some(at);
            true
        })
        .await
    }

    pub(super) async fn touch_api_key_impl(&self, id: &ApiKeyId, at: Timestamp) -> Result<()> {
        self.change_api_key(id, |key| {
            if key.last_used_at.is_some_and(|last| last >= at) {
                return false;
            }
            key.last_used_at = Some(at);
            true
        })
        .await
        .map(|_| ())
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
        let put = Put::builder()
            .table_name(self.sessions_table())
            .set_item(Some(codec::session_item(&stored)?))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", attr::SESSION_ID)
            .build()
            .map_err(|e| build_err("TransactWriteItems", e))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.counter_update(owner_counter_key(&owner), 1, Some(live_quota))?,
            self.counter_update(
                codec::counter_key(&stored.server_id),
                1,
                Some(caps.per_server),
            )?,
            self.counter_update(codec::TOTAL_COUNTER.to_owned(), 1, Some(caps.total))?,
        ];
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
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
                    .get_item(
                        self.sessions_table(),
                        key_session(session.id.as_str()),
                        session.id.as_str(),
                    )
                    .await?
                    .ok_or_else(|| Error::Conflict {
                        kind: EntityKind::Session,
                        id: session.id.to_string(),
                        expected: 0,
                    })?;
                return Ok(SessionInsert::Existing(codec::session_from_item(&item)?));
            }
            if failed(1) {
                return Err(Error::QuotaExceeded {
                    principal: owner.to_string(),
                    quota: QuotaKind::LiveSessions,
                    limit: live_quota,
                    retry_after_secs: None,
                });
            }
            for (i, scope, limit) in [
                (2, CapScope::PerServer, caps.per_server),
                (3, CapScope::Total, caps.total),
            ] {
                if failed(i) {
                    return Err(Error::CapReached {
                        scope,
                        limit,
                        server_id: session.server_id.clone(),
                    });
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

    pub(super) async fn count_live_sessions_of_impl(&self, owner: &PrincipalId) -> Result<u32> {
        let key = owner_counter_key(owner);
        let item = self
            .get_item(self.sessions_table(), key_session(&key), owner.as_str())
            .await?;
        Ok(count(item.as_ref()))
    }

    pub(super) async fn take_quota_impl(
        &self,
        principal: &PrincipalId,
        kind: QuotaKind,
        window_start: Timestamp,
        limit: u32,
    ) -> Result<u32> {
        let key = quota_key(principal, kind, window_start);
        let res = self
            .client
            .update_item()
            .table_name(self.sessions_table())
            .set_key(Some([key_session(&key)].into()))
            .update_expression("SET #c = if_not_exists(#c, :zero) + :one, #ttl = :ttl")
            .condition_expression("(attribute_not_exists(#c) AND :zero < :limit) OR #c < :limit")
            .expression_attribute_names("#c", attr::COUNT)
            .expression_attribute_names("#ttl", attr::TTL)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":ttl", n(window_start.timestamp() + 2 * 86_400))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.attributes.as_ref().map(|a| count(Some(a))).unwrap_or(1)),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                    Err(Error::QuotaExceeded {
                        principal: principal.to_string(),
                        quota: kind,
                        limit,
                        retry_after_secs: None,
                    })
                }
                _ => Err(sdk_error("dynamodb", "UpdateItem", Some(key), e)),
            },
        }
    }
}
