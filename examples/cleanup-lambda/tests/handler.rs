//! The Lambda handler invoked locally with EventBridge payloads: against the in-memory doubles
//! (always) and against moto with the AWS adapters (`TOOLSHED_TEST_MOTO_ENDPOINT`).

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::{json, Value};
use toolshed_aws::testing::MotoEnv;
use toolshed_aws::SweepSettings;
use toolshed_cleanup_lambda::{handle, handle_for_runtime, SweepError};
use toolshed_core::domain::{
    CommitSha, GitRef, ImageTag, InstanceEnv, RepoUrl, ServerId, ServerRegistration, SessionCaps,
    SessionId, StopReason,
};
use toolshed_core::ports::{
    Clock, MockServerRepository, MockTaskRunner, ServerRepository, TaskRunner, TaskSpec,
};
use toolshed_core::services::{
    LaunchRequest, Ports, SweepLimits, Sweeper, Toolshed, ToolshedConfig, VerifyOptions,
};
use toolshed_core::testing::{FakeTaskRunner, InMemorySourceRepository, ManualClock};
use toolshed_core::Error;

fn scheduled_event(id: &str) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-21T06:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/toolshed-sweep"],
        "detail": {}
    })
}

fn invoke(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

struct Memory {
    clock: Arc<ManualClock>,
    runner: Arc<FakeTaskRunner>,
    source: Arc<InMemorySourceRepository>,
    toolshed: Toolshed,
}

fn memory() -> Memory {
    let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
    Memory {
        toolshed: Toolshed::new(doubles.ports(), ToolshedConfig::default()).unwrap(),
        clock: doubles.clock,
        runner: doubles.runner,
        source: doubles.source,
    }
}

fn registration(id: &str) -> ServerRegistration {
    ServerRegistration::new(
        ServerId::new(id).unwrap(),
        RepoUrl::new(format!("https://github.com/example/{id}")).unwrap(),
    )
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[tokio::test]
async fn a_scheduled_event_sweeps_expired_sessions_in_memory() {
    let m = memory();
    let reg = registration("time");
    let id = reg.id.clone();
    m.source
        .set_commit(&reg.repo, &GitRef::main(), &CommitSha::new(COMMIT).unwrap());
    m.toolshed.register_server(reg).await.unwrap();
    m.toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    let short = m
        .toolshed
        .launch_session(
            &id,
            LaunchRequest {
                ttl: Some(Duration::from_secs(60)),
                idempotency_key: None,
                settings: Default::default(),
            },
        )
        .await
        .unwrap();
    // Before the TTL: nothing to do.
    let quiet = handle(
        &m.toolshed.sweeper(),
        SweepLimits::default(),
        invoke(scheduled_event("ev-1")),
    )
    .await
    .unwrap();
    assert_eq!(quiet.event_id.as_deref(), Some("ev-1"));
    assert_eq!((quiet.expired_stopped, quiet.orphans_stopped), (0, 0));

    m.clock.advance(Duration::from_secs(120));
    let report = handle(
        &m.toolshed.sweeper(),
        SweepLimits::default(),
        invoke(scheduled_event("ev-2")),
    )
    .await
    .unwrap();
    assert_eq!(report.expired_stopped, 1, "{report:?}");
    assert!(report.errors.is_empty());
    assert!(
        m.runner.live_tasks().is_empty(),
        "the expired task was stopped"
    );
    let ended = m.toolshed.get_session(&short.id).await.unwrap();
    assert_eq!(ended.stop_reason, Some(StopReason::Expired));
    // The response is what Lambda returns: JSON.
    let out = serde_json::to_value(&report).unwrap();
    assert_eq!(out["expired_stopped"], 1);

    // EventBridge Scheduler without an input sends an empty payload: still a sweep.
    let again = handle(
        &m.toolshed.sweeper(),
        SweepLimits::default(),
        invoke(json!({})),
    )
    .await
    .unwrap();
    assert_eq!(again.event_id, None);
    assert_eq!(again.expired_stopped, 0, "idempotent");
}

#[tokio::test]
async fn a_foreign_event_is_refused_as_non_retryable() {
    let m = memory();
    let mut event = scheduled_event("ev-x");
    event["source"] = json!("aws.ec2");
    let err = handle(
        &m.toolshed.sweeper(),
        SweepLimits::default(),
        invoke(event.clone()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SweepError::InvalidEvent(_)), "{err:?}");
    assert!(!err.is_retryable());
    let diagnostic: Diagnostic =
        handle_for_runtime(&m.toolshed.sweeper(), SweepLimits::default(), invoke(event))
            .await
            .unwrap_err();
    assert_eq!(diagnostic.error_type, "NonRetryable.InvalidEvent");
    assert!(diagnostic.error_message.contains("aws.ec2"));
    let err = handle(
        &m.toolshed.sweeper(),
        SweepLimits::default(),
        invoke(json!({"hello": 1})),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "NonRetryable.InvalidEvent");
}

#[tokio::test]
async fn a_sweep_without_progress_because_the_backend_fails_is_retryable() {
    let m = memory();
    let down = || Error::backend("dynamodb", "Query", None, true, "service unavailable");
    let mut repository = MockServerRepository::new();
    repository
        .expect_list_expired_sessions()
        .returning(move |_, _| Err(down()));
    repository
        .expect_list_live_sessions()
        .returning(move |_, _| Err(down()));
    let mut runner = MockTaskRunner::new();
    runner
        .expect_list_managed()
        .returning(|_, _| Err(Error::backend("ecs", "ListTasks", None, true, "throttled")));
    // Leftover removal succeeds with nothing to do: the three errors are the listings'.
    runner.expect_remove_leftovers().returning(|_, _| Ok(0));
    let failing = Sweeper::new(Arc::new(repository), Arc::new(runner), m.clock.clone());
    let err = handle(
        &failing,
        SweepLimits::default(),
        invoke(scheduled_event("ev-3")),
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable());
    match &err {
        SweepError::Incomplete { errors } => assert_eq!(errors.len(), 3, "{errors:?}"),
        other => panic!("expected Incomplete, got {other:?}"),
    }
    let diagnostic = Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "Retryable.SweepIncomplete");
    assert!(diagnostic.error_message.contains("service unavailable"));
}

#[tokio::test]
async fn a_scheduled_event_sweeps_expired_sessions_on_moto() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    // Set-up through the services on the same adapters (fake probe: moto runs no containers).
    let svc = env.services(SessionCaps::default());
    let reg = registration("sweepme");
    let id = reg.id.clone();
    let commit = CommitSha::new(COMMIT).unwrap();
    svc.source.set_commit(&reg.repo, &GitRef::main(), &commit);
    svc.toolshed.register_server(reg).await.unwrap();
    env.push_image(ImageTag::for_build(&id, &commit).as_str(), "sweepme")
        .await;
    svc.toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    let short = svc
        .toolshed
        .launch_session(
            &id,
            LaunchRequest {
                ttl: Some(Duration::from_secs(60)),
                idempotency_key: None,
                settings: Default::default(),
            },
        )
        .await
        .unwrap();
    let long = svc
        .toolshed
        .launch_session(
            &id,
            LaunchRequest {
                ttl: Some(Duration::from_secs(3600)),
                idempotency_key: None,
                settings: Default::default(),
            },
        )
        .await
        .unwrap();

    // The Lambda's own composition, from nothing but the sweep settings (the variables the
    // Terraform module gives the function), on the test's clock.
    let s = &env.settings;
    let vars = std::collections::HashMap::from([
        ("AWS_REGION", s.region.clone()),
        ("PLAYGROUND_CLUSTER", s.cluster.clone()),
        ("TOOLSHED_SERVERS_TABLE", s.servers_table.clone()),
        ("TOOLSHED_SESSIONS_TABLE", s.sessions_table.clone()),
        ("TOOLSHED_TASK_FAMILY_PREFIX", s.task_family_prefix.clone()),
        ("TOOLSHED_DEPLOYMENT_ID", s.deployment_id.to_string()),
    ]);
    let settings = SweepSettings::from_lookup(|k| vars.get(k).cloned()).unwrap();
    assert_eq!(settings, env.settings.sweep());
    let adapters = env.sweep_adapters(settings);
    let sweeper = adapters.sweeper(svc.clock.clone());
    svc.clock.advance(Duration::from_secs(120));
    let report = handle(
        &sweeper,
        SweepLimits::default(),
        invoke(scheduled_event("ev-moto")),
    )
    .await
    .unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.expired_stopped, 1, "{report:?}");
    assert_eq!(report.event_id.as_deref(), Some("ev-moto"));
    let ended = env
        .adapters
        .repository
        .get_session(&short.id)
        .await
        .unwrap();
    assert_eq!(ended.stop_reason, Some(StopReason::Expired));
    assert!(env
        .adapters
        .repository
        .get_session(&long.id)
        .await
        .unwrap()
        .state
        .is_live());
    let live: Vec<_> = env
        .adapters
        .tasks
        .list_managed(None, 100)
        .await
        .unwrap()
        .tasks
        .into_iter()
        .map(|t| t.handle)
        .collect();
    assert_eq!(
        live,
        vec![long.task.clone()],
        "only the long session's task runs"
    );
    // The sweep-only runner cannot launch: it has no network settings.
    let server = svc.toolshed.get_server(&id).await.unwrap();
    let spec = TaskSpec::for_session(&server, &long.id, svc.clock.now()).unwrap();
    let err = adapters.tasks.start(&spec).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("only lists and stops"), "{err}");
}

