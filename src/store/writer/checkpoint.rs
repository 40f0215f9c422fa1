//! WAL checkpoints beside the writer, not on it.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that brings the WAL past 1,000
//! frames: it copies the WAL's pages back into the database file and syncs that file
//! while the writer (and every operation queued behind it) waits. Under load the WAL
//! grows by tens of thousands of frames a second, so that was dozens of syncs a second,
//! and on a large database, whose pages lie all over the file, each took milliseconds
//! (docs/benchmark.md, lab notes of sessions 28 and 29).
//!
//! Here the write connection only notes how long the WAL is after each COMMIT (a WAL
//! hook instead of the automatic checkpoint), and every [`CYCLE`] new frames it wakes a
//! thread with a connection of its own. The thread copies the WAL back with PASSIVE
//! checkpoints while the writer goes on writing, until what is left is under
//! [`LEFT_ENOUGH`] frames (a PASSIVE checkpoint never catches up with a writer that keeps
//! writing), then runs a RESTART: it takes the write lock, copies that rest, syncs, and
//! waits for readers to leave the WAL, so that the next write starts the WAL again from
//! its beginning. Fewer, larger checkpoints sync the database file less often, and the
//! writer waits only for the last small part (docs/benchmark.md, session 29).
//!
//! Waiting is what a RESTART could do too much of: it holds the write lock while it
//! waits, and a long read (`audit verify` over a large log) stays in the WAL for
//! seconds. The thread's connection therefore waits at most [`WAIT_AT_MOST`] in all
//! (its own busy handler, not the store's 10 s), after which the RESTART gives up until
//! the next wake-up. Past [`FORCE_AT`] frames (a reader kept the WAL, or the thread fell
//! behind) the writer also checkpoints after each COMMIT as SQLite would (PASSIVE, never
//! waiting for anyone). Checkpoints never decide durability: a COMMIT is durable once its
//! WAL frames are synced, and a crash at any point of a checkpoint loses nothing.

use std::cell::Cell;
use std::ffi::c_int;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// Frames added to the WAL between two wake-ups of the checkpoint thread (frames are
/// 4 KiB pages; SQLite's own automatic checkpoint comes every 1,000).
pub(in crate::store) const CYCLE: u32 = 16_000;
/// What may be left to copy when the thread stops its PASSIVE passes for the RESTART.
const LEFT_ENOUGH: i64 = 1_000;
/// The most PASSIVE passes before a RESTART.
const PASSES: usize = 3;
/// WAL length from which the writer also checkpoints (PASSIVE) after each COMMIT: the
/// thread's RESTART did not start the WAL again within half a cycle.
pub(in crate::store) const FORCE_AT: u32 = CYCLE + CYCLE / 2;
/// The longest a checkpoint of the thread waits, in all, for the writer or readers.
pub(in crate::store) const WAIT_AT_MOST: Duration = Duration::from_millis(5);
/// One wait of the busy handlers here.
const WAIT_STEP: Duration = Duration::from_micros(100);

/// What became of a checkpoint (in the order of [`Checkpointer::counts`] and
/// `store::Stats::wal_checkpoints`).
#[derive(Clone, Copy)]
enum Outcome {
    /// The thread's PASSIVE one ran.
    Copied,
    /// The thread's RESTART copied everything and readers left: the WAL starts again.
    Restarted,
    /// The thread's RESTART gave up waiting for the writer or a reader.
    GaveUp,
    /// The writer's own PASSIVE one ran (the WAL was past [`FORCE_AT`]).
    OnWriter,
    /// An error (a full disk); the WAL keeps everything.
    Failed,
}

/// Checkpoints counted by [`Outcome`].
type Counts = [AtomicU64; 5];

thread_local! {
    /// The WAL's length after the last COMMIT on this thread (0: none since read).
    static WAL_FRAMES: Cell<u32> = const { Cell::new(0) };
}

/// The write connection's WAL hook: notes the WAL's length for [`Checkpointer::after_commit`]
/// on the thread that committed.
fn note(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(u32::try_from(frames).unwrap_or(0)));
    Ok(())
}

/// The checkpoint connection's busy handler: `true` (wait and try again) for about
/// [`WAIT_AT_MOST`]. SQLite counts `tries` over one statement and stops calling once it
/// said no, so this bounds all the waits of one checkpoint together.
fn wait_briefly(tries: c_int) -> bool {
    let most = WAIT_AT_MOST.as_micros() / WAIT_STEP.as_micros();
    if u128::try_from(tries).unwrap_or(u128::MAX) >= most {
        return false;
    }
    std::thread::sleep(WAIT_STEP);
    true
}

/// The write connection's busy handler once the thread checkpoints beside it: as the
/// store's 10 s busy timeout, but trying again every [`WAIT_STEP`] for the first 20 ms,
/// so that a write held off by a RESTART goes on as soon as it ends (SQLite's own
/// handler sleeps 1, 2, 5, 10 ms ... between tries: a 4 ms RESTART held writes 8 ms).
fn wait_for_lock(tries: c_int) -> bool {
    const QUICK: c_int = 200;
    const SLOW: Duration = Duration::from_millis(10);
    match tries {
        ..QUICK => std::thread::sleep(WAIT_STEP),
        // 10 s in all.
        QUICK..1_200 => std::thread::sleep(SLOW),
        _ => return false,
    }
    true
}

/// The checkpoint thread of one write connection.
pub(in crate::store) struct Checkpointer {
    /// Wakes the thread; `None` once stopped (the thread then ends and closes its
    /// connection).
    wake: Mutex<Option<SyncSender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The WAL's length when the thread was last woken.
    woken_at: AtomicU32,
    counts: Arc<Counts>,
}

