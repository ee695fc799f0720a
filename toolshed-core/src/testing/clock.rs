//! A clock that only moves when told to.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Timestamp;
use crate::ports::Clock;

/// A manual clock: `now()` is fixed until [`ManualClock::advance`] or [`ManualClock::set`], and
/// `sleep` advances the clock by the duration (then yields) instead of waiting, so polling loops
/// and expiries run instantly in tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    sleeps: Mutex<Vec<Duration>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
            sleeps: Mutex::new(Vec::new()),
        }
    }

    /// A clock at a fixed, whole-second instant (2030-01-01T00:00:00Z), so runs are reproducible.
    pub fn fixed() -> Self {
        Self::new(chrono::DateTime::from_timestamp(1_893_456_000, 0).unwrap_or_default())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        *lock(&self.now) = to;
    }

    /// Every duration passed to `sleep`, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        lock(&self.sleeps).clone()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::fixed()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *lock(&self.now)
    }

    async fn sleep(&self, duration: Duration) {
        lock(&self.sleeps).push(duration);
        self.advance(duration);
        // Let other tasks run, as a real sleep would.
        tokio::task::yield_now().await;
    }
}

/// Locks a mutex, recovering the data of a poisoned one: a panicking test thread must not make
/// every other double unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
