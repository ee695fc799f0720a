//! The crate's error type and its mapping to [`toolshed_core::Error`].
//!
//! Adapters match the typed service error of each operation first (e.g. DynamoDB's
//! `ConditionalCheckFailedException`), and fall back to `sdk_error`, which classifies by error
//! code (`AccessDenied…` → permission denied, throttling / 5xx / timeouts → retryable backend).

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use toolshed_core::Error;

/// Errors raised inside this crate before they become [`toolshed_core::Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsError {
    /// A required environment variable is not set.
    #[error("setting {var} is missing")]
    MissingSetting {
        /// The variable.
        var: &'static str,
    },
    /// A setting is malformed.
    #[error("setting {var} is invalid: {reason}")]
    InvalidSetting {
        /// The variable.
        var: &'static str,
        /// Why.
        reason: String,
    },
    /// An AWS call failed; `message` holds the full error chain.
    #[error("{service} {operation}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Service {
        /// The service, e.g. `ecs`.
        service: &'static str,
        /// The operation, e.g. `RunTask`.
        operation: &'static str,
        /// The AWS error code, when the service sent one.
        code: Option<String>,
        /// The error with its context ([`DisplayErrorContext`]).
        message: String,
    },
    /// ECS accepted RunTask but reported a failure instead of a task.
    #[error("RunTask failure for {arn}: {reason}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    RunTaskFailure {
        /// The resource the failure is about.
        arn: String,
        /// ECS's reason, e.g. `RESOURCE:MEMORY`.
        reason: String,
        /// ECS's detail.
        detail: Option<String>,
    },
    /// A response lacked something it must carry, or a stored item could not be decoded.
    #[error("unexpected {what}: {detail}")]
    Unexpected {
        /// What was being read.
        what: &'static str,
        /// Why it is unusable.
        detail: String,
    },
}

impl AwsError {
    /// Shorthand for [`AwsError::Unexpected`].
    pub fn unexpected(what: &'static str, detail: impl Into<String>) -> Self {
        AwsError::Unexpected {
            what,
            detail: detail.into(),
        }
    }
}

impl From<AwsError> for Error {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::MissingSetting { var } | AwsError::InvalidSetting { var, .. } => {
                Error::invalid(var, e.to_string())
            }
            AwsError::Service {
                service, operation, ..
            } => Error::backend(service, operation, None, false, e),
            AwsError::RunTaskFailure { .. } => Error::backend("ecs", "RunTask", None, false, e),
            AwsError::Unexpected { what, .. } => Error::backend("aws", what, None, false, e),
        }
    }
}

/// Error codes that mean "not allowed".
const PERMISSION_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
];

/// Error codes that mean "try again later".
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ServerException",
    "InternalServerError",
    "InternalFailure",
    "InternalServiceError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "LimitExceededException",
    "TransactionConflictException",
];

/// Whether `code` denies permission.
pub(crate) fn is_permission_code(code: &str) -> bool {
    PERMISSION_CODES.contains(&code)
}

/// Whether `code` means "try again later".
pub(crate) fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
}

/// Maps any SDK error by its code: the fallback once typed variants were matched.
pub(crate) fn sdk_error<E, R>(
    service: &'static str,
    operation: &'static str,
    id: Option<String>,
    err: SdkError<E, R>,
) -> Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&err).to_string();
    let (code, retryable) = match &err {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().map(str::to_owned);
            let retryable = code.as_deref().is_some_and(is_retryable_code);
            (code, retryable)
        }
        // Timeouts, connection failures and unparseable (often 5xx) responses: worth a retry.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            (None, true)
        }
        _ => (None, false),
    };
    tracing::debug!(service, operation, error = %message, "AWS call failed");
    if let Some(c) = code.as_deref().filter(|c| is_permission_code(c)) {
        let detail = match &err {
            SdkError::ServiceError(ctx) => ctx.err().message().unwrap_or(c).to_owned(),
            _ => c.to_owned(),
        };
        return Error::PermissionDenied {
            backend: service,
            operation,
            detail,
        };
    }
    Error::backend(
        service,
        operation,
        id,
        retryable,
        AwsError::Service {
            service,
            operation,
            code,
            message,
        },
    )
}

/// A backend error for a response that lacks what it must carry.
pub(crate) fn unexpected(
    service: &'static str,
    operation: &'static str,
    id: Option<String>,
    detail: impl Into<String>,
) -> Error {
    Error::backend(
        service,
        operation,
        id,
        false,
        AwsError::unexpected(operation, detail),
    )
}
