//! Who calls: principals, their scopes, API keys and per-principal quotas.
//!
//! The rules of access are written here once: [`Principal::may`] (scopes) and
//! [`Principal::may_access`] (ownership). The HTTP layer authenticates and builds a
//! [`Principal`]; the services decide with it; repositories enforce the quotas atomically.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Timestamp;
use crate::error::{Error, Result};

/// The stable id of a caller: the `sub` claim of a JWT, or the owner recorded on an API key.
/// 1-256 visible ASCII characters (no spaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrincipalId(String);

impl PrincipalId {
    /// Validates a principal id.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        if (1..=256).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_graphic()) {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "principal",
                "must be 1-256 visible ASCII characters",
            ))
        }
    }

    /// The id string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<PrincipalId> for String {
    fn from(v: PrincipalId) -> String {
        v.0
    }
}

impl TryFrom<String> for PrincipalId {
    type Error = Error;
    fn try_from(v: String) -> Result<Self> {
        Self::new(v)
    }
}

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    /// Register servers and force re-verifications (`servers:write`).
    ServersWrite,
    /// Launch, read, call and stop its own playground sessions (`sessions`).
    Sessions,
    /// Read servers, docs and verification status (`read`).
    Read,
    /// Everything, on every principal's sessions (`admin`).
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Scope::ServersWrite,
        Scope::Sessions,
        Scope::Read,
        Scope::Admin,
    ];

    /// The scope's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ServersWrite => "servers:write",
            Scope::Sessions => "sessions",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Parses a space- or comma-separated list, ignoring names that are not scopes of this API
    /// (identity providers put many unrelated scopes in one token).
    pub fn parse_lenient(list: &str) -> BTreeSet<Scope> {
        list.split([' ', ','])
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "scope",
                    format!("{s:?} is not one of servers:write, sessions, read, admin"),
                )
            })
    }
}

impl From<Scope> for String {
    fn from(v: Scope) -> String {
        v.as_str().to_owned()
    }
}

impl TryFrom<String> for Scope {
    type Error = Error;
    fn try_from(v: String) -> Result<Self> {
        v.parse()
    }
}

/// An authenticated caller: its id and scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub id: PrincipalId,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
}

impl Principal {
    /// A principal with `scopes`.
    pub fn new(id: PrincipalId, scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self {
            id,
            scopes: scopes.into_iter().collect(),
        }
    }

    /// The operator on the machine itself (the CLI on its local state, the API with
    /// authentication turned off): an admin named `local`.
    pub fn local_operator() -> Self {
        Self::new(PrincipalId("local".to_owned()), [Scope::Admin])
    }

    /// Whether it holds `scope` (admins hold every scope).
    pub fn may(&self, scope: Scope) -> bool {
        self.is_admin() || self.scopes.contains(&scope)
    }

    /// Whether it is an admin.
    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }

    /// Whether it may see and touch a record owned by `owner`: its own records; admins every
    /// record, including those owned by nobody (created before owners were recorded).
    ///
    /// Every owned record (sessions today, instances next) is checked with this one rule, and a
    /// record the caller may not access is reported exactly like a missing one.
    pub fn may_access(&self, owner: Option<&PrincipalId>) -> bool {
        self.is_admin() || owner == Some(&self.id)
    }

    /// `Ok` if it holds `scope`, else [`Error::Forbidden`].
    ///
    /// # Errors
    /// [`Error::Forbidden`] naming the missing scope.
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.may(scope) {
            Ok(())
        } else {
            Err(Error::Forbidden {
                principal: self.id.to_string(),
                scope,
            })
        }
    }
}

/// Per-principal limits, enforced atomically by the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalQuotas {
    /// Live playground sessions per principal.
    pub live_sessions: u32,
    /// Session launches per principal per minute (fixed one-minute windows).
    pub launches_per_minute: u32,
    /// Verifications (registrations and re-verifications) per principal per hour.
    pub verifications_per_hour: u32,
}

impl Default for PrincipalQuotas {
    /// 5 live sessions, 10 launches a minute, 20 verifications an hour.
    fn default() -> Self {
        Self {
            live_sessions: 5,
            launches_per_minute: 10,
            verifications_per_hour: 20,
        }
    }
}

/// A windowed per-principal quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    /// Live sessions (not windowed: counted with the session insert).
    LiveSessions,
    /// Launches per minute.
    Launches,
    /// Verifications per hour.
    Verifications,
}

