//! The writes of one write of a SQLite batch (`writer/batch.rs`), held back until
//! something needs them applied, so that most writes need no SAVEPOINT; and the audit
//! chain's head as the batch left it.
//!
//! A batch runs many writes in one transaction, and one that fails must leave no trace
//! while the others commit. A SAVEPOINT around each gives that, at a price: inside a
//! savepoint SQLite copies every page a write modifies for the first time into the
//! savepoint's journal, and the pages a write touches (the newest leaves of each table
//! and index) are the same for every write of a batch, so each write copied them again.
//! Measured under load (32 clients, `perf`), those copies were about a sixteenth of the
//! writer thread's time.
//!
//! So, as on PostgreSQL (`pg/defer.rs`), the INSERTs a write makes without needing an
//! answer (`Tx::put`) are kept, their parameters copied, until the write ends. Most
//! writes read first and then only put: when they succeed, their INSERTs are applied one
//! after the other and no savepoint was needed; when they fail, the INSERTs are dropped
//! and nothing reached the database. Only when a write sends a statement after a held
//! INSERT (a read that might see it, a write whose answer it needs) does it take its
//! savepoint first and apply what it held: from there on it is undone as before.
//!
//! An INSERT applied at the end that fails (it was checked not to clash, so only a
//! broken database or disk makes it fail) is undone by SQLite itself (each statement is
//! atomic), so the write fails alone when it was the first; after some of its INSERTs
//! were applied, nothing can undo those alone, and the whole batch is rolled back
//! ([`Applied::Torn`]): on PostgreSQL too a failed pipelined INSERT ends the batch.

use std::cell::{Cell, RefCell};

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, Value};

use crate::store::sql::Param;
use crate::store::{StoreError, exec};

/// What the batch keeps for its writes (one at a time).
#[derive(Debug, Default)]
pub(in crate::store) struct Held {
    /// This write must be undoable without undoing the batch's earlier ones: it holds its
    /// INSERTs, and takes a savepoint before anything else of it reaches the database.
    guard: Cell<bool>,
    /// The savepoint was taken: this write is undone by `ROLLBACK TO`.
    taken: Cell<bool>,
    /// INSERTs not applied yet, in order.
    writes: RefCell<Vec<Write>>,
    /// The audit chain's head as this batch's transaction left it (it holds the write
    /// lock: nobody else appends meanwhile); forgotten when any write is undone.
    head: RefCell<Option<(i64, String)>>,
    /// SAVEPOINTs this batch's writes took.
    savepoints: Cell<u64>,
}

/// One held statement.
#[derive(Debug)]
struct Write {
    sql: String,
    params: Vec<Value>,
    /// It must change exactly one row.
    one_row: bool,
}

/// How applying a write's held INSERTs at its end went.
#[derive(Debug)]
pub(in crate::store) enum Applied {
    /// All applied (or none held).
    Done,
    /// Nothing of the write reached the database: it fails alone.
    Failed(StoreError),
    /// Some were applied, then one failed: nothing can undo the first ones alone.
    Torn(StoreError),
}

impl Held {
    /// A write begins; `guard`: an earlier write of the batch is kept.
    pub(super) fn begin(&self, guard: bool) {
        self.guard.set(guard);
        self.taken.set(false);
        self.writes.borrow_mut().clear();
    }

    /// SAVEPOINTs this batch's writes took.
    pub(super) fn savepoints(&self) -> u64 {
        self.savepoints.get()
    }

    /// Whether the write took its savepoint (its end must release or roll back to it).
    pub(super) fn taken(&self) -> bool {
        self.taken.get()
    }

    /// The write failed or panicked: what it held is dropped, and the head it may have
    /// moved is forgotten.
    pub(super) fn abandon(&self) {
        self.writes.borrow_mut().clear();
        self.forget_head();
    }

