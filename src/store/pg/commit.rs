//! A write transaction's two ends: its BEGIN with the write lock and the audit chain's
//! head, and its COMMIT (with what is done when the answer is lost, and the next
//! transaction's BEGIN sent with it under load).

use super::{Pooled, Shared, StoreError, WRITE_LOCK};

/// The notification channel every write transaction notifies on commit.
pub(super) const CHANNEL: &str = "countersign_commits";

/// A write transaction's BEGIN, its id with the write lock, and the audit chain's head,
/// in one message (`audit.seq`: a bare `seq` would order by the text column of the same
/// name, "9" after "10"). `wait`: the lock is waited for
/// (`pg_advisory_xact_lock`, which answers "" as text); else tried
/// (`pg_try_advisory_xact_lock`), and the id is read, and so an id assigned, only if it
/// was taken: NULL otherwise.
fn begin_sql(wait: bool) -> String {
    let lock = if wait {
        format!("SELECT txid_current()::text, pg_advisory_xact_lock({WRITE_LOCK})::text")
    } else {
        format!(
            "SELECT CASE WHEN pg_try_advisory_xact_lock({WRITE_LOCK}) \
             THEN txid_current()::text END, ''"
        )
    };
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED; {lock}; \
         SELECT seq::text, hash FROM audit ORDER BY audit.seq DESC LIMIT 1"
    )
}

impl Shared {
    pub(super) fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Begins a write transaction on `conn` and takes [`WRITE_LOCK`]; returns its
    /// transaction id. The connection is marked abandoned (closed, not pooled) until
    /// [`Shared::end_write`] or a ROLLBACK goes through: never reused mid-transaction.
    pub(super) fn begin_write(conn: &Pooled) -> Result<i64, StoreError> {
        // One message, so one round trip: PostgreSQL runs the SELECTs only if the BEGIN
        // went through (a failed statement ends a multi-statement query), so the lock is
        // never taken, nor anything written, outside the transaction. The audit chain's
        // head comes with it, read under the lock: every append of the transaction
        // builds on it without a query of its own (`store/audit.rs`).
        conn.abandon();
        let rows = conn.simple_rows(&begin_sql(true))?;
        Self::begun(conn, rows)?
            .ok_or_else(|| StoreError::Corrupt("txid_current() returned no number".into()))
    }

    /// The transaction [`begin_sql`] began on `conn`, from its answer `rows`: its id if it
    /// holds the write lock (then it is a write transaction, with the chain's head known),
    /// `None` if the lock was not taken. Only the exact answers count: an id that parses,
    /// and "" beside it (what both forms answer once the lock is held).
    fn begun(conn: &Pooled, rows: Vec<Vec<Option<String>>>) -> Result<Option<i64>, StoreError> {
        let mut rows = rows.into_iter();
        let first = rows.next().unwrap_or_default();
        let xid = match first.as_slice() {
            [Some(xid), Some(locked)] if locked.is_empty() => xid.parse::<i64>().ok(),
            [None, Some(locked)] if locked.is_empty() => return Ok(None),
            _ => None,
        }
        .ok_or_else(|| StoreError::Corrupt("txid_current() returned no number".into()))?;
        conn.set_writing(true);
        if let Some(mut head) = rows.next() {
            let hash = head.pop().flatten();
            let seq = head.pop().flatten().and_then(|seq| seq.parse::<i64>().ok());
            if let (Some(seq), Some(hash), true) = (seq, hash, head.is_empty()) {
                conn.set_audit_head(seq, &hash);
            }
        }
        Ok(Some(xid))
    }

    /// Commits transaction `xid` on `conn` (notifying the other replicas) and returns
    /// once it is durable. When the connection fails during COMMIT, asks PostgreSQL
    /// whether it committed before answering.
    pub(super) fn end_write(&self, conn: &Pooled, xid: i64) -> Result<(), StoreError> {
        // The last audit event this transaction appended, if any: proof of its COMMIT
        // that does not depend on transaction ids (see `Pool::outcome`).
        let head = conn.audit_head();
        conn.set_writing(false);
        match conn.batch(&format!("NOTIFY {CHANNEL}; COMMIT")) {
            Ok(()) => {
                conn.keep();
                self.committed();
                Ok(())
            }
            Err(e) => self.commit_failed(xid, head.as_ref(), e),
        }
    }

    /// What a COMMIT of transaction `xid` (whose last audit event is `head`) that failed
    /// with `e` did: when the connection failed, PostgreSQL is asked before answering.
    fn commit_failed(
        &self,
        xid: i64,
        head: Option<&(i64, String)>,
        e: StoreError,
    ) -> Result<(), StoreError> {
        match e {
            StoreError::Unavailable(why) => match self.pool.outcome(xid, head) {
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
            },
            e => {
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

    /// [`Shared::end_write`], and with it (two messages sent together: one round trip)
    /// the next write transaction on `conn`, if the write lock is free at once: a writer
    /// with more queued saves the BEGIN's round trip. If another replica waits for the
    /// lock, it gets it (the `try` form never queues) and the begun transaction is rolled
    /// back. The COMMIT is judged by its own answer, as `end_write`'s; the next
    /// transaction's id, if begun.
    pub(super) fn end_write_and_begin(
        &self,
        conn: &Pooled,
        xid: i64,
    ) -> (Result<(), StoreError>, Option<i64>) {
        let head = conn.audit_head();
        conn.set_writing(false);
        let commit = format!("NOTIFY {CHANNEL}; COMMIT");
        let (committed, begun) = conn.batch_then_rows(&commit, &begin_sql(false));
        if let Err(e) = committed {
            // Not kept: closed, which ends whatever the second message began.
            return (self.commit_failed(xid, head.as_ref(), e), None);
        }
        self.committed();
        match begun.and_then(|rows| Self::begun(conn, rows)) {
            Ok(Some(next)) => (Ok(()), Some(next)),
            // Not taken (or no answer that parses): not a write transaction. Its ROLLBACK
            // goes without waiting; the pool flushes it when the connection comes back.
            Ok(None) => {
                conn.send("ROLLBACK");
                conn.keep();
                (Ok(()), None)
            }
            Err(_) => (Ok(()), None),
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
