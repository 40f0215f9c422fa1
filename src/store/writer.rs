//! The write connection and group commit on a dedicated writer thread.
//!
//! The server hands whole operations to [`Store::submit`](super::Store::submit). The
//! writer thread takes every operation queued, runs them one after another inside one
//! shared `BEGIN IMMEDIATE` (each `Store::write` of an operation in its own SAVEPOINT),
//! COMMITs once — one fsync for the batch — and only then hands each operation its
//! result. While a batch commits, the next one queues up, so batches grow with load and
//! nothing waits on a timer. No operation's result leaves before its writes are on disk.
//!
//! Inside a batch an operation's own `Store::write` and `Store::read` calls run on the
//! batch's connection, so an operation sees its own (and its batch's earlier) changes
//! as if each write had committed at once. Writers on other threads (CLI commands,
//! tests, list's expiry) write alone: they get the connection between two batches,
//! ahead of the next batch, and return after their own COMMIT.
//!
//! The batch itself (its transaction, each write's SAVEPOINT, running and committing
//! it) is in `writer/batch.rs`; this file has the shared connection, writes made alone
//! and the thread.

mod batch;
pub(in crate::store) mod checkpoint;
pub(in crate::store) mod held;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use self::checkpoint::Checkpointer;
use super::{StoreError, lock};

pub(super) use batch::{batch_is_open_here, read_in_batch, write_in_batch};

/// Most operations in one batch; bounds the latency a batch adds to its first member.
const MAX_BATCH: usize = 256;

/// How long the writer thread keeps looking for the next operation after a batch
/// before it sleeps. Waking a sleeping thread costs tens of microseconds on a VM, and a
/// client's next write (an approval after its create) often comes within this: one
/// client's approve p50 0.65-0.72 -> 0.48-0.54 ms, 32 clients unchanged; 100 us caught
/// too few, 1 ms cost 32 clients a few percent (docs/benchmark.md, lab notes).
const LINGER: Duration = Duration::from_micros(300);

/// One queued operation, in two steps on the writer thread: its plan, called before the
/// batch's transaction begins (on PostgreSQL it may name the read it will make first, to
/// be sent with the BEGIN: `store/ahead.rs`), returns the run, which runs inside the
/// batch and returns what to do once the batch's COMMIT has succeeded (`Ok`) or failed
/// (`Err`, with why). Both backends' writer threads queue these (`pg/batch.rs` too).
pub(super) type Job = Box<dyn FnOnce() -> Run + Send>;
/// An operation's run (see [`Job`]).
pub(super) type Run = Box<dyn FnOnce() -> Finish>;
/// Delivers an operation's outcome after the COMMIT.
pub(super) type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// The write connection, shared by the writer thread and writers that write alone.
pub(super) struct Shared {
    /// Checkpoints the WAL beside the writer (`checkpoint.rs`, which also has the
    /// methods that use it); `None`: SQLite's automatic ones, inside the COMMIT. First,
    /// so that it is dropped (its thread stopped) before the write connection closes.
    checkpointer: Option<Checkpointer>,
    slot: Mutex<Slot>,
    /// Signalled whenever the connection comes back.
    free: Condvar,
    /// Bumped after every COMMIT that changed something.
    commits: tokio::sync::watch::Sender<u64>,
    /// Batches committed and operations run in them (for tests and logs).
    pub(super) batches: AtomicU64,
    pub(super) members: AtomicU64,
    /// SAVEPOINTs the batches' writes took (`held.rs`; for tests).
    pub(super) savepoints: AtomicU64,
}

struct Slot {
    /// `None` while the writer thread runs a batch on it.
    conn: Option<Connection>,
    /// Writers on other threads waiting for the connection; they go before the next batch.
    alone_waiting: usize,
    /// The store is gone and the connection closed.
    closed: bool,
}

thread_local! {
    /// This thread is inside a write made alone (its closure is running).
    static ALONE: Cell<bool> = const { Cell::new(false) };
}

/// Clears [`ALONE`] when the write alone ends, however it ends.
struct UnmarkAlone;

impl Drop for UnmarkAlone {
    fn drop(&mut self) {
        ALONE.with(|a| a.set(false));
    }
}

/// Wakes every waiter for the connection when dropped.
struct WakeOnDrop<'a>(&'a Condvar);

impl Drop for WakeOnDrop<'_> {
    fn drop(&mut self) {
        self.0.notify_all();
    }
}

impl Shared {
    pub(super) fn new(conn: Connection, checkpointer: Option<Checkpointer>) -> Self {
        Shared {
            checkpointer,
            slot: Mutex::new(Slot {
                conn: Some(conn),
                alone_waiting: 0,
                closed: false,
            }),
            free: Condvar::new(),
            commits: tokio::sync::watch::Sender::new(0),
            batches: AtomicU64::new(0),
            members: AtomicU64::new(0),
            savepoints: AtomicU64::new(0),
        }
    }

