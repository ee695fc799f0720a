//! The Secrets Manager store's error mapping: typed, retryable or not, and never carrying a
//! value or AWS's message (which names ARNs and principals).

use aws_sdk_secretsmanager::error::ErrorMetadata;
use aws_sdk_secretsmanager::operation::create_secret::{CreateSecretError, CreateSecretOutput};
use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError;
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput;
use aws_sdk_secretsmanager::types::error::{
    InvalidRequestException, ResourceExistsException, ResourceNotFoundException,
};
use aws_sdk_secretsmanager::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use toolshed_aws::SecretsManagerStore;
use toolshed_core::domain::{InstanceEnv, ServerId};
use toolshed_core::ports::{SecretOwner, SecretStore};
use toolshed_core::Error;

const SECRET_ARN: &str =
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:toolshed/servers/time/test-values-AbCdEf";

fn owner() -> SecretOwner {
    SecretOwner::ServerTestValues(ServerId::new("time").unwrap())
}

fn values() -> InstanceEnv {
    InstanceEnv::from_exposed([("API_TOKEN", "sekret-MOCKED")]).unwrap()
}

fn shown(err: &Error) -> String {
    format!("{err} | {err:?}")
}

#[tokio::test]
async fn access_denied_is_permission_denied_without_arns() {
    let get = mock!(Client::get_secret_value).then_error(|| {
        GetSecretValueError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message(format!(
                    "User: arn:aws:sts::123456789012:assumed-role/svc/i-1 is not authorized to \
                     perform: secretsmanager:GetSecretValue on resource: {SECRET_ARN}"
                ))
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&get]);
    let err = SecretsManagerStore::new(client, "toolshed")
        .get(&owner())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    assert!(!shown(&err).contains("arn:"), "{}", shown(&err));
    assert!(shown(&err).contains("servers/time/test-values"));
}

#[tokio::test]
async fn throttling_and_service_errors_are_retryable_others_are_not() {
    for (code, retryable) in [
        ("ThrottlingException", true),
        ("InternalServiceError", true),
        ("LimitExceededException", true),
        ("InvalidParameterException", false),
        ("EncryptionFailure", false),
    ] {
        let create = mock!(Client::create_secret).then_error(move || {
            CreateSecretError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message(format!("failed on {SECRET_ARN}"))
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&create]);
        let err = SecretsManagerStore::new(client, "toolshed")
            .put(&owner(), &values())
            .await
            .unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{code}: {err:?}");
        assert!(matches!(err, Error::Backend { .. }), "{code}: {err:?}");
        let text = shown(&err);
        assert!(!text.contains("sekret-MOCKED"), "{code}: {text}");
        assert!(!text.contains("arn:"), "{code}: {text}");
        assert!(text.contains(code), "the code is named: {text}");
    }
}

#[tokio::test]
async fn an_existing_secret_gets_a_new_value_and_create_carries_the_json_and_tags() {
    let create = mock!(Client::create_secret)
        .match_requests(|r| {
            r.name() == Some("pfx/servers/time/test-values")
                && r.secret_string() == Some(r#"{"API_TOKEN":"sekret-MOCKED"}"#)
                && r.tags()
                    .iter()
                    .any(|t| t.key() == Some("toolshed.deployment") && t.value() == Some("d1"))
        })
        .then_error(|| {
            CreateSecretError::ResourceExistsException(ResourceExistsException::builder().build())
        });
    let put = mock!(Client::put_secret_value)
        .match_requests(|r| {
            r.secret_id() == Some("pfx/servers/time/test-values")
                && r.secret_string() == Some(r#"{"API_TOKEN":"sekret-MOCKED"}"#)
        })
        .then_output(|| PutSecretValueOutput::builder().arn(SECRET_ARN).build());
    let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&create, &put]);
    SecretsManagerStore::new(client, "pfx")
        .with_tags([("toolshed.deployment".to_owned(), "d1".to_owned())])
        .put(&owner(), &values())
        .await
        .unwrap();
    assert_eq!(create.num_calls(), 1);
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn missing_or_deleted_secrets_read_as_none_and_delete_as_done() {
    let get = mock!(Client::get_secret_value).then_error(|| {
        GetSecretValueError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
    });
    let get_deleted = mock!(Client::get_secret_value).then_error(|| {
        GetSecretValueError::InvalidRequestException(
            InvalidRequestException::builder()
                .message("You can't perform this operation on the secret because it was marked for deletion.")
                .build(),
        )
    });
    let delete = mock!(Client::delete_secret)
        .match_requests(|r| r.force_delete_without_recovery() == Some(true))
        .then_error(|| {
            DeleteSecretError::ResourceNotFoundException(
                ResourceNotFoundException::builder().build(),
            )
        });
    let client = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::Sequential,
        [&get, &get_deleted, &delete]
    );
    let store = SecretsManagerStore::new(client, "toolshed");
    assert_eq!(store.get(&owner()).await.unwrap(), None);
    assert_eq!(store.get(&owner()).await.unwrap(), None);
    store.delete(&owner()).await.unwrap();
}

#[tokio::test]
async fn binary_or_malformed_values_are_typed_errors_without_the_text() {
    let binary = mock!(Client::get_secret_value).then_output(|| {
        GetSecretValueOutput::builder()
            .secret_binary(aws_smithy_types::Blob::new(b"sekret-MOCKED".to_vec()))
            .build()
    });
    let junk = mock!(Client::get_secret_value).then_output(|| {
        GetSecretValueOutput::builder()
            .secret_string("sekret-MOCKED, not JSON")
            .build()
    });
    let ok = mock!(Client::get_secret_value).then_output(|| {
        GetSecretValueOutput::builder()
            .secret_string(r#"{"API_TOKEN":"sekret-MOCKED"}"#)
            .build()
    });
    let created = mock!(Client::create_secret)
        .then_output(|| CreateSecretOutput::builder().arn(SECRET_ARN).build());
    let client = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::Sequential,
        [&binary, &junk, &ok, &created]
    );
    let store = SecretsManagerStore::new(client, "toolshed");
    for _ in 0..2 {
        let err = store.get(&owner()).await.unwrap_err();
        assert!(!err.is_retryable(), "{err:?}");
        assert!(!shown(&err).contains("sekret-MOCKED"), "{}", shown(&err));
    }
    assert_eq!(store.get(&owner()).await.unwrap(), Some(values()));
    store.put(&owner(), &values()).await.unwrap();
}
