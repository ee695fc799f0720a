//! Verification: the state machine and its failure paths, with the in-memory doubles.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{sha, Harness};
use toolshed_core::domain::{
    Endpoint, ImageTag, ProbeReport, ProvenanceSource, RemoteTarget, RunProgress, ToolCall,
    ToolCallOutput, VerificationPhase, VerificationState, VerificationStep,
};
use toolshed_core::error::ProbeFailureKind;
use toolshed_core::ports::{
    Clock, DocsKey, ImageBuilder, ImageStore, McpProbe, MockMetadataGenerator,
};
use toolshed_core::services::{
    MetadataOutcome, StartOutcome, StepOutcome, Toolshed, VerifyOptions, VerifyOutcome,
};
use toolshed_core::testing::{
    BuildResult, BuildScript, FakeMcpProbe, InMemoryImageStore, ManualClock,
};
use toolshed_core::Error;

const FORCE: VerifyOptions = VerifyOptions { force: true };

#[tokio::test]
async fn verify_builds_checks_and_records_in_one_write() {
    let h = Harness::new();
    h.register("time", None).await;
    h.builder.push_script(BuildScript::succeed().after_polls(3));
    let out = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    let VerifyOutcome::Verified { server, metadata } = out else {
        panic!("expected Verified, got {out:?}")
    };
    assert_eq!(server.state, VerificationState::Verified);
    let image = server.image.as_ref().unwrap();
    assert_eq!(image.commit, sha('a'));
    // Recorded under its verified tag; the candidate tag the build pushed is gone.
    assert_eq!(
        image.image.tag(),
        &ImageTag::verified(&h.id("time"), &sha('a'), image.image.digest())
    );
    assert_eq!(
        h.images
            .resolve_tag(&ImageTag::for_build(&h.id("time"), &sha('a')))
            .await
            .unwrap(),
        None
    );
    // The digest is what the build pushed under its tag (the store's own answer for the tag),
    // not one made up from the tag or the commit.
    let req = &h.builder.requests()[0];
    let pushed = InMemoryImageStore::digest_for(&format!("{}:{}", req.tag, req.idempotency_token));
    assert_eq!(image.image.digest(), &pushed);
    let stored = h
        .images
        .resolve_tag(image.image.tag())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.digest(), image.image.digest());
    assert!(h.images.contains(&image.image).await.unwrap());
    assert!(h.images.resolve_calls() >= 1);
    assert_eq!(server.tools.tools.len(), 1);
    assert_eq!(server.tools.tools[0].name, "get_current_time");
    assert_eq!(server.verification_count, 1);
    assert!(server.last_failure.is_none());
    // One build, polled through the clock (3 in-progress polls → 3 sleeps of the poll interval).
    assert_eq!(h.builder.builds_started(), 1);
    let req = &h.builder.requests()[0];
    assert_eq!(req.commit, sha('a'));
    assert_eq!(req.repository, h.images.repository());
    assert_eq!(
        h.clock
            .sleeps()
            .iter()
            .filter(|d| **d == h.config.build_poll_interval)
            .count(),
        3
    );
    // The check task ran the pinned image and was stopped.
    assert_eq!(h.runner.prepare_calls(), 1);
    let tasks = h.runner.tasks();
    assert_eq!(tasks.len(), 1);
    // The same image (digest) that was then recorded under its verified tag.
    assert_eq!(
        tasks[0].spec.as_ref().unwrap().image.pinned(),
        image.image.pinned()
    );
    assert!(
        !tasks[0].state.is_live(),
        "check task must be stopped: {:?}",
        tasks[0].state
    );
    assert_eq!(h.probe.wait_ready_calls(), 1);
    // Lease released.
    assert_eq!(h.repo_lease("time").await, None);
    // Metadata: heuristic description, language and docs.
    assert_eq!(
        metadata,
        MetadataOutcome::Filled {
            fields: vec!["description", "language", "docs"]
        }
    );
    let md = &server.metadata;
    assert_eq!(
        md.description.as_ref().unwrap().value,
        "An MCP server that tells the time in any timezone."
    );
    assert_eq!(
        md.description.as_ref().unwrap().provenance.source,
        ProvenanceSource::Heuristic
    );
    assert_eq!(md.language.as_ref().unwrap().value, "Python");
    let docs = md.docs.as_ref().unwrap();
    let key = DocsKey::for_server(&h.id("time"), &sha('a'));
    assert_eq!(docs.key, key.as_str());
    assert!(h
        .docs
        .get(key.as_str())
        .unwrap()
        .contains("get_current_time"));
}

