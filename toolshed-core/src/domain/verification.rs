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

/// The phases of a verification whose durations are recorded, in the order they run. Finer
/// than [`VerificationStep`]: a step that waits (the build, the check) is split where its waits
/// are, so a slow verification says which wait was slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationPhase {
    /// Resolve the followed ref (or an imported server's package pin) to a commit.
    ResolveCommit,
    /// Start the build and poll it until it succeeded (pushing the image included).
    Build,
    /// Resolve the pushed tag to its digest in the image store.
    ResolveDigest,
    /// Prepare and start the check task.
    StartCheckTask,
    /// Wait until the check task runs and has an endpoint.
    AwaitEndpoint,
    /// The MCP handshake and the listings of tools (and prompts) the probe takes.
    McpHandshake,
    /// Stop the check task.
    StopCheckTask,
    /// Move the checked image to its verified tag in the image store.
    StoreImage,
    /// Scan the listed tools (poisoning rules, drift from the previous version).
    ScanTools,
}

impl fmt::Display for VerificationPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so a width given by the caller lines up columns.
        f.pad(match self {
            VerificationPhase::ResolveCommit => "resolve-commit",
            VerificationPhase::Build => "build",
            VerificationPhase::ResolveDigest => "resolve-digest",
            VerificationPhase::StartCheckTask => "start-check-task",
            VerificationPhase::AwaitEndpoint => "await-endpoint",
            VerificationPhase::McpHandshake => "mcp-handshake",
            VerificationPhase::StopCheckTask => "stop-check-task",
            VerificationPhase::StoreImage => "store-image",
            VerificationPhase::ScanTools => "scan-tools",
        })
    }
}

/// How long one phase took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// The phase.
    pub phase: VerificationPhase,
    /// Its duration in milliseconds (the sum of its runs, when a take-over ran it again).
    pub millis: u64,
}

/// The durations of a verification's phases, measured on the [`Clock`](crate::ports::Clock)
/// port like every other elapsed time of a run (so they survive a take-over by another process,
/// and a manual clock makes them exact in tests).
///
/// Phases are contiguous: each one lasts from the end of the previous one (or `started_at`) to
/// its own end, so the time between steps (progress writes, a crashed holder's expired lease)
/// counts towards the phase it interrupted and the phases add up to the total. The record
/// write that stores them is the one part not included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTimings {
    /// When the first phase began.
    pub started_at: Timestamp,
    /// When the last recorded phase ended.
    pub ended_at: Timestamp,
    /// The phases in the order they first ran.
    pub phases: Vec<PhaseTiming>,
}

impl PhaseTimings {
    /// Timings that start at `at`, with no phase yet.
    pub fn start(at: Timestamp) -> Self {
        Self {
            started_at: at,
            ended_at: at,
            phases: Vec::new(),
        }
    }

    /// Records that `phase` ended at `now`: it lasted since the end of the previous phase
    /// (zero when the clock went backwards). A phase recorded again adds to its first entry,
    /// keeping the order in which phases first ran.
    pub fn end(&mut self, phase: VerificationPhase, now: Timestamp) {
        let millis = millis_between(self.ended_at, now);
        self.ended_at = self.ended_at.max(now);
        match self.phases.iter_mut().find(|p| p.phase == phase) {
            Some(p) => p.millis = p.millis.saturating_add(millis),
            None => self.phases.push(PhaseTiming { phase, millis }),
        }
    }

    /// Milliseconds from the start to the end of the last phase.
    pub fn total_millis(&self) -> u64 {
        millis_between(self.started_at, self.ended_at)
    }

    /// The duration of `phase`, when it ran.
    pub fn millis(&self, phase: VerificationPhase) -> Option<u64> {
        self.phases
            .iter()
            .find(|p| p.phase == phase)
            .map(|p| p.millis)
    }
}

/// Whole milliseconds from `earlier` to `later`, zero when `later` is not after `earlier`.
fn millis_between(earlier: Timestamp, later: Timestamp) -> u64 {
    u64::try_from((later - earlier).num_milliseconds()).unwrap_or(0)
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
    /// How long its phases took so far; absent in runs stored before timings were kept (they
    /// then count from `started_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<PhaseTimings>,
}

impl VerificationRun {
    /// Records that `phase` of this run ended at `now` (see [`PhaseTimings::end`]).
    pub fn end_phase(&mut self, phase: VerificationPhase, now: Timestamp) {
        let started_at = self.started_at;
        self.timings
            .get_or_insert_with(|| PhaseTimings::start(started_at))
            .end(phase, now);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> Timestamp {
        chrono::DateTime::from_timestamp_millis(1_893_456_000_000 + millis).unwrap()
    }

    #[test]
    fn phases_are_contiguous_keep_their_first_order_and_never_go_negative() {
        let mut t = PhaseTimings::start(at(0));
        t.end(VerificationPhase::ResolveCommit, at(20));
        t.end(VerificationPhase::Build, at(1_020));
        // A clock that went backwards gives a phase of zero, not a negative one.
        t.end(VerificationPhase::StartCheckTask, at(900));
        // Run again after a take-over: adds to its first entry.
        t.end(VerificationPhase::Build, at(1_520));
        let phases: Vec<_> = t.phases.iter().map(|p| (p.phase, p.millis)).collect();
        assert_eq!(
            phases,
            vec![
                (VerificationPhase::ResolveCommit, 20),
                (VerificationPhase::Build, 1_500),
                (VerificationPhase::StartCheckTask, 0),
            ]
        );
        assert_eq!(t.total_millis(), 1_520);
        assert_eq!(t.millis(VerificationPhase::Build), Some(1_500));
        assert_eq!(t.millis(VerificationPhase::ScanTools), None);
    }

    #[test]
    fn a_run_stored_without_timings_loads_and_counts_from_its_start() {
        let old = serde_json::json!({
            "run_id": "r1",
            "commit": "a".repeat(40),
            "forced": false,
            "started_at": at(0),
            "progress": {"stage": "building", "build": null},
        });
        let mut run: VerificationRun = serde_json::from_value(old).unwrap();
        assert_eq!(run.timings, None);
        run.end_phase(VerificationPhase::Build, at(5_000));
        let t = run.timings.as_ref().unwrap();
        assert_eq!(t.started_at, at(0));
        assert_eq!(t.millis(VerificationPhase::Build), Some(5_000));
        // And the timings travel with the stored run.
        let again: VerificationRun =
            serde_json::from_value(serde_json::to_value(&run).unwrap()).unwrap();
        assert_eq!(again, run);
    }
}
