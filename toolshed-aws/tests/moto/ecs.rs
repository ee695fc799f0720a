//! The ECS runner against moto: registration, launch, describe, stop, listing.

use aws_sdk_ecs::types::TaskField;
use toolshed_core::domain::{
    ImageDigest, ImageRef, ImageTag, ServerId, SessionId, TaskHandle, TaskLabels, TaskPurpose,
    TaskResources,
};
use toolshed_core::ports::{TaskRunner, TaskSpec, TaskState};

use crate::MotoEnv;

fn spec(server: &str, session: &str, repo: &str, digest_seed: &str) -> TaskSpec {
    let server_id = ServerId::new(server).unwrap();
    let digest = ImageDigest::new(format!(
        "sha256:{}",
        toolshed_aws::testing::sha256_hex(digest_seed.as_bytes())
    ))
    .unwrap();
    let session_id = SessionId::new(session).unwrap();
    TaskSpec {
        server_id: server_id.clone(),
        image: ImageRef::new(
            repo,
            ImageTag::new(format!("{server}-aaaaaaaaaaaa")).unwrap(),
            digest,
        )
        .unwrap(),
        container_port: 8123,
        mcp_path: "/mcp".to_owned(),
        resources: TaskResources {
            cpu_units: 512,
            memory_mib: 1024,
            ..TaskResources::default()
        },
        labels: TaskLabels {
            server_id,
            purpose: TaskPurpose::Playground {
                session_id: session_id.clone(),
            },
            expires_at: chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 900, 0)
                .unwrap(),
        },
        idempotency_token: session_id.to_string(),
        env: Default::default(),
    }
}

#[tokio::test]
async fn prepare_registers_a_digest_pinned_definition_once() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let runner = &env.adapters.tasks;
    let s = spec("time", "s-00000001", &env.settings.repository.uri, "one");
    runner.prepare(&s).await.unwrap();
    runner.prepare(&s).await.unwrap();
    assert_eq!(
        env.calls.count("ECS.RegisterTaskDefinition"),
        1,
        "{:?}",
        env.calls.counts()
    );

    let family = runner.family(&s);
    assert_eq!(
        family,
        format!("toolshed-time-{}", s.image.digest().short())
    );
    let def = env
        .ecs()
        .describe_task_definition()
        .task_definition(&family)
        .send()
        .await
        .unwrap();
    let def = def.task_definition().unwrap();
    let c = &def.container_definitions()[0];
    assert_eq!(c.name(), Some("mcp"));
    assert_eq!(
        c.image(),
        Some(s.image.pinned().as_str()),
        "image must be pinned by digest"
    );
    assert!(c.image().unwrap().contains("@sha256:"));
    assert_eq!(def.cpu(), Some("512"));
    assert_eq!(def.memory(), Some("1024"));
    assert_eq!(def.network_mode().map(|m| m.as_str()), Some("awsvpc"));
    assert_eq!(c.port_mappings()[0].container_port(), Some(8123));
    let log = c.log_configuration().unwrap();
    assert_eq!(log.log_driver().as_str(), "awslogs");
    let opts = log.options().unwrap();
    assert_eq!(
        opts.get("awslogs-stream-prefix").map(String::as_str),
        Some("time")
    );
    assert_eq!(
        opts.get("awslogs-group").map(String::as_str),
        Some("/toolshed/tasks")
    );
    assert_eq!(
        def.execution_role_arn(),
        Some(env.settings.task_execution_role_arn.as_str())
    );

    // A new digest is a new family.
    let s2 = spec("time", "s-00000002", &env.settings.repository.uri, "two");
    runner.prepare(&s2).await.unwrap();
    assert_eq!(env.calls.count("ECS.RegisterTaskDefinition"), 2);
}

#[tokio::test]
async fn registered_task_definitions_carry_the_hardening() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let runner = &env.adapters.tasks;
    let describe = |family: String| {
        let ecs = env.ecs();
        async move {
            ecs.describe_task_definition()
                .task_definition(family)
                .send()
                .await
                .unwrap()
                .task_definition()
                .cloned()
                .unwrap()
        }
    };

    // Defaults: non-root, read-only root, writable /tmp volume, no capabilities, no task role.
    let s = spec("hardened", "s-00000011", &env.settings.repository.uri, "h1");
    runner.prepare(&s).await.unwrap();
    let def = describe(runner.family(&s)).await;
    let c = &def.container_definitions()[0];
    assert_eq!(c.user(), Some(toolshed_core::domain::NON_ROOT_USER));
    assert_eq!(c.readonly_root_filesystem(), Some(true));
    let tmp = c
        .mount_points()
        .iter()
        .find(|m| m.container_path() == Some("/tmp"))
        .expect("/tmp is mounted");
    assert_eq!(tmp.read_only(), Some(false), "/tmp is writable");
    let volume = tmp.source_volume().unwrap();
    assert!(
        def.volumes().iter().any(|v| v.name() == Some(volume)),
        "the /tmp volume {volume} is declared: {:?}",
        def.volumes()
    );
    let caps = c
        .linux_parameters()
        .and_then(|l| l.capabilities())
        .expect("capabilities are set");
    assert_eq!(caps.drop(), ["ALL"]);
    assert!(caps.add().is_empty());
    assert_eq!(
        def.task_role_arn(),
        None,
        "no task role unless the server asks for one"
    );

    // A server registered as needing root and a task role gets exactly that, nothing more.
    let mut s = spec(
        "needs-root",
        "s-00000012",
        &env.settings.repository.uri,
        "h2",
    );
    s.resources.run_as_root = true;
    s.resources.task_role = true;
    runner.prepare(&s).await.unwrap();
    let def = describe(runner.family(&s)).await;
    let c = &def.container_definitions()[0];
    assert_eq!(c.user(), None, "the image's own user");
    assert_eq!(c.readonly_root_filesystem(), Some(true));
    assert_eq!(
        c.linux_parameters()
            .and_then(|l| l.capabilities())
            .map(|k| k.drop().to_vec()),
        Some(vec!["ALL".to_owned()])
    );
    assert_eq!(def.task_role_arn(), env.settings.task_role_arn.as_deref());
}

