//! Warm pools on the in-memory doubles: a launch claims a ready warm session and a replacement
//! starts; idempotent launches stay cold; a re-verified server's pool is retired; idle sessions
//! are retired by the sweep and the pool topped up; warm sessions count against the caps;
//! settings are bounded and admin-only.

mod common;

use std::time::Duration;

use common::Harness;
use toolshed_core::domain::{
    IdempotencyKey, InstanceEnv, PlaygroundSession, Principal, PrincipalId, PrincipalQuotas, Scope,
    ServerId, SessionState, StopReason, WarmPool,
};
use toolshed_core::error::CapScope;
use toolshed_core::ports::Clock;
use toolshed_core::services::{Caller, LaunchRequest, SweepLimits};
use toolshed_core::Error;

fn pool(size: u32) -> WarmPool {
    WarmPool {
        size,
        idle_ttl: Duration::from_secs(600),
    }
}

/// Waits (real time, bounded) until `server` has `n` ready warm sessions, and returns them.
async fn ready_warm(h: &Harness, server: &ServerId, n: usize) -> Vec<PlaygroundSession> {
    for _ in 0..500 {
        let warm = h.toolshed.list_warm_sessions(server).await.unwrap();
        let ready: Vec<_> = warm
            .into_iter()
            .filter(|s| s.state == SessionState::Running)
            .collect();
        if ready.len() >= n {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{server} never had {n} ready warm sessions");
}

/// Sets the pool and fills it in the background, as the API does.
async fn set_pool(h: &Harness, id: &ServerId, size: u32) {
    h.toolshed.set_warm_pool(id, pool(size)).await.unwrap();
    h.toolshed.spawn_warm_top_up(id.clone());
}

/// The stored session, fresh.
async fn stored(h: &Harness, s: &PlaygroundSession) -> PlaygroundSession {
    h.toolshed.get_session(&s.id).await.unwrap()
}

#[tokio::test]
async fn a_launch_claims_the_ready_warm_session_and_a_replacement_starts() {
    let h = Harness::new();
    let server = h.verified("time").await;
    let id = h.id("time");
    set_pool(&h, &id, 1).await;
    let warm = ready_warm(&h, &id, 1).await.remove(0);
    assert!(warm.warm && warm.owner.is_none() && warm.ready_at.is_some());
    assert_eq!(
        warm.image,
        server.image.clone().unwrap().image,
        "the live image"
    );
    assert_eq!(
        warm.expires_at,
        warm.created_at + chrono::Duration::minutes(10),
        "a warm session expires at its idle deadline"
    );
    // Admins see it in listings, marked warm.
    let listed = h.toolshed.list_sessions(&id, true, 10).await.unwrap();
    assert!(listed.iter().any(|s| s.id == warm.id && s.warm));

    let starts = h.runner.start_calls();
    let s = h
        .toolshed
        .launch_session(&id, LaunchRequest::default())
        .await
        .unwrap();
    assert_eq!(s.id, warm.id, "the warm session was claimed");
    assert_eq!(s.state, SessionState::Running, "answers at once, ready");
    assert!(!s.warm && s.claimed_at.is_some());
    assert_eq!(
        s.expires_at,
        h.clock.now() + chrono::Duration::minutes(15),
        "the claim gives the launch's TTL"
    );
    // The replacement starts in the background and becomes ready.
    let replacement = ready_warm(&h, &id, 1).await.remove(0);
    assert_ne!(replacement.id, warm.id);
    assert_eq!(h.runner.start_calls(), starts + 1, "one replacement task");
    // The claimed session is an ordinary session now: stop works.
    let stopped = h.toolshed.stop_session(&s.id).await.unwrap();
    assert_eq!(stopped.stop_reason, Some(StopReason::Requested));
}

#[tokio::test]
async fn an_owned_claim_counts_against_the_callers_quota() {
    let h = Harness::new();
    h.verified("time").await;
    let id = h.id("time");
    set_pool(&h, &id, 2).await;
    ready_warm(&h, &id, 2).await;
    let principal = Principal::new(PrincipalId::new("alice").unwrap(), [Scope::Sessions]);
    let quotas = PrincipalQuotas {
        live_sessions: 1,
        ..PrincipalQuotas::default()
    };
    let caller = Caller::new(principal, quotas);
    let s = h
        .toolshed
        .launch_session_as(&caller, &id, LaunchRequest::default())
        .await
        .unwrap();
    assert!(s.claimed_at.is_some());
    assert_eq!(s.owner, Some(PrincipalId::new("alice").unwrap()));
    match h
        .toolshed
        .launch_session_as(&caller, &id, LaunchRequest::default())
        .await
    {
        Err(Error::QuotaExceeded { limit: 1, .. }) => {}
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
}

#[tokio::test]
async fn an_idempotent_launch_never_claims_a_warm_session() {
    let h = Harness::new();
    h.verified("time").await;
    let id = h.id("time");
    set_pool(&h, &id, 1).await;
    let warm = ready_warm(&h, &id, 1).await.remove(0);
    let request = LaunchRequest {
        ttl: None,
        idempotency_key: Some(IdempotencyKey::new("k-1").unwrap()),
        settings: Default::default(),
    };
    assert!(!request.may_use_warm());
    assert!(LaunchRequest::default().may_use_warm());
    let with_values = LaunchRequest {
        settings: InstanceEnv::parse_assignments(["MODE=fast"]).unwrap(),
        ..LaunchRequest::default()
    };
    assert!(
        !with_values.may_use_warm(),
        "a warm session runs without launch values"
    );
    let s = h.toolshed.launch_session(&id, request).await.unwrap();
    assert_ne!(s.id, warm.id);
    assert_eq!(s.state, SessionState::Starting, "the cold path");
    assert!(stored(&h, &warm).await.warm, "the warm one is left");
}

#[tokio::test]
async fn a_reverified_server_retires_its_old_pool_and_warms_the_new_image() {
    let h = Harness::new();
    h.verified("time").await;
    let id = h.id("time");
    set_pool(&h, &id, 1).await;
    let old = ready_warm(&h, &id, 1).await.remove(0);
    h.push_commit("time", 'b');
    let server = h.verified_existing("time").await;
    let new_image = server.image.unwrap().image;
    assert_ne!(new_image.digest(), old.image.digest());
    // Before any top-up, the old pool is never claimed: the launch goes cold on the new image.
    let cold = h
        .toolshed
        .launch_session(&id, LaunchRequest::default())
        .await
        .unwrap();
    assert_ne!(cold.id, old.id);
    assert_eq!(cold.image, new_image);
    let report = h.toolshed.top_up_warm_pool(&id).await.unwrap();
    assert_eq!((report.retired, report.started), (1, 1), "{report:?}");
    let retired = stored(&h, &old).await;
    assert_eq!(retired.state, SessionState::Stopped);
    assert_eq!(retired.stop_reason, Some(StopReason::Retired));
    assert!(
        !h.runner.live_tasks().iter().any(|t| t.handle == old.task),
        "the retired session's task is stopped"
    );
    let fresh = ready_warm(&h, &id, 1).await.remove(0);
    assert_eq!(fresh.image, new_image);
}

#[tokio::test]
async fn the_sweep_retires_idle_warm_sessions_and_tops_the_pool_up() {
    let h = Harness::new();
    h.verified("time").await;
    let id = h.id("time");
    set_pool(&h, &id, 1).await;
    let idle = ready_warm(&h, &id, 1).await.remove(0);
    h.advance(Duration::from_secs(11 * 60));
    let report = h
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert_eq!(report.expired_stopped, 1, "{report:?}");
    assert_eq!(report.warm.started, 1, "{report:?}");
    let ended = stored(&h, &idle).await;
    assert_eq!(ended.stop_reason, Some(StopReason::Expired));
    let fresh = ready_warm(&h, &id, 1).await.remove(0);
    assert_ne!(fresh.id, idle.id);
    // A full pool: the next sweep changes nothing.
    let again = h
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert!(again.is_noop(), "{again:?}");
}

#[tokio::test]
async fn warm_sessions_count_against_the_caps_and_pool_sizes_are_bounded() {
    let h = Harness::with_config(|c| {
        c.session_caps.per_server = 2;
        c.session_caps.total = 10;
        c.warm_pool_max_size = 3;
    });
    h.verified("time").await;
    let id = h.id("time");
    match h.toolshed.set_warm_pool(&id, pool(3)).await {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "warm_pool.size"),
        other => panic!("a pool above the per-server cap must be refused, got {other:?}"),
    }
    set_pool(&h, &id, 2).await;
    ready_warm(&h, &id, 2).await;
    // The pool holds the server's two places: a cold launch is refused.
    let keyed = LaunchRequest {
        ttl: None,
        idempotency_key: Some(IdempotencyKey::new("cold").unwrap()),
        settings: Default::default(),
    };
    match h.toolshed.launch_session(&id, keyed).await {
        Err(Error::CapReached {
            scope: CapScope::PerServer,
            ..
        }) => {}
        other => panic!("expected CapReached, got {other:?}"),
    }
    // Claims need no new place.
    for _ in 0..2 {
        let s = h
            .toolshed
            .launch_session(&id, LaunchRequest::default())
            .await
            .unwrap();
        assert!(s.claimed_at.is_some());
    }
    // Replacements find the cap full, so the third launch goes cold and is refused.
    let report = h.toolshed.top_up_warm_pool(&id).await.unwrap();
    assert!(report.capped && report.started == 0, "{report:?}");
    match h
        .toolshed
        .launch_session(&id, LaunchRequest::default())
        .await
    {
        Err(Error::CapReached { .. }) => {}
        other => panic!("expected CapReached, got {other:?}"),
    }
}

#[tokio::test]
async fn only_admins_set_pools_and_size_zero_retires_the_pool() {
    let h = Harness::new();
    h.verified("time").await;
    let id = h.id("time");
    let user = Caller::new(
        Principal::new(PrincipalId::new("bob").unwrap(), [Scope::Sessions]),
        PrincipalQuotas::default(),
    );
    assert!(matches!(
        h.toolshed.set_warm_pool_as(&user, &id, pool(1)).await,
        Err(Error::Forbidden { .. })
    ));
    let admin = Caller::new(
        Principal::new(PrincipalId::new("root").unwrap(), [Scope::Admin]),
        PrincipalQuotas::default(),
    );
    let server = h
        .toolshed
        .set_warm_pool_as(&admin, &id, pool(1))
        .await
        .unwrap();
    assert_eq!(server.warm_pool, pool(1));
    assert_eq!(h.repo_get("time").await.warm_pool, pool(1), "stored");
    h.toolshed.spawn_warm_top_up(id.clone());
    let warm = ready_warm(&h, &id, 1).await.remove(0);
    set_pool(&h, &id, 0).await;
    let report = h.toolshed.top_up_warm_pool(&id).await.unwrap();
    // The background top-up of the setting may have retired it first.
    assert_eq!(report.started, 0);
    for _ in 0..500 {
        if stored(&h, &warm).await.state == SessionState::Stopped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        stored(&h, &warm).await.stop_reason,
        Some(StopReason::Retired)
    );
}
