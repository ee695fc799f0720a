//! Keeping a verification lease alive while its run works.
//!
//! A run's writes (progress after each step, and the heartbeat in between) go through one
//! [`LeaseCell`], one at a time, so a heartbeat always stores the newest progress and never
//! writes older progress over newer. The [`Heartbeat`] task renews the expiry every
//! `lease_heartbeat` for as long as a step runs, including a single long wait (a build start,
//! the MCP handshake): a live process keeps its lease, a dead one stops renewing and its run can
//! be resumed once `lease_ttl` has passed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::config::plus;
use crate::domain::VerificationLease;
use crate::error::{Error, Result};
use crate::ports::{Clock, ServerRepository};

/// The lease of one run, shared by its step and its heartbeat.
#[derive(Debug, Clone)]
pub(crate) struct LeaseCell(Arc<Mutex<VerificationLease>>);

impl LeaseCell {
    pub(crate) fn new(lease: VerificationLease) -> Self {
        Self(Arc::new(Mutex::new(lease)))
    }

    /// Stores `lease` (its progress, and an expiry of `now + ttl`) if its token is still
    /// current, and remembers what was stored.
    ///
    /// # Errors
    /// `LeaseLost` when the lease was taken over; backend errors.
    pub(crate) async fn save(
        &self,
        repository: &dyn ServerRepository,
        clock: &dyn Clock,
        ttl: Duration,
        mut lease: VerificationLease,
    ) -> Result<VerificationLease> {
        let mut current = self.0.lock().await;
        lease.expires_at = plus(clock.now(), ttl);
        let saved = repository.save_progress(&lease).await?;
        *current = saved.clone();
        Ok(saved)
    }

    /// Renews the expiry of the last stored lease (the heartbeat).
    async fn renew(
        &self,
        repository: &dyn ServerRepository,
        clock: &dyn Clock,
        ttl: Duration,
    ) -> Result<VerificationLease> {
        let mut current = self.0.lock().await;
        let mut lease = current.clone();
        lease.expires_at = plus(clock.now(), ttl);
        let saved = repository.save_progress(&lease).await?;
        *current = saved.clone();
        Ok(saved)
    }
}

/// A task renewing a [`LeaseCell`] until it is dropped.
///
/// It paces itself on tokio's timer, not on the [`Clock`] port: its job is to keep a *live
/// process's* lease fresh, and a manual test clock that jumps when slept on would make it spin.
/// The expiry it writes is still computed with the port's clock, like every other expiry.
#[derive(Debug)]
pub(crate) struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    pub(crate) fn start(
        cell: LeaseCell,
        repository: Arc<dyn ServerRepository>,
        clock: Arc<dyn Clock>,
        every: Duration,
        ttl: Duration,
    ) -> Self {
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match cell.renew(repository.as_ref(), clock.as_ref(), ttl).await {
                    Ok(lease) => {
                        debug!(server = %lease.server_id, token = lease.token, expires_at = %lease.expires_at, "lease renewed");
                    }
                    Err(e @ Error::LeaseLost { .. }) => {
                        // Released (the run ended) or taken over: the step's next write says which.
                        debug!(error = %e, "heartbeat stopped");
                        return;
                    }
                    // A backend hiccup: the next beat retries while the lease still has time left.
                    Err(e) => warn!(error = %e, "could not renew the verification lease"),
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}