/// An ECS task state change for `task` as EventBridge delivers it to the function.
fn task_state_change(task: &aws_sdk_ecs::types::Task, last_status: &str, at: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("ev-{last_status}"),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": at,
        "region": "us-east-1",
        "resources": [task.task_arn().unwrap()],
        "detail": {
            "attachments": [{
                "id": "a1",
                "type": "eni",
                "status": "ATTACHED",
                "details": [{"name": "privateIPv4Address", "value": "10.0.3.4"}]
            }],
            "clusterArn": task.cluster_arn().unwrap(),
            "containers": [{"name": "mcp", "lastStatus": last_status, "exitCode": 1}],
            "desiredStatus": if last_status == "STOPPED" { "STOPPED" } else { "RUNNING" },
            "group": task.group().unwrap(),
            "lastStatus": last_status,
            "startedBy": task.started_by().unwrap(),
            "stoppedReason": "Essential container in task exited",
            "taskArn": task.task_arn().unwrap(),
            "updatedAt": at,
            "version": 2
        }
    })
}

#[tokio::test]
async fn a_task_state_change_event_updates_its_session_on_moto() {
    use toolshed_cleanup_lambda::{dispatch, CleanupHandlers, CleanupResponse};
    use toolshed_core::services::RefreshLimits;
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps::default());
    let reg = registration("evented");
    let id = reg.id.clone();
    let commit = CommitSha::new(COMMIT).unwrap();
    svc.source.set_commit(&reg.repo, &GitRef::main(), &commit);
    svc.toolshed.register_server(reg).await.unwrap();
    env.push_image(ImageTag::for_build(&id, &commit).as_str(), "evented")
        .await;
    svc.toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    let session = svc
        .toolshed
        .launch_session(&id, LaunchRequest::default())
        .await
        .unwrap();
    let adapters = env.sweep_adapters(env.settings.sweep());
    let handlers = CleanupHandlers {
        sweeper: adapters.sweeper(svc.clock.clone()),
        refresher: adapters.status_refresher(svc.clock.clone()),
        tasks: adapters.tasks.clone(),
    };
    let task = env
        .ecs()
        .describe_tasks()
        .cluster(&env.settings.cluster)
        .tasks(session.task.as_str())
        .send()
        .await
        .unwrap()
        .tasks()
        .first()
        .cloned()
        .unwrap();
    let at = |s: i64| (svc.clock.now() + chrono::Duration::seconds(s)).to_rfc3339();
    env.calls.reset();

    let running = dispatch(
        &handlers,
        SweepLimits::default(),
        RefreshLimits::default(),
        invoke(task_state_change(&task, "RUNNING", &at(1))),
    )
    .await
    .unwrap();
    let CleanupResponse::TaskEvent(r) = running else {
        panic!("a task event: {running:?}")
    };
    assert!(r.ours && r.recorded && !r.ended, "{r:?}");
    let stored = env
        .adapters
        .repository
        .get_session(&session.id)
        .await
        .unwrap();
    assert_eq!(
        stored.observed.unwrap().endpoint.unwrap().host,
        "10.0.3.4",
        "the event's address, with the server's port and path"
    );

    let stopped = dispatch(
        &handlers,
        SweepLimits::default(),
        RefreshLimits::default(),
        invoke(task_state_change(&task, "STOPPED", &at(2))),
    )
    .await
    .unwrap();
    let CleanupResponse::TaskEvent(r) = stopped else {
        panic!("a task event: {stopped:?}")
    };
    assert!(r.ended, "{r:?}");
    let ended = env
        .adapters
        .repository
        .get_session(&session.id)
        .await
        .unwrap();
    assert_eq!(ended.stop_reason, Some(StopReason::TaskExited));
    assert_eq!(
        env.calls.count("ECS.DescribeTasks"),
        0,
        "{:?}",
        env.calls.counts()
    );

    // Another deployment's event is skipped; a malformed one is refused, not retried.
    let mut foreign = task_state_change(&task, "STOPPED", &at(3));
    foreign["detail"]["startedBy"] = "someone-else".into();
    let skipped = dispatch(
        &handlers,
        SweepLimits::default(),
        RefreshLimits::default(),
        invoke(foreign),
    )
    .await
    .unwrap();
    assert!(
        matches!(skipped, CleanupResponse::TaskEvent(ref r) if !r.ours),
        "{skipped:?}"
    );
    let mut broken = task_state_change(&task, "STOPPED", &at(3));
    broken["detail"]["lastStatus"] = json!(42);
    let err = dispatch(
        &handlers,
        SweepLimits::default(),
        RefreshLimits::default(),
        invoke(broken),
    )
    .await
    .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_sweep_reports_the_leftovers_it_removes_on_moto() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    // A session's task with a setting value: the runner keeps it in a per-task secret and a
    // task definition revision of its own.
    let session_id = SessionId::new("s-leftover1").unwrap();
    let spec = env.playground_task_spec(
        "leftover",
        session_id.as_str(),
        InstanceEnv::from_exposed([("API_TOKEN", "value-1")]).unwrap(),
    );
    let runner = &env.adapters.tasks;
    let task = runner.start(&spec).await.unwrap();
    let secret = "toolshed/tasks/s-leftover1";
    let family = runner.task_family(&spec);
    let secret_exists = || async {
        env.secretsmanager()
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .is_ok()
    };
    let active_revisions = || async {
        env.ecs()
            .list_task_definitions()
            .family_prefix(&family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .send()
            .await
            .unwrap()
            .task_definition_arns()
            .len()
    };
    assert!(secret_exists().await);
    assert_eq!(active_revisions().await, 1);
    // The task stops outside the runner (it exited): its secret and revision are left over.
    env.ecs()
        .stop_task()
        .cluster(env.settings.cluster.as_str())
        .task(task.as_str())
        .send()
        .await
        .unwrap();

    // The function's sweeper, without the grace period (the leftovers are seconds old).
    let sweeper = env
        .sweep_adapters(env.settings.sweep())
        .sweeper(Arc::new(ManualClock::new(chrono::Utc::now())))
        .with_orphan_grace(Duration::ZERO);
    let response = handle(
        &sweeper,
        SweepLimits::default(),
        invoke(scheduled_event("ev-leftovers")),
    )
    .await
    .unwrap();
    assert!(response.errors.is_empty(), "{response:?}");
    assert_eq!(response.leftovers_removed, 1, "{response:?}");
    let out = serde_json::to_value(&response).unwrap();
    assert_eq!(out["leftovers_removed"], 1, "{out}");
    assert!(!secret_exists().await, "the per-task secret was removed");
    assert_eq!(active_revisions().await, 0, "the revision was deregistered");

    // Nothing is left: the next sweep removes and counts nothing.
    let again = handle(
        &sweeper,
        SweepLimits::default(),
        invoke(scheduled_event("ev-leftovers-2")),
    )
    .await
    .unwrap();
    assert_eq!(again.leftovers_removed, 0, "{again:?}");
    assert_eq!(
        serde_json::to_value(&again).unwrap()["leftovers_removed"],
        0
    );
}
