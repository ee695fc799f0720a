//! Composition of the sweeper from the AWS adapters.
//!
//! A sweep needs only the repository (DynamoDB), the runner (ECS) and the clock, so the function
//! reads only the settings those need ([`SweepSettings`]) and builds nothing else: no build,
//! image, docs, git or MCP client exists in this process.

use std::sync::Arc;

use toolshed_aws::SweepAdapters;
use toolshed_core::ports::SystemClock;
use toolshed_core::services::{Sweeper, ToolshedConfig};

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

/// The sweep, the status refresher (status freshness from `TOOLSHED_STATUS_FRESHNESS_SECS`,
/// default 15) and the ECS runner from the environment, as [`sweeper_from_env`].
///
/// # Errors
/// A missing or malformed setting, naming the variable.
pub async fn handlers_from_env() -> Result<crate::CleanupHandlers, toolshed_aws::AwsError> {
    let adapters = SweepAdapters::from_env().await?;
    let freshness = match std::env::var(ENV_STATUS_FRESHNESS) {
        Ok(raw) => {
            raw.trim()
                .parse::<u64>()
                .map_err(|_| toolshed_aws::AwsError::InvalidSetting {
                    var: ENV_STATUS_FRESHNESS,
                    reason: "must be a whole number of seconds".to_owned(),
                })?
        }
        Err(_) => ToolshedConfig::default().status_freshness.as_secs(),
    };
    let clock = Arc::new(SystemClock);
    Ok(crate::CleanupHandlers {
        sweeper: adapters.sweeper(clock.clone()),
        refresher: adapters
            .status_refresher(clock)
            .with_freshness(std::time::Duration::from_secs(freshness)),
        tasks: adapters.tasks.clone(),
    })
}

/// How long status polls trust a session's task observation, in seconds (the service's
/// `status_freshness`; the refresher renews observations at half of it).
pub const ENV_STATUS_FRESHNESS: &str = "TOOLSHED_STATUS_FRESHNESS_SECS";
