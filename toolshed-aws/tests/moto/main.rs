//! Integration tests against moto in server mode (`TOOLSHED_TEST_MOTO_ENDPOINT`). Each test uses
//! its own moto account (`x-moto-account-id`), so tests run in parallel without resets.

mod ecs;
mod repository;
mod secrets;
mod services;
mod status;
mod stores;

use toolshed_aws::testing::MotoEnv;
