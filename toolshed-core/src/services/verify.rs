//! Verify / re-verify a server: resolve the commit, build, resolve the digest, start the image
//! once and check it speaks MCP, then record everything in one write.
//!
//! The run's progress is stored with its lease after every step, so the work is a sequence of
//! [`Toolshed::step_verification`] calls that any process can continue: `verify_server` runs them
//! all, `start_verification` returns after storing the run (an HTTP handler answers 202), and
//! `resume_verification` takes over an expired lease and continues from the stored step.

use tracing::{debug, info, warn};

use super::config::{plus, since};
use super::heartbeat::{Heartbeat, LeaseCell};
use super::metadata::MetadataOutcome;
use super::Toolshed;
use crate::domain::conformance;
use crate::domain::drift::{self, tools_digest};
use crate::domain::poisoning::{self, ScanInput};
use crate::domain::server_json::PackageSource;
use crate::domain::{
    failure_reason, package_dockerfile, Endpoint, ImageRef, ImageTag, OciReference, PhaseTimings,
    ProbeReport, RemoteTarget, RunProgress, Server, ServerId, TaskHandle, ToolInventory,
    ToolsOutcome, VerificationFailure, VerificationLease, VerificationPhase, VerificationRun,
    VerificationState, VerificationStep, VerifiedImage,
};
use crate::error::{Error, Result};
use crate::ports::{BuildRequest, BuildStatus, TaskSpec, TaskState, VerificationCompletion};

/// Options of a verification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Rebuild even when the commit is unchanged and the image still exists.
    pub force: bool,
}

/// What `start_verification` did.
// Returned once per call, never stored in bulk: boxing would only add noise for callers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum StartOutcome {
    /// The last verified commit is current and its image still exists: nothing to do.
    UpToDate(Server),
    /// A run was stored under a fresh lease; continue it with [`Toolshed::drive_verification`]
    /// (or let another process resume it once the lease expires).
    Started(VerificationLease),
}

/// What one [`Toolshed::step_verification`] did.
// Returned once per call, never stored in bulk: boxing would only add noise for callers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Progress was stored; call again with this (renewed) lease.
    Continue(VerificationLease),
    /// The verification was recorded; the lease is released.
    Done(Server),
}

/// What `verify_server` / `resume_verification` did.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifyOutcome {
    /// Nothing to do.
    UpToDate(Server),
    /// Verified; `server` is re-read after the metadata step.
    Verified {
        /// The server as recorded.
        server: Server,
        /// What the metadata step did (it never fails the verification).
        metadata: MetadataOutcome,
    },
}

impl VerifyOutcome {
    /// The server either way.
    pub fn server(&self) -> &Server {
        match self {
            VerifyOutcome::UpToDate(s) | VerifyOutcome::Verified { server: s, .. } => s,
        }
    }
}

/// A step's failure, before it is recorded.
#[derive(Debug)]
struct StepFailure {
    step: VerificationStep,
    reason: String,
    log_url: Option<String>,
    retryable: bool,
}

/// Why a step stopped.
#[derive(Debug)]
enum StepError {
    /// Stop without writing anything (the lease was lost: the successor owns the run).
    Abort(Error),
    /// Record the failure and release the lease.
    Fail(StepFailure),
    /// Record the failure and release the lease, then answer this error rather than
    /// `VerificationFailed` (a refusal the caller must see as such, e.g. `EgressRefused`).
    Refused(StepFailure, Error),
}

/// Maps a port error at `step`: a lost lease aborts, anything else fails the step.
fn at(step: VerificationStep) -> impl Fn(Error) -> StepError {
    move |e| match e {
        Error::LeaseLost { .. } => StepError::Abort(e),
        other => StepError::Fail(StepFailure {
            step,
            reason: other.to_string(),
            log_url: None,
            retryable: other.is_retryable(),
        }),
    }
}

fn fail(step: VerificationStep, reason: impl Into<String>, retryable: bool) -> StepError {
    StepError::Fail(StepFailure {
        step,
        reason: reason.into(),
        log_url: None,
        retryable,
    })
}

