//! Conformance of the principal methods: API keys, the owner's live-session quota and windowed
//! quotas. Every check uses fresh principals (`p-<8 hex>`), so it can run on a shared table.

use std::collections::BTreeSet;

use super::{created, fails, hex8, new_server, now, sample_session, secs, Must, Repo, NO_CAPS};
use crate::domain::{
    ApiKey, ApiKeyId, NewApiKey, PrincipalId, QuotaKind, Scope, SessionCaps, StopReason,
};
use crate::error::{EntityKind, Error};
use crate::ports::SessionInsert;

fn fresh_principal() -> PrincipalId {
    PrincipalId::new(format!("p-{}", hex8())).must("principal id")
}

fn new_key(owner: &PrincipalId, name: &str) -> ApiKey {
    ApiKey::generate(
        NewApiKey {
            name: name.to_owned(),
            scopes: BTreeSet::from([Scope::Read, Scope::Sessions]),
            owner: owner.clone(),
        },
        now(),
    )
    .must("generate api key")
    .0
}

/// insert / get / list / revoke: `AlreadyExists`, `NotFound`, owner filter, revocation that
/// sticks and keeps its first time.
pub async fn check_api_keys(repo: Repo) {
    let t = now();
    let alice = fresh_principal();
    let bob = fresh_principal();
    let a1 = new_key(&alice, "a1");
    let a2 = new_key(&alice, "a2");
    let b1 = new_key(&bob, "b1");
    for k in [&a1, &a2, &b1] {
        let stored = repo.insert_api_key(k).await.must("insert_api_key");
        assert_eq!(
            &stored, k,
            "conformance: insert_api_key must return the key"
        );
    }
    match fails(repo.insert_api_key(&a1).await, "insert_api_key twice") {
        Error::AlreadyExists {
            kind: EntityKind::ApiKey,
            ..
        } => {}
        e => panic!("conformance: insert_api_key twice: expected AlreadyExists, got {e}"),
    }
    assert_eq!(
        repo.get_api_key(&a2.id).await.must("get_api_key"),
        a2,
        "conformance: get_api_key must return the stored key"
    );
    let missing = ApiKeyId::new(format!("{}{}", hex8(), hex8())).must("key id");
    match fails(
        repo.get_api_key(&missing).await,
        "get_api_key of a missing id",
    ) {
        Error::NotFound {
            kind: EntityKind::ApiKey,
            ..
        } => {}
        e => panic!("conformance: get_api_key of a missing id: expected NotFound, got {e}"),
    }
    let mine = repo
        .list_api_keys(Some(alice.clone()))
        .await
        .must("list_api_keys(owner)");
    let mut expected = vec![a1.clone(), a2.clone()];
    expected.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(
        mine, expected,
        "conformance: list_api_keys(owner) must return exactly the owner's keys, by id"
    );
    let all = repo.list_api_keys(None).await.must("list_api_keys(None)");
    assert!(
        [&a1, &a2, &b1].iter().all(|k| all.contains(k)),
        "conformance: list_api_keys(None) must include every key"
    );
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "conformance: list_api_keys must be ordered by id"
    );

    let revoked = repo
        .revoke_api_key(&a1.id, t + secs(5))
        .await
        .must("revoke_api_key");
    assert_eq!(
        revoked.revoked_at,
        Some(t + secs(5)),
        "conformance: revoke_api_key must set revoked_at"
    );
    assert_eq!(
        repo.get_api_key(&a1.id)
            .await
            .must("get revoked")
            .revoked_at,
        Some(t + secs(5)),
        "conformance: a revocation must be visible to the next read"
    );
    let again = repo
        .revoke_api_key(&a1.id, t + secs(9))
        .await
        .must("revoke_api_key twice");
    assert_eq!(
        again.revoked_at,
        Some(t + secs(5)),
        "conformance: a second revocation must keep the first time"
    );
    assert!(
        repo.get_api_key(&a2.id)
            .await
            .must("get other")
            .revoked_at
            .is_none(),
        "conformance: revoking one key must not touch another"
    );
    match fails(
        repo.revoke_api_key(&missing, t).await,
        "revoke_api_key of a missing id",
    ) {
        Error::NotFound { .. } => {}
        e => panic!("conformance: revoke_api_key of a missing id: expected NotFound, got {e}"),
    }
}

