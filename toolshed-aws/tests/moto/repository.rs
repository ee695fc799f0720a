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
/// depend on it): `live` only while live, `ttl` = expiry + 7 days, counters in the same table.
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
        item["ttl"],
        AttributeValue::N((t.timestamp() + 600 + 7 * 86_400).to_string())
    );
    assert_eq!(item["version"], AttributeValue::N("1".into()));
    let counter = get("toolshed-sessions", "session_id", "#live#layout".into()).await;
    assert_eq!(counter["count"], AttributeValue::N("1".into()));

    repo.end_session(&s.id, StopReason::Requested, t)
        .await
        .unwrap();
    let item = get("toolshed-sessions", "session_id", s.id.to_string()).await;
    assert!(
        !item.contains_key("live"),
        "ended sessions leave the live index"
    );
    let counter = get("toolshed-sessions", "session_id", "#live#layout".into()).await;
    assert_eq!(counter["count"], AttributeValue::N("0".into()));
    let server = get("toolshed-servers", "server_id", "layout".into()).await;
    assert!(server.contains_key("record") && server["version"] == AttributeValue::N("1".into()));
}
