//! Conformance of the warm-pool methods: `claim_warm_session` (only ready warm sessions of the
//! claim's digest, before their idle deadline; owner, expiry and quota in one write; never the
//! same session twice, even under concurrent claims) and `list_warm_sessions`.

use std::collections::HashSet;

use super::{
    created, digest, fails, hex8, image, new_server, now, sample_session, secs, Must, Repo, NO_CAPS,
};
use crate::domain::{
    Endpoint, PlaygroundSession, PrincipalId, QuotaKind, ServerId, SessionState, StopReason,
    Timestamp, WarmClaim,
};
use crate::error::Error;

fn fresh_principal() -> PrincipalId {
    PrincipalId::new(format!("w-{}", hex8())).must("principal id")
}

/// A warm session of `server` (unstored) running `seed`'s image, ready when `ready`.
fn warm_session(
    server: &ServerId,
    suffix: &str,
    seed: &str,
    created_at: Timestamp,
    idle_deadline: Timestamp,
    ready: bool,
) -> PlaygroundSession {
    let mut s = sample_session(server, suffix, created_at, idle_deadline);
    s.image = image(server, seed);
    s.warm = true;
    if ready {
        s.state = SessionState::Running;
        s.endpoint = Some(Endpoint::new("10.0.0.9", 8000, "/mcp").must("endpoint"));
        s.ready_at = Some(created_at + secs(2));
    }
    s
}

fn claim_of(
    server: &ServerId,
    seed: &str,
    owner: Option<PrincipalId>,
    quota: Option<u32>,
    t: Timestamp,
) -> WarmClaim {
    WarmClaim {
        server_id: server.clone(),
        digest: image(server, seed).digest().clone(),
        owner,
        live_quota: quota,
        expires_at: t + secs(900),
        now: t,
    }
}

async fn end_all(repo: &Repo, server: &ServerId, at: Timestamp) {
    for s in repo
        .list_sessions_for_server(server, true, 100)
        .await
        .must("list_sessions_for_server")
    {
        repo.end_session(&s.id, StopReason::Requested, at)
            .await
            .must("end_session");
    }
}

/// `claim_warm_session` takes only a ready warm session of the digest before its idle deadline,
/// moves its owner, expiry (and expiry index) and version in one write, never twice; quota;
/// `list_warm_sessions` lists the live warm sessions only, oldest first.
pub async fn check_warm_claim(repo: Repo) {
    let t = now();
    let server = new_server(&repo, t).await.id;
    let other = new_server(&repo, t).await.id;
    let live = "live";
    let starting = warm_session(&server, "w-starting", live, t, t + secs(600), false);
    let ready = warm_session(&server, "w-ready", live, t + secs(1), t + secs(600), true);
    let old_digest = warm_session(&server, "w-old", "old", t + secs(2), t + secs(600), true);
    let idle = warm_session(&server, "w-idle", live, t - secs(700), t - secs(1), true);
    let mut cold = warm_session(&server, "cold", live, t + secs(3), t + secs(600), true);
    cold.warm = false;
    let elsewhere = warm_session(&other, "w-other", live, t, t + secs(600), true);
    for s in [&starting, &ready, &old_digest, &idle, &cold, &elsewhere] {
        created(&repo, s, NO_CAPS).await;
    }
    let listed: Vec<_> = repo
        .list_warm_sessions(&server, 100)
        .await
        .must("list_warm_sessions")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed,
        vec![
            idle.id.clone(),
            starting.id.clone(),
            ready.id.clone(),
            old_digest.id.clone()
        ],
        "conformance: list_warm_sessions must list the server's live warm sessions, oldest first"
    );
    let counts_before = repo
        .count_live_sessions(&server)
        .await
        .must("count_live_sessions");

    // Quota: refused without taking anything; a quota needs an owner.
    let full = fresh_principal();
    match fails(
        repo.claim_warm_session(&claim_of(&server, live, Some(full.clone()), Some(0), t))
            .await,
        "claim over quota",
    ) {
        Error::QuotaExceeded {
            quota: QuotaKind::LiveSessions,
            limit: 0,
            ..
        } => {}
        e => panic!("conformance: claim over quota: expected QuotaExceeded, got {e}"),
    }
    match fails(
        repo.claim_warm_session(&claim_of(&server, live, None, Some(3), t))
            .await,
        "claim with a quota and no owner",
    ) {
        Error::InvalidInput { .. } => {}
        e => panic!("conformance: claim with a quota and no owner: expected InvalidInput, got {e}"),
    }
    assert!(
        repo.get_session(&ready.id).await.must("get_session").warm,
        "conformance: a refused claim must leave the session warm"
    );

    let owner = fresh_principal();
    let claim = claim_of(&server, live, Some(owner.clone()), Some(2), t);
    let claimed = repo
        .claim_warm_session(&claim)
        .await
        .must("claim_warm_session")
        .unwrap_or_else(|| panic!("conformance: the ready warm session must be claimable"));
    assert_eq!(
        claimed.id, ready.id,
        "conformance: only a ready warm session of the digest, before its idle deadline, is claimed"
    );
    assert!(
        !claimed.warm
            && claimed.owner.as_ref() == Some(&owner)
            && claimed.expires_at == claim.expires_at
            && claimed.version == 2
            && claimed.state == SessionState::Running,
        "conformance: a claim must clear warm, set owner and expiry, bump the version: {claimed:?}"
    );
    assert_eq!(
        repo.get_session(&ready.id).await.must("get_session"),
        claimed,
        "conformance: the claim must be stored as returned"
    );
    assert_eq!(
        repo.claim_warm_session(&claim).await.must("second claim"),
        None,
        "conformance: a claimed session is never claimed again (nothing else is claimable)"
    );
    assert_eq!(
        repo.count_live_sessions(&server).await.must("count"),
        counts_before,
        "conformance: a claim does not change the live-session counts"
    );
    assert_eq!(
        repo.count_live_sessions_of(&owner).await.must("count of"),
        1,
        "conformance: a claimed session counts against its owner"
    );
    let expired: HashSet<_> = repo
        .list_expired_sessions(t, 1000)
        .await
        .must("list_expired_sessions")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(
        expired.contains(&idle.id) && !expired.contains(&claimed.id),
        "conformance: a warm session past its idle deadline is expired; a claimed one is not"
    );
    let expired_later: HashSet<_> = repo
        .list_expired_sessions(claim.expires_at, 100_000)
        .await
        .must("list_expired_sessions")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(
        expired_later.contains(&claimed.id),
        "conformance: a claimed session expires at the claim's expiry"
    );
    assert!(
        !repo
            .list_warm_sessions(&server, 100)
            .await
            .must("list_warm_sessions")
            .iter()
            .any(|s| s.id == claimed.id),
        "conformance: a claimed session is no longer listed as warm"
    );
    // An operator's claim: no owner, no quota.
    let mut second = warm_session(&server, "w-second", live, t + secs(4), t + secs(600), true);
    second = created(&repo, &second, NO_CAPS).await;
    let unowned = repo
        .claim_warm_session(&claim_of(&server, live, None, None, t))
        .await
        .must("unowned claim");
    assert_eq!(
        unowned.map(|s| (s.id, s.owner)),
        Some((second.id.clone(), None)),
        "conformance: a claim without owner takes the session unowned"
    );
    end_all(&repo, &server, t).await;
    end_all(&repo, &other, t).await;
    assert_eq!(
        repo.count_live_sessions_of(&owner).await.must("count of"),
        0,
        "conformance: ending a claimed session frees its owner's place"
    );
    assert!(
        repo.list_warm_sessions(&server, 100)
            .await
            .must("list_warm_sessions")
            .is_empty(),
        "conformance: ended warm sessions are not listed"
    );
}

