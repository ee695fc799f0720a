use std::collections::HashMap;

use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsInput,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemInput};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, TransactionCanceledException,
};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use toolshed_aws::{DynamoServerRepository, DynamoTables};
use toolshed_core::domain::{
    CommitSha, RunProgress, Server, ServerId, SessionCaps, VerificationLease, VerificationRun,
};
use toolshed_core::error::{CapScope, EntityKind};
use toolshed_core::ports::ServerRepository;
use toolshed_core::testing::conformance::{sample_server, sample_session};
use toolshed_core::Error;

use crate::{fast_retries, Captured};

fn repo(client: Client) -> DynamoServerRepository {
    DynamoServerRepository::new(
        client,
        DynamoTables {
            servers: "servers".into(),
            sessions: "sessions".into(),
        },
    )
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap()
}

fn server() -> Server {
    let mut s = sample_server(&ServerId::new("time").unwrap(), now());
    s.version = 3;
    s
}

fn ccf(item: Option<HashMap<String, AttributeValue>>) -> ConditionalCheckFailedException {
    ConditionalCheckFailedException::builder()
        .message("The conditional request failed")
        .set_item(item)
        .build()
}

fn lease() -> VerificationLease {
    VerificationLease {
        server_id: ServerId::new("time").unwrap(),
        holder: "me".into(),
        token: 7,
        acquired_at: now(),
        expires_at: now() + chrono::Duration::seconds(60),
        run: VerificationRun {
            run_id: "r1".into(),
            commit: CommitSha::new("a".repeat(40)).unwrap(),
            forced: false,
            started_at: now(),
            progress: RunProgress::Building { build: None },
            timings: None,
        },
    }
}

#[tokio::test]
async fn version_mismatch_is_conflict_and_asks_for_the_old_item() {
    let seen = Captured::<UpdateItemInput>::default();
    let s = seen.clone();
    let old = HashMap::from([
        ("server_id".to_owned(), AttributeValue::S("time".into())),
        ("version".to_owned(), AttributeValue::N("4".into())),
    ]);
    let update = mock!(Client::update_item)
        .match_requests(move |r| s.put(r))
        .then_error(move || {
            UpdateItemError::ConditionalCheckFailedException(ccf(Some(old.clone())))
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update]);
    let err = repo(client).update_server(&server()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: EntityKind::Server,
                expected: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let req = seen.get();
    assert_eq!(
        req.return_values_on_condition_check_failure()
            .map(|r| r.as_str()),
        Some("ALL_OLD")
    );
    assert_eq!(
        req.expression_attribute_values().unwrap()[":v"],
        AttributeValue::N("3".into())
    );
    assert_eq!(
        req.expression_attribute_values().unwrap()[":nv"],
        AttributeValue::N("4".into())
    );

    // No old item: the server does not exist.
    let update = mock!(Client::update_item)
        .then_error(|| UpdateItemError::ConditionalCheckFailedException(ccf(None)));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update]);
    let err = repo(client).update_server(&server()).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn a_live_lease_is_verification_in_progress_naming_the_holder() {
    let expires = now() + chrono::Duration::seconds(30);
    let old = HashMap::from([
        ("server_id".to_owned(), AttributeValue::S("time".into())),
        (
            "lease_holder".to_owned(),
            AttributeValue::S("worker-b".into()),
        ),
        (
            "lease_expires_at".to_owned(),
            AttributeValue::N(expires.timestamp_millis().to_string()),
        ),
    ]);
    let update = mock!(Client::update_item)
        .match_requests(|r| r.return_values_on_condition_check_failure().is_some())
        .then_error(move || {
            UpdateItemError::ConditionalCheckFailedException(ccf(Some(old.clone())))
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update]);
    let err = repo(client)
        .acquire_lease(
            &ServerId::new("time").unwrap(),
            "me",
            Some(lease().run),
            now(),
            now() + chrono::Duration::seconds(60),
        )
        .await
        .unwrap_err();
    match err {
        Error::VerificationInProgress {
            holder, expires_at, ..
        } => {
            assert_eq!(holder, "worker-b");
            assert_eq!(expires_at, expires);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stale_token_is_lease_lost() {
    let update = mock!(Client::update_item)
        .then_error(|| UpdateItemError::ConditionalCheckFailedException(ccf(None)));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update]);
    let err = repo(client).save_progress(&lease()).await.unwrap_err();
    assert!(matches!(err, Error::LeaseLost { token: 7, .. }), "{err:?}");

    // complete_verification: the stored token moved on → LeaseLost without writing.
    let mut item = HashMap::from([
        ("server_id".to_owned(), AttributeValue::S("time".into())),
        (
            "record".to_owned(),
            AttributeValue::S(serde_json::to_string(&server()).unwrap()),
        ),
        ("version".to_owned(), AttributeValue::N("3".into())),
        ("lease_holder".to_owned(), AttributeValue::S("other".into())),
        ("lease_token".to_owned(), AttributeValue::N("8".into())),
    ]);
    item.insert("lease_seq".into(), AttributeValue::N("8".into()));
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item.clone()))
            .build()
    });
    let update =
        mock!(Client::update_item).then_output(|| unreachable!("a stale lease writes nothing"));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &update]);
    let failure = toolshed_core::domain::VerificationFailure {
        step: toolshed_core::domain::VerificationStep::Build,
        reason: "x".into(),
        commit: None,
        log_url: None,
        at: now(),
        retryable: false,
    };
    let err = repo(client)
        .fail_verification(&lease(), &failure)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err:?}");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn duplicate_insert_is_already_exists() {
    let put = mock!(Client::put_item)
        .then_error(|| PutItemError::ConditionalCheckFailedException(ccf(None)));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
    let err = repo(client).insert_server(&server()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::AlreadyExists {
                kind: EntityKind::Server,
                ..
            }
        ),
        "{err:?}"
    );
}

