//! The core conformance suite on SQLite, in memory and in a file shared by two handles.

use std::sync::Arc;

use super::*;
use crate::ports::ServerRepository;
use crate::testing::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory() {
    let repo: Arc<dyn ServerRepository> = Arc::new(SqliteServerRepository::in_memory().unwrap());
    conformance::run_all(repo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_file_and_state_survives_reopen() {
    let dir = std::env::temp_dir().join(format!("toolshed-sqlite-{}", uuid::Uuid::new_v4()));
    let path = dir.join("nested").join(DB_FILE);
    let repo = SqliteServerRepository::open(&path).await.unwrap();
    conformance::run_all(Arc::new(repo.clone())).await;
    let before = repo.list_servers(None, 10_000).await.unwrap();
    assert!(!before.is_empty());
    let instances_before = repo.list_instances(None, 10_000).await.unwrap();
    assert!(!instances_before.is_empty());
    drop(repo);
    let reopened = SqliteServerRepository::open(&path).await.unwrap();
    let after = reopened.list_servers(None, 10_000).await.unwrap();
    assert_eq!(before, after);
    let instances_after = reopened.list_instances(None, 10_000).await.unwrap();
    assert_eq!(instances_before, instances_after);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Two repositories opened on one file: two real SQLite connections (not clones of one
/// mutex-guarded handle), as two CLI processes or the CLI and the API would have.
async fn two_connections() -> (
    SqliteServerRepository,
    SqliteServerRepository,
    std::path::PathBuf,
) {
    let dir = std::env::temp_dir().join(format!("toolshed-sqlite-2c-{}", uuid::Uuid::new_v4()));
    let path = dir.join(DB_FILE);
    let a = SqliteServerRepository::open(&path).await.unwrap();
    let b = SqliteServerRepository::open(&path).await.unwrap();
    assert!(
        !Arc::ptr_eq(&a.conn, &b.conn),
        "two connections, not one shared"
    );
    (a, b, dir)
}

fn t0() -> crate::domain::Timestamp {
    chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap()
}

fn a_run(at: crate::domain::Timestamp) -> crate::domain::VerificationRun {
    crate::domain::VerificationRun {
        run_id: uuid::Uuid::new_v4().simple().to_string(),
        commit: crate::domain::CommitSha::new("a".repeat(40)).unwrap(),
        forced: false,
        started_at: at,
        progress: crate::domain::RunProgress::Building { build: None },
        timings: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_race_for_one_lease_and_one_session_slot() {
    let (a, b, dir) = two_connections().await;
    let t = t0();
    let id = conformance::fresh_server_id();
    a.insert_server(&conformance::sample_server(&id, t))
        .await
        .unwrap();
    // 40 acquires, alternating between the two connections, all at once.
    let acquires: Vec<_> = (0..40)
        .map(|i| {
            let repo = if i % 2 == 0 { a.clone() } else { b.clone() };
            let id = id.clone();
            tokio::spawn(async move {
                repo.acquire_lease(
                    &id,
                    &format!("w-{i}"),
                    Some(a_run(t)),
                    t,
                    t + chrono::Duration::seconds(60),
                )
                .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for h in acquires {
        match h.await.unwrap() {
            Ok(lease) => winners.push(lease),
            Err(crate::Error::VerificationInProgress { .. }) => {}
            Err(e) => panic!("unexpected error (a busy database must wait, not fail): {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        b.get_lease(&id).await.unwrap().map(|l| l.token),
        Some(winners[0].token),
        "the other connection sees the winner"
    );

    // A cap of one live session per server, raced from both connections.
    let caps = crate::domain::SessionCaps {
        per_server: 1,
        total: 100,
    };
    let creates: Vec<_> = (0..20)
        .map(|i| {
            let repo = if i % 2 == 0 { a.clone() } else { b.clone() };
            let session = conformance::sample_session(
                &id,
                &format!("race-{i}"),
                t,
                t + chrono::Duration::seconds(900),
            );
            tokio::spawn(async move { repo.create_session(&session, caps).await })
        })
        .collect();
    let mut created = 0;
    for h in creates {
        match h.await.unwrap() {
            Ok(crate::ports::SessionInsert::Created(_)) => created += 1,
            Ok(other) => panic!("distinct ids cannot be existing: {other:?}"),
            Err(crate::Error::CapReached { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(created, 1, "one slot, one session");
    assert_eq!(a.count_live_sessions(&id).await.unwrap().server, 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_token_write_racing_a_takeover_never_lands_after_it() {
    let (a, b, dir) = two_connections().await;
    let t = t0();
    let (mut stale_wins, mut takeover_wins) = (0, 0);
    for round in 0..20 {
        let id = conformance::fresh_server_id();
        a.insert_server(&conformance::sample_server(&id, t))
            .await
            .unwrap();
        let old = a
            .acquire_lease(
                &id,
                "old",
                Some(a_run(t)),
                t,
                t + chrono::Duration::seconds(1),
            )
            .await
            .unwrap();
        // After the old lease expired: the old holder heartbeats on one connection while a new
        // worker takes over on the other.
        let later = t + chrono::Duration::seconds(5);
        let mut stale = old.clone();
        stale.expires_at = later + chrono::Duration::seconds(60);
        let heartbeat = a.save_progress(&stale);
        let takeover = b.acquire_lease(
            &id,
            "new",
            None,
            later,
            later + chrono::Duration::seconds(60),
        );
        // Alternate which side is sent first, so both orders happen.
        let (heartbeat, takeover) = if round % 2 == 0 {
            tokio::join!(heartbeat, takeover)
        } else {
            let (t, h) = tokio::join!(takeover, heartbeat);
            (h, t)
        };
        // Exactly one side wins: the heartbeat lands first (the lease is extended, so the
        // takeover is refused), or the takeover does (and the heartbeat is LeaseLost). Both
        // succeeding would mean a stale write landed after a takeover.
        match (heartbeat, takeover) {
            (Ok(_), Err(crate::Error::VerificationInProgress { .. })) => {
                let held = b.get_lease(&id).await.unwrap().unwrap();
                assert_eq!((held.token, held.holder.as_str()), (old.token, "old"));
                stale_wins += 1;
            }
            (Err(crate::Error::LeaseLost { token, .. }), Ok(new)) => {
                assert_eq!(token, old.token);
                assert!(new.token > old.token);
                let held = b.get_lease(&id).await.unwrap().unwrap();
                assert_eq!((held.token, held.holder.as_str()), (new.token, "new"));
                // Every further write with the old token is refused; the new holder's lands.
                let err = a.save_progress(&stale).await.unwrap_err();
                assert!(matches!(err, crate::Error::LeaseLost { .. }), "{err}");
                assert!(b.save_progress(&new).await.is_ok());
                takeover_wins += 1;
            }
            (heartbeat, takeover) => {
                panic!(
                    "round {round}: heartbeat {heartbeat:?} and takeover {takeover:?} both decided"
                )
            }
        }
    }
    println!("stale heartbeat first: {stale_wins}, takeover first: {takeover_wins}");
    std::fs::remove_dir_all(dir).unwrap();
}
