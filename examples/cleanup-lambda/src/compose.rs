//! Composition of the sweeper from the AWS adapters.
//!
//! A sweep needs only the repository (DynamoDB), the runner (ECS) and the clock, so the function
//! reads only the settings those need ([`SweepSettings`]) and builds nothing else: no build,
//! image, docs, git or MCP client exists in this process.

use std::sync::Arc;

use toolshed_aws::SweepAdapters;
use toolshed_core::ports::SystemClock;
use toolshed_core::services::Sweeper;

/// The sweeper from the environment (see [`toolshed_aws::SweepSettings::from_env`]: the region, the cluster,
/// the two tables and optionally the owner id), the default AWS credentials chain and the
/// system clock.
///
/// # Errors
/// A missing or malformed setting, naming the variable.
pub async fn sweeper_from_env() -> Result<Sweeper, toolshed_aws::AwsError> {
    let adapters = SweepAdapters::from_env().await?;
    Ok(adapters.sweeper(Arc::new(SystemClock)))
}
