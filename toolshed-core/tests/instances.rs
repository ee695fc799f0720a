//! The instance service on the in-memory doubles: lifecycle through the runner, refused
//! transitions, health, log tails, and environment values that never reach output.

use std::sync::Arc;
use std::time::Duration;

use toolshed_core::domain::{
    CommitSha, ImageDigest, ImageRef, ImageTag, InstanceEnv, InstanceName, InstanceRequest,
    InstanceState, PrincipalId, RepoUrl, Server, ServerId, ServerRegistration, TaskPurpose,
    VerificationState, VerifiedImage,
};
use toolshed_core::error::{EntityKind, ProbeFailureKind};
use toolshed_core::ports::{Clock, ServerRepository, TaskState};
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::{InMemoryPorts, ManualClock};
use toolshed_core::Error;

fn verified_server(id: &str, at: toolshed_core::domain::Timestamp) -> Server {
    let mut s = Server::register(
        ServerRegistration::new(
            ServerId::new(id).unwrap(),
            RepoUrl::new(format!("https://github.com/example/{id}")).unwrap(),
        ),
        at,
    )
    .unwrap();
    s.image = Some(VerifiedImage {
        image: ImageRef::new(
            "registry.test/servers",
            ImageTag::new(format!("{id}-1")).unwrap(),
            ImageDigest::new(format!("sha256:{}", "d".repeat(64))).unwrap(),
        )
        .unwrap(),
        commit: CommitSha::new("e".repeat(40)).unwrap(),
        verified_at: at,
    });
    s.state = VerificationState::Verified;
    s
}

async fn setup() -> (InMemoryPorts, Toolshed) {
    let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
    let toolshed = Toolshed::new(doubles.ports(), ToolshedConfig::default()).unwrap();
    let now = doubles.clock.now();
    doubles
        .repository
        .insert_server(&verified_server("time", now))
        .await
        .unwrap();
    (doubles, toolshed)
}

fn request(name: &str) -> InstanceRequest {
    InstanceRequest {
        name: InstanceName::new(name).unwrap(),
        env: InstanceEnv::parse_assignments(["API_TOKEN=hunter2-secret", "MODE=prod"]).unwrap(),
        owner: Some(PrincipalId::new("user:alice").unwrap()),
    }
}

