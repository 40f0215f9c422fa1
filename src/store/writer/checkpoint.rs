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
//! writing; if [`PASSES`] passes do not get there, it asks for nothing this cycle), then
//! asks the writer for a RESTART, which the writer runs before its next
//! batch: it copies that rest, syncs, and waits for readers to leave the WAL, so that the
//! next write starts the WAL again from its beginning. Fewer, larger checkpoints sync the
//! database file less often, and the writer waits only for the last small part
//! (docs/benchmark.md, session 29). The writer runs it, not the thread, because a thread
//! waiting for the write lock seldom gets it from a writer that is never idle under load.
//!
//! Waiting is what a RESTART could do too much of: it keeps every write waiting while it
//! waits for readers, and a long read (`audit verify` over a large log) stays in the WAL
//! for seconds. So the RESTART waits at most [`WAIT_AT_MOST`] in all (a busy handler of
//! its own for that one statement, not the store's 10 s), then gives up until the next
//! cycle. Past [`FORCE_AT`] frames (a reader kept the WAL, or the thread fell behind)
//! the writer also checkpoints after each COMMIT as SQLite would (PASSIVE, never waiting
//! for anyone), and once that copied everything asks itself for the RESTART, at most
//! every [`RETRY_PAST_FORCE`] frames. Checkpoints never decide durability: a COMMIT is
//! durable once its WAL frames are synced, and a crash at any point of a checkpoint loses
//! nothing.

use std::cell::Cell;
use std::ffi::c_int;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// Frames added to the WAL between two wake-ups of the checkpoint thread (frames are
/// 4 KiB pages, so about 65 MB; SQLite's own automatic checkpoint comes every 1,000).
pub(in crate::store) const CYCLE: u32 = 16_000;
/// What may be left to copy when the thread stops its PASSIVE passes and asks for the
/// RESTART.
const LEFT_ENOUGH: i64 = 1_000;
/// The most PASSIVE passes before a RESTART.
const PASSES: usize = 3;
/// WAL length from which the writer also checkpoints (PASSIVE) after each COMMIT: the
/// RESTART did not start the WAL again within half a cycle.
pub(in crate::store) const FORCE_AT: u32 = CYCLE + CYCLE / 2;
/// Past [`FORCE_AT`], frames between two RESTARTs the writer asks of itself once its own
/// PASSIVE copied everything (readers that come and go may have kept the thread's from
/// succeeding); so readers that never leave the WAL cost it a wait this seldom.
pub(in crate::store) const RETRY_PAST_FORCE: u32 = 1_000;
/// The longest a RESTART, or a checkpoint of the thread, waits in all for readers or
/// the writer.
pub(in crate::store) const WAIT_AT_MOST: Duration = Duration::from_millis(5);
/// One wait of the busy handlers here.
const WAIT_STEP: Duration = Duration::from_micros(100);

/// What became of a checkpoint (in the order of [`Checkpointer::counts`] and
/// `store::Stats::wal_checkpoints`).
#[derive(Clone, Copy)]
enum Outcome {
    /// The thread's PASSIVE one ran.
    Copied,
    /// The writer's RESTART copied everything and readers left: the WAL starts again.
    Restarted,
    /// The writer's RESTART gave up waiting for a reader (or found the checkpoint lock
    /// held by another connection).
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
    /// When [`wait_briefly`] was first called for the statement running on this thread.
    static WAITING_SINCE: Cell<Instant> = Cell::new(Instant::now());
}

/// The write connection's WAL hook: notes the WAL's length for [`Checkpointer::after_commit`]
/// on the thread that committed.
fn note(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(u32::try_from(frames).unwrap_or(0)));
    Ok(())
}

