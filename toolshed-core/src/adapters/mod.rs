//! Adapters of the ports, each behind its own feature (the heuristic metadata generator, which
//! needs nothing outside the crate, is always compiled).

#[cfg(feature = "docker")]
pub mod docker;
#[cfg(all(feature = "files", unix))]
pub mod file_secrets;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "git")]
pub mod git;
pub mod heuristic;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod memory_secrets;
#[cfg(feature = "mcp")]
pub mod server_json_fetch;
#[cfg(feature = "sqlite")]
pub mod sqlite;
