//! Domain types: validated newtypes and the records the services and ports exchange.

mod ids;
mod image;
mod labels;
mod mcp;
mod metadata;
mod principal;
mod repo_url;
mod server;
mod session;
mod verification;

pub use ids::{CommitSha, GitRef, IdempotencyKey, ServerId, SessionId};
pub use image::{validate_repository, ImageDigest, ImageRef, ImageTag, VerifiedImage};
pub use labels::{
    TaskLabels, TaskPurpose, LABEL_EXPIRES_AT, LABEL_MANAGED, LABEL_PURPOSE, LABEL_RUN,
    LABEL_SERVER, LABEL_SESSION,
};
pub use mcp::{
    validate_http_path, Endpoint, McpServerInfo, McpTool, ProbeReport, ToolCall, ToolCallOutput,
    ToolsOutcome,
};
pub use metadata::{
    DocsRef, GeneratedMetadata, MetadataFailure, MetadataField, Provenance, ProvenanceSource,
    RepoSnapshot, ServerMetadata,
};
pub use principal::{
    ApiKey, ApiKeyId, ApiKeySecret, NewApiKey, PresentedApiKey, Principal, PrincipalId,
    PrincipalQuotas, QuotaKind, Scope, API_KEY_PREFIX, API_KEY_TOUCH_INTERVAL,
};
pub use repo_url::{RepoUrl, RepoUrlPolicy, MAX_REPO_URL_LEN};
pub use server::{
    Server, ServerRegistration, TaskResources, ToolInventory, Transport, VerificationState,
    DEFAULT_MCP_PATH, DEFAULT_MCP_PORT, MAX_DESCRIPTION_LEN, MAX_LANGUAGE_LEN,
};
pub use session::{
    LiveSessionCounts, PlaygroundSession, SessionCaps, SessionState, StopReason, TaskHandle,
    TtlBounds, MAX_SESSION_TTL,
};
pub use verification::{
    BuildId, RunProgress, VerificationFailure, VerificationLease, VerificationRun, VerificationStep,
};

/// Points in time: UTC, millisecond precision is what backends store.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
