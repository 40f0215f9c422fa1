//! The replica's clock against the database's (PostgreSQL): validity windows, expiry and
//! the audit log's times must not depend on which replica answered, so a replica whose
//! clock strays from the database's warns, and past a bound refuses to sign and reports
//! itself not ready until the clocks agree again. SQLite has no clock of its own: the
//! check does not apply there.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::{Service, ServiceError};

/// Above this the replica warns.
pub const WARN_SKEW: Duration = Duration::from_secs(2);
/// Above this the replica refuses to sign and is not ready.
pub const MAX_SKEW: Duration = Duration::from_secs(5);
/// How often the daemon measures.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// After a failed measurement, how often a caller that needs the clock measures again
/// (the database may be back: nobody waits for the daemon's next round to sign).
const RETRY_FAILED: Duration = Duration::from_secs(1);

/// The last measured skew in milliseconds (database minus replica); [`UNKNOWN`] before
/// the first measurement or on SQLite.
#[derive(Debug)]
pub(super) struct Skew(AtomicI64, std::sync::Mutex<Option<std::time::Instant>>);

const UNKNOWN: i64 = i64::MIN;
/// The last measurement failed (the database did not answer): nothing is signed until
/// one succeeds.
const FAILED: i64 = i64::MIN + 1;

impl Default for Skew {
    fn default() -> Self {
        Skew(AtomicI64::new(UNKNOWN), std::sync::Mutex::new(None))
    }
}

impl Service {
    /// Measures this replica's clock (the one it signs by) against the database's and
    /// keeps the result for [`Service::clock_agrees`]; returns the skew in milliseconds
    /// (database minus replica), `None` on SQLite. Logs a warning above [`WARN_SKEW`]
    /// and an error above [`MAX_SKEW`].
    pub fn check_clock(&self) -> Result<Option<i64>, ServiceError> {
        let before = self.now();
        let database = match self.store.database_now_ms() {
            Ok(Some(database)) => database,
            Ok(None) => return Ok(None),
            Err(e) => {
                // Not measured is not agreed: no signing on an old measurement.
                self.skew.0.store(FAILED, Ordering::Relaxed);
                return Err(e.into());
            }
        };
        let after = self.now();
        let middle = before.timestamp_millis() / 2 + after.timestamp_millis() / 2;
        let skew = database.saturating_sub(middle);
        self.skew.0.store(skew, Ordering::Relaxed);
        let off = skew.unsigned_abs();
        if off > MAX_SKEW.as_millis() as u64 {
            tracing::error!(
                skew_ms = skew,
                "this replica's clock differs from the database's by more than {}s: it refuses \
                 to sign and reports itself not ready until they agree (fix NTP)",
                MAX_SKEW.as_secs()
            );
        } else if off > WARN_SKEW.as_millis() as u64 {
            tracing::warn!(
                skew_ms = skew,
                "this replica's clock differs from the database's by more than {}s (fix NTP)",
                WARN_SKEW.as_secs()
            );
        }
        Ok(Some(skew))
    }

    /// Whether the last measurement allows signing: an error naming the skew when it was
    /// above [`MAX_SKEW`], or when the last measurement failed. Never measured (SQLite;
    /// on PostgreSQL opening measures once, and refuses to start if it cannot): allowed.
    pub fn clock_agrees(&self) -> Result<(), ServiceError> {
        let mut skew = self.skew.0.load(Ordering::Relaxed);
        if skew == FAILED && self.retry_due() {
            // Measured again at once (an operator trial saw replicas refuse to sign for a
            // minute after the database came back); a failure is kept as it was.
            let _ = self.check_clock();
            skew = self.skew.0.load(Ordering::Relaxed);
        }
        if skew == FAILED {
            return Err(ServiceError::NotReady(
                "this replica could not compare its clock with the database's: it does not \
                 sign until it can"
                    .into(),
            ));
        }
        if skew != UNKNOWN && skew.unsigned_abs() > MAX_SKEW.as_millis() as u64 {
            return Err(ServiceError::NotReady(format!(
                "this replica's clock differs from the database's by {:.1}s (more than {}s): it \
                 does not sign until they agree",
                skew as f64 / 1000.0,
                MAX_SKEW.as_secs()
            )));
        }
        Ok(())
    }

    /// Whether a failed measurement may be tried again now (at most every
    /// [`RETRY_FAILED`]); takes the turn.
    fn retry_due(&self) -> bool {
        let mut last = self
            .skew
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < RETRY_FAILED) {
            return false;
        }
        *last = Some(now);
        true
    }
}
