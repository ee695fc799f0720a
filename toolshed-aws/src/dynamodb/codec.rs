//! Item layout of the two DynamoDB tables, and conversions to and from the core records.
//!
//! Servers table (hash key `server_id`): `record` (the [`Server`] as JSON), `version` (N) and the
//! lease as attributes — `lease_holder`, `lease_token` (N), `lease_expires_at` (N, epoch ms),
//! `lease_acquired_at` (N, epoch ms), `lease_run` (JSON), `lease_held` (`"1"`, present only
//! while a lease is held: the sparse key of index `leases-by-expiry`) and `lease_seq` (N, the
//! last token issued; never decreases and survives releases, so tokens are never reused).
//!
//! Sessions table (hash key `session_id`): `server_id`, `created_at` / `expires_at` (N, epoch
//! ms), `record` (JSON), `version` (N), and attributes that depend on whether the session is live:
//!
//! - while live: `live` (`"1"`, the sparse key of index `live-by-expiry`) and `live_created_at`
//!   (N, a copy of `created_at`, the sparse range key of index `live-by-server`);
//! - once ended: `ttl` (N, epoch seconds = the later of expiry and end + 7 days), for DynamoDB
//!   TTL clean-up only. A live session never carries it: TTL deletes items without touching the
//!   live counters, so deleting a live session would hold a cap slot for good. `ttl` is set in
//!   the same transaction that ends the session and decrements the counters.
//!
//! Cap counters are items `#live#<serverId>` and `#live#total` with a numeric `count`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use toolshed_core::domain::{PlaygroundSession, Server, ServerId, Timestamp, VerificationLease};
use toolshed_core::Result;

use crate::error::unexpected;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Attribute names.
pub(crate) mod attr {
    pub const SERVER_ID: &str = "server_id";
    pub const SESSION_ID: &str = "session_id";
    pub const RECORD: &str = "record";
    pub const VERSION: &str = "version";
    pub const LEASE_HOLDER: &str = "lease_holder";
    pub const LEASE_TOKEN: &str = "lease_token";
    pub const LEASE_EXPIRES_AT: &str = "lease_expires_at";
    pub const LEASE_ACQUIRED_AT: &str = "lease_acquired_at";
    pub const LEASE_RUN: &str = "lease_run";
    pub const LEASE_SEQ: &str = "lease_seq";
    pub const LEASE_HELD: &str = "lease_held";
    pub const CREATED_AT: &str = "created_at";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const LIVE: &str = "live";
    pub const LIVE_CREATED_AT: &str = "live_created_at";
    pub const TTL: &str = "ttl";
    pub const COUNT: &str = "count";
    /// Present (`"1"`) on unclaimed warm-pool sessions; the claim's condition and removal.
    pub const WARM: &str = "warm";
}

/// GSI of sessions by server, newest first: hash `server_id`, range `created_at`.
pub const INDEX_BY_SERVER: &str = "by-server";
/// Sparse GSI of live sessions by expiry: hash `live`, range `expires_at`.
pub const INDEX_LIVE_BY_EXPIRY: &str = "live-by-expiry";
/// Sparse GSI of live sessions by server, newest first: hash `server_id`, range
/// `live_created_at`. Only live sessions carry the range key, so "the live sessions of a server"
/// is a key condition reading those few items, never a filter over the server's whole history
/// (DynamoDB applies `Limit` before a filter, so a filtered query pages through every ended
/// session).
pub const INDEX_LIVE_BY_SERVER: &str = "live-by-server";
/// Sparse GSI of held verification leases by expiry on the servers table: hash `lease_held`,
/// range `lease_expires_at`; only servers with a held lease are in it, so finding runs whose
/// holder stopped heartbeating reads those few items, never the whole catalogue.
pub const INDEX_LEASES_BY_EXPIRY: &str = "leases-by-expiry";
/// The value of `lease_held` while a lease is held.
pub(crate) const HELD: &str = "1";
/// The value of `live` on live sessions.
pub(crate) const LIVE: &str = "1";
/// Extra time DynamoDB TTL waits before deleting an ended session item.
pub const TTL_GRACE_SECS: i64 = 7 * 24 * 60 * 60;

/// The counter item id of a server's live sessions.
pub(crate) fn counter_key(server: &ServerId) -> String {
    format!("#live#{server}")
}