fn inventory(report: &ProbeReport) -> ToolInventory {
    ToolInventory {
        server_info: Some(report.server.clone()),
        tools: report.tools().to_vec(),
        gated_reason: match &report.tools {
            ToolsOutcome::Gated { reason } => Some(reason.clone()),
            ToolsOutcome::Listed { .. } => None,
        },
        findings: Vec::new(),
        digest: Some(tools_digest(report.tools())),
        drift: None,
        conformance: Some(conformance::assess(report)),
    }
}

/// The image an imported `oci` server runs, pinned by the digest its import recorded; `None`
/// for every other server.
fn published_image(server: &Server) -> Option<Result<ImageRef>> {
    match server.origin.package() {
        Some(PackageSource::Oci { reference }) => Some(pinned_image(reference)),
        _ => None,
    }
}

fn pinned_image(reference: &str) -> Result<ImageRef> {
    let parsed = OciReference::parse(reference)?;
    let digest = parsed
        .digest
        .clone()
        .ok_or_else(|| Error::invalid("image", format!("{reference} is not pinned by digest")))?;
    let tag = ImageTag::new(parsed.tag.as_deref().unwrap_or("published"))?;
    ImageRef::new(parsed.repository, tag, digest)
}

/// Servers read per page when collecting the tool names of the other verified servers.
const SERVERS_PAGE: usize = 1000;

impl Toolshed {
    /// Verifies a server and waits: up to date → nothing; otherwise build, check, record, then
    /// fill missing metadata.
    ///
    /// # Errors
    /// `NotFound`; `VerificationInProgress` when another run holds the lease (no second build);
    /// `VerificationFailed` with the failed step (the failure is recorded, the last good image
    /// untouched); `LeaseLost` if this worker's lease was taken over meanwhile.
    pub async fn verify_server(
        &self,
        server_id: &ServerId,
        options: VerifyOptions,
    ) -> Result<VerifyOutcome> {
        match self.start_verification(server_id, options).await? {
            StartOutcome::UpToDate(server) => Ok(VerifyOutcome::UpToDate(server)),
            StartOutcome::Started(lease) => self.finish(lease).await,
        }
    }

    /// The stepwise start: resolves the commit, and either reports "up to date" or stores a new
    /// run under a fresh lease and returns at once.
    ///
    /// # Errors
    /// As [`Self::verify_server`]; a commit that cannot be resolved is `VerificationFailed` at
    /// `ResolveCommit` (recorded on the server).
    pub async fn start_verification(
        &self,
        server_id: &ServerId,
        options: VerifyOptions,
    ) -> Result<StartOutcome> {
        let p = &self.ports;
        let began = p.clock.now();
        let server = p.repository.get_server(server_id).await?;
        // An imported server's package pin stands for the commit (see
        // `ServerOrigin::fingerprint`): the same name and version is "unchanged".
        let commit = match server.origin.fingerprint() {
            Some(pin) => pin,
            None => match p.source.resolve_commit(&server.repo, &server.git_ref).await {
                Ok(c) => c,
                Err(e) => return Err(self.record_resolve_failure(server_id, e).await),
            },
        };
        // A candidate of this very commit already waits for review: building it again would
        // only replace the digest a reviewer may be about to approve.
        if !options.force && server.pending_commit() == Some(&commit) {
            if let Some(pending) = &server.pending_review {
                if p.images.contains(&pending.image.image).await? {
                    info!(server = %server_id, %commit, "up to date: this commit waits for review");
                    return Ok(StartOutcome::UpToDate(server));
                }
            }
        }
        if !options.force && server.last_verified_commit() == Some(&commit) {
            if let Some(current) = &server.image {
                // A published image lives in its publisher's registry, not in the store.
                if published_image(&server).is_some() || p.images.contains(&current.image).await? {
                    info!(server = %server_id, %commit, "up to date: commit unchanged and image present");
                    return Ok(StartOutcome::UpToDate(server));
                }
                info!(server = %server_id, "image of the verified commit is gone: rebuilding");
            }
        }
        let now = p.clock.now();
        let mut timings = PhaseTimings::start(began);
        timings.end(VerificationPhase::ResolveCommit, now);
        let run = VerificationRun {
            run_id: uuid::Uuid::new_v4().simple().to_string(),
            commit,
            forced: options.force,
            started_at: now,
            progress: RunProgress::Building { build: None },
            timings: Some(timings),
        };
        let lease = p
            .repository
            .acquire_lease(
                server_id,
                &self.config.worker_id,
                Some(run),
                now,
                plus(now, self.config.lease_ttl),
            )
            .await?;
        info!(server = %server_id, run = %lease.run.run_id, token = lease.token, "verification started");
        Ok(StartOutcome::Started(lease))
    }

