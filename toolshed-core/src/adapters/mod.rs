//! Adapters of the ports, each behind its own feature.

#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "git")]
pub mod git;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(feature = "sqlite")]
pub mod sqlite;
