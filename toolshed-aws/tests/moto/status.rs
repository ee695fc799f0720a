//! Session status on moto: the batched refresher describes live sessions 100 tasks per
//! DescribeTasks, fresh records answer polls without DescribeTasks, concurrent polls of stale
//! records share one DescribeTasks, and an ECS task state change
//! event (as EventBridge sends it) is read by the ECS adapter and applied to its session.

use std::time::Duration;

use toolshed_core::domain::{ObservedTaskState, SessionCaps, SessionState, StopReason};
use toolshed_core::ports::{Clock, ServerRepository};
use toolshed_core::services::{LaunchRequest, RefreshLimits, VerifyOptions};

use crate::MotoEnv;
use toolshed_aws::testing::MotoServices;

async fn verified(env: &MotoEnv, svc: &MotoServices, id: &str) -> toolshed_core::domain::Server {
    let (server_id, _digest) = crate::services::registered(env, svc, id).await;
    svc.toolshed
        .verify_server(&server_id, VerifyOptions::default())
        .await
        .unwrap()
        .server()
        .clone()
}

/// `n` live sessions of a verified server `id`, an hour to live each, seeded as
/// [`MotoEnv::seed_live_sessions`] does.
async fn live_sessions(
    env: &MotoEnv,
    svc: &MotoServices,
    id: &str,
    n: usize,
) -> Vec<toolshed_core::domain::PlaygroundSession> {
    let server = verified(env, svc, id).await;
    let seeded = env
        .seed_live_sessions(
            &server,
            n,
            16,
            svc.clock.now(),
            |_| Duration::from_secs(3600),
            std::time::Instant::now() + Duration::from_secs(600),
        )
        .await;
    assert_eq!(seeded.len(), n);
    seeded
}

/// An ECS "Task State Change" event as EventBridge delivers it, for a task as DescribeTasks
/// shows it.
fn ecs_event(task: &aws_sdk_ecs::types::Task, last_status: &str, at: &str) -> serde_json::Value {
    let ip = task
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .unwrap_or("10.0.0.1");
    serde_json::json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": at,
        "region": "us-east-1",
        "resources": [task.task_arn().unwrap()],
        "detail": {
            "attachments": [{
                "id": "1789bcae-ddfb-4d10-8ebe-8ac87ddba5b8",
                "type": "eni",
                "status": "ATTACHED",
                "details": [
                    {"name": "subnetId", "value": "subnet-abcd1234"},
                    {"name": "networkInterfaceId", "value": "eni-abcd1234"},
                    {"name": "privateIPv4Address", "value": ip}
                ]
            }],
            "availabilityZone": "us-east-1a",
            "clusterArn": task.cluster_arn().unwrap(),
            "containers": [{
                "containerArn": "arn:aws:ecs:us-east-1:123456789012:container/c/1",
                "lastStatus": last_status,
                "name": "mcp",
                "exitCode": if last_status == "STOPPED" { 137 } else { 0 },
                "taskArn": task.task_arn().unwrap(),
                "networkInterfaces": [{"attachmentId": "1789", "privateIpv4Address": ip}]
            }],
            "createdAt": at,
            "desiredStatus": if last_status == "STOPPED" { "STOPPED" } else { "RUNNING" },
            "group": task.group().unwrap(),
            "launchType": "FARGATE",
            "lastStatus": last_status,
            "startedBy": task.started_by().unwrap(),
            "stoppedReason": "Essential container in task exited",
            "taskArn": task.task_arn().unwrap(),
            "taskDefinitionArn": task.task_definition_arn().unwrap_or_default(),
            "updatedAt": at,
            "version": 3
        }
    })
}

