//! Tasks with an environment on ECS (moto): values travel through a per-task Secrets Manager
//! secret and never appear in what ECS is sent or answers, nor in the tables; the secret and
//! task definition go when the task stops; leftovers go with the sweep; tasks without an
//! environment register nothing per launch.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::types::{TaskDefinitionStatus, TaskField};
use toolshed_aws::{AwsAdapters, AwsAdaptersBuilder, BodyRecorder, CallCounter, StaticHeader};
use toolshed_core::domain::{InstanceEnv, TaskPurpose};
use toolshed_core::ports::{TaskRunner, TaskSpec, TaskState};
use toolshed_core::services::{SweepLimits, Sweeper};
use toolshed_core::testing::ManualClock;
use toolshed_core::Error;

use crate::MotoEnv;

fn spec(env: &MotoEnv, session: &str, values: &[(&str, &str)]) -> TaskSpec {
    env.playground_task_spec(
        "secretive",
        session,
        InstanceEnv::from_exposed(values.iter().map(|(k, v)| (*k, *v))).unwrap(),
    )
}

/// The account's adapters with every request and response body recorded.
fn recorded_adapters(env: &MotoEnv) -> (AwsAdapters, BodyRecorder, CallCounter) {
    let bodies = BodyRecorder::new();
    let calls = CallCounter::new();
    let adapters = AwsAdaptersBuilder::new(env.sdk.clone(), env.settings.clone())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .interceptor(StaticHeader::new("x-moto-account-id", env.account.clone()).interceptor())
        .interceptor(bodies.interceptor())
        .interceptor(calls.interceptor())
        .build();
    (adapters, bodies, calls)
}

async fn secret_exists(env: &MotoEnv, name: &str) -> bool {
    env.secretsmanager()
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .is_ok()
}

async fn active_revisions(env: &MotoEnv, family: &str) -> Vec<String> {
    env.ecs()
        .list_task_definitions()
        .family_prefix(family)
        .status(TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap()
        .task_definition_arns()
        .to_vec()
}

#[tokio::test]
async fn secret_values_never_appear_in_ecs_requests_answers_or_the_tables() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let (adapters, bodies, calls) = recorded_adapters(&env);
    let runner = &adapters.tasks;
    let token_value = format!("sekret-TOKEN-{}", uuid_like());
    let other_value = format!("sekret-OTHER-{}", uuid_like());
    let s = spec(
        &env,
        "s-leak0001",
        &[("API_TOKEN", &token_value), ("DB_PASSWORD", &other_value)],
    );
    let handle = runner.start(&s).await.unwrap();
    let values = [token_value.as_str(), other_value.as_str()];
    let leaks = |text: &str| values.iter().any(|v| text.contains(v));

    // The recorder sees the values where they belong (so its silence elsewhere means something).
    let recorded = bodies.bodies();
    assert!(
        recorded
            .iter()
            .any(|b| b.operation.ends_with("CreateSecret") && leaks(&b.text)),
        "the values go to Secrets Manager: {:?}",
        recorded.iter().map(|b| &b.operation).collect::<Vec<_>>()
    );
    let run_task: Vec<_> = recorded
        .iter()
        .filter(|b| b.operation.ends_with("RunTask") && !b.response)
        .collect();
    assert_eq!(run_task.len(), 1, "{:?}", calls.counts());
    assert!(
        !run_task[0].text.contains("overrides"),
        "no overrides: {}",
        run_task[0].text
    );
    for b in recorded.iter().filter(|b| b.operation.starts_with("ECS.")) {
        assert!(
            !leaks(&b.text),
            "{} {} carries a value",
            b.operation,
            if b.response { "answer" } else { "request" }
        );
    }
    assert_eq!(calls.count("ECS.RegisterTaskDefinition"), 1);

    // DescribeTasks: no value in the task, its overrides or its tags.
    let described = env
        .ecs()
        .describe_tasks()
        .cluster("playground")
        .tasks(handle.as_str())
        .include(TaskField::Tags)
        .send()
        .await
        .unwrap();
    let task = &described.tasks()[0];
    assert!(
        !leaks(&format!("{described:?}")),
        "DescribeTasks shows a value"
    );
    let definition_arn = task.task_definition_arn().unwrap().to_owned();
    let family = runner.task_family(&s);
    assert!(
        definition_arn.contains(&format!("task-definition/{family}:")),
        "{definition_arn} runs the task's own family {family}"
    );

    // DescribeTaskDefinition: references to the secret, one per name, and no value.
    let def = env
        .ecs()
        .describe_task_definition()
        .task_definition(&definition_arn)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    assert!(
        !leaks(&format!("{def:?}")),
        "DescribeTaskDefinition shows a value"
    );
    let c = &def.task_definition().unwrap().container_definitions()[0];
    assert!(c.environment().is_empty(), "{:?}", c.environment());
    assert_eq!(c.image(), Some(s.image.pinned().as_str()));
    assert_eq!(
        c.readonly_root_filesystem(),
        Some(true),
        "the usual hardening"
    );
    let secret_arn = env
        .secretsmanager()
        .describe_secret()
        .secret_id("toolshed/tasks/s-leak0001")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let mut refs: Vec<(String, String)> = c
        .secrets()
        .iter()
        .map(|r| (r.name().to_owned(), r.value_from().to_owned()))
        .collect();
    refs.sort();
    assert_eq!(
        refs,
        vec![
            ("API_TOKEN".to_owned(), format!("{secret_arn}:API_TOKEN::")),
            (
                "DB_PASSWORD".to_owned(),
                format!("{secret_arn}:DB_PASSWORD::")
            ),
        ]
    );
    // What the execution role reads at start holds the values.
    let stored = env
        .secretsmanager()
        .get_secret_value()
        .secret_id(&secret_arn)
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(json["API_TOKEN"], token_value.as_str());

    // The tables hold no value (every item of both).
    for table in [&env.settings.servers_table, &env.settings.sessions_table] {
        let items = env
            .dynamodb()
            .scan()
            .table_name(table.as_str())
            .send()
            .await
            .unwrap();
        assert!(!leaks(&format!("{items:?}")), "table {table} holds a value");
    }

    // Stopping removes the secret and the task's family.
    runner.stop(&handle, "toolshed: test").await.unwrap();
    assert!(
        matches!(
            runner.describe(&handle).await.unwrap().state,
            TaskState::Stopped { .. }
        ),
        "stopped"
    );
    assert!(
        !secret_exists(&env, "toolshed/tasks/s-leak0001").await,
        "the per-task secret is deleted"
    );
    assert!(
        active_revisions(&env, &family).await.is_empty(),
        "the task's family has no active revision left"
    );
    let after = env
        .ecs()
        .describe_task_definition()
        .task_definition(&definition_arn)
        .send()
        .await;
    if let Ok(after) = after {
        let status = after.task_definition().and_then(|d| d.status()).cloned();
        assert_ne!(
            status,
            Some(TaskDefinitionStatus::Active),
            "deregistered (and deleted)"
        );
    }
    for b in bodies
        .bodies()
        .iter()
        .filter(|b| b.operation.starts_with("ECS."))
    {
        assert!(!leaks(&b.text), "{} carries a value", b.operation);
    }
}