    /// Takes over the expired lease of a crashed run and continues it from its stored step (an
    /// already started build is polled, not started again), then fills missing metadata.
    ///
    /// # Errors
    /// `VerificationInProgress` while the lease is live; `NotFound` when there is no run to
    /// resume; otherwise as [`Self::verify_server`].
    pub async fn resume_verification(&self, server_id: &ServerId) -> Result<VerifyOutcome> {
        let lease = self.take_over_verification(server_id).await?;
        self.finish(lease).await
    }

    /// Takes over the expired lease of a crashed run, ready to drive (see
    /// [`Self::resume_verification`]).
    pub(crate) async fn take_over_verification(
        &self,
        server_id: &ServerId,
    ) -> Result<VerificationLease> {
        let now = self.ports.clock.now();
        let lease = self
            .ports
            .repository
            .acquire_lease(
                server_id,
                &self.config.worker_id,
                None,
                now,
                plus(now, self.config.lease_ttl),
            )
            .await?;
        info!(server = %server_id, run = %lease.run.run_id, token = lease.token, step = %lease.run.progress.step(), "resuming verification");
        self.prepare_takeover(lease).await
    }

    /// What a new holder checks before continuing a crashed holder's run.
    async fn prepare_takeover(&self, lease: VerificationLease) -> Result<VerificationLease> {
        let lease = self.restart_lost_build(lease).await?;
        self.restart_stale_check(lease).await
    }

    /// After a take-over: a build the builder no longer knows (a local builder tracks its builds
    /// in the process that died) will never report an outcome, so the build starts again
    /// instead of failing the run. Builds a remote builder still knows are polled as usual.
    async fn restart_lost_build(&self, mut lease: VerificationLease) -> Result<VerificationLease> {
        let RunProgress::Building { build: Some(build) } = &lease.run.progress else {
            return Ok(lease);
        };
        match self.ports.builder.build_status(build).await {
            Err(Error::NotFound { .. }) => {
                info!(server = %lease.server_id, %build, "previous build is unknown to the builder; building again");
                lease.run.progress = RunProgress::Building { build: None };
                self.ports.repository.save_progress(&lease).await
            }
            // Known (or a transient error): the first poll of the driver decides.
            _ => Ok(lease),
        }
    }

    /// After a take-over: a check task the previous holder started but that no longer runs (it
    /// may have stopped it just before crashing) says nothing about the image, so the check
    /// starts again from the built image rather than failing the run.
    async fn restart_stale_check(&self, mut lease: VerificationLease) -> Result<VerificationLease> {
        let RunProgress::Checking {
            image,
            task: Some(task),
        } = &lease.run.progress
        else {
            return Ok(lease);
        };
        let status = self.ports.runner.describe(task).await?;
        if status.state.is_live() {
            return Ok(lease);
        }
        info!(server = %lease.server_id, %task, "previous check task is gone; checking again");
        lease.run.progress = RunProgress::Built {
            image: image.clone(),
        };
        self.ports.repository.save_progress(&lease).await
    }

    /// Runs the remaining steps of a run to the end (without the metadata step).
    ///
    /// # Errors
    /// As [`Self::step_verification`].
    pub async fn drive_verification(&self, mut lease: VerificationLease) -> Result<Server> {
        loop {
            match self.step_verification(&lease).await? {
                StepOutcome::Continue(next) => lease = next,
                StepOutcome::Done(server) => return Ok(server),
            }
        }
    }

