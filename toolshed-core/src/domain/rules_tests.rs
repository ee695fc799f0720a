//! Unit tests of the state changes the repositories apply: verification records, lease grants
//! and heartbeats, session caps and ends.

use std::time::Duration;

use super::*;
use crate::error::{CapScope, EntityKind, Error};

fn t(secs: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_893_456_000 + secs, 0).unwrap_or_default()
}

fn server() -> Server {
    Server::register(
        ServerRegistration {
            build: Default::default(),
            id: ServerId::new("weather").unwrap(),
            repo: RepoUrl::new("https://github.com/acme/weather").unwrap(),
            git_ref: GitRef::main(),
            transport: Transport::default(),
            resources: TaskResources::default(),
            description: None,
            language: None,
        },
        t(0),
    )
    .unwrap()
}

fn image(seed: &str) -> VerifiedImage {
    let s = server();
    let commit = CommitSha::new(seed.repeat(40)).unwrap();
    VerifiedImage {
        image: ImageRef::new(
            "registry.test/toolshed",
            ImageTag::for_build(&s.id, &commit),
            ImageDigest::new(format!("sha256:{}", seed.repeat(64))).unwrap(),
        )
        .unwrap(),
        commit,
        verified_at: t(5),
    }
}

fn failure(at: Timestamp) -> VerificationFailure {
    VerificationFailure {
        step: VerificationStep::Build,
        reason: "broken Dockerfile".to_owned(),
        commit: None,
        log_url: None,
        at,
        retryable: false,
    }
}

fn run(seed: &str) -> VerificationRun {
    VerificationRun {
        run_id: format!("run-{seed}"),
        commit: CommitSha::new(seed.repeat(40)).unwrap(),
        forced: false,
        started_at: t(0),
        progress: RunProgress::Building { build: None },
    }
}

#[test]
fn record_verified_sets_image_tools_and_state_and_counts() {
    let mut s = server();
    s.record_failure(&failure(t(1)));
    let completion = VerificationCompletion {
        image: image("a"),
        tools: ToolInventory::default(),
    };
    s.record_verified(&completion, t(9));
    assert_eq!(s.state, VerificationState::Verified);
    assert_eq!(s.image, Some(image("a")));
    assert_eq!(s.last_failure, None);
    assert_eq!(s.verification_count, 1);
    assert_eq!(s.updated_at, t(9));
    assert_eq!(
        s.version, 0,
        "the repository bumps the version, not the record"
    );
}

#[test]
fn record_failure_keeps_the_last_good_image() {
    let mut s = server();
    s.record_verified(
        &VerificationCompletion {
            image: image("a"),
            tools: ToolInventory::default(),
        },
        t(1),
    );
    s.record_failure(&failure(t(7)));
    assert_eq!(s.state, VerificationState::Failed);
    assert_eq!(s.image, Some(image("a")));
    assert_eq!(s.last_failure, Some(failure(t(7))));
    assert_eq!(s.verification_count, 1);
    assert_eq!(s.updated_at, t(7));
    assert!(s.launchable_image().is_ok());
}

#[test]
fn a_lease_is_granted_when_free_or_expired_with_the_next_token() {
    let id = server().id;
    let first = VerificationLease::grant(&id, None, 4, "a", Some(run("a")), t(0), t(60)).unwrap();
    assert_eq!((first.token, first.holder.as_str()), (5, "a"));
    assert_eq!((first.acquired_at, first.expires_at), (t(0), t(60)));

    match VerificationLease::grant(&id, Some(&first), 5, "b", Some(run("b")), t(59), t(99)) {
        Err(Error::VerificationInProgress {
            holder, expires_at, ..
        }) => {
            assert_eq!((holder.as_str(), expires_at), ("a", t(60)));
        }
        other => panic!("a live lease must refuse a second holder, got {other:?}"),
    }

    // Resume: the expired lease's run, progress included, goes to the new holder.
    let mut stored = first.clone();
    stored.run.progress = RunProgress::Building {
        build: Some(BuildId::new("b-1").unwrap()),
    };
    let resumed =
        VerificationLease::grant(&id, Some(&stored), 5, "b", None, t(60), t(120)).unwrap();
    assert_eq!(resumed.token, 6);
    assert_eq!(resumed.run, stored.run);

    match VerificationLease::grant(&id, None, 6, "b", None, t(60), t(120)) {
        Err(Error::NotFound { kind, .. }) => assert_eq!(kind, EntityKind::Lease),
        other => panic!("resuming without a stored run must be NotFound, got {other:?}"),
    }
}