/// The fake probe, answering the handshake only after `handshake` has passed on the manual
/// clock (a server that takes its time to load).
#[derive(Debug)]
struct SlowHandshake {
    inner: Arc<FakeMcpProbe>,
    clock: Arc<ManualClock>,
    handshake: Duration,
}

#[async_trait]
impl McpProbe for SlowHandshake {
    async fn probe(&self, endpoint: &Endpoint, deadline: Duration) -> Result<ProbeReport, Error> {
        self.clock.advance(self.handshake);
        self.inner.probe(endpoint, deadline).await
    }

    async fn wait_ready(
        &self,
        endpoint: &Endpoint,
        deadline: Duration,
    ) -> Result<ProbeReport, Error> {
        self.clock.advance(self.handshake);
        self.inner.wait_ready(endpoint, deadline).await
    }

    async fn call_tool(
        &self,
        endpoint: &Endpoint,
        call: &ToolCall,
        input_schema: Option<serde_json::Value>,
        deadline: Duration,
    ) -> Result<ToolCallOutput, Error> {
        self.inner
            .call_tool(endpoint, call, input_schema, deadline)
            .await
    }

    async fn probe_remote(
        &self,
        target: &RemoteTarget,
        deadline: Duration,
    ) -> Result<ProbeReport, Error> {
        self.clock.advance(self.handshake);
        self.inner.probe_remote(target, deadline).await
    }
}

#[tokio::test]
async fn the_record_keeps_the_duration_of_every_phase_in_order() {
    let h = Harness::new();
    h.register("time", None).await;
    // Time passes only where the doubles make it pass: 3 build polls, 2 describes before the
    // task has an endpoint, and a handshake of 7 s.
    h.builder.push_script(BuildScript::succeed().after_polls(3));
    h.runner.set_pending_describes(2);
    let mut ports = h.ports.clone();
    ports.probe = Arc::new(SlowHandshake {
        inner: h.probe.clone(),
        clock: h.clock.clone(),
        handshake: Duration::from_secs(7),
    });
    let toolshed = Toolshed::new(ports, h.config.clone()).unwrap();
    let began = h.clock.now();
    let out = toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    let VerifyOutcome::Verified { server, .. } = out else {
        panic!("expected Verified, got {out:?}")
    };
    let timings = server
        .last_timings
        .clone()
        .expect("the record keeps timings");
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap();
    let phases: Vec<(VerificationPhase, u64)> =
        timings.phases.iter().map(|p| (p.phase, p.millis)).collect();
    assert_eq!(
        phases,
        vec![
            (VerificationPhase::ResolveCommit, 0),
            (
                VerificationPhase::Build,
                3 * ms(h.config.build_poll_interval)
            ),
            (VerificationPhase::ResolveDigest, 0),
            (VerificationPhase::StartCheckTask, 0),
            (
                VerificationPhase::AwaitEndpoint,
                2 * ms(h.config.task_poll_interval)
            ),
            (VerificationPhase::McpHandshake, 7_000),
            (VerificationPhase::StopCheckTask, 0),
            (VerificationPhase::StoreImage, 0),
            (VerificationPhase::ScanTools, 0),
        ]
    );
    let sum: u64 = timings.phases.iter().map(|p| p.millis).sum();
    assert!(timings.total_millis() >= sum, "{timings:?}");
    assert_eq!(timings.started_at, began);
    assert_eq!(
        Some(timings.ended_at),
        server.image.as_ref().map(|i| i.verified_at),
        "the phases end where the record's verification time is taken"
    );
    assert_eq!(h.repo_get("time").await.last_timings, Some(timings.clone()));

    // A skipped verification measures nothing and writes nothing: the record keeps the
    // timings of the run that built the image.
    h.advance(Duration::from_secs(60));
    let out = toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(out, VerifyOutcome::UpToDate(_)), "{out:?}");
    assert_eq!(out.server().last_timings, Some(timings));
}

