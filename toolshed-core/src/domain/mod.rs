//! Domain types: validated newtypes and the records the services and ports exchange.

mod build;
pub mod conformance;
mod containment;
pub mod drift;
mod ids;
mod image;
mod instance;
mod labels;
pub mod markdown;
mod mcp;
mod metadata;
mod observation;
mod origin;
pub mod poisoning;
mod principal;
pub mod promotion;
mod redact;
pub mod remote_egress;
mod repo_url;
mod server;
pub mod server_json;
mod session;
mod settings;
mod verification;
mod version;
mod warm_pool;

#[cfg(test)]
mod rules_tests;

pub use build::{
    BuildSpec, DEFAULT_DOCKERFILE, MAX_BUILD_ARGS, MAX_BUILD_ARG_NAME_LEN, MAX_BUILD_ARG_VALUE_LEN,
    MAX_BUILD_PATH_LEN, RESERVED_BUILD_ARG_PREFIX, ROOT_CONTEXT,
};
pub use conformance::{ConformanceReport, ListingFacts};
pub use containment::{effective_user, is_root_user, Egress, NON_ROOT_USER};
pub use drift::{ChangeKind, ToolChange, ToolDrift};
pub use ids::{CommitSha, GitRef, IdempotencyKey, ServerId, SessionId};
pub use image::{
    validate_repository, ImageDigest, ImageRef, ImageTag, VerifiedImage, CANDIDATE_TAG_PREFIX,
    VERIFIED_TAG_PREFIX,
};
pub use instance::{
    EnvName, Instance, InstanceEnv, InstanceId, InstanceName, InstanceRequest, InstanceState,
    InstanceView, SecretValue, MAX_ENV_VALUE_LEN, MAX_ENV_VARS, MAX_FAILURE_LEN, REDACTED,
};
pub use labels::{
    DeploymentId, TaskLabels, TaskPurpose, LABEL_DEPLOYMENT, LABEL_EXPIRES_AT, LABEL_INSTANCE,
    LABEL_MANAGED, LABEL_PURPOSE, LABEL_RUN, LABEL_SERVER, LABEL_SESSION,
};
pub use mcp::{
    validate_http_path, Endpoint, McpPrompt, McpPromptArgument, McpServerInfo, McpTool,
    ProbeReport, RemoteTarget, ToolCall, ToolCallOutput, ToolsOutcome,
};
pub use metadata::{
    DocsRef, GeneratedMetadata, MetadataFailure, MetadataField, Provenance, ProvenanceSource,
    RepoSnapshot, ServerMetadata,
};
pub use observation::{ObservedTaskState, TaskExit, TaskObservation};
pub use origin::{package_dockerfile, OciReference, ServerOrigin};
pub use principal::{
    ApiKey, ApiKeyId, ApiKeySecret, NewApiKey, PresentedApiKey, Principal, PrincipalId,
    PrincipalQuotas, QuotaKind, Scope, API_KEY_PREFIX, API_KEY_TOUCH_INTERVAL,
};
pub use promotion::{PendingReview, PromotionPolicy, ReviewReason};
pub use redact::{failure_reason, redact, MAX_FAILURE_REASON_LEN};
pub use remote_egress::{check_remote_url, RemoteEgressPolicy};
pub use repo_url::{RepoUrl, RepoUrlPolicy, MAX_REPO_URL_LEN};
pub use server::{
    Server, ServerRegistration, TaskResources, ToolInventory, Transport, VerificationCompletion,
    VerificationState, DEFAULT_MCP_PATH, DEFAULT_MCP_PORT, MAX_DESCRIPTION_LEN, MAX_LANGUAGE_LEN,
};
pub use session::{
    LiveSessionCounts, PlaygroundSession, SessionCaps, SessionState, StopReason, TaskHandle,
    TtlBounds, MAX_SESSION_TTL,
};
pub use settings::{
    has_secret_settings, resolve_settings, resolve_test_values, validate_settings,
    without_secret_values, SettingSpec, MAX_SETTINGS, MAX_SETTING_DESCRIPTION_LEN,
};
pub use verification::{
    BuildId, PhaseTiming, PhaseTimings, RunProgress, VerificationFailure, VerificationLease,
    VerificationPhase, VerificationRun, VerificationStep,
};
pub use version::next_version;
pub use warm_pool::{
    WarmClaim, WarmPool, DEFAULT_WARM_IDLE_TTL, MAX_WARM_IDLE_TTL, MIN_WARM_IDLE_TTL,
};

/// Points in time: UTC, millisecond precision is what backends store.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
