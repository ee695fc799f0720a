//! Verifications in the background, their status, and the recovery of runs whose holder died.
//!
//! A run stores its progress with its lease and renews the lease while it works (see
//! `heartbeat`). When its process dies, the lease stops being renewed; once it has expired the
//! run is *stale*, and [`Toolshed::resume_stale_verifications`] (or its non-blocking form,
//! [`Toolshed::take_over_stale_verifications`], which a worker calls periodically) takes it over
//! and continues it from the stored step, without anybody asking.

use futures::future::join_all;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

use super::verify::{StartOutcome, VerifyOptions, VerifyOutcome};
use super::Toolshed;
use crate::domain::{CommitSha, Server, ServerId, Timestamp, VerificationLease, VerificationStep};
use crate::error::{Error, Result};

/// A verification running in a background task (an HTTP handler answers 202 with its ids).
///
/// Dropping the handle does not stop the run: it continues, and its outcome is recorded on the
/// server as usual. If the process stops, the run is resumed by whoever resumes stale runs.
#[derive(Debug)]
pub struct VerificationRunHandle {
    server_id: ServerId,
    run_id: String,
    commit: CommitSha,
    token: u64,
    task: JoinHandle<Result<VerifyOutcome>>,
}

impl VerificationRunHandle {
    /// The server being verified.
    pub fn server_id(&self) -> &ServerId {
        &self.server_id
    }

    /// The run's id (as in [`RunStatus::run_id`]).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The commit being verified.
    pub fn commit(&self) -> &CommitSha {
        &self.commit
    }

    /// The fencing token of the lease the run holds.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Whether the run has ended (successfully or not).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the run's end.
    ///
    /// # Errors
    /// As [`Toolshed::verify_server`]; `Backend` (retryable) when the background task itself
    /// died (a panic, or the runtime shutting down): the lease then expires and the run is
    /// resumed like after a crash.
    pub async fn wait(self) -> Result<VerifyOutcome> {
        match self.task.await {
            Ok(outcome) => outcome,
            Err(e) => Err(Error::backend(
                "verification-task",
                "wait",
                Some(self.server_id.to_string()),
                true,
                e.to_string(),
            )),
        }
    }
}

/// What [`Toolshed::start_verification_in_background`] did.
// Returned once per call, never stored in bulk: boxing would only add noise for callers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum BackgroundStart {
    /// The last verified commit is current and its image still exists: nothing to do.
    UpToDate(Server),
    /// A run started and continues in the background.
    Started(VerificationRunHandle),
}

/// A run that holds (or held) a server's verification lease.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStatus {
    /// The run's id.
    pub run_id: String,
    /// The commit being verified.
    pub commit: CommitSha,
    /// Whether it was forced.
    pub forced: bool,
    /// The step it is at.
    pub step: VerificationStep,
    /// When it started.
    pub started_at: Timestamp,
    /// Who holds the lease.
    pub holder: String,
    /// When the lease expires unless renewed.
    pub lease_expires_at: Timestamp,
    /// The lease expired without a heartbeat: its holder most likely died, and the run waits to
    /// be resumed.
    pub stale: bool,
}

/// A server's verification state and its run, if one holds the lease.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationStatus {
    /// The server (state, last good image, last failure, count).
    pub server: Server,
    /// The run holding the lease, live or stale; `None` when no run holds it.
    pub run: Option<RunStatus>,
}

impl VerificationStatus {
    /// Whether a live run holds the lease (a new verification would be refused).
    pub fn in_progress(&self) -> bool {
        self.run.as_ref().is_some_and(|r| !r.stale)
    }
}

/// What resuming one stale run gave.
#[derive(Debug)]
pub struct ResumedRun {
    /// The server.
    pub server_id: ServerId,
    /// The run's end: verified, or why not.
    pub outcome: Result<VerifyOutcome>,
}

