//! The local backend end to end on the real engine: the quickstart flow (with the registry when
//! `TOOLSHED_TEST_REGISTRY` is set), a failed build keeping the last good image, the sweep
//! repairing a crash between "container started" and "session recorded", expired sessions
//! removed by the sweep, and the conformance suite on SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use toolshed_core::adapters::sqlite::SqliteServerRepository;
use toolshed_core::domain::{
    ServerId, ServerRegistration, SessionId, SessionState, StopReason, ToolCall, Transport,
    TtlBounds, VerificationState, VerificationStep,
};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::ports::{McpProbe, ServerRepository, TaskRunner, TaskSpec, TaskState};
use toolshed_core::services::{LaunchRequest, SweepLimits, VerifyOptions, VerifyOutcome};
use toolshed_core::testing::fixtures;
use toolshed_core::{testing::conformance, Error};
use toolshed_tests::{docker as docker_enabled, TempDir};

struct Fixture {
    backend: LocalBackend,
    server: ServerId,
    repo_dir: std::path::PathBuf,
    binary: std::path::PathBuf,
    _data: TempDir,
}

/// A local backend in a fresh data directory with the example server registered.
async fn fixture(registry: Option<String>, tweak: impl FnOnce(&mut LocalConfig)) -> Fixture {
    fixture_with(registry, tweak, None).await
}

