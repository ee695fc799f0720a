//! A scriptable image builder.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::clock::lock;
use super::image_store::InMemoryImageStore;
use crate::domain::{BuildId, ImageDigest};
use crate::error::{EntityKind, Error, Result};
use crate::ports::{BuildRequest, BuildStatus, ImageBuilder};

/// How a scripted build ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildResult {
    /// Succeeds and pushes the tag; `digest` defaults to one derived from the tag.
    Succeed {
        /// The digest to push.
        digest: Option<ImageDigest>,
    },
    /// Reports success without pushing anything (the tag then does not resolve).
    SucceedWithoutPush,
    /// Fails at `phase`.
    Fail {
        /// Failing phase, e.g. `BUILD`.
        phase: String,
        /// Why.
        reason: String,
        /// Whether a rebuild may help.
        retryable: bool,
    },
}

/// One scripted build: `in_progress_polls` statuses of `InProgress`, then `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildScript {
    /// Polls answered `InProgress` before the result.
    pub in_progress_polls: u32,
    /// The end.
    pub result: BuildResult,
}

impl BuildScript {
    /// Succeeds at the first poll.
    pub fn succeed() -> Self {
        Self {
            in_progress_polls: 0,
            result: BuildResult::Succeed { digest: None },
        }
    }

    /// Fails at the first poll in phase `BUILD`.
    pub fn fail(reason: &str) -> Self {
        Self {
            in_progress_polls: 0,
            result: BuildResult::Fail {
                phase: "BUILD".to_owned(),
                reason: reason.to_owned(),
                retryable: false,
            },
        }
    }

    /// Stays in progress for `polls` polls first.
    pub fn after_polls(mut self, polls: u32) -> Self {
        self.in_progress_polls = polls;
        self
    }
}

#[derive(Debug)]
struct Build {
    request: BuildRequest,
    polls_left: u32,
    result: BuildResult,
    pushed: bool,
    /// Whether `build_status` has reported its end (it no longer counts as in flight).
    ended: bool,
}

#[derive(Debug, Default)]
struct Inner {
    scripts: VecDeque<BuildScript>,
    start_failures: VecDeque<String>,
    builds: HashMap<BuildId, Build>,
    by_token: HashMap<String, BuildId>,
    start_calls: u32,
    status_calls: u32,
    requests: Vec<BuildRequest>,
    cancelled: Vec<BuildId>,
    in_flight: usize,
    max_in_flight: usize,
}

/// An [`ImageBuilder`] whose builds follow queued [`BuildScript`]s (default: succeed at once).
/// A successful build pushes its tag into the [`InMemoryImageStore`] it was given.
#[derive(Debug)]
pub struct FakeImageBuilder {
    store: Arc<InMemoryImageStore>,
    delay: Option<Duration>,
    inner: Mutex<Inner>,
}

impl FakeImageBuilder {
    /// A builder pushing into `store`.
    pub fn new(store: Arc<InMemoryImageStore>) -> Self {
        Self {
            store,
            delay: None,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Makes `start_build` wait `delay` (real time) before answering, to widen race windows.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Queues the script of the next new build.
    pub fn push_script(&self, script: BuildScript) {
        lock(&self.inner).scripts.push_back(script);
    }

    /// Makes the next `start_build` fail with a retryable `Backend` error.
    pub fn fail_next_start(&self, reason: &str) {
        lock(&self.inner)
            .start_failures
            .push_back(reason.to_owned());
    }

    /// How many times `start_build` was called (idempotent repeats included).
    pub fn start_calls(&self) -> u32 {
        lock(&self.inner).start_calls
    }

    /// How many distinct builds were started.
    pub fn builds_started(&self) -> usize {
        lock(&self.inner).builds.len()
    }

    /// The most builds that were in flight at once (started, end not yet reported): a second
    /// build overlapping the first shows two verifications ran at the same time.
    pub fn max_concurrent_builds(&self) -> usize {
        lock(&self.inner).max_in_flight
    }

    /// How many times `build_status` was called.
    pub fn status_calls(&self) -> u32 {
        lock(&self.inner).status_calls
    }

    /// Every request `start_build` received.
    pub fn requests(&self) -> Vec<BuildRequest> {
        lock(&self.inner).requests.clone()
    }

    /// Every build `cancel_build` was called for, in order.
    pub fn cancelled(&self) -> Vec<BuildId> {
        lock(&self.inner).cancelled.clone()
    }
}

#[async_trait]
impl ImageBuilder for FakeImageBuilder {
    async fn start_build(&self, request: &BuildRequest) -> Result<BuildId> {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let mut inner = lock(&self.inner);
        inner.start_calls += 1;
        inner.requests.push(request.clone());
        if let Some(reason) = inner.start_failures.pop_front() {
            return Err(Error::backend(
                "fake-builder",
                "StartBuild",
                Some(request.server_id.to_string()),
                true,
                reason,
            ));
        }
        if let Some(id) = inner.by_token.get(&request.idempotency_token) {
            return Ok(id.clone());
        }
        let id = BuildId::new(format!("build-{}", inner.builds.len() + 1))?;
        let script = inner
            .scripts
            .pop_front()
            .unwrap_or_else(BuildScript::succeed);
        inner.builds.insert(
            id.clone(),
            Build {
                request: request.clone(),
                polls_left: script.in_progress_polls,
                result: script.result,
                pushed: false,
                ended: false,
            },
        );
        inner.in_flight += 1;
        inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        inner
            .by_token
            .insert(request.idempotency_token.clone(), id.clone());
        Ok(id)
    }

    async fn build_status(&self, build: &BuildId) -> Result<BuildStatus> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        inner.status_calls += 1;
        let b = inner
            .builds
            .get_mut(build)
            .ok_or_else(|| Error::not_found(EntityKind::Build, build))?;
        if b.polls_left > 0 {
            b.polls_left -= 1;
            return Ok(BuildStatus::InProgress {
                phase: Some("BUILD".to_owned()),
            });
        }
        if !b.ended {
            b.ended = true;
            inner.in_flight = inner.in_flight.saturating_sub(1);
        }
        match &b.result {
            BuildResult::Succeed { digest } => {
                if !b.pushed {
                    let digest = digest.clone().unwrap_or_else(|| {
                        InMemoryImageStore::digest_for(&format!(
                            "{}:{}",
                            b.request.tag, b.request.idempotency_token
                        ))
                    });
                    self.store.push(&b.request.tag, &digest)?;
                    b.pushed = true;
                }
                Ok(BuildStatus::Succeeded)
            }
            BuildResult::SucceedWithoutPush => Ok(BuildStatus::Succeeded),
            BuildResult::Fail {
                phase,
                reason,
                retryable,
            } => Ok(BuildStatus::Failed {
                phase: Some(phase.clone()),
                reason: reason.clone(),
                log_url: Some(format!("https://logs.test/{build}")),
                retryable: *retryable,
            }),
        }
    }

    async fn cancel_build(&self, build: &BuildId) -> Result<()> {
        let mut inner = lock(&self.inner);
        inner.cancelled.push(build.clone());
        if let Some(b) = inner.builds.get_mut(build) {
            // Still in progress: it ends as a failure instead of its script's result.
            if b.polls_left > 0 {
                b.polls_left = 0;
                b.result = BuildResult::Fail {
                    phase: "BUILD".to_owned(),
                    reason: "build cancelled".to_owned(),
                    retryable: true,
                };
            }
        }
        Ok(())
    }
}
