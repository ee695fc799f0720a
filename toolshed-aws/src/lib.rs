//! # toolshed-aws
//!
//! AWS adapters of the Toolshed SDK, one module per service, each implementing a
//! `toolshed-core` port:
//!
//! | port | adapter | module |
//! |---|---|---|
//! | `TaskRunner` | [`EcsTaskRunner`] (ECS Fargate) | [`ecs`] |
//! | `ServerRepository` | [`DynamoServerRepository`] | [`dynamodb`] |
//! | `ImageBuilder` | [`CodeBuildImageBuilder`] | [`codebuild`] |
//! | `ImageStore` | [`EcrImageStore`] | [`ecr`] |
//! | `DocsStore` | [`S3DocsStore`] | [`s3`] |
//! | `SecretStore` | [`SecretsManagerStore`] | [`secret_store`] |
//! | (the service's own secrets) | [`SecretsManagerSecret`] | [`secrets`] |
//!
//! [`AwsAdapters::from_env`] reads [`AwsSettings`] from the environment and loads the default AWS
//! configuration; [`AwsAdaptersBuilder`] takes an `SdkConfig` of your own. Every client has retry
//! mode standard and an operation timeout. Point the crate at an emulator (moto, LocalStack) with
//! the standard `AWS_ENDPOINT_URL`.
//!
//! Feature `testing`: `toolshed_aws::testing`, the moto set-up other packages' tests share (an
//! isolated moto account per test with every resource the adapters need, and the services wired
//! to it).
#![warn(missing_docs)]

pub mod codebuild;
pub mod config;
pub mod dynamodb;
pub mod ecr;
pub mod ecs;
pub mod ecs_events;
pub mod error;
pub mod interceptors;
pub mod s3;
pub mod secret_store;
pub mod secrets;
#[cfg(feature = "testing")]
pub mod testing;

pub use codebuild::{CodeBuildImageBuilder, CodeBuildSettings};
pub use config::{
    AwsAdapters, AwsAdaptersBuilder, AwsSettings, EcrRepository, SweepAdapters, SweepSettings,
};
pub use dynamodb::{DynamoServerRepository, DynamoTables};
pub use ecr::EcrImageStore;
pub use ecs::{EcsSettings, EcsTaskRunner};
pub use error::AwsError;
pub use interceptors::{BodyRecorder, CallCounter, RecordedBody, StaticHeader};
pub use s3::S3DocsStore;
pub use secret_store::SecretsManagerStore;
pub use secrets::SecretsManagerSecret;
