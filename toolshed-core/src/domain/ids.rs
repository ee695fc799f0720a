//! Validated identifiers. Each constructor rejects bad input with [`Error::InvalidInput`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The validated string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(v: String) -> Result<Self> {
                Self::new(v)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }
    };
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

string_newtype!(
    /// A server's id: `[a-z0-9][a-z0-9-]{0,62}` — safe in ECS family names, image tags, S3 keys,
    /// container names and DynamoDB keys alike.
    ///
    /// ```
    /// use toolshed_core::domain::ServerId;
    /// assert!(ServerId::new("time-server").is_ok());
    /// assert!(ServerId::new("Time Server").is_err());
    /// ```
    ServerId
);

impl ServerId {
    /// Validates a server id.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        let mut chars = raw.chars();
        let ok = match chars.next() {
            Some(first) => {
                is_lower_alnum(first)
                    && raw.len() <= 63
                    && chars.all(|c| is_lower_alnum(c) || c == '-')
            }
            None => false,
        };
        if ok {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "server_id",
                format!(
                    "{raw:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
                ),
            ))
        }
    }
}

string_newtype!(
    /// A playground session's id: `[a-z0-9-]{8,64}`. Also used as the runner's idempotency token
    /// (ECS `clientToken` allows 64 ASCII characters).
    SessionId
);

impl SessionId {
    /// Validates a session id.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        if (8..=64).contains(&raw.len()) && raw.chars().all(|c| is_lower_alnum(c) || c == '-') {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "session_id",
                format!("{raw:?} must be 8-64 characters of a-z, 0-9 and '-'"),
            ))
        }
    }

    /// A fresh random session id (`s-` and 32 hex digits).
    pub fn random() -> Self {
        Self(format!("s-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The session id a launch with this idempotency key gets: retried launches map to the same
    /// session (and so to the same runner idempotency token).
    pub fn for_idempotency_key(server: &ServerId, key: &IdempotencyKey) -> Self {
        let mut h = Sha256::new();
        h.update(server.as_str().as_bytes());
        h.update([0u8]);
        h.update(key.as_str().as_bytes());
        let digest = hex::encode(h.finalize());
        Self(format!("s-{}", &digest[..32]))
    }
}

string_newtype!(
    /// A caller-chosen key that makes a launch idempotent: printable ASCII, 1-128 characters.
    IdempotencyKey
);

impl IdempotencyKey {
    /// Validates an idempotency key.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        if (1..=128).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_graphic()) {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "idempotency_key",
                "must be 1-128 printable ASCII characters without spaces",
            ))
        }
    }
}

string_newtype!(
    /// A full git commit id: 40 hexadecimal digits, stored lowercase.
    ///
    /// ```
    /// use toolshed_core::domain::CommitSha;
    /// let sha = CommitSha::new("0123456789ABCDEF0123456789abcdef01234567").unwrap();
    /// assert_eq!(sha.short(), "0123456789ab");
    /// assert!(CommitSha::new("abc123").is_err());
    /// ```
    CommitSha
);

impl CommitSha {
    /// Validates a commit id.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        if raw.len() == 40 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(Error::invalid(
                "commit",
                format!("{raw:?} is not a full 40-digit hexadecimal commit id"),
            ))
        }
    }

    /// The first 12 digits, as used in image tags.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

string_newtype!(
    /// A branch or tag name to follow (`main`, `release/1.x`, `v1.2.3`), validated like
    /// `git check-ref-format --branch` in its common subset.
    GitRef
);

impl GitRef {
    /// Validates a ref name.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        let bad = raw.is_empty()
            || raw.len() > 255
            || raw.starts_with(['-', '/', '.'])
            || raw.ends_with(['/', '.'])
            || raw.ends_with(".lock")
            || raw.contains("..")
            || raw.contains("//")
            || raw.contains("@{")
            || raw == "@"
            // Like git: no path component starts with a dot or ends with `.lock`.
            || raw
                .split('/')
                .any(|part| part.starts_with('.') || part.ends_with(".lock"))
            || raw
                .chars()
                .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c) || !c.is_ascii());
        if bad {
            Err(Error::invalid(
                "git_ref",
                format!("{raw:?} is not a valid branch or tag name"),
            ))
        } else {
            Ok(Self(raw))
        }
    }

    /// `main`.
    pub fn main() -> Self {
        Self("main".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids() {
        for ok in ["a", "time", "mcp-server-time", "0abc", &"a".repeat(63)] {
            assert!(ServerId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", "ä", &"a".repeat(64)] {
            let err = ServerId::new(bad).unwrap_err();
            assert!(err.to_string().contains("server_id"), "{bad}: {err}");
        }
    }

    #[test]
    fn session_ids_and_idempotency() {
        let server = ServerId::new("s1").unwrap();
        let key = IdempotencyKey::new("req-1").unwrap();
        let a = SessionId::for_idempotency_key(&server, &key);
        let b = SessionId::for_idempotency_key(&server, &key);
        assert_eq!(a, b);
        assert!(SessionId::new(a.as_str()).is_ok());
        assert_ne!(
            a,
            SessionId::for_idempotency_key(&ServerId::new("s2").unwrap(), &key)
        );
        assert_ne!(SessionId::random(), SessionId::random());
        assert!(SessionId::new("short").is_err());
        assert!(SessionId::new("UPPER-CASE-ID").is_err());
        assert!(IdempotencyKey::new("has space").is_err());
        assert!(IdempotencyKey::new("").is_err());
    }

    #[test]
    fn commits() {
        let sha = CommitSha::new("A".repeat(40)).unwrap();
        assert_eq!(sha.as_str(), "a".repeat(40));
        assert!(CommitSha::new("g".repeat(40)).is_err());
        assert!(CommitSha::new("a".repeat(41)).is_err());
        let err = CommitSha::new("abc").unwrap_err();
        assert!(err.to_string().contains("40-digit"), "{err}");
    }

    #[test]
    fn git_refs() {
        for ok in ["main", "release/1.x", "v1.2.3", "feature-x"] {
            assert!(GitRef::new(ok).is_ok(), "{ok}");
        }
        // "a/.a" was found by the git_ref property test (git refuses a component starting with a
        // dot); "a.lock/b" and "@" break the same rules of git check-ref-format.
        for bad in [
            "", "-x", "a..b", "a b", "a:b", "x.lock", "a//b", "/a", "a/", "a/.a", "a.lock/b", "@",
        ] {
            assert!(GitRef::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_validates() {
        let ok: ServerId = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(ok.as_str(), "abc");
        assert!(serde_json::from_str::<ServerId>("\"A B\"").is_err());
    }
}
