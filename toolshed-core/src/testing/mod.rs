//! In-memory doubles of every port, a manual clock and the [`ServerRepository`] conformance
//! suite (feature `testing`).
//!
//! The repository, image store, docs store and source repository are faithful implementations
//! (fit for single-process use as well as tests); the builder, runner and probe are fakes whose
//! outcomes, delays and failures tests script. [`HeuristicMetadataGenerator`] is a real generator
//! (the default when no LLM is configured), re-exported here for convenience.
//!
//! [`Ports::in_memory`](crate::services::Ports::in_memory) wires every port to a fresh double and
//! returns them typed ([`InMemoryPorts`]), so tests script the doubles the services use.
//!
//! [`ServerRepository`]: crate::ports::ServerRepository

mod api_keys;
mod builder;
mod clock;
pub mod conformance;
mod docs;
pub mod fixtures;
mod image_store;
mod instances;
mod ports;
mod probe;
mod repository;
mod runner;
mod source;
mod warm;

pub use crate::adapters::memory_secrets::InMemorySecretStore;
pub use builder::{BuildResult, BuildScript, FakeImageBuilder};
pub use clock::ManualClock;
pub use docs::InMemoryDocsStore;
pub use image_store::{InMemoryImageStore, TEST_REPOSITORY};
pub use ports::InMemoryPorts;
pub use probe::{FakeMcpProbe, RecordedCall};
pub use repository::InMemoryServerRepository;
pub use runner::{FakeTask, FakeTaskRunner};
pub use source::InMemorySourceRepository;

pub use crate::adapters::heuristic::HeuristicMetadataGenerator;