/// As [`fixture`], with a different binary and transport for the registered server.
async fn fixture_with(
    registry: Option<String>,
    tweak: impl FnOnce(&mut LocalConfig),
    custom: Option<(std::path::PathBuf, &str, Transport)>,
) -> Fixture {
    let data = TempDir::new("toolshed-local");
    let binary =
        tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-example-server"))
            .await
            .unwrap()
            .expect("example server binary");
    let repo_dir = data.0.join("repo");
    let (binary, dockerfile, transport) = match custom {
        Some((b, d, t)) => (b, d, t),
        None => (binary, fixtures::EXAMPLE_DOCKERFILE, Transport::default()),
    };
    let repo = fixtures::write_server_repo(&repo_dir, &binary, dockerfile).unwrap();
    let mut opts = LocalConfig {
        registry,
        ..LocalConfig::new(data.0.clone())
    };
    tweak(&mut opts);
    let backend = LocalBackend::connect(opts).await.unwrap();
    let server = ServerId::new(format!(
        "t-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    ))
    .unwrap();
    backend
        .toolshed
        .register_server(ServerRegistration {
            transport,
            ..ServerRegistration::new(server.clone(), repo)
        })
        .await
        .unwrap();
    Fixture {
        backend,
        server,
        repo_dir,
        binary,
        _data: data,
    }
}

async fn wait_running(f: &Fixture, id: &SessionId) -> toolshed_core::domain::PlaygroundSession {
    // A generous deadline (a loaded machine), not a count of tries.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = f.backend.toolshed.session_status(id).await.unwrap();
        if s.state == SessionState::Running {
            return s;
        }
        assert!(s.state.is_live(), "session ended: {s:?}");
        assert!(
            Instant::now() < deadline,
            "session not running within 60 s: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_flow_end_to_end() {
    if !docker_enabled("quickstart_flow_end_to_end") {
        return;
    }
    // With the registry when the test script started one: push, HEAD-manifest digest, pull.
    let registry = std::env::var("TOOLSHED_TEST_REGISTRY")
        .ok()
        .filter(|r| !r.is_empty());
    let f = fixture(registry.clone(), |_| {}).await;
    let ts = &f.backend.toolshed;

    let outcome = ts
        .verify_server(&f.server, VerifyOptions::default())
        .await
        .unwrap();
    let VerifyOutcome::Verified { server, .. } = outcome else {
        panic!("first verification must build: {outcome:?}")
    };
    assert_eq!(server.state, VerificationState::Verified);
    let image = server.image.clone().unwrap();
    // Where the image went, asserted either way: the registry when one is configured, else the
    // engine's own store.
    match &registry {
        Some(r) => assert!(
            image.image.repository().starts_with(&format!("{r}/")),
            "pushed to the registry {r}: {image:?}"
        ),
        None => {
            assert_eq!(
                image.image.repository(),
                toolshed_core::local::ENGINE_REPOSITORY,
                "kept in the engine store: {image:?}"
            );
            // The registry path is not covered by this run: say so, and refuse where every
            // backend is required.
            toolshed_tests::backend(
                "TOOLSHED_TEST_REGISTRY",
                "quickstart_flow_end_to_end (registry push)",
            );
        }
    }
    assert!(f.backend.images.contains(&image.image).await.unwrap());
    let mut names: Vec<&str> = server.tools.tools.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "echo", "word_count"]);
    let server = ts.get_server(&f.server).await.unwrap();
    assert_eq!(
        server.metadata.language.as_ref().map(|l| l.value.as_str()),
        Some("Rust")
    );
    assert!(server.metadata.description.is_some());

    // Figures: the server process's own start-up next to the container's time-to-ready.
    let native = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Instant::now();
        let mut child = tokio::process::Command::new(&f.binary)
            .args(["--port", &port.to_string()])
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let ep = toolshed_core::domain::Endpoint::new("127.0.0.1", port, "/mcp").unwrap();
        f.backend
            .probe
            .wait_ready(&ep, Duration::from_secs(20))
            .await
            .unwrap();
        let d = t.elapsed();
        child.kill().await.unwrap();
        d
    };
    let t = Instant::now();
    let session = ts
        .launch_session(&f.server, LaunchRequest::default())
        .await
        .unwrap();
    assert_eq!(
        session.image, image.image,
        "the session runs the verified image by digest"
    );
    let running = wait_running(&f, &session.id).await;
    let ep = running.endpoint.clone().unwrap();
    assert_eq!(ep.host, "127.0.0.1");
    f.backend
        .probe
        .wait_ready(&ep, Duration::from_secs(30))
        .await
        .unwrap();
    let container = t.elapsed();
    println!("FIGURE local time-to-ready (launch → handshake): {container:?}; native process start-up (spawn → handshake): {native:?}");

    let mut args = serde_json::Map::new();
    args.insert("a".into(), 2.into());
    args.insert("b".into(), 40.into());
    let out = ts
        .execute_tool(&session.id, ToolCall::new("add", args).unwrap())
        .await
        .unwrap();
    assert!(!out.is_error);
    assert!(
        serde_json::to_string(&out.content).unwrap().contains("42"),
        "{out:?}"
    );

    let stopped = ts.stop_session(&session.id).await.unwrap();
    assert_eq!(stopped.stop_reason, Some(StopReason::Requested));
    assert_eq!(
        f.backend
            .runner
            .describe(&session.task)
            .await
            .unwrap()
            .state,
        TaskState::Missing
    );
    let report = ts.sweep_expired_sessions(SweepLimits::default()).await;
    assert!(report.errors.is_empty(), "{report:?}");

    // Second verify: same commit, image still stored → skipped, no rebuild.
    let again = ts
        .verify_server(&f.server, VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(again, VerifyOutcome::UpToDate(_)), "{again:?}");
    assert_eq!(again.server().image.as_ref().unwrap().image, image.image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_build_keeps_the_last_good_image() {
    if !docker_enabled("failed_build_keeps_the_last_good_image") {
        return;
    }
    let f = fixture(None, |_| {}).await;
    let ts = &f.backend.toolshed;
    let good = ts
        .verify_server(&f.server, VerifyOptions::default())
        .await
        .unwrap();
    let good_image = good.server().image.clone().unwrap();

    // A Dockerfile step that cannot succeed (scratch has no shell).
    fixtures::write_server_repo(
        &f.repo_dir,
        &f.binary,
        "FROM scratch\nCOPY server /server\nRUN /server --definitely-not-a-flag\n",
    )
    .unwrap();
    let err = ts
        .verify_server(&f.server, VerifyOptions::default())
        .await
        .unwrap_err();
    match &err {
        Error::VerificationFailed { step, reason, .. } => {
            assert_eq!(*step, VerificationStep::Build, "{err}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected a build failure, got {other}"),
    }
    let server = ts.get_server(&f.server).await.unwrap();
    assert_eq!(server.state, VerificationState::Failed);
    assert_eq!(
        server.image.as_ref().unwrap(),
        &good_image,
        "last good image untouched"
    );
    assert!(server.last_failure.is_some());
    // Still launchable from the last good image.
    let s = ts
        .launch_session(&f.server, LaunchRequest::default())
        .await
        .unwrap();
    assert_eq!(s.image, good_image.image);
    wait_running(&f, &s.id).await;
    ts.stop_session(&s.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_repairs_a_crash_between_start_and_record_and_removes_expired_sessions() {
    if !docker_enabled(
        "sweep_repairs_a_crash_between_start_and_record_and_removes_expired_sessions",
    ) {
        return;
    }
    let f = fixture(None, |o| {
        o.service.orphan_grace = Duration::ZERO;
        o.service.ttl_bounds = TtlBounds::new(
            Duration::from_secs(60),
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )
        .unwrap();
    })
    .await;
    let ts = &f.backend.toolshed;
    ts.verify_server(&f.server, VerifyOptions::default())
        .await
        .unwrap();
    let server = ts.get_server(&f.server).await.unwrap();

    // The crash: a launch started its container and died before recording the session.
    let ghost = SessionId::random();
    let expires = chrono::Utc::now() + chrono::Duration::minutes(10);
    let spec = TaskSpec::for_session(&server, &ghost, expires).unwrap();
    let orphan = f.backend.runner.start(&spec).await.unwrap();
    assert_eq!(
        f.backend.runner.describe(&orphan).await.unwrap().state,
        TaskState::Running
    );

    // An expiring session, recorded properly.
    let short = ts
        .launch_session(
            &f.server,
            LaunchRequest {
                ttl: Some(Duration::from_secs(1)),
                idempotency_key: None,
                settings: Default::default(),
            },
        )
        .await
        .unwrap();
    wait_running(&f, &short.id).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Paging of managed tasks (at least these two are live): a cursor continues after the last.
    let first = f.backend.runner.list_managed(None, 1).await.unwrap();
    assert_eq!(first.tasks.len(), 1);
    let cursor = first.next.clone().expect("a second page");
    let second = f
        .backend
        .runner
        .list_managed(Some(cursor), 1)
        .await
        .unwrap();
    assert_eq!(second.tasks.len(), 1);
    assert!(second.tasks[0].handle > first.tasks[0].handle);

    let report = ts.sweep_expired_sessions(SweepLimits::default()).await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.expired_stopped, 1, "{report:?}");
    assert!(report.orphans_stopped >= 1, "{report:?}");
    assert_eq!(
        f.backend.runner.describe(&orphan).await.unwrap().state,
        TaskState::Missing
    );
    let ended = ts.session_status(&short.id).await.unwrap();
    assert_eq!(ended.stop_reason, Some(StopReason::Expired));
    assert_eq!(
        f.backend.runner.describe(&short.task).await.unwrap().state,
        TaskState::Missing
    );

    // Idempotent.
    let again = ts.sweep_expired_sessions(SweepLimits::default()).await;
    assert_eq!(
        (again.expired_stopped, again.orphans_stopped),
        (0, 0),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_ends_its_session_through_engine_events_without_a_poll() {
    if !docker_enabled("a_killed_container_ends_its_session_through_engine_events_without_a_poll") {
        return;
    }
    let f = fixture(None, |_| {}).await;
    let ts = &f.backend.toolshed;
    ts.verify_server(&f.server, VerifyOptions::default())
        .await
        .unwrap();
    let watcher = f
        .backend
        .runner
        .spawn_status_watcher(ts.status_refresher(), Duration::from_millis(200));
    let s = ts
        .launch_session(&f.server, LaunchRequest::default())
        .await
        .unwrap();
    wait_running(&f, &s.id).await;
    let killed = std::process::Command::new("docker")
        .args(["kill", s.task.as_str()])
        .output()
        .unwrap();
    assert!(killed.status.success(), "docker kill: {killed:?}");
    // Only the record is read from here on: no status poll, no describe.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let stored = ts.get_session(&s.id).await.unwrap();
        if stored.state == SessionState::Stopped {
            break stored;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher did not end the session within 30 s: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ended.stop_reason, Some(StopReason::TaskExited));
    // The engine's `die` event carries the exit status: SIGKILL's.
    let exit = ended.task_exit().expect("how the task ended");
    assert_eq!((exit.exit_code, exit.out_of_memory), (Some(137), false));
    watcher.abort();
    // Remove the exited container.
    f.backend.runner.stop(&s.task, "test done").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_sqlite_file() {
    let dir = TempDir::new("toolshed-conformance");
    let repo = SqliteServerRepository::open(dir.0.join("db.sqlite3"))
        .await
        .unwrap();
    let repo: Arc<dyn ServerRepository> = Arc::new(repo);
    conformance::run_all(repo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_server_is_wrapped_with_the_bridge() {
    if !docker_enabled("stdio_server_is_wrapped_with_the_bridge") {
        return;
    }
    let bridge = tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-stdio-bridge"))
        .await
        .unwrap()
        .expect("stdio bridge binary");
    let build_dir = TempDir::new("toolshed-stdio");
    let server_bin = toolshed_tests::stdio_server_binary(&build_dir.0).unwrap();
    let f = fixture_with(
        None,
        |o| o.stdio_bridge = Some(bridge),
        Some((
            server_bin,
            "FROM scratch\nCOPY server /server\n",
            Transport::Stdio {
                command: vec!["/server".into()],
            },
        )),
    )
    .await;
    let ts = &f.backend.toolshed;
    let outcome = ts
        .verify_server(&f.server, VerifyOptions::default())
        .await
        .unwrap();
    let names: Vec<&str> = outcome
        .server()
        .tools
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["ping"]);
    let s = ts
        .launch_session(&f.server, LaunchRequest::default())
        .await
        .unwrap();
    let running = wait_running(&f, &s.id).await;
    // The bridge opens its port only once its child answered `initialize`; wait for the MCP
    // handshake itself, then one call must succeed (no error is swallowed).
    f.backend
        .probe
        .wait_ready(running.endpoint.as_ref().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    let out = ts
        .execute_tool(
            &s.id,
            ToolCall::new("ping", serde_json::Map::new()).unwrap(),
        )
        .await
        .unwrap();
    assert!(
        serde_json::to_string(&out.content)
            .unwrap()
            .contains("pong"),
        "{out:?}"
    );
    ts.stop_session(&s.id).await.unwrap();
}