impl Toolshed {
    /// Starts a verification and continues it in a background task: resolves the commit and
    /// either reports "up to date" or stores a new run under a fresh lease and returns its
    /// handle at once. The run renews its lease while it works.
    ///
    /// # Errors
    /// As [`Self::start_verification`].
    pub async fn start_verification_in_background(
        &self,
        server_id: &ServerId,
        options: VerifyOptions,
    ) -> Result<BackgroundStart> {
        Ok(match self.start_verification(server_id, options).await? {
            StartOutcome::UpToDate(server) => BackgroundStart::UpToDate(server),
            StartOutcome::Started(lease) => BackgroundStart::Started(self.spawn_run(lease)),
        })
    }

    /// Drives `lease`'s run to the end (then the metadata step) in a background task.
    fn spawn_run(&self, lease: VerificationLease) -> VerificationRunHandle {
        let span =
            tracing::info_span!("verification", server = %lease.server_id, run = %lease.run.run_id);
        let toolshed = self.clone();
        let (server_id, run_id, commit, token) = (
            lease.server_id.clone(),
            lease.run.run_id.clone(),
            lease.run.commit.clone(),
            lease.token,
        );
        let task = tokio::spawn(
            async move {
                let outcome = toolshed.finish(lease).await;
                match &outcome {
                    Ok(o) => info!(state = ?o.server().state, "verification ended"),
                    Err(e) => warn!(error = %e, "verification did not complete"),
                }
                outcome
            }
            .instrument(span),
        );
        VerificationRunHandle {
            server_id,
            run_id,
            commit,
            token,
            task,
        }
    }

    /// A server's verification state and the run holding its lease, if any (live or stale).
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn verification_status(&self, server_id: &ServerId) -> Result<VerificationStatus> {
        let server = self.ports.repository.get_server(server_id).await?;
        let lease = self.ports.repository.get_lease(server_id).await?;
        let now = self.ports.clock.now();
        Ok(VerificationStatus {
            server,
            run: lease.map(|l| RunStatus {
                stale: l.is_expired(now),
                step: l.run.progress.step(),
                run_id: l.run.run_id,
                commit: l.run.commit,
                forced: l.run.forced,
                started_at: l.run.started_at,
                holder: l.holder,
                lease_expires_at: l.expires_at,
            }),
        })
    }

    /// Takes over up to `limit` stale runs (leases expired without a heartbeat, earliest first)
    /// and continues each in a background task; returns their handles at once. Runs another
    /// worker takes over first are skipped. Meant for a periodic worker.
    ///
    /// # Errors
    /// Only when the stale runs cannot be listed; a run that cannot be taken over is skipped
    /// (and logged).
    pub async fn take_over_stale_verifications(
        &self,
        limit: usize,
    ) -> Result<Vec<VerificationRunHandle>> {
        let now = self.ports.clock.now();
        let stale = self
            .ports
            .repository
            .list_stale_verifications(now, limit)
            .await?;
        let mut handles = Vec::with_capacity(stale.len());
        for lease in stale {
            match self.take_over_verification(&lease.server_id).await {
                Ok(taken) => {
                    info!(server = %taken.server_id, run = %taken.run.run_id, previous_holder = %lease.holder, "resuming a stale verification");
                    handles.push(self.spawn_run(taken));
                }
                // Another worker was first, or the run ended meanwhile.
                Err(e @ (Error::VerificationInProgress { .. } | Error::NotFound { .. })) => {
                    debug!(server = %lease.server_id, error = %e, "stale verification not taken over");
                }
                Err(e) => {
                    warn!(server = %lease.server_id, error = %e, "could not take over a stale verification");
                }
            }
        }
        Ok(handles)
    }

    /// Takes over up to `limit` stale runs and waits until each has ended (they run
    /// concurrently). What `toolshed servers resume` does.
    ///
    /// # Errors
    /// As [`Self::take_over_stale_verifications`]; each run's own outcome is in its
    /// [`ResumedRun`].
    pub async fn resume_stale_verifications(&self, limit: usize) -> Result<Vec<ResumedRun>> {
        let handles = self.take_over_stale_verifications(limit).await?;
        Ok(join_all(handles.into_iter().map(|h| async move {
            let server_id = h.server_id().clone();
            ResumedRun {
                server_id,
                outcome: h.wait().await,
            }
        }))
        .await)
    }
}
