//! # toolshed-core
//!
//! The domain, ports and services of the Toolshed SDK: verify MCP servers from their git
//! repositories (build once, store by digest, check they speak MCP) and run short-lived playground
//! sessions from the verified image.
//!
//! - [`domain`]: validated newtypes and records (`ServerId`, `RepoUrl`, `ImageRef`, `Server`,
//!   `PlaygroundSession`, …).
//! - [`ports`]: the async traits adapters implement (`ServerRepository`, `ImageStore`,
//!   `ImageBuilder`, `TaskRunner`, `McpProbe`, `SourceRepository`, `MetadataGenerator`,
//!   `DocsStore`, `Clock`).
//! - [`services`]: the use cases (verify, playground, sweep, metadata).
//! - `local` (feature `local`): the local composition (`LocalBackend` over
//!   the Docker engine, SQLite, git and the file system) and its `LocalConfig`.
//! - `testing` (feature `testing`): in-memory doubles of every port and the repository
//!   conformance suite. Feature `mocks`: `mockall` mocks of every port.
#![warn(missing_docs)]

pub mod adapters;
pub mod domain;
pub mod error;
#[cfg(feature = "local")]
pub mod local;
pub mod ports;
pub mod services;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
