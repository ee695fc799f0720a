//! [`SecretStore`] on AWS Secrets Manager: one secret per owner, named
//! `<prefix>/<owner path>` (`toolshed/servers/<id>/test-values`, `toolshed/instances/<id>`),
//! holding a JSON object of variable name → value.
//!
//! The helpers here (encoding an environment, create-or-replace, force-delete, error mapping) are
//! shared with the ECS runner's per-task secrets ([`crate::ecs`]).
//!
//! Errors name the owner path, the operation and the AWS error code, never a value, and never
//! AWS's own message (it can carry ARNs and principal names); the full error is logged at debug
//! level.

use async_trait::async_trait;
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use toolshed_core::domain::InstanceEnv;
use toolshed_core::ports::{SecretOwner, SecretStore};
use toolshed_core::{Error, Result};

use crate::error::{is_permission_code, is_retryable_code, AwsError};

/// Default name prefix of the secrets this crate writes.
pub const DEFAULT_SECRETS_PREFIX: &str = "toolshed";
/// Secrets Manager's limit on a secret's value, in bytes.
pub const MAX_SECRET_BYTES: usize = 65_536;
/// The service name in errors.
const SERVICE: &str = "secretsmanager";

/// Secret values by owner, in Secrets Manager.
///
/// `Debug` shows the prefix only.
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
    tags: Vec<(String, String)>,
}

impl SecretsManagerStore {
    /// A store writing secrets named `<prefix>/…` on `client`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            tags: Vec::new(),
        }
    }

    /// Tags every secret this store creates (e.g. the deployment's id), for cost reports and
    /// policies conditioned on tags.
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = (String, String)>) -> Self {
        self.tags.extend(tags);
        self
    }

    /// The secret name of `owner`: `<prefix>/<owner.path()>`.
    pub fn secret_name(&self, owner: &SecretOwner) -> String {
        format!("{}/{}", self.prefix, owner.path())
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn put(&self, owner: &SecretOwner, values: &InstanceEnv) -> Result<()> {
        let name = self.secret_name(owner);
        put_secret(&self.client, &name, &owner.path(), values, &self.tags).await?;
        Ok(())
    }

    async fn get(&self, owner: &SecretOwner) -> Result<Option<InstanceEnv>> {
        let name = self.secret_name(owner);
        let id = owner.path();
        let out = match self.client.get_secret_value().secret_id(&name).send().await {
            Ok(out) => out,
            Err(e) if get_found_nothing(&e) => return Ok(None),
            Err(e) => return Err(secrets_error("GetSecretValue", &id, e)),
        };
        let raw = out.secret_string().ok_or_else(|| {
            Error::backend(
                SERVICE,
                "GetSecretValue",
                Some(id.clone()),
                false,
                AwsError::unexpected("GetSecretValue", "the secret holds binary data"),
            )
        })?;
        decode_env(raw, &id).map(Some)
    }

    async fn delete(&self, owner: &SecretOwner) -> Result<()> {
        delete_secret(&self.client, &self.secret_name(owner), &owner.path()).await
    }
}

/// The JSON object `{"NAME": "value", …}` of an environment.
///
/// # Errors
/// `InvalidInput` (field `env`) above [`MAX_SECRET_BYTES`]; the message has no value.
pub(crate) fn encode_env(env: &InstanceEnv) -> Result<String> {
    let map: serde_json::Map<String, serde_json::Value> = env
        .exposed()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
        .collect();
    let json = serde_json::Value::Object(map).to_string();
    if json.len() > MAX_SECRET_BYTES {
        return Err(Error::invalid(
            "env",
            format!(
                "the variables take {} bytes as JSON; Secrets Manager keeps at most {MAX_SECRET_BYTES}",
                json.len()
            ),
        ));
    }
    Ok(json)
}

/// Parses what [`encode_env`] wrote. The stored text is untrusted: anything but an object of
/// valid names → strings is a typed error that names no value.
pub(crate) fn decode_env(raw: &str, id: &str) -> Result<InstanceEnv> {
    let bad = |detail: &str| {
        Error::backend(
            SERVICE,
            "GetSecretValue",
            Some(id.to_owned()),
            false,
            AwsError::unexpected("GetSecretValue", detail.to_owned()),
        )
    };
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|_| bad("the secret is not JSON"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(bad("the secret is not a JSON object"));
    };
    let mut pairs = Vec::with_capacity(map.len());
    for (k, v) in map {
        let serde_json::Value::String(v) = v else {
            return Err(bad(&format!("the value of {k:?} is not a string")));
        };
        pairs.push((k, v));
    }
    InstanceEnv::from_exposed(pairs)
        .map_err(|e| bad(&format!("the secret holds an invalid variable: {e}")))
}