    /// Advances a run by one step (start build, one build poll, resolve digest, check, record)
    /// and stores its progress, renewing the lease.
    ///
    /// # Errors
    /// `VerificationFailed` (recorded, lease released); `LeaseLost` (nothing written).
    pub async fn step_verification(&self, lease: &VerificationLease) -> Result<StepOutcome> {
        let cell = LeaseCell::new(lease.clone());
        // Renews the lease while the step works, however long its single wait; stops when the
        // step returns (dropped).
        let _heartbeat = Heartbeat::start(
            cell.clone(),
            self.ports.repository.clone(),
            self.ports.clock.clone(),
            self.config.lease_heartbeat,
            self.config.lease_ttl,
        );
        match self.advance(lease.clone(), &cell).await {
            Ok(outcome) => Ok(outcome),
            Err(StepError::Abort(e)) => {
                warn!(server = %lease.server_id, token = lease.token, error = %e, "verification aborted");
                Err(e)
            }
            Err(StepError::Fail(f)) => Err(self.record_failure(lease, f).await),
            Err(StepError::Refused(f, refusal)) => match self.record_failure(lease, f).await {
                e @ Error::LeaseLost { .. } => Err(e),
                _ => Err(refusal),
            },
        }
    }

    /// Drives a run to the end, then fills missing metadata.
    pub(crate) async fn finish(&self, lease: VerificationLease) -> Result<VerifyOutcome> {
        let server_id = lease.server_id.clone();
        let recorded = self.drive_verification(lease).await?;
        let metadata = match self.fill_missing_metadata(&server_id).await {
            Ok(m) => m,
            Err(e) => {
                warn!(server = %server_id, error = %e, "metadata step failed");
                MetadataOutcome::Failed {
                    reason: e.to_string(),
                }
            }
        };
        let server = match self.ports.repository.get_server(&server_id).await {
            Ok(s) => s,
            Err(_) => recorded,
        };
        Ok(VerifyOutcome::Verified { server, metadata })
    }

