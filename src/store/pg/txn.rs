//! A write transaction's beginning and end on PostgreSQL: BEGIN with the write lock and
//! the audit chain's head (and the reads sent ahead), and COMMIT with the notification
//! that tells the other replicas, resolved when its answer is lost.

use super::{Pooled, Shared, StoreError, defer};

/// The advisory lock every write transaction holds (an arbitrary constant: "cs-write").
pub(super) const WRITE_LOCK: i64 = 0x6373_2d77_7269_7465;

/// The notification channel every write transaction notifies on commit.
pub(super) const CHANNEL: &str = "countersign_commits";
/// The payload of a commit that changed no credential (`store/credentials.rs`); any
/// other makes the replicas that hear it forget the token rows they remember.
pub(super) const KEPT: &str = "k";

impl Shared {
    /// The digest of the policy this replica decides by, once set.
    fn policy_in_force(&self) -> Option<String> {
        self.policy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Begins a write transaction on `conn` and takes [`WRITE_LOCK`]; returns its
    /// transaction id. The connection is marked abandoned (closed, not pooled) until
    /// [`Shared::end_write`] or a ROLLBACK goes through: never reused mid-transaction.
    pub(super) fn begin_write(&self, conn: &Pooled) -> Result<i64, StoreError> {
        self.begin_write_ahead(conn, &[]).map(|(xid, _)| xid)
    }

    /// [`Shared::begin_write`], with reads sent ahead in the same round trip, after the
    /// lock (`store/ahead.rs`): their rows, in order.
    #[allow(clippy::type_complexity)]
    pub(super) fn begin_write_ahead(
        &self,
        conn: &Pooled,
        ahead: &[&[defer::Held]],
    ) -> Result<(i64, Vec<Vec<Vec<tokio_postgres::Row>>>), StoreError> {
        // One message, so one round trip: PostgreSQL runs the SELECTs only if the BEGIN
        // went through (a failed statement ends a multi-statement query), so the lock is
        // never taken, nor anything written, outside the transaction. The audit chain's
        // head comes with it, read under the lock: every append of the transaction
        // builds on it without a query of its own (`store/audit.rs`). (`audit.seq`: a
        // bare `seq` would order by the text column of the same name, "9" after "10".)
        // Before it, the newest policy's digest (one row, NULL before any): each write
        // checks it is the one this replica decides by (`store/in_force.rs`). Both are
        // statements of their own, so that their snapshots are taken after the lock.
        let sql = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; \
             SELECT txid_current()::text, pg_advisory_xact_lock({WRITE_LOCK})::text; \
             SELECT (SELECT policy_digest FROM meta WHERE id = 1); \
             SELECT seq::text, hash FROM audit ORDER BY audit.seq DESC LIMIT 1"
        );
        conn.abandon();
        let (rows, answers) = conn.simple_then(&sql, ahead)?;
        conn.set_writing(true);
        let mut rows = rows.into_iter();
        let xid = rows
            .next()
            .and_then(|row| row.into_iter().next().flatten())
            .and_then(|xid| xid.parse::<i64>().ok())
            .ok_or_else(|| StoreError::Corrupt("txid_current() returned no number".into()))?;
        let newest = rows.next().and_then(|row| row.into_iter().next().flatten());
        conn.policy_stale.set(super::super::in_force::stale(
            &self.policy_in_force(),
            newest.as_deref(),
        ));
        if let Some(mut head) = rows.next() {
            let hash = head.pop().flatten();
            let seq = head.pop().flatten().and_then(|seq| seq.parse::<i64>().ok());
            if let (Some(seq), Some(hash), true) = (seq, hash, head.is_empty()) {
                conn.set_audit_head(seq, &hash);
            }
        }
        Ok((xid, answers))
    }

    /// Commits transaction `xid` on `conn` (notifying the other replicas) and returns
    /// once it is durable. When the connection fails during COMMIT, asks PostgreSQL
    /// whether it committed before answering.
    pub(super) fn end_write(&self, conn: &Pooled, xid: i64) -> Result<(), StoreError> {
        // The last audit event this transaction appended, if any: proof of its COMMIT
        // that does not depend on transaction ids (see `Pool::outcome`).
        let head = conn.audit_head();
        // Only writes that name what they touch leave every token as it was; the other
        // replicas hear it from the payload (`store/credentials.rs`).
        let credentials_kept = !conn.touched_everything();
        conn.set_writing(false);
        let notify = if credentials_kept {
            format!("NOTIFY {CHANNEL}, '{KEPT}'; COMMIT")
        } else {
            format!("NOTIFY {CHANNEL}; COMMIT")
        };
        match conn.batch(&notify) {
            Ok(()) => {
                conn.keep();
                if !credentials_kept {
                    self.credentials.changed();
                }
                self.committed();
                Ok(())
            }
            Err(StoreError::Unavailable(why)) => {
                // Its outcome is not known yet: it may have changed a credential.
                if !credentials_kept {
                    self.credentials.changed();
                }
                self.resolve(xid, head.as_ref(), why)
            }
            Err(e) => {
                // Refused, not lost: a statement of this transaction failed before, most
                // likely one sent without waiting (`Conn::put`), whose own error was not
                // read. Nothing committed; said here so that it can be looked into.
                tracing::warn!(
                    error = %e,
                    "a write transaction could not commit: a statement in it failed"
                );
                Err(e)
            }
        }
    }

    /// A COMMIT whose answer was lost: asks PostgreSQL what became of it.
    fn resolve(
        &self,
        xid: i64,
        head: Option<&(i64, String)>,
        why: String,
    ) -> Result<(), StoreError> {
        match self.pool.outcome(xid, head) {
            Ok(true) => {
                tracing::warn!(xid, "the connection failed during COMMIT; it committed");
                self.committed();
                Ok(())
            }
            // It did not commit because the server went away (a shutdown, a
            // crash): nothing was done, and a retry may succeed.
            Ok(false) => Err(StoreError::Unavailable(format!(
                "the connection failed during COMMIT and the transaction did not \
                 commit: {why}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Ends a transaction that will not commit; the connection is pooled again only if
    /// the ROLLBACK went through.
    pub(super) fn roll_back(conn: &Pooled) {
        conn.set_writing(false);
        if conn.batch("ROLLBACK").is_ok() {
            conn.keep();
        }
    }
}