/// `touch_api_key` sets `last_used_at` and never moves it back.
pub async fn check_touch_api_key(repo: Repo) {
    let t = now();
    let key = new_key(&fresh_principal(), "touch");
    repo.insert_api_key(&key).await.must("insert_api_key");
    repo.touch_api_key(&key.id, t + secs(60))
        .await
        .must("touch_api_key");
    let read = |repo: Repo, id: ApiKeyId| async move {
        repo.get_api_key(&id).await.must("get_api_key").last_used_at
    };
    assert_eq!(
        read(repo.clone(), key.id.clone()).await,
        Some(t + secs(60)),
        "conformance: touch_api_key must set last_used_at"
    );
    repo.touch_api_key(&key.id, t + secs(30))
        .await
        .must("touch_api_key earlier");
    assert_eq!(
        read(repo.clone(), key.id.clone()).await,
        Some(t + secs(60)),
        "conformance: touch_api_key must never move last_used_at back"
    );
    repo.touch_api_key(&key.id, t + secs(120))
        .await
        .must("touch_api_key later");
    assert_eq!(
        read(repo.clone(), key.id.clone()).await,
        Some(t + secs(120)),
        "conformance: a later touch must move last_used_at"
    );
    let missing = ApiKeyId::new(format!("{}{}", hex8(), hex8())).must("key id");
    assert!(
        repo.touch_api_key(&missing, t).await.is_err(),
        "conformance: touch_api_key of a missing id must fail"
    );
}

/// `create_owned_session`: the owner's live quota, freed by `end_session`; other owners and
/// retried ids unaffected; an owner is required. `count_live_sessions_of` agrees.
pub async fn check_owner_quota(repo: Repo) {
    let t = now();
    let s = new_server(&repo, t).await;
    let alice = fresh_principal();
    let bob = fresh_principal();
    let owned = |suffix: &str, owner: &PrincipalId| {
        let mut sess = sample_session(&s.id, suffix, t, t + secs(900));
        sess.owner = Some(owner.clone());
        sess
    };
    let mut first = None;
    for i in 0..2 {
        match repo
            .create_owned_session(&owned(&format!("q{i}"), &alice), NO_CAPS, 2)
            .await
            .must("create_owned_session under quota")
        {
            SessionInsert::Created(c) => {
                assert_eq!(
                    c.owner.as_ref(),
                    Some(&alice),
                    "conformance: the owner must be stored"
                );
                first.get_or_insert(c);
            }
            SessionInsert::Existing(e) => panic!("conformance: new id returned Existing({e:?})"),
        }
    }
    assert_eq!(
        repo.count_live_sessions_of(&alice).await.must("count of"),
        2,
        "conformance: count_live_sessions_of must count the owner's live sessions"
    );
    match fails(
        repo.create_owned_session(&owned("q2", &alice), NO_CAPS, 2)
            .await,
        "create_owned_session over the owner's quota",
    ) {
        Error::QuotaExceeded {
            quota: QuotaKind::LiveSessions,
            limit: 2,
            ..
        } => {}
        e => panic!("conformance: over the owner's quota: expected QuotaExceeded, got {e}"),
    }
    assert!(
        repo.get_session(&owned("q2", &alice).id).await.is_err(),
        "conformance: a refused owned session must not be stored"
    );
    // A retry of a stored id answers Existing even at the quota.
    let first = first.unwrap_or_else(|| panic!("conformance: no session was created"));
    match repo
        .create_owned_session(&owned("q0", &alice), NO_CAPS, 2)
        .await
        .must("retried create_owned_session")
    {
        SessionInsert::Existing(e) => assert_eq!(e.id, first.id),
        SessionInsert::Created(c) => panic!("conformance: a retried id was created again: {c:?}"),
    }
    // Another owner has its own quota.
    assert!(matches!(
        repo.create_owned_session(&owned("b0", &bob), NO_CAPS, 2)
            .await
            .must("another owner"),
        SessionInsert::Created(_)
    ));
    // Ending a session frees a place.
    repo.end_session(&first.id, StopReason::Requested, t)
        .await
        .must("end_session");
    assert_eq!(
        repo.count_live_sessions_of(&alice).await.must("count of"),
        1,
        "conformance: an ended session must stop counting against its owner"
    );
    assert!(matches!(
        repo.create_owned_session(&owned("q3", &alice), NO_CAPS, 2)
            .await
            .must("create_owned_session after an end"),
        SessionInsert::Created(_)
    ));
    // The server caps still hold.
    let caps = SessionCaps {
        per_server: 1,
        total: u32::MAX,
    };
    let other = new_server(&repo, t).await;
    let mut capped = sample_session(&other.id, "cap0", t, t + secs(900));
    capped.owner = Some(fresh_principal());
    created(&repo, &capped, NO_CAPS).await;
    let mut capped2 = sample_session(&other.id, "cap1", t, t + secs(900));
    capped2.owner = Some(fresh_principal());
    match fails(
        repo.create_owned_session(&capped2, caps, 10).await,
        "create_owned_session over the per-server cap",
    ) {
        Error::CapReached { .. } => {}
        e => panic!("conformance: per-server cap: expected CapReached, got {e}"),
    }
    // An owner is required.
    let orphan = sample_session(&s.id, "orphan", t, t + secs(900));
    match fails(
        repo.create_owned_session(&orphan, NO_CAPS, 2).await,
        "create_owned_session without an owner",
    ) {
        Error::InvalidInput { .. } => {}
        e => panic!("conformance: without an owner: expected InvalidInput, got {e}"),
    }
    for id in [&s.id, &other.id] {
        for sess in repo
            .list_sessions_for_server(id, true, 100)
            .await
            .must("list")
        {
            repo.end_session(&sess.id, StopReason::Requested, t)
                .await
                .must("end_session");
        }
    }
}