fn cancelled(codes: [&'static str; 3]) -> TransactWriteItemsError {
    let mut b = TransactionCanceledException::builder().message("Transaction cancelled");
    for c in codes {
        b = b.cancellation_reasons(CancellationReason::builder().code(c).build());
    }
    TransactWriteItemsError::TransactionCanceledException(b.build())
}

#[tokio::test]
async fn caps_are_enforced_in_the_insert_transaction() {
    let seen = Captured::<TransactWriteItemsInput>::default();
    let s = seen.clone();
    let tx = mock!(Client::transact_write_items)
        .match_requests(move |r| s.put(r))
        .then_error(|| cancelled(["None", "ConditionalCheckFailed", "None"]));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&tx]);
    let session = sample_session(
        &ServerId::new("time").unwrap(),
        "one",
        now(),
        now() + chrono::Duration::seconds(60),
    );
    let caps = SessionCaps {
        per_server: 2,
        total: 10,
    };
    let err = repo(client)
        .create_session(&session, caps)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CapReached {
                scope: CapScope::PerServer,
                limit: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let req = seen.get();
    let items = req.transact_items();
    assert_eq!(
        items.len(),
        3,
        "session put + two counters in one transaction"
    );
    let put = items[0].put().unwrap();
    assert_eq!(put.condition_expression(), Some("attribute_not_exists(#k)"));
    assert_eq!(put.item()["live"], AttributeValue::S("1".into()));
    assert_eq!(
        put.item()["live_created_at"],
        AttributeValue::N(session.created_at.timestamp_millis().to_string())
    );
    assert!(
        !put.item().contains_key("ttl"),
        "a live session carries no ttl (TTL would delete it without freeing its cap slot)"
    );
    let per_server = items[1].update().unwrap();
    assert_eq!(
        per_server.key()["session_id"],
        AttributeValue::S("#live#time".into())
    );
    assert_eq!(
        per_server.expression_attribute_values().unwrap()[":cap"],
        AttributeValue::N("2".into())
    );
    assert_eq!(
        items[2].update().unwrap().key()["session_id"],
        AttributeValue::S("#live#total".into())
    );

    let tx = mock!(Client::transact_write_items)
        .then_error(|| cancelled(["None", "None", "ConditionalCheckFailed"]));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&tx]);
    let err = repo(client)
        .create_session(&session, caps)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CapReached {
                scope: CapScope::Total,
                limit: 10,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn throttled_writes_are_retried() {
    let put = mock!(Client::put_item)
        .sequence()
        .error(|| {
            PutItemError::generic(
                ErrorMetadata::builder()
                    .code("ProvisionedThroughputExceededException")
                    .build(),
            )
        })
        .output(|| PutItemOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&put], |c| c
        .retry_config(fast_retries()));
    let stored = repo(client).insert_server(&server()).await.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(put.num_calls(), 2);
}

#[tokio::test]
async fn access_denied_is_permission_denied() {
    let get = mock!(Client::get_item).then_error(|| {
        aws_sdk_dynamodb::operation::get_item::GetItemError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("no dynamodb:GetItem")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get]);
    let err = repo(client)
        .get_server(&ServerId::new("time").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::PermissionDenied {
                backend: "dynamodb",
                ..
            }
        ),
        "{err:?}"
    );
}