#[test]
fn a_heartbeat_changes_only_progress_and_expiry_and_is_fenced() {
    let id = server().id;
    let mut stored =
        VerificationLease::grant(&id, None, 0, "a", Some(run("a")), t(0), t(60)).unwrap();
    let mut beat = stored.clone();
    beat.holder = "somebody else".to_owned();
    beat.acquired_at = t(30);
    beat.expires_at = t(90);
    beat.run.progress = RunProgress::Building {
        build: Some(BuildId::new("b-1").unwrap()),
    };
    stored.heartbeat(&beat).unwrap();
    assert_eq!(stored.expires_at, t(90));
    assert_eq!(stored.run.progress, beat.run.progress);
    assert_eq!((stored.holder.as_str(), stored.acquired_at), ("a", t(0)));

    let mut stale = beat.clone();
    stale.token = 0;
    stale.expires_at = t(500);
    match stored.heartbeat(&stale) {
        Err(Error::LeaseLost { token, .. }) => assert_eq!(token, 0),
        other => panic!("a stale token must be LeaseLost, got {other:?}"),
    }
    assert_eq!(
        stored.expires_at,
        t(90),
        "a refused heartbeat changes nothing"
    );
    assert!(stored.is_expired(t(90)) && !stored.is_expired(t(89)));
}

#[test]
fn caps_admit_below_the_limits_per_server_first() {
    let caps = SessionCaps {
        per_server: 2,
        total: 3,
    };
    let id = server().id;
    let counts = |server, total| LiveSessionCounts { server, total };
    assert!(caps.admit(&id, counts(1, 2)).is_ok());
    for (c, scope, limit) in [
        (counts(2, 2), CapScope::PerServer, 2),
        (counts(2, 3), CapScope::PerServer, 2),
        (counts(0, 3), CapScope::Total, 3),
    ] {
        match caps.admit(&id, c) {
            Err(Error::CapReached {
                scope: s, limit: l, ..
            }) => assert_eq!((s, l), (scope, limit), "{c:?}"),
            other => panic!("{c:?} must be refused, got {other:?}"),
        }
    }
}

#[test]
fn ending_a_session_is_idempotent() {
    let s = server();
    let mut session = PlaygroundSession {
        id: SessionId::new("weather-1").unwrap(),
        server_id: s.id.clone(),
        image: image("a").image,
        task: TaskHandle::new("task-1").unwrap(),
        endpoint: None,
        state: SessionState::Running,
        stop_reason: None,
        idempotency_key: None,
        created_at: t(0),
        expires_at: t(0) + chrono::Duration::from_std(Duration::from_secs(900)).unwrap(),
        stopped_at: None,
        version: 3,
        owner: None,
        ready_at: None,
    };
    assert!(session.end(StopReason::Expired, t(901)));
    assert_eq!(session.state, SessionState::Stopped);
    assert_eq!(session.stop_reason, Some(StopReason::Expired));
    assert_eq!(session.stopped_at, Some(t(901)));
    assert!(!session.end(StopReason::Requested, t(950)), "already ended");
    assert_eq!(session.stop_reason, Some(StopReason::Expired));
    assert_eq!(session.stopped_at, Some(t(901)));
    assert_eq!(session.version, 3);
}
