//! Verification runs, leases and failures. A run's progress is stored with its lease so that any
//! process can resume it after a crash once the lease expires.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{CommitSha, ImageRef, ProbeReport, ServerId, TaskHandle, Timestamp};
use crate::error::{EntityKind, Error, Result};

/// A build's id as the builder reports it (CodeBuild build id, local build id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct BuildId(String);

impl BuildId {
    /// Wraps a build id: 1-1024 visible ASCII characters.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        if (1..=1024).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_graphic()) {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "build_id",
                format!("{raw:?} is not a build id"),
            ))
        }
    }

    /// The id string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<BuildId> for String {
    fn from(v: BuildId) -> String {
        v.0
    }
}

impl TryFrom<String> for BuildId {
    type Error = Error;
    fn try_from(v: String) -> Result<Self> {
        Self::new(v)
    }
}

/// The steps of a verification, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStep {
    /// Resolve the followed ref to a commit.
    ResolveCommit,
    /// Build and push the image.
    Build,
    /// Resolve the pushed tag to its digest.
    ResolveDigest,
    /// Start the image once and check it speaks MCP.
    Check,
    /// Record the new image, commit and tools.
    Record,
}

impl fmt::Display for VerificationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerificationStep::ResolveCommit => "resolve-commit",
            VerificationStep::Build => "build",
            VerificationStep::ResolveDigest => "resolve-digest",
            VerificationStep::Check => "check",
            VerificationStep::Record => "record",
        })
    }
}

/// How far a run got. Stored after every step (and on build polls, which also renews the lease).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum RunProgress {
    /// Building; `build` is `None` until the builder accepted the build.
    Building {
        /// The build, once started.
        build: Option<BuildId>,
    },
    /// The image is built and its digest resolved.
    Built {
        /// The image.
        image: ImageRef,
    },
    /// The check task runs (its handle recorded so a resumer can stop it).
    Checking {
        /// The image.
        image: ImageRef,
        /// The check task, once started.
        task: Option<TaskHandle>,
    },
    /// The probe succeeded; only the record step remains.
    Checked {
        /// The image.
        image: ImageRef,
        /// What the probe found (boxed: it is by far the largest stage, and serialises the
        /// same).
        report: Box<ProbeReport>,
    },
}

impl RunProgress {
    /// The step this progress is at.
    pub fn step(&self) -> VerificationStep {
        match self {
            RunProgress::Building { build: None } => VerificationStep::Build,
            RunProgress::Building { build: Some(_) } => VerificationStep::Build,
            RunProgress::Built { .. } | RunProgress::Checking { .. } => VerificationStep::Check,
            RunProgress::Checked { .. } => VerificationStep::Record,
        }
    }
}

/// One verification attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationRun {
    /// Unique id of the attempt.
    pub run_id: String,
    /// The commit being verified.
    pub commit: CommitSha,
    /// Whether it was forced (rebuild even when the commit is unchanged).
    pub forced: bool,
    /// When it started.
    pub started_at: Timestamp,
    /// How far it got.
    pub progress: RunProgress,
}

/// A verification lease: at most one holder per server, with an expiry and a fencing token.
///
/// The token grows by one on every acquisition (including take-over of an expired lease); every
/// write of the holder carries it, and a write with a stale token fails with
/// [`Error::LeaseLost`], so a worker that paused past its expiry cannot clobber its successor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationLease {
    /// The server.
    pub server_id: ServerId,
    /// Who holds it (process / worker id).
    pub holder: String,
    /// Fencing token.
    pub token: u64,
    /// When it was (last) acquired.
    pub acquired_at: Timestamp,
    /// When it may be taken over.
    pub expires_at: Timestamp,
    /// The run it protects.
    pub run: VerificationRun,
}

impl VerificationLease {
    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// The lease a new holder gets, given the stored one (`current`, expired or not, `None` once
    /// released) and the highest token ever issued for the server. With `run = Some(..)` a new run
    /// starts; with `None` the holder takes over the stored run (resume after a crash).
    /// Repositories call it inside the transaction that stores the result.
    ///
    /// # Errors
    /// `VerificationInProgress` while `current` is live at `now` (whoever holds it);
    /// `NotFound` (lease) when resuming and there is no stored run.
    pub fn grant(
        server_id: &ServerId,
        current: Option<&VerificationLease>,
        last_token: u64,
        holder: &str,
        run: Option<VerificationRun>,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<VerificationLease> {
        if let Some(cur) = current {
            if !cur.is_expired(now) {
                return Err(cur.in_progress());
            }
        }
        let run = match run {
            Some(run) => run,
            None => current
                .map(|l| l.run.clone())
                .ok_or_else(|| Error::not_found(EntityKind::Lease, server_id))?,
        };
        Ok(VerificationLease {
            server_id: server_id.clone(),
            holder: holder.to_owned(),
            token: last_token.saturating_add(1),
            acquired_at: now,
            expires_at,
            run,
        })
    }

    /// Applies a heartbeat of the holder of `update.token` to this stored lease: only the run's
    /// progress and the expiry may change.
    ///
    /// # Errors
    /// `LeaseLost` when `update` carries another token (the lease was taken over).
    pub fn heartbeat(&mut self, update: &VerificationLease) -> Result<()> {
        self.ensure_token(update)?;
        self.run = update.run.clone();
        self.expires_at = update.expires_at;
        Ok(())
    }

    /// Fencing: `Ok` when `held` (what a worker holds) carries this stored lease's token.
    ///
    /// # Errors
    /// `LeaseLost` otherwise.
    pub fn ensure_token(&self, held: &VerificationLease) -> Result<()> {
        if self.server_id == held.server_id && self.token == held.token {
            Ok(())
        } else {
            Err(held.lost())
        }
    }

    /// The error a worker holding this lease gets once it was released or taken over.
    pub fn lost(&self) -> Error {
        Error::LeaseLost {
            server_id: self.server_id.clone(),
            token: self.token,
        }
    }

    /// The error a second caller gets while this lease is live.
    pub fn in_progress(&self) -> Error {
        Error::VerificationInProgress {
            server_id: self.server_id.clone(),
            holder: self.holder.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// Why a verification failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationFailure {
    /// The failed step.
    pub step: VerificationStep,
    /// Why, for humans (build failure phase, probe outcome…).
    pub reason: String,
    /// The commit that was being verified, when known.
    pub commit: Option<CommitSha>,
    /// A link to the build log, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// When.
    pub at: Timestamp,
    /// Whether a retry may succeed.
    pub retryable: bool,
}
