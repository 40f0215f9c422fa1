//! One batch on the writer thread: its shared transaction, each write after the first
//! kept one undoable alone (its INSERTs held back, or in a SAVEPOINT: `held.rs`),
//! noticing when SQLite abandoned it, and the COMMIT that hands out every result.

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use rusqlite::Connection;

use super::held::{Applied, Held};
use super::{Job, Shared};
use crate::store::{StoreError, exec};

/// Why the members of a batch lost their writes, when SQLite abandoned the transaction.
const ROLLED_BACK: &str = "the database rolled the batch back after an error";

thread_local! {
    /// The batch this thread (a writer thread) is running, if any.
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// A batch in progress on the writer thread.
struct Batch {
    /// Which store the batch belongs to (a test process opens many).
    store: u64,
    conn: Connection,
    /// The operation being run has kept a write.
    wrote: bool,
    /// Some operation of this batch has kept a write: later operations may have read it.
    dirty: bool,
    /// SQLite gave up the transaction, or it never began: nothing of this batch commits.
    aborted: Option<String>,
    /// The held writes of the operation being run, and the audit chain's head.
    held: Held,
}

impl Batch {
    fn write<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Connection, &Held) -> Result<T, E>,
    ) -> Result<T, E> {
        self.notice_abort();
        if let Some(why) = &self.aborted {
            return Err(StoreError::CommitFailed(why.clone()).into());
        }
        let mark = crate::store::after::mark();
        // However the write ends but well (an error, a panic), what it held and the head
        // it may have moved are dropped.
        let mut abandon = Abandon {
            held: &self.held,
            armed: true,
        };
        let result = if self.dirty {
            self.held.begin(true);
            run_held(&self.conn, &self.held, &mut self.aborted, f)
        } else {
            // Nothing of the batch is kept yet: the transaction is this write's savepoint
            // (two statements and the savepoint's page copies fewer per batch).
            self.held.begin(false);
            run_first(&self.conn, &mut self.aborted, |c| f(c, &self.held))
        };
        abandon.armed = result.is_err();
        drop(abandon);
        if result.is_err() {
            crate::store::after::undo_to(mark);
        }
        // After some errors (disk full, I/O) SQLite rolls back the whole transaction by
        // itself: the members already in it lost their work and must hear so, and this
        // batch must never COMMIT, even if this write's closure went on to succeed.
        self.notice_abort();
        if let Some(why) = &self.aborted {
            return Err(StoreError::CommitFailed(why.clone()).into());
        }
        if result.is_ok() {
            self.wrote = true;
            self.dirty = true;
        }
        result
    }

    /// Marks the batch aborted if its transaction is gone (SQLite rolled it back).
    fn notice_abort(&mut self) {
        if self.aborted.is_none() && self.conn.is_autocommit() {
            self.aborted = Some(ROLLED_BACK.into());
        }
    }
}

/// Whether this thread is running a batch of store `store` right now (or is inside a
/// store call already, which `with_batch` then refuses).
pub(in crate::store) fn batch_is_open_here(store: u64) -> bool {
    BATCH.with(|b| match b.try_borrow() {
        Ok(b) => b.as_ref().is_some_and(|b| b.store == store),
        Err(_) => true,
    })
}

/// Runs a write of the operation being run in this thread's batch.
pub(in crate::store) fn write_in_batch<T, E: From<StoreError>>(
    f: impl FnOnce(&Connection, &Held) -> Result<T, E>,
) -> Result<T, E> {
    BATCH.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => match b.as_mut() {
            Some(batch) => batch.write(f),
            None => Err(StoreError::Nested.into()),
        },
        Err(_) => Err(StoreError::Nested.into()),
    })
}

/// Runs a read of the operation being run on this thread's batch connection.
pub(in crate::store) fn read_in_batch<T, E: From<StoreError>>(
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    BATCH.with(|b| match b.try_borrow() {
        Ok(b) => match b.as_ref() {
            Some(batch) => {
                if let Some(why) = &batch.aborted {
                    return Err(StoreError::CommitFailed(why.clone()).into());
                }
                f(&batch.conn)
            }
            None => Err(StoreError::Nested.into()),
        },
        Err(_) => Err(StoreError::Nested.into()),
    })
}