impl QuotaKind {
    /// The stable name used in storage keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::LiveSessions => "live_sessions",
            QuotaKind::Launches => "launches",
            QuotaKind::Verifications => "verifications",
        }
    }

    /// The length of its fixed window (`None` for live sessions).
    pub fn window(self) -> Option<Duration> {
        match self {
            QuotaKind::LiveSessions => None,
            QuotaKind::Launches => Some(Duration::from_secs(60)),
            QuotaKind::Verifications => Some(Duration::from_secs(3600)),
        }
    }

    /// The start of the window holding `now` (`now` itself when not windowed).
    pub fn window_start(self, now: Timestamp) -> Timestamp {
        let Some(window) = self.window() else {
            return now;
        };
        let len = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let secs = now.timestamp();
        chrono::DateTime::from_timestamp(secs - secs.rem_euclid(len), 0).unwrap_or(now)
    }

    /// When the window holding `now` ends (a `Retry-After`).
    pub fn window_end(self, now: Timestamp) -> Timestamp {
        match self.window() {
            Some(w) => self.window_start(now) + chrono::Duration::seconds(w.as_secs() as i64),
            None => now,
        }
    }
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuotaKind::LiveSessions => "live sessions",
            QuotaKind::Launches => "launches per minute",
            QuotaKind::Verifications => "verifications per hour",
        })
    }
}

/// The prefix of every API key: secret scanners and humans recognise it.
pub const API_KEY_PREFIX: &str = "tsk_";

/// How often `last_used_at` is written at most: keeps authentication a read, not a write.
pub const API_KEY_TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// The id of an API key: 16 lowercase hex characters, the part of the key used for lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Validates an id.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        if raw.len() == 16 && raw.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "api_key_id",
                "must be 16 lowercase hex characters",
            ))
        }
    }

    /// The id string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ApiKeyId> for String {
    fn from(v: ApiKeyId) -> String {
        v.0
    }
}

impl TryFrom<String> for ApiKeyId {
    type Error = Error;
    fn try_from(v: String) -> Result<Self> {
        Self::new(v)
    }
}

impl FromStr for ApiKeyId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// The full key (`tsk_<id>_<64 hex>`), shown once at creation. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// The key to hand to the caller: the only time it exists in clear.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret(<redacted>)")
    }
}

/// A presented API key, split into its id (for lookup) and secret (for the hash check).
/// Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedApiKey {
    /// The key id.
    pub id: ApiKeyId,
    secret: [u8; 32],
}

impl fmt::Debug for PresentedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedApiKey({}, <redacted>)", self.id)
    }
}

impl PresentedApiKey {
    /// Parses `tsk_<id>_<64 hex>`; `None` when the text is not shaped like a key.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(API_KEY_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let id = ApiKeyId::new(id).ok()?;
        let bytes = hex::decode(secret).ok()?;
        let secret: [u8; 32] = bytes.try_into().ok()?;
        Some(Self { id, secret })
    }
}

/// A stored API key: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Id (the lookup part of the key).
    pub id: ApiKeyId,
    /// A human name (`ci`, `playground-web`).
    pub name: String,
    /// The scopes it grants.
    pub scopes: BTreeSet<Scope>,
    /// The principal it acts as.
    pub owner: PrincipalId,
    /// SHA-256 of the 32-byte secret, hex. A hash suffices: the secret is 256 random bits, so
    /// there is nothing to brute-force that a slow hash would protect.
    pub secret_sha256: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last successful use (written at most once per [`API_KEY_TOUCH_INTERVAL`]).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked key never authenticates again.
    pub revoked_at: Option<Timestamp>,
}

/// What [`ApiKey::generate`] validates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Human name, 1-64 visible characters.
    pub name: String,
    /// At least one scope.
    pub scopes: BTreeSet<Scope>,
    /// The principal the key acts as.
    pub owner: PrincipalId,
}

