//! Ownership of containers on a shared engine: two local backends (different data directories)
//! never list, stop or sweep each other's containers, even with no orphan grace; a container
//! killed from outside makes tool calls answer "session not running" with the reason, and the
//! sweep ends its session and removes the exited container.

use std::process::Command;
use std::time::{Duration, Instant};

use toolshed_core::domain::{
    PlaygroundSession, ServerId, ServerRegistration, SessionId, SessionState, StopReason, ToolCall,
};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::ports::{TaskRunner, TaskSpec, TaskState};
use toolshed_core::services::{LaunchRequest, SweepLimits, VerifyOptions};
use toolshed_core::testing::fixtures;
use toolshed_core::Error;
use toolshed_tests::{docker as docker_enabled, TempDir};

struct Local {
    backend: LocalBackend,
    server: ServerId,
    data: TempDir,
}

/// A local backend in its own data directory, with the example server registered and verified.
async fn verified_backend(tweak: impl FnOnce(&mut LocalConfig)) -> Local {
    let data = TempDir::new("toolshed-owner");
    let binary =
        tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-example-server"))
            .await
            .unwrap()
            .expect("example server binary");
    let repo =
        fixtures::write_server_repo(&data.0.join("repo"), &binary, fixtures::EXAMPLE_DOCKERFILE)
            .unwrap();
    let mut config = LocalConfig::new(data.0.clone());
    tweak(&mut config);
    let backend = LocalBackend::connect(config).await.unwrap();
    let server = ServerId::new(format!(
        "o-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    ))
    .unwrap();
    backend
        .toolshed
        .register_server(ServerRegistration::new(server.clone(), repo))
        .await
        .unwrap();
    backend
        .toolshed
        .verify_server(&server, VerifyOptions::default())
        .await
        .unwrap();
    Local {
        backend,
        server,
        data,
    }
}

/// Waits (generously: a loaded 2-core machine) until the session runs, failing with its state.
async fn wait_running(l: &Local, id: &SessionId) -> PlaygroundSession {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = l.backend.toolshed.session_status(id).await.unwrap();
        if s.state == SessionState::Running {
            return s;
        }
        assert!(s.state.is_live(), "session ended: {s:?}");
        assert!(Instant::now() < deadline, "session never ran: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn add(a: i64, b: i64) -> ToolCall {
    let mut args = serde_json::Map::new();
    args.insert("a".into(), a.into());
    args.insert("b".into(), b.into());
    ToolCall::new("add", args).unwrap()
}

/// Whether the engine still has the container (any state), asked with the docker CLI.
fn container_exists(id: &str) -> bool {
    Command::new("docker")
        .args(["container", "inspect", "--format", "{{.State.Status}}", id])
        .output()
        .expect("docker CLI")
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backends_on_one_engine_never_touch_each_others_containers() {
    if !docker_enabled("two_backends_on_one_engine_never_touch_each_others_containers") {
        return;
    }
    // A sweeps with no grace at all: every container it may judge is judged at once.
    let a = verified_backend(|c| c.service.orphan_grace = Duration::ZERO).await;
    let b = verified_backend(|_| {}).await;
    assert_ne!(a.backend.runner.deployment(), b.backend.runner.deployment());

    let b_session = b
        .backend
        .toolshed
        .launch_session(&b.server, LaunchRequest::default())
        .await
        .unwrap();
    wait_running(&b, &b_session.id).await;

    // A's own orphan (a launch that died before recording its session): the sweep must stop it,
    // which shows the sweep below is not a no-op.
    let a_server = a.backend.toolshed.get_server(&a.server).await.unwrap();
    let spec = TaskSpec::for_session(
        &a_server,
        &SessionId::random(),
        chrono::Utc::now() + chrono::Duration::minutes(10),
    )
    .unwrap();
    let a_orphan = a.backend.runner.start(&spec).await.unwrap();

    // A neither lists nor sees B's container.
    let listed = a.backend.runner.list_managed(None, 1000).await.unwrap();
    assert!(
        listed.tasks.iter().all(|t| t.handle != b_session.task),
        "A lists B's container: {listed:?}"
    );
    assert!(listed.tasks.iter().any(|t| t.handle == a_orphan));
    assert_eq!(
        a.backend
            .runner
            .describe(&b_session.task)
            .await
            .unwrap()
            .state,
        TaskState::Missing
    );

    let report = a
        .backend
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.orphans_stopped, 1, "only A's orphan: {report:?}");
    assert_eq!(
        a.backend.runner.describe(&a_orphan).await.unwrap().state,
        TaskState::Missing
    );

    // A stop from A is a no-op on B's container.
    a.backend
        .runner
        .stop(&b_session.task, "test: not mine")
        .await
        .unwrap();

    // B's session survived all of it and still answers.
    assert_eq!(
        b.backend
            .runner
            .describe(&b_session.task)
            .await
            .unwrap()
            .state,
        TaskState::Running
    );
    let out = b
        .backend
        .toolshed
        .execute_tool(&b_session.id, add(2, 40))
        .await
        .unwrap();
    assert!(serde_json::to_string(&out.content).unwrap().contains("42"));

    // The id is stored: a second backend on A's data directory is the same deployment.
    let again = LocalBackend::connect(LocalConfig::new(a.data.0.clone()))
        .await
        .unwrap();
    assert_eq!(again.runner.deployment(), a.backend.runner.deployment());

    b.backend
        .toolshed
        .stop_session(&b_session.id)
        .await
        .unwrap();
    assert!(!container_exists(b_session.task.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_from_outside_ends_its_session_and_is_removed() {
    if !docker_enabled("a_container_killed_from_outside_ends_its_session_and_is_removed") {
        return;
    }
    let l = verified_backend(|_| {}).await;
    let ts = &l.backend.toolshed;
    let called = ts
        .launch_session(&l.server, LaunchRequest::default())
        .await
        .unwrap();
    let swept = ts
        .launch_session(&l.server, LaunchRequest::default())
        .await
        .unwrap();
    wait_running(&l, &called.id).await;
    wait_running(&l, &swept.id).await;
    ts.execute_tool(&called.id, add(1, 1)).await.unwrap();

    for s in [&called, &swept] {
        let out = Command::new("docker")
            .args(["kill", s.task.as_str()])
            .output()
            .expect("docker CLI");
        assert!(out.status.success(), "docker kill: {out:?}");
    }

    // A call on the killed session says it ended, why, and how (the engine's exit status).
    let err = ts.execute_tool(&called.id, add(1, 1)).await.unwrap_err();
    match &err {
        Error::SessionNotRunning { state, .. } => assert!(
            state.contains("task exited, exited with status 137"),
            "{err}"
        ),
        other => panic!("expected SessionNotRunning, got {other:?}"),
    }
    let ended = ts.get_session(&called.id).await.unwrap();
    assert_eq!(ended.stop_reason, Some(StopReason::TaskExited));
    assert_eq!(
        ended.task_exit().and_then(|e| e.exit_code),
        Some(137),
        "{ended:?}"
    );
    assert!(
        container_exists(called.task.as_str()),
        "the exited container is still there before the sweep"
    );

    // The sweep ends the other killed session and removes both exited containers (the default
    // orphan grace does not delay a container whose session has ended).
    let report = ts.sweep_expired_sessions(SweepLimits::default()).await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.exited_marked, 1, "{report:?}");
    assert_eq!(report.exited_removed, 2, "{report:?}");
    let ended = ts.get_session(&swept.id).await.unwrap();
    assert_eq!(ended.stop_reason, Some(StopReason::TaskExited));
    assert!(!container_exists(called.task.as_str()));
    assert!(!container_exists(swept.task.as_str()));

    let again = ts.sweep_expired_sessions(SweepLimits::default()).await;
    assert!(again.is_noop(), "{again:?}");
}

/// The orphan grace on a real runner: the sweep judges a container's age by the engine's own
/// creation time, so a launch that has started its container but not yet recorded its session
/// is spared while young, and stopped once older than the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_spares_a_young_orphan_and_stops_it_after_the_grace() {
    if !docker_enabled("the_sweep_spares_a_young_orphan_and_stops_it_after_the_grace") {
        return;
    }
    // Long enough that the first sweep surely comes within it on a loaded machine.
    let grace = Duration::from_secs(20);
    let l = verified_backend(|c| c.service.orphan_grace = grace).await;
    let server = l.backend.toolshed.get_server(&l.server).await.unwrap();
    let spec = TaskSpec::for_session(
        &server,
        &SessionId::random(),
        chrono::Utc::now() + chrono::Duration::minutes(10),
    )
    .unwrap();
    let started = Instant::now();
    let orphan = l.backend.runner.start(&spec).await.unwrap();

    let young = l
        .backend
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert!(
        started.elapsed() < grace,
        "the first sweep came after the grace; the test proves nothing on this machine"
    );
    assert!(young.errors.is_empty(), "{young:?}");
    assert_eq!(
        young.orphans_stopped, 0,
        "a young orphan was stopped: {young:?}"
    );
    assert!(young.young_tasks_skipped >= 1, "{young:?}");
    assert_eq!(
        l.backend.runner.describe(&orphan).await.unwrap().state,
        TaskState::Running
    );

    // Past the grace (measured from before the start, so surely past the engine's creation
    // time), the same sweep stops it.
    tokio::time::sleep((grace + Duration::from_secs(2)).saturating_sub(started.elapsed())).await;
    let old = l
        .backend
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert!(old.errors.is_empty(), "{old:?}");
    assert_eq!(old.orphans_stopped, 1, "{old:?}");
    let state = l.backend.runner.describe(&orphan).await.unwrap().state;
    assert_ne!(state, TaskState::Running, "the old orphan still runs");
}
