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
