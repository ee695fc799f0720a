//! Shared helpers of the example binaries: the local backend's wiring (`local`) used by the
//! quickstart, the `toolshed` CLI and the workspace tests.
#![warn(missing_docs)]

#[path = "toolshed_cli/local.rs"]
pub mod local;