#[tokio::test]
async fn the_refresher_uses_one_describe_tasks_per_hundred_sessions_and_polls_none() {
    const N: usize = 150;
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps {
        per_server: 1_000,
        total: 1_000,
    });
    let seeded = live_sessions(&env, &svc, "fresh-status", N).await;

    env.calls.reset();
    let report = svc
        .toolshed
        .refresh_stale_sessions(RefreshLimits::default())
        .await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!((report.checked, report.stale), (N as u32, N as u32));
    assert_eq!(report.recorded, N as u32, "{report:?}");
    assert_eq!(
        env.calls.count("ECS.DescribeTasks"),
        N.div_ceil(100),
        "{:?}",
        env.calls.counts()
    );
    let stored = env
        .adapters
        .repository
        .get_sessions(&seeded.iter().map(|s| s.id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    for s in &stored {
        let seen = s.observed.as_ref().expect("observed");
        assert_eq!(seen.state, ObservedTaskState::Running);
        let host = &seen.endpoint.as_ref().expect("endpoint").host;
        assert!(host.parse::<std::net::Ipv4Addr>().is_ok(), "{host}");
    }

    // Polls on fresh records: no DescribeTasks at all.
    env.calls.reset();
    for s in seeded.iter().take(50) {
        let polled = svc.toolshed.session_status(&s.id).await.unwrap();
        assert_eq!(polled.state, SessionState::Running);
    }
    assert_eq!(
        env.calls.count("ECS.DescribeTasks"),
        0,
        "{:?}",
        env.calls.counts()
    );
}

#[tokio::test]
async fn concurrent_polls_of_stale_records_share_one_describe_tasks() {
    const N: usize = 30;
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps {
        per_server: 1_000,
        total: 1_000,
    });
    let seeded = live_sessions(&env, &svc, "stale-polls", N).await;
    let poll_all =
        || futures::future::join_all(seeded.iter().map(|s| svc.toolshed.session_status(&s.id)));

    // Nothing observed yet: every record is stale.
    env.calls.reset();
    let polled = poll_all().await;
    assert_eq!(
        env.calls.count("ECS.DescribeTasks"),
        1,
        "{:?}",
        env.calls.counts()
    );
    for (asked, answer) in seeded.iter().zip(polled) {
        let answer = answer.unwrap();
        assert_eq!(answer.id, asked.id, "each poll gets its own session");
        assert_eq!(answer.state, SessionState::Running);
        let seen = answer.observed.expect("observed");
        assert_eq!(seen.state, ObservedTaskState::Running);
    }

    // Fresh: none. Stale again (past the 15 s freshness): one for all of them.
    env.calls.reset();
    for answer in poll_all().await {
        answer.unwrap();
    }
    assert_eq!(env.calls.count("ECS.DescribeTasks"), 0);
    svc.clock.advance(Duration::from_secs(16));
    for answer in poll_all().await {
        assert_eq!(answer.unwrap().state, SessionState::Running);
    }
    assert_eq!(
        env.calls.count("ECS.DescribeTasks"),
        1,
        "{:?}",
        env.calls.counts()
    );
}

#[tokio::test]
async fn an_ecs_task_state_change_event_updates_its_session() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps::default());
    let server = verified(&env, &svc, "evented").await;
    let session = svc
        .toolshed
        .launch_session(&server.id, LaunchRequest::default())
        .await
        .unwrap();
    let described = env
        .ecs()
        .describe_tasks()
        .cluster(&env.settings.cluster)
        .tasks(session.task.as_str())
        .send()
        .await
        .unwrap();
    let task = described.tasks().first().expect("task").clone();
    assert_eq!(
        task.group(),
        Some(format!("toolshed-session:{}", session.id).as_str()),
        "a session's task names its session in its group"
    );
    let at = |secs: i64| (svc.clock.now() + chrono::Duration::seconds(secs)).to_rfc3339();

    let running = env
        .adapters
        .tasks
        .task_event(&ecs_event(&task, "RUNNING", &at(1)))
        .unwrap()
        .expect("our session's event");
    env.calls.reset();
    let report = svc.toolshed.apply_task_events(&[running]).await.unwrap();
    assert_eq!((report.recorded, report.ignored), (1, 0), "{report:?}");
    assert_eq!(env.calls.count("ECS.DescribeTasks"), 0);
    let stored = env
        .adapters
        .repository
        .get_session(&session.id)
        .await
        .unwrap();
    let seen = stored.observed.expect("observed");
    assert_eq!(seen.state, ObservedTaskState::Running);
    assert_eq!(seen.endpoint.expect("endpoint").port, 8000);

    let stopped = env
        .adapters
        .tasks
        .task_event(&ecs_event(&task, "STOPPED", &at(2)))
        .unwrap()
        .expect("our session's event");
    let report = svc.toolshed.apply_task_events(&[stopped]).await.unwrap();
    assert_eq!(report.ended, 1, "{report:?}");
    let ended = env
        .adapters
        .repository
        .get_session(&session.id)
        .await
        .unwrap();
    assert_eq!(ended.state, SessionState::Stopped);
    assert_eq!(ended.stop_reason, Some(StopReason::TaskExited));
    assert_eq!(
        env.calls.count("ECS.DescribeTasks"),
        0,
        "events cost no describe"
    );
}
