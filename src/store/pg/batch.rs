//! Group commit on PostgreSQL: the operations handed to `Store::submit` queue for one
//! writer thread per replica, which runs those queued (up to 256) in one
//! transaction under the write lock, each `Store::write` undone alone if it fails (its
//! INSERTs held back, and a SAVEPOINT only when needed: `pg/defer.rs`), and
//! COMMITs once: one WAL flush, and one wait for the lock, for the whole batch. No
//! operation's result leaves before the COMMIT; if the batch does not commit, every
//! operation that wrote, or ran after a write it could have read, gets the failure.
//! The same rules as SQLite's batches (`store/writer/batch.rs`).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ahead::Answer;
use super::defer::Held;
use super::{Conn, Pooled, Shared};
use crate::store::StoreError;
use crate::store::ahead::Touch;
use crate::store::writer::Job;
use crate::store::writer::{AHEAD_STALE, AHEAD_UNUSED, AHEAD_USED, Threads, Work, spawn};

thread_local! {
    /// The batch this thread (a writer thread) is running, if any.
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// A batch in progress on the writer thread.
struct Batch {
    /// Which store it belongs to (a test process opens many).
    store: u64,
    /// Its transaction has begun: the plans are done (`store/ahead.rs`).
    begun: bool,
    /// The read ahead the plan being run recorded.
    planned: Option<Planned>,
    /// `None` when no connection could be had (then `aborted` says why).
    conn: Option<Pooled>,
    /// The operation being run has kept a write.
    wrote: bool,
    /// Some operation of this batch has kept a write: later ones may have read it.
    dirty: bool,
    /// The transaction is lost (or never began): nothing of this batch commits.
    aborted: Option<StoreError>,
    /// Savepoints made so far: each write's has a name of its own.
    savepoints: u32,
}

fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        other => StoreError::CommitFailed(other.to_string()),
    }
}

impl Batch {
    fn write<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        if let Some(why) = &self.aborted {
            return Err(copy(why).into());
        }
        let Some(conn) = &self.conn else {
            return Err(StoreError::Unavailable("no database connection".into()).into());
        };
        crate::store::in_force::check(conn)?;
        // Each write is an operation of the connection (`Conn::begin_op`): its INSERTs
        // are held back, and sent when it succeeds; it takes a SAVEPOINT (never waited
        // for) only when it must send something before it ends (`pg/defer.rs`).
        // None can fail unseen. A failed statement leaves the transaction aborted, and
        // only a ROLLBACK TO a savepoint made before the failure could mend it. Each
        // write's savepoint has a name of its own, and a write only ever rolls back to
        // its own: if it was made before the failure, the failure is this write's,
        // undone with it; if after, it was refused (the transaction was already
        // aborted) and the ROLLBACK TO fails too, which aborts the batch. A write that
        // took no savepoint sent nothing before it ended, so there is nothing of it to
        // undo; what it sends when it ends (its held INSERTs) is never undone alone. So
        // an earlier write told nothing of a failure is never undone under it: either
        // the batch's COMMIT fails (its NOTIFY is refused in an aborted transaction) and
        // every write of it is reported failed, or nothing failed.
        self.savepoints += 1;
        conn.begin_op(format!("w{}", self.savepoints));
        // If `f` panics (the batch goes on: `run` catches it), its half-done write is
        // undone, never committed with the batch.
        let mut undo = UndoOnUnwind(Some(conn));
        let mark = crate::store::after::mark();
        let out = f(conn);
        undo.0 = None;
        if out.is_err() {
            crate::store::after::undo_to(mark);
        }
        match out {
            Ok(out) => {
                // What it held goes out now; a failure of it aborts the transaction.
                let _ = conn.end_op(true);
                self.wrote = true;
                self.dirty = true;
                Ok(out)
            }
            Err(e) => {
                // Undo exactly this write; if even that fails, the whole batch goes.
                if let Err(undo) = conn.end_op(false) {
                    self.aborted = Some(copy(&undo));
                }
                Err(e)
            }
        }
    }
}