#[tokio::test]
async fn create_stop_restart_through_the_runner() {
    let (d, t) = setup().await;
    let server = ServerId::new("time").unwrap();
    let i = t.create_instance(&server, request("web-1")).await.unwrap();
    assert_eq!(
        i.state,
        InstanceState::Starting,
        "started, not yet answered MCP"
    );
    assert_eq!(
        i.version, 3,
        "requested, creating and starting were each stored"
    );
    let task = i.task.clone().expect("a task");
    let fake = d.runner.task(&task).unwrap();
    let spec = fake.spec.expect("started with a spec");
    assert_eq!(spec.image, i.image, "runs the image pinned at creation");
    assert!(spec.image.pinned().contains("@sha256:"));
    assert!(
        matches!(spec.labels.purpose, TaskPurpose::Instance { ref instance_id } if *instance_id == i.id)
    );
    assert_eq!(
        spec.env.exposed().collect::<Vec<_>>(),
        [("API_TOKEN", "hunter2-secret"), ("MODE", "prod")],
        "the runner gets the values"
    );
    assert!(
        i.endpoint.is_some(),
        "the fake runner knows the endpoint at once"
    );

    // Names are unique.
    let e = t
        .create_instance(&server, request("web-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::AlreadyExists {
                kind: EntityKind::Instance,
                ..
            }
        ),
        "{e}"
    );

    // Stop drains with the given timeout, then the instance is stopped; again is a no-op.
    let stopped = t
        .stop_instance(&i.id, Some(Duration::from_secs(7)))
        .await
        .unwrap();
    assert_eq!(stopped.state, InstanceState::Stopped);
    assert_eq!(d.runner.drains(), [(task.clone(), Duration::from_secs(7))]);
    assert!(!d.runner.task(&task).unwrap().state.is_live());
    let again = t.stop_instance(&i.id, None).await.unwrap();
    assert_eq!(again.version, stopped.version);
    assert_eq!(d.runner.drains().len(), 1);

    // Restart runs a new task of the same image and environment.
    let restarted = t.restart_instance(&i.id, None).await.unwrap();
    assert_eq!(restarted.state, InstanceState::Starting);
    assert_eq!(restarted.restart_count, 1);
    let new_task = restarted.task.clone().unwrap();
    assert_ne!(new_task, task);
    assert_eq!(
        d.runner.task(&new_task).unwrap().spec.unwrap().image,
        i.image
    );

    // Restart of a running instance drains its task first.
    let twice = t
        .restart_instance(&i.id, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(twice.restart_count, 2);
    assert_eq!(
        d.runner.drains().last(),
        Some(&(new_task.clone(), Duration::from_secs(2)))
    );
    assert!(!d.runner.task(&new_task).unwrap().state.is_live());

    let e = t
        .stop_instance(&i.id, Some(Duration::from_secs(301)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
}

#[tokio::test]
async fn a_failed_start_is_recorded_and_returned() {
    let (d, t) = setup().await;
    d.runner.fail_next_start("no capacity");
    let e = t
        .create_instance(&ServerId::new("time").unwrap(), request("web-2"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no capacity"), "{e}");
    let i = t
        .get_instance_by_name(&InstanceName::new("web-2").unwrap())
        .await
        .unwrap();
    assert_eq!(i.state, InstanceState::Failed);
    assert!(i.failure.unwrap().contains("no capacity"));
    // A failed instance restarts.
    let i = t.restart_instance(&i.id, None).await.unwrap();
    assert_eq!(i.state, InstanceState::Starting);
}

#[tokio::test]
async fn an_instance_is_created_only_once_its_mcp_endpoint_answers() {
    let (d, t) = setup().await;
    let server = ServerId::new("time").unwrap();
    let i = t
        .create_instance(&server, request("web-ready"))
        .await
        .unwrap();
    assert_eq!(i.state, InstanceState::Starting);
    assert!(i.endpoint.is_some(), "the fake runner knows the endpoint");

    // The server is still importing: the handshake fails, the instance stays starting.
    d.probe
        .fail_all(Some((ProbeFailureKind::Unreachable, "no answer yet")));
    let status = t.instance_status(&i.id).await.unwrap();
    assert_eq!(status.instance.state, InstanceState::Starting);
    let health = status.health.expect("a starting instance has health");
    assert!(health.live && !health.ready, "{health:?}");
    let waited = t
        .wait_instance_ready(&i.id, Duration::from_millis(600))
        .await
        .unwrap();
    assert_eq!(
        waited.instance.state,
        InstanceState::Starting,
        "still starting at the deadline"
    );

    // It answers: the next check records it created, once.
    d.probe.fail_all(None);
    let ready = t
        .wait_instance_ready(&i.id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ready.instance.state, InstanceState::Created);
    assert!(ready.health.unwrap().ready);
    let again = t.instance_status(&i.id).await.unwrap();
    assert_eq!(
        again.instance.version, ready.instance.version,
        "no write when nothing changed"
    );

    // A stop wins over a late handshake.
    let stopped = t.stop_instance(&i.id, None).await.unwrap();
    let after = t.instance_status(&i.id).await.unwrap();
    assert_eq!(after.instance.state, InstanceState::Stopped);
    assert_eq!(after.instance.version, stopped.version);
}

#[tokio::test]
async fn unverified_and_unknown_servers_are_refused() {
    let (d, t) = setup().await;
    let mut s = verified_server("raw", d.clock.now());
    s.image = None;
    s.state = VerificationState::Unverified;
    d.repository.insert_server(&s).await.unwrap();
    let e = t
        .create_instance(&s.id, request("raw-1"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotVerified { .. }), "{e}");
    let e = t
        .create_instance(&ServerId::new("nope").unwrap(), request("nope-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::NotFound {
                kind: EntityKind::Server,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        t.list_instances(None, 10).await.unwrap().is_empty(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn status_reports_health_and_marks_exited_tasks_failed() {
    let (d, t) = setup().await;
    let i = t
        .create_instance(&ServerId::new("time").unwrap(), request("web-3"))
        .await
        .unwrap();
    let s = t.instance_status(&i.id).await.unwrap();
    let h = s.health.expect("health of a created instance");
    assert!(h.live && h.ready, "{h:?}");
    assert_eq!(h.task_state, "running");

    let task = i.task.clone().unwrap();
    d.runner.exit_task(&task);
    let s = t.instance_status(&i.id).await.unwrap();
    let h = s.health.unwrap();
    assert!(!h.live && !h.ready);
    assert_eq!(s.instance.state, InstanceState::Failed);
    assert!(s.instance.failure.unwrap().contains("exit code 1"));
    assert!(matches!(
        d.runner.task(&task).unwrap().state,
        TaskState::Stopped { .. }
    ));
    // Stopped instances report no health.
    t.stop_instance(&i.id, None).await.unwrap();
    assert!(t.instance_status(&i.id).await.unwrap().health.is_none());
}

#[tokio::test]
async fn logs_tail_and_output_never_shows_values() {
    let (d, t) = setup().await;
    let i = t
        .create_instance(&ServerId::new("time").unwrap(), request("web-4"))
        .await
        .unwrap();
    let task = i.task.clone().unwrap();
    for n in 1..=5 {
        d.runner.write_log(&task, &format!("line {n}"));
    }
    assert_eq!(
        t.instance_logs(&i.id, 2).await.unwrap(),
        ["line 4", "line 5"]
    );
    let e = t.instance_logs(&i.id, 10_001).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");

    let json = serde_json::to_string(&i.view()).unwrap();
    let debug = format!("{i:?}");
    for out in [&json, &debug] {
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("API_TOKEN"), "{out}");
    }
    let status = serde_json::to_string(&t.instance_status(&i.id).await.unwrap().view()).unwrap();
    assert!(!status.contains("hunter2"), "{status}");
}

#[tokio::test]
async fn remove_frees_the_name_and_the_sweep_stops_orphaned_instance_tasks() {
    let (d, t) = setup().await;
    let server = ServerId::new("time").unwrap();
    let i = t.create_instance(&server, request("web-5")).await.unwrap();
    assert!(t.remove_instance(&i.id, None).await.unwrap());
    assert!(!t.remove_instance(&i.id, None).await.unwrap());
    let again = t.create_instance(&server, request("web-5")).await.unwrap();

    // A task whose instance record is gone is an orphan once past the grace period; the task of
    // a live instance is kept.
    let task = again.task.clone().unwrap();
    d.repository.delete_instance(&again.id).await.unwrap();
    let kept = t.create_instance(&server, request("web-6")).await.unwrap();
    d.clock.advance(Duration::from_secs(600));
    let report = t
        .sweep_expired_sessions(toolshed_core::services::SweepLimits::default())
        .await;
    assert_eq!(report.orphans_stopped, 1, "{report:?}");
    assert!(!d.runner.task(&task).unwrap().state.is_live());
    assert!(d
        .runner
        .task(kept.task.as_ref().unwrap())
        .unwrap()
        .state
        .is_live());
}