    async fn advance(
        &self,
        mut lease: VerificationLease,
        cell: &LeaseCell,
    ) -> Result<StepOutcome, StepError> {
        let p = &self.ports;
        let run = lease.run.clone();
        match run.progress {
            RunProgress::Building { build: None } => {
                let server = p
                    .repository
                    .get_server(&lease.server_id)
                    .await
                    .map_err(at(VerificationStep::Build))?;
                // A remote is someone else's server: a handshake at its URL, no build, no task.
                if let Some(url) = server.origin.remote_url() {
                    return self.verify_remote(lease, &server, url.to_owned()).await;
                }
                // A published image is checked as it is: no build.
                if let Some(image) = published_image(&server) {
                    let image = image.map_err(at(VerificationStep::Build))?;
                    info!(server = %lease.server_id, image = %image, "published image: no build");
                    lease.run.end_phase(VerificationPhase::Build, p.clock.now());
                    lease.run.progress = RunProgress::Built { image };
                    return self.heartbeat(lease, VerificationStep::Build, cell).await;
                }
                let dockerfile = package_dockerfile(&server, &self.config.package_build);
                if server.origin.package().is_some() && dockerfile.is_none() {
                    return Err(fail(
                        VerificationStep::Build,
                        format!(
                            "server {} is imported from a source this host does not build",
                            server.id
                        ),
                        false,
                    ));
                }
                let request = BuildRequest {
                    server_id: server.id.clone(),
                    repo: server.repo.clone(),
                    commit: run.commit.clone(),
                    tag: ImageTag::for_build_spec(&server.id, &run.commit, &server.build),
                    repository: p.images.repository(),
                    transport: server.transport.clone(),
                    build: server.build.clone(),
                    dockerfile,
                    idempotency_token: run.run_id.clone(),
                };
                let build = p
                    .builder
                    .start_build(&request)
                    .await
                    .map_err(at(VerificationStep::Build))?;
                info!(server = %lease.server_id, %build, "build started");
                lease.run.progress = RunProgress::Building { build: Some(build) };
                self.heartbeat(lease, VerificationStep::Build, cell).await
            }
            RunProgress::Building { build: Some(build) } => {
                let status = p
                    .builder
                    .build_status(&build)
                    .await
                    .map_err(at(VerificationStep::Build))?;
                match status {
                    BuildStatus::InProgress { phase } => {
                        let elapsed = since(p.clock.now(), run.started_at);
                        if elapsed >= self.config.build_timeout {
                            // Stop the build itself: it must not keep running (and using the
                            // builder's capacity) for a verification that has given up on it.
                            if let Err(e) = p.builder.cancel_build(&build).await {
                                warn!(server = %lease.server_id, %build, error = %e, "cannot cancel the timed-out build");
                            }
                            return Err(fail(
                                VerificationStep::Build,
                                format!(
                                    "build {build} did not finish within {} s",
                                    self.config.build_timeout.as_secs()
                                ),
                                true,
                            ));
                        }
                        debug!(server = %lease.server_id, %build, ?phase, "build in progress");
                        let lease =
                            match self.heartbeat(lease, VerificationStep::Build, cell).await? {
                                StepOutcome::Continue(l) => l,
                                done => return Ok(done),
                            };
                        p.clock.sleep(self.config.build_poll_interval).await;
                        Ok(StepOutcome::Continue(lease))
                    }
                    BuildStatus::Failed {
                        phase,
                        reason,
                        log_url,
                        retryable,
                    } => Err(StepError::Fail(StepFailure {
                        step: VerificationStep::Build,
                        reason: match phase {
                            Some(phase) => format!("build failed in phase {phase}: {reason}"),
                            None => format!("build failed: {reason}"),
                        },
                        log_url,
                        retryable,
                    })),
                    BuildStatus::Succeeded => {
                        lease.run.end_phase(VerificationPhase::Build, p.clock.now());
                        // The tag the build was started with: it depends on the server's build
                        // spec, which registration fixes.
                        let server = p
                            .repository
                            .get_server(&lease.server_id)
                            .await
                            .map_err(at(VerificationStep::ResolveDigest))?;
                        let tag = ImageTag::for_build_spec(&server.id, &run.commit, &server.build);
                        let image = p
                            .images
                            .resolve_tag(&tag)
                            .await
                            .map_err(at(VerificationStep::ResolveDigest))?
                            .ok_or_else(|| {
                                fail(
                                    VerificationStep::ResolveDigest,
                                    format!(
                                        "build {build} succeeded but tag {tag} is not in {}",
                                        p.images.repository()
                                    ),
                                    true,
                                )
                            })?;
                        info!(server = %lease.server_id, image = %image, "image built");
                        lease
                            .run
                            .end_phase(VerificationPhase::ResolveDigest, p.clock.now());
                        lease.run.progress = RunProgress::Built { image };
                        self.heartbeat(lease, VerificationStep::ResolveDigest, cell)
                            .await
                    }
                }
            }
            RunProgress::Built { image } | RunProgress::Checking { image, task: None } => {
                let server = p
                    .repository
                    .get_server(&lease.server_id)
                    .await
                    .map_err(at(VerificationStep::Check))?;
                let expires = plus(p.clock.now(), self.config.check_task_ttl);
                let mut spec =
                    TaskSpec::for_check(&server, image.clone(), &run.run_id, lease.token, expires);
                spec.env = self
                    .check_env(&server)
                    .await
                    .map_err(at(VerificationStep::Check))?;
                p.runner
                    .prepare(&spec)
                    .await
                    .map_err(at(VerificationStep::Check))?;
                let task = p
                    .runner
                    .start(&spec)
                    .await
                    .map_err(at(VerificationStep::Check))?;
                info!(server = %lease.server_id, %task, "check task started");
                lease
                    .run
                    .end_phase(VerificationPhase::StartCheckTask, p.clock.now());
                lease.run.progress = RunProgress::Checking {
                    image,
                    task: Some(task.clone()),
                };
                let out = self.heartbeat(lease, VerificationStep::Check, cell).await;
                if out.is_err() {
                    self.stop_check_task(&task).await;
                }
                out
            }
            RunProgress::Checking {
                image,
                task: Some(task),
            } => {
                let probed = self.check(&mut lease, &task, cell).await;
                // Always stop the check task, whatever the probe said.
                self.stop_check_task(&task).await;
                let report = probed?;
                lease
                    .run
                    .end_phase(VerificationPhase::StopCheckTask, p.clock.now());
                info!(server = %lease.server_id, tools = report.tools().len(), "MCP check passed");
                lease.run.progress = RunProgress::Checked {
                    image,
                    report: Box::new(report),
                };
                self.heartbeat(lease, VerificationStep::Check, cell).await
            }
            RunProgress::Checked { image, report } => {
                // The checked image leaves the candidates (which the registry expires) for its
                // verified tag (which it never expires) before it is recorded as the last good one.
                // A published image stays in its publisher's registry, recorded by digest.
                let published = image.repository() != p.images.repository();
                let image = if published {
                    image
                } else {
                    let verified =
                        ImageTag::verified(&lease.server_id, &run.commit, image.digest());
                    p.images
                        .promote(&image, &verified)
                        .await
                        .map_err(at(VerificationStep::Record))?
                };
                lease
                    .run
                    .end_phase(VerificationPhase::StoreImage, p.clock.now());
                self.record_completion(&mut lease, Some(image), &report)
                    .await
            }
        }
    }

