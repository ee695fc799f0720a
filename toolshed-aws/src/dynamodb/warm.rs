//! Warm-pool claims on DynamoDB.
//!
//! The warm sessions of a server are found among its live sessions (sparse index
//! `live-by-server`: at most the per-server cap of items, no filter expression). A claim is one
//! `TransactWriteItems`: the session update conditioned on its version and on being live and
//! warm (`warm` attribute), plus, for an owned claim, the owner's live-session counter (capped by
//! the quota). A claimer that loses the race for a candidate moves on to the next one, so `K`
//! concurrent claims on `M` warm sessions take `min(K, M)` distinct sessions.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use toolshed_core::domain::{PlaygroundSession, QuotaKind, ServerId, WarmClaim};
use toolshed_core::{Error, Result};

use super::api_keys::owner_counter_key;
use super::codec::{self, attr, ms, n, s};
use super::{build_err, DynamoServerRepository};
use crate::error::sdk_error;

/// Most live sessions of a server read to find its warm ones (live sessions of a server are
/// bounded by the per-server cap, far below this).
const LIVE_OF_SERVER_READ: usize = 1_000;

impl DynamoServerRepository {
    pub(super) async fn list_warm_sessions_impl(
        &self,
        server_id: &ServerId,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        let req = self
            .sessions_query(codec::INDEX_LIVE_BY_SERVER)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", attr::SERVER_ID)
            .expression_attribute_values(":s", s(server_id.as_str()));
        let mut warm: Vec<PlaygroundSession> = self
            .query_sessions(req, LIVE_OF_SERVER_READ)
            .await?
            .into_iter()
            .filter(|x| x.warm && x.state.is_live())
            .collect();
        warm.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        warm.truncate(limit);
        Ok(warm)
    }

    pub(super) async fn claim_warm_session_impl(
        &self,
        claim: &WarmClaim,
    ) -> Result<Option<PlaygroundSession>> {
        if claim.live_quota.is_some() && claim.owner.is_none() {
            return Err(Error::invalid(
                "owner",
                "a live-session quota needs an owner",
            ));
        }
        // The index may lag: a candidate already claimed fails its condition and is skipped.
        let mut candidates: Vec<PlaygroundSession> = self
            .list_warm_sessions_impl(&claim.server_id, LIVE_OF_SERVER_READ)
            .await?
            .into_iter()
            .filter(|x| x.is_claimable_by(claim))
            .collect();
        candidates.sort_by(|a, b| a.ready_at.cmp(&b.ready_at).then_with(|| a.id.cmp(&b.id)));
        for mut session in candidates {
            let expected = session.version;
            session.apply_claim(claim);
            session.version = expected + 1;
            let update = Update::builder()
                .table_name(&self.tables.sessions)
                .key(attr::SESSION_ID, s(session.id.as_str()))
                .update_expression("SET #r = :r, #v = :nv, #x = :x REMOVE #w")
                .condition_expression("#v = :v AND attribute_exists(#l) AND attribute_exists(#w)")
                .expression_attribute_names("#r", attr::RECORD)
                .expression_attribute_names("#v", attr::VERSION)
                .expression_attribute_names("#x", attr::EXPIRES_AT)
                .expression_attribute_names("#l", attr::LIVE)
                .expression_attribute_names("#w", attr::WARM)
                .expression_attribute_values(":r", codec::to_json(&session)?)
                .expression_attribute_values(":nv", n(session.version))
                .expression_attribute_values(":v", n(expected))
                .expression_attribute_values(":x", ms(session.expires_at))
                .build()
                .map_err(|e| build_err("TransactWriteItems", e))?;
            let mut items = vec![TransactWriteItem::builder().update(update).build()];
            // The claimed session counts against its owner from now on (ending it decrements).
            if let Some(owner) = &claim.owner {
                items.push(self.counter_update(owner_counter_key(owner), 1, claim.live_quota)?);
            }
            let err = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => return Ok(Some(session)),
                Err(e) => e,
            };
            let reason = |t: &aws_sdk_dynamodb::types::error::TransactionCanceledException,
                          i: usize| {
                t.cancellation_reasons().get(i).and_then(|r| r.code())
                    == Some("ConditionalCheckFailed")
            };
            match err.as_service_error() {
                // Somebody else claimed (or ended) it first: the next candidate.
                Some(TransactWriteItemsError::TransactionCanceledException(t)) if reason(t, 0) => {}
                Some(TransactWriteItemsError::TransactionCanceledException(t)) if reason(t, 1) => {
                    return Err(Error::QuotaExceeded {
                        principal: claim
                            .owner
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        quota: QuotaKind::LiveSessions,
                        limit: claim.live_quota.unwrap_or(0),
                        retry_after_secs: None,
                    });
                }
                _ => {
                    return Err(sdk_error(
                        "dynamodb",
                        "TransactWriteItems",
                        Some(session.id.to_string()),
                        err,
                    ))
                }
            }
        }
        Ok(None)
    }
}
