//! The resume worker: every interval, verifications whose process died (their lease expired
//! without a heartbeat) are taken over and continued from the step they reached, so a crash or a
//! redeploy during a build needs nobody to ask again.

use std::time::Duration;

use tokio::task::JoinHandle;
use toolshed_core::services::Toolshed;
use tracing::{info, warn};

/// How often the worker looks, and how many runs it takes over per look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeWorkerConfig {
    /// Pause between two looks (`TOOLSHED_RESUME_INTERVAL_SECS`, default 30 s).
    pub interval: Duration,
    /// Most runs taken over per look.
    pub batch: usize,
}

impl Default for ResumeWorkerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            batch: 10,
        }
    }
}

/// The running worker; dropping it stops it (runs it already took over continue).
#[derive(Debug)]
pub struct ResumeWorker(JoinHandle<()>);

impl ResumeWorker {
    /// Starts the worker on `toolshed`. The first look happens at once: runs left by the
    /// previous process of this service are picked up as soon as their leases expire.
    pub fn start(toolshed: Toolshed, config: ResumeWorkerConfig) -> Self {
        Self(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(config.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match toolshed.take_over_stale_verifications(config.batch).await {
                    Ok(runs) => {
                        for run in &runs {
                            info!(server = %run.server_id(), run = %run.run_id(), "resumed a verification whose process died");
                        }
                        // The runs continue in their own tasks; their outcomes are recorded on
                        // the servers.
                        drop(runs);
                    }
                    Err(e) => warn!(error = %e, "could not look for verifications to resume"),
                }
            }
        }))
    }
}

impl Drop for ResumeWorker {
    fn drop(&mut self) {
        self.0.abort();
    }
}
