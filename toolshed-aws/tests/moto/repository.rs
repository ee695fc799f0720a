//! The core `ServerRepository` conformance suite on DynamoDB.

use std::sync::Arc;

use toolshed_core::testing::conformance;

use crate::MotoEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_passes_the_conformance_suite() {
    let Some(env) = MotoEnv::serialized().await else {
        return;
    };
    conformance::run_all(Arc::new(env.adapters.repository.clone())).await;
}

/// The stored items follow the documented layout (the Terraform tables and the sweep's index
/// depend on it): `live` and `live_created_at` only while live, `ttl` = expiry + 7 days only once
/// ended, counters in the same table.
#[tokio::test]
async fn items_follow_the_documented_layout() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use toolshed_core::domain::{ServerId, SessionCaps, StopReason};
    use toolshed_core::ports::ServerRepository;
    use toolshed_core::testing::conformance::{sample_server, sample_session};

    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let repo = &env.adapters.repository;
    let t = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let id = ServerId::new("layout").unwrap();
    repo.insert_server(&sample_server(&id, t)).await.unwrap();
    let s = sample_session(&id, "one", t, t + chrono::Duration::seconds(600));
    repo.create_session(&s, SessionCaps::default())
        .await
        .unwrap();

    let db = env.dynamodb();
    let get = |table: &'static str, key: &'static str, value: String| {
        let db = db.clone();
        async move {
            db.get_item()
                .table_name(table)
                .key(key, AttributeValue::S(value))
                .send()
                .await
                .unwrap()
                .item
                .unwrap_or_default()
        }
    };
    let item = get("toolshed-sessions", "session_id", s.id.to_string()).await;
    assert_eq!(item["live"], AttributeValue::S("1".into()));
    assert_eq!(item["server_id"], AttributeValue::S("layout".into()));
    assert_eq!(
        item["expires_at"],
        AttributeValue::N((t.timestamp_millis() + 600_000).to_string())
    );
    assert_eq!(
        item["live_created_at"],
        AttributeValue::N(t.timestamp_millis().to_string())
    );
    assert!(!item.contains_key("ttl"), "a live session has no ttl");
    assert_eq!(item["version"], AttributeValue::N("1".into()));
    let counter = get("toolshed-sessions", "session_id", "#live#layout".into()).await;
    assert_eq!(counter["count"], AttributeValue::N("1".into()));

    repo.end_session(&s.id, StopReason::Requested, t)
        .await
        .unwrap();
    let item = get("toolshed-sessions", "session_id", s.id.to_string()).await;
    assert!(
        !item.contains_key("live") && !item.contains_key("live_created_at"),
        "ended sessions leave the live indexes"
    );
    assert_eq!(
        item["ttl"],
        AttributeValue::N((t.timestamp() + 600 + 7 * 86_400).to_string())
    );
    let counter = get("toolshed-sessions", "session_id", "#live#layout".into()).await;
    assert_eq!(counter["count"], AttributeValue::N("0".into()));
    let server = get("toolshed-servers", "server_id", "layout".into()).await;
    assert!(server.contains_key("record") && server["version"] == AttributeValue::N("1".into()));
}

/// Caps that never refuse: these tests are about what is read and stored, not about caps.
const NO_CAPS: toolshed_core::domain::SessionCaps = toolshed_core::domain::SessionCaps {
    per_server: u32::MAX,
    total: u32::MAX,
};

