//! The `mocks` feature: mockall mocks of the ports, here proving by construction that a launch
//! of an unverified server never reaches the runner (the other ports are in-memory doubles).

use std::sync::Arc;

use toolshed_core::domain::LiveSessionCounts;
use toolshed_core::domain::{RepoUrl, Server, ServerId, ServerRegistration};
use toolshed_core::error::EntityKind;
use toolshed_core::ports::{MockServerRepository, MockTaskRunner};
use toolshed_core::services::{LaunchRequest, Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::ManualClock;
use toolshed_core::Error;

#[tokio::test]
async fn launch_of_an_unverified_server_never_starts_a_task() {
    let clock = Arc::new(ManualClock::fixed());
    let server = Server::register(
        ServerRegistration::new(
            ServerId::new("time").unwrap(),
            RepoUrl::new("https://github.com/a/time").unwrap(),
        ),
        chrono::Utc::now(),
    )
    .unwrap();

    let mut repo = MockServerRepository::new();
    let stored = server.clone();
    repo.expect_get_server()
        .times(1)
        .returning(move |_| Ok(stored.clone()));
    repo.expect_get_session()
        .times(1)
        .returning(|id| Err(Error::not_found(EntityKind::Session, id)));
    repo.expect_count_live_sessions()
        .times(1)
        .returning(|_| Ok(LiveSessionCounts::default()));
    repo.expect_create_session().never();
    let mut runner = MockTaskRunner::new();
    runner.expect_start().never();
    runner.expect_prepare().never();

    // Every other port on its in-memory double: only the repository and the runner are watched.
    let mut ports = Ports::in_memory(clock).ports();
    ports.repository = Arc::new(repo);
    ports.runner = Arc::new(runner);
    let toolshed = Toolshed::new(ports, ToolshedConfig::default()).unwrap();
    let e = toolshed
        .launch_session(&server.id, LaunchRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotVerified { .. }), "{e}");
}
