//! Optimistic concurrency: every stored record carries a version that each write bumps.

use crate::error::{EntityKind, Error, Result};

/// The version a write stores, given the version it read (`expected`) and the one stored now:
/// `expected + 1` when they match. Repositories that compare inside a transaction call it there;
/// those with conditional writes put the same comparison in the condition.
///
/// # Errors
/// `Conflict` naming the record when somebody else wrote it since it was read.
pub fn next_version(kind: EntityKind, id: &str, stored: u64, expected: u64) -> Result<u64> {
    if stored == expected {
        Ok(expected.saturating_add(1))
    } else {
        Err(Error::Conflict {
            kind,
            id: id.to_owned(),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_a_matching_version_and_refuses_a_stale_one() {
        assert_eq!(next_version(EntityKind::Server, "s", 3, 3).ok(), Some(4));
        match next_version(EntityKind::Session, "x", 4, 3) {
            Err(Error::Conflict { kind, id, expected }) => {
                assert_eq!((kind, id.as_str(), expected), (EntityKind::Session, "x", 3));
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
    }
}
