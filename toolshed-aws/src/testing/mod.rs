//! Test support shared by every package that tests against AWS adapters (feature `testing`):
//! an isolated moto account per test with all resources the adapters need ([`MotoEnv`]), the
//! services wired to it ([`MotoServices`]), and a moto server that handles one request at a time
//! ([`SerializedMoto`]) for checks of conditions under concurrency.
//!
//! Tests read `TOOLSHED_TEST_MOTO_ENDPOINT` (a running `moto_server`) and, for the serialized
//! server, `TOOLSHED_TEST_PYTHON` (a Python with moto). Unset, they print why and skip, unless
//! `TOOLSHED_REQUIRE_BACKENDS=1`, which turns the skip into a failure.
//!
//! ```no_run
//! # async fn t() {
//! use toolshed_aws::testing::MotoEnv;
//! use toolshed_core::domain::SessionCaps;
//!
//! let Some(env) = MotoEnv::new().await else { return };
//! env.manual_task_transitions().await;
//! let services = env.services(SessionCaps::default());
//! # let _ = services;
//! # }
//! ```

mod moto;
mod serialized;

pub use moto::{moto_endpoint, sha256_hex, MotoEnv, MotoServices, REGION};
pub use serialized::{shared_endpoint as shared_serialized_endpoint, SerializedMoto};
