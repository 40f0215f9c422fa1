//! The time the CA goes by: every deadline, expiry and timestamp the service writes or
//! compares is read from a [`Clock`] it is given, never from the system directly.
//!
//! [`SystemClock`] is the real time; [`ManualClock`] is a clock a test sets and moves, so
//! that expiry, revocation grace and KRL windows are tested by moving it instead of by
//! sleeping or by rewriting stored times. Timers (rate-limit windows, connection
//! timeouts, the sweep's interval) are not the clock: they run on `tokio::time`.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, as this clock reads it.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock: what a running CA uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until it is set or advanced. For tests: share it in an
/// `Arc` between the test and the service, then move it where the test needs time to be.
/// Nothing stops it from going backwards (a stepped-back system clock is a case to test).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// A clock that starts at the system's time now, whole seconds (the precision the
    /// store keeps), so that what a test computes from it matches what is stored.
    pub fn starting_now() -> Self {
        let now = SystemClock.now();
        Self::new(DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now))
    }

    /// Sets the time to `to` (earlier or later).
    pub fn set(&self, to: DateTime<Utc>) {
        *self.lock() = to;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.lock();
        *now = now
            .checked_add_signed(by)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now().timestamp(), 1_800_000_090);
        clock.set(start - chrono::Duration::hours(1));
        assert_eq!(clock.now().timestamp(), 1_800_000_000 - 3600);
    }

    #[test]
    fn a_manual_clock_starting_now_is_near_the_system_time_in_whole_seconds() {
        let clock = ManualClock::starting_now();
        let now = clock.now();
        assert_eq!(now.timestamp_subsec_nanos(), 0);
        assert!((SystemClock.now() - now).num_seconds().abs() <= 2);
    }
}