    pub(super) fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// One write in its own transaction, on the caller's thread, between two batches.
    pub(super) fn write_alone<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        if ALONE.with(Cell::get) {
            // A write inside a write's closure would wait for itself.
            return Err(StoreError::Nested.into());
        }
        let mut slot = lock(&self.slot);
        slot.alone_waiting += 1;
        let mut slot = self
            .free
            .wait_while(slot, |s| s.conn.is_none() && !s.closed)
            .unwrap_or_else(|p| p.into_inner());
        slot.alone_waiting -= 1;
        // Wakes the writer thread (waiting for writers alone to finish) however this
        // ends, a panic in `f` included.
        let _wake = WakeOnDrop(&self.free);
        let result = match slot.conn.as_mut() {
            Some(conn) => {
                ALONE.with(|a| a.set(true));
                let _unmark = UnmarkAlone;
                super::after::discard();
                self.before_begin(conn);
                let result = transaction(conn, f);
                if result.is_ok() {
                    self.after_commit(conn);
                }
                super::after::settle(&result);
                result
            }
            None => Err(StoreError::Closed.into()),
        };
        drop(slot);
        if result.is_ok() {
            self.committed();
        }
        result
    }

    /// The connection, for one batch; writers that wait to write alone go first.
    /// `None` once the store has closed it.
    fn take(&self) -> Option<Connection> {
        let slot = lock(&self.slot);
        let mut slot = self
            .free
            .wait_while(slot, |s| {
                !s.closed && (s.conn.is_none() || s.alone_waiting > 0)
            })
            .unwrap_or_else(|p| p.into_inner());
        slot.conn.take()
    }

    /// Closes the connection (SQLite checkpoints and removes the WAL when the last
    /// connection closes), after the batch that has it, if any; later batches fail.
    pub(super) fn close(&self) {
        // Its connection first: the last one to close removes the WAL.
        if let Some(c) = &self.checkpointer {
            c.stop();
        }
        let slot = lock(&self.slot);
        let mut slot = self
            .free
            .wait_while(slot, |s| s.conn.is_none() && !s.closed)
            .unwrap_or_else(|p| p.into_inner());
        slot.closed = true;
        let conn = slot.conn.take();
        drop(slot);
        self.free.notify_all();
        drop(conn);
    }

    fn give_back(&self, conn: Connection) {
        lock(&self.slot).conn = Some(conn);
        self.free.notify_all();
    }
}

/// One finished operation of a batch: its reply, whether it wrote, and whether its
/// answer depends on the batch committing (it wrote, or ran after a write it may have
/// read).
pub(super) type Finished = (Finish, bool, bool);

/// Runs the operations of a batch one by one, for both backends' writer threads.
/// `start` is called before each and says whether an earlier one wrote (and resets the
/// batch's flag of the next one's own writes); `wrote` after, whether it did. A
/// panicking operation is logged and left out (its reply channel drops, so its caller
/// is told the write was abandoned); what it had written stays in the batch like any
/// other write.
pub(super) fn run_jobs(
    jobs: Vec<Run>,
    mut start: impl FnMut() -> bool,
    mut wrote: impl FnMut() -> bool,
) -> Vec<Finished> {
    let mut finishes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let dirty_before = start();
        let finish = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        let wrote = wrote();
        match finish {
            Ok(finish) => finishes.push((finish, wrote, dirty_before || wrote)),
            Err(payload) => tracing::error!(
                panic = panic_message(payload.as_ref()),
                "a store operation panicked; its caller is told the write was abandoned"
            ),
        }
    }
    finishes
}

/// The plan of `job` (see [`Job`]): its run, or `None` if the plan panicked (logged; its
/// caller is told the write was abandoned).
pub(super) fn plan(job: Job) -> Option<Run> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
        Ok(run) => Some(run),
        Err(payload) => {
            tracing::error!(
                panic = panic_message(payload.as_ref()),
                "a store operation's plan panicked; its caller is told the write was abandoned"
            );
            None
        }
    }
}

/// The text of a panic's payload, for the log.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Queues `op` for the writer thread `threads` (`None`: it could not be started) and
/// resolves with its result once its batch is durable: the `submit` of both backends.
pub(super) fn submit<P: 'static, T: Send + 'static>(
    threads: Option<&Threads>,
    plan: impl FnOnce() -> P + Send + 'static,
    op: impl FnOnce(P) -> T + Send + 'static,
) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
    let (reply, result) = tokio::sync::oneshot::channel();
    let sent = threads.is_some_and(|t| t.jobs.send(job(plan, op, reply)).is_ok());
    async move {
        if !sent {
            return Err(StoreError::CommitFailed(
                "the writer thread is not running".into(),
            ));
        }
        result
            .await
            .map_err(|_| StoreError::CommitFailed("the write was abandoned".into()))?
    }
}