#[tokio::test]
async fn tasks_without_an_environment_register_nothing_per_launch() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let runner = &env.adapters.tasks;
    let first = spec(&env, "s-plain001", &[]);
    runner.prepare(&first).await.unwrap();
    env.calls.reset();
    for i in 2..5 {
        let s = spec(&env, &format!("s-plain00{i}"), &[]);
        runner.start(&s).await.unwrap();
    }
    assert_eq!(
        env.calls.counts().into_iter().collect::<Vec<_>>(),
        vec![("ECS.RunTask".to_owned(), 3)],
        "one RunTask per launch, no registration, no secret"
    );
    // One with an environment pays for its own secret and registration.
    env.calls.reset();
    let with_env = spec(&env, "s-envd0001", &[("A", "b")]);
    let handle = runner.start(&with_env).await.unwrap();
    assert_eq!(env.calls.count("ECS.RegisterTaskDefinition"), 1);
    assert_eq!(env.calls.count("ECS.RunTask"), 1);
    runner.stop(&handle, "toolshed: test").await.unwrap();
}

#[tokio::test]
async fn leftovers_of_tasks_that_no_longer_run_are_removed_by_the_sweep() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let runner = &env.adapters.tasks;
    let ended = spec(&env, "s-ended001", &[("A", "1")]);
    // A verification's check task: the sweep keeps it while its label has not expired.
    let mut running = spec(&env, "s-running1", &[("A", "2")]);
    running.labels.purpose = TaskPurpose::Verification {
        run_id: "r-running1".to_owned(),
    };
    let ended_task = runner.start(&ended).await.unwrap();
    runner.start(&running).await.unwrap();
    // The first task stops outside the runner (it exited, or a stop's clean-up failed).
    env.ecs()
        .stop_task()
        .cluster("playground")
        .task(ended_task.as_str())
        .send()
        .await
        .unwrap();

    // Within the grace period nothing is touched (a start may be between its secret and RunTask).
    assert_eq!(
        runner
            .remove_leftovers(Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        0
    );
    assert!(secret_exists(&env, "toolshed/tasks/s-ended001").await);

    // The sweep (as the cleanup function builds it) removes the ended task's resources only.
    let sweep = env.sweep_adapters(env.settings.sweep());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let report = Sweeper::new(
        Arc::new(sweep.repository.clone()),
        Arc::new(sweep.tasks.clone()),
        clock,
    )
    .with_orphan_grace(Duration::ZERO)
    .sweep_expired_sessions(SweepLimits::default())
    .await;
    assert_eq!(report.leftovers_removed, 1, "{report:?}");
    assert!(!secret_exists(&env, "toolshed/tasks/s-ended001").await);
    assert!(active_revisions(&env, &runner.task_family(&ended))
        .await
        .is_empty());
    assert!(
        secret_exists(&env, "toolshed/tasks/s-running1").await,
        "a task still running keeps its secret"
    );
    assert_eq!(
        active_revisions(&env, &runner.task_family(&running))
            .await
            .len(),
        1
    );

    // Another deployment's per-task secrets are never touched.
    env.secretsmanager()
        .create_secret()
        .name("toolshed/tasks/s-foreign1")
        .secret_string("{}")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("toolshed.deployment")
                .value("production")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        runner.remove_leftovers(Duration::ZERO, 100).await.unwrap(),
        0
    );
    assert!(secret_exists(&env, "toolshed/tasks/s-foreign1").await);
}

#[tokio::test]
async fn a_runner_without_secrets_refuses_an_environment_before_any_call() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let runner = toolshed_aws::EcsTaskRunner::new(env.ecs(), env.settings.ecs());
    let err = runner
        .start(&spec(&env, "s-refused1", &[("A", "sekret-REFUSED")]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("sekret-REFUSED"));
    assert!(runner
        .list_managed(None, 10)
        .await
        .unwrap()
        .tasks
        .is_empty());
}

fn uuid_like() -> String {
    toolshed_aws::testing::sha256_hex(format!("{:?}", std::time::Instant::now()).as_bytes())[..16]
        .to_owned()
}