/// The counter item id of all live sessions.
pub(crate) const TOTAL_COUNTER: &str = "#live#total";

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn ms(t: Timestamp) -> AttributeValue {
    n(t.timestamp_millis())
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn get_ms(item: &Item, name: &str) -> Option<Timestamp> {
    get_n(item, name).and_then(chrono::DateTime::from_timestamp_millis)
}

fn bad(what: &str) -> toolshed_core::Error {
    unexpected("dynamodb", "decode", None, what.to_owned())
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<AttributeValue> {
    serde_json::to_string(v)
        .map(AttributeValue::S)
        .map_err(|e| unexpected("dynamodb", "encode", None, e.to_string()))
}

fn from_json<T: DeserializeOwned>(item: &Item, name: &str) -> Result<T> {
    let raw = get_s(item, name).ok_or_else(|| bad(&format!("item without {name}")))?;
    serde_json::from_str(raw).map_err(|e| bad(&format!("{name}: {e}")))
}

/// The version attribute (0 when absent).
pub(crate) fn version(item: &Item) -> u64 {
    get_n(item, attr::VERSION)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
}

/// Decodes a server item; `version` comes from its attribute, the source of truth.
pub(crate) fn server_from_item(item: &Item) -> Result<Server> {
    let mut server: Server = from_json(item, attr::RECORD)?;
    server.version = version(item);
    Ok(server)
}

/// Decodes the lease attributes of a server item; `None` when released.
pub(crate) fn lease_from_item(item: &Item) -> Result<Option<VerificationLease>> {
    let Some(holder) = get_s(item, attr::LEASE_HOLDER) else {
        return Ok(None);
    };
    let server_id =
        ServerId::new(get_s(item, attr::SERVER_ID).ok_or_else(|| bad("no server_id"))?)?;
    Ok(Some(VerificationLease {
        server_id,
        holder: holder.to_owned(),
        token: get_n(item, attr::LEASE_TOKEN)
            .and_then(|t| u64::try_from(t).ok())
            .ok_or_else(|| bad("lease without token"))?,
        acquired_at: get_ms(item, attr::LEASE_ACQUIRED_AT)
            .ok_or_else(|| bad("lease without acquired_at"))?,
        expires_at: get_ms(item, attr::LEASE_EXPIRES_AT)
            .ok_or_else(|| bad("lease without expiry"))?,
        run: from_json(item, attr::LEASE_RUN)?,
    }))
}

/// The lease token of a server item, if a lease is held.
pub(crate) fn lease_token(item: &Item) -> Option<u64> {
    get_s(item, attr::LEASE_HOLDER)?;
    get_n(item, attr::LEASE_TOKEN).and_then(|t| u64::try_from(t).ok())
}

/// The full item of a session (public for tooling that seeds or migrates tables).
///
/// # Errors
/// `Backend` if the record cannot be encoded.
pub fn session_item(session: &PlaygroundSession) -> Result<Item> {
    let mut item = Item::from([
        (attr::SESSION_ID.to_owned(), s(session.id.as_str())),
        (attr::SERVER_ID.to_owned(), s(session.server_id.as_str())),
        (attr::CREATED_AT.to_owned(), ms(session.created_at)),
        (attr::EXPIRES_AT.to_owned(), ms(session.expires_at)),
        (attr::RECORD.to_owned(), to_json(session)?),
        (attr::VERSION.to_owned(), n(session.version)),
    ]);
    if session.state.is_live() {
        item.insert(attr::LIVE.to_owned(), s(LIVE));
        item.insert(attr::LIVE_CREATED_AT.to_owned(), ms(session.created_at));
        if session.warm {
            item.insert(attr::WARM.to_owned(), s(LIVE));
        }
    } else {
        item.insert(attr::TTL.to_owned(), ended_ttl(session));
    }
    Ok(item)
}

/// The `ttl` attribute of an ended session: 7 days after the later of its expiry and its end,
/// so a session ended late (a sweep that was down) is still kept a week.
pub(crate) fn ended_ttl(session: &PlaygroundSession) -> AttributeValue {
    let base = session.stopped_at.map_or(session.expires_at, |stopped| {
        stopped.max(session.expires_at)
    });
    n(base.timestamp() + TTL_GRACE_SECS)
}

/// Decodes a session item.
pub(crate) fn session_from_item(item: &Item) -> Result<PlaygroundSession> {
    let mut session: PlaygroundSession = from_json(item, attr::RECORD)?;
    session.version = version(item);
    Ok(session)
}

/// A counter's value (0 when absent; never negative).
pub(crate) fn count(item: Option<&Item>) -> u32 {
    item.and_then(|i| get_n(i, attr::COUNT))
        .map(|c| u32::try_from(c.max(0)).unwrap_or(u32::MAX))
        .unwrap_or(0)
}
