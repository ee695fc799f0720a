use aws_sdk_ecs::error::ErrorMetadata;
use aws_sdk_ecs::operation::describe_task_definition::{
    DescribeTaskDefinitionError, DescribeTaskDefinitionOutput,
};
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::register_task_definition::{
    RegisterTaskDefinitionInput, RegisterTaskDefinitionOutput,
};
use aws_sdk_ecs::operation::run_task::{RunTaskError, RunTaskInput, RunTaskOutput};
use aws_sdk_ecs::operation::stop_task::{StopTaskError, StopTaskOutput};
use aws_sdk_ecs::types::error::{
    AccessDeniedException, ClientException, InvalidParameterException,
};
use aws_sdk_ecs::types::{Attachment, Container, Failure, KeyValuePair, Tag, Task};
use aws_sdk_ecs::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use toolshed_aws::EcsTaskRunner;
use toolshed_core::domain::TaskHandle;
use toolshed_core::ports::{TaskRunner, TaskState};
use toolshed_core::Error;

use crate::{ecs_settings, fast_retries, spec, Captured};

const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task/playground/abc";

fn run_ok() -> RunTaskOutput {
    RunTaskOutput::builder()
        .tasks(Task::builder().task_arn(ARN).build())
        .build()
}

#[tokio::test]
async fn register_pins_the_digest_and_sets_everything_from_settings() {
    let seen = Captured::<RegisterTaskDefinitionInput>::default();
    let s = seen.clone();
    let missing = mock!(Client::describe_task_definition).then_error(|| {
        DescribeTaskDefinitionError::ClientException(
            ClientException::builder()
                .message("Unable to describe task definition.")
                .build(),
        )
    });
    let register = mock!(Client::register_task_definition)
        .match_requests(move |r| s.put(r))
        .then_output(|| RegisterTaskDefinitionOutput::builder().build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&missing, &register]);
    let runner = EcsTaskRunner::new(client, ecs_settings());
    runner.prepare(&spec()).await.unwrap();
    assert_eq!(register.num_calls(), 1);

    let req = seen.get();
    assert_eq!(
        req.family(),
        Some(format!("toolshed-time-{}", &crate::digest().hex()[..12]).as_str())
    );
    assert_eq!(req.cpu(), Some("256"));
    assert_eq!(req.memory(), Some("512"));
    assert_eq!(req.network_mode().map(|m| m.as_str()), Some("awsvpc"));
    assert_eq!(
        req.requires_compatibilities()
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        ["FARGATE"]
    );
    assert_eq!(
        req.execution_role_arn(),
        Some("arn:aws:iam::123456789012:role/exec")
    );
    // The settings have a task role, but the server did not ask for one.
    assert_eq!(req.task_role_arn(), None);
    let c = &req.container_definitions()[0];
    assert_eq!(c.name(), Some("mcp"));
    assert_eq!(
        c.image(),
        Some(format!("{}@{}", crate::REPO, crate::digest()).as_str())
    );
    assert_eq!(c.port_mappings()[0].container_port(), Some(8000));
    assert_eq!(c.memory(), Some(512));
    let opts = c.log_configuration().unwrap().options().unwrap();
    assert_eq!(opts["awslogs-stream-prefix"], "time");
    assert_eq!(opts["awslogs-region"], "eu-west-1");
}