/// The busy handler of a RESTART (on the write connection, for that statement only) and
/// of the checkpoint thread's connection: `true` (wait and try again) for about
/// [`WAIT_AT_MOST`]. SQLite counts `tries` over one statement and stops calling once it
/// said no, so this bounds all the waits of one checkpoint together.
fn wait_briefly(tries: c_int) -> bool {
    // Timed, not counted: each sleep overshoots its 0.1 ms.
    let now = Instant::now();
    let since = if tries == 0 {
        WAITING_SINCE.with(|w| w.set(now));
        now
    } else {
        WAITING_SINCE.with(Cell::get)
    };
    if now.saturating_duration_since(since) >= WAIT_AT_MOST {
        return false;
    }
    std::thread::sleep(WAIT_STEP);
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
    /// The WAL's length when the writer last asked itself for a RESTART past
    /// [`FORCE_AT`].
    forced_at: AtomicU32,
    /// Set by the thread once its passes have copied nearly everything: the writer runs
    /// the RESTART before its next batch.
    restart: Arc<AtomicBool>,
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
        let restart = Arc::new(AtomicBool::new(false));
        let (counted, ask) = (counts.clone(), restart.clone());
        let thread = std::thread::Builder::new()
            .name("countersign-checkpoint".into())
            .spawn(move || run(&own, &woken, &counted, &ask))
            .map_err(|e| tracing::warn!(error = %e, "no checkpoint thread"))
            .ok()?;
        conn.wal_hook(Some(note));
        Some(Checkpointer {
            wake: Mutex::new(Some(wake)),
            thread: Mutex::new(Some(thread)),
            woken_at: AtomicU32::new(0),
            forced_at: AtomicU32::new(0),
            restart,
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
            // one (busy at once if the thread is checkpointing). Failures are counted,
            // not logged: this runs after every COMMIT, the thread says them once.
            let outcome = checkpoint(conn, Mode::Passive, false);
            // All of it copied: the WAL starts again at the next batch if readers let
            // the RESTART through within its wait (no reader keeps an old snapshot, or
            // there would be frames left).
            if let Some(Pass {
                gave_up: false,
                left: 0,
            }) = outcome
            {
                let asked = self.forced_at.load(Ordering::Relaxed);
                if frames < asked || frames - asked >= RETRY_PAST_FORCE {
                    self.forced_at.store(frames, Ordering::Relaxed);
                    self.restart.store(true, Ordering::Relaxed);
                }
            }
            let outcome = outcome.map_or(Outcome::Failed, |_| Outcome::OnWriter);
            self.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Before a batch (or a write alone) on `conn`, the write connection, outside any
    /// transaction: the RESTART the thread asked for, if it did. The writer holds no lock
    /// then, so the RESTART only waits for readers, [`WAIT_AT_MOST`] in all.
    fn restart_if_asked(&self, conn: &Connection) {
        // Read first: this runs before every batch, the flag is set once a cycle.
        if !self.restart.load(Ordering::Relaxed) || !self.restart.swap(false, Ordering::Relaxed) {
            return;
        }
        let outcome = match conn.busy_handler(Some(wait_briefly)) {
            Ok(()) => checkpoint(conn, Mode::Restart, true),
            Err(e) => {
                tracing::warn!(error = %e, "no RESTART: its busy handler could not be set");
                None
            }
        };
        if let Err(e) = conn.busy_timeout(super::super::BUSY_TIMEOUT) {
            tracing::warn!(error = %e, "the write connection's busy handler was not set back");
        }
        let outcome = match outcome {
            None => Outcome::Failed,
            Some(Pass { gave_up: true, .. }) => Outcome::GaveUp,
            Some(_) => Outcome::Restarted,
        };
        self.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
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
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::warn!("the WAL checkpoint thread had panicked");
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

    /// Before a transaction on `conn`, the write connection: the RESTART the checkpoint
    /// thread asked for, if any.
    pub(super) fn before_begin(&self, conn: &Connection) {
        if let Some(c) = &self.checkpointer {
            c.restart_if_asked(conn);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The checkpoint thread: PASSIVE passes at each wake-up, then asks the writer for the
/// RESTART (`restart`), until the sender is dropped.
fn run(own: &Connection, woken: &mpsc::Receiver<()>, counts: &Counts, restart: &AtomicBool) {
    // A failing checkpoint (a full disk) is said once, not at every wake-up.
    let mut failing = false;
    while let Ok(()) = woken.recv() {
        // Whether the passes left the RESTART little to copy.
        let mut nearly_all = false;
        let mut outcome = None;
        for _ in 0..PASSES {
            outcome = checkpoint(own, Mode::Passive, !failing);
            match outcome {
                // Another connection held the checkpoint lock (the writer's own
                // checkpoint, or another process's): nothing copied, nothing known.
                Some(Pass { gave_up: true, .. }) | None => break,
                Some(Pass { left, .. }) => {
                    counts[Outcome::Copied as usize].fetch_add(1, Ordering::Relaxed);
                    nearly_all = left < LEFT_ENOUGH;
                    if nearly_all {
                        break;
                    }
                }
            }
        }
        if nearly_all {
            // A wake-up that came meanwhile would start passes that take the checkpoint
            // lock from the writer's RESTART.
            while woken.try_recv().is_ok() {}
            restart.store(true, Ordering::Relaxed);
        }
        // Otherwise the writer outpaced the passes: the next cycle tries again, and past
        // FORCE_AT the writer checkpoints as SQLite would.
        if outcome.is_none() {
            counts[Outcome::Failed as usize].fetch_add(1, Ordering::Relaxed);
        }
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

/// The checkpoints run here.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Copies what no reader needs; never waits.
    Passive,
    /// Copies everything and starts the WAL again, waiting for readers.
    Restart,
}

impl Mode {
    fn sql(self) -> &'static str {
        match self {
            Mode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
            Mode::Restart => "PRAGMA wal_checkpoint(RESTART)",
        }
    }
}

/// `PRAGMA wal_checkpoint(mode)` on `conn` (prepared once: the writer's PASSIVE past
/// [`FORCE_AT`] runs after every COMMIT); `None` if it failed, logged if `say` (the WAL
/// keeps everything until a later checkpoint succeeds).
fn checkpoint(conn: &Connection, mode: Mode, say: bool) -> Option<Pass> {
    let done = conn.prepare_cached(mode.sql()).and_then(|mut pragma| {
        pragma.query_row([], |r| {
            Ok(Pass {
                gave_up: r.get::<_, i64>(0)? != 0,
                left: r.get::<_, i64>(1)? - r.get::<_, i64>(2)?,
            })
        })
    });
    match done {
        Ok(pass) => Some(pass),
        Err(e) => {
            if say {
                tracing::warn!(error = %e, ?mode, "WAL checkpoint failed");
            }
            None
        }
    }
}
