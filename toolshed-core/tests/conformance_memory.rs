//! The ServerRepository conformance suite on the in-memory repository.

use std::sync::Arc;

use toolshed_core::testing::{conformance, InMemoryServerRepository};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_repository_passes_the_conformance_suite() {
    conformance::run_all(Arc::new(InMemoryServerRepository::new())).await;
}

#[tokio::test]
async fn suite_can_run_twice_on_the_same_repository() {
    // Fresh random ids per check: a second run on a used store (a shared table) still passes.
    let repo = Arc::new(InMemoryServerRepository::new());
    conformance::run_all(repo.clone()).await;
    conformance::run_all(repo).await;
}