#[tokio::test]
async fn launch_describe_list_and_stop() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let runner = &env.adapters.tasks;
    let s = spec("time", "s-00000003", &env.settings.repository.uri, "one");
    runner.prepare(&s).await.unwrap();
    env.calls.reset();
    let handle = runner.start(&s).await.unwrap();
    assert_eq!(
        env.calls.counts().into_iter().collect::<Vec<_>>(),
        vec![("ECS.RunTask".to_owned(), 1)]
    );

    // What ECS got: tags, startedBy, Fargate, network configuration.
    let raw = env
        .ecs()
        .describe_tasks()
        .cluster("playground")
        .tasks(handle.as_str())
        .include(TaskField::Tags)
        .send()
        .await
        .unwrap();
    let t = &raw.tasks()[0];
    assert_eq!(t.started_by(), Some("toolshed"));
    assert_eq!(t.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    let tags: std::collections::HashMap<_, _> = t
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    for (k, v) in s.labels.to_pairs() {
        assert_eq!(tags.get(k.as_str()), Some(&v.as_str()), "tag {k}");
    }
    assert!(t
        .task_definition_arn()
        .unwrap()
        .contains(&runner.family(&s)));

    let status = runner.describe(&handle).await.unwrap();
    assert_eq!(status.state, TaskState::Running);
    let endpoint = status.endpoint.expect("endpoint of a running task");
    let eni_ip = t
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .expect("ENI attachment with a private IP");
    assert_eq!(
        endpoint.host, eni_ip,
        "the endpoint is the ENI's private IP"
    );
    assert!(endpoint.host.parse::<std::net::Ipv4Addr>().is_ok());
    assert_eq!(endpoint.port, 8123);
    assert_eq!(endpoint.path, "/mcp");

    // A task started by "toolshed" but without our tags is not listed.
    env.ecs()
        .run_task()
        .cluster("playground")
        .task_definition(runner.family(&s))
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .started_by("toolshed")
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .set_subnets(Some(env.settings.subnets.clone()))
                        .set_security_groups(Some(env.settings.security_groups.clone()))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let page = runner.list_managed(None, 100).await.unwrap();
    assert_eq!(page.tasks.len(), 1, "{page:?}");
    assert_eq!(page.tasks[0].handle, handle);
    assert_eq!(page.tasks[0].labels, s.labels);
    // moto reports no createdAt for tasks, so `started_at` is not asserted here.

    runner.stop(&handle, "toolshed: test").await.unwrap();
    let stopped = runner.describe(&handle).await.unwrap();
    assert!(
        matches!(stopped.state, TaskState::Stopped { .. }),
        "{stopped:?}"
    );
    assert_eq!(stopped.endpoint, None);
    // Stopping again is fine.
    runner.stop(&handle, "toolshed: again").await.unwrap();
    let page = runner.list_managed(None, 100).await.unwrap();
    assert!(
        page.tasks.is_empty(),
        "a stopped task is not listed: {page:?}"
    );
}

#[tokio::test]
async fn start_registers_a_missing_family_then_reuses_it() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let runner = &env.adapters.tasks;
    let s = spec("fallback", "s-00000004", &env.settings.repository.uri, "f");
    runner.start(&s).await.unwrap();
    assert_eq!(env.calls.count("ECS.RegisterTaskDefinition"), 1);
    assert_eq!(
        env.calls.count("ECS.RunTask"),
        2,
        "one failed run, one after registering"
    );
    env.calls.reset();
    let s2 = spec("fallback", "s-00000005", &env.settings.repository.uri, "f");
    runner.start(&s2).await.unwrap();
    assert_eq!(env.calls.count("ECS.RegisterTaskDefinition"), 0);
    assert_eq!(env.calls.total(), 1);
}

#[tokio::test]
async fn unknown_tasks_are_missing() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let runner = &env.adapters.tasks;
    let unknown =
        TaskHandle::new("arn:aws:ecs:us-east-1:123456789012:task/playground/0123456789abcdef")
            .unwrap();
    assert_eq!(
        runner.describe(&unknown).await.unwrap().state,
        TaskState::Missing
    );
    assert!(runner
        .list_managed(None, 10)
        .await
        .unwrap()
        .tasks
        .is_empty());
}
