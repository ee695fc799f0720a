//! Secret values kept between uses (AWS Secrets Manager, an encrypted local store).
//!
//! Settings marked secret never go into the repository's records: the test values a server's
//! verification runs with and the values an instance restarts with are kept here, by owner, and
//! read back only to hand them to a task at start.

use std::fmt::{self, Debug};

use async_trait::async_trait;

use crate::domain::{InstanceEnv, InstanceId, ServerId};
use crate::error::Result;

/// Whose values a stored secret holds; it names the secret in every store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretOwner {
    /// The test values a server's verification runs with.
    ServerTestValues(ServerId),
    /// The values an instance was created with (its restarts use them again).
    Instance(InstanceId),
}

impl SecretOwner {
    /// The owner as a path below a store's prefix: `servers/<id>/test-values` or
    /// `instances/<id>`. Ids are validated, so the path has no `..` and no separators of its own.
    ///
    /// ```
    /// use toolshed_core::domain::ServerId;
    /// use toolshed_core::ports::SecretOwner;
    /// let owner = SecretOwner::ServerTestValues(ServerId::new("time").unwrap());
    /// assert_eq!(owner.path(), "servers/time/test-values");
    /// ```
    pub fn path(&self) -> String {
        match self {
            Self::ServerTestValues(server) => format!("servers/{server}/test-values"),
            Self::Instance(instance) => format!("instances/{instance}"),
        }
    }
}

impl fmt::Display for SecretOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Keeps secret values by owner. Values never appear in errors, logs or `Debug` output.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SecretStore: Send + Sync + Debug {
    /// Stores `values` for `owner`, replacing any earlier ones.
    ///
    /// # Errors
    /// `Backend` (retryable or not, as the store says).
    async fn put(&self, owner: &SecretOwner, values: &InstanceEnv) -> Result<()>;

    /// The values stored for `owner`, `None` when there are none.
    ///
    /// # Errors
    /// `Backend`.
    async fn get(&self, owner: &SecretOwner) -> Result<Option<InstanceEnv>>;

    /// Deletes the values of `owner`; deleting nothing is not an error.
    ///
    /// # Errors
    /// `Backend`.
    async fn delete(&self, owner: &SecretOwner) -> Result<()>;
}