    /// Verifies a remote by one probe at its URL through the egress policy (the declared
    /// headers carry the server's test values), then records it verified without an image. An
    /// egress refusal is recorded as the check's failure and answered as `EgressRefused`.
    async fn verify_remote(
        &self,
        mut lease: VerificationLease,
        server: &Server,
        url: String,
    ) -> Result<StepOutcome, StepError> {
        let step = VerificationStep::Check;
        let headers = self.check_env(server).await.map_err(at(step))?;
        let target = RemoteTarget { url, headers };
        let report = match self
            .ports
            .probe
            .probe_remote(&target, self.config.readiness_deadline)
            .await
        {
            Ok(report) => report,
            Err(refusal @ Error::EgressRefused { .. }) => {
                let failure = StepFailure {
                    step,
                    reason: refusal.to_string(),
                    log_url: None,
                    retryable: false,
                };
                return Err(StepError::Refused(failure, refusal));
            }
            Err(e) => return Err(at(step)(e)),
        };
        lease
            .run
            .end_phase(VerificationPhase::McpHandshake, self.ports.clock.now());
        info!(server = %lease.server_id, url = %target.public_url(), tools = report.tools().len(), "remote answered MCP");
        self.record_completion(&mut lease, None, &report).await
    }

    /// The record step: the probed tools assessed and the completion written under the
    /// promotion policy, releasing the lease. `image` is `None` for a remote.
    async fn record_completion(
        &self,
        lease: &mut VerificationLease,
        image: Option<ImageRef>,
        report: &ProbeReport,
    ) -> Result<StepOutcome, StepError> {
        let p = &self.ports;
        let tools = self
            .assess(&lease.server_id, report)
            .await
            .map_err(at(VerificationStep::Record))?;
        let now = p.clock.now();
        lease.run.end_phase(VerificationPhase::ScanTools, now);
        let run = &lease.run;
        let completion = VerificationCompletion {
            image: image.map(|image| VerifiedImage {
                image,
                commit: run.commit.clone(),
                verified_at: now,
            }),
            tools,
            policy: self.config.promotion_policy,
            timings: run.timings.clone(),
        };
        let server = p
            .repository
            .complete_verification(lease, &completion, now)
            .await
            .map_err(at(VerificationStep::Record))?;
        match &server.pending_review {
            Some(pending) => info!(
                server = %server.id,
                commit = %run.commit,
                reasons = pending.reasons.len(),
                "verification held for review; the live image is unchanged"
            ),
            None => info!(server = %server.id, commit = %run.commit, "verification recorded"),
        }
        Ok(StepOutcome::Done(server))
    }

