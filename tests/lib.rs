//! Shared fixtures of the workspace integration tests.
