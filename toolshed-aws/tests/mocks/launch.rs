//! The launch-path budget, counted across a full core `launch_session` through the AWS adapters:
//! at most 3 sequential round trips and 0 RegisterTaskDefinition on a repeated launch.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::run_task::{RunTaskInput, RunTaskOutput};
use aws_sdk_ecs::types::Task;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use toolshed_aws::{CallCounter, DynamoServerRepository, DynamoTables, EcsTaskRunner};
use toolshed_core::domain::{CommitSha, ImageRef, ImageTag, ServerId, SessionState, VerifiedImage};
use toolshed_core::ports::Clock;
use toolshed_core::services::{LaunchRequest, Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::conformance::sample_server;
use toolshed_core::testing::ManualClock;

use crate::Captured;

#[tokio::test]
async fn a_repeated_launch_takes_three_round_trips_and_no_registration() {
    let clock = Arc::new(ManualClock::fixed());
    let id = ServerId::new("time").unwrap();
    let mut server = sample_server(&id, clock.now());
    let commit = CommitSha::new("a".repeat(40)).unwrap();
    server.image = Some(VerifiedImage {
        image: ImageRef::new(
            crate::REPO,
            ImageTag::for_build(&id, &commit),
            crate::digest(),
        )
        .unwrap(),
        commit,
        verified_at: clock.now(),
    });
    server.version = 2;
    let server_item = HashMap::from([
        ("server_id".to_owned(), AttributeValue::S("time".into())),
        (
            "record".to_owned(),
            AttributeValue::S(serde_json::to_string(&server).unwrap()),
        ),
        ("version".to_owned(), AttributeValue::N("2".into())),
    ]);

    let get_server = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|r| r.table_name() == Some("servers"))
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(server_item.clone()))
                .build()
        });
    let get_session = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|r| r.table_name() == Some("sessions"))
        .then_output(|| GetItemOutput::builder().build());
    let counts = mock!(aws_sdk_dynamodb::Client::batch_get_item)
        .then_output(|| BatchGetItemOutput::builder().build());
    let insert = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let calls = CallCounter::new();
    let c = calls.clone();
    let dynamo = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&get_server, &get_session, &counts, &insert],
        move |b| b.interceptor(c.clone()).http_client(crate::slow_http())
    );

    let seen = Captured::<RunTaskInput>::default();
    let s = seen.clone();
    let run = mock!(aws_sdk_ecs::Client::run_task)
        .match_requests(move |r| s.put(r))
        .then_compute_output(|req| {
            RunTaskOutput::builder()
                .tasks(
                    Task::builder()
                        .task_arn(format!(
                            "arn:aws:ecs:eu-west-1:1:task/playground/{}",
                            req.client_token().unwrap_or("x")
                        ))
                        .build(),
                )
                .build()
        });
    let register = mock!(aws_sdk_ecs::Client::register_task_definition)
        .then_output(|| RegisterTaskDefinitionOutput::builder().build());
    let c = calls.clone();
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&run, &register],
        move |b| b.interceptor(c.clone()).http_client(crate::slow_http())
    );

    // The AWS adapters on the launch path; every other port on its in-memory double.
    let mut ports = Ports::in_memory(clock.clone()).ports();
    ports.repository = Arc::new(DynamoServerRepository::new(
        dynamo,
        DynamoTables {
            servers: "servers".into(),
            sessions: "sessions".into(),
        },
    ));
    ports.runner = Arc::new(EcsTaskRunner::new(ecs, crate::ecs_settings()));
    let toolshed = Toolshed::new(ports, ToolshedConfig::default()).unwrap();

    for round in 0..2 {
        calls.reset();
        let session = toolshed
            .launch_session(&id, LaunchRequest::default())
            .await
            .unwrap();
        assert_eq!(session.state, SessionState::Starting);
        assert_eq!(
            session.image.pinned(),
            format!("{}@{}", crate::REPO, crate::digest())
        );
        let counts = calls.counts();
        assert_eq!(
            calls.sequential_round_trips(),
            3,
            "launch {round}: {:?}",
            calls.calls()
        );
        assert_eq!(
            counts.get("ECS.RegisterTaskDefinition"),
            None,
            "launch {round}: {counts:?}"
        );
        assert_eq!(counts.get("ECS.RunTask"), Some(&1));
        assert_eq!(counts.get("DynamoDB.TransactWriteItems"), Some(&1));
        assert_eq!(calls.total(), 5, "{counts:?}");
        assert_eq!(
            seen.get().client_token(),
            Some(session.id.as_str()),
            "clientToken = session id"
        );
    }
    assert_eq!(register.num_calls(), 0);
}