/// A plan's read to be sent ahead, and what it depends on.
struct Planned {
    /// The keys of what it depends on ([`Touch::key`]).
    reads: Vec<u64>,
    queries: Vec<Held>,
}

/// Undoes a write when dropped armed (its closure panicked). If that fails, the
/// transaction is aborted and the batch's COMMIT (with its NOTIFY) fails.
struct UndoOnUnwind<'c>(Option<&'c Conn>);

impl Drop for UndoOnUnwind<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            conn.abandon_op();
        }
    }
}

/// An operation's read sent ahead: what it depends on, and its answer.
type Offer = Option<(Vec<u64>, Answer)>;

/// Begins `batch`'s transaction with the `planned` reads sent ahead (one per operation,
/// in order): its transaction id, and each operation's offer. A batch that could not
/// begin is marked aborted. Either way the batch has begun: no more plans.
fn begin(
    shared: &Shared,
    batch: Option<&mut Batch>,
    planned: Vec<Option<Planned>>,
) -> (Option<i64>, Vec<Offer>) {
    let Some(batch) = batch else {
        return (None, Vec::new());
    };
    batch.begun = true;
    let (Some(conn), None) = (&batch.conn, &batch.aborted) else {
        return (None, Vec::new());
    };
    let ahead: Vec<&[Held]> = planned
        .iter()
        .map(|p| p.as_ref().map_or(&[][..], |p| p.queries.as_slice()))
        .collect();
    match shared.begin_write_ahead(conn, &ahead) {
        Ok((xid, answers)) => {
            let offers = planned
                .into_iter()
                .zip(answers)
                .map(|(p, rows)| p.map(|p| (p.reads, Answer::new(p.queries, rows))))
                .collect();
            (Some(xid), offers)
        }
        Err(e) => {
            batch.aborted = Some(e);
            (None, Vec::new())
        }
    }
}

/// Whether this thread runs a batch of store `store` now (or is inside a store call of
/// one already, which the calls below then refuse).
pub(super) fn open_here(store: u64) -> bool {
    BATCH.with(|b| match b.try_borrow() {
        Ok(b) => b.as_ref().is_some_and(|b| b.store == store && b.begun),
        Err(_) => true,
    })
}

/// Records `f` as the read ahead of the operation being planned on this thread, if a
/// batch of `store` is planning here (else nothing: `f` does not run).
pub(super) fn record<T>(
    store: u64,
    reads: &[Touch<'_>],
    f: impl FnOnce(&Conn) -> Result<T, StoreError>,
) {
    BATCH.with(|b| {
        let Ok(mut b) = b.try_borrow_mut() else {
            return;
        };
        let Some(batch) = b.as_mut().filter(|b| b.store == store && !b.begun) else {
            return;
        };
        let Some(conn) = &batch.conn else {
            return;
        };
        batch.planned = conn.record(f).map(|queries| Planned {
            reads: reads.iter().map(Touch::key).collect(),
            queries,
        });
    });
}

/// A write of the operation being run, in its own SAVEPOINT of the batch.
pub(super) fn write<T, E: From<StoreError>>(f: impl FnOnce(&Conn) -> Result<T, E>) -> Result<T, E> {
    BATCH.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => match b.as_mut() {
            Some(batch) => batch.write(f),
            None => Err(StoreError::Nested.into()),
        },
        Err(_) => Err(StoreError::Nested.into()),
    })
}

/// A read of the operation being run, on the batch's connection (it sees the batch's
/// writes so far).
pub(super) fn read<T, E: From<StoreError>>(f: impl FnOnce(&Conn) -> Result<T, E>) -> Result<T, E> {
    BATCH.with(|b| match b.try_borrow() {
        Ok(b) => match b.as_ref() {
            Some(batch) => match (&batch.aborted, &batch.conn) {
                (None, Some(conn)) => f(conn),
                (Some(why), _) => Err(copy(why).into()),
                (None, None) => {
                    Err(StoreError::Unavailable("no database connection".into()).into())
                }
            },
            None => Err(StoreError::Nested.into()),
        },
        Err(_) => Err(StoreError::Nested.into()),
    })
}

