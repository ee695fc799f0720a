//! Warm pools: a server may keep a few verified, ready sessions started ahead of demand, so a
//! launch can answer at once by claiming one instead of starting a task.
//!
//! A warm session is an ordinary [`PlaygroundSession`] with [`PlaygroundSession::warm`] set and
//! no owner. While warm, its `expires_at` is its *idle deadline*: the sweep ends it like any
//! expired session when nobody claimed it in time. Claiming gives it an owner (if any), the
//! claimer's TTL as `expires_at`, and clears `warm`, in one conditional write (see
//! `ServerRepository::claim_warm_session`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ImageDigest, PlaygroundSession, PrincipalId, ServerId, SessionState, Timestamp};
use crate::error::{Error, Result};

/// Shortest accepted idle TTL of warm sessions.
pub const MIN_WARM_IDLE_TTL: Duration = Duration::from_secs(60);
/// Longest accepted idle TTL of warm sessions (a warm task costs like a running one).
pub const MAX_WARM_IDLE_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Idle TTL when none was set.
pub const DEFAULT_WARM_IDLE_TTL: Duration = Duration::from_secs(10 * 60);

/// A server's warm-pool settings, set by an admin. `size` 0 (the default) means no pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmPool {
    /// How many ready, unclaimed sessions the server keeps.
    pub size: u32,
    /// How long a warm session may wait unclaimed before the sweep retires it (whole seconds).
    #[serde(with = "secs")]
    pub idle_ttl: Duration,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

impl Default for WarmPool {
    fn default() -> Self {
        Self {
            size: 0,
            idle_ttl: DEFAULT_WARM_IDLE_TTL,
        }
    }
}

impl WarmPool {
    /// Whether the server keeps no pool (what records without the setting read as).
    pub fn is_off(&self) -> bool {
        self.size == 0
    }

    /// Validates the settings against the deployment's bound on pool sizes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use toolshed_core::domain::WarmPool;
    /// let p = WarmPool { size: 2, idle_ttl: Duration::from_secs(600) };
    /// assert!(p.validate(3).is_ok());
    /// assert!(p.validate(1).is_err());
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` (`warm_pool.size` above `max_size`, `warm_pool.idle_ttl` outside 1 min-24 h).
    pub fn validate(&self, max_size: u32) -> Result<()> {
        if self.size > max_size {
            return Err(Error::invalid(
                "warm_pool.size",
                format!("at most {max_size} (the deployment's warm-pool cap)"),
            ));
        }
        if self.idle_ttl < MIN_WARM_IDLE_TTL || self.idle_ttl > MAX_WARM_IDLE_TTL {
            return Err(Error::invalid(
                "warm_pool.idle_ttl",
                format!(
                    "{} s is outside {}-{} s",
                    self.idle_ttl.as_secs(),
                    MIN_WARM_IDLE_TTL.as_secs(),
                    MAX_WARM_IDLE_TTL.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

/// A launch's claim on a warm session: which pool, and what the session becomes once claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmClaim {
    /// The server whose pool is claimed from.
    pub server_id: ServerId,
    /// The server's live image digest: sessions of any other digest are never claimed.
    pub digest: ImageDigest,
    /// The claimer; `None` for operator launches (the session stays unowned).
    pub owner: Option<PrincipalId>,
    /// The owner's live-session quota, enforced in the same write (`None`: no quota).
    pub live_quota: Option<u32>,
    /// The claimed session's new expiry (the claimer's TTL from `now`).
    pub expires_at: Timestamp,
    /// The caller's clock: sessions whose idle deadline passed are never claimed.
    pub now: Timestamp,
}

impl PlaygroundSession {
    /// Whether `claim` may take this session: warm, live and ready (`Running` with `ready_at`),
    /// of the claim's server and digest, and not idle past its deadline.
    pub fn is_claimable_by(&self, claim: &WarmClaim) -> bool {
        self.warm
            && self.state == SessionState::Running
            && self.ready_at.is_some()
            && self.server_id == claim.server_id
            && self.image.digest() == &claim.digest
            && self.expires_at > claim.now
    }

    /// Applies a claim: the claimer's owner and expiry, no longer warm. The version is left to
    /// the repository; callers check [`Self::is_claimable_by`] first.
    pub fn apply_claim(&mut self, claim: &WarmClaim) {
        self.warm = false;
        self.claimed_at = Some(claim.now);
        self.owner = claim.owner.clone();
        self.expires_at = claim.expires_at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_bounds_and_wire_form() {
        let p = WarmPool {
            size: 1,
            idle_ttl: Duration::from_secs(600),
        };
        assert!(p.validate(1).is_ok());
        assert!(WarmPool::default().is_off());
        assert!(WarmPool::default().validate(0).is_ok());
        let short = WarmPool {
            idle_ttl: Duration::from_secs(5),
            ..p
        };
        let err = short.validate(3).unwrap_err().to_string();
        assert!(err.contains("warm_pool.idle_ttl"), "{err}");
        let json = serde_json::to_value(p).unwrap();
        assert_eq!(json, serde_json::json!({"size": 1, "idle_ttl": 600}));
        assert_eq!(serde_json::from_value::<WarmPool>(json).unwrap(), p);
    }
}
