//! Time, injectable so that expiry and polling are testable without sleeping.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Timestamp;

/// Now and sleep.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Waits `duration` (a manual clock advances itself instead).
    async fn sleep(&self, duration: Duration);
}

/// The system clock and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