/// Starts the writer thread of `store` (the SQLite writer's loop, `writer::spawn`).
pub(super) fn start(shared: Arc<Shared>, store: u64) -> Option<Threads> {
    spawn("countersign-pg-writer", move |jobs, work| {
        run(&shared, store, jobs, work)
    })
}

/// Runs one batch: every job's plan, then every job in one transaction under the write
/// lock (begun with the reads the plans sent ahead), one COMMIT, then the results.
fn run(shared: &Shared, store: u64, jobs: Vec<Job>, work: &Work) {
    crate::store::after::discard();
    let (conn, aborted) = match shared.pool.get() {
        Ok(conn) => (Some(conn), None),
        Err(e) => (None, Some(e)),
    };
    BATCH.with(|b| {
        *b.borrow_mut() = Some(Batch {
            store,
            begun: false,
            planned: None,
            conn,
            wrote: false,
            dirty: false,
            aborted,
            savepoints: 0,
        });
    });
    let (mut runs, mut planned) = (Vec::with_capacity(jobs.len()), Vec::new());
    for job in jobs {
        let run = crate::store::writer::plan(job);
        let read = BATCH.with(|b| b.borrow_mut().as_mut().and_then(|b| b.planned.take()));
        if let Some(run) = run {
            runs.push(run);
            planned.push(read);
        }
    }
    let (xid, mut offers) = BATCH.with(|b| begin(shared, b.borrow_mut().as_mut(), planned));
    // Whether an operation may depend on uncommitted writes: its own, or those of
    // earlier operations it may have read. If the batch does not commit, such an
    // operation's answer is void and it gets the failure instead.
    // Each operation is offered its read's answer, unless a write kept before it in the
    // batch touched what that read depends on.
    let mut offers = offers.drain(..);
    let count = |what: usize| work.ahead[what].fetch_add(1, Ordering::Relaxed);
    let offered = std::cell::Cell::new(false);
    let finishes = crate::store::writer::run_jobs(
        runs,
        || {
            let offer = offers.next().flatten();
            BATCH.with(|b| {
                b.borrow_mut().as_mut().is_some_and(|batch| {
                    offered.set(false);
                    if let (Some(conn), None, Some((reads, answer))) =
                        (&batch.conn, &batch.aborted, offer)
                    {
                        if conn.touched_any(&reads) {
                            count(AHEAD_STALE);
                        } else {
                            offered.set(true);
                            conn.offer(Some(answer));
                        }
                    }
                    batch.wrote = false;
                    batch.dirty
                })
            })
        },
        || {
            BATCH.with(|b| {
                b.borrow().as_ref().is_some_and(|batch| {
                    if let Some(conn) = &batch.conn
                        && offered.get()
                    {
                        count(if conn.answered() {
                            AHEAD_USED
                        } else {
                            AHEAD_UNUSED
                        });
                        conn.offer(None);
                    }
                    batch.wrote
                })
            })
        },
    );
    let Some(batch) = BATCH.with(|b| b.borrow_mut().take()) else {
        return;
    };
    let result = match (batch.aborted, batch.conn, xid) {
        (None, Some(conn), Some(xid)) => shared.end_write(&conn, xid),
        (aborted, conn, _) => {
            if let Some(conn) = &conn {
                Shared::roll_back(conn);
            }
            Err(aborted.unwrap_or_else(|| StoreError::Unavailable("no database connection".into())))
        }
    };
    // Before any answer leaves: what committed is counted by then.
    crate::store::after::settle(&result);
    for (finish, _, depends) in finishes {
        finish(match (&result, depends) {
            (Err(e), true) => Err(copy(e)),
            _ => Ok(()),
        });
    }
}
