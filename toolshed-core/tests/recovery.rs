//! Crash recovery: a working run keeps its lease alive with heartbeats, and runs whose holder
//! died are found and resumed from their stored step, without anybody asking.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{sha, Harness};
use toolshed_core::domain::{RunProgress, Timestamp, VerificationState};
use toolshed_core::ports::{Clock, ImageBuilder};
use toolshed_core::services::{
    BackgroundStart, Ports, StartOutcome, StepOutcome, Toolshed, ToolshedConfig, VerifyOptions,
    VerifyOutcome,
};
use toolshed_core::testing::{BuildScript, FakeImageBuilder, ManualClock};
use toolshed_core::Error;

/// Starts a run as worker "dead" and advances it to a started build, then "crashes" (the lease
/// is dropped without a release or further heartbeats).
async fn crash_during_build(h: &Harness, id: &str) -> toolshed_core::domain::VerificationLease {
    h.register(id, None).await;
    let dead = h.worker("dead");
    let StartOutcome::Started(lease) = dead
        .start_verification(&h.id(id), VerifyOptions::default())
        .await
        .unwrap()
    else {
        panic!("expected a started run")
    };
    let StepOutcome::Continue(lease) = dead.step_verification(&lease).await.unwrap() else {
        panic!("expected the build to be started")
    };
    assert!(matches!(
        lease.run.progress,
        RunProgress::Building { build: Some(_) }
    ));
    lease
}

#[tokio::test]
async fn stale_runs_are_resumed_from_their_stored_step() {
    let h = Harness::new();
    h.builder.push_script(BuildScript::succeed().after_polls(2));
    let lease = crash_during_build(&h, "time").await;
    let resumer = h.worker("resumer");

    // While the lease is live, nothing is stale, and the status says a run is in progress.
    assert!(resumer
        .resume_stale_verifications(10)
        .await
        .unwrap()
        .is_empty());
    let status = resumer.verification_status(&h.id("time")).await.unwrap();
    assert!(status.in_progress());
    let run = status.run.unwrap();
    assert_eq!((run.holder.as_str(), run.stale), ("dead", false));
    assert_eq!(run.run_id, lease.run.run_id);

    h.advance(h.config.lease_ttl + Duration::from_secs(1));
    let status = resumer.verification_status(&h.id("time")).await.unwrap();
    assert!(!status.in_progress(), "an expired lease is not in progress");
    assert!(status.run.as_ref().unwrap().stale);

    let resumed = resumer.resume_stale_verifications(10).await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].server_id, h.id("time"));
    let outcome = resumed.into_iter().next().unwrap().outcome.unwrap();
    let VerifyOutcome::Verified { server, .. } = outcome else {
        panic!("expected Verified, got {outcome:?}")
    };
    assert_eq!(server.state, VerificationState::Verified);
    assert_eq!(server.image.as_ref().unwrap().commit, sha('a'));
    // The build the dead worker started was polled to its end, not started again.
    assert_eq!(h.builder.builds_started(), 1);
    assert_eq!(h.repo_lease("time").await, None, "the lease is released");
    let status = resumer.verification_status(&h.id("time")).await.unwrap();
    assert_eq!(status.run, None);
    assert!(resumer
        .resume_stale_verifications(10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_build_the_builder_forgot_is_started_again() {
    let h = Harness::new();
    let lease = crash_during_build(&h, "time").await;
    // The resumer's builder is another process's: it never heard of the dead worker's build.
    let fresh = Arc::new(FakeImageBuilder::new(h.images.clone()));
    let resumer = Toolshed::new(
        Ports {
            builder: fresh.clone(),
            ..h.ports.clone()
        },
        ToolshedConfig {
            worker_id: "resumer".to_owned(),
            ..h.config.clone()
        },
    )
    .unwrap();
    let RunProgress::Building { build: Some(old) } = &lease.run.progress else {
        unreachable!()
    };
    assert!(matches!(
        fresh.build_status(old).await,
        Err(Error::NotFound { .. })
    ));

    h.advance(h.config.lease_ttl + Duration::from_secs(1));
    let resumed = resumer.resume_stale_verifications(10).await.unwrap();
    assert_eq!(resumed.len(), 1);
    let outcome = resumed.into_iter().next().unwrap().outcome.unwrap();
    assert_eq!(outcome.server().state, VerificationState::Verified);
    assert_eq!(fresh.builds_started(), 1, "the resumer built again");
    assert_eq!(fresh.requests()[0].idempotency_token, lease.run.run_id);
}

#[tokio::test]
async fn a_background_run_is_awaited_through_its_handle() {
    let h = Harness::new();
    h.register("time", None).await;
    h.builder.push_script(BuildScript::succeed().after_polls(3));
    let BackgroundStart::Started(run) = h
        .toolshed
        .start_verification_in_background(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap()
    else {
        panic!("expected a started run")
    };
    assert_eq!(run.server_id(), &h.id("time"));
    assert_eq!(run.commit(), &sha('a'));
    let outcome = run.wait().await.unwrap();
    assert_eq!(outcome.server().state, VerificationState::Verified);
    // Up to date now: nothing runs in the background.
    let again = h
        .toolshed
        .start_verification_in_background(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(again, BackgroundStart::UpToDate(_)));
}

/// A clock that follows tokio's (pausable) timer, so a test can let minutes pass at once while
/// expiries still depend on elapsed time.
#[derive(Debug)]
struct TokioClock {
    start: tokio::time::Instant,
    base: Timestamp,
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_long_single_wait_keeps_the_lease_alive() {
    // A build start that takes five lease lifetimes: only the heartbeat can keep the lease.
    let clock: Arc<dyn Clock> = Arc::new(TokioClock {
        start: tokio::time::Instant::now(),
        base: ManualClock::fixed().now(),
    });
    let h = Harness::new();
    let slow = Arc::new(FakeImageBuilder::new(h.images.clone()).with_delay(h.config.lease_ttl * 5));
    let ports = Ports {
        builder: slow.clone(),
        clock: clock.clone(),
        ..h.ports.clone()
    };
    let worker = |id: &str| {
        Toolshed::new(
            ports.clone(),
            ToolshedConfig {
                worker_id: id.to_owned(),
                ..h.config.clone()
            },
        )
        .unwrap()
    };
    h.register("time", None).await;
    let BackgroundStart::Started(run) = worker("busy")
        .start_verification_in_background(&h.id("time"), VerifyOptions::default())
        .await
        .unwrap()
    else {
        panic!("expected a started run")
    };

    // Another worker keeps trying to take the run over while the build start waits.
    let rival = worker("rival");
    let mut looks = 0;
    while !run.is_finished() {
        tokio::time::sleep(Duration::from_secs(7)).await;
        let taken = rival.take_over_stale_verifications(10).await.unwrap();
        assert!(
            taken.is_empty(),
            "the lease of a working run expired after {} s of a {} s wait",
            looks * 7,
            (h.config.lease_ttl * 5).as_secs()
        );
        looks += 1;
    }
    assert!(
        looks * 7 > (h.config.lease_ttl * 5).as_secs(),
        "the wait was not long"
    );
    let outcome = run.wait().await.unwrap();
    assert_eq!(outcome.server().state, VerificationState::Verified);
    assert_eq!(slow.builds_started(), 1);
}
