//! The ports: async traits the services depend on and adapters implement.
//!
//! | port | AWS adapter | local adapter | in-memory double (`testing`) |
//! |---|---|---|---|
//! | [`ServerRepository`] | DynamoDB | SQLite | `InMemoryServerRepository` |
//! | [`ImageStore`] | ECR | OCI registry / engine store | `InMemoryImageStore` |
//! | [`ImageBuilder`] | CodeBuild | Docker engine | `FakeImageBuilder` |
//! | [`TaskRunner`] | ECS Fargate | Docker engine | `FakeTaskRunner` |
//! | [`McpProbe`] | rmcp (streamable HTTP) | same | `FakeMcpProbe` |
//! | [`SourceRepository`] | git | git | `InMemorySourceRepository` |
//! | [`MetadataGenerator`] | OpenAI | heuristic | `HeuristicMetadataGenerator` |
//! | [`DocsStore`] | S3 | files | `InMemoryDocsStore` |
//! | [`SecretStore`] | Secrets Manager | encrypted files | `InMemorySecretStore` |
//! | [`Clock`] | system | system | `ManualClock` |
//!
//! Every method returns [`crate::Error`]; each documents which variants adapters MUST use, so the
//! services (and an HTTP layer) can rely on them whatever the backend.

mod builder;
mod clock;
mod docs;
mod image_store;
mod metadata;
mod probe;
mod repository;
mod runner;
mod secrets;
mod source;

pub use builder::{BuildRequest, BuildStatus, ImageBuilder};
pub use clock::{Clock, SystemClock};
pub use docs::{DocsKey, DocsStore};
pub use image_store::ImageStore;
pub use metadata::{MetadataGenerator, MetadataRequest};
pub use probe::McpProbe;
pub use repository::{
    newest_per_session, ServerRepository, SessionEnd, SessionInsert, SessionObservation,
    VerificationCompletion, SESSION_BATCH,
};
pub use runner::{
    TaskPage, TaskRunner, TaskSpec, TaskState, TaskStatus, TaskSummary, DESCRIBE_BATCH,
    MAX_LOG_TAIL, OUT_OF_MEMORY,
};
pub use secrets::{SecretOwner, SecretStore};
pub use source::{SnapshotLimits, SourceRepository};

#[cfg(feature = "mocks")]
pub use builder::MockImageBuilder;
#[cfg(feature = "mocks")]
pub use clock::MockClock;
#[cfg(feature = "mocks")]
pub use docs::MockDocsStore;
#[cfg(feature = "mocks")]
pub use image_store::MockImageStore;
#[cfg(feature = "mocks")]
pub use metadata::MockMetadataGenerator;
#[cfg(feature = "mocks")]
pub use probe::MockMcpProbe;
#[cfg(feature = "mocks")]
pub use repository::MockServerRepository;
#[cfg(feature = "mocks")]
pub use runner::MockTaskRunner;
#[cfg(feature = "mocks")]
pub use secrets::MockSecretStore;
#[cfg(feature = "mocks")]
pub use source::MockSourceRepository;