    /// Keeps `sql` with `params` when this write holds its INSERTs; `false` when it
    /// does not (the caller runs the statement now).
    pub(in crate::store) fn hold(
        &self,
        sql: &str,
        params: &[&dyn Param],
        one_row: bool,
    ) -> Result<bool, StoreError> {
        if !self.guard.get() || self.taken.get() {
            return Ok(false);
        }
        let params = params
            .iter()
            .map(|p| owned(p.lite()))
            .collect::<Result<_, _>>()?;
        self.writes.borrow_mut().push(Write {
            sql: sql.to_owned(),
            params,
            one_row,
        });
        Ok(true)
    }

    /// Before a statement of this write goes out: if it writes (`writes`), or the write
    /// holds INSERTs the statement could read, the write takes its savepoint (once) and
    /// applies what it held, so that the statement runs after them, as written.
    pub(in crate::store) fn before_send(
        &self,
        conn: &Connection,
        writes: bool,
    ) -> Result<(), StoreError> {
        if !self.guard.get() || self.taken.get() {
            return Ok(());
        }
        if !writes && self.writes.borrow().is_empty() {
            return Ok(());
        }
        exec(conn, "SAVEPOINT w")?;
        self.taken.set(true);
        self.savepoints.set(self.savepoints.get() + 1);
        let held = std::mem::take(&mut *self.writes.borrow_mut());
        for w in &held {
            w.apply(conn).map_err(|(e, _)| e)?;
        }
        Ok(())
    }

    /// The write succeeded: applies what it still holds (see the module's comment).
    pub(super) fn apply(&self, conn: &Connection) -> Applied {
        let held = std::mem::take(&mut *self.writes.borrow_mut());
        for (i, w) in held.iter().enumerate() {
            if let Err((e, changed)) = w.apply(conn) {
                self.forget_head();
                // Without a savepoint, what was applied before stays applied.
                return if self.taken.get() || (i == 0 && !changed) {
                    Applied::Failed(e)
                } else {
                    Applied::Torn(e)
                };
            }
        }
        Applied::Done
    }

    /// The audit chain's head this batch knows, if any.
    pub(in crate::store) fn audit_head(&self) -> Option<(i64, String)> {
        self.head.borrow().clone()
    }

    /// Records the head an append of this batch just wrote.
    pub(in crate::store) fn set_audit_head(&self, seq: i64, hash: &str) {
        *self.head.borrow_mut() = Some((seq, hash.to_owned()));
    }

    /// Forgets the head (part of the batch's work was undone).
    pub(super) fn forget_head(&self) {
        self.head.borrow_mut().take();
    }
}

impl Write {
    /// Runs the statement; on failure, whether it changed anything (a statement that
    /// fails changes nothing; one meant for one row may have changed several).
    fn apply(&self, conn: &Connection) -> Result<(), (StoreError, bool)> {
        let n = conn
            .prepare_cached(&self.sql)
            .and_then(|mut s| s.execute(rusqlite::params_from_iter(self.params.iter())))
            .map_err(|e| (StoreError::from(e), false))?;
        if self.one_row {
            one_row(n).map_err(|e| (e, n > 0))?;
        }
        Ok(())
    }
}

/// A write meant for exactly one row changed `n`: an error unless `n` is 1.
pub(in crate::store) fn one_row(n: usize) -> Result<(), StoreError> {
    if n == 1 {
        return Ok(());
    }
    Err(StoreError::Corrupt(format!(
        "a write meant for one row changed {n}"
    )))
}

/// A parameter as an owned SQLite value.
fn owned(p: &dyn rusqlite::ToSql) -> Result<Value, StoreError> {
    Ok(match p.to_sql()? {
        ToSqlOutput::Borrowed(v) => v.into(),
        ToSqlOutput::Owned(v) => v,
        _ => {
            return Err(StoreError::Corrupt(
                "a parameter of a held write is not a plain SQLite value".into(),
            ));
        }
    })
}
