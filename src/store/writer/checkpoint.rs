//! WAL checkpoints beside the writer, not on it.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that brings the WAL past 1,000
//! frames: it copies the WAL's pages back into the database file and syncs that file
//! while the writer (and every operation queued behind it) waits. Under load the WAL
//! grows by tens of thousands of frames a second, so that was dozens of syncs a second,
//! and on a large database, whose pages lie all over the file, each took milliseconds
//! (docs/benchmark.md, lab notes of session 28).
//!
//! Here the write connection only notes how long the WAL is after each COMMIT (a WAL
//! hook instead of the automatic checkpoint). Every [`PASSIVE_EVERY`] frames it wakes a
//! thread with a connection of its own, which runs a PASSIVE checkpoint: it copies and
//! syncs what the WAL holds while the writer goes on writing. A PASSIVE checkpoint never
//! catches up with a writer that keeps writing, and the WAL only starts again from its
//! beginning once it has been copied whole, so at [`RESTART_AT`] frames the writer
//! checkpoints itself, between two batches: what is left to copy is what came since the
//! thread's last pass. Past [`FORCE_AT`] (the thread held the checkpoint lock each
//! time) it waits for the lock. Checkpoints never decide durability: a COMMIT is durable
//! once its WAL frames are synced, and a crash at any point of a checkpoint loses
//! nothing.

use std::cell::Cell;
use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// Frames added to the WAL between two wake-ups of the checkpoint thread (SQLite's own
/// automatic checkpoint comes at 1,000).
pub(super) const PASSIVE_EVERY: u32 = 1_000;
/// WAL length (frames, 4 KiB each) at which the writer checkpoints itself, so that the
/// WAL starts again.
pub(in crate::store) const RESTART_AT: u32 = 4_000;
/// WAL length at which the writer waits for the checkpoint lock to checkpoint.
pub(in crate::store) const FORCE_AT: u32 = 2 * RESTART_AT;

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

/// The checkpoint thread of one write connection.
pub(in crate::store) struct Checkpointer {
    /// Wakes the thread; `None` once stopped (the thread then ends and closes its
    /// connection).
    wake: Mutex<Option<SyncSender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The WAL's length when the thread was last woken.
    woken_at: AtomicU32,
}

impl Checkpointer {
    /// Starts the thread, on a connection of its own to `path`, and takes the
    /// checkpoints of `conn` (the write connection) over from SQLite. `None` (logged) if
    /// the connection or the thread cannot be had: SQLite's automatic checkpoints stay.
    pub(in crate::store) fn start(path: &Path, conn: &Connection) -> Option<Checkpointer> {
        let own = super::super::connect(path)
            .map_err(|e| tracing::warn!(error = %e, "no checkpoint connection"))
            .ok()?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("countersign-checkpoint".into())
            .spawn(move || {
                // A failing checkpoint (a full disk) is said once, not at every wake-up.
                let mut failing = false;
                while woken.recv().is_ok() {
                    let failed = !checkpoint(&own, "PASSIVE", !failing);
                    if failing && !failed {
                        tracing::info!("WAL checkpoints succeed again");
                    }
                    failing = failed;
                }
            })
            .map_err(|e| tracing::warn!(error = %e, "no checkpoint thread"))
            .ok()?;
        conn.wal_hook(Some(note));
        Some(Checkpointer {
            wake: Mutex::new(Some(wake)),
            thread: Mutex::new(Some(thread)),
            woken_at: AtomicU32::new(0),
        })
    }

    /// Called right after a COMMIT on `conn` (the write connection), on the thread that
    /// committed: wakes the thread every [`PASSIVE_EVERY`] frames, checkpoints on `conn`
    /// at [`RESTART_AT`].
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
        if frames >= RESTART_AT {
            checkpoint(
                conn,
                if frames >= FORCE_AT {
                    "FULL"
                } else {
                    "PASSIVE"
                },
                true,
            );
            self.woken_at.store(0, Ordering::Relaxed);
        } else if frames - woken >= PASSIVE_EVERY {
            self.woken_at.store(frames, Ordering::Relaxed);
            if let Some(wake) = self
                .wake
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                // Full: a wake-up is already pending, which will see these frames too.
                let _ = wake.try_send(());
            }
        } else {
            self.woken_at.store(woken, Ordering::Relaxed);
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

/// `PRAGMA wal_checkpoint(mode)` on `conn`; whether it ran (a checkpoint another
/// connection held off counts as run). A failure is logged if `say`; the WAL keeps
/// everything until a later checkpoint succeeds.
fn checkpoint(conn: &Connection, mode: &str, say: bool) -> bool {
    let done = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match done {
        Ok(_) => true,
        Err(e) => {
            if say {
                tracing::warn!(error = %e, mode, "WAL checkpoint failed");
            }
            false
        }
    }
}