    /// The inventory to record: the probed tools, what the tool-poisoning scan finds in them
    /// (the other verified servers' tool names feed the shadowing rule) and the drift from the
    /// previous verified version. Findings and drift are information: only a repository that
    /// cannot be read fails (the record step, retryable like the write that follows).
    async fn assess(&self, server_id: &ServerId, report: &ProbeReport) -> Result<ToolInventory> {
        let repo = &self.ports.repository;
        let mut inventory = inventory(report);
        let mut others: Vec<(String, Vec<String>)> = Vec::new();
        let mut after = None;
        loop {
            let page = repo.list_servers(after.clone(), SERVERS_PAGE).await?;
            let full = page.len() == SERVERS_PAGE;
            after = page.last().map(|s| s.id.clone());
            others.extend(
                page.into_iter()
                    .filter(|s| &s.id != server_id && s.image.is_some())
                    .map(|s| {
                        let names = s.tools.tools.into_iter().map(|t| t.name).collect();
                        (s.id.to_string(), names)
                    }),
            );
            if !full {
                break;
            }
        }
        inventory.findings = poisoning::scan(ScanInput {
            tools: &inventory.tools,
            instructions: report.server.instructions.as_deref(),
            prompts: &report.listing.prompts,
            other_servers_tools: &others,
        });
        let previous = repo.get_server(server_id).await?;
        // A gated listing says nothing about the tools: there is nothing to compare with it. A
        // remote has no image: its last completed verification is what it is compared with.
        let verified_before = previous.image.is_some()
            || (previous.origin.remote_url().is_some() && previous.verification_count > 0);
        if verified_before
            && previous.tools.gated_reason.is_none()
            && inventory.gated_reason.is_none()
        {
            inventory.drift = drift::compare(
                &previous.tools.tools,
                previous.last_verified_commit(),
                &inventory.tools,
            );
        }
        if !inventory.findings.is_empty() || inventory.drift.is_some() {
            info!(
                server = %server_id,
                findings = inventory.findings.len(),
                highest = ?poisoning::highest_severity(&inventory.findings),
                drift = inventory.drift.as_ref().map_or(0, |d| d.changes.len()),
                "tools assessed"
            );
        }
        Ok(inventory)
    }

    /// Waits for the check task's endpoint (renewing the lease), then for the MCP handshake.
    async fn check(
        &self,
        lease: &mut VerificationLease,
        task: &TaskHandle,
        cell: &LeaseCell,
    ) -> Result<ProbeReport, StepError> {
        let p = &self.ports;
        let step = VerificationStep::Check;
        let deadline = plus(p.clock.now(), self.config.task_start_timeout);
        let endpoint: Endpoint = loop {
            let status = p.runner.describe(task).await.map_err(at(step))?;
            match (status.state, status.endpoint) {
                (TaskState::Running, Some(endpoint)) => break endpoint,
                (TaskState::Stopped { reason, exit_code }, _) => {
                    return Err(fail(
                        step,
                        format!(
                            "check task {task} stopped before serving MCP: {} (exit code {})",
                            reason.as_deref().unwrap_or("no reason given"),
                            exit_code.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
                        ),
                        false,
                    ))
                }
                (TaskState::Missing, _) => {
                    return Err(fail(step, format!("check task {task} vanished"), true))
                }
                _ => {
                    if p.clock.now() >= deadline {
                        return Err(fail(
                            step,
                            format!(
                                "check task {task} had no endpoint within {} s",
                                self.config.task_start_timeout.as_secs()
                            ),
                            true,
                        ));
                    }
                    *lease = self.renew(lease.clone(), step, cell).await?;
                    p.clock.sleep(self.config.task_poll_interval).await;
                }
            }
        };
        lease
            .run
            .end_phase(VerificationPhase::AwaitEndpoint, p.clock.now());
        // A fresh expiry that covers the whole readiness wait.
        *lease = self.renew(lease.clone(), step, cell).await?;
        let report = p
            .probe
            .wait_ready(&endpoint, self.config.readiness_deadline)
            .await
            .map_err(at(step))?;
        lease
            .run
            .end_phase(VerificationPhase::McpHandshake, p.clock.now());
        // How long the image takes to start and to load is what a session of it will wait too.
        let timing = |phase| lease.run.timings.as_ref().and_then(|t| t.millis(phase));
        info!(
            server = %lease.server_id,
            %task,
            endpoint_ms = timing(VerificationPhase::AwaitEndpoint),
            mcp_ready_ms = timing(VerificationPhase::McpHandshake),
            "check task answered MCP"
        );
        Ok(report)
    }

