//! Instances on the real engine through the library service: create from a verified server (the
//! container runs the digest-pinned image with the instance's environment), status with a real
//! MCP handshake, log tail, restart (a new container, the old one gone), stop with a drain
//! (container removed), and remove.

use std::time::Duration;

use toolshed_core::domain::{
    InstanceEnv, InstanceName, InstanceRequest, InstanceState, ServerId, ServerRegistration,
    TaskHandle,
};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::services::VerifyOptions;
use toolshed_core::testing::fixtures;
use toolshed_tests::{docker as docker_enabled, TempDir};

/// The environment of a managed container, `None` once the engine no longer has it.
async fn container_env(backend: &LocalBackend, task: &TaskHandle) -> Option<Vec<String>> {
    match backend
        .runner
        .docker()
        .inspect_container(task.as_str(), None)
        .await
    {
        Ok(c) => Some(c.config.and_then(|c| c.env).unwrap_or_default()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_status_restart_stop_on_the_engine() {
    if !docker_enabled("create_status_restart_stop_on_the_engine") {
        return;
    }
    let data = TempDir::new("toolshed-instances");
    let binary =
        tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-example-server"))
            .await
            .unwrap()
            .expect("example server binary");
    let repo =
        fixtures::write_server_repo(&data.0.join("repo"), &binary, fixtures::EXAMPLE_DOCKERFILE)
            .unwrap();
    let backend = LocalBackend::connect(LocalConfig {
        registry: std::env::var("TOOLSHED_TEST_REGISTRY")
            .ok()
            .filter(|r| !r.is_empty()),
        ..LocalConfig::new(data.0.clone())
    })
    .await
    .unwrap();
    let t = &backend.toolshed;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let server = ServerId::new(format!("inst-{suffix}")).unwrap();
    t.register_server(ServerRegistration::new(server.clone(), repo))
        .await
        .unwrap();
    t.verify_server(&server, VerifyOptions::default())
        .await
        .expect("verification on the engine");

    let name = InstanceName::new(format!("web-{suffix}")).unwrap();
    let created = t
        .create_instance(
            &server,
            InstanceRequest {
                name: name.clone(),
                env: InstanceEnv::parse_assignments(["API_TOKEN=hunter2-secret"]).unwrap(),
                owner: None,
            },
        )
        .await
        .expect("instance created");
    assert_eq!(
        created.state,
        InstanceState::Starting,
        "created only once MCP answers"
    );
    let task = created.task.clone().unwrap();
    let env = container_env(&backend, &task)
        .await
        .expect("the container exists");
    assert!(
        env.iter().any(|e| e == "API_TOKEN=hunter2-secret"),
        "the container gets the environment: {env:?}"
    );

    // Ready once the server answers the MCP handshake (a static binary: well under a second;
    // the deadline is generous and fails with a message).
    let mut ready = None;
    for _ in 0..300 {
        let s = t.instance_status(&created.id).await.unwrap();
        let h = s.health.clone().expect("health of a created instance");
        assert!(h.live, "the container runs: {h:?}");
        if h.ready {
            ready = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = ready.expect("the instance answered MCP within 30 s");
    assert!(ready.instance.endpoint.is_some());
    assert_eq!(
        ready.instance.state,
        InstanceState::Created,
        "an answered handshake records the instance created"
    );
    assert!(!serde_json::to_string(&ready.view())
        .unwrap()
        .contains("hunter2"));
    t.instance_logs(&created.id, 50)
        .await
        .expect("logs of a running container");

    // Restart: a new container with the same environment, the old one removed.
    let restarted = t
        .restart_instance(&created.id, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(restarted.restart_count, 1);
    let new_task = restarted.task.clone().unwrap();
    assert_ne!(new_task, task);
    assert!(
        container_env(&backend, &task).await.is_none(),
        "old container removed"
    );
    let env = container_env(&backend, &new_task).await.unwrap();
    assert!(
        env.iter().any(|e| e == "API_TOKEN=hunter2-secret"),
        "{env:?}"
    );

    // Stop with a drain: the container is gone and the instance stopped.
    let stopped = t
        .stop_instance(&created.id, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(stopped.state, InstanceState::Stopped);
    assert!(
        container_env(&backend, &new_task).await.is_none(),
        "container removed by the stop"
    );
    assert!(t.remove_instance(&created.id, None).await.unwrap());
    assert!(t
        .get_instance_by_name(&name)
        .await
        .unwrap_err()
        .is_not_found());
}