/// Creates secret `name` holding `values`, or replaces the value of an existing one. Returns
/// the secret's ARN. `id` names it in errors.
pub(crate) async fn put_secret(
    client: &Client,
    name: &str,
    id: &str,
    values: &InstanceEnv,
    tags: &[(String, String)],
) -> Result<String> {
    let json = encode_env(values)?;
    let created = client
        .create_secret()
        .name(name)
        .secret_string(&json)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .send()
        .await;
    let arn = match created {
        Ok(out) => out.arn().map(str::to_owned),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateSecretError::ResourceExistsException(_))
            ) || code(&e) == Some("ResourceExistsException") =>
        {
            let out = client
                .put_secret_value()
                .secret_id(name)
                .secret_string(&json)
                .send()
                .await
                .map_err(|e| secrets_error("PutSecretValue", id, e))?;
            out.arn().map(str::to_owned)
        }
        Err(e) => return Err(secrets_error("CreateSecret", id, e)),
    };
    arn.ok_or_else(|| {
        Error::backend(
            SERVICE,
            "CreateSecret",
            Some(id.to_owned()),
            false,
            AwsError::unexpected("CreateSecret", "no ARN in the answer"),
        )
    })
}

/// Deletes secret `name` at once (no recovery window: a value of a stopped task or a deleted
/// owner has no use); a missing secret is not an error.
pub(crate) async fn delete_secret(client: &Client, name: &str, id: &str) -> Result<()> {
    match client
        .delete_secret()
        .secret_id(name)
        .force_delete_without_recovery(true)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if delete_found_nothing(&e) => Ok(()),
        Err(e) => Err(secrets_error("DeleteSecret", id, e)),
    }
}

fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

/// Whether a read found no secret: it does not exist, or is already scheduled for deletion
/// (AWS answers `InvalidRequestException` "marked for deletion" for those).
fn get_found_nothing<R>(err: &SdkError<GetSecretValueError, R>) -> bool {
    match err.as_service_error() {
        Some(GetSecretValueError::ResourceNotFoundException(_)) => true,
        Some(GetSecretValueError::InvalidRequestException(e)) => mentions_deletion(e.message()),
        _ => is_gone_by_code(err),
    }
}

/// Whether a deletion found nothing left to delete.
fn delete_found_nothing<R>(err: &SdkError<DeleteSecretError, R>) -> bool {
    match err.as_service_error() {
        Some(DeleteSecretError::ResourceNotFoundException(_)) => true,
        Some(DeleteSecretError::InvalidRequestException(e)) => mentions_deletion(e.message()),
        _ => is_gone_by_code(err),
    }
}

fn mentions_deletion(message: Option<&str>) -> bool {
    message.is_some_and(|m| m.to_ascii_lowercase().contains("deletion"))
}

/// The same by error code, for answers the SDK did not type.
fn is_gone_by_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    match (code(err), err) {
        (Some("ResourceNotFoundException"), _) => true,
        (Some("InvalidRequestException"), SdkError::ServiceError(ctx)) => {
            mentions_deletion(ctx.err().message())
        }
        _ => false,
    }
}

/// Maps a Secrets Manager error for the secret of `id` (an owner path or a task token): by
/// code, like [`crate::error`]'s fallback, but without AWS's message, which can carry ARNs and
/// principal names. The whole error goes to the debug log.
pub(crate) fn secrets_error<E, R>(operation: &'static str, id: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    tracing::debug!(operation, secret = id, error = %DisplayErrorContext(&err), "Secrets Manager call failed");
    let code = code(&err).map(str::to_owned);
    let retryable = match &err {
        SdkError::ServiceError(_) => code.as_deref().is_some_and(is_retryable_code),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    };
    if let Some(c) = code.as_deref().filter(|c| is_permission_code(c)) {
        return Error::PermissionDenied {
            backend: SERVICE,
            operation,
            detail: format!("{c} on the secret of {id}"),
        };
    }
    // An InvalidRequestException on create means "scheduled for deletion, being removed":
    // the deletion completes within seconds, so a retry succeeds.
    let retryable = retryable
        || (operation == "CreateSecret" && code.as_deref() == Some("InvalidRequestException"));
    let message = match &code {
        Some(c) => format!("the call failed with {c}"),
        None => "the call did not complete".to_owned(),
    };
    Error::backend(
        SERVICE,
        operation,
        Some(id.to_owned()),
        retryable,
        AwsError::Service {
            service: SERVICE,
            operation,
            code,
            message,
        },
    )
}