/// The writer thread of one store.
pub(super) struct Threads {
    /// Where operations queue; dropping it ends the thread.
    pub(super) jobs: mpsc::Sender<Job>,
    writer: std::thread::JoinHandle<()>,
    /// What it has done.
    work: Arc<Work>,
}

/// What a writer thread has done since it started (either backend), for the metrics.
#[derive(Debug, Default)]
pub(super) struct Work {
    /// Batches run (committed or not), counted as each begins.
    pub(super) batches: AtomicU64,
    /// Operations run in them.
    pub(super) operations: AtomicU64,
    /// Time spent running them, from the batch's first operation to its answers, in
    /// nanoseconds: near the whole time, the writer is the bottleneck (on PostgreSQL it
    /// waits for the database most of it, so its CPU time does not show it).
    pub(super) busy_ns: AtomicU64,
    /// Reads sent ahead (PostgreSQL, `store/ahead.rs`), by what became of them:
    /// [`AHEAD_USED`], [`AHEAD_STALE`], [`AHEAD_UNUSED`].
    pub(super) ahead: [AtomicU64; 3],
}

/// A read sent ahead answered its operation's first read.
pub(super) const AHEAD_USED: usize = 0;
/// A write earlier in the batch touched what it read: the operation read again.
pub(super) const AHEAD_STALE: usize = 1;
/// The operation's first statement was not that read: it read for itself.
pub(super) const AHEAD_UNUSED: usize = 2;

impl Threads {
    /// What this writer thread has done.
    pub(super) fn work(&self) -> &Work {
        &self.work
    }

    /// Whether the calling thread is this writer thread.
    pub(super) fn runs_here(&self) -> bool {
        self.writer.thread().id() == std::thread::current().id()
    }

    /// Ends the writer thread (after the operations already queued) and waits for it.
    pub(super) fn stop(self) {
        drop(self.jobs);
        let _ = self.writer.join();
    }
}

/// Starts the writer thread of store `store`.
///
/// Checkpoints run beside it (`checkpoint.rs`): a thread of their own copies the WAL
/// back while the writer goes on, and the writer finishes the copy now and then before a
/// batch (a RESTART), since a checkpoint beside a writer that never stops never catches
/// up, and only a WAL copied whole starts again from its beginning (docs/benchmark.md,
/// "Lab notes").
pub(super) fn start(shared: Arc<Shared>, store: u64) -> Option<Threads> {
    spawn("countersign-writer", move |jobs, _| {
        shared.run_batch(store, jobs)
    })
}

/// A writer thread named `name`: takes every operation queued (up to [`MAX_BATCH`]) and
/// hands them to `run` as one batch (with the thread's counts), until the sender is
/// dropped. `None` (logged) if the OS refuses a thread.
pub(super) fn spawn(
    name: &str,
    mut run: impl FnMut(Vec<Job>, &Work) + Send + 'static,
) -> Option<Threads> {
    let (tx, rx) = mpsc::channel::<Job>();
    let work = Arc::new(Work::default());
    let counted = Arc::clone(&work);
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            while let Some(first) = next_job(&rx) {
                let began = Instant::now();
                let mut jobs = Vec::with_capacity(16);
                jobs.push(first);
                jobs.extend(rx.try_iter().take(MAX_BATCH - 1));
                // Counted before any answer leaves; its time once it is done.
                counted.batches.fetch_add(1, Ordering::Relaxed);
                counted
                    .operations
                    .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                run(jobs, &counted);
                let busy = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
                counted.busy_ns.fetch_add(busy, Ordering::Relaxed);
            }
        });
    match spawned {
        Ok(writer) => Some(Threads {
            jobs: tx,
            writer,
            work,
        }),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the database writer thread");
            None
        }
    }
}

/// The next operation queued, `None` once the sender is gone: looked for again and
/// again for up to [`LINGER`] (giving the CPU away between looks, so that a thread with
/// work runs first), then waited for asleep.
fn next_job(rx: &mpsc::Receiver<Job>) -> Option<Job> {
    let until = Instant::now() + LINGER;
    loop {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// Wraps `plan` and `op` as a job whose result goes to `reply` after the COMMIT; a
/// failed COMMIT replaces the result of an operation that wrote.
fn job<P: 'static, T: Send + 'static>(
    plan: impl FnOnce() -> P + Send + 'static,
    op: impl FnOnce(P) -> T + Send + 'static,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
) -> Job {
    Box::new(move || {
        let planned = plan();
        Box::new(move || {
            let out = op(planned);
            Box::new(move |committed: Result<(), StoreError>| {
                let _ = reply.send(committed.map(|()| out));
            })
        })
    })
}

/// `f` in its own `BEGIN IMMEDIATE` ... COMMIT; `Err` from `f` rolls back.
fn transaction<T, E: From<StoreError>>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    let out = f(&tx)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(out)
}

/// A process-wide number for each opened store, so a writer thread knows its own.
pub(super) fn next_store_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
