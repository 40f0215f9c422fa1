//! A replica writes only while it decides by the newest policy recorded.
//!
//! Several replicas share one PostgreSQL database; each decides by the policy of its own
//! configuration file, and records it (`policy.loaded`, `meta.policy_digest`) when it
//! starts or reloads. Once another replica recorded a newer one, this one would approve,
//! request and break the glass by rules the others no longer apply (an approver taken
//! out, a conflict added). So every write transaction reads the newest digest under the
//! write lock (`pg/txn.rs`), and each write of a replica whose policy differs is refused
//! ([`StoreError::PolicyChanged`], answered 503 `not_ready`) until it is reloaded; its
//! reads go on. Exempt: recording a policy (that is how it catches up) and bookkeeping
//! queued with `write_later`. On SQLite one server process owns the database and puts a
//! new policy in force inside the write that records it, so there is nothing to check.

use std::cell::Cell;

use super::pg::Conn;
use super::{Backend, Store, StoreError, Tx};

thread_local! {
    /// A write running on this thread may run under any policy ([`any_policy`]).
    static ANY_POLICY: Cell<bool> = const { Cell::new(false) };
}

/// Whether a replica deciding by `ours` must not write when `newest` is recorded:
/// only when both are known and differ (no policy recorded yet, or none set by the
/// server, as in operator commands: nothing to compare).
pub(super) fn stale(ours: &Option<String>, newest: Option<&str>) -> bool {
    matches!((ours, newest), (Some(ours), Some(newest)) if ours != newest)
}

/// Refuses a write in the transaction open on `conn` when it found another policy
/// recorded than this replica's, unless the write runs under [`any_policy`].
pub(super) fn check(conn: &Conn) -> Result<(), StoreError> {
    if conn.policy_stale.get() && !ANY_POLICY.with(Cell::get) {
        return Err(StoreError::PolicyChanged);
    }
    Ok(())
}

/// Runs `f` with its writes allowed whatever policy is recorded.
pub(super) fn any_policy<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            ANY_POLICY.with(|a| a.set(self.0));
        }
    }
    let _reset = Reset(ANY_POLICY.with(|a| a.replace(true)));
    f()
}

impl Store {
    /// The digest (`policy::summary::digest`) of the policy this server decides by, from
    /// now on: on PostgreSQL, writes are refused while the newest recorded is another.
    pub fn set_policy_in_force(&self, digest: &str) {
        if let Backend::Pg(pg) = &self.backend {
            pg.set_policy_in_force(digest);
        }
    }

    /// [`Store::write`] that records a policy: it runs whatever policy is recorded.
    pub fn write_recording_policy<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        any_policy(|| self.write(f))
    }
}

#[cfg(test)]
mod tests {
    use super::stale;

    #[test]
    fn only_two_known_digests_that_differ_are_stale() {
        let ours = Some("a".to_owned());
        assert!(!stale(&ours, Some("a")));
        assert!(stale(&ours, Some("b")));
        assert!(!stale(&ours, None));
        assert!(!stale(&None, Some("b")));
    }
}
