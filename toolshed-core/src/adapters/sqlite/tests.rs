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
    drop(repo);
    let reopened = SqliteServerRepository::open(&path).await.unwrap();
    let after = reopened.list_servers(None, 10_000).await.unwrap();
    assert_eq!(before, after);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn instance_records_round_trip() {
    let repo = SqliteServerRepository::in_memory().unwrap();
    let rec = serde_json::json!({"id": "web-1", "status": "requested"});
    repo.put_instance("web-1", &rec).await.unwrap();
    let got: Option<serde_json::Value> = repo.get_instance("web-1").await.unwrap();
    assert_eq!(got, Some(rec));
    let next = serde_json::json!({"id": "web-1", "status": "created"});
    repo.put_instance("web-1", &next).await.unwrap();
    let all: Vec<serde_json::Value> = repo.list_instances().await.unwrap();
    assert_eq!(all, vec![next]);
    assert!(repo.delete_instance("web-1").await.unwrap());
    assert!(!repo.delete_instance("web-1").await.unwrap());
    let none: Option<serde_json::Value> = repo.get_instance("web-1").await.unwrap();
    assert!(none.is_none());
}