#[tokio::test]
async fn a_resumed_run_counts_the_wait_for_the_take_over_in_the_phase_it_interrupted() {
    let h = Harness::new();
    h.register("time", None).await;
    let a = h.worker("worker-a");
    let StartOutcome::Started(lease) = a
        .start_verification(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap()
    else {
        panic!("expected Started")
    };
    // Worker A starts the build, then dies; B takes over once the lease expired.
    let StepOutcome::Continue(started) = a.step_verification(&lease).await.unwrap() else {
        panic!("expected Continue")
    };
    assert!(matches!(
        started.run.progress,
        RunProgress::Building { build: Some(_) }
    ));
    let waited = h.config.lease_ttl + Duration::from_secs(1);
    h.advance(waited);
    let out = h
        .worker("worker-b")
        .resume_verification(&h.id("time"))
        .await
        .unwrap();
    let timings = out.server().last_timings.clone().expect("timings");
    assert_eq!(
        timings.millis(VerificationPhase::Build),
        Some(u64::try_from(waited.as_millis()).unwrap()),
        "{timings:?}"
    );
    assert_eq!(
        timings.phases.first().map(|p| p.phase),
        Some(VerificationPhase::ResolveCommit)
    );
    assert_eq!(timings.phases.len(), 9, "{timings:?}");
}

#[tokio::test]
async fn reverify_is_skipped_on_an_unchanged_commit_and_forced_rebuilds() {
    let h = Harness::new();
    let first = h.verified("time").await;
    let out = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(out, VerifyOutcome::UpToDate(_)), "{out:?}");
    assert_eq!(h.builder.start_calls(), 1, "up to date: no second build");
    assert_eq!(
        out.server().version,
        first.version,
        "up to date: nothing written"
    );

    let out = h
        .toolshed
        .verify_server(&h.id("time"), FORCE)
        .await
        .unwrap();
    assert!(matches!(out, VerifyOutcome::Verified { .. }), "{out:?}");
    assert_eq!(h.builder.builds_started(), 2, "forced: rebuilt");
    assert_eq!(out.server().verification_count, 2);

    // A new commit is rebuilt without force.
    h.push_commit("time", 'b');
    let out = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    assert_eq!(out.server().image.as_ref().unwrap().commit, sha('b'));
    assert_eq!(h.builder.builds_started(), 3);
}

#[tokio::test]
async fn reverify_rebuilds_when_the_image_was_deleted() {
    let h = Harness::new();
    let first = h.verified("time").await;
    h.images
        .delete(first.image.as_ref().unwrap().image.digest());
    let out = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(out, VerifyOutcome::Verified { .. }), "{out:?}");
    assert_eq!(h.builder.builds_started(), 2);
}

