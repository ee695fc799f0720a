//! Reviewing a verification the promotion policy held: approve it (it goes live) or reject it
//! (it is dropped). Both name the candidate they decide on, by image digest or commit, and are
//! one versioned write: a candidate replaced by a newer verification in the meantime is never
//! approved by mistake.

use tracing::{info, warn};

use super::{Caller, Toolshed};
use crate::domain::{Scope, Server, ServerId, VerifiedImage};
use crate::error::{Error, Result};

impl Toolshed {
    /// Promotes the candidate pending review of `server_id`, named by `expected` (its image
    /// digest `sha256:…` or its commit): it becomes the image launches run. Then fills missing
    /// metadata for the new commit (a failure there is logged, never returned).
    ///
    /// # Errors
    /// `NotFound`; `ReviewMismatch` when nothing is pending or another candidate is (nothing is
    /// changed); repository errors.
    pub async fn approve_verification(
        &self,
        server_id: &ServerId,
        expected: &str,
    ) -> Result<Server> {
        let (server, image) = self
            .decide(server_id, |s, now| s.approve_pending(expected, now))
            .await?;
        info!(server = %server_id, image = %image.image, commit = %image.commit, "candidate approved");
        if let Err(e) = self.fill_missing_metadata(server_id).await {
            warn!(server = %server_id, error = %e, "metadata step after approval failed");
        }
        Ok(self
            .ports
            .repository
            .get_server(server_id)
            .await
            .unwrap_or(server))
    }

    /// Drops the candidate pending review of `server_id`, named by `expected`: the live image
    /// stays, the rejection is recorded as the last failure.
    ///
    /// # Errors
    /// As [`Self::approve_verification`].
    pub async fn reject_verification(
        &self,
        server_id: &ServerId,
        expected: &str,
    ) -> Result<Server> {
        let (server, image) = self
            .decide(server_id, |s, now| s.reject_pending(expected, now))
            .await?;
        info!(server = %server_id, image = %image.image, commit = %image.commit, "candidate rejected");
        Ok(server)
    }

    /// [`Self::approve_verification`] for an admin.
    ///
    /// # Errors
    /// `Forbidden` without scope `admin`; as [`Self::approve_verification`].
    pub async fn approve_verification_as(
        &self,
        caller: &Caller,
        server_id: &ServerId,
        expected: &str,
    ) -> Result<Server> {
        caller.principal.require(Scope::Admin)?;
        self.approve_verification(server_id, expected).await
    }

    /// [`Self::reject_verification`] for an admin.
    ///
    /// # Errors
    /// `Forbidden` without scope `admin`; as [`Self::reject_verification`].
    pub async fn reject_verification_as(
        &self,
        caller: &Caller,
        server_id: &ServerId,
        expected: &str,
    ) -> Result<Server> {
        caller.principal.require(Scope::Admin)?;
        self.reject_verification(server_id, expected).await
    }

    /// Applies a review decision as one versioned write. On a version conflict the server is
    /// re-read and the decision re-checked: if a verification replaced the candidate meanwhile,
    /// the decision no longer names it and fails with `ReviewMismatch`.
    async fn decide(
        &self,
        server_id: &ServerId,
        decision: impl Fn(&mut Server, crate::domain::Timestamp) -> Result<VerifiedImage>,
    ) -> Result<(Server, VerifiedImage)> {
        let repo = &self.ports.repository;
        let mut attempt = 0;
        loop {
            let mut server = repo.get_server(server_id).await?;
            let image = decision(&mut server, self.ports.clock.now())?;
            match repo.update_server(&server).await {
                Ok(stored) => return Ok((stored, image)),
                Err(Error::Conflict { .. }) if attempt < self.config.conflict_retries => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