/// The raw item of a session, as DynamoDB stores it.
async fn raw_session_item(
    env: &MotoEnv,
    id: &toolshed_core::domain::SessionId,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    env.dynamodb()
        .get_item()
        .table_name(&env.settings.sessions_table)
        .key(
            "session_id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.to_string()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("session {id} is stored"))
}

/// "The live sessions of server X" (asked with limit 1 when a tool runs without a session id)
/// reads the live sessions, not the server's history: DynamoDB applies `Limit` before a filter,
/// so a filtered query with `Limit = 1` took one round trip per ended session.
#[tokio::test]
async fn the_live_session_of_a_server_with_a_long_history_takes_one_query() {
    use toolshed_core::domain::{ServerId, StopReason};
    use toolshed_core::ports::ServerRepository;
    use toolshed_core::testing::conformance::{sample_server, sample_session};

    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let repo = &env.adapters.repository;
    let t = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let secs = chrono::Duration::seconds;
    let id = ServerId::new("busy").unwrap();
    repo.insert_server(&sample_server(&id, t)).await.unwrap();
    // The live session is the oldest: newest first, every ended one comes before it.
    let live = sample_session(&id, "live", t, t + secs(86_400));
    repo.create_session(&live, NO_CAPS).await.unwrap();
    // 300 ended sessions, made the way the service makes them: created live, then ended (one
    // at a time: moto's transactions are not safe to run concurrently on one table).
    for i in 1..=300i64 {
        let s = sample_session(&id, &format!("ended-{i}"), t + secs(i), t + secs(i + 600));
        repo.create_session(&s, NO_CAPS).await.unwrap();
        repo.end_session(&s.id, StopReason::Requested, t + secs(i + 1))
            .await
            .unwrap();
    }

    for limit in [1, 10] {
        env.calls.reset();
        let found = repo
            .list_sessions_for_server(&id, true, limit)
            .await
            .unwrap();
        assert_eq!(
            found.iter().map(|s| &s.id).collect::<Vec<_>>(),
            vec![&live.id],
            "the one live session (limit {limit})"
        );
        let queries = env.calls.count("DynamoDB.Query");
        assert!(
            queries <= 2,
            "limit {limit}: {queries} Query calls to find 1 live session among 300 ended ones \
             (calls: {:?})",
            env.calls.counts()
        );
    }

    // The full history is still listed, newest first, when ended sessions are asked for too.
    let newest = repo.list_sessions_for_server(&id, false, 2).await.unwrap();
    assert_eq!(
        newest.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["busy-ended-300", "busy-ended-299"]
    );

    repo.end_session(&live.id, StopReason::Requested, t + secs(900))
        .await
        .unwrap();
    env.calls.reset();
    assert!(repo
        .list_sessions_for_server(&id, true, 1)
        .await
        .unwrap()
        .is_empty());
    assert!(
        env.calls.count("DynamoDB.Query") <= 2,
        "{:?}",
        env.calls.counts()
    );
}

/// DynamoDB TTL deletes items without touching the live counters, so a live session must never
/// carry `ttl` (a deleted live session would hold its per-server, total and owner cap slots for
/// good); an ended one carries it, written in the transaction that frees those slots.
#[tokio::test]
async fn only_ended_sessions_carry_a_ttl() {
    use toolshed_core::domain::{PrincipalId, ServerId, SessionState, StopReason};
    use toolshed_core::ports::ServerRepository;
    use toolshed_core::testing::conformance::{sample_server, sample_session};

    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let repo = &env.adapters.repository;
    let t = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let secs = chrono::Duration::seconds;
    let week = 7 * 86_400;
    let id = ServerId::new("ttl-rules").unwrap();
    repo.insert_server(&sample_server(&id, t)).await.unwrap();

    // Live from creation through every update.
    let s = sample_session(&id, "one", t, t + secs(600));
    let toolshed_core::ports::SessionInsert::Created(s) =
        repo.create_session(&s, NO_CAPS).await.unwrap()
    else {
        panic!("a new session is created");
    };
    assert!(!raw_session_item(&env, &s.id).await.contains_key("ttl"));
    let mut running = s.clone();
    running.state = SessionState::Running;
    running.expires_at = t + secs(1200);
    let running = repo.update_session(&running).await.unwrap();
    assert!(
        !raw_session_item(&env, &s.id).await.contains_key("ttl"),
        "an update keeps a live session without ttl"
    );

    // An owned session (its own insert path) is live without ttl too.
    let mut owned = sample_session(&id, "owned", t, t + secs(600));
    owned.owner = Some(PrincipalId::new("alice").unwrap());
    repo.create_owned_session(&owned, NO_CAPS, 10)
        .await
        .unwrap();
    assert!(!raw_session_item(&env, &owned.id).await.contains_key("ttl"));

    // Ended before its expiry: a week after the expiry.
    repo.end_session(&running.id, StopReason::Requested, t + secs(60))
        .await
        .unwrap();
    let item = raw_session_item(&env, &running.id).await;
    assert_eq!(
        item.get("ttl"),
        Some(&aws_sdk_dynamodb::types::AttributeValue::N(
            (t.timestamp() + 1200 + week).to_string()
        )),
        "an ended session carries ttl: {item:?}"
    );

    // Ended long after its expiry (the sweep was down): a week after the end, not already due.
    let late = t + secs(30 * 86_400);
    repo.end_session(&owned.id, StopReason::Expired, late)
        .await
        .unwrap();
    assert_eq!(
        raw_session_item(&env, &owned.id).await.get("ttl"),
        Some(&aws_sdk_dynamodb::types::AttributeValue::N(
            (late.timestamp() + week).to_string()
        ))
    );

    // Stored already ended: carries ttl from the start.
    let mut done = sample_session(&id, "done", t, t + secs(600));
    assert!(done.end(StopReason::Requested, t + secs(10)));
    repo.create_session(&done, NO_CAPS).await.unwrap();
    assert!(raw_session_item(&env, &done.id).await.contains_key("ttl"));
}

/// Live session items stored before live sessions had their own index and lost `ttl` (with
/// `ttl` and without `live_created_at`) are put right by their next update: the TTL goes and the
/// session is found among its server's live sessions.
#[tokio::test]
async fn a_live_item_in_the_older_layout_is_put_right_by_its_next_update() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use toolshed_core::domain::{ServerId, SessionState};
    use toolshed_core::ports::ServerRepository;
    use toolshed_core::testing::conformance::{sample_server, sample_session};

    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let repo = &env.adapters.repository;
    let t = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let id = ServerId::new("older").unwrap();
    repo.insert_server(&sample_server(&id, t)).await.unwrap();
    let mut s = sample_session(&id, "one", t, t + chrono::Duration::seconds(600));
    s.version = 1;
    let mut item = toolshed_aws::dynamodb::codec::session_item(&s).unwrap();
    item.remove("live_created_at");
    item.insert(
        "ttl".into(),
        AttributeValue::N((t.timestamp() + 600 + 7 * 86_400).to_string()),
    );
    env.dynamodb()
        .put_item()
        .table_name(&env.settings.sessions_table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    assert!(repo
        .list_sessions_for_server(&id, true, 10)
        .await
        .unwrap()
        .is_empty());

    let mut running = s.clone();
    running.state = SessionState::Running;
    repo.update_session(&running).await.unwrap();
    let item = raw_session_item(&env, &s.id).await;
    assert!(!item.contains_key("ttl"), "{item:?}");
    let live = repo.list_sessions_for_server(&id, true, 10).await.unwrap();
    assert_eq!(live.iter().map(|s| &s.id).collect::<Vec<_>>(), vec![&s.id]);
}