/// `K` concurrent claims on `M < K` warm sessions take exactly `M` distinct sessions.
pub async fn check_concurrent_warm_claims(repo: Repo) {
    const M: usize = 3;
    const K: usize = 8;
    let t = now();
    let server = new_server(&repo, t).await.id;
    for i in 0..M {
        let s = warm_session(
            &server,
            &format!("wc-{i}"),
            "live",
            t + secs(i as i64),
            t + secs(600),
            true,
        );
        created(&repo, &s, NO_CAPS).await;
    }
    let handles: Vec<_> = (0..K)
        .map(|_| {
            let repo = repo.clone();
            let claim = claim_of(&server, "live", Some(fresh_principal()), Some(5), t);
            tokio::spawn(async move { repo.claim_warm_session(&claim).await })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        match h.await {
            Ok(Ok(Some(s))) => ids.push(s.id),
            Ok(Ok(None)) => {}
            // A conditional write answers Some or None under contention, never an error.
            Ok(Err(e)) => panic!(
                "conformance: {K} concurrent claims on {M} warm sessions: a claim failed: {e}"
            ),
            Err(e) => panic!(
                "conformance: {K} concurrent claims on {M} warm sessions: a claim panicked: {e}"
            ),
        }
    }
    let distinct: HashSet<_> = ids.iter().cloned().collect();
    assert_eq!(
        (ids.len(), distinct.len()),
        (M, M),
        "conformance: {K} concurrent claims on {M} warm sessions must take exactly {M} distinct \
         sessions, got {ids:?}"
    );
    end_all(&repo, &server, t).await;
}

/// A claim never takes a session of the claim's server under another digest, even when that is
/// the only warm one (the pool of a re-verified server).
pub async fn check_warm_claim_digest(repo: Repo) {
    let t = now();
    let server = new_server(&repo, t).await.id;
    let s = warm_session(&server, "wd", "old", t, t + secs(600), true);
    created(&repo, &s, NO_CAPS).await;
    assert_eq!(
        repo.claim_warm_session(&claim_of(&server, "new", None, None, t))
            .await
            .must("claim"),
        None,
        "conformance: a warm session of another digest must not be claimed"
    );
    assert_ne!(
        digest("new"),
        *image(&server, "old").digest(),
        "conformance: distinct seeds must give distinct digests"
    );
    end_all(&repo, &server, t).await;
}
