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
        ServerRegistration::new(
            ServerId::new("weather").unwrap(),
            RepoUrl::new("https://github.com/acme/weather").unwrap(),
        ),
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
        timings: None,
    }
}

#[test]
fn record_verified_sets_image_tools_and_state_and_counts() {
    let mut s = server();
    s.record_failure(&failure(t(1)));
    let completion = VerificationCompletion {
        image: Some(image("a")),
        tools: ToolInventory::default(),
        policy: Default::default(),
        timings: None,
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
fn a_remote_is_recorded_verified_without_an_image_never_held_and_never_launchable() {
    let mut s = server();
    s.origin = ServerOrigin::Imported {
        registry_name: "io.github.acme/weather".to_owned(),
        source: server_json::PackageSource::Remote {
            url: "https://mcp.weather.example/mcp".to_owned(),
        },
    };
    let findings = vec![poisoning::Finding {
        rule: "TP002".to_owned(),
        severity: poisoning::Severity::High,
        location: poisoning::Location::ServerInstructions,
        excerpt: "Ignore all previous instructions.".to_owned(),
    }];
    let completion = VerificationCompletion {
        image: None,
        tools: ToolInventory {
            findings: findings.clone(),
            ..ToolInventory::default()
        },
        // The default policy holds new high findings of an image; a remote has none to hold.
        policy: PromotionPolicy::default(),
        timings: None,
    };
    s.record_verified(&completion, t(9));
    assert_eq!(s.state, VerificationState::Verified);
    assert_eq!(s.image, None);
    assert_eq!(s.pending_review, None);
    assert_eq!(
        s.tools.findings, findings,
        "findings are recorded all the same"
    );
    assert_eq!(s.verification_count, 1);
    let err = s.launchable_image().unwrap_err();
    assert!(
        matches!(&err, Error::NotLaunchable { reason, .. } if reason.contains("https://mcp.weather.example/mcp")),
        "{err:?}"
    );
    assert!(matches!(
        s.ensure_launchable(),
        Err(Error::NotLaunchable { .. })
    ));
    assert!(server().ensure_launchable().is_ok());
}

#[test]
fn record_failure_keeps_the_last_good_image() {
    let mut s = server();
    s.record_verified(
        &VerificationCompletion {
            image: Some(image("a")),
            tools: ToolInventory::default(),
            policy: Default::default(),
            timings: None,
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
        observed: None,
        warm: false,
        claimed_at: None,
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

// ---------------------------------------------------------------------------------------------
// Promotion policy

mod promotion_rules {
    use super::*;
    use crate::domain::poisoning::{Finding, Location, Severity};

    fn finding(rule: &str, severity: Severity, location: Location) -> Finding {
        Finding {
            rule: rule.to_owned(),
            severity,
            location,
            excerpt: "…".to_owned(),
        }
    }

    fn described(tool: &str) -> Location {
        Location::ToolDescription {
            tool: tool.to_owned(),
        }
    }

    fn change(kind: ChangeKind, tool: &str, parameter: Option<&str>) -> ToolChange {
        ToolChange {
            kind,
            tool: tool.to_owned(),
            parameter: parameter.map(str::to_owned),
            before: None,
            after: None,
        }
    }

    fn drift(changes: Vec<ToolChange>) -> Option<ToolDrift> {
        Some(ToolDrift {
            previous_commit: None,
            previous_digest: "sha256:00".to_owned(),
            changes,
        })
    }

    fn completion(
        seed: &str,
        tools: ToolInventory,
        policy: PromotionPolicy,
    ) -> VerificationCompletion {
        VerificationCompletion {
            image: Some(image(seed)),
            tools,
            policy,
            timings: None,
        }
    }

    fn high(tool: &str) -> ToolInventory {
        ToolInventory {
            findings: vec![finding("TP002", Severity::High, described(tool))],
            ..ToolInventory::default()
        }
    }

    #[test]
    fn the_default_holds_high_findings_and_description_changes_only() {
        let p = PromotionPolicy::default();
        let medium = ToolInventory {
            findings: vec![finding("TP004", Severity::Medium, described("a"))],
            ..ToolInventory::default()
        };
        assert!(p.review_reasons(&medium, None).is_empty());
        assert_eq!(
            p.review_reasons(&high("a"), None),
            [ReviewReason::Finding {
                rule: "TP002".into(),
                severity: Severity::High,
                location: described("a"),
            }]
        );
        let changed = ToolInventory {
            drift: drift(vec![
                change(ChangeKind::Added, "b", None),
                change(ChangeKind::DescriptionChanged, "a", None),
                change(ChangeKind::RequiredParameterAdded, "a", Some("ctx")),
                change(ChangeKind::Removed, "c", None),
            ]),
            ..ToolInventory::default()
        };
        let kinds: Vec<ChangeKind> = p
            .review_reasons(&changed, Some(&ToolInventory::default()))
            .into_iter()
            .map(|r| match r {
                ReviewReason::Change { kind, .. } => kind,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, [ChangeKind::DescriptionChanged]);
        let breaking = PromotionPolicy::parse("hold-on-breaking-change").unwrap();
        let kinds: Vec<ChangeKind> = breaking
            .review_reasons(&changed, None)
            .into_iter()
            .map(|r| match r {
                ReviewReason::Change { kind, .. } => kind,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [ChangeKind::RequiredParameterAdded, ChangeKind::Removed]
        );
        assert!(breaking.review_reasons(&high("a"), None).is_empty());
        assert!(PromotionPolicy::PROMOTE_ALWAYS
            .review_reasons(&changed, None)
            .is_empty());
        let medium_policy = PromotionPolicy::parse("hold-on-high,hold-on-medium").unwrap();
        assert_eq!(medium_policy.hold_on_severity, Some(Severity::Medium));
        assert_eq!(medium_policy.review_reasons(&medium, None).len(), 1);
    }

    #[test]
    fn a_finding_the_live_version_already_had_does_not_hold_again() {
        let p = PromotionPolicy::default();
        let live = high("a");
        assert!(p.review_reasons(&high("a"), Some(&live)).is_empty());
        // The same rule elsewhere is new.
        assert_eq!(p.review_reasons(&high("b"), Some(&live)).len(), 1);
    }

    #[test]
    fn a_held_completion_keeps_the_live_image_and_replaces_an_earlier_candidate() {
        let mut s = server();
        s.record_verified(
            &completion("a", ToolInventory::default(), PromotionPolicy::default()),
            t(1),
        );
        assert_eq!(s.state, VerificationState::Verified);
        s.record_failure(&failure(t(2)));
        s.record_verified(
            &completion("b", high("x"), PromotionPolicy::default()),
            t(3),
        );
        assert_eq!(s.state, VerificationState::NeedsReview);
        assert_eq!(s.launchable_image().unwrap(), &image("a"));
        assert_eq!(s.tools, ToolInventory::default());
        assert_eq!(s.last_failure, None);
        assert_eq!(s.verification_count, 2);
        let pending = s.pending_review.clone().unwrap();
        assert_eq!(pending.image, image("b"));
        assert_eq!(pending.held_at, t(3));
        assert_eq!(pending.reasons.len(), 1);

        // A newer held verification replaces the candidate, never the live image.
        s.record_verified(
            &completion("c", high("y"), PromotionPolicy::default()),
            t(4),
        );
        assert_eq!(s.pending_review.as_ref().unwrap().image, image("c"));
        assert_eq!(s.launchable_image().unwrap(), &image("a"));
        // Approving the replaced candidate is refused and changes nothing.
        let before = s.clone();
        let e = s
            .approve_pending(image("b").image.digest().as_str(), t(5))
            .unwrap_err();
        assert!(
            matches!(&e, Error::ReviewMismatch { pending: Some(p), .. } if p == image("c").image.digest().as_str()),
            "{e:?}"
        );
        assert_eq!(s, before);
        // A verification that is not held promotes and drops the candidate.
        s.record_verified(
            &completion("d", ToolInventory::default(), PromotionPolicy::default()),
            t(6),
        );
        assert_eq!(s.state, VerificationState::Verified);
        assert_eq!(s.pending_review, None);
        assert_eq!(s.launchable_image().unwrap(), &image("d"));
    }

    #[test]
    fn a_held_first_verification_is_not_launchable_until_approved() {
        let mut s = server();
        s.record_verified(
            &completion("a", high("x"), PromotionPolicy::default()),
            t(1),
        );
        assert_eq!(s.state, VerificationState::NeedsReview);
        assert!(matches!(
            s.launchable_image(),
            Err(Error::NotVerified { .. })
        ));
        // Named by its commit works as well as by its digest.
        let approved = s.approve_pending(&"a".repeat(40), t(2)).unwrap();
        assert_eq!(approved, image("a"));
        assert_eq!(s.state, VerificationState::Verified);
        assert_eq!(s.launchable_image().unwrap(), &image("a"));
        assert_eq!(s.tools, high("x"));
        assert_eq!(s.pending_review, None);
        assert_eq!(s.updated_at, t(2));
        // Nothing is pending any more: a second approval is a mismatch.
        assert!(matches!(
            s.approve_pending(&"a".repeat(40), t(3)),
            Err(Error::ReviewMismatch { pending: None, .. })
        ));
    }

    #[test]
    fn a_rejection_drops_the_candidate_and_keeps_the_live_image() {
        let mut s = server();
        s.record_verified(
            &completion("a", ToolInventory::default(), PromotionPolicy::default()),
            t(1),
        );
        s.record_verified(
            &completion("b", high("x"), PromotionPolicy::default()),
            t(2),
        );
        assert!(matches!(
            s.reject_pending("sha256:nope", t(3)),
            Err(Error::ReviewMismatch { .. })
        ));
        let rejected = s
            .reject_pending(image("b").image.digest().as_str(), t(3))
            .unwrap();
        assert_eq!(rejected, image("b"));
        assert_eq!(s.pending_review, None);
        assert_eq!(s.launchable_image().unwrap(), &image("a"));
        assert_eq!(s.state, VerificationState::Failed);
        let failure = s.last_failure.clone().unwrap();
        assert_eq!(failure.step, VerificationStep::Record);
        assert!(failure.reason.contains("rejected"), "{}", failure.reason);
        assert!(!failure.retryable);
    }

    #[test]
    fn the_policy_parses_and_prints_its_words() {
        for raw in [
            "promote-always",
            "hold-on-high",
            "hold-on-low,hold-on-description-change,hold-on-breaking-change",
        ] {
            assert_eq!(PromotionPolicy::parse(raw).unwrap().to_string(), raw);
        }
        for bad in ["", " , ", "hold-on-critical", "promote-always,hold-on-high"] {
            assert!(
                matches!(
                    PromotionPolicy::parse(bad),
                    Err(Error::InvalidInput {
                        field: "promotion_policy",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        // Stored records written before the policy existed read with the default policy.
        let old: VerificationCompletion = serde_json::from_value(serde_json::json!({
            "image": image("a"),
            "tools": {},
        }))
        .unwrap();
        assert_eq!(old.policy, PromotionPolicy::default());
        assert_eq!(old.timings, None, "nor timings");
    }
}