impl Shared {
    /// Runs one batch: every job in the shared transaction, one COMMIT, then the results.
    pub(super) fn run_batch(&self, store: u64, jobs: Vec<Job>) {
        // The store was closed: the operations are dropped and their callers told so.
        // Every plan first (on SQLite none reads ahead): then the transaction.
        let runs: Vec<_> = jobs.into_iter().filter_map(super::plan).collect();
        let Some(conn) = self.take() else {
            return;
        };
        crate::store::after::discard();
        self.before_begin(&conn);
        let began = exec(&conn, "BEGIN IMMEDIATE");
        BATCH.with(|b| {
            *b.borrow_mut() = Some(Batch {
                store,
                conn,
                wrote: false,
                dirty: false,
                aborted: began
                    .err()
                    .map(|e| format!("could not begin a transaction: {e}")),
                held: Held::default(),
            });
        });
        // Whether an operation may depend on uncommitted writes: its own, or those of
        // earlier operations it may have read. If the batch does not commit, such an
        // operation's answer is void and it gets the failure instead.
        let finishes = super::run_jobs(
            runs,
            || {
                BATCH.with(|b| {
                    b.borrow_mut().as_mut().is_some_and(|batch| {
                        batch.wrote = false;
                        batch.dirty
                    })
                })
            },
            || {
                BATCH.with(|b| {
                    b.borrow_mut().as_mut().is_some_and(|batch| {
                        batch.notice_abort();
                        batch.wrote
                    })
                })
            },
        );
        let Some(Batch {
            conn,
            aborted,
            held,
            ..
        }) = BATCH.with(|b| b.borrow_mut().take())
        else {
            return;
        };
        self.savepoints
            .fetch_add(held.savepoints(), Ordering::Relaxed);
        let result = match aborted {
            Some(why) => {
                if !conn.is_autocommit() {
                    rollback(&conn);
                }
                Err(why)
            }
            None => match exec(&conn, "COMMIT") {
                Ok(()) => {
                    self.after_commit(&conn);
                    Ok(())
                }
                Err(e) => {
                    // A failed COMMIT may have ended the transaction already (disk full).
                    if !conn.is_autocommit() {
                        rollback(&conn);
                    }
                    Err(describe(&e))
                }
            },
        };
        self.give_back(conn);
        // Before any answer leaves: what committed is counted by then.
        crate::store::after::settle(&result);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.members
            .fetch_add(finishes.len() as u64, Ordering::Relaxed);
        if result.is_ok() && finishes.iter().any(|(_, wrote, _)| *wrote) {
            self.committed();
        }
        for (finish, _, depends) in finishes {
            finish(match (&result, depends) {
                (Err(why), true) => Err(StoreError::CommitFailed(why.clone())),
                _ => Ok(()),
            });
        }
    }
}

/// Runs `f`, a write after the batch kept another, with its INSERTs held (`held.rs`):
/// if it took its SAVEPOINT, that is released if `f` returns `Ok` and rolled back on
/// `Err` or if `f` panics; if it did not, what it held is applied when it succeeds. If
/// that fails halfway, the whole transaction is rolled back and the batch `aborted`.
fn run_held<T, E: From<StoreError>>(
    conn: &Connection,
    held: &Held,
    aborted: &mut Option<String>,
    f: impl FnOnce(&Connection, &Held) -> Result<T, E>,
) -> Result<T, E> {
    let mut open = Savepoint {
        conn,
        held,
        open: true,
    };
    let out = f(conn, held)?;
    if held.taken() {
        if let Applied::Failed(e) | Applied::Torn(e) = held.apply(conn) {
            return Err(e.into());
        }
        exec(conn, "RELEASE w")?;
        open.open = false;
        return Ok(out);
    }
    open.open = false;
    match held.apply(conn) {
        Applied::Done => Ok(out),
        Applied::Failed(e) => Err(e.into()),
        Applied::Torn(e) => {
            if !conn.is_autocommit() {
                rollback(conn);
            }
            *aborted = Some(format!("a write failed halfway: {}", describe(&e)));
            Err(e.into())
        }
    }
}

/// Runs `f`, the first write of a batch to be kept, without a SAVEPOINT: if it fails
/// or panics, the whole transaction is rolled back (it holds nothing else) and a new one
/// begun for the rest of the batch; if that cannot begin, the batch is `aborted`.
fn run_first<T, E: From<StoreError>>(
    conn: &Connection,
    aborted: &mut Option<String>,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    let mut open = Restart {
        conn,
        aborted,
        open: true,
    };
    let out = f(conn)?;
    open.open = false;
    Ok(out)
}

/// Undoes the first write of a batch unless it succeeded (see [`run_first`]).
struct Restart<'c> {
    conn: &'c Connection,
    aborted: &'c mut Option<String>,
    open: bool,
}

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        if self.open {
            // After an aborting error SQLite has already rolled back.
            if !self.conn.is_autocommit() {
                rollback(self.conn);
            }
            if let Err(e) = exec(self.conn, "BEGIN IMMEDIATE") {
                *self.aborted = Some(format!("could not begin a transaction: {e}"));
            }
        }
    }
}

/// Rolls its savepoint back, if the write took it, unless released (the write failed
/// or panicked).
struct Savepoint<'c> {
    conn: &'c Connection,
    held: &'c Held,
    open: bool,
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if self.open && self.held.taken() {
            // After an aborting error SQLite has already rolled back; these then fail.
            // If undoing this write fails while the transaction lives, the whole
            // transaction goes: better the batch fails than keeps half a write.
            let undone =
                exec(self.conn, "ROLLBACK TO w").and_then(|()| exec(self.conn, "RELEASE w"));
            if undone.is_err() && !self.conn.is_autocommit() {
                let _ = exec(self.conn, "ROLLBACK");
            }
        }
    }
}

/// Drops a write's held INSERTs and the batch's audit head unless disarmed.
struct Abandon<'h> {
    held: &'h Held,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.held.abandon();
        }
    }
}

/// Ends a batch that will not commit. If even that fails, the next BEGIN fails too and
/// fails that batch; it is logged so that the cause is not lost.
fn rollback(conn: &Connection) {
    if let Err(e) = exec(conn, "ROLLBACK") {
        tracing::error!(error = %describe(&e), "could not roll back a failed batch");
    }
}

/// An error with its SQLite cause, for the members of a failed batch.
fn describe(e: &StoreError) -> String {
    match e {
        StoreError::Sqlite(cause) => cause.to_string(),
        other => other.to_string(),
    }
}