impl ApiKey {
    /// A new key: 256 random bits from the operating system, returned once in clear.
    ///
    /// # Errors
    /// `InvalidInput` for an empty or over-long name or no scope; `Backend` when the operating
    /// system's random source fails (retryable).
    pub fn generate(new: NewApiKey, now: Timestamp) -> Result<(ApiKey, ApiKeySecret)> {
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid("name", "must be 1-64 characters"));
        }
        if new.scopes.is_empty() {
            return Err(Error::invalid("scopes", "give at least one scope"));
        }
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id)
            .and_then(|()| getrandom::fill(&mut secret))
            .map_err(|e| Error::backend("os", "getrandom", None, true, e.to_string()))?;
        let id = ApiKeyId(hex::encode(id));
        let clear = ApiKeySecret(format!("{API_KEY_PREFIX}{id}_{}", hex::encode(secret)));
        let key = ApiKey {
            id,
            name,
            scopes: new.scopes,
            owner: new.owner,
            secret_sha256: hex::encode(Sha256::digest(secret)),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((key, clear))
    }

    /// Whether `presented` is this key and it is not revoked. The hashes are compared in
    /// constant time.
    pub fn verify(&self, presented: &PresentedApiKey) -> bool {
        if self.revoked_at.is_some() || presented.id != self.id {
            return false;
        }
        let digest = hex::encode(Sha256::digest(presented.secret));
        bool::from(digest.as_bytes().ct_eq(self.secret_sha256.as_bytes()))
    }

    /// The principal the key authenticates as.
    pub fn principal(&self) -> Principal {
        Principal::new(self.owner.clone(), self.scopes.iter().copied())
    }

    /// Whether a use at `now` should be written (`last_used_at` older than the interval).
    pub fn needs_touch(&self, now: Timestamp) -> bool {
        self.last_used_at.is_none_or(|last| {
            now.signed_duration_since(last).num_seconds() >= API_KEY_TOUCH_INTERVAL.as_secs() as i64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn alice() -> PrincipalId {
        PrincipalId::new("alice").unwrap()
    }

    #[test]
    fn scopes_parse_and_admin_holds_all() {
        let s = Scope::parse_lenient("openid read sessions,profile servers:write");
        assert_eq!(
            s,
            BTreeSet::from([Scope::Read, Scope::Sessions, Scope::ServersWrite])
        );
        assert!("write".parse::<Scope>().is_err());
        let reader = Principal::new(alice(), [Scope::Read]);
        assert!(reader.may(Scope::Read));
        assert!(!reader.may(Scope::Sessions));
        assert!(reader.require(Scope::Sessions).is_err());
        let admin = Principal::new(PrincipalId::new("root").unwrap(), [Scope::Admin]);
        assert!(Scope::ALL.iter().all(|s| admin.may(*s)));
    }

    #[test]
    fn ownership_admins_see_all_others_only_their_own() {
        let me = Principal::new(alice(), [Scope::Sessions]);
        let bob = PrincipalId::new("bob").unwrap();
        assert!(me.may_access(Some(&alice())));
        assert!(!me.may_access(Some(&bob)));
        assert!(!me.may_access(None));
        let admin = Principal::local_operator();
        assert!(admin.may_access(Some(&bob)) && admin.may_access(None));
    }

    #[test]
    fn keys_verify_only_their_secret_and_not_once_revoked() {
        let (mut key, clear) = ApiKey::generate(
            NewApiKey {
                name: "ci".into(),
                scopes: BTreeSet::from([Scope::Read]),
                owner: alice(),
            },
            t(0),
        )
        .unwrap();
        assert!(clear.expose().starts_with("tsk_"));
        assert_eq!(clear.expose().len(), 4 + 16 + 1 + 64);
        assert!(!format!("{clear:?}").contains(&clear.expose()[21..]));
        assert!(!key.secret_sha256.contains(&clear.expose()[21..]));
        let presented = PresentedApiKey::parse(clear.expose()).unwrap();
        assert!(!format!("{presented:?}").contains(&clear.expose()[21..]));
        assert!(key.verify(&presented));
        let mut wrong = clear.expose().to_owned();
        wrong.pop();
        wrong.push(if clear.expose().ends_with('0') {
            '1'
        } else {
            '0'
        });
        assert!(!key.verify(&PresentedApiKey::parse(&wrong).unwrap()));
        assert!(PresentedApiKey::parse("tsk_nothex_00").is_none());
        assert!(PresentedApiKey::parse("Bearer x").is_none());
        key.revoked_at = Some(t(1));
        assert!(!key.verify(&presented));
    }

    #[test]
    fn touches_at_most_once_a_minute_and_windows_are_aligned() {
        let (mut key, _) = ApiKey::generate(
            NewApiKey {
                name: "ci".into(),
                scopes: BTreeSet::from([Scope::Read]),
                owner: alice(),
            },
            t(0),
        )
        .unwrap();
        assert!(key.needs_touch(t(0)));
        key.last_used_at = Some(t(0));
        assert!(!key.needs_touch(t(59)));
        assert!(key.needs_touch(t(60)));
        let now = t(125);
        let start = QuotaKind::Launches.window_start(now);
        assert_eq!(start.timestamp() % 60, 0);
        assert!(start <= now && QuotaKind::Launches.window_end(now) > now);
        assert_eq!(
            QuotaKind::Verifications.window_start(now).timestamp() % 3600,
            0
        );
    }

    #[test]
    fn generate_validates() {
        let new = |name: &str, scopes: &[Scope]| NewApiKey {
            name: name.into(),
            scopes: scopes.iter().copied().collect(),
            owner: alice(),
        };
        assert!(ApiKey::generate(new("", &[Scope::Read]), t(0)).is_err());
        assert!(ApiKey::generate(new("ci", &[]), t(0)).is_err());
        let (a, _) = ApiKey::generate(new("ci", &[Scope::Read]), t(0)).unwrap();
        let (b, _) = ApiKey::generate(new("ci", &[Scope::Read]), t(0)).unwrap();
        assert_ne!(a.id, b.id);
    }
}