/// 50 concurrent owned creates (over 10 servers) with a live quota of 5 → exactly 5.
pub async fn check_concurrent_owner_quota(repo: Repo) {
    let t = now();
    let owner = fresh_principal();
    let mut servers = Vec::new();
    for _ in 0..10 {
        servers.push(new_server(&repo, t).await.id);
    }
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let repo = repo.clone();
            let mut sess = sample_session(&servers[i % 10], &format!("oq-{i}"), t, t + secs(900));
            sess.owner = Some(owner.clone());
            tokio::spawn(async move { repo.create_owned_session(&sess, NO_CAPS, 5).await })
        })
        .collect();
    let mut created_n = 0;
    for h in handles {
        match h.await {
            Ok(Ok(SessionInsert::Created(_))) => created_n += 1,
            Ok(Ok(SessionInsert::Existing(e))) => {
                panic!("conformance: concurrent owned create returned Existing({e:?})")
            }
            Ok(Err(Error::QuotaExceeded { .. })) => {}
            Ok(Err(e)) => panic!("conformance: concurrent create_owned_session: {e}"),
            Err(e) => panic!("conformance: concurrent create_owned_session panicked: {e}"),
        }
    }
    assert_eq!(
        created_n, 5,
        "conformance: 50 concurrent owned creates with a live quota of 5 must create exactly 5"
    );
    assert_eq!(
        repo.count_live_sessions_of(&owner).await.must("count of"),
        5,
        "conformance: exactly 5 live sessions must be counted for the owner"
    );
    for id in &servers {
        for sess in repo
            .list_sessions_for_server(id, true, 100)
            .await
            .must("list")
        {
            repo.end_session(&sess.id, StopReason::Requested, t)
                .await
                .must("end_session");
        }
    }
}

/// `take_quota`: counts up to the limit per (principal, kind, window), then `QuotaExceeded`
/// without counting; 50 concurrent takes with a limit of 7 → exactly 7.
pub async fn check_take_quota(repo: Repo) {
    let t = now();
    let p = fresh_principal();
    let window = QuotaKind::Launches.window_start(t);
    for expected in 1..=3 {
        assert_eq!(
            repo.take_quota(&p, QuotaKind::Launches, window, 3)
                .await
                .must("take_quota under the limit"),
            expected,
            "conformance: take_quota must return the count after the increment"
        );
    }
    match fails(
        repo.take_quota(&p, QuotaKind::Launches, window, 3).await,
        "take_quota over the limit",
    ) {
        Error::QuotaExceeded {
            quota: QuotaKind::Launches,
            limit: 3,
            ..
        } => {}
        e => panic!("conformance: take_quota over the limit: expected QuotaExceeded, got {e}"),
    }
    assert_eq!(
        repo.take_quota(&p, QuotaKind::Launches, window, 4)
            .await
            .must("take_quota with a higher limit"),
        4,
        "conformance: a refused take must not count"
    );
    let next = window + secs(60);
    assert_eq!(
        repo.take_quota(&p, QuotaKind::Launches, next, 3)
            .await
            .must("take_quota in the next window"),
        1,
        "conformance: every window counts from zero"
    );
    assert_eq!(
        repo.take_quota(&p, QuotaKind::Verifications, window, 3)
            .await
            .must("take_quota of another kind"),
        1,
        "conformance: every kind counts on its own"
    );
    assert_eq!(
        repo.take_quota(&fresh_principal(), QuotaKind::Launches, window, 3)
            .await
            .must("take_quota of another principal"),
        1,
        "conformance: every principal counts on its own"
    );

    let q = fresh_principal();
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let repo = repo.clone();
            let q = q.clone();
            tokio::spawn(async move { repo.take_quota(&q, QuotaKind::Launches, window, 7).await })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        match h.await {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(Error::QuotaExceeded { .. })) => {}
            Ok(Err(e)) => panic!("conformance: concurrent take_quota: {e}"),
            Err(e) => panic!("conformance: concurrent take_quota panicked: {e}"),
        }
    }
    assert_eq!(
        ok, 7,
        "conformance: 50 concurrent takes with a limit of 7 must succeed exactly 7 times"
    );
}
