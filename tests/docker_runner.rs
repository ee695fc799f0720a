//! The Docker task runner against the real engine: drain-timeout stops really send SIGTERM
//! first, logs are sanitised, unlabelled containers are never touched, restart keeps the
//! configuration, health counts consecutive failures. (The example MCP server being ready is
//! covered by `local_backend`.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;
use toolshed_core::adapters::docker::{
    self, DockerTaskRunner, HealthTracker, InstanceSpec, Liveness, LogQuery, RunnerConfig,
};
use toolshed_core::domain::{
    DeploymentId, ImageRef, ServerId, SessionId, TaskHandle, TaskLabels, TaskPurpose, TaskResources,
};
use toolshed_core::ports::{TaskRunner, TaskSpec, TaskState};
use toolshed_core::Error;
use toolshed_tests::{docker as docker_enabled, test_image};

async fn setup() -> (Docker, DockerTaskRunner, ImageRef) {
    let engine = docker::connect().await.expect("engine");
    let image = test_image(&engine).await.expect("test image");
    // A deployment of its own: nothing this test does can touch another test's containers.
    let runner = DockerTaskRunner::new(engine.clone(), RunnerConfig::new(DeploymentId::random()));
    (engine, runner, image)
}

fn spec(image: &ImageRef, args: &[&str]) -> InstanceSpec {
    InstanceSpec {
        instance_id: format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        server_id: ServerId::new("runner-test").unwrap(),
        image: image.clone(),
        container_port: 8000,
        mcp_path: "/mcp".into(),
        resources: TaskResources::default(),
        env: vec!["GREETING=hello".into()],
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    }
}