#[tokio::test]
async fn prepare_skips_an_active_definition_with_the_same_image() {
    let existing = mock!(Client::describe_task_definition).then_output(|| {
        DescribeTaskDefinitionOutput::builder()
            .task_definition(
                aws_sdk_ecs::types::TaskDefinition::builder()
                    .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
                    .container_definitions(
                        aws_sdk_ecs::types::ContainerDefinition::builder()
                            .image(format!("{}@{}", crate::REPO, crate::digest()))
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let register = mock!(Client::register_task_definition)
        .then_output(|| RegisterTaskDefinitionOutput::builder().build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&existing, &register]);
    EcsTaskRunner::new(client, ecs_settings())
        .prepare(&spec())
        .await
        .unwrap();
    assert_eq!(register.num_calls(), 0);
}

#[tokio::test]
async fn run_task_request_shape() {
    let seen = Captured::<RunTaskInput>::default();
    let s = seen.clone();
    let run = mock!(Client::run_task)
        .match_requests(move |r| s.put(r))
        .then_output(run_ok);
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run]);
    let runner = EcsTaskRunner::new(client, ecs_settings());
    let handle = runner.start(&spec()).await.unwrap();
    assert_eq!(handle.as_str(), ARN);
    let req = seen.get();
    assert_eq!(req.cluster(), Some("playground"));
    assert_eq!(
        req.task_definition(),
        Some(runner.family(&spec()).as_str()),
        "family name: latest ACTIVE revision"
    );
    assert_eq!(req.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    assert_eq!(
        req.started_by(),
        Some(crate::DEPLOYMENT),
        "startedBy is the deployment id, which ListTasks filters on"
    );
    assert_eq!(req.client_token(), Some("s-0123456789abcdef"));
    assert!(req.overrides().is_none(), "the image is never overridden");
    let vpc = req
        .network_configuration()
        .unwrap()
        .awsvpc_configuration()
        .unwrap();
    assert_eq!(vpc.subnets(), ["subnet-a", "subnet-b"]);
    assert_eq!(vpc.security_groups(), ["sg-1"]);
    assert_eq!(vpc.assign_public_ip().map(|a| a.as_str()), Some("DISABLED"));
    let tags: Vec<(String, String)> = req
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    for pair in spec().labels.to_pairs() {
        assert!(tags.contains(&pair), "missing tag {pair:?} in {tags:?}");
    }
    assert!(
        tags.contains(&(
            "toolshed.deployment".to_owned(),
            crate::DEPLOYMENT.to_owned()
        )),
        "{tags:?}"
    );
}

#[tokio::test]
async fn public_ip_follows_the_settings() {
    let seen = Captured::<RunTaskInput>::default();
    let s = seen.clone();
    let run = mock!(Client::run_task)
        .match_requests(move |r| s.put(r))
        .then_output(run_ok);
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run]);
    let mut settings = ecs_settings();
    settings.assign_public_ip = true;
    EcsTaskRunner::new(client, settings)
        .start(&spec())
        .await
        .unwrap();
    let req = seen.get();
    let vpc = req
        .network_configuration()
        .unwrap()
        .awsvpc_configuration()
        .unwrap();
    assert_eq!(vpc.assign_public_ip().map(|a| a.as_str()), Some("ENABLED"));
}