    async fn stop_check_task(&self, task: &TaskHandle) {
        if let Err(e) = self
            .ports
            .runner
            .stop(task, "toolshed: verification check finished")
            .await
        {
            // The sweep stops it once its label expiry passes.
            warn!(%task, error = %e, "could not stop the check task");
        }
    }

    /// Stores the run's progress with a fresh expiry, through the run's [`LeaseCell`].
    async fn renew(
        &self,
        lease: VerificationLease,
        step: VerificationStep,
        cell: &LeaseCell,
    ) -> Result<VerificationLease, StepError> {
        cell.save(
            self.ports.repository.as_ref(),
            self.ports.clock.as_ref(),
            self.config.lease_ttl,
            lease,
        )
        .await
        .map_err(at(step))
    }

    async fn heartbeat(
        &self,
        lease: VerificationLease,
        step: VerificationStep,
        cell: &LeaseCell,
    ) -> Result<StepOutcome, StepError> {
        self.renew(lease, step, cell)
            .await
            .map(StepOutcome::Continue)
    }

    /// Records a step failure and releases the lease; returns the error for the caller.
    async fn record_failure(&self, lease: &VerificationLease, f: StepFailure) -> Error {
        // Users see the step, a summary and the log's tail; the full text stays in this log line.
        let reason = failure_reason(&f.reason);
        let failure = VerificationFailure {
            step: f.step,
            reason: reason.clone(),
            commit: Some(lease.run.commit.clone()),
            log_url: f.log_url,
            at: self.ports.clock.now(),
            retryable: f.retryable,
        };
        warn!(server = %lease.server_id, step = %f.step, reason = %f.reason, "verification failed");
        match self
            .ports
            .repository
            .fail_verification(lease, &failure)
            .await
        {
            Ok(_) => {}
            Err(e @ Error::LeaseLost { .. }) => return e,
            // The lease stays until it expires; a resumer retries the step.
            Err(e) => warn!(server = %lease.server_id, error = %e, "could not record the failure"),
        }
        Error::VerificationFailed {
            server_id: lease.server_id.clone(),
            step: f.step,
            reason,
            retryable: f.retryable,
        }
    }

    /// A commit that cannot be resolved happens before any lease (a run needs a commit): it is
    /// recorded with a versioned update instead, leaving the image untouched.
    async fn record_resolve_failure(&self, server_id: &ServerId, e: Error) -> Error {
        warn!(server = %server_id, error = %e, "could not resolve the commit");
        let reason = failure_reason(&e.to_string());
        let retryable = e.is_retryable();
        let at = self.ports.clock.now();
        let failure = VerificationFailure {
            step: VerificationStep::ResolveCommit,
            reason: reason.clone(),
            commit: None,
            log_url: None,
            at,
            retryable,
        };
        let recorded = self
            .update_server_with_retry(server_id, |s| {
                s.state = VerificationState::Failed;
                s.last_failure = Some(failure.clone());
                s.updated_at = at;
            })
            .await;
        if let Err(err) = recorded {
            warn!(server = %server_id, error = %err, "could not record the resolve failure");
        }
        Error::VerificationFailed {
            server_id: server_id.clone(),
            step: VerificationStep::ResolveCommit,
            reason,
            retryable,
        }
    }

    /// Re-reads and re-applies `change` on `Conflict`, up to `conflict_retries` times.
    pub(crate) async fn update_server_with_retry(
        &self,
        server_id: &ServerId,
        mut change: impl FnMut(&mut Server),
    ) -> Result<Server> {
        let repo = &self.ports.repository;
        let mut attempt = 0;
        loop {
            let mut server = repo.get_server(server_id).await?;
            change(&mut server);
            match repo.update_server(&server).await {
                Err(Error::Conflict { .. }) if attempt < self.config.conflict_retries => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