async fn wait_for_line(runner: &DockerTaskRunner, task: &TaskHandle, needle: &str) {
    // A generous deadline (a loaded machine), not a count of tries.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let lines: Vec<String> = runner
            .logs(task, LogQuery::default())
            .await
            .unwrap()
            .filter_map(|l| async { l.ok() })
            .collect()
            .await;
        if lines.iter().any(|l| l.contains(needle)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{needle:?} did not appear in the logs within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_stop_sends_sigterm_first_then_sigkill_after_grace() {
    if !docker_enabled("drain_stop_sends_sigterm_first_then_sigkill_after_grace") {
        return;
    }
    let (_engine, runner, image) = setup().await;

    // A program that traps SIGTERM drains (1 s) and exits by itself well before the grace ends.
    let task = runner
        .start_instance(&spec(&image, &["trap"]))
        .await
        .unwrap();
    wait_for_line(&runner, &task, "started").await;
    let follow = runner
        .logs(
            &task,
            LogQuery {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let collector = tokio::spawn(follow.filter_map(|l| async { l.ok() }).collect::<Vec<_>>());
    let t = Instant::now();
    runner
        .stop_with_drain(&task, Duration::from_secs(10))
        .await
        .unwrap();
    let took = t.elapsed();
    let lines = tokio::time::timeout(Duration::from_secs(10), collector)
        .await
        .unwrap()
        .unwrap();
    assert!(lines.iter().any(|l| l == "got SIGTERM"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l == "drained"),
        "drained before exit: {lines:?}"
    );
    // "drained" is printed after the program's 1 s drain, just before it exits 0 by itself: it
    // was not killed at the end of the grace (no upper time bound: the machine may be slow).
    assert!(took >= Duration::from_millis(900), "it drained: {took:?}");
    assert_eq!(
        runner.describe(&task).await.unwrap().state,
        TaskState::Missing,
        "removed"
    );

    // A program that ignores SIGTERM is killed once the grace period is over.
    let task = runner
        .start_instance(&spec(&image, &["ignore"]))
        .await
        .unwrap();
    wait_for_line(&runner, &task, "started").await;
    let t = Instant::now();
    runner
        .stop_with_drain(&task, Duration::from_secs(2))
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "waited the grace period: {took:?}"
    );
    assert_eq!(
        runner.describe(&task).await.unwrap().state,
        TaskState::Missing
    );
    // Idempotent.
    runner
        .stop_with_drain(&task, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_sanitised_and_tail_works() {
    if !docker_enabled("logs_are_sanitised_and_tail_works") {
        return;
    }
    let (_engine, runner, image) = setup().await;
    let task = runner
        .start_instance(&spec(&image, &["trap"]))
        .await
        .unwrap();
    wait_for_line(&runner, &task, "title gone").await;
    let lines: Vec<String> = runner
        .logs(&task, LogQuery::default())
        .await
        .unwrap()
        .map(|l| l.unwrap())
        .collect()
        .await;
    assert_eq!(
        lines,
        [
            "started",
            "red alert",
            "bell and title gone",
            "fake",
            "forged: admin logged in"
        ]
    );
    for l in &lines {
        assert!(!l.chars().any(|c| c.is_control()), "{l:?}");
    }
    let tail: Vec<String> = runner
        .logs(
            &task,
            LogQuery {
                tail: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .map(|l| l.unwrap())
        .collect()
        .await;
    assert_eq!(
        tail,
        ["fake", "forged: admin logged in"],
        "the last written line, split"
    );
    let future: Vec<String> = runner
        .logs(
            &task,
            LogQuery {
                since: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .map(|l| l.unwrap())
        .collect()
        .await;
    assert!(future.is_empty(), "{future:?}");
    let err = runner
        .logs(
            &task,
            LogQuery {
                tail: Some(1_000_000),
                ..Default::default()
            },
        )
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::InvalidInput { field: "tail", .. }),
        "{err}"
    );
    runner
        .stop_with_drain(&task, Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlabelled_containers_are_never_touched() {
    if !docker_enabled("unlabelled_containers_are_never_touched") {
        return;
    }
    let (engine, runner, image) = setup().await;
    // Not ours: unmanaged, and managed by another deployment.
    let foreign = [
        HashMap::from([("toolshed.managed".to_owned(), "false".to_owned())]),
        HashMap::from([
            ("toolshed.managed".to_owned(), "true".to_owned()),
            ("toolshed.deployment".to_owned(), "someone-else".to_owned()),
            ("toolshed.port".to_owned(), "8000".to_owned()),
        ]),
    ];
    for labels in foreign {
        foreign_container_is_untouched(&engine, &runner, &image, labels).await;
    }
}

async fn foreign_container_is_untouched(
    engine: &Docker,
    runner: &DockerTaskRunner,
    image: &ImageRef,
    labels: HashMap<String, String>,
) {
    let name = format!("not-toolshed-{}", uuid::Uuid::new_v4().simple());
    let body = ContainerCreateBody {
        image: Some(image.digest().to_string()),
        cmd: Some(vec!["ignore".into()]),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::new().name(&name).build();
    let id = engine.create_container(Some(opts), body).await.unwrap().id;
    engine.start_container(&id, None).await.unwrap();
    let handle = TaskHandle::new(id.clone()).unwrap();

    assert_eq!(
        runner.describe(&handle).await.unwrap().state,
        TaskState::Missing
    );
    runner.stop(&handle, "test").await.unwrap();
    let err = runner
        .stop_with_drain(&handle, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    // Each refusal names the container as an unknown task, not some other failure.
    let err = runner
        .logs(&handle, LogQuery::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::NotFound { kind: toolshed_core::error::EntityKind::Task, id } if *id == id_of(&handle)),
        "logs of {labels:?}: {err}"
    );
    let err = runner
        .restart_instance(&handle, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { kind: toolshed_core::error::EntityKind::Task, id } if *id == id_of(&handle)),
        "restart of {labels:?}: {err}"
    );
    let page = runner.list_managed(None, 1000).await.unwrap();
    assert!(page.tasks.iter().all(|t| t.handle != handle));

    let state = engine
        .inspect_container(&id, None)
        .await
        .unwrap()
        .state
        .unwrap();
    assert_eq!(
        state.running,
        Some(true),
        "still running, untouched: {labels:?}"
    );
    let rm = RemoveContainerOptionsBuilder::new().force(true).build();
    engine.remove_container(&id, Some(rm)).await.unwrap();
}

fn id_of(handle: &TaskHandle) -> String {
    handle.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_config_and_containers_are_hardened() {
    if !docker_enabled("restart_keeps_config_and_containers_are_hardened") {
        return;
    }
    let (engine, runner, image) = setup().await;
    let s = spec(&image, &["trap"]);
    let first = runner.start_instance(&s).await.unwrap();
    let status = runner.describe(&first).await.unwrap();
    assert_eq!(status.state, TaskState::Running);
    let ep = status.endpoint.unwrap();
    assert_eq!(ep.host, "127.0.0.1");

    let before = engine
        .inspect_container(first.as_str(), None)
        .await
        .unwrap();
    let second = runner
        .restart_instance(&first, Duration::from_secs(5))
        .await
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(
        runner.describe(&first).await.unwrap().state,
        TaskState::Missing
    );
    let after = engine
        .inspect_container(second.as_str(), None)
        .await
        .unwrap();
    assert_eq!(
        runner.describe(&second).await.unwrap().state,
        TaskState::Running
    );

    let (bc, ac) = (before.config.unwrap(), after.config.clone().unwrap());
    assert_eq!(bc.env, ac.env);
    assert!(ac.env.unwrap().contains(&"GREETING=hello".to_owned()));
    assert_eq!(bc.labels, ac.labels);
    assert_eq!(bc.cmd, ac.cmd);
    assert_eq!(before.image, after.image, "same image by id");
    assert_eq!(before.name, after.name);
    let (bh, ah) = (before.host_config.unwrap(), after.host_config.unwrap());
    assert_eq!(bh.memory, ah.memory);
    assert_eq!(bh.nano_cpus, ah.nano_cpus);
    assert_eq!(bh.pids_limit, ah.pids_limit);
    // Hardening, on the restarted container too.
    assert_eq!(ah.memory, Some(512 * 1024 * 1024));
    assert_eq!(ah.readonly_rootfs, Some(true));
    assert_eq!(ah.cap_drop, Some(vec!["ALL".to_owned()]));
    assert!(ah
        .security_opt
        .unwrap()
        .iter()
        .any(|o| o.starts_with("no-new-privileges")));
    assert!(ah.tmpfs.unwrap().contains_key("/tmp"));
    assert_eq!(
        ac.user.as_deref(),
        Some(toolshed_core::domain::NON_ROOT_USER),
        "never root"
    );
    let bindings = ah.port_bindings.unwrap();
    let all: Vec<_> = bindings.values().flatten().flatten().collect();
    assert!(!all.is_empty(), "the MCP port is published: {bindings:?}");
    for b in all {
        assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"), "loopback only");
    }
    runner
        .stop_with_drain(&second, Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_counts_consecutive_failures() {
    if !docker_enabled("health_counts_consecutive_failures") {
        return;
    }
    let (_engine, runner, image) = setup().await;
    // The test program runs but never listens: live, not ready.
    let task = runner
        .start_instance(&spec(&image, &["trap"]))
        .await
        .unwrap();
    let mut tracker = HealthTracker::new(3);
    let probe = toolshed_core::adapters::mcp::RmcpProbe::new().unwrap();
    let now = chrono::Utc::now();
    let r1 = runner
        .check_health(&task, &probe, &mut tracker, now)
        .await
        .unwrap();
    assert!(r1.live && !r1.ready);
    assert_eq!(r1.status, Liveness::Degraded);
    runner
        .check_health(&task, &probe, &mut tracker, now)
        .await
        .unwrap();
    let r3 = runner
        .check_health(&task, &probe, &mut tracker, now)
        .await
        .unwrap();
    assert_eq!(
        (r3.status, r3.consecutive_failures),
        (Liveness::Unhealthy, 3)
    );
    runner
        .stop_with_drain(&task, Duration::from_secs(5))
        .await
        .unwrap();
    let gone = runner
        .check_health(&task, &probe, &mut tracker, now)
        .await
        .unwrap();
    assert!(!gone.live);
    assert_eq!(gone.consecutive_failures, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_start_with_the_same_token_meets_the_first_container() {
    if !docker_enabled("a_repeated_start_with_the_same_token_meets_the_first_container") {
        return;
    }
    let (engine, runner, image) = setup().await;
    let session = SessionId::random();
    let server_id = ServerId::new("runner-test").unwrap();
    let spec = TaskSpec {
        server_id: server_id.clone(),
        image: image.clone(),
        container_port: 8000,
        mcp_path: "/mcp".into(),
        resources: TaskResources::default(),
        labels: TaskLabels {
            server_id,
            purpose: TaskPurpose::Playground {
                session_id: session.clone(),
            },
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(10),
        },
        idempotency_token: session.to_string(),
        env: Default::default(),
    };
    // The second start meets the first container by name (the engine answers 409) and returns it.
    let first = runner.start(&spec).await.unwrap();
    let again = runner.start(&spec).await.unwrap();
    assert_eq!(first, again);
    // And two at once: one creates, the other meets the conflict.
    let (x, y) = tokio::join!(runner.start(&spec), runner.start(&spec));
    assert_eq!((x.unwrap(), y.unwrap()), (first.clone(), first.clone()));
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("toolshed.session={session}")],
    )]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let found = engine.list_containers(Some(opts)).await.unwrap();
    assert_eq!(found.len(), 1, "one container for one token: {found:?}");

    // Another deployment with the same token (an idempotency key maps to the same session id
    // everywhere) gets its own container, never this one.
    let other = DockerTaskRunner::new(engine.clone(), RunnerConfig::new(DeploymentId::random()));
    let theirs = other.start(&spec).await.unwrap();
    assert_ne!(theirs, first);
    assert_eq!(
        runner.describe(&first).await.unwrap().state,
        TaskState::Running
    );
    other.stop(&theirs, "test").await.unwrap();
    runner.stop(&first, "test").await.unwrap();
    assert_eq!(
        runner.describe(&first).await.unwrap().state,
        TaskState::Missing
    );
}