#[tokio::test]
async fn throttling_is_retried() {
    let run = mock!(Client::run_task)
        .sequence()
        .error(|| {
            RunTaskError::generic(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .times(2)
        .output(run_ok)
        .build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&run], |c| c
        .retry_config(fast_retries()));
    let handle = EcsTaskRunner::new(client, ecs_settings())
        .start(&spec())
        .await
        .unwrap();
    assert_eq!(handle.as_str(), ARN);
    assert_eq!(run.num_calls(), 3);
}

#[tokio::test]
async fn throttling_past_the_retries_is_a_retryable_backend_error() {
    let run = mock!(Client::run_task).then_error(|| {
        RunTaskError::generic(ErrorMetadata::builder().code("ThrottlingException").build())
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run], |c| c
        .retry_config(fast_retries()));
    let err = EcsTaskRunner::new(client, ecs_settings())
        .start(&spec())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                retryable: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(run.num_calls(), 3);
}

#[tokio::test]
async fn run_task_failures_are_typed() {
    for (reason, retryable) in [
        ("RESOURCE:MEMORY", true),
        ("Capacity is unavailable at this time", true),
        ("AGENT", true),
        ("UNKNOWN_THING", false),
    ] {
        let run = mock!(Client::run_task).then_output(move || {
            RunTaskOutput::builder()
                .failures(
                    Failure::builder()
                        .arn("arn:x")
                        .reason(reason)
                        .detail("d")
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run]);
        let err = EcsTaskRunner::new(client, ecs_settings())
            .start(&spec())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(reason), "{err}");
        match err {
            Error::Backend {
                retryable: r,
                operation: "RunTask",
                ..
            } => assert_eq!(r, retryable, "{reason}"),
            other => panic!("{reason}: {other:?}"),
        }
    }
    let run = mock!(Client::run_task).then_output(|| {
        RunTaskOutput::builder()
            .failures(Failure::builder().reason("MISSING").build())
            .build()
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run]);
    let err = EcsTaskRunner::new(client, ecs_settings())
        .start(&spec())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

#[tokio::test]
async fn access_denied_is_permission_denied() {
    let run = mock!(Client::run_task).then_error(|| {
        RunTaskError::AccessDeniedException(
            AccessDeniedException::builder()
                .message("not allowed to ecs:RunTask")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run]);
    let err = EcsTaskRunner::new(client, ecs_settings())
        .start(&spec())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::PermissionDenied { backend: "ecs", .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn missing_family_at_launch_registers_then_retries_once() {
    let run = mock!(Client::run_task)
        .sequence()
        .error(|| {
            RunTaskError::ClientException(
                ClientException::builder()
                    .message("TaskDefinition not found.")
                    .build(),
            )
        })
        .output(run_ok)
        .build();
    let register = mock!(Client::register_task_definition)
        .then_output(|| RegisterTaskDefinitionOutput::builder().build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run, &register]);
    EcsTaskRunner::new(client, ecs_settings())
        .start(&spec())
        .await
        .unwrap();
    assert_eq!((run.num_calls(), register.num_calls()), (2, 1));
}

#[tokio::test]
async fn invalid_parameters_are_invalid_input() {
    let run = mock!(Client::run_task).then_error(|| {
        RunTaskError::InvalidParameterException(
            InvalidParameterException::builder()
                .message("subnet-a does not exist")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run]);
    let err = EcsTaskRunner::new(client, ecs_settings())
        .start(&spec())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

/// The tag marking a task as this deployment's.
fn ours() -> Tag {
    Tag::builder()
        .key("toolshed.deployment")
        .value(crate::DEPLOYMENT)
        .build()
}

fn task(last: &str, desired: &str) -> Task {
    Task::builder()
        .task_arn(ARN)
        .last_status(last)
        .desired_status(desired)
        .attachments(
            Attachment::builder()
                .r#type("ElasticNetworkInterface")
                .details(
                    KeyValuePair::builder()
                        .name("privateIPv4Address")
                        .value("10.0.1.17")
                        .build(),
                )
                .build(),
        )
        .tags(Tag::builder().key("toolshed.port").value("8080").build())
        .tags(ours())
        .containers(Container::builder().name("mcp").exit_code(3).build())
        .stopped_reason("Essential container in task exited")
        .build()
}

#[tokio::test]
async fn describe_maps_states_and_endpoint() {
    let cases = [
        ("PROVISIONING", "RUNNING", TaskState::Pending),
        ("PENDING", "RUNNING", TaskState::Pending),
        ("RUNNING", "RUNNING", TaskState::Running),
        (
            "RUNNING",
            "STOPPED",
            TaskState::Stopped {
                reason: Some("Essential container in task exited".into()),
                exit_code: Some(3),
            },
        ),
        (
            "STOPPED",
            "STOPPED",
            TaskState::Stopped {
                reason: Some("Essential container in task exited".into()),
                exit_code: Some(3),
            },
        ),
    ];
    for (last, desired, want) in cases {
        let d = mock!(Client::describe_tasks).then_output(move || {
            DescribeTasksOutput::builder()
                .tasks(task(last, desired))
                .build()
        });
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&d]);
        let status = EcsTaskRunner::new(client, ecs_settings())
            .describe(&TaskHandle::new(ARN).unwrap())
            .await
            .unwrap();
        assert_eq!(status.state, want, "{last}/{desired}");
        if want == TaskState::Running {
            assert_eq!(status.endpoint.unwrap().url(), "http://10.0.1.17:8080/mcp");
        } else {
            assert_eq!(status.endpoint, None);
        }
    }
    let d = mock!(Client::describe_tasks).then_output(|| {
        DescribeTasksOutput::builder()
            .failures(Failure::builder().arn(ARN).reason("MISSING").build())
            .build()
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&d]);
    let status = EcsTaskRunner::new(client, ecs_settings())
        .describe(&TaskHandle::new(ARN).unwrap())
        .await
        .unwrap();
    assert_eq!(status.state, TaskState::Missing);
}

#[tokio::test]
async fn stopping_an_unknown_task_succeeds() {
    let stop = mock!(Client::stop_task).then_error(|| {
        StopTaskError::InvalidParameterException(
            InvalidParameterException::builder()
                .message("The referenced task was not found.")
                .build(),
        )
    });
    let d = mock!(Client::describe_tasks).then_output(|| {
        DescribeTasksOutput::builder()
            .tasks(task("RUNNING", "RUNNING"))
            .build()
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&stop, &d]);
    EcsTaskRunner::new(client, ecs_settings())
        .stop(&TaskHandle::new(ARN).unwrap(), "x")
        .await
        .unwrap();

    let stop = mock!(Client::stop_task)
        .match_requests(|r| {
            r.reason().is_some_and(|s| s.len() <= 255) && r.cluster() == Some("playground")
        })
        .then_output(|| StopTaskOutput::builder().build());
    let d = mock!(Client::describe_tasks).then_output(|| {
        DescribeTasksOutput::builder()
            .tasks(task("RUNNING", "RUNNING"))
            .build()
    });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&stop, &d]);
    EcsTaskRunner::new(client, ecs_settings())
        .stop(&TaskHandle::new(ARN).unwrap(), &"why ".repeat(100))
        .await
        .unwrap();
    assert_eq!(stop.num_calls(), 1);
}

#[tokio::test]
async fn another_deployments_task_is_missing_and_never_stopped() {
    let foreign = || {
        let mut t = task("RUNNING", "RUNNING");
        t.tags = Some(vec![
            Tag::builder().key("toolshed.port").value("8080").build(),
            Tag::builder()
                .key("toolshed.deployment")
                .value("production")
                .build(),
        ]);
        t
    };
    let stop = mock!(Client::stop_task).then_output(|| StopTaskOutput::builder().build());
    let d = mock!(Client::describe_tasks)
        .then_output(move || DescribeTasksOutput::builder().tasks(foreign()).build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&stop, &d]);
    let runner = EcsTaskRunner::new(client, ecs_settings());
    let handle = TaskHandle::new(ARN).unwrap();
    assert_eq!(
        runner.describe(&handle).await.unwrap().state,
        TaskState::Missing
    );
    runner.stop(&handle, "x").await.unwrap();
    assert_eq!(
        stop.num_calls(),
        0,
        "another deployment's task is never stopped"
    );
}

#[tokio::test]
async fn list_managed_pages_and_keeps_only_our_tasks() {
    let arns: Vec<String> = (0..150)
        .map(|i| format!("arn:aws:ecs:eu-west-1:1:task/playground/{i:04}"))
        .collect();
    let first: Vec<String> = arns[..100].to_vec();
    let list = mock!(Client::list_tasks)
        .match_requests(|r| {
            r.started_by() == Some(crate::DEPLOYMENT)
                && r.next_token().is_none()
                && r.desired_status().map(|d| d.as_str()) == Some("RUNNING")
        })
        .then_output(move || {
            ListTasksOutput::builder()
                .set_task_arns(Some(first.clone()))
                .next_token("page-2")
                .build()
        });
    let describe = mock!(Client::describe_tasks)
        .match_requests(|r| {
            r.tasks().len() <= 100 && r.include().iter().any(|f| f.as_str() == "TAGS")
        })
        .then_compute_output(|req| {
            let tasks = req.tasks().iter().enumerate().map(|(i, arn)| {
                let mut b = Task::builder()
                    .task_arn(arn)
                    .last_status("RUNNING")
                    .desired_status("RUNNING");
                // Every third task is not ours (no managed tag); every fifth carries our labels
                // but another deployment's id.
                if i % 3 != 0 {
                    for (k, v) in crate::spec().labels.to_pairs() {
                        b = b.tags(Tag::builder().key(k).value(v).build());
                    }
                    b = b.tags(if i % 5 == 0 {
                        Tag::builder()
                            .key("toolshed.deployment")
                            .value("production")
                            .build()
                    } else {
                        ours()
                    });
                }
                b.build()
            });
            DescribeTasksOutput::builder()
                .set_tasks(Some(tasks.collect()))
                .build()
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe]);
    let page = EcsTaskRunner::new(client, ecs_settings())
        .list_managed(None, 500)
        .await
        .unwrap();
    assert_eq!(page.next.as_deref(), Some("page-2"));
    let want = (0..100).filter(|i| i % 3 != 0 && i % 5 != 0).count();
    assert_eq!(
        page.tasks.len(),
        want,
        "100 listed, every third unmanaged and every fifth another deployment's"
    );
    assert_eq!(describe.num_calls(), 1);
    assert!(page.tasks.iter().all(|t| t.labels == crate::spec().labels));
}

/// RunTask as ECS answers it: a repeated `clientToken` returns the task the first call started
/// (moto ignores the token, so this behaviour is played here).
fn idempotent_run_task() -> (
    aws_smithy_mocks::Rule,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let started = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = started.clone();
    let by_token = std::sync::Mutex::new(std::collections::HashMap::<String, String>::new());
    let rule = mock!(Client::run_task).then_compute_output(move |req| {
        let mut tokens = by_token.lock().unwrap();
        let arn = match req.client_token() {
            Some(token) => {
                let n = tokens.len();
                tokens
                    .entry(token.to_owned())
                    .or_insert_with(|| {
                        let arn =
                            format!("arn:aws:ecs:eu-west-1:123456789012:task/playground/t{n}");
                        seen.lock().unwrap().push(arn.clone());
                        arn
                    })
                    .clone()
            }
            None => {
                let mut s = seen.lock().unwrap();
                let arn = format!(
                    "arn:aws:ecs:eu-west-1:123456789012:task/playground/u{}",
                    s.len()
                );
                s.push(arn.clone());
                arn
            }
        };
        RunTaskOutput::builder()
            .tasks(
                Task::builder()
                    .task_arn(arn)
                    .last_status("PROVISIONING")
                    .build(),
            )
            .build()
    });
    (rule, started)
}

#[tokio::test]
async fn a_repeated_start_with_the_same_token_gets_the_first_task() {
    let (run, started) = idempotent_run_task();
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run]);
    let runner = EcsTaskRunner::new(client, ecs_settings());
    let first = runner.start(&spec()).await.unwrap();
    let again = runner.start(&spec()).await.unwrap();
    assert_eq!(first, again, "same token, same task");
    assert_eq!(run.num_calls(), 2, "both starts reached ECS");
    assert_eq!(started.lock().unwrap().len(), 1, "ECS started one task");
    let mut other = spec();
    other.idempotency_token = "s-another-session".to_owned();
    let second = runner.start(&other).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(started.lock().unwrap().len(), 2);
}
