//! Integration tests against moto in server mode (`TOOLSHED_TEST_MOTO_ENDPOINT`). Each test uses
//! its own moto account (`x-moto-account-id`), so tests run in parallel without resets.

mod ecs;
mod repository;
mod secret_store;
mod secrets;
mod services;
mod status;
mod stores;
mod task_secrets;

use toolshed_aws::testing::MotoEnv;