#[tokio::test]
async fn hundred_concurrent_reverifies_make_exactly_one_build() {
    let h = Harness::new();
    h.verified("time").await;
    h.push_commit("time", 'b');
    // The build stays in progress over several polls, so the others arrive while it runs.
    h.builder.push_script(BuildScript::succeed().after_polls(5));
    let runs = (0..100).map(|i| {
        let t = h.worker(&format!("worker-{i}"));
        async move {
            t.verify_server(
                &common::Harness::id_static("time"),
                VerifyOptions::default(),
            )
            .await
        }
    });
    let results = futures::future::join_all(runs).await;
    let mut verified = 0;
    let mut in_progress = 0;
    let mut up_to_date = 0;
    for r in results {
        match r {
            Ok(VerifyOutcome::Verified { .. }) => verified += 1,
            Ok(VerifyOutcome::UpToDate(_)) => up_to_date += 1,
            Err(Error::VerificationInProgress { .. }) => in_progress += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(verified, 1, "exactly one verification ran");
    assert_eq!(verified + in_progress + up_to_date, 100);
    assert!(
        in_progress > 0,
        "concurrent callers must be refused while the build runs"
    );
    // The first verification's build plus exactly one for the new commit, never overlapping.
    assert_eq!(h.builder.builds_started(), 2);
    assert_eq!(h.builder.start_calls(), 2);
    assert_eq!(h.builder.max_concurrent_builds(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_reverifies_on_threads_make_exactly_one_build() {
    let h = Harness::new();
    h.register("time", None).await;
    h.builder
        .push_script(BuildScript::succeed().after_polls(20));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let t = h.worker(&format!("w-{i}"));
            tokio::spawn(async move {
                t.verify_server(&common::Harness::id_static("time"), FORCE)
                    .await
            })
        })
        .collect();
    let mut verified = 0;
    for handle in handles {
        match handle.await.unwrap() {
            Ok(VerifyOutcome::Verified { .. }) => verified += 1,
            Ok(other) => panic!("forced verification cannot be up to date: {other:?}"),
            // Forced runs that start after the winner finished build again: count those too.
            Err(Error::VerificationInProgress { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(
        h.builder.builds_started(),
        verified,
        "one build per verification that took the lease"
    );
    assert!(verified >= 1);
    assert_eq!(
        h.builder.max_concurrent_builds(),
        1,
        "never two builds at once ({verified} ran one after another)"
    );
}

#[tokio::test]
async fn lease_expiry_lets_another_worker_resume_from_the_stored_step() {
    let h = Harness::new();
    h.register("time", None).await;
    h.builder.push_script(BuildScript::succeed().after_polls(2));
    let a = h.worker("worker-a");
    let StartOutcome::Started(lease) = a
        .start_verification(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap()
    else {
        panic!("expected Started")
    };
    // Stepwise: the run is stored before any build.
    let stored = h.repo_lease("time").await.unwrap();
    assert_eq!(stored.run.progress, RunProgress::Building { build: None });
    assert_eq!(
        h.builder.start_calls(),
        0,
        "start_verification returns before building"
    );
    // Worker A starts the build and then "crashes".
    let StepOutcome::Continue(lease_a) = a.step_verification(&lease).await.unwrap() else {
        panic!("expected Continue")
    };
    assert!(matches!(
        lease_a.run.progress,
        RunProgress::Building { build: Some(_) }
    ));
    assert_eq!(h.builder.start_calls(), 1);

    // While A's lease is live, B is refused.
    let b = h.worker("worker-b");
    let e = b.resume_verification(&h.id("time")).await.unwrap_err();
    assert!(
        matches!(e, Error::VerificationInProgress { ref holder, .. } if holder == "worker-a"),
        "{e}"
    );

    h.advance(h.config.lease_ttl + Duration::from_secs(1));
    let out = b.resume_verification(&h.id("time")).await.unwrap();
    assert_eq!(out.server().state, VerificationState::Verified);
    assert_eq!(
        h.builder.start_calls(),
        1,
        "the started build was polled, not started again"
    );
    assert_eq!(h.builder.builds_started(), 1);

    // A wakes up: its stale lease is refused and writes nothing.
    let before = h.toolshed.get_server(&h.id("time")).await.unwrap();
    let e = a.step_verification(&lease_a).await.unwrap_err();
    assert!(
        matches!(e, Error::LeaseLost { token, .. } if token == lease_a.token),
        "{e}"
    );
    assert_eq!(h.toolshed.get_server(&h.id("time")).await.unwrap(), before);
}

#[tokio::test]
async fn a_resumer_continues_a_running_check_without_a_second_task() {
    let h = Harness::new();
    h.register("time", None).await;
    let a = h.worker("worker-a");
    let StartOutcome::Started(mut lease) = a
        .start_verification(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap()
    else {
        panic!("expected Started")
    };
    // Worker A gets as far as starting the check task, then crashes.
    while !matches!(
        lease.run.progress,
        RunProgress::Checking { task: Some(_), .. }
    ) {
        match a.step_verification(&lease).await.unwrap() {
            StepOutcome::Continue(l) => lease = l,
            StepOutcome::Done(s) => panic!("finished early: {s:?}"),
        }
    }
    assert_eq!(h.runner.start_calls(), 1);
    assert_eq!(h.runner.live_tasks().len(), 1);
    h.advance(h.config.lease_ttl * 2);
    let out = h
        .worker("worker-b")
        .resume_verification(&h.id("time"))
        .await
        .unwrap();
    assert_eq!(out.server().state, VerificationState::Verified);
    assert_eq!(
        h.runner.start_calls(),
        1,
        "the stored check task was used, not a new one"
    );
    assert!(h.runner.live_tasks().is_empty(), "and stopped");
    assert_eq!(h.builder.builds_started(), 1);
}

#[tokio::test]
async fn a_resumer_restarts_a_check_task_the_crashed_holder_had_stopped() {
    let h = Harness::new();
    h.register("time", None).await;
    let a = h.worker("worker-a");
    let StartOutcome::Started(mut lease) = a
        .start_verification(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap()
    else {
        panic!("expected Started")
    };
    while !matches!(
        lease.run.progress,
        RunProgress::Checking { task: Some(_), .. }
    ) {
        match a.step_verification(&lease).await.unwrap() {
            StepOutcome::Continue(l) => lease = l,
            StepOutcome::Done(s) => panic!("finished early: {s:?}"),
        }
    }
    // Worker A probed and stopped its check task, then crashed before storing that step.
    let RunProgress::Checking {
        task: Some(first), ..
    } = &lease.run.progress
    else {
        unreachable!()
    };
    h.runner.exit_task(first);
    assert!(h.runner.live_tasks().is_empty());
    h.advance(h.config.lease_ttl * 2);
    let out = h
        .worker("worker-b")
        .resume_verification(&h.id("time"))
        .await
        .unwrap();
    assert_eq!(out.server().state, VerificationState::Verified);
    assert_eq!(
        h.runner.start_calls(),
        2,
        "a fresh check task under the new lease's token"
    );
    let tokens: Vec<_> = h
        .runner
        .tasks()
        .iter()
        .filter_map(|t| t.spec.as_ref().map(|s| s.idempotency_token.clone()))
        .collect();
    assert_ne!(tokens[0], tokens[1], "{tokens:?}");
    assert!(h.runner.live_tasks().is_empty(), "and stopped");
    assert_eq!(h.builder.builds_started(), 1, "never a second build");
}

#[tokio::test]
async fn a_failed_rebuild_keeps_the_last_good_image() {
    let h = Harness::new();
    let good = h.verified("time").await;
    h.push_commit("time", 'b');
    h.builder
        .push_script(BuildScript::fail("COPY failed: no such file"));
    let e = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap_err();
    match &e {
        Error::VerificationFailed {
            step,
            reason,
            retryable,
            ..
        } => {
            assert_eq!(*step, VerificationStep::Build);
            assert!(reason.contains("COPY failed"), "{reason}");
            assert!(!retryable);
        }
        other => panic!("expected VerificationFailed, got {other}"),
    }
    let s = h.toolshed.get_server(&h.id("time")).await.unwrap();
    assert_eq!(s.state, VerificationState::Failed);
    assert_eq!(s.image, good.image, "the last good image is untouched");
    assert_eq!(s.tools, good.tools);
    let f = s.last_failure.unwrap();
    assert_eq!(f.step, VerificationStep::Build);
    assert_eq!(f.commit, Some(sha('b')));
    assert!(f.log_url.is_some());
    assert_eq!(h.repo_lease("time").await, None, "lease released");
    // Still launchable from the last good image.
    let session = h
        .toolshed
        .launch_session(&h.id("time"), Default::default())
        .await
        .unwrap();
    assert_eq!(session.image, good.image.unwrap().image);
}

#[tokio::test]
async fn a_missing_tag_fails_at_resolve_digest() {
    let h = Harness::new();
    h.register("time", None).await;
    h.builder.push_script(BuildScript {
        in_progress_polls: 0,
        result: BuildResult::SucceedWithoutPush,
    });
    let e = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::VerificationFailed {
                step: VerificationStep::ResolveDigest,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(h.runner.start_calls(), 0, "nothing runs without a digest");
    let s = h.toolshed.get_server(&h.id("time")).await.unwrap();
    assert!(s.image.is_none());
}

#[tokio::test]
async fn the_check_task_is_stopped_even_when_the_probe_fails() {
    let h = Harness::new();
    h.register("time", None).await;
    h.probe.fail_all(Some((
        ProbeFailureKind::NotMcp,
        "HTTP 404 from a plain web server",
    )));
    let e = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap_err();
    match &e {
        Error::VerificationFailed { step, reason, .. } => {
            assert_eq!(*step, VerificationStep::Check);
            assert!(reason.contains("not an MCP server"), "{reason}");
        }
        other => panic!("expected VerificationFailed, got {other}"),
    }
    let tasks = h.runner.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(
        !tasks[0].state.is_live(),
        "check task left running: {:?}",
        tasks[0].state
    );
    assert!(h.runner.live_tasks().is_empty());
    let s = h.toolshed.get_server(&h.id("time")).await.unwrap();
    assert!(s.image.is_none(), "a failed check records no image");
    assert_eq!(s.last_failure.unwrap().step, VerificationStep::Check);
}

#[tokio::test]
async fn a_check_task_that_exits_fails_the_check_and_is_stopped() {
    let h = Harness::new();
    h.register("time", None).await;
    h.runner.set_pending_describes(3);
    // Make the task exit while it is pending, by starting the verification stepwise.
    let StartOutcome::Started(lease) = h
        .toolshed
        .start_verification(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    let mut lease = lease;
    loop {
        if let RunProgress::Checking {
            task: Some(task), ..
        } = &lease.run.progress
        {
            h.runner.exit_task(task);
            break;
        }
        match h.toolshed.step_verification(&lease).await.unwrap() {
            StepOutcome::Continue(l) => lease = l,
            StepOutcome::Done(s) => panic!("finished early: {s:?}"),
        }
    }
    let e = h.toolshed.step_verification(&lease).await.unwrap_err();
    match e {
        Error::VerificationFailed { step, reason, .. } => {
            assert_eq!(step, VerificationStep::Check);
            assert!(reason.contains("stopped before serving MCP"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert!(h.runner.live_tasks().is_empty());
}

#[tokio::test]
async fn the_check_waits_for_the_task_endpoint() {
    let h = Harness::new();
    h.register("time", None).await;
    h.runner.set_pending_describes(4);
    h.verified_existing("time").await;
    assert!(
        h.runner.describe_calls() >= 5,
        "{}",
        h.runner.describe_calls()
    );
    let waits = h
        .clock
        .sleeps()
        .iter()
        .filter(|d| **d == h.config.task_poll_interval)
        .count();
    assert_eq!(waits, 4);
}

#[tokio::test]
async fn a_check_task_that_never_gets_an_endpoint_times_out() {
    let h = Harness::with_config(|c| c.task_start_timeout = Duration::from_secs(30));
    h.register("time", None).await;
    h.runner.set_pending_describes(1000);
    let e = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::VerificationFailed { step: VerificationStep::Check, ref reason, .. } if reason.contains("no endpoint within 30 s")),
        "{e}"
    );
    assert!(h.runner.live_tasks().is_empty());
}

#[tokio::test]
async fn a_build_that_never_ends_times_out() {
    let h = Harness::with_config(|c| c.build_timeout = Duration::from_secs(60));
    h.register("time", None).await;
    h.builder
        .push_script(BuildScript::succeed().after_polls(1000));
    let e = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::VerificationFailed {
                step: VerificationStep::Build,
                retryable: true,
                ..
            }
        ),
        "{e}"
    );
    // 60 s / 10 s poll interval: bounded, not 1000 polls.
    assert!(
        h.builder.status_calls() <= 8,
        "{}",
        h.builder.status_calls()
    );
}

#[tokio::test]
async fn a_timed_out_build_is_cancelled_in_the_builder() {
    let h = Harness::with_config(|c| c.build_timeout = Duration::from_secs(60));
    h.register("time", None).await;
    h.builder
        .push_script(BuildScript::succeed().after_polls(1000));
    h.toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap_err();
    // The build itself is stopped, not only abandoned by the verification.
    let cancelled = h.builder.cancelled();
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert!(matches!(
        h.builder.build_status(&cancelled[0]).await.unwrap(),
        toolshed_core::ports::BuildStatus::Failed { .. }
    ));
}

#[tokio::test]
async fn an_unresolvable_ref_fails_at_resolve_commit_and_is_recorded() {
    let h = Harness::new();
    let good = h.verified("time").await;
    // The branch disappears.
    let h2_source_url = common::repo_url("time");
    h.source.set_commit(
        &h2_source_url,
        &toolshed_core::domain::GitRef::new("other").unwrap(),
        &sha('c'),
    );
    let s = h.toolshed.get_server(&h.id("time")).await.unwrap();
    let mut moved = s.clone();
    moved.git_ref = toolshed_core::domain::GitRef::new("gone").unwrap();
    h.repo_update(moved).await;
    let e = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::VerificationFailed {
                step: VerificationStep::ResolveCommit,
                retryable: false,
                ..
            }
        ),
        "{e}"
    );
    let s = h.toolshed.get_server(&h.id("time")).await.unwrap();
    assert_eq!(
        s.last_failure.unwrap().step,
        VerificationStep::ResolveCommit
    );
    assert_eq!(s.image, good.image);
    assert_eq!(h.builder.builds_started(), 1);
}

#[tokio::test]
async fn a_metadata_failure_does_not_fail_verification() {
    let mut generator = MockMetadataGenerator::new();
    generator.expect_generate().times(1).returning(|_| {
        Err(Error::backend(
            "openai",
            "Responses",
            None,
            true,
            "429 rate limited",
        ))
    });
    let h = Harness::with_metadata(Arc::new(generator));
    h.register("time", None).await;
    let out = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    let VerifyOutcome::Verified { server, metadata } = out else {
        panic!("expected Verified")
    };
    assert_eq!(server.state, VerificationState::Verified);
    assert!(server.image.is_some());
    assert!(
        matches!(metadata, MetadataOutcome::Failed { ref reason } if reason.contains("429")),
        "{metadata:?}"
    );
    let err = server.metadata.last_error.unwrap();
    assert!(err.reason.contains("429"), "{}", err.reason);
    assert!(err.retryable);
    assert!(server.metadata.description.is_none());
}

#[tokio::test]
async fn a_snapshot_failure_is_recorded_and_a_later_fill_clears_it() {
    let h = Harness::new();
    h.register("time", None).await;
    h.source.fail_snapshots(Some("git fetch timed out"));
    let out = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    assert!(out.server().metadata.last_error.is_some());
    h.source.fail_snapshots(None);
    let m = h
        .toolshed
        .fill_missing_metadata(&h.id("time"))
        .await
        .unwrap();
    assert!(matches!(m, MetadataOutcome::Filled { .. }), "{m:?}");
    let s = h.toolshed.get_server(&h.id("time")).await.unwrap();
    assert!(s.metadata.last_error.is_none());
    assert!(s.metadata.description.is_some());
    assert_eq!(
        h.toolshed
            .fill_missing_metadata(&h.id("time"))
            .await
            .unwrap(),
        MetadataOutcome::NothingMissing
    );
}

#[tokio::test]
async fn a_manual_description_is_never_overwritten() {
    let h = Harness::new();
    h.register("time", Some("Hand-written description")).await;
    let out = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    let md = &out.server().metadata;
    let d = md.description.as_ref().unwrap();
    assert_eq!(d.value, "Hand-written description");
    assert!(d.provenance.is_manual());
    // The missing fields were still filled.
    assert_eq!(md.language.as_ref().unwrap().value, "Python");
    assert!(md.docs.is_some());
    // A forced re-verify on a new commit keeps it too.
    h.push_commit("time", 'b');
    let out = h
        .toolshed
        .verify_server(&h.id("time"), FORCE)
        .await
        .unwrap();
    assert_eq!(
        out.server().metadata.description.as_ref().unwrap().value,
        "Hand-written description"
    );
    // Docs follow the new commit.
    assert_eq!(
        out.server().metadata.docs.as_ref().unwrap().commit,
        sha('b')
    );
}

#[tokio::test]
async fn launch_is_refused_before_verification() {
    let h = Harness::new();
    h.register("time", None).await;
    let e = h
        .toolshed
        .launch_session(&h.id("time"), Default::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotVerified { .. }), "{e}");
    assert!(e.to_string().contains("verify it first"), "{e}");
    assert_eq!(h.runner.start_calls(), 0, "nothing was started");
    // Also after a failed first verification: there is no good image.
    h.builder.push_script(BuildScript::fail("broken"));
    let _ = h
        .toolshed
        .verify_server(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap_err();
    let e = h
        .toolshed
        .launch_session(&h.id("time"), Default::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotVerified { .. }), "{e}");
}

#[tokio::test]
async fn verifying_an_unknown_server_is_not_found() {
    let h = Harness::new();
    let e = h
        .toolshed
        .verify_server(&h.id("nope"), VerifyOptions::default())
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn digest_helper_is_stable() {
    assert_eq!(
        InMemoryImageStore::digest_for("x"),
        InMemoryImageStore::digest_for("x")
    );
    assert_ne!(
        InMemoryImageStore::digest_for("x"),
        InMemoryImageStore::digest_for("y")
    );
}