impl Checkpointer {
    /// Starts the thread, on a connection of its own to `path`, and takes the
    /// checkpoints of `conn` (the write connection) over from SQLite. `None` (logged) if
    /// the connection or the thread cannot be had: SQLite's automatic checkpoints stay.
    pub(in crate::store) fn start(path: &Path, conn: &Connection) -> Option<Checkpointer> {
        let own = super::super::connect(path)
            .and_then(|c| {
                c.busy_handler(Some(wait_briefly))?;
                Ok(c)
            })
            .map_err(|e| tracing::warn!(error = %e, "no checkpoint connection"))
            .ok()?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let counts = Arc::new(Counts::default());
        let counted = counts.clone();
        let thread = std::thread::Builder::new()
            .name("countersign-checkpoint".into())
            .spawn(move || run(&own, &woken, &counted))
            .map_err(|e| tracing::warn!(error = %e, "no checkpoint thread"))
            .ok()?;
        if let Err(e) = conn.busy_handler(Some(wait_for_lock)) {
            tracing::warn!(error = %e, "no busy handler for checkpoints beside the writer");
        }
        conn.wal_hook(Some(note));
        Some(Checkpointer {
            wake: Mutex::new(Some(wake)),
            thread: Mutex::new(Some(thread)),
            woken_at: AtomicU32::new(0),
            counts,
        })
    }

    /// The checkpoints so far, by outcome (in [`Outcome`]'s order).
    pub(in crate::store) fn counts(&self) -> [u64; 5] {
        self.counts.each_ref().map(|n| n.load(Ordering::Relaxed))
    }

    /// Called right after a COMMIT on `conn` (the write connection), on the thread that
    /// committed: wakes the thread every [`CYCLE`] frames; past [`FORCE_AT`]
    /// checkpoints on `conn` too, without waiting.
    pub(in crate::store) fn after_commit(&self, conn: &Connection) {
        let frames = WAL_FRAMES.with(|f| f.replace(0));
        if frames == 0 {
            return;
        }
        // Shorter than at the last wake-up: the WAL started again since.
        let woken = match self.woken_at.load(Ordering::Relaxed) {
            w if w > frames => 0,
            w => w,
        };
        if frames - woken >= CYCLE {
            self.woken_at.store(frames, Ordering::Relaxed);
            if let Some(wake) = self
                .wake
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                // Full: the thread has not taken the last wake-up yet; it will look then.
                let _ = wake.try_send(());
            }
        } else {
            self.woken_at.store(woken, Ordering::Relaxed);
        }
        if frames >= FORCE_AT {
            // What SQLite's automatic checkpoint does: copies what it can, waits for no
            // one (busy at once if the thread is checkpointing).
            let outcome = checkpoint(conn, "PASSIVE", true);
            let outcome = outcome.map_or(Outcome::Failed, |_| Outcome::OnWriter);
            self.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Ends the thread and waits for it, so that its connection is closed before the
    /// write connection (the last connection to close removes the WAL).
    pub(in crate::store) fn stop(&self) {
        drop(
            self.wake
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl super::Shared {
    /// The checkpoints beside the writer so far, by outcome.
    pub(in crate::store) fn checkpoints(&self) -> [u64; 5] {
        self.checkpointer
            .as_ref()
            .map_or([0; 5], Checkpointer::counts)
    }

    /// Right after a COMMIT on `conn`, the write connection.
    pub(super) fn after_commit(&self, conn: &Connection) {
        if let Some(c) = &self.checkpointer {
            c.after_commit(conn);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The checkpoint thread: PASSIVE passes and a RESTART at each wake-up, until the
/// sender is dropped.
fn run(own: &Connection, woken: &mpsc::Receiver<()>, counts: &Counts) {
    // A failing checkpoint (a full disk) is said once, not at every wake-up.
    let mut failing = false;
    let count = |outcome: Outcome| counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
    while let Ok(()) = woken.recv() {
        let mut outcome = None;
        for _ in 0..PASSES {
            outcome = checkpoint(own, "PASSIVE", !failing);
            let Some(pass) = outcome else { break };
            count(Outcome::Copied);
            if pass.left < LEFT_ENOUGH {
                break;
            }
        }
        if outcome.is_some() {
            outcome = checkpoint(own, "RESTART", !failing);
        }
        count(match outcome {
            None => Outcome::Failed,
            Some(Pass { gave_up: true, .. }) => Outcome::GaveUp,
            Some(_) => Outcome::Restarted,
        });
        if failing && outcome.is_some() {
            tracing::info!("WAL checkpoints succeed again");
        }
        failing = outcome.is_none();
    }
}

/// What a checkpoint did.
#[derive(Clone, Copy)]
struct Pass {
    /// It could not take the locks it needed or readers stayed (only RESTART waits).
    gave_up: bool,
    /// Frames left in the WAL that it did not copy back.
    left: i64,
}

/// `PRAGMA wal_checkpoint(mode)` on `conn`; `None` if it failed, logged if `say` (the
/// WAL keeps everything until a later checkpoint succeeds).
fn checkpoint(conn: &Connection, mode: &str, say: bool) -> Option<Pass> {
    let done = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok(Pass {
            gave_up: r.get::<_, i64>(0)? != 0,
            left: r.get::<_, i64>(1)? - r.get::<_, i64>(2)?,
        })
    });
    match done {
        Ok(pass) => Some(pass),
        Err(e) => {
            if say {
                tracing::warn!(error = %e, mode, "WAL checkpoint failed");
            }
            None
        }
    }
}
